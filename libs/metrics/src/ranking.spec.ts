import { hitRateAtK, ndcgAtK, rankByScores, rankInList, summariseRanks } from './ranking';

describe('HR@k and NDCG@k', () => {
  it('match hand-computed values', () => {
    expect(hitRateAtK(1, 1)).toBe(1);
    expect(hitRateAtK(2, 1)).toBe(0);
    expect(hitRateAtK(3, 3)).toBe(1);
    expect(hitRateAtK(null, 5)).toBe(0);
    expect(ndcgAtK(1, 5)).toBe(1);
    expect(ndcgAtK(3, 5)).toBeCloseTo(0.5, 12); // 1/log2(4)
    expect(ndcgAtK(2, 3)).toBeCloseTo(0.6309297535714575, 12); // 1/log2(3)
    expect(ndcgAtK(4, 3)).toBe(0);
    expect(() => hitRateAtK(0, 1)).toThrow(/1-based/);
    expect(() => ndcgAtK(1, 0)).toThrow(/k must/);
  });

  it('rank from a ranked list and from scores (ties pessimistic, NaN last)', () => {
    expect(rankInList(['b', 'a', 'c'], 'a')).toBe(2);
    expect(rankInList(['b', 'a', 'c'], 'z')).toBeNull();
    expect(rankByScores([0.1, 0.9, 0.5], 2)).toBe(2);
    expect(rankByScores([0.1, 0.9, 0.5], 1)).toBe(1);
    expect(rankByScores([0.5, 0.5, 0.5], 0)).toBe(3);
    expect(rankByScores([NaN, -5, -1], 1)).toBe(2);
    expect(rankByScores(Float32Array.from([-3, -2, -1]), 0)).toBe(3);
    expect(() => rankByScores([1], 1)).toThrow(/outside/);
  });

  it('aggregates over examples', () => {
    // ranks 1, 2, 4, null: HR@1 = 1/4, HR@3 = 2/4, HR@5 = 3/4;
    // NDCG@3 = (1 + 1/log2 3)/4, NDCG@5 = (1 + 1/log2 3 + 1/log2 5)/4.
    const s = summariseRanks([1, 2, 4, null]);
    expect(s.count).toBe(4);
    expect(s.hr[1]).toBe(0.25);
    expect(s.hr[3]).toBe(0.5);
    expect(s.hr[5]).toBe(0.75);
    expect(s.ndcg[1]).toBe(0.25);
    expect(s.ndcg[3]).toBeCloseTo((1 + 0.6309297535714575) / 4, 12);
    expect(s.ndcg[5]).toBeCloseTo((1 + 0.6309297535714575 + 0.43067655807339306) / 4, 12);
    expect(summariseRanks([]).hr[1]).toBe(0);
  });
});
