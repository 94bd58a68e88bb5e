import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalArtefactStore } from '@cprec/artefacts';
import type { AdapterEvent, RoundEvent } from '@cprec/contracts';
import type { AdapterRecord, RoundStateRecord, RoundStepRecord, StoredRoundState } from '@cprec/clickhouse';
import type { RoundJob, RunnerResult } from '../runner/protocol';
import type { RoundExecutor, RoundListener, RoundOutcome, RunningRound } from '../runner/supervisor';
import type { PlannedRound, RoundPlannerPort, RoundStorePort, TrainerEventsPort } from './ports';
import { RoundCoordinator, roundIdFor } from './round-coordinator';
import { RoundPolicy, type RoundPolicyConfig } from './round-policy';

class MemoryStore implements RoundStorePort {
  states: RoundStateRecord[] = [];
  steps: RoundStepRecord[] = [];
  adapters: AdapterRecord[] = [];
  insertRoundState = jest.fn(async (r: RoundStateRecord) => void this.states.push(r));
  insertRoundSteps = jest.fn(async (r: readonly RoundStepRecord[]) => void this.steps.push(...r));
  insertAdapter = jest.fn(async (r: AdapterRecord) => void this.adapters.push(r));
  listRounds = jest.fn(async (): Promise<StoredRoundState[]> => {
    const latest = new Map<string, RoundStateRecord>();
    for (const s of this.states) latest.set(s.round_id, s);
    return [...latest.values()].map((s) => ({
      ...s,
      target_domains: [...s.target_domains],
      version: s.version ?? s.updated_ms,
    }));
  });
  statesOf(id: string) {
    return this.states.filter((s) => s.round_id === id).map((s) => s.state);
  }
}

/** A fake runner: the test drives phases, steps and the outcome. */
class FakeExecutor implements RoundExecutor {
  started: Array<{
    job: RoundJob;
    listener: RoundListener;
    finish: (o: RoundOutcome) => void;
    stop: jest.Mock;
  }> = [];
  start(job: RoundJob, listener: RoundListener): RunningRound {
    let finish!: (o: RoundOutcome) => void;
    const outcome = new Promise<RoundOutcome>((r) => (finish = r));
    const stop = jest.fn(() => finish({ kind: 'stopped' }));
    this.started.push({ job, listener, finish, stop });
    return { outcome, stop, abandon: stop, pid: 42 };
  }
}

let dir: string;
let now: number;
let store: MemoryStore;
let events: { rounds: RoundEvent[]; adapters: AdapterEvent[] };
let executor: FakeExecutor;
let artefacts: LocalArtefactStore;
let coordinator: RoundCoordinator;
let policy: RoundPolicy;
const metrics = { roundState: jest.fn(), steps: jest.fn(), runnerCrash: jest.fn() };

function planner(): RoundPlannerPort {
  const plans = new Map<string, PlannedRound>();
  let previousTrunk: string | null = null;
  return {
    plan: async (roundId, targetDomains) => {
      const roundDir = join(dir, 'rounds', roundId);
      const p: PlannedRound = {
        job: {
          roundId,
          roundDir,
          previousTrunkDir: previousTrunk,
          sinceWatermark: 0,
          watermark: 500,
          model: { kind: 'tiny-random', dir: '/m', baseModelId: 'tiny-random', sha256: 'b'.repeat(64) },
          backend: 'cpu',
          cpt: {} as RoundJob['cpt'],
          data: { kind: 'synthetic', domainSamples: 1, mixedSamples: 1, seed: 1 },
          targetDomains: [...targetDomains],
        },
        previousTrunkId: previousTrunk ? 'trunks/prev' : null,
        baseModel: 'tiny-random',
      };
      previousTrunk = join(roundDir, 'trunk');
      plans.set(roundId, p);
      return p;
    },
    resume: async (roundId) => plans.get(roundId) ?? null,
  };
}

function fakeResult(job: RoundJob): RunnerResult {
  for (const sub of ['trunk', 'adapter']) {
    mkdirSync(join(job.roundDir, sub), { recursive: true });
    writeFileSync(join(job.roundDir, sub, 'adapter.safetensors'), `${job.roundId}-${sub}`);
  }
  return {
    trunkDir: join(job.roundDir, 'trunk'),
    trunkGlobalStep: 10,
    adapters: [{ kind: 'cpt', dir: join(job.roundDir, 'adapter'), targetDomains: [] }],
    stableSteps: 8,
    annealSteps: 2,
    skippedSamples: 0,
    resumedFrom: null,
    fineTuningNote: null,
  };
}

const flush = () => new Promise((r) => setImmediate(r));
async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !check(); i++) await new Promise((r) => setTimeout(r, 5));
}

function build(
  policyConfig: RoundPolicyConfig = { intervalMs: 0, minNewInteractions: 0 },
  plannerPort = planner(),
  classify?: (err: unknown) => 'permanent' | 'unavailable' | 'transient',
  mayWrite?: () => boolean,
) {
  policy = new RoundPolicy(policyConfig);
  coordinator = new RoundCoordinator(
    store,
    {
      roundEvent: async (e) => void events.rounds.push(e),
      adapterEvent: async (e) => void events.adapters.push(e),
    } satisfies TrainerEventsPort,
    plannerPort,
    executor,
    artefacts,
    policy,
    metrics,
    {
      defaultTargetDomains: [],
      stepFlushMs: 1000,
      writeRetry: { attempts: 3, baseDelayMs: 1, maxDelayMs: 2 },
      ...(classify ? { classify } : {}),
      ...(mayWrite ? { mayWrite } : {}),
    },
    { now: () => now },
  );
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'cprec-coord-'));
  now = 1_700_000_000_000;
  store = new MemoryStore();
  events = { rounds: [], adapters: [] };
  executor = new FakeExecutor();
  artefacts = new LocalArtefactStore(join(dir, 'artefacts'));
  build();
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const step = (phase: 'warmup' | 'stable' | 'annealing', n: number) => ({
  phase,
  step: n - 1,
  roundStep: n,
  roundSteps: 10,
  loss: 5 - n / 10,
  lr: 1e-3,
  tokens: 100,
});

describe('RoundCoordinator', () => {
  it('lease lost mid-round: the runner is abandoned (no stop), nothing more is written, the round stays resumable', async () => {
    let leased = true;
    build(undefined, undefined, undefined, () => leased);
    const id = await coordinator.trigger('cmd-lease', 'alice', 'manual');
    await flush();
    const run = executor.started[0]!;
    run.listener.onPhase('stable', 10);
    run.listener.onStep(step('stable', 1));
    await until(() => store.statesOf(id).length >= 3);
    const written = store.states.length;
    const stepsWritten = store.steps.length;

    leased = false;
    run.listener.onStep(step('stable', 2));
    now += 2_000;
    run.listener.onStep(step('stable', 3));
    coordinator.abandon();
    expect(run.stop).toHaveBeenCalledTimes(1); // abandon() is the fake's stop: called once, by abandon
    await until(() => coordinator.status().current === null);
    await flush();
    expect(coordinator.status().current).toBeNull();
    // Neither the steps after the loss nor a 'cancelled' state reached storage or Kafka.
    expect(store.states).toHaveLength(written);
    expect(store.steps).toHaveLength(stepsWritten);
    expect(store.statesOf(id).at(-1)).toBe('stable');
    expect(events.rounds.map((e) => e.state)).not.toContain('cancelled');
    expect(coordinator.status().lastError).toMatch(/not the active trainer/);
  });

  it('a replica that does not hold the lease persists nothing for a trigger', async () => {
    build(undefined, undefined, undefined, () => false);
    await coordinator.trigger('cmd-standby', 'alice', 'manual');
    await flush();
    expect(store.states).toEqual([]);
    expect(events.rounds).toEqual([]);
  });

  it('takes a round through queued → warmup → stable → annealing → published, with artefacts, adapter rows and events', async () => {
    const id = await coordinator.trigger('cmd-1', 'alice', 'manual');
    expect(id).toBe(roundIdFor('cmd-1'));
    await flush();
    const run = executor.started[0]!;
    run.listener.onPhase('warmup', 10);
    run.listener.onStep(step('warmup', 1));
    now += 500;
    run.listener.onStep(step('stable', 2)); // not yet a second since the last flush
    now += 1000;
    run.listener.onStep(step('stable', 3));
    run.listener.onPhase('annealing', 2);
    run.finish({ kind: 'done', result: fakeResult(run.job) });
    await coordinator.idle();

    // State changes and one progress row per step batch (the first step flushes at once).
    expect(store.statesOf(id)).toEqual([
      'queued',
      'warmup',
      'warmup',
      'stable',
      'stable',
      'annealing',
      'published',
    ]);
    const versions = store.states.map((s) => s.version!);
    expect(versions).toEqual([...versions].sort((a, b) => a - b));
    expect(new Set(versions).size).toBe(versions.length);
    // Batched: step 1 (first flush), then steps 2–3 once a second had passed.
    expect(store.insertRoundSteps.mock.calls.map(([batch]) => batch.map((s) => s.step))).toEqual([
      [0],
      [1, 2],
    ]);
    expect(events.rounds.map((e) => e.state)).toEqual(store.statesOf(id));

    const [adapter] = store.adapters;
    const record = await artefacts.verify(`adapters/${id}/cpt`);
    expect(adapter).toMatchObject({
      adapter_id: `${id}-cpt`,
      adapter_kind: 'cpt',
      uri: record.uri,
      sha256: record.sha256,
    });
    expect(events.adapters).toEqual([
      expect.objectContaining({
        kind: 'published',
        adapter_id: `${id}-cpt`,
        sha256: record.sha256,
        lineage: {
          base_model: 'tiny-random',
          base_model_sha256: 'b'.repeat(64),
          round_id: id,
          trunk_id: `trunks/${id}`,
          cpt_adapter_id: null,
          data_watermark: 500,
        },
      }),
    ]);
    expect((await artefacts.stat(`trunks/${id}`))!.metadata).toMatchObject({
      watermark: 500,
      global_step: 10,
      parent_trunk_id: null,
    });
  });

  it('retries failed writes in order until the store is back, however long it is down', async () => {
    // The store is down for more attempts than the shutdown bound: the queued row still arrives,
    // and the rows behind it keep their order.
    let failures = 7;
    const insert = store.insertRoundState.getMockImplementation()!;
    store.insertRoundState.mockImplementation(async (r) => {
      if (failures-- > 0) throw new Error('ClickHouse unavailable');
      return insert(r);
    });
    const id = await coordinator.trigger('cmd-r', 'alice', 'manual');
    await flush();
    executor.started[0]!.listener.onPhase('warmup', 10);
    await until(() => store.statesOf(id).length >= 2);
    expect(store.statesOf(id)).toEqual(['queued', 'warmup']);
    expect(coordinator.status().lastError).toBeNull();
    expect(events.rounds.map((e) => e.state)).toEqual(['queued', 'warmup']);
  });

  it('publishes a trained round once ClickHouse is back instead of failing it', async () => {
    build(undefined, planner(), (err) =>
      /ECONNREFUSED/.test((err as Error).message) ? 'unavailable' : 'transient',
    );
    let failures = 3;
    const insert = store.insertAdapter.getMockImplementation()!;
    store.insertAdapter.mockImplementation(async (r) => {
      if (failures-- > 0) throw new Error('connect ECONNREFUSED 127.0.0.1:18123');
      return insert(r);
    });
    const id = await coordinator.trigger('cmd-o', 'alice', 'manual');
    await flush();
    const run = executor.started[0]!;
    run.listener.onPhase('annealing', 2);
    run.finish({ kind: 'done', result: fakeResult(run.job) });
    await until(() => store.statesOf(id).includes('published'));
    await coordinator.idle();
    expect(store.statesOf(id).at(-1)).toBe('published');
    expect(store.statesOf(id)).not.toContain('failed');
    expect(store.adapters).toHaveLength(1);
    expect(events.adapters.map((e) => e.kind)).toEqual(['published']);
  });

  it('plans a round once ClickHouse is back instead of failing it', async () => {
    const base = planner();
    let failures = 2;
    const flaky: RoundPlannerPort = {
      resume: base.resume,
      plan: async (roundId, targetDomains) => {
        if (failures-- > 0) throw new Error('connect ECONNREFUSED 127.0.0.1:18123');
        return base.plan(roundId, targetDomains);
      },
    };
    build(undefined, flaky, (err) =>
      /ECONNREFUSED/.test((err as Error).message) ? 'unavailable' : 'transient',
    );
    const id = await coordinator.trigger('cmd-pl', 'alice', 'manual');
    await until(() => executor.started.length === 1);
    expect(executor.started).toHaveLength(1);
    expect(store.statesOf(id)).not.toContain('failed');
    expect(store.states.map((r) => r.message)).toContainEqual(
      expect.stringMatching(/^planning waits for an unreachable dependency \(attempt 2\)/),
    );
  });

  it('fails a trained round whose publishing fails for another reason', async () => {
    build(undefined, planner(), () => 'transient');
    store.insertAdapter.mockImplementationOnce(async () => {
      throw new Error('unexpected');
    });
    const id = await coordinator.trigger('cmd-f', 'alice', 'manual');
    await flush();
    const run = executor.started[0]!;
    run.listener.onPhase('annealing', 2);
    run.finish({ kind: 'done', result: fakeResult(run.job) });
    await until(() => store.statesOf(id).includes('failed'));
    expect(store.statesOf(id).at(-1)).toBe('failed');
  });

  it('gives up a write storage refuses for what it holds, explicitly (reported), and goes on', async () => {
    build(undefined, planner(), (err) =>
      /Code: 25/.test((err as Error).message) ? 'permanent' : 'transient',
    );
    const id = await coordinator.trigger('cmd-p', 'alice', 'manual');
    await flush();
    store.insertRoundState.mockImplementationOnce(async () => {
      throw new Error('Code: 25, e.displayText() = DB::Exception: Cannot parse escape sequence');
    });
    executor.started[0]!.listener.onPhase('warmup', 10);
    await until(() => (coordinator.status().lastError ?? '').includes('refused'));
    expect(coordinator.status().lastError).toMatch(/^write refused by storage, not retried: Code: 25/);
    executor.started[0]!.listener.onPhase('stable', 10);
    await until(() => store.statesOf(id).includes('stable'));
    expect(store.statesOf(id)).toEqual(['queued', 'stable']);
  });

  it('runs one round at a time, ignores a re-delivered trigger, and cancels queued and running rounds', async () => {
    const a = await coordinator.trigger('a', 'op', '');
    const b = await coordinator.trigger('b', 'op', '');
    const c = await coordinator.trigger('c', 'op', '');
    expect(await coordinator.trigger('a', 'op', '')).toBe(a);
    await flush();
    expect(executor.started).toHaveLength(1);
    expect(await coordinator.cancel(b, 'op')).toBe(true);
    expect(store.statesOf(b)).toEqual(['queued', 'cancelled']);

    executor.started[0]!.listener.onPhase('stable', 4);
    await coordinator.cancel(a, 'op');
    expect(executor.started[0]!.stop).toHaveBeenCalled();
    await until(() => executor.started.length === 2);
    expect(store.statesOf(a)).toEqual(['queued', 'stable', 'cancelled']);
    // c runs next, and a cancelled round cannot be cancelled again.
    expect(executor.started.map((s) => s.job.roundId)).toEqual([a, c]);
    expect(await coordinator.cancel(a, 'op')).toBe(false);
    executor.started[1]!.finish({
      kind: 'failed',
      reason: 'runner crashed 3 times; last: killed by SIGKILL',
    });
    await coordinator.idle();
    expect(store.statesOf(c)).toEqual(['queued', 'failed']);
    expect(store.states.at(-1)!.message).toMatch(/crashed 3 times/);
  });

  it('on restart resumes a round left mid-training with its saved plan before queued ones', async () => {
    const plannerPort = planner();
    build(undefined, plannerPort);
    const a = await coordinator.trigger('a', 'op', '');
    const b = await coordinator.trigger('b', 'op', '');
    await flush();
    executor.started[0]!.listener.onPhase('stable', 4);
    await flush();
    // The actor dies here. A new one over the same tables and plans:
    executor = new FakeExecutor();
    build(undefined, plannerPort);
    await coordinator.recover();
    await flush();
    expect(executor.started.map((s) => s.job.roundId)).toEqual([a]);
    expect(coordinator.stateOf(a)).toBe('stable');
    executor.started[0]!.finish({ kind: 'done', result: fakeResult(executor.started[0]!.job) });
    await until(() => executor.started.length === 2);
    expect(store.statesOf(a).at(-1)).toBe('published');
    expect(executor.started.map((s) => s.job.roundId)).toEqual([a, b]);
  });

  it('starts a round by policy after K new interactions, once', async () => {
    build({ intervalMs: 0, minNewInteractions: 10 });
    const stats = (watermark: number, n: number) => ({
      watermark,
      previous_watermark: watermark - 1,
      domains: [{ domain: 'games', new_interactions: n, new_users: 1, total_interactions: 100 }],
      ts: now,
    });
    coordinator.observeCorpusStats(stats(100, 6));
    expect(await coordinator.tick()).toBeNull();
    coordinator.observeCorpusStats(stats(100, 6)); // re-delivered: not counted twice
    expect(await coordinator.tick()).toBeNull();
    coordinator.observeCorpusStats(stats(200, 4));
    const id = await coordinator.tick();
    expect(id).not.toBeNull();
    expect(store.states[0]).toMatchObject({
      requested_by: 'policy',
      message: expect.stringMatching(/10 new interactions/),
    });
    expect(await coordinator.tick()).toBeNull(); // busy
  });
});

describe('RoundCoordinator stream-time policy', () => {
  it('starts a round after S of stream time, then waits for S more', async () => {
    const DAY = 86_400_000;
    build({ intervalMs: 0, minNewInteractions: 0, streamIntervalMs: 7 * DAY });
    expect(coordinator.watchesStreamTime).toBe(true);
    const t0 = Date.UTC(2013, 5, 1);
    coordinator.observeStreamTime(t0);
    expect(await coordinator.tick()).toBeNull();
    coordinator.observeStreamTime(t0 + 7 * DAY);
    const first = await coordinator.tick();
    expect(first).not.toBeNull();
    expect(store.states[0]).toMatchObject({
      requested_by: 'policy',
      message: expect.stringMatching(/7 days of stream time since the last round/),
    });
    await until(() => executor.started.length === 1);
    executor.started[0]!.finish({ kind: 'failed', reason: 'not the point here' });
    await coordinator.idle();
    expect(coordinator.status().current).toBeNull();
    coordinator.observeStreamTime(t0 + 10 * DAY);
    expect(await coordinator.tick()).toBeNull(); // 3 days since round 1 started
    coordinator.observeStreamTime(t0 + 14 * DAY);
    expect(await coordinator.tick()).not.toBeNull();
  });
});

describe('RoundPolicy', () => {
  it('starts every T ms counted from the first check or the last round, and never with both rules off', () => {
    const p = new RoundPolicy({ intervalMs: 60_000, minNewInteractions: 0 });
    expect(p.due(1_000)).toBeNull();
    expect(p.due(60_999)).toBeNull();
    expect(p.due(61_000)).toMatch(/60 s since the last round/);
    p.roundStarted(61_000, 0);
    expect(p.due(100_000)).toBeNull();
    expect(new RoundPolicy({ intervalMs: 0, minNewInteractions: 0 }).due(1e12)).toBeNull();
  });

  it('starts after S of stream time since the last round, counted from the first observation', () => {
    const DAY = 86_400_000;
    const p = new RoundPolicy({ intervalMs: 0, minNewInteractions: 0, streamIntervalMs: 30 * DAY });
    expect(p.watchesStreamTime).toBe(true);
    expect(p.due(0)).toBeNull(); // no stream time seen yet
    const t0 = Date.UTC(2013, 0, 1);
    p.observeStreamTime(t0);
    p.observeStreamTime(t0 + 29 * DAY);
    expect(p.due(0)).toBeNull();
    p.observeStreamTime(t0 + 10 * DAY); // a late event does not move the clock back
    p.observeStreamTime(t0 + 30 * DAY);
    expect(p.due(0)).toBe(
      '30 days of stream time since the last round (interval 30 days, stream at 2013-01-31)',
    );
    p.roundStarted(1_000, 0);
    expect(p.due(2_000)).toBeNull();
    expect(p.streamSinceLastStartMs).toBe(0);
    p.observeStreamTime(t0 + 75 * DAY);
    expect(p.due(3_000)).toMatch(/^45 days of stream time/);
    expect(new RoundPolicy({ intervalMs: 0, minNewInteractions: 0 }).watchesStreamTime).toBe(false);
  });

  it('counts only statistics beyond the last round watermark', () => {
    const p = new RoundPolicy({ intervalMs: 0, minNewInteractions: 5 });
    p.roundStarted(0, 300);
    p.observe({
      watermark: 250,
      previous_watermark: 200,
      domains: [{ domain: 'd', new_interactions: 50, new_users: 1, total_interactions: 9 }],
      ts: 1,
    });
    expect(p.pendingInteractions).toBe(0);
    p.observe({
      watermark: 400,
      previous_watermark: 300,
      domains: [{ domain: 'd', new_interactions: 5, new_users: 1, total_interactions: 9 }],
      ts: 1,
    });
    expect(p.due(0)).toMatch(/5 new interactions since watermark 300/);
  });
});
