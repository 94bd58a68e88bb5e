import type { Producer } from 'kafkajs';
import {
  ControlPlaneRepository,
  InteractionRepository,
  ItemRepository,
  SequenceStore,
  sql,
} from '@cprec/clickhouse';
import { AdapterEventSchema, RoundEventSchema, type AdapterEvent, type RoundEvent } from '@cprec/contracts';
import { roundIdFor } from '../../services/trainer/src/rounds/round-coordinator';
import { useNamespace } from '../support/harness';
import { killClickHouse, killKafka, restartClickHouse, restartKafka } from '../support/infra';
import { eventually, type RunningService } from '../support/service-process';
import { seconds, sleep } from './support';

/**
 * Fault suite, part 3 (issue 15): the servers themselves fail under work. ClickHouse SIGKILLed and
 * kept down for 60 s while ingest consumes a live stream and a round trains; Kafka SIGKILLed and
 * restarted while a round trains and the stream goes on. Afterwards every event sent is stored
 * once, each round is published with its state changes arriving in order and each step once, and
 * the consumers are healthy again.
 */

const ns = useNamespace('faults_outage');
const T = ns.topics;
const NOW = 4_000_000_000_000;
const DOMAINS = ['beauty', 'games'];
/** Stream events' times: fixed per id, so a batch re-sent after a refused send is the same events. */
const STREAM_T0 = Date.now() - 3600_000;
const OUTAGE_MS = Number(process.env.CPREC_FAULTS_OUTAGE_MS ?? 60_000);
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

let producer: Producer;
let ingest: RunningService;
let trainer: RunningService;
const roundEvents: RoundEvent[] = [];
const adapterEvents: AdapterEvent[] = [];
const measured: string[] = [];
const control = () => new ControlPlaneRepository(ns.ch);

/** The training data, written directly (the sequencer's own faults are in kill.test.ts). */
async function addInteractions(offset: number, ingestedAtMs: number): Promise<void> {
  const rows = [];
  for (let u = 0; u < 10; u++)
    for (let k = 0; k < 8; k++) {
      const domain = DOMAINS[k % 2]!;
      rows.push({
        event_id: `train-${u}-${k + offset}`,
        user_id: `u${u}`,
        item_id: `${domain}-${(u + k + offset) % 12}`,
        domain,
        ts_ms: 1_600_000_000_000 + (k + offset) * 60_000 + u,
      });
    }
  await new InteractionRepository(ns.ch).insertBatch(rows, ingestedAtMs);
  await new SequenceStore(ns.ch).rebuild({ safetyMarginMs: 0, nowMs: NOW });
}

/** A live stream into ingest: `perTick` events every 100 ms until stopped; returns the ids sent. */
function stream(prefix: string, perTick = 10) {
  const sent: string[] = [];
  let stopped = false;
  let failures = 0;
  const done = (async () => {
    for (let i = 0; !stopped;) {
      const batch = Array.from({ length: perTick }, () => {
        i += 1;
        return {
          event_id: `${prefix}-${i}`,
          user_id: `s${i % 13}`,
          item_id: `games-${i % 12}`,
          domain: 'games',
          ts: STREAM_T0 + i,
        };
      });
      try {
        await producer.send({
          topic: T.interactions,
          acks: -1,
          messages: batch.map((e) => ({ key: e.user_id, value: JSON.stringify(e) })),
        });
        sent.push(...batch.map((e) => e.event_id));
      } catch {
        // Kafka down: this batch was not accepted (the producer gave up); it is not counted as sent.
        failures += 1;
        i -= perTick;
      }
      await sleep(100);
    }
  })();
  const stop = async () => {
    stopped = true;
    await done;
  };
  // Stopped in tear-down too, should the test fail before it stops the stream.
  ns.onTearDown(stop);
  return { sent, failures: () => failures, stop };
}

const stored = (prefix: string) =>
  ns.ch
    .query<{ rows: string; distinct: string }>(
      sql`SELECT count() AS rows, uniqExact(event_id) AS distinct FROM interactions FINAL WHERE event_id LIKE ${`${prefix}-%`}`,
    )
    .then(([r]) => ({ rows: Number(r?.rows ?? 0), distinct: Number(r?.distinct ?? 0) }));

/** Ends the stream, waits until every event it sent is stored, and checks each is stored once. */
async function stopAndExpectEveryEventStoredOnce(live: ReturnType<typeof stream>, prefix: string) {
  await live.stop();
  const c = await eventually(
    () => stored(prefix),
    (v) => v.distinct >= live.sent.length,
    'every event sent stored',
    120_000,
  );
  expect(c).toEqual({ rows: live.sent.length, distinct: live.sent.length });
  return c;
}

const health = async (service: RunningService) => {
  const res = await fetch(`http://127.0.0.1:${service.port}/health`);
  return { status: res.status, text: await res.text() };
};

function stateHistory(roundId: string): string[] {
  return roundEvents
    .filter((e) => e.round_id === roundId)
    .map((e) => e.state)
    .filter((s, i, all) => i === 0 || all[i - 1] !== s);
}

const trigger = (commandId: string) =>
  producer.send({
    topic: T.roundCommands,
    acks: -1,
    messages: [
      {
        key: commandId,
        value: JSON.stringify({
          kind: 'trigger',
          command_id: commandId,
          requested_by: 'faults',
          reason: 'outage',
          ts: Date.now(),
        }),
      },
    ],
  });

/** Waits for the round to publish, and checks what queries and the event stream say about it. */
async function expectPublished(roundId: string) {
  const done = await eventually(
    () => control().getRound(roundId),
    (r) => r !== null && ['published', 'failed', 'cancelled'].includes(r.state),
    `round ${roundId} to finish`,
    300_000,
  );
  expect({ state: done?.state, message: done?.message }).toEqual({
    state: 'published',
    message: done?.message,
  });
  await eventually(
    async () => stateHistory(roundId),
    (h) => h.at(-1) === 'published',
    'the published round event',
  );
  const history = stateHistory(roundId);
  // Every state change arrived, in order, and nothing failed.
  expect(history).toEqual(
    history.includes('warmup')
      ? ['queued', 'warmup', 'stable', 'annealing', 'published']
      : ['queued', 'stable', 'annealing', 'published'],
  );
  const steps = await control().listRoundSteps(roundId);
  for (const phase of new Set(steps.map((s) => s.phase))) {
    const numbers = steps.filter((s) => s.phase === phase).map((s) => s.step);
    expect({ phase, numbers }).toEqual({ phase, numbers: numbers.map((_, i) => numbers[0]! + i) });
  }
  // On its own topic: it may be read after the round's last state change.
  await eventually(
    async () => adapterEvents.some((e) => e.kind === 'published' && e.lineage.round_id === roundId),
    Boolean,
    `the adapter event of round ${roundId}`,
    60_000,
  );
  return {
    steps: steps.length,
    messages: roundEvents.filter((e) => e.round_id === roundId).map((e) => e.message),
  };
}

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
    } else {
      const parsed = AdapterEventSchema.safeParse(value);
      if (parsed.success) adapterEvents.push(parsed.data);
    }
  });
  const retries = { CPREC_CONSUMER_RETRY_INITIAL_MS: '200', CPREC_CONSUMER_RETRY_MAX_MS: '2000' };
  [ingest, trainer] = await Promise.all([
    ns.startService('ingest', 'INGEST_PORT', {
      ...retries,
      INGEST_GROUP_ID: ns.group('ingest'),
      INGEST_FLUSH_INTERVAL_MS: '200',
      INGEST_RETRY_MAX_MS: '2000',
    }),
    ns.startService('trainer', 'TRAINER_PORT', {
      ...retries,
      TRAINER_GROUP_ID: ns.group('trainer'),
      TRAINER_MODEL: 'tiny-random',
      TRAINER_BACKEND: 'cpu',
      TRAINER_BATCH_SIZE: '2',
      TRAINER_MAX_STEPS_PER_ROUND: '16',
      TRAINER_CHECKPOINT_EVERY: '3',
      TRAINER_MAX_TOKENS: '160',
      TRAINER_NEGATIVES: '3',
      TRAINER_WARMUP_FRACTION: '0.2',
      TRAINER_ANNEAL_FRACTION: '0.3',
      TRAINER_STEP_DELAY_MS: '400',
      TRAINER_OUTAGE_POLL_MS: '1000',
    }),
  ]);
}, 300_000);

afterAll(() => {
  console.log(`outage faults:\n${measured.join('\n')}`);
});

describe('fault suite: Kafka and ClickHouse fail under work', () => {
  it(`ClickHouse down for ${OUTAGE_MS / 1000} s mid-ingest and mid-round: every event stored once, the round resumes and publishes`, async () => {
    const commandId = `outage-ch-${ns.run}`;
    const roundId = roundIdFor(commandId);
    const live = stream('ch');
    await trigger(commandId);
    await eventually(
      () => control().getRound(roundId),
      (r) => r?.state === 'stable' && r.step >= 2,
      'the round training',
      120_000,
    );
    await eventually(
      () => stored('ch'),
      (c) => c.distinct > 0,
      'ingestion under way',
    );
    const start = Date.now();
    await killClickHouse();
    let during = '';
    try {
      // Waiting is visible: ingest's /health says what for.
      const down = await eventually(
        () => health(ingest),
        (h) => h.status === 503 && /waiting for ClickHouse/.test(h.text),
        'ingest /health to report that it waits for ClickHouse',
        30_000,
      );
      during = down.text.trim();
      // The outage's length is the fault being injected, not a condition polled for.
      await sleep(Math.max(0, OUTAGE_MS - (Date.now() - start)));
    } finally {
      restartClickHouse(ns.database);
    }
    const downFor = seconds(start);
    await eventually(
      () => health(ingest),
      (h) => h.status === 200,
      'ingest /health to recover',
      120_000,
    );
    const c = await stopAndExpectEveryEventStoredOnce(live, 'ch');
    const round = await expectPublished(roundId);
    expect((await health(trainer)).status).toBe(200);
    const said = round.messages.filter((m) => /wait|unreachable|unavailable|resum/i.test(m));
    measured.push(
      `ClickHouse SIGKILLed for ${downFor} (round at stable; ${live.sent.length} events streamed, ${live.failures()} batches refused): ` +
        `ingest /health said "${during}", the round ${JSON.stringify([...new Set(said)])}; after: ${c.rows} rows = ${c.distinct} distinct, ` +
        `round published, ${round.steps} steps each once`,
    );
  });

  it('Kafka killed and restarted mid-round: the round finishes, its state changes arrive, ingest consumes again', async () => {
    await addInteractions(8, 2_000_000);
    const commandId = `outage-kafka-${ns.run}`;
    const roundId = roundIdFor(commandId);
    await trigger(commandId);
    await eventually(
      () => control().getRound(roundId),
      (r) => r?.state === 'stable' && r.step >= 2,
      'the round training',
      120_000,
    );
    const live = stream('kafka');
    await eventually(
      () => stored('kafka'),
      (c) => c.distinct > 0,
      'ingestion under way',
    );
    const stepAtKill = (await control().getRound(roundId))!.step;
    const start = Date.now();
    await killKafka();
    try {
      // Down for several of the round's steps (400 ms each) and state changes.
      await sleep(10_000);
    } finally {
      restartKafka(ns.database);
    }
    const downFor = seconds(start);
    const round = await expectPublished(roundId);
    for (const service of [ingest, trainer])
      await eventually(
        () => health(service),
        (h) => h.status === 200,
        `${service.name} /health after the restart`,
        120_000,
      );
    // Events sent after the restart are consumed: the stream goes on until some are stored.
    const sentBefore = live.sent.length;
    await eventually(
      () => stored('kafka'),
      (c) => c.distinct > sentBefore,
      'events sent after the restart stored',
      120_000,
    );
    const c = await stopAndExpectEveryEventStoredOnce(live, 'kafka');
    measured.push(
      `Kafka SIGKILLed at stable step ${stepAtKill}, restarted after ${downFor}: round published with every state change in order, ` +
        `${round.steps} steps each once; ${live.sent.length} events accepted by Kafka (${live.failures()} batches refused while down) = ` +
        `${c.rows} rows = ${c.distinct} distinct`,
    );
  });
});
