import { SequentialRecommender } from './recommender';
import { SeededRandom } from './rng';
import { CandidateSplit } from './types';

/**
 * 1-based rank of `scores[targetIndex]` among all scores, breaking ties **pessimistically**: every
 * other candidate scoring at least as high as the target ranks above it. So a model that gives all
 * candidates the same score (e.g. popularity on unseen items) gets the worst rank, not a lucky one,
 * and results do not depend on candidate order. NaN scores rank above the target too.
 */
export function rankOfTarget(scores: ArrayLike<number>, targetIndex: number): number {
  if (!Number.isInteger(targetIndex) || targetIndex < 0 || targetIndex >= scores.length) {
    throw new Error(`rankOfTarget: target index ${targetIndex} is outside 0..${scores.length - 1}`);
  }
  const target = scores[targetIndex];
  if (Number.isNaN(target)) return scores.length;
  let rank = 1;
  for (let i = 0; i < scores.length; i++) {
    if (i !== targetIndex && !(scores[i] < target)) rank++;
  }
  return rank;
}

/** Hit ratio and NDCG at the given cut-offs, averaged over cases. */
export interface RankingMetrics {
  cases: number;
  /** HR@k: share of cases with the target ranked ≤ k. */
  hitRate: Record<number, number>;
  /** NDCG@k with one relevant item: 1 / log2(rank + 1) if rank ≤ k, else 0. */
  ndcg: Record<number, number>;
  meanRank: number;
}

/** Metrics from 1-based ranks. */
export function metricsFromRanks(
  ranks: readonly number[],
  ks: readonly number[] = [1, 3, 5, 10],
): RankingMetrics {
  const hitRate: Record<number, number> = {};
  const ndcg: Record<number, number> = {};
  const n = Math.max(ranks.length, 1);
  for (const k of ks) {
    hitRate[k] = ranks.filter((r) => r <= k).length / n;
    ndcg[k] = ranks.reduce((sum, r) => sum + (r <= k ? 1 / Math.log2(r + 1) : 0), 0) / n;
  }
  return { cases: ranks.length, hitRate, ndcg, meanRank: ranks.reduce((a, b) => a + b, 0) / n };
}

/** Ranks of the targets of the given splits under a model (scored in batches). */
export function rankSplits(model: SequentialRecommender, splits: readonly CandidateSplit[]): number[] {
  const scores = model.scoreCandidatesBatch(
    splits.map((s) => s.history),
    splits.map((s) => s.candidates),
  );
  return splits.map((split, i) => {
    const targetIndex = split.candidates.indexOf(split.target);
    if (targetIndex < 0) throw new Error(`split ${i}: target ${split.target} is not among its candidates`);
    return rankOfTarget(scores[i], targetIndex);
  });
}

/** Scores a model on frozen candidate splits: HR@k and NDCG@k with pessimistic tie-breaking. */
export function evaluateOnSplits(
  model: SequentialRecommender,
  splits: readonly CandidateSplit[],
  ks: readonly number[] = [1, 3, 5, 10],
): RankingMetrics {
  return metricsFromRanks(rankSplits(model, splits), ks);
}

/**
 * Leave-one-out candidate splits for benches and tests until `libs/corpus` provides frozen ones:
 * per sequence (≥ 2 items) the last item is the target, the rest the history, and the candidates
 * are the target plus `numNegatives` distinct items the user never interacted with (the SASRec
 * protocol; with `negativesFromHistory` only the target itself is excluded, for tiny catalogues),
 * shuffled. Sequences with too few eligible items are skipped.
 */
export function leaveOneOutSplits(
  sequences: readonly (readonly number[])[],
  numItems: number,
  numNegatives: number,
  seed: number,
  negativesFromHistory = false,
): CandidateSplit[] {
  const rng = new SeededRandom(seed);
  const splits: CandidateSplit[] = [];
  for (const sequence of sequences) {
    if (sequence.length < 2) continue;
    const seen = new Set(negativesFromHistory ? [sequence[sequence.length - 1]] : sequence);
    if (numItems - seen.size < numNegatives) continue;
    const candidates = new Set<number>();
    while (candidates.size < numNegatives) {
      const item = rng.int(1, numItems);
      if (!seen.has(item)) candidates.add(item);
    }
    const target = sequence[sequence.length - 1];
    splits.push({ history: sequence.slice(0, -1), candidates: rng.shuffle([target, ...candidates]), target });
  }
  return splits;
}
