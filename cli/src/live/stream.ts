import { existsSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { logLevel } from 'kafkajs';
import { topicsFor } from '@cprec/contracts';
import {
  Dataset,
  datasetReplaySource,
  FileProgressStore,
  KafkaReplaySink,
  onlyUsers,
  openDataset,
  planLiveStream,
  replayProgressPath,
  ReplayRunner,
  syntheticDataset,
  type LiveStreamPlan,
  type ReplayStats,
  type ReplaySummary,
} from '@cprec/datasets';
import {
  createKafka,
  createReliableProducer,
  defaultTopicSpecs,
  ensureTopics,
  kafkaSettingsFromEnv,
} from '@cprec/messaging';

const DAY_MS = 86_400_000;

/** The real multi-domain default: Amazon 2014 users linked across Beauty, Clothing and Toys. */
export const DEFAULT_LIVE_DATASET = resolve(__dirname, '../../../../shared/data/amazon2014-linked');
/** Its titled domains (Sports has no titles: a text model cannot use it). */
export const DEFAULT_LIVE_DOMAINS = ['beauty', 'clothing', 'toy'] as const;

export interface LiveStreamSpec {
  /** Dataset folders; empty = synthetic. */
  datasets: string[];
  /** Domain filter for amazon2014-linked folders. */
  domains?: readonly string[];
  synthetic?: {
    users: number;
    seed: number;
    domains: string[];
    eventsPerUser: number;
    /** Tastes rotate this many days after the start (null = never). */
    driftAfterDays: number | null;
  };
  /** Keep users active in at least this many domains. */
  minDomains: number;
  /** At most this many users (deterministic sample), null = all. */
  maxUsers: number | null;
  /** Share of the interactions sent at once as the platform's history. */
  backlogFraction: number;
  /** Event-time days per wall-clock second. */
  speedDaysPerSecond: number;
}

export interface PreparedStream {
  datasets: Dataset[];
  plan: LiveStreamPlan;
  /** Identifies the record stream and its destination: the progress file's key. */
  key: string;
  describe(): string;
}

export const SYNTHETIC_START_MS = Date.UTC(2023, 0, 1);

/** Opens the datasets and makes the stream's plan (one pass over the interactions). */
export async function prepareStream(spec: LiveStreamSpec, topicPrefix: string): Promise<PreparedStream> {
  let datasets: Dataset[];
  let synthetic: object | null = null;
  if (spec.datasets.length > 0) {
    for (const path of spec.datasets)
      if (!existsSync(path)) throw new Error(`dataset folder ${path} does not exist`);
    datasets = spec.datasets.map((path) =>
      openDataset({
        path,
        ...(spec.domains && existsSync(join(path, 'derived', 'items.jsonl.gz'))
          ? { domains: spec.domains }
          : {}),
      }),
    );
  } else {
    const s = spec.synthetic ?? {
      users: 400,
      seed: 42,
      domains: ['games', 'beauty', 'books'],
      eventsPerUser: 20,
      driftAfterDays: null,
    };
    const config = {
      seed: s.seed,
      users: s.users,
      domains: s.domains,
      eventsPerUser: s.eventsPerUser,
      startMs: SYNTHETIC_START_MS,
      driftAtMs:
        s.driftAfterDays === null ? null : SYNTHETIC_START_MS + Math.round(s.driftAfterDays * DAY_MS),
    };
    synthetic = config;
    datasets = [syntheticDataset(config)];
  }
  const plan = await planLiveStream(datasets, {
    minDomains: spec.minDomains,
    maxUsers: spec.maxUsers,
    backlogFraction: spec.backlogFraction,
  });
  if (plan.interactionCount === 0)
    throw new Error(
      `no interactions to stream (${spec.minDomains > 1 ? `no user is active in ${spec.minDomains}+ domains` : 'the datasets are empty'})`,
    );
  const topics = topicsFor(topicPrefix);
  const key = JSON.stringify({
    live: 1,
    datasets: spec.datasets.map((p) => resolve(p)),
    domains: spec.domains ?? null,
    synthetic,
    minDomains: spec.minDomains,
    maxUsers: spec.maxUsers,
    topics: [topics.interactions, topics.items],
  });
  const filtered = datasets.map((d) => onlyUsers(d, plan.users));
  return {
    datasets: filtered,
    plan,
    key,
    describe: () => {
      const what =
        spec.datasets.length > 0
          ? spec.datasets.map((p) => p.split('/').filter(Boolean).pop()).join(' + ')
          : `synthetic (${spec.synthetic?.users ?? 400} users)`;
      const perDomain = Object.entries(plan.interactions)
        .sort()
        .map(([d, n]) => `${d} ${n.toLocaleString('en')}`)
        .join(', ');
      const live = plan.liveFromMs ?? plan.firstMs!;
      const liveDays = (plan.lastMs! - live) / DAY_MS;
      return (
        `${what}: ${plan.userCount.toLocaleString('en')} users${spec.minDomains > 1 ? ` active in ${spec.minDomains}+ domains` : ''}, ` +
        `${plan.interactionCount.toLocaleString('en')} interactions (${perDomain}), ${day(plan.firstMs!)} → ${day(plan.lastMs!)}; ` +
        `history before ${day(live)} sent at once, then ${Math.round(liveDays)} days live at ${spec.speedDaysPerSecond} day(s)/s ` +
        `(~${Math.round(liveDays / spec.speedDaysPerSecond / 60)} min)`
      );
    },
  };
}

const day = (ms: number): string => new Date(ms).toISOString().slice(0, 10);

export interface RunningStream {
  /** Latest replay statistics (null before the first batch). */
  stats(): ReplayStats | null;
  /** Resolves when the stream ends (completed, interrupted, or already complete from an earlier run). */
  done: Promise<ReplaySummary>;
  /** Stops after the batch in flight; the progress file lets the next run continue. */
  stop(): void;
  progressFile: string;
}

/**
 * Streams the prepared datasets into the namespace's topics in event-time order: the backlog at
 * once, then paced at the given speed. Resumes after the records an earlier run with the same key
 * delivered (its progress file), unless `restart`.
 */
export async function startStream(
  prepared: PreparedStream,
  options: { speedDaysPerSecond: number; topicPrefix: string; home: string; restart: boolean },
): Promise<RunningStream> {
  const topics = topicsFor(options.topicPrefix);
  // A platform feeding events (principal `platform`: writes interactions and items only).
  const kafka = createKafka({
    ...kafkaSettingsFromEnv('cprec-live-stream', process.env, 'platform'),
    logLevel: logLevel.ERROR,
  });
  const admin = kafka.admin();
  await admin.connect();
  try {
    await ensureTopics(admin, defaultTopicSpecs(4, topics));
  } finally {
    await admin.disconnect();
  }
  const producer = createReliableProducer(kafka);
  await producer.connect();
  // <home>/replay/<hash>.json (replayProgressPath puts it under <root>/.cprec).
  const home = resolve(options.home);
  const progressFile = replayProgressPath(prepared.key, basename(home) === '.cprec' ? dirname(home) : home);
  const controller = new AbortController();
  let latest: ReplayStats | null = null;
  const runner = new ReplayRunner(
    new KafkaReplaySink(producer, { interactions: topics.interactions, items: topics.items }),
    new FileProgressStore(progressFile),
  );
  const done = runner
    .run(datasetReplaySource(prepared.datasets), {
      key: prepared.key,
      batchSize: 500,
      speedDaysPerSecond: options.speedDaysPerSecond,
      liveFromMs: prepared.plan.liveFromMs,
      resume: !options.restart,
      signal: controller.signal,
      onProgress: (s) => (latest = s),
    })
    .finally(() => producer.disconnect().catch(() => undefined));
  return {
    stats: () => latest,
    done,
    stop: () => controller.abort(),
    progressFile,
  };
}
