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

describe('AdapterManager (hot swap and rollback)', () => {
  it('switches to a promoted adapter after loading it, disposing the old one, and records the switch', async () => {
    const { manager, events } = setup();
    await manager.start(BASE_REF);
    const base = manager.current()!.value;
    const outcome = await manager.promote(ref('a1'));
    expect(outcome).toEqual({ ok: true, adapterId: 'a1', previousAdapterId: 'base', changed: true });
    expect(manager.current()!.ref.adapterId).toBe('a1');
    expect(base.disposed).toBe(true);
    expect(events.map((e) => [e.event, e.adapter_id, e.previous_adapter_id])).toEqual([
      ['switch', 'a1', 'base'],
    ]);
    expect(manager.historyIds()).toEqual(['base']);
  });

  it('refuses a corrupted artefact: the old adapter keeps serving and load_failed is recorded with the reason', async () => {
    const { manager, events } = setup({ corrupted: new Set(['bad']) });
    await manager.start(BASE_REF);
    await manager.promote(ref('a1'));
    const serving = manager.current()!.value;
    const outcome = await manager.promote(ref('bad'));
    expect(outcome.ok).toBe(false);
    expect(manager.current()!.value).toBe(serving);
    expect(serving.disposed).toBe(false);
    const failed = events.at(-1)!;
    expect(failed.event).toBe('load_failed');
    expect(failed.adapter_id).toBe('bad');
    expect(failed.previous_adapter_id).toBe('a1');
    expect(failed.detail).toMatch(/corrupted/);
    expect(manager.historyIds()).toEqual(['base']);
  });

  it('rolls back to the previous adapter, then further back, then refuses when the history is empty', async () => {
    const { manager, events } = setup();
    await manager.start(BASE_REF);
    await manager.promote(ref('a1'));
    await manager.promote(ref('a2'));
    expect(manager.historyIds()).toEqual(['a1', 'base']);
    expect(await manager.rollback()).toMatchObject({ ok: true, adapterId: 'a1', previousAdapterId: 'a2' });
    expect(manager.current()!.ref.adapterId).toBe('a1');
    expect(await manager.rollback()).toMatchObject({ ok: true, adapterId: 'base' });
    await expect(manager.rollback()).rejects.toThrow(RollbackRefusedError);
    expect(manager.current()!.ref.adapterId).toBe('base');
    expect(events.filter((e) => e.event === 'rollback').map((e) => e.adapter_id)).toEqual(['a1', 'base']);
  });

  it('rolls back to a named adapter: cuts the history back to it, or resolves one not in it', async () => {
    const registry = new Map([['old', ref('old')]]);
    const { manager } = setup({ registry });
    await manager.start(BASE_REF);
    for (const id of ['a1', 'a2', 'a3']) await manager.promote(ref(id));
    expect(await manager.rollback('a1')).toMatchObject({
      ok: true,
      adapterId: 'a1',
      previousAdapterId: 'a3',
    });
    expect(manager.historyIds()).toEqual(['base']);
    expect(await manager.rollback('old')).toMatchObject({ ok: true, adapterId: 'old' });
    expect(manager.historyIds()).toEqual(['base']);
    await expect(manager.rollback('nope')).rejects.toThrow(/unknown adapter "nope"/);
    expect(manager.current()!.ref.adapterId).toBe('old');
  });

  it('keeps serving when a rollback target fails to load', async () => {
    const { manager, events, corrupted } = setup();
    await manager.start(BASE_REF);
    await manager.promote(ref('a1'));
    await manager.promote(ref('a2'));
    corrupted.add('a1');
    const outcome = await manager.rollback();
    expect(outcome.ok).toBe(false);
    expect(manager.current()!.ref.adapterId).toBe('a2');
    expect(manager.historyIds()).toEqual(['a1', 'base']);
    expect(events.at(-1)!.event).toBe('load_failed');
  });

  it('ignores a repeated promotion of the serving adapter (Kafka redelivery) and runs operations in order', async () => {
    const { manager, loads, events } = setup();
    await manager.start(BASE_REF);
    const [p1, p2, r] = [manager.promote(ref('a1')), manager.promote(ref('a1')), manager.rollback()];
    expect(await p1).toMatchObject({ changed: true });
    expect(await p2).toMatchObject({ changed: false });
    expect(await r).toMatchObject({ adapterId: 'base' });
    expect(loads).toEqual(['base', 'a1', 'base']);
    expect(events.map((e) => e.event)).toEqual(['switch', 'rollback']);
  });
});
