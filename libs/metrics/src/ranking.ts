/**
 * Ranking metrics with one relevant item (the true next item among the candidates).
 * Ranks are 1-based; `null` means the target was not ranked at all (e.g. every generation was
 * invalid) and scores 0 at every cut-off.
 */
export type Rank = number | null;

export const DEFAULT_KS: readonly number[] = [1, 3, 5];

function checkK(k: number): void {
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`k must be a positive integer, got ${k}`);
}
function checkRank(rank: Rank): void {
  if (rank !== null && (!Number.isInteger(rank) || rank < 1))
    throw new RangeError(`rank must be a 1-based integer or null, got ${rank}`);
}

/** HR@k: 1 if the target is within the top k. */
export function hitRateAtK(rank: Rank, k: number): number {
  checkK(k);
  checkRank(rank);
  return rank !== null && rank <= k ? 1 : 0;
}

/** NDCG@k with a single relevant item: IDCG = 1, so it is 1/log2(rank + 1) within the top k. */
export function ndcgAtK(rank: Rank, k: number): number {
  checkK(k);
  checkRank(rank);
  return rank !== null && rank <= k ? 1 / Math.log2(rank + 1) : 0;
}

/** 1-based position of `target` in a ranked list (best first), or null when absent. */
export function rankInList<T>(ranked: readonly T[], target: T): Rank {
  const at = ranked.indexOf(target);
  return at < 0 ? null : at + 1;
}

/**
 * Rank of candidate `targetIndex` when candidates are ordered by score, higher first (exact
 * candidate likelihood ranking). Ties are counted against the target (pessimistic), so a model
 * that scores every candidate alike earns nothing; NaN scores rank below every number.
 */
export function rankByScores(scores: ArrayLike<number>, targetIndex: number): number {
  if (!Number.isInteger(targetIndex) || targetIndex < 0 || targetIndex >= scores.length) {
    throw new RangeError(`targetIndex ${targetIndex} is outside the ${scores.length} scores`);
  }
  const value = (x: number): number => (Number.isNaN(x) ? -Infinity : x);
  const target = value(scores[targetIndex]);
  let rank = 1;
  for (let i = 0; i < scores.length; i++) if (i !== targetIndex && value(scores[i]) >= target) rank++;
  return rank;
}

export interface RankSummary {
  readonly count: number;
  /** Mean HR@k by k. */
  readonly hr: Readonly<Record<number, number>>;
  /** Mean NDCG@k by k. */
  readonly ndcg: Readonly<Record<number, number>>;
}

/** Means of HR@k and NDCG@k over examples (0 for an empty set, with count 0). */
export function summariseRanks(ranks: readonly Rank[], ks: readonly number[] = DEFAULT_KS): RankSummary {
  const hr: Record<number, number> = {};
  const ndcg: Record<number, number> = {};
  for (const k of ks) {
    let h = 0;
    let n = 0;
    for (const r of ranks) {
      h += hitRateAtK(r, k);
      n += ndcgAtK(r, k);
    }
    hr[k] = ranks.length === 0 ? 0 : h / ranks.length;
    ndcg[k] = ranks.length === 0 ? 0 : n / ranks.length;
  }
  return { count: ranks.length, hr, ndcg };
}
