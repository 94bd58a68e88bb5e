import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import {
  portOf,
  parseReplicas,
  REPO_ROOT,
  RunningService,
  SERVICES,
  spawnService,
  stopServices,
  waitHealthy,
} from '../live/services';
import {
  DEFAULT_LIVE_DATASET,
  DEFAULT_LIVE_DOMAINS,
  prepareStream,
  startStream,
  type LiveStreamSpec,
  type RunningStream,
} from '../live/stream';
import {
  day,
  EventReporter,
  formatTimeline,
  generationLine,
  type DriftView,
  type EvaluationRow,
  type RoundRow,
} from '../live/timeline';

const DAY_MS = 86_400_000;

export interface DemoOptions {
  dataset: string[];
  synthetic?: boolean;
  users?: number;
  speed: number;
  backlog: number;
  minDomains?: number;
  targets?: string;
  roundEvery: number;
  roundAfter: number;
  window: number;
  minValidRatio: number;
  rounds: number;
  exit?: boolean;
  restartStream?: boolean;
  timeoutMin: number;
  model?: string;
  replicas?: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const say = (line: string) => process.stdout.write(`[live] ${line}\n`);

function positive(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('must be a positive number');
  return n;
}
function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('must be a positive integer');
  return n;
}
function fraction(value: string): number {
  const n = Number(value);
  if (!(n >= 0 && n < 1)) throw new InvalidArgumentError('must be a number in [0, 1)');
  return n;
}
function nonNegative(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError('must be a number ≥ 0');
  return n;
}

/** What the live mode streams: the options resolved against the data that exists on this machine. */
export function liveStreamSpec(options: DemoOptions): {
  spec: LiveStreamSpec;
  targets: string[];
  note?: string;
} {
  let note: string | undefined;
  let datasets = options.dataset.map((p) => resolve(p));
  let synthetic = options.synthetic === true;
  if (!synthetic && datasets.length === 0) {
    if (existsSync(DEFAULT_LIVE_DATASET)) datasets = [DEFAULT_LIVE_DATASET];
    else {
      synthetic = true;
      note = `${DEFAULT_LIVE_DATASET} not found: streaming synthetic data instead`;
    }
  }
  const usingDefault = datasets.length === 1 && datasets[0] === DEFAULT_LIVE_DATASET;
  const syntheticDomains = ['games', 'beauty', 'books'];
  const spec: LiveStreamSpec = {
    datasets: synthetic ? [] : datasets,
    ...(usingDefault ? { domains: DEFAULT_LIVE_DOMAINS } : {}),
    ...(synthetic
      ? {
          synthetic: {
            users: options.users ?? 400,
            seed: 42,
            domains: syntheticDomains,
            eventsPerUser: 20,
            // Tastes rotate mid-stream, so drift monitoring has something to find.
            driftAfterDays: 100,
          },
        }
      : {}),
    minDomains: options.minDomains ?? (usingDefault ? 2 : 1),
    maxUsers: synthetic ? null : (options.users ?? null),
    backlogFraction: options.backlog,
    speedDaysPerSecond: options.speed,
  };
  const targets = options.targets
    ? options.targets
        .split(',')
        .map((d) => d.trim())
        .filter(Boolean)
    : synthetic
      ? syntheticDomains
      : usingDefault
        ? [...DEFAULT_LIVE_DOMAINS]
        : [];
  return { spec, targets, ...(note ? { note } : {}) };
}

/**
 * The services' settings for the live mode; the environment wins wherever it sets something
 * (every service variable of .env.example still applies).
 */
export function liveEnvironment(
  options: DemoOptions,
  targets: readonly string[],
  env: NodeJS.ProcessEnv,
  token: string,
): NodeJS.ProcessEnv {
  const defaults: Record<string, string> = {
    KAFKAJS_NO_PARTITIONER_WARNING: '1',
    OPERATOR_TOKEN: token,
    // Rounds start by the trainer's policy: per stretch of stream time, or after a burst of data.
    TRAINER_AUTO_STREAM_INTERVAL_MS: String(Math.round(options.roundEvery * DAY_MS)),
    TRAINER_AUTO_MIN_NEW_INTERACTIONS: String(options.roundAfter),
    // A demo round: a short stable phase, one learning rate, small fine-tuning and SASRec.
    TRAINER_MAX_STEPS_PER_ROUND: '40',
    TRAINER_SFT_EPOCHS: '1',
    TRAINER_SFT_LEARNING_RATES: '1e-3',
    TRAINER_SFT_MAX_SAMPLES: '96',
    TRAINER_SFT_MAX_VALIDATION: '16',
    TRAINER_SASREC_TIME_BUDGET_MS: '20000',
    // Drift monitoring on: the adapter serving each domain scored on every closed window.
    EVALUATOR_DRIFT_INTERVAL_MS: '5000',
    EVALUATOR_DRIFT_WINDOW_MS: String(Math.round(options.window * DAY_MS)),
    // 60 users per domain and window; an alert needs 50+ of them and half the HR@1 at promotion.
    EVALUATOR_DRIFT_MIN_SAMPLES: '50',
    EVALUATOR_DRIFT_RELATIVE_DROP: '0.5',
    EVALUATOR_DRIFT_REFRESH: 'true',
    EVALUATOR_MAX_EXAMPLES: '60',
    // The generation check: greedy answers scored, Valid Ratio gated.
    EVALUATOR_GENERATION: 'true',
    EVALUATOR_GATE_MIN_VALID_RATIO: String(options.minValidRatio),
    ...(targets.length > 0
      ? { TRAINER_TARGET_DOMAINS: targets.join(','), EVALUATOR_TARGET_DOMAINS: targets.join(',') }
      : {}),
    ...(options.model ? { CPREC_BASE_MODEL: resolve(options.model) } : {}),
  };
  const out: NodeJS.ProcessEnv = { ...defaults };
  for (const [k, v] of Object.entries(env)) if (v !== undefined && v !== '') out[k] = v;
  if (options.model) out.CPREC_BASE_MODEL = resolve(options.model);
  return out;
}

async function getJson<T>(base: string, path: string): Promise<T> {
  const res = await fetch(`${base}${path}`);
  const text = await res.text();
  if (!res.ok) throw new Error(`GET ${path}: ${res.status} ${text.slice(0, 300)}`);
  return JSON.parse(text) as T;
}

export interface AdapterRow {
  adapter_id: string;
  round_id: string;
  status: string;
}

/**
 * `--exit`: done once the first N rounds of this run are published, every adapter they published
 * is judged by the gate, and a window was scored after the last of their promotions (the drift
 * tick runs right after a promotion; two quiet minutes are enough when no window has data).
 */
export function finished(
  rounds: readonly RoundRow[],
  adapters: readonly AdapterRow[],
  drift: DriftView,
  since: number,
  wanted: number,
  lastChange: number,
  now = Date.now(),
): { done: boolean; failed: number; published: number } {
  const mine = rounds.filter((r) => r.created_ms >= since).sort((a, b) => a.created_ms - b.created_ms);
  const published = mine.filter((r) => r.state === 'published');
  const failed = mine.filter((r) => r.state === 'failed').length;
  const first = published.slice(0, wanted);
  if (first.length < wanted) return { done: false, failed, published: published.length };
  const ids = new Set(first.map((r) => r.round_id));
  const theirs = adapters.filter((a) => ids.has(a.round_id));
  if (theirs.length === 0 || theirs.some((a) => a.status === 'pending'))
    return { done: false, failed, published: published.length };
  const adapterIds = new Set(theirs.map((a) => a.adapter_id));
  const lastPromotion = Math.max(
    0,
    ...(drift.decisions ?? drift.promotions)
      .filter((p) => p.decision === 'promoted' && adapterIds.has(p.adapter_id))
      .map((p) => p.ts_ms),
  );
  const observedAfter = drift.series.some((p) => p.ts_ms >= lastPromotion && p.ts_ms >= since);
  return { done: observedAfter || now - lastChange > 120_000, failed, published: published.length };
}

export function register(program: Command): void {
  program
    .command('demo')
    .description(
      'the live pipeline: all services, a real multi-domain dataset streamed in event-time order at an accelerated clock, ' +
        'rounds started by the trainer’s policy, drift monitoring, the dashboard (what `npm start` runs)',
    )
    .option(
      '--dataset <path>',
      'stream these dataset folders (repeatable) instead of ../shared/data/amazon2014-linked',
      (v: string, acc: string[]) => [...acc, v],
      [],
    )
    .option('--synthetic', 'stream the seeded synthetic generator (3 domains, tastes drift on day 100)')
    .option('--users <n>', 'synthetic: users (400); datasets: at most n users, sampled', positiveInt)
    .option('--speed <daysPerSecond>', 'stream clock: event-time days per wall-clock second', positive, 1)
    .option(
      '--backlog <fraction>',
      'share of the interactions sent at once as the history before the clock starts',
      fraction,
      0.3,
    )
    .option(
      '--min-domains <n>',
      'only users active in n+ domains (default 2 for the default dataset)',
      positiveInt,
    )
    .option('--targets <list>', 'domains fine-tuned, served and watched (default: the stream’s domains)')
    .option('--round-every <days>', 'a round per this much stream time', positive, 60)
    .option('--round-after <n>', 'or after this many new interactions', positiveInt, 20_000)
    .option('--window <days>', 'drift window: HR@1 per this much event time', positive, 30)
    .option(
      '--min-valid-ratio <r>',
      'gate: Valid Ratio floor of the generation check (0: measured and shown, not gated — stories260K rarely writes an exact title)',
      nonNegative,
      0,
    )
    .option('--exit', 'stop after --rounds rounds and print the HR@1 timeline (else run until Ctrl-C)')
    .option('--rounds <n>', 'with --exit: rounds to wait for', positiveInt, 3)
    .option(
      '--restart-stream',
      'send the stream from its start instead of continuing where the last run stopped (storage keeps what it has: for a clean slate, npm run infra:down && rm -rf .cprec)',
    )
    .option('--timeout-min <m>', 'with --exit: give up after this many minutes', positive, 90)
    .option(
      '--replicas <list>',
      'processes per service, e.g. ingest=2,serving=2,trainer=2 (default CPREC_REPLICAS, else 1 each); ' +
        'replica n listens on the port + 100·(n−1); a second sequencer or trainer is a standby',
    )
    .option(
      '--model <path>',
      'base LM of every service (.gguf, llama2.c .bin or HF folder; default CPREC_BASE_MODEL or stories260K)',
    )
    .action(async (options: DemoOptions) => {
      process.exitCode = await runLive(options);
    });
}

export async function runLive(options: DemoOptions): Promise<number> {
  process.env.KAFKAJS_NO_PARTITIONER_WARNING ??= '1';
  const startedAt = Date.now();
  const token = process.env.OPERATOR_TOKEN ?? randomBytes(16).toString('hex');
  let replicas: ReturnType<typeof parseReplicas>;
  try {
    replicas = parseReplicas(options.replicas ?? process.env.CPREC_REPLICAS);
  } catch (err) {
    say((err as Error).message);
    return 2;
  }
  const { spec, targets, note } = liveStreamSpec(options);
  if (note) say(note);
  const env = liveEnvironment(options, targets, process.env, token);
  const home = resolve(REPO_ROOT, env.CPREC_HOME ?? '.cprec');
  const logDir = join(home, 'logs');
  const prefix = env.CPREC_TOPIC_PREFIX ?? '';
  const operatorSpec = SERVICES.find((s) => s.name === 'operator')!;
  const operator = `http://127.0.0.1:${portOf(operatorSpec, env)}`;

  say('reading the stream (one pass over the data)…');
  const prepared = await prepareStream(spec, prefix);
  say(prepared.describe());

  const services: RunningService[] = [];
  let stream: RunningStream | null = null;
  let stopping = false;
  const stopAll = async () => {
    if (stopping) return;
    stopping = true;
    say('stopping the stream and the services…');
    stream?.stop();
    await stream?.done.catch(() => undefined);
    await stopServices(services);
  };
  const onSignal = () => void stopAll().then(() => process.exit(0));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const start = async (names: ReadonlyArray<(typeof SERVICES)[number]['name']>) => {
    const started: RunningService[] = [];
    for (const name of names) {
      const count = replicas.get(name) ?? 1;
      // Several trainers or sequencers: one active, the others standbys (their leases).
      const leased =
        count > 1 && (name === 'trainer' || name === 'sequencer')
          ? { ...env, [name === 'trainer' ? 'TRAINER_LEASE' : 'SEQUENCER_LEASE']: 'true' }
          : env;
      for (let replica = 1; replica <= count; replica++) {
        const s = spawnService(
          SERVICES.find((x) => x.name === name)!,
          leased,
          logDir,
          replica,
        );
        if (s === null) {
          say(`${name}: not built in this version, skipped`);
          break;
        }
        services.push(s);
        started.push(s);
      }
    }
    await Promise.all(started.map((s) => waitHealthy(s, 240_000)));
    for (const s of started)
      say(
        `${s.spec.name}${s.replica > 1 ? ` #${s.replica}` : ''} healthy on http://127.0.0.1:${s.port}  (log ${s.logFile})`,
      );
  };

  try {
    // Consumers of the stream first; evaluator and serving once the first round exists (a
    // tiny-random base is created by the trainer's first round).
    await start(['ingest', 'sequencer', 'trainer', 'operator']);
    say(`dashboard: ${operator}/   (operator token for its buttons: ${token})`);
    stream = await startStream(prepared, {
      speedDaysPerSecond: options.speed,
      topicPrefix: prefix,
      home,
      restart: options.restartStream === true,
    });
    const streamDone = stream.done.then(
      (summary) => {
        if (summary.outcome === 'already-complete')
          say(
            `the stream was fully replayed by an earlier run (${stream!.progressFile}); nothing new arrives. ` +
              'For a fresh run: npm run infra:down && rm -rf .cprec, or --restart-stream, --synthetic, another --dataset',
          );
        else if (summary.outcome === 'completed')
          say(`stream complete: ${summary.interactions.toLocaleString('en')} interactions sent`);
        return summary;
      },
      (err: Error) => {
        say(`stream failed: ${err.message}`);
        throw err;
      },
    );
    void streamDone.catch(() => undefined);
    say(
      `streaming: history first, then ${options.speed} day(s) of event time per second; rounds every ${options.roundEvery} days of stream time or ${options.roundAfter.toLocaleString('en')} new interactions; HR@1 per ${options.window}-day window`,
    );

    const reporter = new EventReporter();
    let laterStarted = false;
    let lastStatus = 0;
    let lastChange = Date.now();
    let streamEnded = false;
    void streamDone.then(
      () => (streamEnded = true),
      () => (streamEnded = true),
    );
    const deadline = startedAt + options.timeoutMin * 60_000;
    while (!stopping) {
      let rounds: RoundRow[] = [];
      let drift: DriftView | null = null;
      let adapters: AdapterRow[] = [];
      try {
        [{ rounds }, drift, { adapters }] = await Promise.all([
          getJson<{ rounds: RoundRow[] }>(operator, '/v1/rounds?limit=200'),
          getJson<DriftView>(operator, '/v1/drift'),
          getJson<{ adapters: AdapterRow[] }>(operator, '/v1/adapters?limit=500'),
        ]);
      } catch (err) {
        say(`operator not answering: ${(err as Error).message}`);
      }
      if (drift) {
        const lines = reporter.update(rounds, drift);
        if (lines.length > 0) lastChange = Date.now();
        for (const line of lines) say(line);
        // The generation check (greedy answers matched to the candidates) of each new decision.
        for (const adapterId of reporter.newlyDecided) {
          const evaluations = await getJson<{ evaluations: EvaluationRow[] }>(
            operator,
            `/v1/evaluations?adapter_id=${encodeURIComponent(adapterId)}`,
          ).catch(() => ({ evaluations: [] as EvaluationRow[] }));
          const line = generationLine(adapterId, evaluations.evaluations);
          if (line) say(line);
        }
      }
      if (!laterStarted && (rounds.length > 0 || Date.now() - startedAt > 180_000)) {
        laterStarted = true;
        await start(['evaluator', 'serving']);
      }
      if (Date.now() - lastStatus > 30_000) {
        lastStatus = Date.now();
        const s = stream.stats();
        const unfinished = rounds.filter((r) => !['published', 'failed', 'cancelled'].includes(r.state));
        const running = unfinished.find((r) => r.state !== 'queued') ?? unfinished[0];
        const waiting = unfinished.length - (running ? 1 : 0);
        say(
          `stream at ${s?.streamMs ? day(s.streamMs) : '–'}${s?.live ? '' : ' (history)'} · ${(s?.interactions ?? 0).toLocaleString('en')} interactions sent · ` +
            (running
              ? `round ${running.round_id} ${running.state} ${running.step}/${running.total_steps}${waiting > 0 ? ` (+${waiting} queued)` : ''}`
              : 'trainer idle'),
        );
      }
      if (options.exit && drift) {
        const state = finished(rounds, adapters, drift, startedAt, options.rounds, lastChange);
        if (state.done) {
          process.stdout.write('\n' + formatTimeline(drift, { sinceMs: startedAt }));
          await stopAll();
          return 0;
        }
        if (state.failed >= Math.max(2, options.rounds)) {
          say(
            `${state.failed} rounds failed (see ${logDir}/trainer.log and the rounds on the dashboard); giving up`,
          );
          await stopAll();
          return 1;
        }
        const idle = !rounds.some((r) => !['published', 'failed', 'cancelled'].includes(r.state));
        if (streamEnded && idle && Date.now() - lastChange > 180_000) {
          process.stdout.write('\n' + formatTimeline(drift, { sinceMs: startedAt }));
          say(
            `the stream ended after ${state.published} round(s) of the ${options.rounds} asked for (a slower --speed or a shorter --round-every gives more)`,
          );
          await stopAll();
          return 1;
        }
        if (Date.now() > deadline) {
          process.stdout.write('\n' + formatTimeline(drift, { sinceMs: startedAt }));
          say(`gave up after ${options.timeoutMin} minutes with ${state.published} round(s) published`);
          await stopAll();
          return 1;
        }
      }
      await sleep(3_000);
    }
    return 0;
  } catch (err) {
    say(`failed: ${(err as Error).message}`);
    await stopAll();
    return 1;
  }
}
