import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Producer } from 'kafkajs';
import { digestPath, LocalArtefactStore } from '@cprec/artefacts';
import {
  ClickHouse,
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

/**
 * The trainer actor against real Kafka and ClickHouse, with a tiny random model over the test
 * catalogue: rounds go through their states in ClickHouse, publish verifiable adapters, chain
 * trunks, survive a killed runner (resumed from the checkpoint at the same data position) and
 * can be cancelled. Faults outside the runner — the trainer itself SIGKILLed, ClickHouse down for
 * 60 s, Kafka restarted mid-round — are in test/faults.
 */

const ns = useNamespace('trainer');
const TOPICS = ns.topics;
const home = ns.home;
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

let ch: ClickHouse;
let control: ControlPlaneRepository;
let trainer: RunningService;
let producer: Producer;
const adapterEvents: AdapterEvent[] = [];
const roundEvents: RoundEvent[] = [];

/** Users alternate domains in time, so both domain and mixed samples exist. */
async function addInteractions(users: number, perUser: number, offset: number, ingestedAtMs: number) {
  const repo = new InteractionRepository(ch);
  const rows = [];
  for (let u = 0; u < users; u++)
    for (let k = 0; k < perUser; k++) {
      const domain = DOMAINS[k % 2]!;
      rows.push({
        event_id: `e-${u}-${k + offset}`,
        user_id: `u${u}`,
        item_id: `${domain}-${(u + k + offset) % 12}`,
        domain,
        ts_ms: 1_600_000_000_000 + (k + offset) * 60_000 + u,
      });
    }
  await repo.insertBatch(rows, ingestedAtMs);
  return new SequenceStore(ch).rebuild({ safetyMarginMs: 0, nowMs: NOW });
}

const send = (command: RoundCommand) =>
  producer.send({
    topic: TOPICS.roundCommands,
    messages: [{ key: command.command_id, value: JSON.stringify(command) }],
  });
const trigger = (commandId: string) =>
  send({
    kind: 'trigger',
    command_id: commandId,
    requested_by: 'test',
    reason: 'integration',
    ts: Date.now(),
  });

/**
 * A round's states in order, from its RoundEvents (the `rounds` table keeps only the latest row
 * per round once ClickHouse merges its parts).
 */
function stateHistory(roundId: string): string[] {
  return roundEvents
    .filter((e) => e.round_id === roundId)
    .map((e) => e.state)
    .filter((s, i, all) => i === 0 || all[i - 1] !== s);
}
const messagesOf = (roundId: string) =>
  roundEvents.filter((e) => e.round_id === roundId).map((e) => e.message);

const waitForState = (
  roundId: string,
  accept: (s: string | undefined) => boolean,
  what: string,
  timeoutMs = 180_000,
) =>
  eventually(
    () => control.getRound(roundId),
    (r) => accept(r?.state),
    what,
    timeoutMs,
  );

beforeAll(async () => {
  ch = ns.ch;
  control = new ControlPlaneRepository(ch);
  await new ItemRepository(ch).upsertBatch(
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
  await addInteractions(10, 8, 0, 1_000_000);

  producer = await ns.producer();
  await ns.consume([TOPICS.adapters, TOPICS.roundEvents], async ({ topic, message }) => {
    const value: unknown = JSON.parse(message.value!.toString());
    if (topic === TOPICS.roundEvents) {
      const parsed = RoundEventSchema.safeParse(value);
      if (parsed.success) roundEvents.push(parsed.data);
      return;
    }
    const parsed = AdapterEventSchema.safeParse(value);
    if (parsed.success) adapterEvents.push(parsed.data);
  });

  trainer = await ns.startService('trainer', 'TRAINER_PORT', {
    TRAINER_GROUP_ID: ns.group('trainer'),
    TRAINER_MODEL: 'tiny-random',
    TRAINER_BACKEND: 'cpu',
    TRAINER_BATCH_SIZE: '2',
    TRAINER_MAX_STEPS_PER_ROUND: '10',
    TRAINER_CHECKPOINT_EVERY: '3',
    TRAINER_MAX_TOKENS: '160',
    TRAINER_NEGATIVES: '3',
    TRAINER_WARMUP_FRACTION: '0.2',
    TRAINER_ANNEAL_FRACTION: '0.3',
    TRAINER_ETA_HIGH: '0.01',
    TRAINER_ETA_LOW: '0.0001',
    TRAINER_STEP_DELAY_MS: '400',
    TRAINER_STOP_GRACE_MS: '20000',
  });
});

const artefacts = () => new LocalArtefactStore(join(home, 'artefacts'));

describe('trainer actor', () => {
  const r1 = `it-r1-${Date.now()}`;
  const r2 = `it-r2-${Date.now()}`;
  const r3 = `it-r3-${Date.now()}`;

  it('runs a triggered round through its states and publishes an adapter with a verifiable sha256', async () => {
    const id = roundIdFor(r1);
    await trigger(r1);
    await waitForState(id, (s) => s === 'published', 'round 1 published');
    await eventually(
      async () => stateHistory(id),
      (h) => h.at(-1) === 'published',
      'round 1 published event',
    );
    expect(stateHistory(id)).toEqual(['queued', 'warmup', 'stable', 'annealing', 'published']);
    const steps = await control.listRoundSteps(id);
    expect(steps.length).toBeGreaterThan(0);
    expect(steps[0]).toMatchObject({ phase: 'warmup', step: 0 });
    expect(steps.every((s) => Number.isFinite(s.loss) && s.lr > 0 && s.tokens > 0)).toBe(true);

    const event = await eventually(
      async () => adapterEvents.find((e) => e.kind === 'published' && e.lineage.round_id === id),
      (e) => e !== undefined,
      'AdapterPublished of round 1',
    );
    if (event?.kind !== 'published') throw new Error('no published event');
    // The sha256 is the digest of the directory the URI names, recomputed here from the bytes.
    expect((await digestPath(fileURLToPath(event.uri))).sha256).toBe(event.sha256);
    expect(event.lineage).toMatchObject({
      base_model: 'tiny-random',
      trunk_id: `trunks/${id}`,
      data_watermark: 1_000_000,
    });
    expect(await control.getAdapter(event.adapter_id)).toMatchObject({
      sha256: event.sha256,
      uri: event.uri,
    });
    expect((await artefacts().stat(`trunks/${id}`))!.metadata).toMatchObject({
      parent_trunk_id: null,
      watermark: 1_000_000,
    });
  });

  it('starts round 2 from round 1 trunk and, after its runner is killed mid-phase, resumes from the checkpoint', async () => {
    const first = roundIdFor(r1);
    const id = roundIdFor(r2);
    await addInteractions(10, 4, 8, 2_000_000);
    await trigger(r2);
    // Past the first checkpoint (every 3 steps) of the stable phase, then SIGKILL the runner.
    await eventually(
      () => control.getRound(id),
      (r) => r?.state === 'stable' && r.step >= 4,
      'round 2 past a checkpoint',
    );
    const runner = execFileSync('pgrep', ['-P', String(trainer.child.pid)])
      .toString()
      .trim()
      .split('\n')
      .map(Number);
    expect(runner).toHaveLength(1);
    process.kill(runner[0]!, 'SIGKILL');

    await waitForState(id, (s) => s === 'published', 'round 2 published');
    await eventually(
      async () => stateHistory(id),
      (h) => h.at(-1) === 'published',
      'round 2 published event',
    );
    const messages = messagesOf(id);
    expect(messages.some((m) => /runner attempt 1 crashed \(killed by SIGKILL\)/.test(m))).toBe(true);
    const resumed = messages.map((m) => /resumed stable at data position (\d+)/.exec(m)).find(Boolean);
    expect(resumed).toBeTruthy();
    // Checkpoints every 3 steps of batch 2: the data position is a multiple of 6, > 0.
    const position = Number(resumed![1]);
    expect(position % 6).toBe(0);
    expect(position).toBeGreaterThan(0);

    // Lineage: round 2 continued round 1's trunk (no warm-up; global steps continue).
    const plan = JSON.parse(readFileSync(join(home, 'trainer', 'rounds', id, 'plan.json'), 'utf8'));
    expect(plan.previousTrunkId).toBe(`trunks/${first}`);
    expect(plan.job.sinceWatermark).toBe(1_000_000);
    expect(plan.job.watermark).toBe(2_000_000);
    const firstTrunk = (await artefacts().stat(`trunks/${first}`))!;
    const secondTrunk = (await artefacts().stat(`trunks/${id}`))!;
    expect(secondTrunk.metadata).toMatchObject({ parent_trunk_id: `trunks/${first}`, watermark: 2_000_000 });
    const steps = await control.listRoundSteps(id);
    expect(steps[0]).toMatchObject({ phase: 'stable', step: firstTrunk.metadata.global_step });
    // Each step once, in order, across the crash (round_steps keeps one row per step).
    const stableSteps = steps.filter((s) => s.phase === 'stable').map((s) => s.step);
    expect(stableSteps).toEqual(stableSteps.map((_, i) => stableSteps[0]! + i));
    expect(stateHistory(id)).toEqual(['queued', 'stable', 'annealing', 'published']);
    const event = adapterEvents.find((e) => e.kind === 'published' && e.lineage.round_id === id);
    expect(event?.kind === 'published' && event.lineage.trunk_id).toBe(`trunks/${id}`);
  });

  it('cancels a running round on command', async () => {
    const id = roundIdFor(r3);
    await addInteractions(10, 4, 12, 3_000_000);
    await trigger(r3);
    await waitForState(id, (s) => s === 'stable', 'round 3 training');
    await send({
      kind: 'cancel',
      command_id: `${r3}-cancel`,
      round_id: id,
      requested_by: 'test',
      ts: Date.now(),
    });
    await waitForState(id, (s) => s === 'cancelled', 'round 3 cancelled', 60_000);
    await eventually(
      async () => stateHistory(id),
      (h) => h.at(-1) === 'cancelled',
      'round 3 cancelled event',
    );
    expect(stateHistory(id)).toEqual(['queued', 'stable', 'cancelled']);
    expect(existsSync(join(home, 'artefacts', 'trunks', id))).toBe(false);
    const metrics = await (await fetch(`http://127.0.0.1:${trainer.port}/metrics`)).text();
    expect(metrics).toMatch(/cprec_trainer_rounds_total\{state="cancelled",service="trainer"\} 1/);
    expect(metrics).toMatch(/cprec_trainer_runner_crashes_total\{service="trainer"\} 1/);
  });
});
