import { generateAndRemove, type RemainingCandidate } from './iterative';

const titles = ['Alpha Game', 'Beta Game', 'Gamma Game', 'Delta Game', 'Epsilon Game', 'Zeta Game'];

/** A scripted "model": answers with the first title of its preference order still on the list. */
function prefers(order: string[]): {
  calls: string[][];
  generate: (c: readonly RemainingCandidate[]) => Promise<string>;
} {
  const calls: string[][] = [];
  return {
    calls,
    generate: async (c) => {
      calls.push(c.map((x) => x.title));
      const left = new Set(c.map((x) => x.title));
      return order.find((t) => left.has(t)) ?? 'no idea';
    },
  };
}

describe('generateAndRemove', () => {
  it('target generated first → rank 1 after one call', async () => {
    const model = prefers(['Gamma Game']);
    const r = await generateAndRemove({ candidateTitles: titles, targetIndex: 2, generate: model.generate });
    expect(r.rank).toBe(1);
    expect(r.firstValid).toBe(true);
    expect(model.calls).toHaveLength(1);
  });

  it('removes each wrongly generated candidate and ranks the target by round', async () => {
    const model = prefers(['Beta Game', 'Zeta Game', 'Delta Game', 'Alpha Game']);
    const r = await generateAndRemove({
      candidateTitles: titles,
      targetIndex: 3,
      generate: model.generate,
      k: 5,
    });
    expect(r.rank).toBe(3);
    expect(r.attempts.map((a) => a.matchedIndex)).toEqual([1, 5, 3]);
    // The model saw the list shrink: 6, then without Beta, then without Zeta.
    expect(model.calls.map((c) => c.length)).toEqual([6, 5, 4]);
    expect(model.calls[2]).not.toContain('Beta Game');
    expect(model.calls[2]).not.toContain('Zeta Game');
  });

  it('target beyond k → null rank', async () => {
    const model = prefers(['Beta Game', 'Zeta Game', 'Delta Game', 'Alpha Game']);
    const r = await generateAndRemove({
      candidateTitles: titles,
      targetIndex: 0,
      generate: model.generate,
      k: 3,
    });
    expect(r.rank).toBeNull();
    expect(model.calls).toHaveLength(3);
  });

  it('an invalid generation is a miss for its round (sampling decoder keeps going)', async () => {
    const script = ['gibberish', 'Beta Game', 'Alpha Game'];
    let call = 0;
    const r = await generateAndRemove({
      candidateTitles: titles,
      targetIndex: 0,
      generate: async () => script[call++],
      deterministic: false,
    });
    expect(r.firstValid).toBe(false);
    expect(r.rank).toBe(3);
    expect(r.attempts[0].match).toEqual({ valid: false, reason: 'no-match' });
  });

  it('with a deterministic decoder an invalid generation ends the procedure', async () => {
    const model = prefers([]);
    const r = await generateAndRemove({ candidateTitles: titles, targetIndex: 0, generate: model.generate });
    expect(r).toEqual({
      rank: null,
      firstValid: false,
      attempts: [{ text: 'no idea', match: { valid: false, reason: 'no-match' } }],
    });
    expect(model.calls).toHaveLength(1);
  });

  it('validates arguments', async () => {
    await expect(
      generateAndRemove({ candidateTitles: titles, targetIndex: 6, generate: async () => '' }),
    ).rejects.toThrow(/outside/);
  });
});
