import * as tf from '@tensorflow/tfjs-core';
import { registerTfjsGradients } from '@cprec/lm/kernels/register-gradients';
import { buildTrainingBatch, checkItemIndices, leftPadWindow } from './batches';
import { embeddingLookup } from './embedding';
import { WindowBatch, windowBatch } from './layers';
import { NamedWeight, ParameterStore } from './params';
import { SequentialRecommender, topNFromScores } from './recommender';
import { SeededRandom } from './rng';
import { EpochReport, FitOptions, FitReport, PairwiseLoss, RankedItems, TrainingState } from './types';
import { decodeWeights, EncodedWeights, encodeWeights, writeWeightsDir } from './weights-io';

/** Histories scored per forward pass at inference time. */
const INFERENCE_BATCH = 256;

/** The training/inference settings every neural sequence model here shares. */
export interface SequenceModelSettings {
  numItems: number;
  maxLen: number;
  batchSize: number;
  epochs: number;
  learningRate: number;
  l2Emb: number;
  loss: PairwiseLoss;
  seed: number;
}

const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Training loop, scoring and weight I/O shared by SASRec and GRU4Rec: both turn a left-padded
 * window of items into one hidden state per position, and score an item by the dot product of a
 * hidden state with the item's row of the (shared) item-embedding table. Subclasses provide the
 * parameters and the encoder.
 */
export abstract class NeuralSequenceModel implements SequentialRecommender {
  abstract readonly name: string;
  protected readonly rng: SeededRandom;
  protected readonly params: ParameterStore;

  protected constructor(private readonly settings: SequenceModelSettings) {
    this.rng = new SeededRandom(settings.seed);
    this.params = new ParameterStore(this.rng);
  }

  /** The item-embedding table [numItems + 1, width]; row 0 is padding. */
  protected abstract itemTable(): tf.Variable;

  /** Hidden states [batch, maxLen, width] for a batch of left-padded item windows. */
  protected abstract encode(inputs: WindowBatch, training: boolean): tf.Tensor3D;

  /** The full config, stored in saved weights so a loader can rebuild the same architecture. */
  abstract configRecord(): Record<string, unknown>;

  /**
   * The config fields that decide how weights are used (shapes alone miss e.g. the head count);
   * loading weights requires these to match, training-only fields may differ.
   */
  protected abstract architecture(config: Record<string, unknown>): Record<string, unknown>;

  get numItems(): number {
    return this.settings.numItems;
  }

  get maxLen(): number {
    return this.settings.maxLen;
  }

  /** A fresh seed for one dropout mask, drawn from the model's seeded generator. */
  protected nextSeed(): number {
    return this.rng.int(0, 0x7fffffff);
  }

  /**
   * Mean pairwise loss over the non-padding positions of a batch, plus the L2 penalty on the item
   * table. BCE: −log σ(s⁺) − log(1 − σ(s⁻)) as the original SASRec; BPR: −log σ(s⁺ − s⁻).
   */
  protected batchLoss(
    inputs: WindowBatch,
    positives: tf.Tensor2D,
    negatives: tf.Tensor2D,
    training: boolean,
  ): tf.Scalar {
    const hidden = this.encode(inputs, training);
    const table = this.itemTable() as tf.Tensor2D;
    const positiveLogits = tf.sum(tf.mul(hidden, embeddingLookup(table, positives)), -1);
    const negativeLogits = tf.sum(tf.mul(hidden, embeddingLookup(table, negatives)), -1);
    const perPosition =
      this.settings.loss === 'bce'
        ? tf.add(tf.softplus(tf.neg(positiveLogits)), tf.softplus(negativeLogits))
        : tf.softplus(tf.neg(tf.sub(positiveLogits, negativeLogits)));
    const mask = tf.cast(tf.notEqual(positives, 0), 'float32');
    let loss = tf.div(tf.sum(tf.mul(perPosition, mask)), tf.maximum(tf.sum(mask), 1)) as tf.Scalar;
    if (this.settings.l2Emb > 0)
      loss = tf.add(loss, tf.mul(this.settings.l2Emb / 2, tf.sum(tf.square(table))));
    return loss;
  }

  async fit(trainSequences: readonly (readonly number[])[], options: FitOptions = {}): Promise<FitReport> {
    const { maxLen, numItems, batchSize } = this.settings;
    trainSequences.forEach((sequence, i) => checkItemIndices(`training sequence ${i}`, sequence, numItems));
    // A sequence of one item has no (input, next item) pair to learn from.
    const usable = trainSequences.filter((sequence) => sequence.length >= 2);
    // tfjs-core's CommonJS build ships no gradient definitions; libs/lm knows how to load them.
    registerTfjsGradients();
    const epochs = options.epochs ?? this.settings.epochs;
    const optimizer = tf.train.adam(this.settings.learningRate);
    const variables = this.params.list();
    const reports: EpochReport[] = [];
    const started = Date.now();
    const outOfTime = (): boolean =>
      options.timeBudgetMs !== undefined && Date.now() - started >= options.timeBudgetMs;
    const resume = options.resumeFrom;
    try {
      if (resume) {
        if (resume.optimizer.length > 0) {
          const tensors = resume.optimizer.map((w) => ({
            name: w.name,
            tensor: tf.tensor(w.values, w.shape),
          }));
          // Adam copies them into variables of its own.
          await optimizer.setWeights(tensors);
          tensors.forEach((t) => t.tensor.dispose());
        }
        this.rng.restore(resume.rng);
      }
      for (let epoch = resume?.epochsDone ?? 0; epoch < epochs; epoch++) {
        const epochStarted = Date.now();
        const order = this.rng.shuffle(usable.map((_, i) => i));
        let lossSum = 0;
        let batches = 0;
        let sequencesSeen = 0;
        for (let start = 0; start < order.length && !outOfTime(); start += batchSize) {
          const batch = buildTrainingBatch(
            order.slice(start, start + batchSize).map((i) => usable[i]),
            maxLen,
            numItems,
            this.rng,
          );
          const cost = tf.tidy(() => {
            const shape: [number, number] = [batch.size, maxLen];
            const inputs = windowBatch(batch.inputs, batch.size, maxLen);
            const positives = tf.tensor2d(batch.positives, shape, 'int32');
            const negatives = tf.tensor2d(batch.negatives, shape, 'int32');
            return optimizer.minimize(
              () => this.batchLoss(inputs, positives, negatives, true),
              true,
              variables,
            ) as tf.Scalar;
          });
          lossSum += (await cost.data())[0];
          cost.dispose();
          batches++;
          sequencesSeen += batch.size;
          // Long fits run inside services: let timers and Kafka heartbeats through between steps.
          await yieldToEventLoop();
        }
        const report: EpochReport = {
          epoch,
          loss: batches > 0 ? lossSum / batches : Number.NaN,
          sequences: sequencesSeen,
          elapsedMs: Date.now() - epochStarted,
        };
        if (batches === 0) break;
        reports.push(report);
        if (options.onEpochEnd?.(report) === 'stop') break;
        if (outOfTime()) break;
        if (options.afterEpoch && epoch + 1 < epochs)
          await options.afterEpoch(report, () => this.trainingState(optimizer, epoch + 1));
      }
    } finally {
      optimizer.dispose();
    }
    return {
      epochs: reports,
      sequences: reports.reduce((n, r) => n + r.sequences, 0),
      elapsedMs: Date.now() - started,
    };
  }

  private async trainingState(optimizer: tf.Optimizer, epochsDone: number): Promise<TrainingState> {
    const named = await optimizer.getWeights();
    const state: TrainingState = { epochsDone, optimizer: [], rng: this.rng.state() };
    for (const [i, w] of named.entries()) {
      state.optimizer.push({
        name: w.name,
        shape: [...w.tensor.shape],
        values: Float32Array.from(await w.tensor.data()),
      });
      // The first is a fresh scalar of the iteration count; the others are Adam's own variables.
      if (i === 0) w.tensor.dispose();
    }
    return state;
  }

  /** Hidden state after the last item of each history: [histories, width]. */
  protected lastHidden(histories: readonly (readonly number[])[]): tf.Tensor2D {
    const { maxLen, numItems } = this.settings;
    const ids = new Int32Array(histories.length * maxLen);
    histories.forEach((history, row) => {
      checkItemIndices('history', history, numItems);
      leftPadWindow(history, maxLen, ids, row * maxLen);
    });
    return tf.tidy(() => {
      const hidden = this.encode(windowBatch(ids, histories.length, maxLen), false);
      const width = hidden.shape[2];
      return tf.reshape(tf.slice(hidden, [0, maxLen - 1, 0], [histories.length, 1, width]), [
        histories.length,
        width,
      ]);
    });
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
    const results: Float32Array[] = [];
    for (let start = 0; start < histories.length; start += INFERENCE_BATCH) {
      const chunkHistories = histories.slice(start, start + INFERENCE_BATCH);
      const chunkCandidates = candidateLists.slice(start, start + INFERENCE_BATCH);
      const width = Math.max(1, ...chunkCandidates.map((c) => c.length));
      const ids = new Int32Array(chunkCandidates.length * width);
      chunkCandidates.forEach((candidates, row) => {
        checkItemIndices('candidates', candidates, this.settings.numItems);
        ids.set(candidates, row * width);
      });
      const scores = tf.tidy(() => {
        const hidden = this.lastHidden(chunkHistories);
        const candidateRows = tf.gather(
          this.itemTable(),
          tf.tensor2d(ids, [chunkCandidates.length, width], 'int32'),
        );
        return tf.reshape(tf.matMul(candidateRows as tf.Tensor3D, tf.expandDims(hidden, 2) as tf.Tensor3D), [
          chunkCandidates.length,
          width,
        ]);
      });
      const values = scores.dataSync() as Float32Array;
      scores.dispose();
      chunkCandidates.forEach((candidates, row) =>
        results.push(values.slice(row * width, row * width + candidates.length)),
      );
    }
    return results;
  }

  scoreCandidates(history: readonly number[], candidates: readonly number[]): Float32Array {
    return this.scoreCandidatesBatch([history], [candidates])[0];
  }

  /** Scores of every item (index 0 = padding, included for alignment) as the next one after `history`. */
  scoreAllItems(history: readonly number[]): Float32Array {
    const scores = tf.tidy(() => tf.matMul(this.lastHidden([history]), this.itemTable(), false, true));
    const values = scores.dataSync() as Float32Array;
    scores.dispose();
    return values;
  }

  topN(history: readonly number[], n: number, exclude?: Iterable<number>): RankedItems {
    return topNFromScores(this.scoreAllItems(history), n, exclude);
  }

  /** A copy of the item-embedding table [numItems + 1, width] (row 0 = padding); the caller disposes it. */
  itemEmbeddings(): tf.Tensor2D {
    return tf.clone(this.itemTable()) as tf.Tensor2D;
  }

  /** Current parameter values by name. */
  weights(): NamedWeight[] {
    return this.params.read();
  }

  /** Overwrites all parameters (names and shapes must match), e.g. to transplant weights. */
  setWeights(weights: readonly NamedWeight[]): void {
    this.params.assign(weights);
  }

  encodeWeights(): EncodedWeights {
    return encodeWeights(this.name, this.configRecord(), this.params.read());
  }

  /** Loads weights written by a model of the same kind and config (checked; partial loads are refused). */
  loadEncodedWeights(encoded: EncodedWeights): void {
    if (encoded.manifest.model !== this.name) {
      throw new Error(`weights were written by a ${encoded.manifest.model} model, not ${this.name}`);
    }
    const mine = JSON.stringify(this.architecture(this.configRecord()));
    const theirs = JSON.stringify(this.architecture(encoded.manifest.config));
    if (mine !== theirs) throw new Error(`weights architecture ${theirs} differs from the model's ${mine}`);
    this.params.assign(decodeWeights(encoded));
  }

  /** Writes `manifest.json` + `weights.bin` into `dir`. */
  async save(dir: string): Promise<void> {
    await writeWeightsDir(dir, this.encodeWeights());
  }

  dispose(): void {
    this.params.dispose();
  }
}
