import type { Interaction } from './interaction';
import { ItemPool } from './negatives';
import { createRng, shuffleInPlace } from './rng';
import type { DomainSequence } from './sequences';
import { DomainSequenceBuilder } from './sequences';
import { leaveOneOut, timeWindowExample, type EvaluationExample } from './splits';

const pool = new ItemPool(
  'books',
  Array.from({ length: 300 }, (_, k) => `b${k}`),
);
const options = { splitId: 'loo-1', splitSeed: 42, domainItems: pool };

function seq(userId: string, itemIds: string[], tsStep = 1000): DomainSequence {
  const items: Interaction[] = itemIds.map((itemId, k) => ({
    eventId: `${userId}-${k}`,
    userId,
    itemId,
    domain: 'books',
    tsMs: (k + 1) * tsStep,
    seq: k,
  }));
  return { userId, domain: 'books', items };
}

describe('leaveOneOut', () => {
  it('test = last, validation = second to last, train = rest', () => {
    const split = leaveOneOut(seq('u1', ['b1', 'b2', 'b3', 'b4', 'b5']), options);
    expect(split.train.map((i) => i.itemId)).toEqual(['b1', 'b2', 'b3']);
    expect(split.validation?.history).toEqual(['b1', 'b2', 'b3']);
    expect(split.validation?.target).toBe('b4');
    expect(split.test?.history).toEqual(['b1', 'b2', 'b3', 'b4']);
    expect(split.test?.target).toBe('b5');
    expect(split.test?.targetTsMs).toBe(5000);
    expect(split.test?.candidates).toHaveLength(20);
    expect(split.test?.candidates).toContain('b5');
    for (const c of split.test?.candidates ?? [])
      if (c !== 'b5') expect(['b1', 'b2', 'b3', 'b4']).not.toContain(c);
    for (const c of split.validation?.candidates ?? [])
      if (c !== 'b4') expect(['b1', 'b2', 'b3', 'b5']).not.toContain(c);
    expect(split.test?.seed).not.toBe(split.validation?.seed);
  });

  it('does not evaluate users with fewer than 3 items', () => {
    const split = leaveOneOut(seq('u1', ['b1', 'b2']), options);
    expect(split.validation).toBeUndefined();
    expect(split.test).toBeUndefined();
    expect(split.train.map((i) => i.itemId)).toEqual(['b1', 'b2']);
  });

  it('rejects a pool of another domain', () => {
    expect(() =>
      leaveOneOut(seq('u', ['b1', 'b2', 'b3']), { ...options, domainItems: new ItemPool('games', ['g']) }),
    ).toThrow(/pool is for domain "games"/);
  });

  it('frozen candidates are identical across two computations in different orders', () => {
    const users = Array.from({ length: 40 }, (_, u) =>
      seq(
        `u${u}`,
        Array.from({ length: 3 + (u % 5) }, (_, k) => `b${(u * 7 + k * 13) % 300}`),
      ),
    );
    const compute = (order: DomainSequence[], p: ItemPool): Map<string, EvaluationExample | undefined> =>
      new Map(order.map((s) => [s.userId, leaveOneOut(s, { ...options, domainItems: p }).test]));
    const first = compute(users, pool);
    // Second read: other user order, pool loaded in another order, built through the builder.
    const builder = new DomainSequenceBuilder();
    builder.add(
      shuffleInPlace(
        users.flatMap((s) => [...s.items]),
        createRng(3),
      ),
    );
    const reversedPool = new ItemPool('books', [...pool.items].reverse());
    const second = compute([...builder.sequences()].reverse(), reversedPool);
    expect(second.size).toBe(first.size);
    for (const [userId, ex] of first) expect(second.get(userId)).toEqual(ex);
    // A different split seed gives different candidates.
    const other = leaveOneOut(users[0], { ...options, splitSeed: 43 }).test;
    expect(other?.candidates).not.toEqual(first.get('u0')?.candidates);
  });
});

describe('timeWindowExample', () => {
  const s = seq('u1', ['b1', 'b2', 'b3', 'b4', 'b5']); // ts 1000..5000
  it('targets the first interaction inside [t0, t1)', () => {
    const ex = timeWindowExample(s, { ...options, t0: 2500, t1: 4001 });
    expect(ex?.target).toBe('b3');
    expect(ex?.history).toEqual(['b1', 'b2']);
    expect(ex?.kind).toBe('window');
    expect(ex?.candidates).toHaveLength(20);
    expect(timeWindowExample(s, { ...options, t0: 2500, t1: 4001 })).toEqual(ex);
    // Another window has a different seed even for the same target.
    expect(timeWindowExample(s, { ...options, t0: 2600, t1: 4001 })?.seed).not.toBe(ex?.seed);
  });

  it('t1 is exclusive, inactive users and users without history yield nothing', () => {
    expect(timeWindowExample(s, { ...options, t0: 5001, t1: 9000 })).toBeUndefined();
    expect(timeWindowExample(s, { ...options, t0: 3500, t1: 4000 })).toBeUndefined();
    expect(timeWindowExample(s, { ...options, t0: 0, t1: 1500 })).toBeUndefined();
    expect(timeWindowExample(s, { ...options, t0: 0, t1: 1500, minHistory: 0 })?.history).toEqual([]);
    expect(() => timeWindowExample(s, { ...options, t0: 5, t1: 5 })).toThrow(/t0 < t1/);
  });
});

describe('same-title negatives', () => {
  it('excludes negatives titled like the target when titles are given', () => {
    // Items b0..b299; every item whose number ends in 7 shares the target's title.
    const titleOf = (id: string): string => (id.endsWith('7') ? 'Shared &amp; Title' : `Title ${id}`);
    const target = 'b7';
    let sawSameTitleWithout = false;
    for (let u = 0; u < 30; u++) {
      const s = seq(`u${u}`, ['b1', 'b2', target]);
      const withTitles = leaveOneOut(s, { ...options, titleOf }).test;
      for (const c of withTitles?.candidates ?? [])
        if (c !== target) expect(titleOf(c)).not.toBe('Shared &amp; Title');
      const without = leaveOneOut(s, options).test;
      if (without?.candidates.some((c) => c !== target && c.endsWith('7'))) sawSameTitleWithout = true;
    }
    expect(sawSameTitleWithout).toBe(true); // without titles such negatives do occur
  });
});
