import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import type { Producer } from 'kafkajs';
import {
  ControlPlaneRepository,
  InteractionRepository,
  ItemRepository,
  SequenceStore,
} from '@cprec/clickhouse';
import {
  AdapterEvent,
  AdapterEventSchema,
  RoundCommand,
  RoundEvent,
  RoundEventSchema,
} from '@cprec/contracts';
import { roundIdFor } from '../../services/trainer/src/rounds/round-coordinator';
import { useNamespace } from '../support/harness';
import { eventually, RunningService } from '../support/service-process';
import { requireClusterProfile } from './cluster-infra';

/**
 * Two trainer replicas in one consumer group on the cluster profile (docs/scaling.md, "Leases"):
 * one active, one standby. Real processes, real Kafka group sessions, the real stories260K model
 * (read by path). The active one is SIGKILLed mid-round — the standby must resume the round from
 * its checkpoint, not from step 0, and publish it once; then the new active one is SIGSTOPped (a
 * zombie that is only paused) — its runner must stop by itself before the other replica takes the
 * round over, and once resumed (SIGCONT) it must neither act nor write.
 */
const ns = useNamespace('cluster-trainer');
requireClusterProfile();
const T = ns.topics;
const NOW = 4_000_000_000_000;
const DOMAINS = ['beauty', 'games'];
const WORDS = [
  'red',
  'blue',
  'green',
  'fast',
  'slow',
  'bright',
  'soft',
  'loud',
  'tiny',
  'grand',
  'old',
  'new',
];
const SESSION_MS = 8_000;
const VALIDITY_MS = 4_000;
const env: Record<string, string> = {
  TRAINER_GROUP_ID: ns.group('trainer'),
  TRAINER_MODEL: 'checkpoint',
  TRAINER_BASE_MODEL: '/work/shared/models/stories260K/stories260K.bin',
  TRAINER_BACKEND: 'cpu',
  TRAINER_BATCH_SIZE: '2',
  TRAINER_MAX_STEPS_PER_ROUND: '30',
  TRAINER_CHECKPOINT_EVERY: '3',
  TRAINER_MAX_TOKENS: '160',
  TRAINER_NEGATIVES: '3',
  TRAINER_WARMUP_FRACTION: '0.1',
  TRAINER_ANNEAL_FRACTION: '0.2',
  TRAINER_STEP_DELAY_MS: '300',
  TRAINER_STEP_FLUSH_MS: '300',
  TRAINER_LEASE: 'true',
  TRAINER_LEASE_SESSION_MS: String(SESSION_MS),
  TRAINER_LEASE_HEARTBEAT_MS: '500',
  TRAINER_LEASE_VALIDITY_MS: String(VALIDITY_MS),
};

const roundEvents: RoundEvent[] = [];
const adapterEvents: AdapterEvent[] = [];
let producer: Producer;
const control = () => new ControlPlaneRepository(ns.ch);
const measured: string[] = [];

afterAll(() => console.log(`[cluster] trainer failover:\n${measured.join('\n')}`));

/** Users alternate domains in time, so both domain and mixed samples exist. */
async function addInteractions(offset: number, ingestedAtMs: number): Promise<void> {
  const rows = [];
  for (let u = 0; u < 20; u++)
    for (let k = 0; k < 10; k++) {
      const domain = DOMAINS[k % 2]!;
      rows.push({
        event_id: `e-${u}-${k + offset}`,
        user_id: `u${u}`,
        item_id: `${domain}-${(u + k + offset) % 12}`,
        domain,
        ts_ms: 1_600_000_000_000 + (k + offset) * 60_000 + u,
      });
    }
  await new InteractionRepository(ns.ch).insertBatch(rows, ingestedAtMs);
  await new SequenceStore(ns.ch).rebuild({ safetyMarginMs: 0, nowMs: NOW });
}

async function trigger(commandId: string): Promise<string> {
  const command: RoundCommand = {
    kind: 'trigger',
    command_id: commandId,
    requested_by: 'cluster-test',
    reason: 'failover',
    target_domains: [],
    ts: Date.now(),
  };
  await producer.send({
    topic: T.roundCommands,
    acks: -1,
    messages: [{ key: commandId, value: JSON.stringify(command) }],
  });
  return roundIdFor(commandId);
}

/** The replica's role from /health (`trainer (active)` / `trainer (standby)`), or null if it does not answer. */
async function role(trainer: RunningService): Promise<string | null> {
  try {
    const body = (await (await fetch(`http://127.0.0.1:${trainer.port}/health`)).json()) as {
      checks?: Record<string, string>;
    };
    const key = Object.keys(body.checks ?? {}).find((k) => k.startsWith('trainer'));
    return /\((active|standby)\)/.exec(key ?? '')?.[1] ?? null;
  } catch {
    return null;
  }
}

const waitForRole = (trainer: RunningService, wanted: string, what: string, timeoutMs = 60_000) =>
  eventually(
    () => role(trainer),
    (r) => r === wanted,
    what,
    timeoutMs,
  );

/** Runner processes (children) of a trainer process. */
function runnersOf(pid: number): number[] {
  try {
    return execFileSync('pgrep', ['-P', String(pid)])
      .toString()
      .trim()
      .split('\n')
      .filter(Boolean)
      .map(Number);
  } catch {
    return []; // pgrep exits 1 when there is none
  }
}

const alive = (pid: number) => existsSync(`/proc/${pid}`) && !/State:\s+Z/.test(procStatus(pid));
function procStatus(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return '';
  }
}

const eventsOf = (roundId: string) => roundEvents.filter((e) => e.round_id === roundId);
function stateHistory(roundId: string): string[] {
  return eventsOf(roundId)
    .map((e) => e.state)
    .filter((s, i, all) => i === 0 || all[i - 1] !== s);
}

async function startTrainer(): Promise<RunningService> {
  return ns.startService('trainer', 'TRAINER_PORT', env, { timeoutMs: 180_000 });
}

/**
 * The round finished (published) once, with one set of adapters; with
 * `contiguous`, every step recorded (a paused replica's runner trains on until its lease runs out,
 * and those steps — in the checkpoint the round resumes from — are never recorded: its parent,
 * paused, could not, and woken, must not).
 */
async function expectPublishedOnce(roundId: string, contiguous = true): Promise<number[]> {
  const done = await eventually(
    () => control().getRound(roundId),
    (r) => r !== null && ['published', 'failed', 'cancelled'].includes(r.state),
    `round ${roundId} finished`,
    240_000,
  );
  expect(done?.state).toBe('published');
  await eventually(
    async () => stateHistory(roundId),
    (h) => h.at(-1) === 'published',
    'the published round event',
  );
  expect(eventsOf(roundId).filter((e) => e.state === 'published')).toHaveLength(1);
  expect(stateHistory(roundId)).not.toContain('failed');
  const adapters = await eventually(
    async () => adapterEvents.filter((e) => e.kind === 'published' && e.lineage.round_id === roundId),
    (a) => a.length > 0,
    'the round adapter event',
  );
  expect(adapters.map((a) => a.adapter_id)).toEqual([`${roundId}-cpt`]);
  // One row per step (FINAL: a step redone after a resume replaces its earlier row).
  const steps = await control().listRoundSteps(roundId);
  const missing: number[] = [];
  for (const phase of new Set(steps.map((s) => s.phase))) {
    const ofPhase = steps.filter((s) => s.phase === phase).map((s) => s.step);
    for (let n = ofPhase[0]!; n <= ofPhase.at(-1)!; n++) if (!ofPhase.includes(n)) missing.push(n);
  }
  if (contiguous) expect(missing).toEqual([]);
  return missing;
}

let a: RunningService;
let b: RunningService;

beforeAll(async () => {
  await new ItemRepository(ns.ch).upsertBatch(
    DOMAINS.flatMap((domain) =>
      Array.from({ length: 12 }, (_, i) => ({
        item_id: `${domain}-${i}`,
        domain,
        title: `${WORDS[i]} ${WORDS[(i * 5 + 1) % 12]} ${domain}`,
        attributes: {},
        updated_at_ms: 1_000,
      })),
    ),
  );
  await addInteractions(0, 1_000_000);
  producer = await ns.producer();
  await ns.consume([T.adapters, T.roundEvents], async ({ topic, message }) => {
    const value: unknown = JSON.parse(message.value!.toString());
    if (topic === T.roundEvents) {
      const parsed = RoundEventSchema.safeParse(value);
      if (parsed.success) roundEvents.push(parsed.data);
      return;
    }
    const parsed = AdapterEventSchema.safeParse(value);
    if (parsed.success) adapterEvents.push(parsed.data);
  });
}, 180_000);

describe('trainer failover (active + standby in one consumer group)', () => {
  it('one replica is active, the second waits as standby', async () => {
    a = await startTrainer();
    await waitForRole(a, 'active', 'the first trainer active');
    b = await startTrainer();
    await waitForRole(b, 'standby', 'the second trainer standby');
    // The newcomer's join rebalanced the group: the holder kept the lease.
    await new Promise((r) => setTimeout(r, 2_000));
    expect([await role(a), await role(b)]).toEqual(['active', 'standby']);
  }, 300_000);

  it('SIGKILL of the active trainer mid-round: the standby resumes the round from its checkpoint, once', async () => {
    const started = Date.now();
    const roundId = await trigger(`failover-kill-${ns.run}`);
    const atKill = await eventually(
      () => control().getRound(roundId),
      (r) => r?.state === 'stable' && r.step >= 8,
      'the round past a checkpoint of its stable phase',
      180_000,
    );
    const [runner] = runnersOf(a.child.pid!);
    expect(runner).toBeDefined();
    const killedAt = Date.now();
    await a.kill();
    // The orphaned runner leaves with its parent (IPC disconnect), long before any takeover.
    await eventually(
      async () => alive(runner!),
      (v) => !v,
      'the killed trainer runner gone',
      10_000,
    );
    const runnerGoneAt = Date.now();
    await waitForRole(b, 'active', 'the standby taking over', SESSION_MS + 60_000);
    const takeoverMs = Date.now() - killedAt;
    await expectPublishedOnce(roundId);

    // Resumed from its checkpoint (every 3 steps of batch 2: a data position that is a positive
    // multiple of 6), not restarted from step 0.
    const messages = eventsOf(roundId).map((e) => e.message);
    const resumed = messages.map((m) => /resumed stable at data position (\d+)/.exec(m)).find(Boolean);
    expect({ resumed: Boolean(resumed), messages }).toEqual({ resumed: true, messages });
    const position = Number(resumed![1]);
    expect(position).toBeGreaterThan(0);
    expect(position % 6).toBe(0);
    // A first round starts with warm-up: it happened once, before the kill, never again.
    expect(stateHistory(roundId)).toEqual(['queued', 'warmup', 'stable', 'annealing', 'published']);
    // No two runners at once: the new runner's first report came after the old runner was gone.
    const resumedEvent = eventsOf(roundId).find((e) => /resumed stable/.test(e.message))!;
    expect(resumedEvent.ts).toBeGreaterThan(runnerGoneAt);
    expect(runnersOf(b.child.pid!)).toEqual([]);
    measured.push(
      `SIGKILL at stable step ${atKill!.step}/${atKill!.total_steps}: runner gone ${runnerGoneAt - killedAt} ms later, ` +
        `standby active ${takeoverMs} ms after the kill (session ${SESSION_MS} ms), resumed at data position ${position}, ` +
        `published once (${Math.round((Date.now() - started) / 1000)} s)`,
    );
  }, 400_000);

  it('SIGSTOP of the active trainer mid-round (a zombie): its runner stops itself, the other replica resumes the round, the zombie writes nothing when it wakes', async () => {
    const started = Date.now();
    a = await startTrainer();
    await waitForRole(a, 'standby', 'the restarted trainer standby');
    await addInteractions(10, 2_000_000);
    const roundId = await trigger(`failover-stop-${ns.run}`);
    const atStop = await eventually(
      () => control().getRound(roundId),
      (r) => r?.state === 'stable' && r.step >= 8,
      'round 2 past a checkpoint of its stable phase',
      180_000,
    );
    const [runner] = runnersOf(b.child.pid!);
    expect(runner).toBeDefined();
    const stoppedAt = Date.now();
    process.kill(b.child.pid!, 'SIGSTOP');
    try {
      // The paused trainer cannot renew its runner's lease: the runner stops by its own clock,
      // within the lease's validity (plus a step), before the group can hand the lease on.
      await eventually(
        async () => alive(runner!),
        (v) => !v,
        'the paused trainer runner stopping itself',
        VALIDITY_MS + 10_000,
      );
      const runnerGoneMs = Date.now() - stoppedAt;
      expect(runnerGoneMs).toBeLessThan(SESSION_MS);
      const runnerGoneAt = Date.now();
      await waitForRole(a, 'active', 'the standby taking over from the zombie', SESSION_MS + 60_000);
      const takeoverMs = Date.now() - stoppedAt;
      expect(takeoverMs).toBeGreaterThanOrEqual(runnerGoneMs);
      const resumedEvent = await eventually(
        async () => eventsOf(roundId).find((e) => /resumed stable/.test(e.message) && e.ts > stoppedAt),
        (e) => e !== undefined,
        'round 2 resumed by the new active trainer',
        60_000,
      );
      expect(resumedEvent!.ts).toBeGreaterThan(runnerGoneAt);
      // Wake the zombie while the round still runs on the other replica.
      const wokeAt = Date.now();
      process.kill(b.child.pid!, 'SIGCONT');
      await waitForRole(b, 'standby', 'the woken zombie standby', 30_000);
      const missing = await expectPublishedOnce(roundId, false);
      // Steps missing from round_steps are only those the fenced runner made before the resumed
      // checkpoint (global step = the round's first stable step + data position / batch size).
      const position = Number(/resumed stable at data position (\d+)/.exec(resumedEvent!.message)![1]);
      const firstStable = (await control().listRoundSteps(roundId)).find((s) => s.phase === 'stable')!.step;
      const resumedAt = firstStable + position / 2;
      expect(missing.filter((m) => m >= resumedAt)).toEqual([]);
      // Nothing the zombie had pending reached storage or Kafka: its runner's exit (which it saw
      // after waking) would have been recorded as a crash.
      const messages = eventsOf(roundId).map((e) => e.message);
      expect(messages.filter((m) => /lease expired|crashed/.test(m))).toEqual([]);
      expect(runnersOf(b.child.pid!)).toEqual([]);
      expect(await role(b)).toBe('standby');
      measured.push(
        `SIGSTOP at stable step ${atStop!.step}/${atStop!.total_steps}: its runner stopped itself ${runnerGoneMs} ms later ` +
          `(validity ${VALIDITY_MS} ms; ${missing.length} steps it made before the resumed checkpoint unrecorded), ` +
          `other replica active ${takeoverMs} ms after the stop; zombie woken after ` +
          `${wokeAt - stoppedAt} ms stayed standby, wrote nothing; published once (${Math.round((Date.now() - started) / 1000)} s)`,
      );
    } finally {
      process.kill(b.child.pid!, 'SIGCONT');
    }
  }, 400_000);
});
