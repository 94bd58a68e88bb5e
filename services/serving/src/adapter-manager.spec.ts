import {
  AdapterManager,
  BASE_REF,
  RollbackRefusedError,
  type AdapterRef,
  type ServingEvent,
} from './adapter-manager';

/** A loaded "model" that knows whether it was released. */
class FakeModel {
  disposed = false;
  constructor(readonly id: string) {}
  dispose(): void {
    this.disposed = true;
  }
}

const ref = (id: string): AdapterRef => ({
  adapterId: id,
  uri: `file:///store/${id}/@content`,
  sha256: id.padEnd(64, '0'),
});

function setup(opts: { corrupted?: Set<string>; registry?: Map<string, AdapterRef> } = {}) {
  const events: ServingEvent[] = [];
  const loads: string[] = [];
  const corrupted = opts.corrupted ?? new Set<string>();
  let clock = 1_000;
  const manager = new AdapterManager<FakeModel>({
    load: async (r) => {
      loads.push(r.adapterId);
      if (corrupted.has(r.adapterId))
        throw new Error(`artefact "${r.adapterId}" is corrupted and was refused`);
      return new FakeModel(r.adapterId);
    },
    record: async (e) => void events.push(e),
    resolve: async (id) => opts.registry?.get(id) ?? null,
    now: () => clock++,
  });
  return { manager, events, loads, corrupted };
}

const G = 'games';
const B = 'books';

describe('AdapterManager (hot swap and rollback, per domain)', () => {
  it('switches a domain to a promoted adapter after loading it, and records the switch for that domain', async () => {
    const { manager, events } = setup();
    await manager.start(BASE_REF);
    const base = manager.current(G)!.value;
    const outcome = await manager.promote(G, ref('a1'));
    expect(outcome).toEqual({
      ok: true,
      domain: G,
      adapterId: 'a1',
      previousAdapterId: 'base',
      changed: true,
    });
    expect(manager.current(G)!.ref.adapterId).toBe('a1');
    // The base is shared, not replaced: it still answers every other domain.
    expect(base.disposed).toBe(false);
    expect(manager.current(B)!.value).toBe(base);
    expect(events.map((e) => [e.event, e.domain, e.adapter_id, e.previous_adapter_id])).toEqual([
      ['switch', G, 'a1', 'base'],
    ]);
    expect(manager.historyIds(G)).toEqual(['base']);
    expect(manager.historyIds(B)).toEqual([]);
  });

  it('serves one adapter per domain: X for games, Y for books, the base elsewhere, loading the base once', async () => {
    const { manager, loads } = setup();
    await manager.start(BASE_REF);
    await manager.promote(G, ref('x'));
    await manager.promote(B, ref('y'));
    expect(manager.current(G)!.value.id).toBe('x');
    expect(manager.current(B)!.value.id).toBe('y');
    expect(manager.current('toys')!.ref).toBe(BASE_REF);
    expect(manager.domains()).toEqual([B, G]);
    expect(loads).toEqual(['base', 'x', 'y']);
  });

  it('rolls back one domain and leaves the others alone', async () => {
    const { manager, events } = setup();
    await manager.start(BASE_REF);
    await manager.promote(G, ref('x1'));
    await manager.promote(G, ref('x2'));
    await manager.promote(B, ref('y'));
    const y = manager.current(B)!.value;
    const x2 = manager.current(G)!.value;
    expect(await manager.rollback(G)).toMatchObject({
      ok: true,
      domain: G,
      adapterId: 'x1',
      previousAdapterId: 'x2',
    });
    expect(x2.disposed).toBe(true);
    expect(manager.current(B)!.value).toBe(y);
    expect(y.disposed).toBe(false);
    expect(manager.historyIds(B)).toEqual(['base']);
    // Books has a history of its own: its rollback goes to the base, not to a games adapter.
    expect(await manager.rollback(B)).toMatchObject({ ok: true, domain: B, adapterId: 'base' });
    expect(manager.current(B)!.ref).toBe(BASE_REF);
    expect(y.disposed).toBe(true);
    expect(manager.current(G)!.ref.adapterId).toBe('x1');
    await expect(manager.rollback(B)).rejects.toThrow(/nothing to roll back to in domain "books"/);
    expect(events.filter((e) => e.event === 'rollback').map((e) => [e.domain, e.adapter_id])).toEqual([
      [G, 'x1'],
      [B, 'base'],
    ]);
  });

  it('loads an adapter serving two domains once and disposes it when the last domain lets go', async () => {
    const { manager, loads } = setup();
    await manager.start(BASE_REF);
    await manager.promote(G, ref('cpt'));
    await manager.promote(B, ref('cpt'));
    const shared = manager.current(G)!.value;
    expect(manager.current(B)!.value).toBe(shared);
    expect(loads).toEqual(['base', 'cpt']);
    await manager.promote(G, ref('x'));
    expect(shared.disposed).toBe(false);
    await manager.rollback(B, 'base');
    expect(shared.disposed).toBe(true);
  });

  it('refuses a corrupted artefact: the domain keeps its adapter and load_failed is recorded with the reason', async () => {
    const { manager, events } = setup({ corrupted: new Set(['bad']) });
    await manager.start(BASE_REF);
    await manager.promote(G, ref('a1'));
    const serving = manager.current(G)!.value;
    const outcome = await manager.promote(G, ref('bad'));
    expect(outcome.ok).toBe(false);
    expect(manager.current(G)!.value).toBe(serving);
    expect(serving.disposed).toBe(false);
    const failed = events.at(-1)!;
    expect(failed.event).toBe('load_failed');
    expect(failed.domain).toBe(G);
    expect(failed.adapter_id).toBe('bad');
    expect(failed.previous_adapter_id).toBe('a1');
    expect(failed.detail).toMatch(/corrupted/);
    expect(manager.historyIds(G)).toEqual(['base']);
  });

  it('rolls back to the previous adapter, then further back, then refuses when the history is empty', async () => {
    const { manager, events } = setup();
    await manager.start(BASE_REF);
    await manager.promote(G, ref('a1'));
    await manager.promote(G, ref('a2'));
    expect(manager.historyIds(G)).toEqual(['a1', 'base']);
    expect(await manager.rollback(G)).toMatchObject({ ok: true, adapterId: 'a1', previousAdapterId: 'a2' });
    expect(manager.current(G)!.ref.adapterId).toBe('a1');
    expect(await manager.rollback(G)).toMatchObject({ ok: true, adapterId: 'base' });
    await expect(manager.rollback(G)).rejects.toThrow(RollbackRefusedError);
    expect(manager.current(G)!.ref.adapterId).toBe('base');
    expect(events.filter((e) => e.event === 'rollback').map((e) => e.adapter_id)).toEqual(['a1', 'base']);
  });

  it('rolls back to a named adapter: cuts the history back to it, or resolves one not in it', async () => {
    const registry = new Map([['old', ref('old')]]);
    const { manager } = setup({ registry });
    await manager.start(BASE_REF);
    for (const id of ['a1', 'a2', 'a3']) await manager.promote(G, ref(id));
    expect(await manager.rollback(G, 'a1')).toMatchObject({
      ok: true,
      adapterId: 'a1',
      previousAdapterId: 'a3',
    });
    expect(manager.historyIds(G)).toEqual(['base']);
    expect(await manager.rollback(G, 'old')).toMatchObject({ ok: true, adapterId: 'old' });
    expect(manager.historyIds(G)).toEqual(['base']);
    await expect(manager.rollback(G, 'nope')).rejects.toThrow(/unknown adapter "nope"/);
    expect(manager.current(G)!.ref.adapterId).toBe('old');
  });

  it('keeps serving when a rollback target fails to load', async () => {
    const { manager, events, corrupted } = setup();
    await manager.start(BASE_REF);
    await manager.promote(G, ref('a1'));
    await manager.promote(G, ref('a2'));
    corrupted.add('a1');
    const outcome = await manager.rollback(G);
    expect(outcome.ok).toBe(false);
    expect(manager.current(G)!.ref.adapterId).toBe('a2');
    expect(manager.historyIds(G)).toEqual(['a1', 'base']);
    expect(events.at(-1)!.event).toBe('load_failed');
  });

  it('resumes a domain after a restart without recording a switch', async () => {
    const { manager, events } = setup();
    await manager.start(BASE_REF);
    await manager.resume(G, ref('a1'));
    expect(manager.current(G)!.ref.adapterId).toBe('a1');
    expect(events).toEqual([]);
  });

  it('ignores a repeated promotion of the serving adapter (Kafka redelivery) and runs operations in order', async () => {
    const { manager, loads, events } = setup();
    await manager.start(BASE_REF);
    const [p1, p2, r] = [manager.promote(G, ref('a1')), manager.promote(G, ref('a1')), manager.rollback(G)];
    expect(await p1).toMatchObject({ changed: true });
    expect(await p2).toMatchObject({ changed: false });
    expect(await r).toMatchObject({ adapterId: 'base' });
    // The base is not loaded again for the rollback: it is shared.
    expect(loads).toEqual(['base', 'a1']);
    expect(events.map((e) => e.event)).toEqual(['switch', 'rollback']);
  });

  it('disposes every adapter and the base on close', async () => {
    const { manager } = setup();
    await manager.start(BASE_REF);
    const base = manager.baseModel()!.value;
    await manager.promote(G, ref('a1'));
    const a1 = manager.current(G)!.value;
    await manager.close();
    expect([base.disposed, a1.disposed]).toEqual([true, true]);
    expect(manager.current(G)).toBeNull();
  });
});
