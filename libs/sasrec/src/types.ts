/**
 * Configuration and data types shared by the sequential recommenders in this library.
 *
 * Item indices: every model works on *dense* item indices 1..numItems of one domain; index 0 is
 * reserved for padding (left padding of short histories). Use `ItemIndex` to map external item
 * ids to dense indices and back.
 */

/** Hyper-parameters of SASRec (Kang & McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018). */
export interface SasRecConfig {
  /** Number of real items in the domain; dense indices run 1..numItems, 0 is padding. */
  numItems: number;
  /** Length of the sliding window over a history (the original's `maxlen`); older items are dropped. */
  maxLen: number;
  /** Width of item/position embeddings and of every hidden state (the original's `hidden_units`). */
  hiddenDim: number;
  /** Number of stacked causal self-attention blocks. */
  numBlocks: number;
  /** Attention heads per block; must divide `hiddenDim`. */
  numHeads: number;
  /** Dropout rate applied to embeddings, attention weights and the feed-forward layers while training. */
  dropout: number;
  /** L2 penalty coefficient on the item-embedding table: the loss gains `l2Emb / 2 · ‖E‖²` (the original's `l2_emb`). */
  l2Emb: number;
  /** Adam learning rate. */
  learningRate: number;
  /** Training sequences (users) per optimisation step. */
  batchSize: number;
  /** Passes over the training sequences when `fit` is not given an explicit epoch count. */
  epochs: number;
  /** Seed of every random choice: weight init, dropout masks, shuffling and negative sampling. */
  seed: number;
}

/** Loss of GRU4Rec over (positive, sampled negative) pairs at every position. */
export type PairwiseLoss = 'bce' | 'bpr';

/** Hyper-parameters of GRU4Rec (Hidasi et al., "Session-based Recommendations with RNNs", ICLR 2016). */
export interface Gru4RecConfig {
  /** Number of real items in the domain; dense indices run 1..numItems, 0 is padding. */
  numItems: number;
  /** Length of the window over a history that the GRU is unrolled over. */
  maxLen: number;
  /** Width of the item embeddings; the GRU output is projected back to this width to score items. */
  embeddingDim: number;
  /** Width of the GRU hidden state. */
  hiddenDim: number;
  /** Dropout rate applied to the embeddings and the GRU output while training. */
  dropout: number;
  /** L2 penalty coefficient on the item-embedding table (`l2Emb / 2 · ‖E‖²`). */
  l2Emb: number;
  /**
   * Loss over one sampled negative per position: `bce` = −log σ(s⁺) − log(1 − σ(s⁻)) (as SASRec,
   * so both sequence models are trained alike), `bpr` = −log σ(s⁺ − s⁻) (the GRU4Rec paper's BPR).
   */
  loss: PairwiseLoss;
  /** Adam learning rate. */
  learningRate: number;
  /** Training sequences (users) per optimisation step. */
  batchSize: number;
  /** Passes over the training sequences when `fit` is not given an explicit epoch count. */
  epochs: number;
  /** Seed of every random choice: weight init, dropout masks, shuffling and negative sampling. */
  seed: number;
}

/** Options of `SequentialRecommender.fit`. */
export interface FitOptions {
  /** Overrides the configured number of epochs. */
  epochs?: number;
  /**
   * Wall-clock budget in milliseconds: training stops after the first batch that ends past it
   * (the last epoch may then be partial; its report says how many sequences it saw).
   */
  timeBudgetMs?: number;
  /**
   * Per-sequence interaction timestamps (seconds), parallel to the training sequences. Only the
   * popularity baseline uses them, for time decay.
   */
  timestamps?: number[][];
  /**
   * Called after every epoch, e.g. for progress bars, loss curves or validation; returning
   * `'stop'` ends training there (early stopping keeps the optimizer's state across epochs, which
   * one `fit` call per epoch would reset).
   */
  onEpochEnd?: (report: EpochReport) => void | 'stop';
  /**
   * Called after each epoch that training continues past, with a way to capture the training
   * state (optimizer moments, random stream, epochs done); awaited before the next epoch, so a
   * checkpoint written here is complete before training moves on.
   */
  afterEpoch?: (report: EpochReport, capture: () => Promise<TrainingState>) => Promise<void>;
  /**
   * Continues a fit a `TrainingState` was captured from (the caller restores the model's weights
   * first): the same optimizer moments, random stream and epoch count, so the result is the one
   * an uninterrupted fit gives.
   */
  resumeFrom?: TrainingState;
}

/** What a fit needs besides the model's weights to continue as if it had never stopped. */
export interface TrainingState {
  /** Epochs finished; training continues with this (0-based) epoch. */
  epochsDone: number;
  /** The optimizer's state: its iteration count ('iter') and per-variable moments, in its order. */
  optimizer: { name: string; shape: number[]; values: Float32Array }[];
  /** The model's random stream (shuffling, negatives, dropout seeds). */
  rng: number[];
}

/** What one training epoch did. */
export interface EpochReport {
  /** 0-based epoch number. */
  epoch: number;
  /** Mean loss over the epoch's batches. */
  loss: number;
  /** Training sequences processed in the epoch (fewer than all if the time budget ran out). */
  sequences: number;
  /** Wall time of the epoch in milliseconds. */
  elapsedMs: number;
}

/** What `fit` did in total. */
export interface FitReport {
  epochs: EpochReport[];
  /** Training sequences processed over all epochs. */
  sequences: number;
  /** Wall time of the whole fit in milliseconds. */
  elapsedMs: number;
}

/** Result of `topN`: best items first. */
export interface RankedItems {
  /** Dense item indices, best first. */
  items: number[];
  /** Their scores, parallel to `items`. */
  scores: number[];
}

/**
 * One frozen evaluation case: a user's history, the candidates to rank (the true next item plus
 * sampled negatives, in the split's fixed order) and the true next item. Item values are dense
 * indices. Minimal local stand-in for the split type of `libs/corpus`.
 */
export interface CandidateSplit {
  history: number[];
  candidates: number[];
  target: number;
}

export const DEFAULT_SASREC_CONFIG: Omit<SasRecConfig, 'numItems'> = {
  maxLen: 50,
  hiddenDim: 64,
  numBlocks: 2,
  numHeads: 1,
  dropout: 0.2,
  l2Emb: 0,
  learningRate: 1e-3,
  batchSize: 128,
  epochs: 20,
  seed: 42,
};

export const DEFAULT_GRU4REC_CONFIG: Omit<Gru4RecConfig, 'numItems'> = {
  maxLen: 50,
  embeddingDim: 64,
  hiddenDim: 64,
  dropout: 0.2,
  l2Emb: 0,
  loss: 'bce',
  learningRate: 1e-3,
  batchSize: 128,
  epochs: 20,
  seed: 42,
};

function requirePositiveInt(name: string, value: number): void {
  if (!Number.isInteger(value) || value <= 0) {
    throw new Error(`${name} must be a positive integer, got ${value}`);
  }
}

function requireRate(name: string, value: number): void {
  if (!(value >= 0 && value < 1)) throw new Error(`${name} must be in [0, 1), got ${value}`);
}

/** Fills defaults and rejects impossible values with a readable message. */
export function resolveSasRecConfig(partial: Partial<SasRecConfig> & { numItems: number }): SasRecConfig {
  const config: SasRecConfig = { ...DEFAULT_SASREC_CONFIG, ...partial };
  for (const key of [
    'numItems',
    'maxLen',
    'hiddenDim',
    'numBlocks',
    'numHeads',
    'batchSize',
    'epochs',
  ] as const) {
    requirePositiveInt(key, config[key]);
  }
  if (config.hiddenDim % config.numHeads !== 0) {
    throw new Error(`numHeads (${config.numHeads}) must divide hiddenDim (${config.hiddenDim})`);
  }
  requireRate('dropout', config.dropout);
  if (!(config.l2Emb >= 0)) throw new Error(`l2Emb must be >= 0, got ${config.l2Emb}`);
  if (!(config.learningRate > 0)) throw new Error(`learningRate must be > 0, got ${config.learningRate}`);
  if (!Number.isInteger(config.seed)) throw new Error(`seed must be an integer, got ${config.seed}`);
  return config;
}

/** Fills defaults and rejects impossible values with a readable message. */
export function resolveGru4RecConfig(partial: Partial<Gru4RecConfig> & { numItems: number }): Gru4RecConfig {
  const config: Gru4RecConfig = { ...DEFAULT_GRU4REC_CONFIG, ...partial };
  for (const key of ['numItems', 'maxLen', 'embeddingDim', 'hiddenDim', 'batchSize', 'epochs'] as const) {
    requirePositiveInt(key, config[key]);
  }
  requireRate('dropout', config.dropout);
  if (config.loss !== 'bce' && config.loss !== 'bpr')
    throw new Error(`loss must be 'bce' or 'bpr', got ${String(config.loss)}`);
  if (!(config.l2Emb >= 0)) throw new Error(`l2Emb must be >= 0, got ${config.l2Emb}`);
  if (!(config.learningRate > 0)) throw new Error(`learningRate must be > 0, got ${config.learningRate}`);
  if (!Number.isInteger(config.seed)) throw new Error(`seed must be an integer, got ${config.seed}`);
  return config;
}
