import { rankOfTarget } from './evaluation';
import { TitleSimilarity, titleTerms } from './title-similarity';

describe('TitleSimilarity', () => {
  const titles = [
    undefined,
    'Halo 3 - Xbox 360', // 1
    'Gears of War - Xbox 360', // 2
    'Mario Kart 8 - Nintendo Switch', // 3
    'Super Mario Odyssey - Nintendo Switch', // 4
    'Xbox 360 Wireless Controller', // 5
    '', // 6: no title
  ];
  const model = () => new TitleSimilarity({ numItems: 6, titles });

  it('splits titles into lower-cased words of letters or digits', () => {
    expect(titleTerms('Halo 3 - Xbox 360 [Online Game Code]')).toEqual([
      'halo',
      '3',
      'xbox',
      '360',
      'online',
      'game',
      'code',
    ]);
    expect(titleTerms('Pokémon: Let’s Go')).toEqual(['pokémon', 'let', 's', 'go']);
    expect(titleTerms(' - ')).toEqual([]);
  });

  it('ranks the candidate sharing the history titles’ words first', () => {
    const m = model();
    const xboxHistory = [1, 2];
    const scores = m.scoreCandidates(xboxHistory, [3, 5, 4]);
    expect(rankOfTarget(scores, 1)).toBe(1);
    const switchHistory = [3];
    expect(rankOfTarget(m.scoreCandidates(switchHistory, [5, 1, 4]), 2)).toBe(1);
    // Cosines of normalised vectors lie in [0, 1]; an item against itself is 1.
    expect(m.scoreCandidates([4], [4])[0]).toBeCloseTo(1, 6);
    for (const s of scores) expect(s).toBeGreaterThanOrEqual(0);
  });

  it('weights rare words above common ones (IDF from the catalogue)', () => {
    // "360" is in three titles, "halo" in two: sharing "halo" beats sharing "360".
    const m = new TitleSimilarity({
      numItems: 4,
      titles: [undefined, 'Halo 360', 'Halo Reach', 'Forza 360', 'Gears 360'],
    });
    const [halo, forza] = m.scoreCandidates([1], [2, 3]);
    expect(halo).toBeGreaterThan(forza!);
  });

  it('scores an untitled item 0 and an empty history 0 for every candidate', () => {
    const m = model();
    expect(Array.from(m.scoreCandidates([1], [6]))).toEqual([0]);
    expect(Array.from(m.scoreCandidates([], [1, 2, 3]))).toEqual([0, 0, 0]);
  });

  it('agrees between the single, batched and catalogue-wide scorers', () => {
    const m = model();
    const batch = m.scoreCandidatesBatch(
      [[1], [3]],
      [
        [2, 4],
        [4, 2],
      ],
    );
    expect(Array.from(batch[0]!)).toEqual(Array.from(m.scoreCandidates([1], [2, 4])));
    const top = m.topN([1, 2], 2, [1, 2]);
    expect(top.items[0]).toBe(5);
  });

  it('refuses titles that do not cover the item indices, and out-of-range items', async () => {
    expect(() => new TitleSimilarity({ numItems: 3, titles: [undefined, 'a'] })).toThrow(
      /one entry per dense index/,
    );
    const m = model();
    expect(() => m.scoreCandidates([7], [1])).toThrow(/not in 1\.\.6/);
    await expect(m.fit([[1, 9]])).rejects.toThrow(/training sequence 0/);
  });
});
