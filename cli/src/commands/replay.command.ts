import { resolve } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { Presets, SingleBar } from 'cli-progress';
import { topicsFor } from '@cprec/contracts';
import {
  Dataset,
  datasetReplaySource,
  FileProgressStore,
  KafkaReplaySink,
  openDataset,
  replayProgressPath,
  ReplayRunner,
  ReplayStats,
  ReplaySummary,
  syntheticDataset,
} from '@cprec/datasets';
import {
  createKafka,
  createReliableProducer,
  defaultTopicSpecs,
  ensureTopics,
  kafkaSettingsFromEnv,
} from '@cprec/messaging';

/** Synthetic replays start on this date so a given seed always yields the same stream. */
export const SYNTHETIC_START_MS = Date.UTC(2023, 0, 1);

export interface ReplayCommandOptions {
  dataset: string[];
  synthetic?: boolean;
  users: number;
  seed: number;
  domains: string;
  eventsPerUser: number;
  driftAfterDays?: number;
  speed?: number;
  asFastAsPossible?: boolean;
  rateCap?: number;
  limit?: number;
  resume?: boolean;
  brokers?: string;
  batchSize: number;
  interactionsTopic: string;
  itemsTopic: string;
  progress: boolean;
}

function positiveNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('must be a positive number');
  return n;
}
function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('must be a positive integer');
  return n;
}
function integer(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n)) throw new InvalidArgumentError('must be an integer');
  return n;
}
const collect = (value: string, previous: string[]): string[] => [...previous, value];

function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  return s < 60 ? `${(ms / 1000).toFixed(1)}s` : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
}

function describeSummary(summary: ReplaySummary, progressFile: string): string {
  const lines = [
    `replay ${summary.outcome}`,
    `  sent        ${summary.sent} (${summary.items} items, ${summary.interactions} interactions)`,
    `  skipped     ${summary.skipped} (acknowledged by an earlier run)`,
    `  elapsed     ${formatDuration(summary.elapsedMs)}`,
    `  rate        ${Math.round(summary.eventsPerSecond)} events/s`,
    `  progress    ${progressFile}`,
  ];
  if (summary.outcome === 'interrupted') lines.push('  continue with the same arguments plus --resume');
  return lines.join('\n') + '\n';
}

/** `cprec replay`: streams datasets or the synthetic generator into Kafka in event-time order. */
export function replayCommand(
  action: (options: ReplayCommandOptions) => Promise<void> = replay,
  env: NodeJS.ProcessEnv = process.env,
): Command {
  // The installation's topics, as the services name them (CPREC_TOPIC_PREFIX): a prefixed
  // installation's ingest never reads the base topics.
  const topics = topicsFor(env.CPREC_TOPIC_PREFIX ?? '');
  return new Command('replay')
    .description('stream a dataset (or the synthetic generator) into Kafka in event-time order')
    .option('--dataset <path>', 'dataset folder, repeatable (format detected from its files)', collect, [])
    .option('--synthetic', 'replay the seeded synthetic generator (the default when no --dataset is given)')
    .option('--users <n>', 'synthetic: number of users', positiveInt, 1000)
    .option('--seed <s>', 'synthetic: random seed', integer, 42)
    .option(
      '--domains <list>',
      'synthetic: comma-separated domains (games,beauty,books,toys,sports)',
      'games,beauty,books',
    )
    .option('--events-per-user <n>', 'synthetic: mean interactions per user', positiveNumber, 20)
    .option(
      '--drift-after-days <d>',
      'synthetic: tastes rotate this many days after the start',
      positiveNumber,
    )
    .addOption(
      new Option('--speed <daysPerSecond>', 'event-time days replayed per wall-clock second')
        .argParser(positiveNumber)
        .conflicts('asFastAsPossible'),
    )
    .option('--as-fast-as-possible', 'no event-time pacing (the default)')
    .option(
      '--rate-cap <eventsPerSecond>',
      'never send more than this many events per second',
      positiveNumber,
    )
    .option('--limit <n>', 'stop after the first n records of the stream (items count too)', positiveInt)
    .option('--resume', 'continue after the records an interrupted run with the same arguments had delivered')
    .option('--brokers <list>', 'Kafka bootstrap servers (default: $CPREC_KAFKA_BROKERS or 127.0.0.1:19092)')
    .option('--batch-size <n>', 'messages per Kafka request', positiveInt, 1000)
    .option(
      '--interactions-topic <topic>',
      "topic for interaction events (default: the installation's, after $CPREC_TOPIC_PREFIX)",
      topics.interactions,
    )
    .option('--items-topic <topic>', "topic for item events (default: the installation's)", topics.items)
    .option('--no-progress', 'no progress bar (log lines instead)')
    .action(async (options: ReplayCommandOptions) => {
      await action(options);
    });
}

export function register(program: Command): void {
  program.addCommand(replayCommand());
}

export interface ReplayPlan {
  datasets: Dataset[];
  brokers: string;
  /** Everything that defines the record stream and its destination (pacing and limit do not, so a resume may change them). */
  key: string;
}

/** Resolves the options into datasets and the replay key that names the progress file. */
export function planReplay(options: ReplayCommandOptions, env: NodeJS.ProcessEnv = process.env): ReplayPlan {
  const datasets: Dataset[] = options.dataset.map((path) => openDataset({ path }));
  const useSynthetic = options.synthetic === true || datasets.length === 0;
  const startMs = SYNTHETIC_START_MS;
  const syntheticConfig = {
    seed: options.seed,
    users: options.users,
    domains: options.domains
      .split(',')
      .map((d) => d.trim())
      .filter(Boolean),
    eventsPerUser: options.eventsPerUser,
    startMs,
    driftAtMs:
      options.driftAfterDays === undefined ? null : startMs + Math.round(options.driftAfterDays * 86_400_000),
  };
  if (useSynthetic) datasets.push(syntheticDataset(syntheticConfig));
  const brokers = options.brokers ?? kafkaSettingsFromEnv('cprec-replay', env).brokers;
  const key = JSON.stringify({
    datasets: options.dataset.map((p) => resolve(p)),
    synthetic: useSynthetic ? syntheticConfig : null,
    brokers,
    topics: [options.interactionsTopic, options.itemsTopic],
  });
  return { datasets, brokers, key };
}

async function replay(options: ReplayCommandOptions): Promise<void> {
  const { datasets, brokers, key } = planReplay(options);
  // As a platform feeding events: write interactions and items, nothing else (admin only if the
  // environment names it, CPREC_KAFKA_USERNAME).
  const settings = { ...kafkaSettingsFromEnv('cprec-replay', process.env, 'platform'), brokers };
  const progressFile = replayProgressPath(key);
  const kafka = createKafka(settings);
  const admin = kafka.admin();
  await admin.connect();
  try {
    const installation = topicsFor(process.env.CPREC_TOPIC_PREFIX ?? '');
    const specs = defaultTopicSpecs(undefined, installation);
    const interactionPartitions =
      specs.find((s) => s.topic === installation.interactions)?.numPartitions ?? 1;
    await ensureTopics(admin, [
      ...specs,
      { topic: options.interactionsTopic, numPartitions: interactionPartitions },
      { topic: options.itemsTopic, numPartitions: 1 },
    ]);
  } finally {
    await admin.disconnect();
  }
  const producer = createReliableProducer(kafka);
  await producer.connect();

  const controller = new AbortController();
  let interrupts = 0;
  const onSigint = (): void => {
    interrupts++;
    if (interrupts > 1) process.exit(130);
    process.stderr.write('\ninterrupt: stopping after the batch in flight (Ctrl-C again to quit at once)\n');
    controller.abort();
  };
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigint);

  const bar =
    options.progress && process.stderr.isTTY
      ? new SingleBar(
          {
            format: ' {bar} {percentage}% | {value}/{total} | {rate} ev/s | ETA {eta_formatted}',
            etaBuffer: 50,
            stream: process.stderr,
          },
          Presets.shades_classic,
        )
      : null;
  let started = false;
  let lastLog = 0;
  const onProgress = (stats: ReplayStats): void => {
    if (bar) {
      if (!started) {
        bar.start(stats.total ?? 0, stats.position, { rate: 0 });
        started = true;
      }
      if (stats.total !== null) bar.setTotal(stats.total);
      bar.update(stats.position, { rate: Math.round(stats.eventsPerSecond) });
    } else if (stats.elapsedMs - lastLog >= 5000) {
      lastLog = stats.elapsedMs;
      process.stderr.write(
        `replay: ${stats.position}${stats.total === null ? '' : `/${stats.total}`} records, ${Math.round(stats.eventsPerSecond)} events/s\n`,
      );
    }
  };

  try {
    const runner = new ReplayRunner(
      new KafkaReplaySink(producer, { interactions: options.interactionsTopic, items: options.itemsTopic }),
      new FileProgressStore(progressFile),
    );
    const summary = await runner.run(datasetReplaySource(datasets), {
      key,
      batchSize: options.batchSize,
      speedDaysPerSecond: options.speed ?? null,
      rateCap: options.rateCap ?? null,
      limit: options.limit ?? null,
      resume: options.resume === true,
      signal: controller.signal,
      onProgress,
    });
    bar?.stop();
    process.stdout.write(describeSummary(summary, progressFile));
    if (summary.outcome === 'interrupted') process.exitCode = 130;
  } finally {
    bar?.stop();
    process.off('SIGINT', onSigint);
    process.off('SIGTERM', onSigint);
    await producer.disconnect();
  }
}
