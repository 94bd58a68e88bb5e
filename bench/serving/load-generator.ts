/**
 * The load-generating process of bench:serving (a separate process, so its own work never
 * competes with the server's event loop): open-loop arrivals at a fixed rate — request i is sent
 * at start + i/rate whether or not earlier ones have answered, so a slow server shows up as
 * latency, not as a lower offered rate — for a bounded time and count. Prints one JSON line.
 * With several serving replicas (`urls`), request i goes to replica i mod N (round robin, as a
 * client-side balancer would spread them), and the result is broken down per replica too.
 *
 *   node -r ts-node/register/transpile-only bench/serving/load-generator.ts <config.json>
 */
import { readFileSync } from 'node:fs';
import { request as httpRequest, Agent } from 'node:http';

export interface LoadConfig {
  /** One base URL per serving replica; requests go round robin. */
  urls: string[];
  rate: number;
  durationS: number;
  maxRequests: number;
  /** Request bodies cycled through (pre-built by the bench so this process does no model work). */
  bodies: unknown[];
  /** Requests still unanswered after this long count as errors (timeout). */
  timeoutMs: number;
}

export interface LoadResult {
  rate: number;
  sent: number;
  ok: number;
  errors: number;
  errorsByStatus: Record<string, number>;
  durationS: number;
  latenciesMs: number[];
  adapterIds: Record<string, number>;
  /** The same per replica (in `urls` order). */
  perUrl: Array<{
    url: string;
    sent: number;
    ok: number;
    errors: number;
    errorsByStatus: Record<string, number>;
    latenciesMs: number[];
    adapterIds: Record<string, number>;
  }>;
}

function post(
  agent: Agent,
  url: URL,
  body: string,
  timeoutMs: number,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve) => {
    const req = httpRequest(
      url,
      {
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
        );
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new Error('timeout')));
    req.on('error', (err) => resolve({ status: err.message === 'timeout' ? -1 : 0, text: err.message }));
    req.end(body);
  });
}

async function run(config: LoadConfig): Promise<LoadResult> {
  const urls = config.urls.map((u) => new URL('/v1/recommend', u));
  const perUrl: LoadResult['perUrl'] = config.urls.map((url) => ({
    url,
    sent: 0,
    ok: 0,
    errors: 0,
    errorsByStatus: {},
    latenciesMs: [],
    adapterIds: {},
  }));
  const agent = new Agent({ keepAlive: true, maxSockets: 256 });
  const bodies = config.bodies.map((b) => JSON.stringify(b));
  const total = Math.min(config.maxRequests, Math.floor(config.rate * config.durationS));
  const latencies: number[] = [];
  const errorsByStatus: Record<string, number> = {};
  const adapterIds: Record<string, number> = {};
  const started = performance.now();
  const inflight: Promise<void>[] = [];
  for (let i = 0; i < total; i++) {
    const due = started + (i * 1000) / config.rate;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    const sentAt = performance.now();
    const target = i % urls.length;
    const mine = perUrl[target]!;
    mine.sent++;
    inflight.push(
      post(agent, urls[target]!, bodies[i % bodies.length], config.timeoutMs).then(({ status, text }) => {
        const ms = performance.now() - sentAt;
        if (status === 200) {
          latencies.push(ms);
          mine.latenciesMs.push(ms);
          mine.ok++;
          const id = (JSON.parse(text) as { adapter_id?: string }).adapter_id ?? '?';
          adapterIds[id] = (adapterIds[id] ?? 0) + 1;
          mine.adapterIds[id] = (mine.adapterIds[id] ?? 0) + 1;
        } else {
          const key = status === -1 ? 'timeout' : status === 0 ? 'connection' : String(status);
          errorsByStatus[key] = (errorsByStatus[key] ?? 0) + 1;
          mine.errorsByStatus[key] = (mine.errorsByStatus[key] ?? 0) + 1;
          mine.errors++;
        }
      }),
    );
  }
  await Promise.all(inflight);
  agent.destroy();
  const errors = Object.values(errorsByStatus).reduce((a, b) => a + b, 0);
  return {
    rate: config.rate,
    sent: total,
    ok: latencies.length,
    errors,
    errorsByStatus,
    durationS: (performance.now() - started) / 1000,
    latenciesMs: latencies,
    adapterIds,
    perUrl,
  };
}

if (require.main === module) {
  const config = JSON.parse(readFileSync(process.argv[2] ?? '', 'utf8')) as LoadConfig;
  run(config)
    .then((result) => process.stdout.write(JSON.stringify(result) + '\n'))
    .catch((err: unknown) => {
      process.stderr.write(`load-generator: ${(err as Error).message}\n`);
      process.exit(1);
    });
}
