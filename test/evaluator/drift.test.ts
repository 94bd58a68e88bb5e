import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Producer } from 'kafkajs';
import { LocalArtefactStore } from '@cprec/artefacts';
import {
  ClickHouse,
  ControlPlaneRepository,
  InteractionRepository,
  ItemRepository,
  SequenceStore,
} from '@cprec/clickhouse';
import { DriftEvent, DriftEventSchema, RoundCommand } from '@cprec/contracts';
import { syntheticDataset, type SyntheticDataset } from '@cprec/datasets';
import { buildReport, rankByScores, type ExampleOutcome } from '@cprec/metrics';
import { DriftMonitor } from '../../services/evaluator/src/drift/drift-monitor';
import { DriftWatch, type DriftTick } from '../../services/evaluator/src/drift/drift-watch';
import { methodMetrics } from '../../services/evaluator/src/evaluation/metrics';
import type {
  EvaluationJob,
  EvaluationJobResult,
  TinyModelFile,
} from '../../services/evaluator/src/evaluation/protocol';
import { TINY_MODEL_FILE } from '../../services/evaluator/src/evaluation/protocol';
import { ArtefactGateway, TINY_MODEL_KEY } from '../../services/evaluator/src/infra/artefact-gateway';
import { ClickHouseGateway } from '../../services/evaluator/src/infra/clickhouse-gateway';
import type { EvaluationRunner, EventsPort } from '../../services/evaluator/src/ports';
import { useNamespace } from '../support/harness';
import { uniqueName } from '../support/infra';
import { eventually } from '../support/service-process';
import { TestSplitSequencer } from './split-sequencer';

/**
 * The drift pipeline of the evaluator (DriftWatch with its real ClickHouse, Kafka and artefact
 * gateways; window splits frozen through the sequencer's mailbox) on the synthetic generator:
 * `games` has preference drift switched on at day 35 (every user's taste rotates by one topic),
 * `books` has none. Interactions arrive window by window and the drift use case ticks after each.
 *
 * The scored model is an oracle of the generator's ground truth before the drift — score(item) =
 * log P(item | user's pre-drift taste) = log taste[topic(item)] + log Zipf(popularity rank) — standing
 * in for "a model trained on pre-drift data". It is the best such model there can be, so the fall
 * of its HR@1 measures the drift itself, and the test runs in seconds instead of training an LM.
 * The LM path of the same use case (evaluation processes, tiny model) is covered by
 * evaluator.test.ts and the unit specs. Honest limit: this test does not show that a *trained LM*
 * degrades under drift, only that the pipeline detects a degrading model.
 */

const ns = useNamespace('drift');
const TOPICS = ns.topics;
const home = ns.home;
const DAY = 86_400_000;
const START = Date.UTC(2023, 0, 1);
const WINDOW = 5 * DAY;
const DRIFT_AT = START + 35 * DAY;
const TOPICS_K = 4;
const ADAPTER = uniqueName('oracle');

const generator = {
  users: 800,
  topics: TOPICS_K,
  itemsPerDomain: 80,
  eventsPerUser: 24,
  domainActivity: 1,
  spanDays: 60,
  startMs: START,
};
const drifting = syntheticDataset({
  ...generator,
  seed: 11,
  domains: ['games'],
  driftAtMs: DRIFT_AT,
  dataset: 'drift-games',
});
const stable = syntheticDataset({
  ...generator,
  seed: 12,
  domains: ['books'],
  driftAtMs: null,
  dataset: 'drift-books',
});
const worldOf: Record<string, SyntheticDataset> = { games: drifting, books: stable };

/** Pre-drift log-probability of an item for a user (taste over topics × Zipf popularity in the topic). */
function oracleScore(domain: string, userId: string, itemId: string): number {
  const world = worldOf[domain];
  const topic = world.truth.itemTopic(domain, itemId);
  if (topic === null) return -Infinity;
  const j = Number(itemId.slice(itemId.lastIndexOf('-') + 1));
  const popularityRank = Math.floor(j / TOPICS_K);
  return Math.log(world.truth.domainTaste(userId, domain, 'before')[topic]) - Math.log(popularityRank + 1);
}

/** The EvaluationRunner port answered by the oracle, with metrics computed by libs/metrics as for the LM. */
class OracleRunner implements EvaluationRunner {
  async run(job: EvaluationJob): Promise<EvaluationJobResult> {
    const evaluations = job.adapters.flatMap((a) =>
      job.domains.map((d) => {
        const outcomes: ExampleOutcome[] = d.cases.map((c) => {
          const scores = c.candidates.map((x) => oracleScore(d.domain, c.userId, x.itemId));
          const target = c.candidates.findIndex((x) => x.itemId === c.target.itemId);
          return {
            domain: d.domain,
            historyLength: c.historyLength,
            firstValid: false,
            generatedRank: null,
            likelihoodRank: rankByScores(scores, target),
          };
        });
        const report = buildReport(outcomes);
        return {
          adapterId: a.adapterId,
          domain: d.domain,
          splitId: d.splitId,
          metrics: methodMetrics(report, d.domain, { likelihood: true, generation: false }),
          report: report.byDomain[d.domain] ?? null,
        };
      }),
    );
    return { jobId: job.jobId, evaluations, elapsedMs: 0 };
  }
}

let ch: ClickHouse;
let control: ControlPlaneRepository;
let producer: Producer;
let sequencer: TestSplitSequencer;
const driftEvents: DriftEvent[] = [];
/**
 * Refresh commands are kept here rather than sent: a trainer of another test run on the shared
 * broker would act on a real trigger. (Sending them is EventsPort wiring, covered by the service.)
 */
const roundCommands: RoundCommand[] = [];

async function loadWorlds(): Promise<
  Array<{ event_id: string; user_id: string; item_id: string; domain: string; ts_ms: number }>
> {
  const items = new ItemRepository(ch);
  const events = [];
  for (const world of [drifting, stable]) {
    const batch = [];
    for await (const i of world.items())
      batch.push({
        item_id: i.item_id,
        domain: i.domain,
        title: i.title ?? '',
        attributes: {},
        updated_at_ms: 1_000,
      });
    await items.upsertBatch(batch);
    for await (const e of world.interactions())
      events.push({
        event_id: e.event_id,
        user_id: e.user_id,
        item_id: e.item_id,
        domain: e.domain,
        ts_ms: e.ts,
      });
  }
  return events.sort((a, b) => a.ts_ms - b.ts_ms);
}

beforeAll(async () => {
  ch = ns.ch;
  control = new ControlPlaneRepository(ch);
  producer = await ns.producer();
  sequencer = new TestSplitSequencer(ns.kafka(), ch, ['games', 'books'], TOPICS, ns.group('split-sequencer'));
  ns.onTearDown(() => sequencer.stop());
  await sequencer.start();
  await ns.consume([TOPICS.drift], async ({ message }) => {
    const parsed = DriftEventSchema.safeParse(JSON.parse(message.value?.toString() ?? 'null'));
    if (parsed.success && parsed.data.adapter_id === ADAPTER) driftEvents.push(parsed.data);
  });
}, 120_000);

it('records a falling HR@1 series and raises an alert (with a refresh request) on the drifting domain only', async () => {
  // The serving adapter, as the trainer and an earlier gate decision left it (the oracle ignores
  // its weights, but the artefacts are read and verified as for any adapter).
  const store = new LocalArtefactStore(join(home, 'artefacts'));
  const scratch = join(home, 'scratch');
  mkdirSync(join(scratch, 'base'), { recursive: true });
  mkdirSync(join(scratch, 'adapter'), { recursive: true });
  const tiny: TinyModelFile = {
    format: 'cprec-tiny-random/1',
    config: {
      dim: 8,
      hiddenDim: 16,
      nLayers: 1,
      nHeads: 1,
      nKvHeads: 1,
      maxSeqLen: 64,
      normEps: 1e-5,
      ropeTheta: 10000,
      tiedClassifier: true,
    },
    seed: 1,
    titles: [],
  };
  writeFileSync(join(scratch, 'base', TINY_MODEL_FILE), JSON.stringify(tiny));
  writeFileSync(
    join(scratch, 'adapter', 'oracle.json'),
    JSON.stringify({ oracle: 'pre-drift ground truth' }),
  );
  const base = await store.put(TINY_MODEL_KEY, join(scratch, 'base'));
  const adapter = await store.put(`adapters/${ADAPTER}`, join(scratch, 'adapter'));
  await control.insertAdapter({
    adapter_id: ADAPTER,
    adapter_kind: 'sft',
    round_id: 'r-drift',
    target_domains: ['games', 'books'],
    uri: adapter.uri,
    sha256: adapter.sha256,
    lineage: { base_model: 'tiny-random', base_model_sha256: base.sha256 },
    created_ms: START,
  });
  await control.insertPromotion({
    adapter_id: ADAPTER,
    decision: 'promoted',
    reasons: ['test'],
    hr1: {},
    ts_ms: 1,
  });

  const events: EventsPort = {
    adapterEvent: async () => undefined,
    driftEvent: async (e) => {
      await producer.send({ topic: TOPICS.drift, messages: [{ key: e.domain, value: JSON.stringify(e) }] });
    },
    roundCommand: async (c) => {
      roundCommands.push(c);
    },
  };
  const gateway = new ClickHouseGateway(ch, {
    request: async (command) => {
      await producer.send({
        topic: TOPICS.sequencerCommands,
        messages: [{ key: command.split_id, value: JSON.stringify(command) }],
      });
    },
    timeoutMs: 60_000,
    pollMs: 200,
  });
  const watch = new DriftWatch(
    control,
    gateway,
    gateway,
    new ArtefactGateway(store, { kind: 'tiny-random', source: { model: '' } }),
    new OracleRunner(),
    events,
    { now: () => Date.now() },
    new DriftMonitor({ relativeDrop: 0.3, minSamples: 50, refreshOnAlert: true, cooldownMs: 0 }),
    {
      windowMs: WINDOW,
      splitSeed: 5,
      defaultDomains: [],
      maxExamples: 400,
      method: 'likelihood',
      job: { backend: 'cpu', budget: { maxTokens: 64, maxTitleTokens: 8 } },
    },
  );

  // Interactions arrive in event-time order; after each arrival the drift use case ticks.
  const all = await loadWorlds();
  const interactions = new InteractionRepository(ch);
  const sequences = new SequenceStore(ch);
  const ticks: DriftTick[] = [];
  let sent = 0;
  for (let day = 20; day <= 50; day += 5) {
    // Up to the middle of the next window: the newest complete window ends at `day`.
    const until = START + day * DAY + WINDOW / 2;
    const batch = [];
    while (sent < all.length && all[sent].ts_ms < until) batch.push(all[sent++]);
    await interactions.insertBatch(batch, 1_000_000 + day);
    await sequences.rebuild({ safetyMarginMs: 0, nowMs: 4_000_000_000_000 });
    ticks.push(await watch.tick());
  }
  expect(sequencer.errors).toEqual([]);
  expect(ticks.every((t) => t.kind === 'observed')).toBe(true);

  const series = await control.driftSeries({});
  const hr1 = (domain: string) =>
    series
      .filter((o) => o.domain === domain && o.adapter_id === ADAPTER)
      .map((o) => ({ end: o.window_end_ms, hr1: o.hr1, n: o.samples }));
  const games = hr1('games');
  const books = hr1('books');
  expect(games).toHaveLength(7);
  expect(books).toHaveLength(7);
  expect([...games, ...books].every((o) => o.n >= 50)).toBe(true);
  const before = games.filter((o) => o.end <= DRIFT_AT);
  const after = games.filter((o) => o.end - WINDOW >= DRIFT_AT);
  expect(before.length).toBeGreaterThanOrEqual(3);
  expect(after.length).toBeGreaterThanOrEqual(3);
  // The series falls once the drift starts: every post-drift window is below every pre-drift one.
  expect(Math.max(...after.map((o) => o.hr1))).toBeLessThan(Math.min(...before.map((o) => o.hr1)));

  const alerts = await control.listDriftAlerts({});
  expect(alerts.length).toBeGreaterThan(0);
  expect(alerts.every((a) => a.domain === 'games' && a.adapter_id === ADAPTER && a.refresh_requested)).toBe(
    true,
  );
  expect(alerts.every((a) => a.hr1 < a.baseline_hr1 * 0.7 && a.samples >= 50)).toBe(true);
  // No alert before the drift: the first one is for a window that starts at or after it.
  const firstAlertWindow = ticks.find((t) => t.kind === 'observed' && t.alerts.length > 0);
  expect(firstAlertWindow?.kind === 'observed' && firstAlertWindow.windowStartMs >= DRIFT_AT).toBe(true);

  // The refresh request names the drifting domain; the events went out on Kafka.
  expect(roundCommands.length).toBe(alerts.length);
  expect(roundCommands.every((c) => c.kind === 'trigger' && c.requested_by === 'evaluator:drift')).toBe(true);
  expect(roundCommands[0]).toMatchObject({ target_domains: ['games'] });
  await eventually(
    async () => driftEvents,
    (es) => es.filter((e) => e.kind === 'observation').length === 14 && es.some((e) => e.kind === 'alert'),
    'drift observations and alerts on Kafka',
  );
  expect(driftEvents.filter((e) => e.kind === 'alert').every((e) => e.domain === 'games')).toBe(true);
}, 180_000);
