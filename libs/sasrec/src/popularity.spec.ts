import { rankOfTarget } from './evaluation';
import { Popularity } from './popularity';

describe('Popularity', () => {
  const sequences = [
    [1, 2, 3],
    [3, 4, 3],
    [5, 3, 2],
  ];

  it('ranks the most frequent item first, whatever the history', async () => {
    const model = new Popularity({ numItems: 6 });
    await model.fit(sequences);
    expect(Array.from(model.itemCounts())).toEqual([0, 1, 2, 4, 1, 1, 0]);
    expect(model.topN([1], 3).items).toEqual([3, 2, 1]);
    expect(model.topN([4, 4], 3).items).toEqual([3, 2, 1]);
    expect(model.topN([1], 2, [3]).items).toEqual([2, 1]);
    expect(Array.from(model.scoreCandidates([], [6, 3, 2]))).toEqual([0, 4, 2]);
  });

  it('ties between unseen items rank the target last (pessimistic)', async () => {
    const model = new Popularity({ numItems: 6 });
    await model.fit(sequences);
    const scores = model.scoreCandidates([], [6, 3, 2]);
    expect(rankOfTarget(scores, 1)).toBe(1);
    // Items 1, 4 and 5 all have count 1: with target 1, both 4 and 5 rank above it; 6 (count 0) below.
    const tied = model.scoreCandidates([], [6, 1, 4, 5]);
    expect(rankOfTarget(tied, 1)).toBe(3);
    // Unseen items 6 and 0-count peers: the unseen target loses every tie.
    const unseen = model.scoreCandidates([], [6, 4]);
    expect(rankOfTarget(unseen, 0)).toBe(2);
  });

  it('weights interactions by time decay when a half-life is given', async () => {
    const model = new Popularity({ numItems: 3, halfLifeSeconds: 100 });
    // Item 1 twice long ago, item 2 once at the newest time: 2 · 0.5^(300/100) = 0.25 < 1.
    await model.fit([[1, 1, 2]], { timestamps: [[0, 0, 300]] });
    const counts = model.itemCounts();
    expect(counts[1]).toBeCloseTo(0.25, 10);
    expect(counts[2]).toBeCloseTo(1, 10);
    expect(model.topN([], 1).items).toEqual([2]);
    await expect(model.fit([[1, 2]])).rejects.toThrow(/timestamp/);
  });

  it('rejects out-of-range items', async () => {
    const model = new Popularity({ numItems: 2 });
    await expect(model.fit([[1, 3]])).rejects.toThrow(/not in 1\.\.2/);
  });
});
