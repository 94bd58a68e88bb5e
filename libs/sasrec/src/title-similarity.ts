import { checkItemIndices } from './batches';
import { SequentialRecommender, topNFromScores } from './recommender';
import { FitReport, RankedItems } from './types';

export interface TitleSimilarityConfig {
  /** Number of real items; dense indices 1..numItems. */
  numItems: number;
  /**
   * Title of every dense index (`titles[0]` is padding and ignored); a missing or empty title
   * gives the item an empty vector, so it scores 0 against every history.
   */
  titles: readonly (string | undefined)[];
}

/** A sparse TF-IDF vector: term → weight, L2-normalised (empty when the text has no terms). */
type SparseVector = Map<string, number>;

/**
 * Words of a title: maximal runs of letters or digits, lower-cased. Punctuation and platform
 * decorations ("- PlayStation 4", "[Online Game Code]") split into their words and count like any
 * other word, which is the point: the platform is much of what a title says about the next item.
 */
export function titleTerms(title: string): string[] {
  return title.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];
}

/**
 * Content-based reference recommender: a candidate's score is the cosine between its title's
 * TF-IDF vector and the sum of the history titles' vectors (the user's profile). It learns nothing
 * from behaviour — document frequencies come from the catalogue's titles, not from interactions —
 * so it measures how much of the next item a bag of title words already predicts: what a language
 * model reading the same titles in its prompt can get without any collaborative signal.
 * Written here rather than taken from a library because it is twenty lines over the
 * `SequentialRecommender` interface the other baselines share.
 */
export class TitleSimilarity implements SequentialRecommender {
  readonly name = 'title-similarity';
  readonly numItems: number;
  private readonly vectors: SparseVector[];

  constructor(config: TitleSimilarityConfig) {
    if (!Number.isInteger(config.numItems) || config.numItems <= 0) {
      throw new Error(`numItems must be a positive integer, got ${config.numItems}`);
    }
    if (config.titles.length !== config.numItems + 1) {
      throw new Error(
        `titles must have one entry per dense index 0..${config.numItems} (${config.numItems + 1}), got ${config.titles.length}`,
      );
    }
    this.numItems = config.numItems;
    const terms = config.titles.map((t, i) => (i === 0 || !t ? [] : titleTerms(t)));
    const documentFrequency = new Map<string, number>();
    let documents = 0;
    for (const words of terms.slice(1)) {
      if (words.length === 0) continue;
      documents += 1;
      for (const w of new Set(words)) documentFrequency.set(w, (documentFrequency.get(w) ?? 0) + 1);
    }
    // Smoothed IDF (scikit-learn's default): log((1 + N) / (1 + df)) + 1 keeps every weight > 0.
    const idf = (w: string): number => Math.log((1 + documents) / (1 + (documentFrequency.get(w) ?? 0))) + 1;
    this.vectors = terms.map((words) => {
      const counts = new Map<string, number>();
      for (const w of words) counts.set(w, (counts.get(w) ?? 0) + 1);
      const v: SparseVector = new Map();
      // Sublinear term frequency: a word repeated in one title ("Sticky Sticky") counts little more.
      for (const [w, n] of counts) v.set(w, (1 + Math.log(n)) * idf(w));
      return normalise(v);
    });
  }

  /** Nothing to learn from behaviour; reports one empty epoch so it fits the shared fit loop. */
  async fit(trainSequences: readonly (readonly number[])[]): Promise<FitReport> {
    trainSequences.forEach((sequence, i) =>
      checkItemIndices(`training sequence ${i}`, sequence, this.numItems),
    );
    return {
      epochs: [{ epoch: 0, loss: 0, sequences: trainSequences.length, elapsedMs: 0 }],
      sequences: trainSequences.length,
      elapsedMs: 0,
    };
  }

  scoreCandidates(history: readonly number[], candidates: readonly number[]): Float32Array {
    checkItemIndices('history', history, this.numItems);
    checkItemIndices('candidates', candidates, this.numItems);
    const profile = this.profile(history);
    return Float32Array.from(candidates, (item) => dot(profile, this.vectors[item]!));
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
    return candidateLists.map((candidates, i) => this.scoreCandidates(histories[i]!, candidates));
  }

  topN(history: readonly number[], n: number, exclude?: Iterable<number>): RankedItems {
    checkItemIndices('history', history, this.numItems);
    const profile = this.profile(history);
    const scores = new Float64Array(this.numItems + 1);
    for (let item = 1; item <= this.numItems; item++) scores[item] = dot(profile, this.vectors[item]!);
    return topNFromScores(scores, n, exclude);
  }

  dispose(): void {
    // Plain JS memory: nothing to free.
  }

  /** The history's summed title vectors, normalised (padding index 0 contributes nothing). */
  private profile(history: readonly number[]): SparseVector {
    const sum: SparseVector = new Map();
    for (const item of history) for (const [w, x] of this.vectors[item]!) sum.set(w, (sum.get(w) ?? 0) + x);
    return normalise(sum);
  }
}

function normalise(v: SparseVector): SparseVector {
  let norm = 0;
  for (const x of v.values()) norm += x * x;
  if (norm === 0) return v;
  const s = 1 / Math.sqrt(norm);
  for (const [w, x] of v) v.set(w, x * s);
  return v;
}

function dot(a: SparseVector, b: SparseVector): number {
  const [small, large] = a.size <= b.size ? [a, b] : [b, a];
  let s = 0;
  for (const [w, x] of small) s += x * (large.get(w) ?? 0);
  return s;
}
