import { ItemPool, NotEnoughItemsError, sampleCandidates, sampleNegatives } from './negatives';
import { createRng, randomInt } from './rng';

const range = (n: number, prefix = 'i'): string[] => Array.from({ length: n }, (_, k) => `${prefix}${k}`);

describe('ItemPool', () => {
  it('de-duplicates and sorts, so load order does not matter', () => {
    expect(new ItemPool('d', ['b', 'a', 'b', 'c']).items).toEqual(['a', 'b', 'c']);
  });
});

describe('sampleNegatives', () => {
  it('never returns a user item or the target, returns distinct domain items (many seeds, both strategies)', () => {
    for (let seed = 0; seed < 300; seed++) {
      const rng = createRng(seed);
      // Pool sizes from 25 (explicit pool) to 5000 (rejection sampling).
      const pool = new ItemPool('d', range(randomInt(rng, 25, seed % 2 === 0 ? 60 : 5000)));
      const userItems = new Set<string>();
      const nUser = randomInt(rng, 0, pool.size - 21);
      while (userItems.size < nUser) userItems.add(pool.items[randomInt(rng, 0, pool.size - 1)]);
      userItems.add('other-domain-item');
      const target = pool.items[randomInt(rng, 0, pool.size - 1)];
      const negatives = sampleNegatives({ target, userItems, domainItems: pool, rng });
      expect(negatives).toHaveLength(19);
      expect(new Set(negatives).size).toBe(19);
      for (const n of negatives) {
        expect(pool.has(n)).toBe(true);
        expect(userItems.has(n)).toBe(false);
        expect(n).not.toBe(target);
      }
    }
  });

  it('takes exactly the eligible items when there are just enough', () => {
    const pool = new ItemPool('d', range(22));
    const negatives = sampleNegatives({
      target: 'i0',
      userItems: ['i1', 'i2'],
      domainItems: pool,
      rng: createRng(1),
    });
    expect([...negatives].sort()).toEqual(range(22).slice(3).sort());
  });

  it('fails clearly when the domain has too few eligible items', () => {
    const pool = new ItemPool('tiny', range(21));
    // 21 items - target - 1 user item = 19 eligible: exactly enough.
    expect(
      sampleNegatives({ target: 'i0', userItems: ['i1'], domainItems: pool, rng: createRng(1) }),
    ).toHaveLength(19);
    const run = () =>
      sampleNegatives({ target: 'i0', userItems: ['i1', 'i2'], domainItems: pool, rng: createRng(1) });
    expect(run).toThrow(NotEnoughItemsError);
    expect(run).toThrow('domain "tiny" has only 18 item(s) the user never interacted with');
  });

  it('is uniform over eligible items (chi-square, both strategies)', () => {
    for (const [size, userCount] of [
      [40, 15], // explicit pool
      [200, 10], // rejection sampling
    ]) {
      const pool = new ItemPool('d', range(size));
      const userItems = range(userCount);
      const target = `i${userCount}`;
      const eligible = size - userCount - 1;
      const counts = new Map<string, number>();
      const rng = createRng(size);
      const draws = 2000;
      for (let k = 0; k < draws; k++)
        for (const n of sampleNegatives({ target, userItems, domainItems: pool, count: 5, rng }))
          counts.set(n, (counts.get(n) ?? 0) + 1);
      expect(counts.size).toBe(eligible);
      const expected = (draws * 5) / eligible;
      let chi2 = 0;
      for (const c of counts.values()) chi2 += (c - expected) ** 2 / expected;
      // p = 0.001 critical value for ~200 dof is ~268; for 24 dof ~51.
      expect(chi2).toBeLessThan(eligible > 100 ? 268 : 51);
    }
  });

  it('candidates are the target plus the negatives in a seeded order', () => {
    const pool = new ItemPool('d', range(100));
    const a = sampleCandidates({
      target: 'i5',
      userItems: ['i5', 'i6'],
      domainItems: pool,
      rng: createRng(7),
    });
    const b = sampleCandidates({
      target: 'i5',
      userItems: ['i5', 'i6'],
      domainItems: pool,
      rng: createRng(7),
    });
    expect(a).toEqual(b);
    expect(a.candidates).toHaveLength(20);
    expect([...a.candidates].sort()).toEqual(['i5', ...a.negatives].sort());
    // Over seeds the target lands in different positions.
    const positions = new Set<number>();
    for (let s = 0; s < 50; s++)
      positions.add(
        sampleCandidates({
          target: 'i5',
          userItems: [],
          domainItems: pool,
          rng: createRng(s),
        }).candidates.indexOf('i5'),
      );
    expect(positions.size).toBeGreaterThan(5);
  });
});

describe('sampleNegatives with an extra exclusion', () => {
  it('never returns excluded items, in both strategies', () => {
    for (const size of [40, 3000]) {
      const pool = new ItemPool('d', range(size));
      const exclude = (id: string): boolean => Number(id.slice(1)) % 3 === 0; // e.g. same title as the target
      for (let seed = 0; seed < 30; seed++) {
        const negatives = sampleNegatives({
          target: 'i1',
          userItems: ['i2'],
          domainItems: pool,
          rng: createRng(seed),
          exclude,
        });
        expect(negatives).toHaveLength(19);
        for (const n of negatives) expect(exclude(n)).toBe(false);
      }
    }
  });

  it('reports a shortage caused by the exclusion', () => {
    const pool = new ItemPool('big', range(5000));
    const run = () =>
      sampleNegatives({
        target: 'i1',
        userItems: [],
        domainItems: pool,
        rng: createRng(1),
        exclude: (id) => id !== 'i7',
      });
    expect(run).toThrow('domain "big" has only 1 item(s)');
  });
});
