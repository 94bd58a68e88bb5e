import { checkItemIndices } from './batches';
import { SequentialRecommender, topNFromScores } from './recommender';
import { FitOptions, FitReport, RankedItems } from './types';

export interface PopularityConfig {
  /** Number of real items; dense indices 1..numItems. */
  numItems: number;
  /**
   * Half-life of an interaction's weight in seconds, counted back from the newest training
   * interaction: weight = 0.5^((newest − t) / halfLife). Undefined = plain counts. Needs
   * `timestamps` in the fit options.
   */
  halfLifeSeconds?: number;
}

/**
 * Most-popular baseline: an item's score is its (optionally time-decayed) number of training
 * interactions, whatever the history. Unseen items score 0, so they tie — which the pessimistic
 * `rankOfTarget` resolves against the target.
 */
export class Popularity implements SequentialRecommender {
  readonly name = 'popularity';
  readonly numItems: number;
  private readonly halfLifeSeconds?: number;
  private counts: Float64Array;

  constructor(config: PopularityConfig) {
    if (!Number.isInteger(config.numItems) || config.numItems <= 0) {
      throw new Error(`numItems must be a positive integer, got ${config.numItems}`);
    }
    if (config.halfLifeSeconds !== undefined && !(config.halfLifeSeconds > 0)) {
      throw new Error(`halfLifeSeconds must be > 0, got ${config.halfLifeSeconds}`);
    }
    this.numItems = config.numItems;
    this.halfLifeSeconds = config.halfLifeSeconds;
    this.counts = new Float64Array(config.numItems + 1);
  }

  async fit(trainSequences: readonly (readonly number[])[], options: FitOptions = {}): Promise<FitReport> {
    const started = Date.now();
    trainSequences.forEach((sequence, i) =>
      checkItemIndices(`training sequence ${i}`, sequence, this.numItems),
    );
    const counts = new Float64Array(this.numItems + 1);
    const halfLife = this.halfLifeSeconds;
    if (halfLife === undefined) {
      for (const sequence of trainSequences) for (const item of sequence) counts[item] += 1;
    } else {
      const timestamps = options.timestamps;
      if (!timestamps || timestamps.length !== trainSequences.length) {
        throw new Error('popularity with halfLifeSeconds needs one timestamp list per training sequence');
      }
      let newest = -Infinity;
      timestamps.forEach((times, i) => {
        if (times.length !== trainSequences[i].length) {
          throw new Error(
            `training sequence ${i}: ${trainSequences[i].length} items but ${times.length} timestamps`,
          );
        }
        for (const t of times) newest = Math.max(newest, t);
      });
      trainSequences.forEach((sequence, i) =>
        sequence.forEach((item, j) => {
          counts[item] += Math.pow(0.5, (newest - timestamps[i][j]) / halfLife);
        }),
      );
    }
    this.counts = counts;
    const elapsedMs = Date.now() - started;
    return {
      epochs: [{ epoch: 0, loss: 0, sequences: trainSequences.length, elapsedMs }],
      sequences: trainSequences.length,
      elapsedMs,
    };
  }

  /** The learnt (decayed) count of every item; index 0 (padding) is always 0. */
  itemCounts(): Float64Array {
    return this.counts.slice();
  }

  scoreCandidates(history: readonly number[], candidates: readonly number[]): Float32Array {
    checkItemIndices('candidates', candidates, this.numItems);
    return Float32Array.from(candidates, (item) => this.counts[item]);
  }

  scoreCandidatesBatch(
    histories: readonly (readonly number[])[],
    candidateLists: readonly (readonly number[])[],
  ): Float32Array[] {
    if (histories.length !== candidateLists.length) {
      throw new Error(
        `scoreCandidatesBatch: ${histories.length} histories but ${candidateLists.length} candidate lists`,
      );
    }
    return candidateLists.map((candidates, i) => this.scoreCandidates(histories[i], candidates));
  }

  topN(history: readonly number[], n: number, exclude?: Iterable<number>): RankedItems {
    return topNFromScores(this.counts, n, exclude);
  }

  dispose(): void {
    this.counts = new Float64Array(this.numItems + 1);
  }
}
