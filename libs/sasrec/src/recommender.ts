import { FitOptions, FitReport, RankedItems } from './types';

/**
 * What every next-item recommender here offers, so that SASRec, GRU4Rec and popularity are trained
 * and scored the same way on the same frozen candidate splits. Items are dense indices 1..numItems.
 */
export interface SequentialRecommender {
  /** Short model name for reports, e.g. `sasrec`. */
  readonly name: string;
  readonly numItems: number;
  /**
   * Trains on the given per-user training sequences (oldest item first), continuing from the
   * current weights. Each call starts a fresh optimizer (its state is disposed at the end).
   */
  fit(trainSequences: readonly (readonly number[])[], options?: FitOptions): Promise<FitReport>;
  /** Scores of the candidates as the next item after `history` (higher = more likely), in candidate order. */
  scoreCandidates(history: readonly number[], candidates: readonly number[]): Float32Array;
  /** `scoreCandidates` for many cases at once (batched where the model can). */
  scoreCandidatesBatch(
    histories: readonly (readonly number[])[],
    candidateLists: readonly (readonly number[])[],
  ): Float32Array[];
  /** The `n` best items after `history` over the whole catalogue, skipping `exclude` (e.g. the history). */
  topN(history: readonly number[], n: number, exclude?: Iterable<number>): RankedItems;
  /** Frees tensors; the model is unusable afterwards. */
  dispose(): void;
}

/**
 * Picks the `n` best items from a full score vector indexed by dense item (index 0 = padding,
 * never returned). Ties go to the lower index so results are deterministic.
 */
export function topNFromScores(
  scores: ArrayLike<number>,
  n: number,
  exclude?: Iterable<number>,
): RankedItems {
  if (!Number.isInteger(n) || n < 0) throw new Error(`topN: n must be a non-negative integer, got ${n}`);
  const excluded = new Set(exclude ?? []);
  const items: number[] = [];
  for (let item = 1; item < scores.length; item++) if (!excluded.has(item)) items.push(item);
  items.sort((a, b) => scores[b] - scores[a] || a - b);
  const best = items.slice(0, n);
  return { items: best, scores: best.map((item) => scores[item]) };
}
