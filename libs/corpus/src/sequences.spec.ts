import { compareInteractions, type Interaction } from './interaction';
import { createRng, randomInt, shuffleInPlace } from './rng';
import { DomainSequenceBuilder, MixedSequenceBuilder } from './sequences';

function ev(
  eventId: string,
  userId: string,
  itemId: string,
  domain: string,
  tsMs: number,
  seq = 0,
): Interaction {
  return { eventId, userId, itemId, domain, tsMs, seq };
}
const ids = (items: readonly Interaction[]): string[] => items.map((i) => i.eventId);

describe('compareInteractions', () => {
  it('orders by timestamp, then source position, then event id', () => {
    const events = [
      ev('e9', 'u', 'a', 'd', 200, 0),
      ev('e2', 'u', 'b', 'd', 100, 7),
      ev('e3', 'u', 'c', 'd', 100, 3),
      ev('e5', 'u', 'd', 'd', 100, 3),
      ev('e4', 'u', 'e', 'd', 100, 3),
      ev('e1', 'u', 'f', 'd', 50, 99),
    ];
    expect(ids([...events].sort(compareInteractions))).toEqual(['e1', 'e3', 'e4', 'e5', 'e2', 'e9']);
  });

  it('compares event ids by code unit, not locale ("B" < "a")', () => {
    expect(compareInteractions(ev('a', 'u', 'x', 'd', 1), ev('B', 'u', 'y', 'd', 1))).toBeGreaterThan(0);
  });
});

describe('DomainSequenceBuilder', () => {
  it('keeps one ordered sequence per (user, domain) whatever the arrival order', () => {
    const b = new DomainSequenceBuilder();
    b.add([
      ev('e3', 'u1', 'i3', 'books', 300),
      ev('e1', 'u1', 'i1', 'books', 100),
      ev('e2', 'u1', 'g1', 'games', 200),
      ev('e4', 'u2', 'i1', 'books', 100),
      ev('e5', 'u1', 'i2', 'books', 200),
    ]);
    expect(ids(b.sequence('u1', 'books').items)).toEqual(['e1', 'e5', 'e3']);
    expect(ids(b.sequence('u1', 'games').items)).toEqual(['e2']);
    expect([...b.sequences()].map((s) => `${s.userId}/${s.domain}`)).toEqual([
      'u1/books',
      'u1/games',
      'u2/books',
    ]);
  });

  it('drops exact duplicates (same user, item, timestamp) keeping the earliest-ordered copy', () => {
    const b = new DomainSequenceBuilder();
    const first = b.add([ev('e7', 'u', 'a', 'd', 100, 5), ev('e8', 'u', 'b', 'd', 100, 3)]);
    expect(first).toEqual({ added: 2, duplicates: 0 });
    expect(ids(b.sequence('u', 'd').items)).toEqual(['e8', 'e7']);
    // A copy of item a with an earlier source position replaces e7 and moves before e8.
    const second = b.add([
      ev('e1', 'u', 'a', 'd', 100, 1),
      ev('e9', 'u', 'a', 'd', 100, 9),
      ev('e8', 'u', 'b', 'd', 100, 3),
    ]);
    expect(second).toEqual({ added: 1, duplicates: 2 });
    expect(ids(b.sequence('u', 'd').items)).toEqual(['e1', 'e8']);
    // Same item at another time is a repeat purchase, not a duplicate.
    b.add([ev('e10', 'u', 'a', 'd', 101)]);
    expect(ids(b.sequence('u', 'd').items)).toEqual(['e1', 'e8', 'e10']);
  });

  it('reports the sequences changed since the last drain', () => {
    const b = new DomainSequenceBuilder();
    b.add([ev('e1', 'u1', 'a', 'd', 1), ev('e2', 'u2', 'a', 'd', 1)]);
    expect(b.drainChanged().map((s) => s.userId)).toEqual(['u1', 'u2']);
    b.add([ev('e3', 'u2', 'b', 'd', 2), ev('e1', 'u1', 'a', 'd', 1)]);
    expect(b.drainChanged().map((s) => s.userId)).toEqual(['u2']);
    expect(b.drainChanged()).toEqual([]);
  });
});

describe('MixedSequenceBuilder', () => {
  it('interleaves domains exactly by time, with the tie rule across domains', () => {
    const b = new MixedSequenceBuilder();
    b.add([
      ev('b1', 'u', 'x1', 'books', 100),
      ev('b2', 'u', 'x2', 'books', 400),
      ev('g1', 'u', 'y1', 'games', 200),
      ev('g2', 'u', 'y2', 'games', 400, 2),
      ev('t1', 'u', 'z1', 'toys', 300),
      ev('t2', 'u', 'z2', 'toys', 400, 1),
    ]);
    const items = b.sequence('u').items;
    expect(ids(items)).toEqual(['b1', 'g1', 't1', 'b2', 't2', 'g2']);
    expect(items.map((i) => i.domain)).toEqual(['books', 'games', 'toys', 'books', 'toys', 'games']);
  });

  it('treats equal item ids in different domains as different items', () => {
    const b = new MixedSequenceBuilder();
    b.add([ev('e1', 'u', 'same', 'books', 100), ev('e2', 'u', 'same', 'games', 100)]);
    expect(b.sequence('u').items).toHaveLength(2);
  });
});

/** A seeded stream with late arrivals, redeliveries and exact duplicates under new event ids. */
function randomStream(seed: number, n: number): Interaction[] {
  const rng = createRng(seed);
  const domains = ['books', 'games', 'toys'];
  const out: Interaction[] = [];
  for (let k = 0; k < n; k++) {
    const roll = randomInt(rng, 0, 9);
    if (roll === 0 && out.length > 0) {
      out.push(out[randomInt(rng, 0, out.length - 1)]); // redelivery
    } else if (roll === 1 && out.length > 0) {
      const dup = out[randomInt(rng, 0, out.length - 1)];
      out.push({ ...dup, eventId: `d${k}`, seq: randomInt(rng, 0, 50) }); // duplicate, new id
    } else {
      out.push(
        ev(
          `e${k}`,
          `u${randomInt(rng, 0, 7)}`,
          `i${randomInt(rng, 0, 15)}`,
          domains[randomInt(rng, 0, 2)],
          randomInt(rng, 0, 30) * 1000, // coarse timestamps force many ties
          randomInt(rng, 0, 50),
        ),
      );
    }
  }
  return out;
}

function snapshotDomain(b: DomainSequenceBuilder): string[][] {
  return [...b.sequences()].map((s) => [s.userId, s.domain, ...ids(s.items)]);
}
function snapshotMixed(b: MixedSequenceBuilder): string[][] {
  return [...b.sequences()].map((s) => [s.userId, ...ids(s.items)]);
}

describe('incremental build equals a full build', () => {
  it.each([1, 2, 3, 4, 5, 6, 7, 8])(
    'seed %i: adding in batches (shuffled) gives the full-build sequences',
    (seed) => {
      const stream = randomStream(seed, 400);
      const fullDomain = new DomainSequenceBuilder();
      const fullMixed = new MixedSequenceBuilder();
      fullDomain.add(stream);
      fullMixed.add(stream);

      const rng = createRng(seed * 31);
      const incDomain = new DomainSequenceBuilder();
      const incMixed = new MixedSequenceBuilder();
      let at = 0;
      while (at < stream.length) {
        const size = randomInt(rng, 1, 60);
        const batch = shuffleInPlace(stream.slice(at, at + size), rng);
        incDomain.add(batch);
        incMixed.add(batch);
        at += size;
        // Reading between batches must not disturb later updates.
        snapshotDomain(incDomain);
      }
      expect(snapshotDomain(incDomain)).toEqual(snapshotDomain(fullDomain));
      expect(snapshotMixed(incMixed)).toEqual(snapshotMixed(fullMixed));

      // And both are the sorted, de-duplicated stream computed directly.
      const byKey = new Map<string, Interaction>();
      for (const e of stream) {
        const key = `${e.userId}|${e.domain}|${e.itemId}|${e.tsMs}`;
        const kept = byKey.get(key);
        if (kept === undefined || compareInteractions(e, kept) < 0) byKey.set(key, e);
      }
      for (const s of fullMixed.sequences()) {
        const direct = [...byKey.values()].filter((e) => e.userId === s.userId).sort(compareInteractions);
        expect(ids(s.items)).toEqual(ids(direct));
      }
    },
  );
});
