import { decidePromotion, GatePolicy } from './promotion-gate';

const policy: GatePolicy = { maxHr1Drop: 0.02, minValidRatio: 0.5, minSamples: 10 };
const score = (domain: string, hr1: number, validRatio = 0.9, samples = 100) => ({
  domain,
  hr1,
  validRatio,
  samples,
});

describe('decidePromotion', () => {
  it('promotes the first sane adapter when nothing is serving', () => {
    const d = decidePromotion([score('games', 0.2)], null, policy);
    expect(d.promote).toBe(true);
    expect(d.reasons).toContain('games: HR@1 20.0% (no serving adapter to compare with)');
  });

  it('accepts a small drop within epsilon and rejects a larger one, naming the domain', () => {
    const serving = new Map([['games', 0.3]]);
    expect(decidePromotion([score('games', 0.285)], serving, policy).promote).toBe(true);
    const worse = decidePromotion([score('games', 0.25)], serving, policy);
    expect(worse.promote).toBe(false);
    expect(worse.reasons[0]).toBe("games: HR@1 25.0% is 5.0% below the serving adapter's 30.0% (ε 2.0%)");
  });

  it('rejects when any domain fails even if another improves', () => {
    const serving = new Map([
      ['games', 0.3],
      ['steam', 0.3],
    ]);
    const d = decidePromotion([score('games', 0.5), score('steam', 0.1)], serving, policy);
    expect(d.promote).toBe(false);
    expect(d.reasons[0]).toMatch(/^steam/);
  });

  it('enforces the Valid Ratio floor and the minimum sample size', () => {
    expect(decidePromotion([score('games', 0.4, 0.3)], null, policy).reasons[0]).toMatch(
      /Valid Ratio 30.0% below the floor 50.0%/,
    );
    expect(decidePromotion([score('games', 0.4, 0.9, 3)], null, policy).reasons[0]).toMatch(
      /only 3 examples/,
    );
    expect(decidePromotion([], null, policy).promote).toBe(false);
  });
});
