import {
  casesFor,
  ManualClock,
  MemoryArtefacts,
  MemoryControlPlane,
  MemoryInteractions,
  MemorySplits,
  RecordedEvents,
  ScriptedRunner,
} from '../testing/in-memory';
import { DriftMonitor } from './drift-monitor';
import { DriftWatch, latestCompleteWindow, windowSplitId, type DriftWatchSettings } from './drift-watch';

const W = 1_000;
const settings: DriftWatchSettings = {
  windowMs: W,
  splitSeed: 3,
  defaultDomains: ['games'],
  maxExamples: 100,
  method: 'likelihood',
  job: { backend: 'cpu', budget: { maxTokens: 128, maxTitleTokens: 8 } },
};

function setup(
  hr1ByWindowEnd: (adapterId: string, t1: number, domain: string) => number,
  refreshOnAlert = true,
  samples = 60,
  watchSettings: DriftWatchSettings = settings,
) {
  const store = new MemoryControlPlane();
  const interactions = new MemoryInteractions();
  const splits = new MemorySplits((_, domain) => casesFor(domain, samples));
  const runner = new ScriptedRunner((adapterId, domain, splitId) =>
    hr1ByWindowEnd(adapterId, Number(splitId.split('-')[3]), domain),
  );
  const events = new RecordedEvents();
  const monitor = new DriftMonitor({ relativeDrop: 0.25, minSamples: 30, refreshOnAlert, cooldownMs: 0 });
  const watch = new DriftWatch(
    store,
    interactions,
    splits,
    new MemoryArtefacts(),
    runner,
    events,
    new ManualClock(),
    monitor,
    watchSettings,
  );
  const promote = (id: string, ts: number, domain = 'games') => {
    store.adapters.set(id, {
      adapter_id: id,
      adapter_kind: 'sft',
      round_id: 'r',
      target_domains: [domain],
      uri: `file:///store/${id}`,
      sha256: 'a'.repeat(64),
      lineage: { base_model: 'tiny-random', base_model_sha256: 'b'.repeat(64) },
      created_ms: ts,
    });
    store.promotions.push({
      adapter_id: id,
      decision: 'promoted',
      reasons: [],
      hr1: { [domain]: 0.5 },
      ts_ms: ts,
    });
  };
  return { store, interactions, splits, runner, events, watch, promote };
}

describe('drift windows', () => {
  it('takes the newest complete aligned window and names its split from domains, bounds and seed', () => {
    expect(latestCompleteWindow(3_500, W)).toEqual({ t0: 2_000, t1: 3_000 });
    expect(latestCompleteWindow(999, W)).toBeNull();
    expect(windowSplitId(['toys', 'games'], 2_000, 3_000, 3)).toBe('win-games.toys-2000-3000-s3');
    const many = Array.from({ length: 20 }, (_, i) => `domain-${i}`);
    const id = windowSplitId(many, 0, 1, 3);
    expect(id.length).toBeLessThanOrEqual(128);
    expect(id).toBe(windowSplitId([...many].reverse(), 0, 1, 3));
  });
});

describe('DriftWatch', () => {
  it('is idle until an adapter is promoted and a complete window exists', async () => {
    const { interactions, watch, promote } = setup(() => 0.5);
    interactions.newest = 5_500;
    expect(await watch.tick()).toEqual({ kind: 'idle', reason: 'no adapter has been promoted yet' });
    promote('a1', 1);
    interactions.newest = 500;
    expect((await watch.tick()).kind).toBe('idle');
  });

  it('records the HR@1 series per window, alerts when it falls below the baseline, and asks for a refresh', async () => {
    // HR@1 0.5 until t = 3000, then 0.2 (a 60 % relative drop).
    const { store, interactions, splits, events, watch, promote } = setup((_, t1) =>
      t1 <= 3_000 ? 0.5 : 0.2,
    );
    promote('a1', 1);
    const ticks = [];
    for (const newest of [2_100, 2_900, 3_400, 4_200]) {
      interactions.newest = newest;
      ticks.push(await watch.tick());
    }
    expect(ticks.map((t) => t.kind)).toEqual(['observed', 'idle', 'observed', 'observed']);
    expect(splits.requested.map((s) => [s.kind, s.windowStartMs, s.windowEndMs, s.splitId])).toEqual([
      ['window', 1_000, 2_000, 'win-games-1000-2000-s3'],
      ['window', 2_000, 3_000, 'win-games-2000-3000-s3'],
      ['window', 3_000, 4_000, 'win-games-3000-4000-s3'],
    ]);
    expect(store.series.map((o) => [o.window_end_ms, o.hr1, o.samples])).toEqual([
      [2_000, 0.5, 60],
      [3_000, 0.5, 60],
      [4_000, 0.2, 60],
    ]);
    expect(store.alerts).toMatchObject([{ adapter_id: 'a1', domain: 'games', hr1: 0.2, baseline_hr1: 0.5 }]);
    expect(store.alerts[0].relative_drop).toBeCloseTo(0.6, 10);
    expect(events.drift.map((e) => e.kind)).toEqual(['observation', 'observation', 'observation', 'alert']);
    expect(events.rounds).toHaveLength(1);
    expect(events.rounds[0]).toMatchObject({
      kind: 'trigger',
      requested_by: 'evaluator:drift',
      target_domains: ['games'],
    });
  });

  it('raises the alert without a refresh round when the policy says so, and never on small windows', async () => {
    const quiet = setup((_, t1) => (t1 <= 2_000 ? 0.5 : 0.1), false);
    quiet.promote('a1', 1);
    for (const newest of [2_000, 3_000]) {
      quiet.interactions.newest = newest;
      await quiet.watch.tick();
    }
    expect(quiet.store.alerts).toHaveLength(1);
    expect(quiet.store.alerts[0].refresh_requested).toBe(false);
    expect(quiet.events.rounds).toHaveLength(0);

    const small = setup((_, t1) => (t1 <= 2_000 ? 0.5 : 0.1), true, 10);
    small.promote('a1', 1);
    for (const newest of [2_000, 3_000]) {
      small.interactions.newest = newest;
      await small.watch.tick();
    }
    expect(small.store.series).toHaveLength(2);
    expect(small.store.alerts).toHaveLength(0);
  });

  it('on a new promotion, resets the baseline and evaluates the current window for the new adapter at once', async () => {
    // The old adapter degrades; the new one is measured at 0.3 and then stays there: no alert for it.
    const { store, interactions, events, watch, promote } = setup((id, t1) =>
      id === 'a1' ? (t1 <= 2_000 ? 0.5 : 0.3) : 0.3,
    );
    promote('a1', 1);
    interactions.newest = 2_000;
    await watch.tick();
    promote('a2', 2);
    const tick = await watch.tick(); // same window, new adapter
    expect(tick).toMatchObject({ kind: 'observed', adapterId: 'a2', windowEndMs: 2_000 });
    interactions.newest = 3_000;
    await watch.tick();
    expect(store.series.map((o) => [o.adapter_id, o.window_end_ms, o.hr1])).toEqual([
      ['a1', 2_000, 0.5],
      ['a2', 2_000, 0.3],
      ['a2', 3_000, 0.3],
    ]);
    expect(store.alerts).toHaveLength(0);
    expect(events.rounds).toHaveLength(0);
  });

  it('after a restart, compares against the baseline recorded for the serving adapter and skips observed windows', async () => {
    const first = setup((_, t1) => (t1 <= 2_000 ? 0.5 : 0.2));
    first.promote('a1', 1);
    first.interactions.newest = 2_000;
    await first.watch.tick();
    // A new DriftWatch (fresh memory) over the same stored series.
    const second = setup((_, t1) => (t1 <= 2_000 ? 0.5 : 0.2));
    second.store.series = first.store.series;
    second.promote('a1', 1);
    second.interactions.newest = 2_000;
    expect((await second.watch.tick()).kind).toBe('idle');
    second.interactions.newest = 3_000;
    await second.watch.tick();
    expect(second.store.alerts).toMatchObject([{ baseline_hr1: 0.5, hr1: 0.2 }]);
  });

  it('watches every domain with the adapter serving it: per-domain adapters, baselines reset per domain', async () => {
    const perDomain = { ...settings, defaultDomains: ['games', 'books'] };
    // games-1 holds 0.5; books-1 falls to 0.2 from window 3000; books-2 (promoted later) holds 0.4.
    const { store, interactions, splits, runner, watch, promote } = setup(
      (id, t1) => (id === 'books-1' ? (t1 <= 2_000 ? 0.5 : 0.2) : id === 'books-2' ? 0.4 : 0.5),
      false,
      60,
      perDomain,
    );
    promote('games-1', 1, 'games');
    promote('books-1', 2, 'books');
    interactions.newest = 2_000;
    const first = await watch.tick();
    expect(first).toMatchObject({ kind: 'observed', windowEndMs: 2_000 });
    expect(first.kind === 'observed' && first.adapterId.split(',').sort()).toEqual(['books-1', 'games-1']);
    // One window split over both domains; one evaluation job per adapter, on its own domain.
    expect(splits.requested.map((r) => r.splitId)).toEqual(['win-books.games-1000-2000-s3']);
    expect(runner.jobs.map((j) => [j.adapters[0]!.adapterId, j.domains.map((d) => d.domain)]).sort()).toEqual(
      [
        ['books-1', ['books']],
        ['games-1', ['games']],
      ],
    );
    interactions.newest = 3_000;
    await watch.tick();
    expect(store.alerts).toMatchObject([
      { adapter_id: 'books-1', domain: 'books', hr1: 0.2, baseline_hr1: 0.5 },
    ]);

    // A new books adapter: only books is evaluated again for the current window.
    promote('books-2', 3, 'books');
    const again = await watch.tick();
    expect(again).toMatchObject({ kind: 'observed', adapterId: 'books-2', windowEndMs: 3_000 });
    expect(again.kind === 'observed' && again.observations.map((o) => o.domain)).toEqual(['books']);
    interactions.newest = 4_000;
    await watch.tick();
    const series = store.series.map((o) => `${o.domain}:${o.adapter_id}@${o.window_end_ms}=${o.hr1}`);
    expect(series.sort()).toEqual(
      [
        'books:books-1@2000=0.5',
        'books:books-1@3000=0.2',
        'books:books-2@3000=0.4',
        'books:books-2@4000=0.4',
        'games:games-1@2000=0.5',
        'games:games-1@3000=0.5',
        'games:games-1@4000=0.5',
      ].sort(),
    );
    expect(store.alerts).toHaveLength(1);
  });

  it('watches the adapter serving each domain per serving_events: a rollback of games changes games only', async () => {
    const perDomain = { ...settings, defaultDomains: ['games', 'books'] };
    const { store, interactions, runner, watch, promote } = setup(() => 0.5, false, 60, perDomain);
    promote('games-1', 1, 'games');
    promote('games-2', 2, 'games');
    promote('books-1', 3, 'books');
    // Serving switched games to games-2, then rolled games back to games-1; books has books-1.
    store.serve('games', 'games-2', 4);
    store.servingEvents.push({
      event: 'rollback',
      domain: 'games',
      adapter_id: 'games-1',
      previous_adapter_id: 'games-2',
      detail: '',
      ts_ms: 5,
    });
    store.serve('books', 'books-1', 6);
    interactions.newest = 2_000;
    const tick = await watch.tick();
    expect(
      tick.kind === 'observed' && tick.observations.map((o) => `${o.domain}:${o.adapterId}`).sort(),
    ).toEqual(['books:books-1', 'games:games-1']);
    // Books rolled back to the base model: nothing to watch there any more, games unchanged.
    store.servingEvents.push({
      event: 'rollback',
      domain: 'books',
      adapter_id: 'base',
      previous_adapter_id: 'books-1',
      detail: '',
      ts_ms: 7,
    });
    interactions.newest = 3_000;
    const next = await watch.tick();
    expect(next.kind === 'observed' && next.observations.map((o) => `${o.domain}:${o.adapterId}`)).toEqual([
      'games:games-1',
    ]);
    expect(runner.jobs.at(-1)!.adapters.map((a) => a.adapterId)).toEqual(['games-1']);
  });
});
