/**
 * Ingest benchmark (issue 3): sustained events/s from Kafka into ClickHouse through the real
 * ingest service, against the practical ceiling of a direct bulk insert of the same rows.
 *
 *   npx ts-node -r tsconfig-paths/register --transpile-only bench/ingest/ingest.bench.ts \
 *     [--events 1000000] [--batch-rows 20000] [--cpu-prof] [--keep] [--out bench/results/ingest.json]
 *     [--profile single|cluster] [--replicas N]
 *
 * Scaling (issue 16): `--profile cluster` runs against the cluster profile of
 * `bash infra/local/up --cluster` (three brokers, RF 3; two ClickHouse replicas: the run's tables,
 * and the direct insert's, are replicated), its endpoints read from `.cprec/cluster/cluster.env`
 * (bench/infra-profile.ts). `--replicas N` starts N ingest processes in the one consumer group,
 * sharing the topic's 4 partitions; on the cluster, process i writes to ClickHouse replica
 * ((i − 1) mod replicas). The run ends when all N events are visible on the first replica; then
 * the correctness check counts, on every replica, what queries read (`FINAL`): each event exactly
 * once. Recorded too: profile, replicas, the load average before and after, per-process consumed
 * counts and CPU. `--start join-first` (the default except on the single node with one process)
 * starts the processes before producing, waits until the group holds all N, pauses them (SIGSTOP)
 * while producing and resumes them together, so no process consumes alone while another boots;
 * `produce-first` is the original order. A pause longer than the consumers' 30 s session timeout
 * (about 500k events at 15-20k produced/s) makes the group rebalance once inside the timed window
 * (counted in details.group_rejoins); details.ingest_steady_events_per_s (10-90 % stored) leaves
 * it out. Defaults (`single`, 1, produce-first) are the original
 * benchmark, so earlier results stay comparable.
 *
 * INGEST_* variables in the environment are passed to the ingest process (e.g.
 * INGEST_MAX_BATCH_ROWS=50000), so the service's knobs can be tuned per run.
 *
 * Isolation: the run has a namespace of its own, like a test suite's — topics under the prefix
 * `cprec_bench_<run>.` (the ingest process gets it through CPREC_TOPIC_PREFIX), the consumer group
 * `cprec_bench_<run>.ingest`, a fresh ClickHouse database — with production's ACL table applied to
 * it when Kafka authenticates, and removed afterwards: nothing a benchmark produces ever reaches
 * the installation's own topics, where a running `npm start` would ingest it.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpus, loadavg } from 'node:os';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { Command } from 'commander';
import { Kafka, logLevel, Message, Producer } from 'kafkajs';
import { DEFAULT_LIMITS, InteractionEvent, parseInteraction, topicsFor } from '@cprec/contracts';
import {
  clickHouseSettingsFromEnv,
  ClickHouse,
  createClickHouse,
  ident,
  InteractionRecord,
  InteractionRepository,
  runMigrations,
  sql,
} from '@cprec/clickhouse';
import { createKafka, kafkaSettingsFromEnv } from '@cprec/messaging';
import { syntheticDataset } from '@cprec/datasets';
import { createBenchNamespace } from '../kafka-namespace';
import {
  counterTotal,
  readCpuSeconds,
  readRssBytes,
  REPO_ROOT,
  scrapeMetrics,
  startIngestProcess,
  waitForHealth,
  type IngestProcess,
} from './ingest-process';
import { CpuProfile, ProfileSummary, summarise } from './profile-summary';
import {
  parseProfile,
  parseReplicaCount,
  serverPidsOf,
  useInfraProfile,
  type InfraProfile,
} from '../infra-profile';

const log = (line: string): void => void process.stderr.write(`[bench:ingest] ${line}\n`);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const round = (x: number, digits = 0): number => Number(x.toFixed(digits));
const MB = 1024 * 1024;

interface Options {
  events: number;
  batchRows: number;
  produceChunk: number;
  produceInFlight: number;
  parseSample: number;
  cpuProf: boolean;
  keep: boolean;
  out: string;
  timeoutS: number;
  profile: InfraProfile;
  replicas: number;
  start: 'produce-first' | 'join-first';
}

function parseOptions(argv: string[]): Options {
  const positive = (v: string): number => {
    const n = Number(v.replace(/_/g, ''));
    if (!Number.isInteger(n) || n <= 0) throw new Error(`expected a positive integer, got ${v}`);
    return n;
  };
  const program = new Command()
    .name('bench:ingest')
    .option('--events <n>', 'synthetic interaction events to produce and ingest', positive, 1_000_000)
    .option(
      '--batch-rows <n>',
      'rows per direct insert (defaults to the ingest batch size INGEST_MAX_BATCH_ROWS or 20000)',
      positive,
    )
    .option('--produce-chunk <n>', 'messages per producer request', positive, 10_000)
    .option('--produce-in-flight <n>', 'concurrent producer requests', positive, 4)
    .option('--parse-sample <n>', 'messages for the in-process parse micro-benchmark', positive, 200_000)
    .option('--cpu-prof', 'run the ingest process with --cpu-prof (profile in .cprec/profiles)', false)
    .option('--keep', 'keep the bench databases (dropped by default)', false)
    .option(
      '--timeout-s <n>',
      'give up when ingest has not stored everything after this long',
      positive,
      1800,
    )
    .option('--out <file>', 'result file', resolve(REPO_ROOT, 'bench/results/ingest.json'))
    .option(
      '--profile <name>',
      'servers: single (infra/local/up) or cluster (up --cluster)',
      parseProfile,
      'single',
    )
    .option('--replicas <n>', 'ingest processes in the one consumer group', parseReplicaCount, 1)
    .option(
      '--start <mode>',
      'produce-first (start ingest after producing: the original, default on the single node with one process) ' +
        'or join-first (all processes join the group, paused while producing; default otherwise)',
    )
    .parse(argv);
  const o = program.opts<{
    events: number;
    batchRows?: number;
    produceChunk: number;
    produceInFlight: number;
    parseSample: number;
    cpuProf: boolean;
    keep: boolean;
    out: string;
    timeoutS: number;
    profile: InfraProfile;
    replicas: number;
    start?: string;
  }>();
  if (o.start !== undefined && o.start !== 'produce-first' && o.start !== 'join-first')
    throw new Error(`--start: expected produce-first or join-first, got ${o.start}`);
  const envBatch = Number(process.env.INGEST_MAX_BATCH_ROWS);
  return {
    ...o,
    batchRows: o.batchRows ?? (Number.isInteger(envBatch) && envBatch > 0 ? envBatch : 20_000),
    out: resolve(o.out),
    start:
      (o.start as Options['start'] | undefined) ??
      (o.profile === 'single' && o.replicas === 1 ? 'produce-first' : 'join-first'),
  };
}

/** N synthetic events (about 20 per user over 3 domains) with run-prefixed ids. */
function generateEvents(n: number, runTag: string): Promise<InteractionEvent[]> {
  const dataset = syntheticDataset({ seed: 7, users: Math.ceil(n / 20) + 100, dataset: `bench-${runTag}` });
  return (async () => {
    const events: InteractionEvent[] = [];
    for await (const e of dataset.interactions()) {
      // Same length as a real id (ev- + 32 hex), with the run tag replacing the `ev` prefix.
      events.push({ ...e, event_id: `${runTag}-${e.event_id.slice(3)}` });
      if (events.length >= n) break;
    }
    if (events.length < n) throw new Error(`generator produced only ${events.length} of ${n} events`);
    return events;
  })();
}

async function produceAll(
  producer: Producer,
  topic: string,
  events: readonly InteractionEvent[],
  o: Options,
): Promise<number> {
  const started = performance.now();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < events.length) {
      const from = next;
      next = Math.min(events.length, next + o.produceChunk);
      const messages: Message[] = [];
      for (let i = from; i < next; i++) {
        const e = events[i]!;
        messages.push({ key: e.user_id, value: JSON.stringify(e) });
      }
      await producer.send({ topic, acks: -1, messages });
    }
  };
  await Promise.all(Array.from({ length: o.produceInFlight }, worker));
  return (performance.now() - started) / 1000;
}

/** Waits until the consumer group is Stable with `n` members; returns how many it has. */
async function waitForGroupMembers(
  kafka: Kafka,
  groupId: string,
  n: number,
  timeoutMs = 120_000,
): Promise<number> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const { groups } = await admin.describeGroups([groupId]);
      const g = groups[0];
      if (g && g.state === 'Stable' && g.members.length === n) return g.members.length;
      if (Date.now() > deadline)
        throw new Error(
          `group ${groupId}: ${g?.members.length ?? 0} of ${n} members (${g?.state}) after ${timeoutMs} ms`,
        );
      await sleep(200);
    }
  } finally {
    await admin.disconnect();
  }
}

async function countRun(ch: ClickHouse, prefix: string): Promise<number> {
  const rows = await ch.query<{ n: string }>(
    sql`SELECT count() AS n FROM interactions WHERE event_id LIKE ${`${prefix}-%`}`,
  );
  return Number(rows[0]?.n ?? 0);
}

/** Rows in the active parts of this run's `interactions` table: metadata only, no scan. */
async function activePartRows(ch: ClickHouse): Promise<number> {
  const rows = await ch.query<{ n: string }>(
    sql`SELECT sum(rows) AS n FROM system.parts WHERE database = ${ch.database} AND table = 'interactions' AND active`,
  );
  return Number(rows[0]?.n ?? 0);
}

async function distinctRun(ch: ClickHouse, prefix: string): Promise<number> {
  const rows = await ch.query<{ n: string }>(
    sql`SELECT uniqExact(event_id) AS n FROM interactions WHERE event_id LIKE ${`${prefix}-%`}`,
  );
  return Number(rows[0]?.n ?? 0);
}

/** Pids of the local ClickHouse and Kafka servers (from infra/local/status), for CPU accounting. */
function serverPids(): { clickhouse: number | null; kafka: number | null } {
  try {
    const out = execFileSync('bash', [join(REPO_ROOT, 'infra/local/status')], { encoding: 'utf8' });
    const pid = (name: string): number | null => {
      const m = new RegExp(`^${name}.*pid (\\d+)`, 'm').exec(out);
      return m ? Number(m[1]) : null;
    };
    return { clickhouse: pid('ClickHouse'), kafka: pid('Kafka') };
  } catch {
    return { clickhouse: null, kafka: null };
  }
}

/**
 * CPU seconds used by each named group of processes (one ingest process, every broker of the
 * cluster…) between two moments, as a share of one core.
 */
class CpuMeter {
  private readonly start = new Map<string, number | null>();
  private t0 = performance.now();
  constructor(private readonly pids: Record<string, readonly number[]>) {}
  private static read(pids: readonly number[]): number | null {
    if (pids.length === 0) return null;
    let total = 0;
    for (const pid of pids) {
      const s = readCpuSeconds(pid);
      if (s === null) return null;
      total += s;
    }
    return total;
  }
  begin(): void {
    this.t0 = performance.now();
    for (const [name, pids] of Object.entries(this.pids)) this.start.set(name, CpuMeter.read(pids));
  }
  end(): Record<string, number | null> {
    const wall = (performance.now() - this.t0) / 1000;
    const result: Record<string, number | null> = {};
    for (const [name, pids] of Object.entries(this.pids)) {
      const before = this.start.get(name);
      const after = CpuMeter.read(pids);
      result[name] = before != null && after != null ? round((after - before) / wall, 2) : null;
    }
    return result;
  }
}

/** What queries read on one replica: this run's rows after FINAL, distinct ids, rows before it. */
async function readBack(
  ch: ClickHouse,
  prefix: string,
): Promise<{ final_rows: number; distinct_events: number; raw_rows: number }> {
  const like = `${prefix}-%`;
  const [f, r] = await Promise.all([
    ch.query<{ n: string }>(sql`SELECT count() AS n FROM interactions FINAL WHERE event_id LIKE ${like}`),
    ch.query<{ n: string; d: string }>(
      sql`SELECT count() AS n, uniqExact(event_id) AS d FROM interactions WHERE event_id LIKE ${like}`,
    ),
  ]);
  return {
    final_rows: Number(f[0]?.n ?? 0),
    distinct_events: Number(r[0]?.d ?? 0),
    raw_rows: Number(r[0]?.n ?? 0),
  };
}

/** Run on success and on failure, so an aborted run leaves no databases behind. */
const cleanups: Array<() => Promise<void>> = [];
async function runCleanups(): Promise<void> {
  for (const c of cleanups.splice(0).reverse())
    await c().catch((err: Error) => log(`cleanup: ${err.message}`));
}

function perCpuSecond(events: number, cores: number | null | undefined, seconds: number): number | null {
  return cores ? Math.round(events / (cores * seconds)) : null;
}

function countInFile(file: string, needle: string): number {
  try {
    return readFileSync(file, 'utf8').split(needle).length - 1;
  } catch {
    return 0;
  }
}

interface Sample {
  t_s: number;
  stored: number;
  rss_mb: number | null;
}

async function main(): Promise<void> {
  const o = parseOptions(process.argv);
  // Before anything reads the environment: the cluster profile's endpoints replace the defaults.
  const infra = useInfraProfile(o.profile);
  const loadBefore = loadavg().map((x) => round(x, 2));
  const runTag = `bi${Date.now().toString(36)}${randomBytes(2).toString('hex')}`;
  const database = `bench_ingest_${runTag}`;
  const directDatabase = `${database}_direct`;
  const stem = `cprec_bench_${runTag}`;
  const topicPrefix = `${stem}.`;
  const topics = topicsFor(topicPrefix);
  const groupId = `${stem}.ingest`;
  const port = 20000 + Math.floor(Math.random() * 20000);
  const chSettings = { ...clickHouseSettingsFromEnv(), database };
  const kafka = createKafka({ ...kafkaSettingsFromEnv('cprec-bench-ingest'), logLevel: logLevel.ERROR });
  const servers = serverPidsOf(infra, serverPids);
  if (!o.keep)
    cleanups.push(async () => {
      // On the cluster the database exists on every replica (migrations create it on each).
      for (const url of infra.profile === 'cluster' ? infra.clickHouseUrls : [chSettings.url]) {
        const admin = createClickHouse({ ...chSettings, url, database: 'default' });
        try {
          for (const db of [database, directDatabase])
            await admin.command(sql`DROP DATABASE IF EXISTS ${ident(db)}`);
        } finally {
          await admin.close();
        }
      }
    });
  log(
    `run ${runTag}: ${o.events} events, profile ${o.profile}, ${o.replicas} ingest process(es), database ${database}, topics ${topicPrefix}*, group ${groupId} (load average ${loadBefore.join(' ')})`,
  );

  // 1. Generate the events and create the run's topics.
  let t = performance.now();
  const events = await generateEvents(o.events, runTag);
  log(`generated ${events.length} events in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  const removeNamespace = await createBenchNamespace(kafka, stem, topics);
  if (!o.keep) cleanups.push(removeNamespace);

  const profileDir = join(REPO_ROOT, '.cprec', 'profiles');
  if (o.cpuProf) mkdirSync(profileDir, { recursive: true });
  // RecentIds in services/ingest turns quadratic once it holds INGEST_RECENT_IDS ids (see
  // recent-ids.micro.ts), which would make a 1M run measure that bug instead of the pipeline.
  // Storage dedups regardless, so the bench disables the set unless the caller sets it.
  const ingestEnv: Record<string, string> = {
    CPREC_CLICKHOUSE_DB: database,
    INGEST_GROUP_ID: groupId,
    CPREC_TOPIC_PREFIX: topicPrefix,
    INGEST_RECENT_IDS: process.env.INGEST_RECENT_IDS ?? '0',
  };
  // N processes in the one consumer group (the partitions split between them); on the cluster,
  // process i writes to replica ((i − 1) mod replicas), so the inserts are spread too.
  const spawnAll = (): IngestProcess[] =>
    Array.from({ length: o.replicas }, (_, i) =>
      startIngestProcess({
        port: port + i,
        env:
          infra.profile === 'cluster'
            ? { ...ingestEnv, CPREC_CLICKHOUSE_URL: infra.clickHouseUrls[i % infra.clickHouseUrls.length]! }
            : ingestEnv,
        logName: o.replicas === 1 ? `bench-ingest-${runTag}` : `bench-ingest-${runTag}-${i + 1}`,
        nodeArgs: o.cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [],
      }),
    );
  let procs: IngestProcess[] = [];
  let stopped = false;
  const stopAll = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    for (const proc of procs) {
      // A process paused for the join-first start takes SIGTERM only once continued.
      if (proc.child.pid !== undefined && proc.child.exitCode === null)
        try {
          process.kill(proc.child.pid, 'SIGCONT');
        } catch {
          // already gone
        }
      const code = await proc.stop();
      log(`ingest stopped (exit ${code ?? proc.child.signalCode}); log ${proc.logFile}`);
    }
  };
  cleanups.push(stopAll);

  // 2. Produce everything before ingest consumes (the producer rate measured alone).
  //    produce-first: then start the ingest processes; timed from the moment all answer /health.
  //    join-first: start them on the empty topics first, wait until the group holds all N members,
  //    SIGSTOP them while producing and SIGCONT them together; timed from SIGCONT. Otherwise the
  //    first process to boot would consume alone until the others join.
  const joinFirst = o.start === 'join-first';
  let spawnedAt = performance.now();
  if (joinFirst) {
    procs = spawnAll();
    await Promise.all(procs.map((p) => waitForHealth(p)));
    const members = await waitForGroupMembers(kafka, groupId, o.replicas);
    for (const proc of procs) process.kill(proc.child.pid!, 'SIGSTOP');
    log(
      `join-first: ${members} member(s) in ${groupId} after ${((performance.now() - spawnedAt) / 1000).toFixed(1)} s; paused while producing`,
    );
  }
  const producer = kafka.producer({ allowAutoTopicCreation: false });
  await producer.connect();
  const produceCpu = new CpuMeter({ kafka: servers.kafka });
  produceCpu.begin();
  const produceSeconds = await produceAll(producer, topics.interactions, events, o);
  const produceCores = produceCpu.end();
  await producer.disconnect();
  const producerRate = events.length / produceSeconds;
  log(`produced in ${produceSeconds.toFixed(1)} s → ${Math.round(producerRate)} events/s`);

  // 3. The ingest service as its own process(es); time to all N stored.
  if (!joinFirst) {
    procs = spawnAll();
    spawnedAt = performance.now();
  }
  const pids = procs.map((p) => p.child.pid);
  if (pids.some((p) => p === undefined)) throw new Error('an ingest process did not start');
  const pid = pids[0]!;
  const ch = createClickHouse(chSettings);
  const samples: Sample[] = [];
  let peakRss = 0;
  const peakRssEach = procs.map(() => 0);
  let ingestSeconds = 0;
  let profileWindowUs: [number, number] = [0, 0];
  let firstConsumedS: number | null = null;
  let ingestCores: Record<string, number | null> = {};
  const metricsTexts: Array<string | null> = [];
  const rssOf = (): number | null => {
    let total = 0;
    for (const p of pids) {
      const rss = readRssBytes(p!);
      if (rss === null) return null;
      total += rss;
    }
    return total;
  };
  try {
    // RSS is sampled from spawn on (join-first: from the resume), so start-up counts too.
    const rssTimer = setInterval(() => {
      pids.forEach((p, i) => {
        const rss = readRssBytes(p!);
        if (rss !== null) peakRssEach[i] = Math.max(peakRssEach[i]!, rss);
      });
      const total = rssOf();
      if (total !== null) peakRss = Math.max(peakRss, total);
    }, 50);
    try {
      if (joinFirst) for (const p of pids) process.kill(p!, 'SIGCONT');
      else await Promise.all(procs.map((p) => waitForHealth(p)));
      const healthyAt = performance.now();
      const healthyAtMonoUs = Number(process.hrtime.bigint() / 1000n);
      log(
        `ingest ${joinFirst ? 'resumed' : 'healthy'} after ${((healthyAt - spawnedAt) / 1000).toFixed(1)} s (pid ${pids.join(', ')})`,
      );
      // Consumption starts when /health first answers 200: the app listens only after
      // onApplicationBootstrap, which returns once consumer.run() has joined the group, so
      // fetching begins at that moment (polled every 20 ms). The first consumed message seen
      // in /metrics is recorded too, but that endpoint shares the busy event loop, so it lags.
      // With several processes: once the last is healthy (the group's rebalances come after).
      const consumedAt = healthyAt;
      const consumedAtMonoUs = healthyAtMonoUs;
      const cpu = new CpuMeter({
        ingest: pids as number[],
        ...(o.replicas > 1 ? Object.fromEntries(pids.map((p, i) => [`ingest_${i + 1}`, [p!]])) : {}),
        clickhouse: servers.clickhouse,
        kafka: servers.kafka,
      });
      cpu.begin();
      const deadline = performance.now() + o.timeoutS * 1000;
      let lastLog = 0;
      let lastSample = -Infinity;
      for (;;) {
        const now = performance.now();
        if (firstConsumedS === null) {
          const text = await scrapeMetrics(port);
          if (text && counterTotal(text, 'cprec_ingest_consumed_total') > 0)
            firstConsumedS = (performance.now() - consumedAt) / 1000;
        }
        // Progress from part metadata (no scan, so polling costs ClickHouse nothing); the
        // exact count of this run's ids is asked only once the parts hold enough rows.
        const partRows = await activePartRows(ch);
        if (partRows >= o.events || now - lastSample >= 1_000) {
          lastSample = now;
          const rss = rssOf();
          const stored = partRows >= o.events ? await countRun(ch, runTag) : partRows;
          const storedAt = performance.now();
          const storedAtMonoUs = Number(process.hrtime.bigint() / 1000n);
          samples.push({
            t_s: round((now - consumedAt) / 1000, 2),
            stored,
            rss_mb: rss === null ? null : round(rss / MB, 1),
          });
          // A redelivered batch (a rebalance between several processes) can make the row count
          // reach N before every event has arrived: then the distinct ids decide.
          if (stored >= o.events && (o.replicas === 1 || (await distinctRun(ch, runTag)) >= o.events)) {
            // Measured after the count returned: conservative by the query's own latency.
            ingestSeconds = (storedAt - consumedAt) / 1000;
            profileWindowUs = [consumedAtMonoUs, storedAtMonoUs];
            break;
          }
          if (now - lastLog > 5_000) {
            lastLog = now;
            log(`stored ${stored}/${o.events}, rss ${rss === null ? '?' : Math.round(rss / MB)} MB`);
          }
        }
        for (const proc of procs)
          if (proc.child.exitCode !== null || proc.child.signalCode !== null)
            throw new Error(
              `ingest exited early (${proc.child.exitCode ?? proc.child.signalCode}); see ${proc.logFile}`,
            );
        if (now > deadline) throw new Error(`ingest did not store ${o.events} events within ${o.timeoutS} s`);
        await sleep(50);
      }
      ingestCores = cpu.end();
      for (const proc of procs) metricsTexts.push(await scrapeMetrics(proc.port));
    } finally {
      clearInterval(rssTimer);
    }
  } finally {
    await stopAll();
  }
  let profile: ProfileSummary | null = null;
  let profileFile: string | null = null;
  if (o.cpuProf) {
    const name = readdirSync(profileDir).find((f) => f.includes(`.${pid}.`) && f.endsWith('.cpuprofile'));
    if (name) {
      profileFile = join(profileDir, name);
      profile = summarise(JSON.parse(readFileSync(profileFile, 'utf8')) as CpuProfile, profileWindowUs);
      log(`profile ${profileFile} (consumption window only):`);
      for (const k of profile.inclusive)
        log(`  ${(k.share_of_busy * 100).toFixed(1).padStart(5)}%  ${k.label}`);
    } else log(`no CPU profile for pid ${pid} in ${profileDir}`);
  }
  const ingestRate = o.events / ingestSeconds;
  const distinct = await distinctRun(ch, runTag);
  const storedRows = await countRun(ch, runTag);
  log(
    `ingest: ${o.events} in ${ingestSeconds.toFixed(1)} s → ${Math.round(ingestRate)} events/s; distinct ${distinct}, rows ${storedRows}`,
  );
  if (distinct !== o.events) throw new Error(`expected ${o.events} distinct events, found ${distinct}`);

  // Correctness: what queries read (FINAL) on every replica holds each event exactly once. A
  // replica other than the first may still be fetching the last parts: waited for, and timed.
  const correctness: Array<{
    url: string;
    final_rows: number;
    distinct_events: number;
    raw_rows: number;
    caught_up_after_s: number;
  }> = [];
  for (const url of infra.profile === 'cluster' ? infra.clickHouseUrls : [chSettings.url]) {
    const replica = createClickHouse({ ...chSettings, url });
    try {
      const t0 = performance.now();
      const deadline = t0 + 120_000;
      while ((await distinctRun(replica, runTag)) < o.events && performance.now() < deadline)
        await sleep(100);
      const caughtUp = (performance.now() - t0) / 1000;
      correctness.push({ url, ...(await readBack(replica, runTag)), caught_up_after_s: round(caughtUp, 2) });
    } finally {
      await replica.close();
    }
  }
  const exactlyOnce = correctness.every((c) => c.final_rows === o.events && c.distinct_events === o.events);
  for (const c of correctness)
    log(
      `read back on ${c.url}: FINAL ${c.final_rows}, distinct ${c.distinct_events}, raw rows ${c.raw_rows} (after ${c.caught_up_after_s} s)`,
    );
  if (!exactlyOnce) log(`CORRECTNESS: not every replica reads each of the ${o.events} events exactly once`);

  // Steady state: rate between 10 % and 90 % stored, excluding warm-up (JIT) and the tail.
  const at = (fraction: number): Sample | undefined => samples.find((s) => s.stored >= fraction * o.events);
  const s10 = at(0.1);
  const s90 = at(0.9);
  const steadyRate = s10 && s90 && s90.t_s > s10.t_s ? (s90.stored - s10.stored) / (s90.t_s - s10.t_s) : null;

  // 3. Direct bulk insert of the same rows through InteractionRepository.insertBatch (the ceiling).
  await runMigrations({ ...chSettings, database: directDatabase });
  const directCh = createClickHouse({ ...chSettings, database: directDatabase });
  const repository = new InteractionRepository(directCh);
  const records: InteractionRecord[] = events.map((e) => ({
    event_id: e.event_id,
    user_id: e.user_id,
    item_id: e.item_id,
    domain: e.domain,
    ts_ms: e.ts,
    seq: e.seq ?? 0,
    platform: e.platform ?? '',
    title: e.title ?? '',
  }));
  const directCpu = new CpuMeter({ bench: [process.pid], clickhouse: servers.clickhouse });
  directCpu.begin();
  t = performance.now();
  for (let i = 0; i < records.length; i += o.batchRows) {
    await repository.insertBatch(records.slice(i, i + o.batchRows));
  }
  const directSeconds = (performance.now() - t) / 1000;
  const directCores = directCpu.end();
  const directRate = records.length / directSeconds;
  const directDistinct = await distinctRun(directCh, runTag);
  log(
    `direct insert: ${directSeconds.toFixed(1)} s → ${Math.round(directRate)} events/s (distinct ${directDistinct})`,
  );

  // 4. In-process cost of the ingest parse (JSON.parse + zod + limits) on the same messages, to
  //    tell validation time from insert time when the target is missed.
  const sample = events
    .slice(0, Math.min(o.parseSample, events.length))
    .map((e) => Buffer.from(JSON.stringify(e)));
  // CPU time, not wall time: other work on the shared machine must not count against the parser.
  const cpuSecondsOf = (work: () => void): number => {
    const before = process.cpuUsage();
    work();
    const used = process.cpuUsage(before);
    return (used.user + used.system) / 1e6;
  };
  const jsonOnlyRate =
    sample.length / cpuSecondsOf(() => sample.forEach((b) => JSON.parse(b.toString('utf8')) as unknown));
  let rejected = 0;
  const parseRate =
    sample.length /
    cpuSecondsOf(() => sample.forEach((b) => (parseInteraction(b, DEFAULT_LIMITS).ok ? 0 : rejected++)));
  if (rejected > 0) throw new Error(`${rejected} synthetic events failed validation`);
  log(
    `parse (per CPU-second): JSON.parse ${Math.round(jsonOnlyRate)}/s, parseInteraction ${Math.round(parseRate)}/s`,
  );

  await ch.close();
  await directCh.close();

  const ingestEnvUsed = Object.fromEntries(
    Object.entries({ ...process.env, ...ingestEnv }).filter(
      ([k]) => k.startsWith('INGEST_') && k !== 'INGEST_GROUP_ID',
    ),
  ) as Record<string, string>;
  const metricsOf = (text: string | null) =>
    text
      ? {
          consumed: counterTotal(text, 'cprec_ingest_consumed_total'),
          inserted: counterTotal(text, 'cprec_ingest_inserted_total'),
          deduplicated: counterTotal(text, 'cprec_ingest_deduplicated_total'),
          dead_lettered: counterTotal(text, 'cprec_ingest_dead_lettered_total'),
          batches: counterTotal(text, 'cprec_ingest_batch_seconds_count'),
          batch_seconds_sum: round(counterTotal(text, 'cprec_ingest_batch_seconds_sum'), 2),
        }
      : null;
  const perProcess = metricsTexts.map(metricsOf);
  const sumMetrics =
    perProcess.length > 0 && perProcess.every((m) => m !== null)
      ? Object.fromEntries(
          Object.keys(perProcess[0]!).map((k) => [
            k,
            round(
              perProcess.reduce((a, m) => a + m![k as keyof typeof m], 0),
              2,
            ),
          ]),
        )
      : null;
  const loadAfter = loadavg().map((x) => round(x, 2));
  const result = {
    profile: o.profile,
    replicas: o.replicas,
    start: o.start,
    load_average_before: loadBefore,
    load_average_after: loadAfter,
    correctness: { exactly_once: exactlyOnce, per_clickhouse_replica: correctness },
    events: o.events,
    ingest_events_per_s: Math.round(ingestRate),
    direct_insert_events_per_s: Math.round(directRate),
    ratio: round(ingestRate / directRate, 3),
    peak_rss_mb: round(peakRss / MB, 1),
    producer_events_per_s: Math.round(producerRate),
    target: { ratio: 0.5, events_per_s: 50_000 },
    target_met: ingestRate / directRate >= 0.5 && ingestRate >= 50_000,
    details: {
      ingest_seconds: round(ingestSeconds, 2),
      first_consumed_visible_after_s: firstConsumedS === null ? null : round(firstConsumedS, 2),
      ingest_steady_events_per_s: steadyRate === null ? null : Math.round(steadyRate),
      // Cores used on average while ingesting (1.0 = one core busy the whole time).
      ingest_cpu_cores: ingestCores,
      // Contention-independent view: events per CPU-second spent by each process.
      ingest_events_per_cpu_s: perCpuSecond(o.events, ingestCores.ingest, ingestSeconds),
      clickhouse_events_per_cpu_s_during_ingest: perCpuSecond(
        o.events,
        ingestCores.clickhouse,
        ingestSeconds,
      ),
      clickhouse_events_per_cpu_s_during_direct: perCpuSecond(
        o.events,
        directCores.clickhouse,
        directSeconds,
      ),
      bench_client_events_per_cpu_s_during_direct: perCpuSecond(o.events, directCores.bench, directSeconds),
      group_rejoins: procs.reduce((n, p) => n + countInFile(p.logFile, 're-joining the group'), 0),
      offset_commit_failures: procs.reduce((n, p) => n + countInFile(p.logFile, 'offset commit failed'), 0),
      direct_seconds: round(directSeconds, 2),
      direct_batch_rows: o.batchRows,
      direct_cpu_cores: directCores,
      producer_seconds: round(produceSeconds, 2),
      // join-first: the ingest processes were paused this long (beyond the 30 s session
      // timeout, the group evicts them and they rejoin after the resume, inside the timed window).
      paused_s: joinFirst ? round(produceSeconds, 2) : null,
      producer_cpu_cores: produceCores,
      producer: { chunk: o.produceChunk, in_flight: o.produceInFlight, acks: 'all', compression: 'none' },
      parse_json_only_events_per_s: Math.round(jsonOnlyRate),
      parse_interaction_events_per_s: Math.round(parseRate),
      stored_rows: storedRows,
      distinct_events: distinct,
      ingest_env: ingestEnvUsed,
      ingest_metrics: o.replicas === 1 ? (perProcess[0] ?? null) : sumMetrics,
      ...(o.replicas > 1
        ? {
            ingest_metrics_per_process: perProcess,
            peak_rss_mb_per_process: peakRssEach.map((b) => round(b / MB, 1)),
          }
        : {}),
      clickhouse_urls: infra.profile === 'cluster' ? infra.clickHouseUrls : [chSettings.url],
      kafka_brokers: infra.kafkaBrokers,
      cpu_profile: profileFile,
      cpu_profile_summary: profile,
      timeline: samples.filter((_, i) => i % Math.max(1, Math.ceil(samples.length / 60)) === 0),
      load_average_at_end: loadAfter,
    },
    run: runTag,
    date: new Date().toISOString(),
    command: `npx ts-node -r tsconfig-paths/register --transpile-only bench/ingest/ingest.bench.ts --events ${o.events}${o.profile === 'single' ? '' : ` --profile ${o.profile}`}${o.replicas === 1 ? '' : ` --replicas ${o.replicas}`}${o.start === 'join-first' ? ' --start join-first' : ''}`,
    machine: {
      cores: cpus().length,
      cpu: cpus()[0]?.model ?? 'unknown',
      node: process.version,
      platform: process.platform,
    },
  };
  mkdirSync(dirname(o.out), { recursive: true });
  writeFileSync(o.out, `${JSON.stringify(result, null, 2)}\n`);
  log(`wrote ${o.out}`);
  if (!exactlyOnce) process.exitCode = 1;
  process.stdout.write(
    `${JSON.stringify({ profile: result.profile, replicas: result.replicas, exactly_once: exactlyOnce, events: result.events, ingest_events_per_s: result.ingest_events_per_s, direct_insert_events_per_s: result.direct_insert_events_per_s, ratio: result.ratio, peak_rss_mb: result.peak_rss_mb, producer_events_per_s: result.producer_events_per_s })}\n`,
  );
}

void main().then(
  async () => {
    await runCleanups();
    process.exit(process.exitCode ?? 0);
  },
  async (err: unknown) => {
    process.stderr.write(`bench:ingest failed: ${err instanceof Error ? err.stack : String(err)}\n`);
    await runCleanups();
    process.exit(1);
  },
);
