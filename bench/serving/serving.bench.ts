/**
 * Serving benchmark (issue 8): `/v1/recommend` latency and throughput for 20-candidate requests
 * on stories260K + a LoRA r=8 adapter, driven from a separate load-generating process on loopback.
 *
 *   npm run bench:serving -- [--rate 50] [--duration 30] [--high-rate 100] [--high-duration 15]
 *                            [--out bench/results/serving.json] [--profile single|cluster] [--replicas N]
 *
 * Set-up: a fresh ClickHouse database with a 200-item catalogue, an artefact store in a temp
 * CPREC_HOME, a freshly attached LoRA (rank 8, random non-zero B so it changes the scores) saved
 * and stored, the serving process started on stories260K and switched to the adapter by a real
 * AdapterEvent 'promoted' on the run's own topics (`cprec_bench_serving_<stamp>.*`, removed at the
 * end: a promotion on the installation's topics would switch `npm start`'s serving). Then: sequential warm-up requests (one at a time: the model
 * time without queueing), a step at `--rate` for `--duration` s, a step at `--high-rate`.
 * SERVING_* variables in the environment are passed to the serving process (tuning knobs).
 *
 * Scaling (issue 16): `--replicas N` starts N serving processes, each with its own
 * SERVING_INSTANCE_ID (so its own consumer group for adapter events, as `npm start --replicas
 * serving=N` does); the one promoted event must switch every replica, checked before the load
 * and again in every response's adapter_id. The load generator sends request i to replica
 * i mod N (round robin); the result has total and per-replica throughput, latency percentiles
 * and CPU. `--profile cluster` runs against `bash infra/local/up --cluster` (endpoints from
 * `.cprec/cluster/cluster.env`, bench/infra-profile.ts): replicated catalogue, serving replica i
 * reading ClickHouse replica ((i − 1) mod replicas). Defaults (`single`, 1) are the original run.
 * The result records profile, replicas and the load average before and after.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { Command } from 'commander';
import { LocalArtefactStore } from '@cprec/artefacts';
import {
  clickHouseSettingsFromEnv,
  createClickHouse,
  ident,
  ItemRepository,
  runMigrations,
  sql,
} from '@cprec/clickhouse';
import { topicsFor, type AdapterEvent } from '@cprec/contracts';
import {
  attachLora,
  LlamaModel,
  loadLlama2cCheckpoint,
  mulberry32,
  saveLoraAdapter,
  sha256File,
} from '@cprec/lm';
import { createKafka, kafkaSettingsFromEnv } from '@cprec/messaging';
import { randomPort, startService, type RunningService } from '../../test/support/service-process';
import { parseProfile, parseReplicaCount, useInfraProfile, type InfraProfile } from '../infra-profile';
import { createBenchNamespace } from '../kafka-namespace';
import type { LoadConfig, LoadResult } from './load-generator';

const REPO_ROOT = resolve(__dirname, '../..');
const MODEL = resolve(REPO_ROOT, '../shared/models/stories260K/stories260K.bin');
const TOKENIZER = resolve(REPO_ROOT, '../shared/models/stories260K/tok512.bin');
const DOMAIN = 'stories';
const log = (line: string): void => void process.stderr.write(`[bench:serving] ${line}\n`);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const round = (x: number, digits = 1): number => Number(x.toFixed(digits));

interface Options {
  rate: number;
  duration: number;
  highRate: number;
  highDuration: number;
  maxRequests: number;
  out: string;
  profile: InfraProfile;
  replicas: number;
}

/** A catalogue of short story titles in TinyStories' vocabulary. */
function catalogue(n: number): Array<{ item_id: string; title: string }> {
  const adjectives = ['little', 'big', 'happy', 'red', 'shiny', 'brave', 'sleepy', 'funny', 'tiny', 'kind'];
  const nouns = ['cat', 'dog', 'boat', 'bird', 'tree', 'ball', 'girl', 'boy', 'fish', 'cake', 'park', 'sun'];
  const places = ['in the park', 'at home', 'by the sea', 'in the sky', 'at school'];
  return Array.from({ length: n }, (_, i) => ({
    item_id: `story-${i}`,
    title: `The ${adjectives[i % 10]} ${nouns[(i * 7) % 12]} ${places[(i * 3) % 5]}`,
  }));
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

function summarise(
  result: Pick<LoadResult, 'sent' | 'ok' | 'errors' | 'errorsByStatus' | 'latenciesMs' | 'adapterIds'> & {
    rate: number;
    durationS: number;
  },
  cpuSeconds: number,
) {
  const sorted = [...result.latenciesMs].sort((a, b) => a - b);
  return {
    offered_rps: result.rate,
    rps: round(result.ok / result.durationS, 1),
    sent: result.sent,
    ok: result.ok,
    errors: result.errors,
    errors_by_status: result.errorsByStatus,
    p50_ms: round(percentile(sorted, 50)),
    p95_ms: round(percentile(sorted, 95)),
    p99_ms: round(percentile(sorted, 99)),
    max_ms: round(sorted.at(-1) ?? Number.NaN),
    mean_ms: round(sorted.reduce((a, b) => a + b, 0) / Math.max(1, sorted.length)),
    duration_s: round(result.durationS, 1),
    serving_cpu_s: round(cpuSeconds, 1),
    serving_cpu_ms_per_request: round((cpuSeconds * 1000) / Math.max(1, result.ok)),
    adapter_ids: result.adapterIds,
  };
}

/** user + system CPU seconds of a process (Linux /proc). */
function cpuSecondsOf(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** The adapter a replica serves for the bench's domain (its GET /v1/adapter). */
async function currentAdapter(url: string): Promise<string> {
  return ((await (await fetch(`${url}/v1/adapter?domain=${DOMAIN}`)).json()) as { adapter_id: string })
    .adapter_id;
}

function runLoad(config: LoadConfig): Promise<LoadResult> {
  const file = join(tmpdir(), `cprec-load-${process.pid}-${config.rate}.json`);
  writeFileSync(file, JSON.stringify(config));
  return new Promise((resolveRun, reject) => {
    const child = spawn(
      process.execPath,
      ['-r', 'ts-node/register/transpile-only', join(__dirname, 'load-generator.ts'), file],
      { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
    child.on('exit', (code) => {
      rmSync(file, { force: true });
      if (code !== 0) return reject(new Error(`load generator exited with ${code}`));
      resolveRun(JSON.parse(out) as LoadResult);
    });
  });
}

async function main(opts: Options): Promise<void> {
  try {
    readFileSync(MODEL);
  } catch {
    log(`stories260K not found at ${MODEL}: skipping the serving benchmark`);
    return;
  }
  // Before anything reads the environment: the cluster profile's endpoints replace the defaults.
  const infra = useInfraProfile(opts.profile);
  const loadBefore = loadavg().map((x) => round(x, 2));
  const stamp = Date.now().toString(36);
  const database = `cprec_bench_serving_${stamp}`;
  const settings = { ...clickHouseSettingsFromEnv(), database };
  const chUrls = infra.profile === 'cluster' ? infra.clickHouseUrls : [settings.url];
  log(
    `profile ${opts.profile}, ${opts.replicas} serving replica(s), database ${database} (load average ${loadBefore.join(' ')})`,
  );
  const home = mkdtempSync(join(tmpdir(), 'cprec-bench-serving-'));
  const store = new LocalArtefactStore(join(home, 'artefacts'));
  await runMigrations(settings);
  const ch = createClickHouse(settings);
  const items = catalogue(200);
  await new ItemRepository(ch).upsertBatch(
    items.map((i) => ({ ...i, domain: DOMAIN, attributes: {}, updated_at_ms: 1_000 })),
  );
  // Every replica a serving process reads holds the catalogue before the processes start.
  for (const url of chUrls.slice(1)) {
    const replica = createClickHouse({ ...settings, url });
    try {
      for (let i = 0; ; i++) {
        const rows = await replica.query<{ n: string }>(sql`SELECT count() AS n FROM items`);
        if (Number(rows[0]?.n ?? 0) >= items.length) break;
        if (i > 600) throw new Error(`catalogue not replicated to ${url} after 60 s`);
        await sleep(100);
      }
    } finally {
      await replica.close();
    }
  }

  log('attaching and saving a LoRA r=8 adapter on stories260K');
  const model = new LlamaModel(loadLlama2cCheckpoint(MODEL));
  attachLora(model, { rank: 8, alpha: 16, dropout: 0 }, 1);
  const rand = mulberry32(2);
  for (const [name, v] of model.loraVariables())
    if (name.endsWith('lora_B'))
      v.assign(
        tf.tensor(
          Float32Array.from({ length: v.size }, () => (rand() - 0.5) * 0.04),
          v.shape,
        ),
      );
  const adapterDir = join(home, 'adapter-src');
  saveLoraAdapter(model, adapterDir, {
    baseModelId: 'stories260K.bin',
    baseChecksum: await sha256File(MODEL),
    lineage: { bench: true },
  });
  model.dispose();
  const record = await store.put('adapters/bench-lora-r8', adapterDir);

  const kafka = createKafka(kafkaSettingsFromEnv('cprec-bench-serving'));
  // The run's own topics: a promotion on the installation's would switch `npm start`'s serving.
  const stem = `cprec_bench_serving_${stamp}`;
  const topics = topicsFor(`${stem}.`);
  const groupId = `${stem}.serving`;
  const instances = Array.from({ length: opts.replicas }, (_, i) => `bench-${stamp}-${i + 1}`);
  const removeNamespace = await createBenchNamespace(kafka, stem, topics);
  const producer = kafka.producer();
  await producer.connect();
  const servings: RunningService[] = [];
  try {
    const servingEnv: Record<string, string> = {
      CPREC_CLICKHOUSE_DB: database,
      CPREC_HOME: home,
      CPREC_TOPIC_PREFIX: `${stem}.`,
      // Under the namespace's serving group prefix: its ACL lets the serving principal use only those.
      SERVING_GROUP_ID: groupId,
      SERVING_MODEL: 'llama2c',
      SERVING_BASE_MODEL: MODEL,
      SERVING_TOKENIZER: TOKENIZER,
    };
    for (const [k, v] of Object.entries(process.env))
      if (k.startsWith('SERVING_') && v !== undefined) servingEnv[k] = v;
    // Each replica its own instance id, so its own consumer group: each sees the promotion.
    const started = await Promise.allSettled(
      Array.from({ length: opts.replicas }, (_, i) =>
        startService(
          'serving',
          randomPort() + i,
          {
            ...servingEnv,
            ...(opts.replicas > 1 ? { SERVING_INSTANCE_ID: instances[i]! } : {}),
            ...(infra.profile === 'cluster' ? { CPREC_CLICKHOUSE_URL: chUrls[i % chUrls.length]! } : {}),
          },
          'SERVING_PORT',
          240_000,
        ),
      ),
    );
    for (const s of started) if (s.status === 'fulfilled') servings.push(s.value);
    const failed = started.find((s) => s.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
    const urls = servings.map((s) => `http://127.0.0.1:${s.port}`);
    const event: AdapterEvent = {
      kind: 'promoted',
      adapter_id: 'bench-lora-r8',
      uri: record.uri,
      sha256: record.sha256,
      target_domains: [DOMAIN],
      hr1: {},
      reasons: ['bench'],
      ts: Date.now(),
    };
    const sentAt = performance.now();
    await producer.send({
      topic: topics.adapters,
      messages: [{ key: event.adapter_id, value: JSON.stringify(event) }],
    });
    const swapSeconds: number[] = [];
    for (const url of urls) {
      for (let i = 0; ; i++) {
        const current = await currentAdapter(url);
        if (current === 'bench-lora-r8') break;
        if (i > 120) throw new Error(`serving ${url} did not switch to the adapter (serving ${current})`);
        await sleep(500);
      }
      swapSeconds.push(round((performance.now() - sentAt) / 1000, 1));
    }
    log(`every serving replica switched to bench-lora-r8 (after ${swapSeconds.join(', ')} s)`);

    // 20 candidates, 5 history items, k = 10; 100 distinct bodies cycled.
    const pick = mulberry32(7);
    const bodies = Array.from({ length: 100 }, () => {
      const ids = new Set<string>();
      while (ids.size < 25) ids.add(items[Math.floor(pick() * items.length)].item_id);
      const all = [...ids];
      return { history: all.slice(0, 5), domain: DOMAIN, candidate_ids: all.slice(5), k: 10 };
    });

    // One at a time, 40 per replica (round robin), the first 10 per replica as warm-up.
    const sequential: number[] = [];
    for (let i = 0; i < 40 * urls.length; i++) {
      const t = performance.now();
      const res = await fetch(`${urls[i % urls.length]}/v1/recommend`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(bodies[i % bodies.length]),
      });
      if (res.status !== 200) throw new Error(`warm-up request failed: ${res.status} ${await res.text()}`);
      await res.text();
      if (i >= 10 * urls.length) sequential.push(performance.now() - t);
    }
    sequential.sort((a, b) => a - b);
    log(
      `sequential (one at a time): p50 ${round(percentile(sequential, 50))} ms, p99 ${round(percentile(sequential, 99))} ms`,
    );

    const pids = servings.map((s) => s.child.pid!);
    type Step = ReturnType<typeof summarise> & {
      load_average_1m: number;
      per_replica?: Array<{ url: string } & ReturnType<typeof summarise>>;
    };
    const steps: Array<{ step: Step; perUrl: LoadResult['perUrl'] }> = [];
    for (const [rate, durationS] of [
      [opts.rate, opts.duration],
      [opts.highRate, opts.highDuration],
    ]) {
      if (rate <= 0 || durationS <= 0) continue;
      const load = avgLoad();
      const cpuBefore = pids.map(cpuSecondsOf);
      log(`step: ${rate} req/s for ${durationS} s over ${urls.length} replica(s) (load average ${load})`);
      const result = await runLoad({
        urls,
        rate,
        durationS,
        maxRequests: opts.maxRequests,
        bodies,
        timeoutMs: 10_000,
      });
      const cpuUsed = pids.map((p, i) => cpuSecondsOf(p) - cpuBefore[i]!);
      const step: Step = {
        ...summarise(
          result,
          cpuUsed.reduce((a, b) => a + b, 0),
        ),
        load_average_1m: load,
        ...(urls.length > 1
          ? {
              per_replica: result.perUrl.map((r, i) => ({
                url: r.url,
                ...summarise({ ...r, rate: rate / urls.length, durationS: result.durationS }, cpuUsed[i]!),
              })),
            }
          : {}),
      };
      log(
        `  ${step.rps} req/s answered, p50 ${step.p50_ms} ms, p95 ${step.p95_ms} ms, p99 ${step.p99_ms} ms, errors ${step.errors}, serving CPU ${step.serving_cpu_ms_per_request} ms/request`,
      );
      for (const r of step.per_replica ?? [])
        log(`    ${r.url}: ${r.rps} req/s, p50 ${r.p50_ms} ms, p99 ${r.p99_ms} ms, errors ${r.errors}`);
      steps.push({ step, perUrl: result.perUrl });
      await sleep(1_000);
    }
    // Hot swap: every replica answered every request with the promoted adapter.
    const everyReplicaPromoted = urls.every((url) =>
      steps.every(({ perUrl }) => {
        const mine = perUrl.find((r) => r.url === url);
        return (
          mine !== undefined &&
          mine.ok > 0 &&
          Object.keys(mine.adapterIds).every((id) => id === 'bench-lora-r8')
        );
      }),
    );
    if (!everyReplicaPromoted) log('HOT SWAP: not every replica answered with bench-lora-r8');
    let batchCount = 0;
    let batchSum = 0;
    for (const url of urls) {
      const metrics = await (await fetch(`${url}/metrics`)).text();
      batchCount += Number(/cprec_serving_batch_size_count(?:\{[^}]*\})? (\d+)/.exec(metrics)?.[1] ?? 0);
      batchSum += Number(/cprec_serving_batch_size_sum(?:\{[^}]*\})? ([\d.]+)/.exec(metrics)?.[1] ?? 0);
    }
    const main = steps[0]?.step;
    const result = {
      benchmark: 'serving',
      profile: opts.profile,
      replicas: opts.replicas,
      load_average_before: loadBefore,
      load_average_after: loadavg().map((x) => round(x, 2)),
      model: 'stories260K + LoRA r=8 (merged)',
      candidates: 20,
      history: 5,
      k: 10,
      rps: main?.rps ?? null,
      p50_ms: main?.p50_ms ?? null,
      p95_ms: main?.p95_ms ?? null,
      p99_ms: main?.p99_ms ?? null,
      errors: steps.reduce((n, s) => n + s.step.errors, 0),
      target: {
        rps: 50,
        p99_ms: 50,
        met: main ? main.p99_ms <= 50 && main.errors === 0 && main.offered_rps >= 50 : false,
      },
      hot_swap: {
        adapter_id: 'bench-lora-r8',
        every_replica_promoted: everyReplicaPromoted,
        switched_after_s: swapSeconds,
        per_replica: urls.map((url) => ({
          url,
          adapter_ids: steps.map(({ perUrl }) => perUrl.find((r) => r.url === url)?.adapterIds ?? {}),
        })),
      },
      sequential_p50_ms: round(percentile(sequential, 50)),
      sequential_p99_ms: round(percentile(sequential, 99)),
      mean_batch_size: batchCount > 0 ? round(batchSum / batchCount, 2) : null,
      steps: steps.map((s) => s.step),
      machine: { cpus: cpus().length, load_average_1m_end: avgLoad(), node: process.version },
      clickhouse_urls: chUrls,
      kafka_brokers: infra.kafkaBrokers,
      serving_env: Object.fromEntries(
        Object.entries(servingEnv).filter(([k]) => k.startsWith('SERVING_') && k !== 'SERVING_GROUP_ID'),
      ),
      measured_at: new Date().toISOString(),
    };
    mkdirSync(dirname(resolve(opts.out)), { recursive: true });
    writeFileSync(resolve(opts.out), JSON.stringify(result, null, 2) + '\n');
    log(`wrote ${opts.out}`);
    if (!everyReplicaPromoted) process.exitCode = 1;
    process.stdout.write(
      JSON.stringify({
        profile: result.profile,
        replicas: result.replicas,
        every_replica_promoted: everyReplicaPromoted,
        rps: result.rps,
        p50_ms: result.p50_ms,
        p95_ms: result.p95_ms,
        p99_ms: result.p99_ms,
        errors: result.errors,
      }) + '\n',
    );
  } finally {
    await Promise.all(servings.map((s) => s.stop()));
    await producer.disconnect();
    await removeNamespace().catch((err: Error) => log(`removing the run's topics: ${err.message}`));
    // On the cluster the database exists on every replica (migrations create it on each).
    for (const url of chUrls) {
      const admin = url === settings.url ? ch : createClickHouse({ ...settings, url });
      await admin.command(sql`DROP DATABASE IF EXISTS ${ident(database)}`).catch((err: Error) => {
        log(`drop ${database} on ${url}: ${err.message}`);
      });
      if (admin !== ch) await admin.close();
    }
    await ch.close();
    rmSync(home, { recursive: true, force: true });
  }
}

const avgLoad = (): number => round(loadavg()[0], 2);

const program = new Command('serving.bench')
  .option('--rate <n>', 'requests per second of the main step (over all replicas)', '50')
  .option('--duration <s>', 'seconds of the main step', '30')
  .option('--high-rate <n>', 'requests per second of the higher step (0 = skip)', '100')
  .option('--high-duration <s>', 'seconds of the higher step', '15')
  .option('--max-requests <n>', 'upper bound on requests per step', '5000')
  .option('--out <file>', 'result file', 'bench/results/serving.json')
  .option(
    '--profile <name>',
    'servers: single (infra/local/up) or cluster (up --cluster)',
    parseProfile,
    'single',
  )
  .option('--replicas <n>', 'serving processes; requests go round robin', parseReplicaCount, 1)
  .parse(process.argv);
const o = program.opts<Record<string, string> & { profile: InfraProfile; replicas: number }>();
main({
  rate: Number(o.rate),
  duration: Number(o.duration),
  highRate: Number(o.highRate),
  highDuration: Number(o.highDuration),
  maxRequests: Number(o.maxRequests),
  out: o.out,
  profile: o.profile,
  replicas: o.replicas,
}).catch((err: unknown) => {
  log(`failed: ${err instanceof Error ? err.stack : String(err)}`);
  process.exit(1);
});
