import { ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Browser, chromium } from 'playwright-core';
import { sql } from '@cprec/clickhouse';
import { useNamespace } from '../support/harness';
import { eventually, randomPort, REPO_ROOT } from '../support/service-process';

/**
 * `npm start`'s live mode end to end, on real Kafka and ClickHouse with the tiny-random model: the
 * `cprec demo` process itself (every service, the stream, its console) in a namespace of its own,
 * on a small synthetic stream at an accelerated clock. Rounds start by the trainer's policy only
 * (the backlog's volume, then stream time); the evaluator gates the adapters and scores the
 * adapter serving each domain on every closed event-time window; the dashboard shows it in
 * Chromium while it runs; `--exit --rounds 2` ends it with the HR@1 timeline.
 */
const CHROMIUM = process.env.CPREC_CHROMIUM ?? '/usr/bin/chromium';
const ns = useNamespace('e2e_live', { migrate: false, topics: false });
const token = randomBytes(12).toString('hex');
const targets = ['beauty', 'games'];
const operatorPort = randomPort();
const SCREENSHOT = join(REPO_ROOT, '.cprec', 'screenshots', 'live-dashboard.png');

const env: Record<string, string> = {
  ...ns.env,
  OPERATOR_TOKEN: token,
  OPERATOR_PORT: String(operatorPort),
  INGEST_PORT: String(randomPort()),
  SEQUENCER_PORT: String(randomPort()),
  TRAINER_PORT: String(randomPort()),
  EVALUATOR_PORT: String(randomPort()),
  SERVING_PORT: String(randomPort()),
  INGEST_GROUP_ID: ns.group('ingest'),
  INGEST_FLUSH_INTERVAL_MS: '300',
  SEQUENCER_CLIENT_ID: ns.group('sequencer'),
  SEQUENCER_INTERVAL_MS: '1000',
  SEQUENCER_SAFETY_MARGIN_MS: '2000',
  TRAINER_GROUP_ID: ns.group('trainer'),
  TRAINER_MODEL: 'tiny-random',
  TRAINER_MAX_TOKENS: '128',
  TRAINER_MAX_STEPS_PER_ROUND: '8',
  TRAINER_SFT_MAX_SAMPLES: '32',
  TRAINER_SFT_MAX_VALIDATION: '8',
  TRAINER_SASREC_EPOCHS: '3',
  TRAINER_SASREC_TIME_BUDGET_MS: '3000',
  TRAINER_COMMAND_MAX_AGE_MS: '600000',
  EVALUATOR_GROUP_ID: ns.group('evaluator'),
  EVALUATOR_MODEL: 'tiny-random',
  EVALUATOR_MAX_TOKENS: '128',
  EVALUATOR_MAX_EXAMPLES: '20',
  EVALUATOR_GATE_MIN_SAMPLES: '5',
  // A random-weight model's HR@1 is noise: let every sane adapter through, so both rounds serve.
  EVALUATOR_GATE_MAX_HR1_DROP: '1',
  EVALUATOR_DRIFT_INTERVAL_MS: '1000',
  SERVING_GROUP_ID: ns.group('serving'),
  SERVING_MODEL: 'tiny-random',
  SERVING_MAX_TOKENS: '128',
};

let demo: ChildProcess;
let output = '';
let exitCode: Promise<number | null>;
let browser: Browser | null = null;

const base = `http://127.0.0.1:${operatorPort}`;
async function api<T>(path: string): Promise<T> {
  const res = await fetch(`${base}${path}`);
  if (!res.ok) throw new Error(`GET ${path}: ${res.status}`);
  return (await res.json()) as T;
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM))
    throw new Error(
      `Chromium not found at ${CHROMIUM}: install Debian's chromium package or set CPREC_CHROMIUM`,
    );
  const logDir = join(REPO_ROOT, '.cprec', 'logs');
  mkdirSync(logDir, { recursive: true });
  const log = createWriteStream(join(logDir, `test-live-demo-${operatorPort}.log`));
  demo = spawn(
    process.execPath,
    [
      '-r',
      'ts-node/register/transpile-only',
      '-r',
      'tsconfig-paths/register',
      join(REPO_ROOT, 'cli/src/main.ts'),
      'demo',
      '--synthetic',
      '--users',
      '400',
      '--speed',
      '1',
      '--backlog',
      '0.5',
      '--round-after',
      '1500',
      '--round-every',
      '120',
      '--window',
      '30',
      '--targets',
      targets.join(','),
      '--exit',
      '--rounds',
      '2',
      '--timeout-min',
      '12',
    ],
    { cwd: REPO_ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  for (const stream of [demo.stdout!, demo.stderr!])
    stream.on('data', (chunk: Buffer) => {
      output += chunk.toString('utf8');
      log.write(chunk);
    });
  exitCode = new Promise((resolve) => demo.once('exit', (code) => resolve(code)));
  ns.onTearDown(async () => {
    if (demo.exitCode === null && demo.signalCode === null) {
      demo.kill('SIGTERM');
      await exitCode;
    }
    log.end();
  });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--disable-background-networking',
    ],
  });
}, 120_000);

afterAll(async () => {
  await browser?.close();
});

interface Drift {
  series: Array<{ adapter_id: string; domain: string; window_end_ms: number; ts_ms: number }>;
  promotions: Array<{ adapter_id: string; ts_ms: number; stream_ms: number | null }>;
  rounds: Array<{ round_id: string; requested_by: string; created_ms: number; stream_ms: number | null }>;
  stream: { newest_ms: number | null; interactions: number };
}

it('streams, rounds start by policy, adapters are gated, HR@1 per window is watched and shown, --exit prints the timeline', async () => {
  // While it runs: two policy rounds, a promotion, and HR@1 windows observed — on the dashboard.
  const seen = await eventually(
    () => api<Drift>('/v1/drift'),
    (d) =>
      d.rounds.filter((r) => r.requested_by === 'policy').length >= 2 &&
      d.promotions.length >= 1 &&
      d.series.length >= 1,
    'two policy rounds, a promotion and a drift observation',
    600_000,
  );
  expect(seen.stream.interactions).toBeGreaterThan(0);
  expect(seen.rounds.every((r) => r.stream_ms !== null)).toBe(true);

  const page = await browser!.newPage({ viewport: { width: 1280, height: 1100 } });
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(err.message));
  await page.goto(base);
  await page.locator('#hr1-chart canvas').waitFor({ timeout: 30_000 });
  const legend = await page.locator('#hr1-chart .u-legend').innerText();
  expect(targets.some((d) => legend.includes(d))).toBe(true);
  await page.locator('#timeline li[data-kind="observation"]').first().waitFor({ timeout: 30_000 });
  expect(await page.locator('#timeline li[data-kind="promoted"]').count()).toBeGreaterThanOrEqual(1);
  expect(await page.locator('#timeline li[data-kind="round"]').count()).toBeGreaterThanOrEqual(2);
  expect(await page.locator('#timeline li[data-kind="observation"]').first().innerText()).toMatch(
    /HR@1 of .* on 2023-\d\d-\d\d → 2023-\d\d-\d\d: (beauty|games) \d\.\d{3} \(\d+\)/,
  );
  expect(await page.locator('#stream-clock').innerText()).toMatch(
    /^stream at 2023-\d\d-\d\d · [\d,]+ interactions$/,
  );
  mkdirSync(join(REPO_ROOT, '.cprec', 'screenshots'), { recursive: true });
  await page.screenshot({ path: SCREENSHOT, fullPage: true });
  expect(errors).toEqual([]);
  await page.close();

  // --exit: after two rounds are published, judged and watched, the timeline and a clean exit.
  expect(await exitCode).toBe(0);
  expect(output).toMatch(/HR@1 timeline/);
  expect(output).toMatch(/round \S+ started by policy/);

  // What the system recorded (the namespace's tables outlive the services).
  const rounds = await ns.ch.query<{ round_id: string; requested_by: string; created_ms: string }>(
    sql`SELECT round_id, any(requested_by) AS requested_by, min(created_ms) AS created_ms FROM rounds WHERE state = 'published' GROUP BY round_id ORDER BY created_ms`,
  );
  expect(rounds.filter((r) => r.requested_by === 'policy').length).toBeGreaterThanOrEqual(2);
  const promotions = await ns.ch.query<{ adapter_id: string; ts_ms: string }>(
    sql`SELECT adapter_id, ts_ms FROM promotions FINAL WHERE decision = 'promoted' ORDER BY ts_ms`,
  );
  const series = await ns.ch.query<{ adapter_id: string; domain: string; ts_ms: string }>(
    sql`SELECT adapter_id, domain, ts_ms FROM drift_series FINAL ORDER BY ts_ms`,
  );
  // On some domain: a window scored for round 1's adapter, then the next round's adapter promoted,
  // then a window scored for it — the HR@1 series continues across a promotion.
  const roundOf = (adapterId: string) => rounds.findIndex((r) => adapterId.startsWith(`${r.round_id}-`));
  const across = targets.some((domain) => {
    const mine = series.filter((s) => s.domain === domain);
    return mine.some((before) =>
      mine.some(
        (after) =>
          roundOf(after.adapter_id) > roundOf(before.adapter_id) &&
          roundOf(before.adapter_id) >= 0 &&
          promotions.some(
            (p) =>
              p.adapter_id === after.adapter_id &&
              Number(p.ts_ms) >= Number(before.ts_ms) &&
              Number(p.ts_ms) <= Number(after.ts_ms),
          ),
      ),
    );
  });
  expect(across).toBe(true);
}, 900_000);
