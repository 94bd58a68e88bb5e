/**
 * Serving benchmark (issue 8): `/v1/recommend` latency and throughput for 20-candidate requests
 * on stories260K + a LoRA r=8 adapter, driven from a separate load-generating process on loopback.
 *
 *   npm run bench:serving -- [--rate 50] [--duration 30] [--high-rate 100] [--high-duration 15]
 *                            [--out bench/results/serving.json]
 *
 * Set-up: a fresh ClickHouse database with a 200-item catalogue, an artefact store in a temp
 * CPREC_HOME, a freshly attached LoRA (rank 8, random non-zero B so it changes the scores) saved
 * and stored, the serving process started on stories260K and switched to the adapter by a real
 * AdapterEvent 'promoted' on Kafka. Then: sequential warm-up requests (one at a time: the model
 * time without queueing), a step at `--rate` for `--duration` s, a step at `--high-rate`.
 * SERVING_* variables in the environment are passed to the serving process (tuning knobs).
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
import { TOPICS, type AdapterEvent } from '@cprec/contracts';
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

function summarise(result: LoadResult, cpuSeconds: number) {
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
  const database = `cprec_bench_serving_${Date.now().toString(36)}`;
  const settings = { ...clickHouseSettingsFromEnv(), database };
  const home = mkdtempSync(join(tmpdir(), 'cprec-bench-serving-'));
  const store = new LocalArtefactStore(join(home, 'artefacts'));
  await runMigrations(settings);
  const ch = createClickHouse(settings);
  const items = catalogue(200);
  await new ItemRepository(ch).upsertBatch(
    items.map((i) => ({ ...i, domain: DOMAIN, attributes: {}, updated_at_ms: 1_000 })),
  );

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
  const producer = kafka.producer();
  await producer.connect();
  let serving: RunningService | null = null;
  try {
    const port = randomPort();
    const url = `http://127.0.0.1:${port}`;
    const servingEnv: Record<string, string> = {
      CPREC_CLICKHOUSE_DB: database,
      CPREC_HOME: home,
      // Under serving's own group prefix: its ACL lets the serving principal use only those groups.
      SERVING_GROUP_ID: `cprec-serving-bench-${Date.now().toString(36)}`,
      SERVING_MODEL: 'llama2c',
      SERVING_BASE_MODEL: MODEL,
      SERVING_TOKENIZER: TOKENIZER,
    };
    for (const [k, v] of Object.entries(process.env))
      if (k.startsWith('SERVING_') && v !== undefined) servingEnv[k] = v;
    serving = await startService('serving', port, servingEnv, 'SERVING_PORT', 180_000);
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
    await producer.send({
      topic: TOPICS.adapters,
      messages: [{ key: event.adapter_id, value: JSON.stringify(event) }],
    });
    for (let i = 0; ; i++) {
      const current = (await (await fetch(`${url}/v1/adapter?domain=${DOMAIN}`)).json()) as {
        adapter_id: string;
      };
      if (current.adapter_id === 'bench-lora-r8') break;
      if (i > 120) throw new Error(`serving did not switch to the adapter (serving ${current.adapter_id})`);
      await sleep(500);
    }
    log('serving switched to bench-lora-r8');

    // 20 candidates, 5 history items, k = 10; 100 distinct bodies cycled.
    const pick = mulberry32(7);
    const bodies = Array.from({ length: 100 }, () => {
      const ids = new Set<string>();
      while (ids.size < 25) ids.add(items[Math.floor(pick() * items.length)].item_id);
      const all = [...ids];
      return { history: all.slice(0, 5), domain: DOMAIN, candidate_ids: all.slice(5), k: 10 };
    });

    const sequential: number[] = [];
    for (let i = 0; i < 40; i++) {
      const t = performance.now();
      const res = await fetch(`${url}/v1/recommend`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(bodies[i % bodies.length]),
      });
      if (res.status !== 200) throw new Error(`warm-up request failed: ${res.status} ${await res.text()}`);
      await res.text();
      if (i >= 10) sequential.push(performance.now() - t);
    }
    sequential.sort((a, b) => a - b);
    log(
      `sequential (one at a time): p50 ${round(percentile(sequential, 50))} ms, p99 ${round(percentile(sequential, 99))} ms`,
    );

    const steps = [];
    for (const [rate, durationS] of [
      [opts.rate, opts.duration],
      [opts.highRate, opts.highDuration],
    ]) {
      if (rate <= 0 || durationS <= 0) continue;
      const load = avgLoad();
      const cpuBefore = cpuSecondsOf(serving.child.pid!);
      log(`step: ${rate} req/s for ${durationS} s (load average ${load})`);
      const result = await runLoad({
        url,
        rate,
        durationS,
        maxRequests: opts.maxRequests,
        bodies,
        timeoutMs: 10_000,
      });
      const step = {
        ...summarise(result, cpuSecondsOf(serving.child.pid!) - cpuBefore),
        load_average_1m: load,
      };
      log(
        `  ${step.rps} req/s answered, p50 ${step.p50_ms} ms, p95 ${step.p95_ms} ms, p99 ${step.p99_ms} ms, errors ${step.errors}, serving CPU ${step.serving_cpu_ms_per_request} ms/request`,
      );
      steps.push(step);
      await sleep(1_000);
    }
    const metrics = await (await fetch(`${url}/metrics`)).text();
    const batchCount = Number(/cprec_serving_batch_size_count(?:\{[^}]*\})? (\d+)/.exec(metrics)?.[1] ?? 0);
    const batchSum = Number(/cprec_serving_batch_size_sum(?:\{[^}]*\})? ([\d.]+)/.exec(metrics)?.[1] ?? 0);
    const main = steps[0];
    const result = {
      benchmark: 'serving',
      model: 'stories260K + LoRA r=8 (merged)',
      candidates: 20,
      history: 5,
      k: 10,
      rps: main?.rps ?? null,
      p50_ms: main?.p50_ms ?? null,
      p95_ms: main?.p95_ms ?? null,
      p99_ms: main?.p99_ms ?? null,
      errors: steps.reduce((n, s) => n + s.errors, 0),
      target: {
        rps: 50,
        p99_ms: 50,
        met: main ? main.p99_ms <= 50 && main.errors === 0 && main.offered_rps >= 50 : false,
      },
      sequential_p50_ms: round(percentile(sequential, 50)),
      sequential_p99_ms: round(percentile(sequential, 99)),
      mean_batch_size: batchCount > 0 ? round(batchSum / batchCount, 2) : null,
      steps,
      machine: { cpus: cpus().length, load_average_1m_end: avgLoad(), node: process.version },
      serving_env: Object.fromEntries(
        Object.entries(servingEnv).filter(([k]) => k.startsWith('SERVING_') && k !== 'SERVING_GROUP_ID'),
      ),
      measured_at: new Date().toISOString(),
    };
    mkdirSync(dirname(resolve(opts.out)), { recursive: true });
    writeFileSync(resolve(opts.out), JSON.stringify(result, null, 2) + '\n');
    log(`wrote ${opts.out}`);
    process.stdout.write(
      JSON.stringify({
        rps: result.rps,
        p50_ms: result.p50_ms,
        p95_ms: result.p95_ms,
        p99_ms: result.p99_ms,
        errors: result.errors,
      }) + '\n',
    );
  } finally {
    await serving?.stop();
    await producer.disconnect();
    await ch.command(sql`DROP DATABASE IF EXISTS ${ident(database)}`);
    await ch.close();
    rmSync(home, { recursive: true, force: true });
  }
}

const avgLoad = (): number => round(loadavg()[0], 2);

const program = new Command('serving.bench')
  .option('--rate <n>', 'requests per second of the main step', '50')
  .option('--duration <s>', 'seconds of the main step', '30')
  .option('--high-rate <n>', 'requests per second of the higher step (0 = skip)', '100')
  .option('--high-duration <s>', 'seconds of the higher step', '15')
  .option('--max-requests <n>', 'upper bound on requests per step', '5000')
  .option('--out <file>', 'result file', 'bench/results/serving.json')
  .parse(process.argv);
const o = program.opts<Record<string, string>>();
main({
  rate: Number(o.rate),
  duration: Number(o.duration),
  highRate: Number(o.highRate),
  highDuration: Number(o.highDuration),
  maxRequests: Number(o.maxRequests),
  out: o.out,
}).catch((err: unknown) => {
  log(`failed: ${err instanceof Error ? err.stack : String(err)}`);
  process.exit(1);
});
