import { existsSync } from 'node:fs';
import { Socket } from 'node:net';
import { Command } from 'commander';
import { resolve } from 'node:path';
import {
  autoDecisions,
  BackendPreference,
  baseModelContextLength,
  baseModelFormat,
  defaultPromptTokens,
  selectBackend,
  tensorflowInfo,
  tfjsNodeGpuInstalled,
} from '@cprec/lm';
import { loadNativeAddon } from '@cprec/lm/kernels/native-addon';

interface Check {
  name: string;
  /** false only for problems; optional extras that are absent (tfjs-node) stay ok. */
  ok: boolean;
  detail: string;
}

/** TCP connect with a timeout: Kafka's wire protocol is not needed to know the broker is listening. */
function tcpReachable(host: string, port: number, timeoutMs: number): Promise<string | null> {
  return new Promise((resolve) => {
    const socket = new Socket();
    const done = (err: string | null): void => {
      socket.destroy();
      resolve(err);
    };
    socket.setTimeout(timeoutMs, () => done(`timeout after ${timeoutMs} ms`));
    socket.once('error', (e) => done(e.message));
    socket.connect(port, host, () => done(null));
  });
}

async function kafkaCheck(brokers: string): Promise<Check> {
  const results = await Promise.all(
    brokers.split(',').map(async (b) => {
      const [host, portStr] = b.trim().split(':');
      const err = await tcpReachable(host, Number(portStr ?? 9092), 2000);
      return err ? `${b}: ${err}` : null;
    }),
  );
  const failures = results.filter((r): r is string => r !== null);
  return {
    name: 'kafka',
    ok: failures.length === 0,
    detail: failures.length === 0 ? `reachable: ${brokers}` : failures.join('; '),
  };
}

async function clickhouseCheck(url: string): Promise<Check> {
  try {
    const res = await fetch(new URL('/ping', url), { signal: AbortSignal.timeout(2000) });
    const body = (await res.text()).trim();
    return { name: 'clickhouse', ok: res.ok, detail: `${url} answered ${res.status} ${body}` };
  } catch (e) {
    return { name: 'clickhouse', ok: false, detail: `${url}: ${e instanceof Error ? e.message : String(e)}` };
  }
}

function openblasCheck(): Check {
  const candidates = [
    '/usr/lib/x86_64-linux-gnu/libopenblas.so',
    '/usr/lib/x86_64-linux-gnu/libopenblas.so.0',
    '/usr/lib/aarch64-linux-gnu/libopenblas.so',
    '/usr/lib/aarch64-linux-gnu/libopenblas.so.0',
    '/usr/lib/libopenblas.so',
    '/usr/local/lib/libopenblas.so',
  ];
  const found = candidates.find((p) => existsSync(p));
  return {
    name: 'openblas',
    ok: found !== undefined,
    detail: found ?? 'libopenblas not found (apt-get install libopenblas-dev)',
  };
}

/** What the loaded addon runs: instruction-set variant, BLAS core and threads. */
function nativeDetail(): string {
  const info = loadNativeAddon().addon?.describe();
  if (!info) return 'registered';
  return `registered (isa ${info.isa ?? 'unknown'}; ${info.blasConfig}; ${info.ompThreads} OpenMP threads; malloc ${(info as { mallocTuning?: string }).mallocTuning ?? 'default'})`;
}

/**
 * The `tensorflow` backend (@tensorflow/tfjs-node from the TensorFlow wheel, scripts/install-tfjs-node.sh):
 * TensorFlow's version, thread pools and the CPU's instruction sets; then what `auto` measured and
 * decided here (node_modules/.cache/cprec/backend-auto.json). Optional: absent is not a failure.
 */
function tfjsNodeCheck(): Check {
  const indent = '\n' + ' '.repeat(22);
  const lines: string[] = [];
  let ok = true;
  try {
    const tf = tensorflowInfo();
    if (!tf) lines.push('@tensorflow/tfjs-node absent (optional: bash scripts/install-tfjs-node.sh)');
    else {
      ok = tf.tensorflowVersion !== null;
      lines.push(
        `${tf.package} ${tf.packageVersion ?? '?'}: TensorFlow ${tf.tensorflowVersion ?? 'failed to load'}` +
          `${tf.oneDnn ? ' (oneDNN on)' : ''}, ${tf.intraOpThreads} intra-op / ${tf.interOpThreads} inter-op threads,` +
          ` CPU ${tf.isa.join(' ') || 'unknown'}${tf.gpu ? ', GPU in use' : ''}`,
      );
    }
  } catch (e) {
    ok = false;
    lines.push(`tfjs-node failed: ${e instanceof Error ? e.message : String(e)}`);
  }
  lines.push(
    `tfjs-node-gpu ${tfjsNodeGpuInstalled() ? 'installed' : 'absent (optional: infra/gpu/install)'}`,
  );
  const auto = autoDecisions();
  if (process.env.CPREC_BACKEND) lines.push(`auto: CPREC_BACKEND=${process.env.CPREC_BACKEND} decides`);
  lines.push(
    auto.decisions.length === 0
      ? `auto: nothing measured yet (${auto.file})`
      : `auto${auto.current ? '' : ' (stale: machine or libraries changed, measured again on next use)'}, ${auto.file}:`,
  );
  for (const d of auto.decisions) {
    const times = Object.entries(d.msPerRun)
      .map(
        ([b, ms]) =>
          `${b} ${Math.round(ms)} ms${d.rssMb?.[b as BackendPreference] ? ` ~${d.rssMb[b as BackendPreference]} MB` : ''}`,
      )
      .join(', ');
    lines.push(
      `  ${d.model} ${d.workload}${d.shape ? ` ${d.shape.batch}x${d.shape.seq}` : ''} -> ${d.backend} (${times}; load ${d.loadAverage ?? '?'})`,
    );
  }
  return { name: 'tfjs-node', ok, detail: lines.join(indent) };
}

/** The base model the services would load (CPREC_BASE_MODEL), from its header only. */
function baseModelCheck(): Check {
  const path =
    process.env.CPREC_BASE_MODEL ??
    resolve(__dirname, '../../../../shared/models/stories260K/stories260K.bin');
  try {
    const context = baseModelContextLength(path);
    return {
      name: 'base-model',
      ok: true,
      detail: `${path} (${baseModelFormat(path)}, context ${context}, default prompt budget ${defaultPromptTokens(context)})`,
    };
  } catch (e) {
    return { name: 'base-model', ok: false, detail: e instanceof Error ? e.message : String(e) };
  }
}

/** `cprec doctor`: what this machine offers to cprec (runtime, tfjs backend, native kernels, servers). */
export function register(program: Command): void {
  program
    .command('doctor')
    .description(
      'report node, tfjs backend, native kernels, tfjs-node, openblas, Kafka and ClickHouse reachability',
    )
    .option('--json', 'print a JSON report')
    .option('--backend <name>', 'backend preference to test (auto | cpu | wasm | tensorflow)', 'auto')
    .action(async (flags: { json?: boolean; backend: BackendPreference }) => {
      const brokers = process.env.CPREC_KAFKA_BROKERS ?? '127.0.0.1:19092';
      const chUrl = process.env.CPREC_CLICKHOUSE_URL ?? 'http://127.0.0.1:18123';
      const backend = await selectBackend(flags.backend).catch((e: unknown) =>
        e instanceof Error ? e : new Error(String(e)),
      );
      const checks: Check[] = [
        { name: 'node', ok: Number(process.versions.node.split('.')[0]) >= 20, detail: process.version },
        backend instanceof Error
          ? { name: 'tfjs-backend', ok: false, detail: backend.message }
          : { name: 'tfjs-backend', ok: true, detail: `${backend.backend} (${backend.source})` },
        {
          name: 'native-kernels',
          ok: !(backend instanceof Error) && backend.nativeKernels,
          detail:
            backend instanceof Error
              ? 'backend failed'
              : backend.nativeKernels
                ? nativeDetail()
                : backend.notes.join('; ') || 'not registered',
        },
        tfjsNodeCheck(),
        openblasCheck(),
        baseModelCheck(),
        await kafkaCheck(brokers),
        await clickhouseCheck(chUrl),
      ];
      if (flags.json) {
        process.stdout.write(
          JSON.stringify({ checks, backend: backend instanceof Error ? null : backend }, null, 2) + '\n',
        );
        return;
      }
      for (const c of checks)
        process.stdout.write(`${c.ok ? 'ok  ' : 'FAIL'}  ${c.name.padEnd(15)} ${c.detail}\n`);
    });
}
