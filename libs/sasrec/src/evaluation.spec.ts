import { evaluateOnSplits, leaveOneOutSplits, metricsFromRanks, rankOfTarget } from './evaluation';
import { Popularity } from './popularity';

describe('rankOfTarget', () => {
  it('counts candidates scoring strictly higher, plus ties pessimistically', () => {
    expect(rankOfTarget([0.1, 0.9, 0.5], 1)).toBe(1);
    expect(rankOfTarget([0.1, 0.9, 0.5], 0)).toBe(3);
    expect(rankOfTarget([0.5, 0.9, 0.5], 0)).toBe(3);
    expect(rankOfTarget([0.5, 0.5, 0.5, 0.5], 2)).toBe(4);
    expect(rankOfTarget([1, Number.NaN, 0], 0)).toBe(2);
    expect(rankOfTarget([Number.NaN, 1], 0)).toBe(2);
  });

  it('rejects an index outside the scores', () => {
    expect(() => rankOfTarget([1, 2], 2)).toThrow(/outside/);
  });
});

describe('metricsFromRanks', () => {
  it('computes HR@k and NDCG@k by hand-checked values', () => {
    const m = metricsFromRanks([1, 2, 4, 20], [1, 3, 5]);
    expect(m.hitRate[1]).toBe(0.25);
    expect(m.hitRate[3]).toBe(0.5);
    expect(m.hitRate[5]).toBe(0.75);
    expect(m.ndcg[1]).toBe(0.25);
    expect(m.ndcg[3]).toBeCloseTo((1 + 1 / Math.log2(3)) / 4, 12);
    expect(m.ndcg[5]).toBeCloseTo((1 + 1 / Math.log2(3) + 1 / Math.log2(5)) / 4, 12);
    expect(m.meanRank).toBe(6.75);
  });
});

describe('leaveOneOutSplits', () => {
  it('holds out the last item and draws distinct unseen negatives, reproducibly', () => {
    const sequences = [[1, 2, 3], [4, 5], [6]];
    const splits = leaveOneOutSplits(sequences, 20, 5, 9);
    expect(splits).toHaveLength(2);
    expect(splits[0].history).toEqual([1, 2]);
    expect(splits[0].target).toBe(3);
    expect(new Set(splits[0].candidates).size).toBe(6);
    expect(splits[0].candidates).toContain(3);
    expect(splits[0].candidates.filter((c) => c !== 3).some((c) => [1, 2].includes(c))).toBe(false);
    expect(leaveOneOutSplits(sequences, 20, 5, 9)).toEqual(splits);
  });

  it('skips sequences without enough unseen items', () => {
    expect(leaveOneOutSplits([[1, 2, 3]], 5, 3, 1)).toHaveLength(0);
    expect(leaveOneOutSplits([[1, 2, 3]], 5, 3, 1, true)).toHaveLength(1);
  });
});

describe('evaluateOnSplits', () => {
  it('scores a model on frozen splits and refuses splits without their target', async () => {
    const model = new Popularity({ numItems: 4 });
    await model.fit([[1, 1, 1, 2, 2, 3]]);
    const m = evaluateOnSplits(
      model,
      [
        { history: [], candidates: [2, 1, 3], target: 1 },
        { history: [], candidates: [2, 4, 3], target: 3 },
      ],
      [1, 3],
    );
    expect(m.hitRate[1]).toBe(0.5);
    expect(m.hitRate[3]).toBe(1);
    expect(() => evaluateOnSplits(model, [{ history: [], candidates: [2], target: 1 }])).toThrow(/not among/);
  });
});
