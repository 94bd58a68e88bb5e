import type { Interaction } from './interaction';
import {
  domainSamples,
  hasValidMixedSequence,
  isValidMixedWindow,
  lastMixedSample,
  mixedSamples,
} from './samples';

let counter = 0;
/** Builds a sequence from domain letters: 'B' = books, 'G' = games, 'T' = toys. */
function seqOf(domains: string): Interaction[] {
  const names: Record<string, string> = { B: 'books', G: 'games', T: 'toys' };
  return [...domains].map((d, k) => ({
    eventId: `e${counter++}`,
    userId: 'u',
    itemId: `${d}${k}`,
    domain: names[d],
    tsMs: k * 1000,
    seq: 0,
  }));
}
const items = (xs: readonly Interaction[]): string => xs.map((i) => i.itemId).join(' ');

describe('isValidMixedWindow', () => {
  it.each([
    ['BGB', true], // two domains, target domain (books) seen earlier
    ['GBB', true],
    ['BBG', false], // target domain games never seen earlier
    ['BBB', false], // single domain
    ['GB', false],
    ['B', false],
    ['TGB', false], // three domains but no earlier books
    ['BTGGB', true],
  ])('%s → %s', (domains, kept) => {
    expect(isValidMixedWindow(seqOf(domains))).toBe(kept);
  });
});

describe('mixedSamples', () => {
  it('yields every sliding target whose window keeps the guideline', () => {
    const seq = { userId: 'u', items: seqOf('BGBGGT') };
    const got = [...mixedSamples(seq)].map((s) => `${items(s.history)} -> ${s.target.itemId}`);
    // t=2 (G1): window B0 G1, games not earlier → dropped; t=3 (B2): kept; t=4 (G3): kept;
    // t=5 (G4): kept; t=6 (T5): toys never earlier → dropped.
    expect(got).toEqual(['B0 G1 -> B2', 'B0 G1 B2 -> G3', 'B0 G1 B2 G3 -> G4']);
  });

  it('cuts the window to the last N items and judges the cut window', () => {
    const seq = { userId: 'u', items: seqOf('GBBBB') };
    // N=3: target B4 window B2 B3 B4 is single-domain → dropped, although the full history has G0.
    const got = [...mixedSamples(seq, { windowSize: 3 })].map(
      (s) => `${items(s.history)} -> ${s.target.itemId}`,
    );
    expect(got).toEqual(['G0 B1 -> B2']);
    const full = [...mixedSamples(seq)].map((s) => s.target.itemId);
    expect(full).toEqual(['B2', 'B3', 'B4']);
  });

  it('caps history at N-1 items (default N = 20)', () => {
    const seq = { userId: 'u', items: seqOf('BG'.repeat(15)) };
    const samples = [...mixedSamples(seq)];
    expect(samples).toHaveLength(28); // t = 3..30 (1-based) all keep the rule
    for (const s of samples) expect(s.history.length).toBeLessThanOrEqual(19);
    expect(samples[samples.length - 1].history).toHaveLength(19);
  });

  it('applies the target filter', () => {
    const seq = { userId: 'u', items: seqOf('BGBGB') };
    const got = [...mixedSamples(seq, { targetFilter: (t) => t.tsMs >= 4000 })].map((s) => s.target.itemId);
    expect(got).toEqual(['B4']);
  });

  it('lastMixedSample and hasValidMixedSequence', () => {
    expect(lastMixedSample({ userId: 'u', items: seqOf('BGBG') })?.target.itemId).toBe('G3');
    expect(lastMixedSample({ userId: 'u', items: seqOf('BGBT') })).toBeUndefined();
    expect(hasValidMixedSequence({ userId: 'u', items: seqOf('BGBT') })).toBe(true);
    expect(hasValidMixedSequence({ userId: 'u', items: seqOf('BBBT') })).toBe(false);
    expect(() => lastMixedSample({ userId: 'u', items: [] }, 0)).toThrow(/windowSize/);
  });
});

describe('domainSamples', () => {
  it('slides targets with a history cap and minimum history', () => {
    const seq = { userId: 'u', domain: 'books', items: seqOf('BBBBB') };
    expect(
      [...domainSamples(seq, { historyCap: 2 })].map((s) => `${items(s.history)} -> ${s.target.itemId}`),
    ).toEqual(['B0 -> B1', 'B0 B1 -> B2', 'B1 B2 -> B3', 'B2 B3 -> B4']);
    expect([...domainSamples(seq, { minHistory: 3 })].map((s) => s.target.itemId)).toEqual(['B3', 'B4']);
    expect([...domainSamples({ ...seq, items: seqOf('B') })]).toEqual([]);
  });

  it('default cap is 10', () => {
    const seq = { userId: 'u', domain: 'books', items: seqOf('B'.repeat(14)) };
    const last = [...domainSamples(seq)].pop();
    expect(last?.history.map((i) => i.itemId)).toEqual(
      seqOf('B'.repeat(14))
        .slice(3, 13)
        .map((i) => i.itemId),
    );
  });
});
