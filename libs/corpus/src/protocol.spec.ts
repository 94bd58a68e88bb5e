import { ItemPool } from './negatives';
import { PAPER_PROMPT_PROTOCOL, protocolSample, validateProtocol } from './protocol';
import { createRng } from './rng';

const pool = new ItemPool(
  'games',
  Array.from({ length: 60 }, (_, i) => `i${i}`),
);
// Items 0–9 share a title with item 59 ("Same"), the rest are unique.
const titleOf = (id: string): string => {
  const k = Number(id.slice(1));
  return k < 10 || k === 59 ? 'Same' : `Title ${k}`;
};

describe('protocolSample (the one way CPT, SFT and evaluation prompts are made)', () => {
  it('keeps the last historyLength items, lists candidates − 1 negatives plus the target, shuffled', () => {
    const history = Array.from({ length: 14 }, (_, i) => `i${20 + i}`);
    const s = protocolSample(PAPER_PROMPT_PROTOCOL, {
      history,
      target: 'i40',
      userItems: [...history, 'i40', 'i45'],
      pool,
      titleOf,
      rng: createRng(3),
    });
    expect(s.history.map((h) => h.itemId)).toEqual(history.slice(-10));
    expect(s.history[0]!.title).toBe('Title 24');
    expect(s.candidates).toHaveLength(20);
    expect(new Set(s.candidates.map((c) => c.itemId)).size).toBe(20);
    expect(s.candidates.filter((c) => c.itemId === 'i40')).toHaveLength(1);
    expect(s.target).toEqual({ itemId: 'i40', title: 'Title 40' });
    // Never an item of the user, and the target is not always first.
    for (const c of s.candidates) if (c.itemId !== 'i40') expect([...history, 'i45']).not.toContain(c.itemId);
    const positions = new Set(
      [1, 2, 3, 4, 5, 6].map((seed) =>
        protocolSample(PAPER_PROMPT_PROTOCOL, {
          history,
          target: 'i40',
          userItems: history,
          pool,
          titleOf,
          rng: createRng(seed),
        }).candidates.findIndex((c) => c.itemId === 'i40'),
      ),
    );
    expect(positions.size).toBeGreaterThan(1);
  });

  it('never lists a negative titled like the target (a correct answer must be distinguishable)', () => {
    for (let seed = 0; seed < 30; seed++) {
      const s = protocolSample(PAPER_PROMPT_PROTOCOL, {
        history: ['i30'],
        target: 'i59',
        userItems: ['i30', 'i59'],
        pool,
        titleOf,
        rng: createRng(seed),
      });
      const same = s.candidates.filter((c) => c.title === 'Same');
      expect(same.map((c) => c.itemId)).toEqual(['i59']);
    }
  });

  it('validates its numbers', () => {
    expect(() => validateProtocol({ ...PAPER_PROMPT_PROTOCOL, candidates: 1 })).toThrow(/at least 2/);
    expect(() => validateProtocol({ ...PAPER_PROMPT_PROTOCOL, historyLength: 0 })).toThrow(/historyLength/);
  });
});
