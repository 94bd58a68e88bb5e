import { decidePromotion, GatePolicy, type Incumbent } from './promotion-gate';

const policy: GatePolicy = { maxHr1Drop: 0.02, minValidRatio: 0.5, minSamples: 10 };
const score = (domain: string, hr1: number, validRatio = 0.9, samples = 100) => ({
  domain,
  hr1,
  validRatio,
  samples,
});
const none = new Map<string, Incumbent>();

describe('decidePromotion', () => {
  it('promotes the first sane adapter when nothing is serving', () => {
    const d = decidePromotion([score('games', 0.2)], none, policy);
    expect(d.promote).toBe(true);
    expect(d.reasons).toContain('games: HR@1 20.0% (no adapter serves games to compare with)');
  });

  it('compares each domain with its own incumbent only: a domain with none gets the absolute checks', () => {
    const incumbents = new Map([['books', { adapterId: 'y', hr1: 0.9 }]]);
    // A games candidate far below the books adapter is still promoted: books' adapter is not games'.
    const d = decidePromotion([score('games', 0.2)], incumbents, policy);
    expect(d.promote).toBe(true);
    expect(d.reasons.join(' ')).not.toMatch(/\by\b/);
    const g = decidePromotion(
      [score('games', 0.2)],
      new Map([['games', { adapterId: 'x', hr1: 0.3 }]]),
      policy,
    );
    expect(g.promote).toBe(false);
    expect(g.reasons[0]).toMatch(/below x's 30\.0%, the adapter serving games/);
  });

  it('accepts a small drop within epsilon and rejects a larger one, naming the domain', () => {
    const serving = new Map([['games', { adapterId: 'g1', hr1: 0.3 }]]);
    expect(decidePromotion([score('games', 0.285)], serving, policy).promote).toBe(true);
    const worse = decidePromotion([score('games', 0.25)], serving, policy);
    expect(worse.promote).toBe(false);
    expect(worse.reasons[0]).toBe(
      "games: HR@1 25.0% is 5.0% below g1's 30.0%, the adapter serving games (ε 2.0%)",
    );
  });

  it('rejects when any domain fails even if another improves', () => {
    const serving = new Map([
      ['games', { adapterId: 'g1', hr1: 0.3 }],
      ['steam', { adapterId: 's1', hr1: 0.3 }],
    ]);
    const d = decidePromotion([score('games', 0.5), score('steam', 0.1)], serving, policy);
    expect(d.promote).toBe(false);
    expect(d.reasons[0]).toMatch(/^steam/);
  });

  it('enforces the Valid Ratio floor and the minimum sample size', () => {
    expect(decidePromotion([score('games', 0.4, 0.3)], none, policy).reasons[0]).toMatch(
      /Valid Ratio 30.0% below the floor 50.0%/,
    );
    expect(decidePromotion([score('games', 0.4, 0.9, 3)], none, policy).reasons[0]).toMatch(
      /only 3 examples/,
    );
    expect(decidePromotion([], none, policy).promote).toBe(false);
  });
});
