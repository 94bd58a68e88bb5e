import { ItemPool, leaveOneOut, type DomainSequence, type SampleItems } from '@cprec/corpus';
import { buildSftData, type ValidationExample } from './sft-data';

const DOMAIN = 'games';
const catalogue = Array.from({ length: 40 }, (_, i) => ({ itemId: `g${i}`, title: `title ${i}` }));

/** User u has `length` distinct items in time order (distinct, so "never trained on" is checkable by id). */
function sequence(u: number, length: number): DomainSequence {
  return {
    userId: `u${u}`,
    domain: DOMAIN,
    items: Array.from({ length }, (_, k) => ({
      eventId: `e${u}-${k}`,
      userId: `u${u}`,
      itemId: `g${(u * 7 + k * 3) % 40}`,
      domain: DOMAIN,
      tsMs: 1_000 + k,
      seq: k,
    })),
  };
}

const sequences = Array.from({ length: 12 }, (_, u) => sequence(u, 4 + (u % 5)));
const splits = sequences.map((s) =>
  leaveOneOut(s, {
    splitId: 'loo-games-e1-s7',
    splitSeed: 7,
    domainItems: new ItemPool(
      DOMAIN,
      catalogue.map((c) => c.itemId),
    ),
  }),
);
const validation: ValidationExample[] = splits.map((s) => s.validation!);
/** Users whose train sequence holds this sample (history immediately followed by the target). */
function ownersOf(trainSequences: string[][], sample: SampleItems, cap: number): number[] {
  const history = sample.history.map((h) => h.itemId);
  return trainSequences.flatMap((seq, u) => {
    const at = seq.indexOf(sample.target.itemId);
    return at > 0 && seq.slice(Math.max(0, at - cap), at).join() === history.join() ? [u] : [];
  });
}

const options = {
  domain: DOMAIN,
  catalogue,
  historyCap: 3,
  negatives: 5,
  maxSamples: 1000,
  maxValidationExamples: 100,
  seed: 3,
};

describe('buildSftData', () => {
  it('trains only on the sequence minus its last two items: no validation or test target is ever a sample item', () => {
    const data = buildSftData(validation, options);
    expect(data.trainSequences).toEqual(sequences.map((s) => s.items.slice(0, -2).map((i) => i.itemId)));
    // Every position j ≥ 1 of every train sequence is a sample when nothing caps them.
    expect(data.train).toHaveLength(data.trainSequences.reduce((n, s) => n + s.length - 1, 0));
    for (const [u, seq] of data.trainSequences.entries()) {
      const held = [splits[u]!.validation!.target, splits[u]!.test!.target];
      expect(seq.some((id) => held.includes(id))).toBe(false);
    }
    for (const sample of data.train) {
      // Each sample is a window of some user's train sequence (history of ≤ 3 items, then the target)…
      const owners = ownersOf(data.trainSequences, sample, 3);
      expect(owners.length).toBeGreaterThan(0);
      // …so that user's held-out items never appear in it.
      for (const u of owners) {
        const own = [splits[u]!.validation!.target, splits[u]!.test!.target];
        expect([sample.target, ...sample.history].some((i) => own.includes(i.itemId))).toBe(false);
      }
    }
  });

  it('draws target + negatives the user never had, with titles, deterministically', () => {
    const a = buildSftData(validation, options);
    const b = buildSftData(validation, options);
    expect(b.train).toEqual(a.train);
    for (const sample of a.train) {
      const ids = sample.candidates.map((c) => c.itemId);
      expect(ids).toHaveLength(6);
      expect(new Set(ids).size).toBe(6);
      expect(ids).toContain(sample.target.itemId);
      const owners = ownersOf(a.trainSequences, sample, 3);
      // A negative is none of the user's items (train sequence and validation target).
      const negativesOfSomeOwner = owners.some((u) => {
        const userItems = new Set([...a.trainSequences[u]!, validation[u]!.target]);
        return ids.every((id) => id === sample.target.itemId || !userItems.has(id));
      });
      expect(negativesOfSomeOwner).toBe(true);
      expect(sample.candidates.every((c) => c.title === `title ${c.itemId.slice(1)}`)).toBe(true);
    }
    const other = buildSftData(validation, { ...options, seed: 4 });
    expect(other.train.map((s) => s.candidates)).not.toEqual(a.train.map((s) => s.candidates));
  });

  it('caps samples with a seeded draw across users and keeps the split validation examples as cases', () => {
    const data = buildSftData(validation, { ...options, maxSamples: 10, maxValidationExamples: 5 });
    expect(data.train).toHaveLength(10);
    const users = new Set(data.train.flatMap((s) => ownersOf(data.trainSequences, s, 3)));
    expect(users.size).toBeGreaterThan(2);
    expect(data.validation).toHaveLength(5);
    expect(data.validation[0]).toMatchObject({
      userId: validation[0]!.userId,
      target: { itemId: validation[0]!.target },
      candidates: validation[0]!.candidates.map((id) => ({ itemId: id, title: `title ${id.slice(1)}` })),
    });
  });

  it('skips targets without a title and negatives titled like the target', () => {
    const titled = catalogue.map((c) =>
      c.itemId === 'g3' ? { ...c, title: '' } : c.itemId === 'g9' ? { ...c, title: 'Title 10' } : c,
    );
    const data = buildSftData(validation, { ...options, catalogue: titled });
    expect(data.train.some((s) => s.target.itemId === 'g3')).toBe(false);
    const g10 = data.train.filter((x) => x.target.itemId === 'g10');
    expect(g10.length).toBeGreaterThan(0);
    for (const s of g10) expect(s.candidates.map((c) => c.itemId)).not.toContain('g9');
  });
});
