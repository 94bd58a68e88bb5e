import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Browser, chromium, Page } from 'playwright-core';
import { ClickHouse, ControlPlaneRepository } from '@cprec/clickhouse';
import { useNamespace } from '../support/harness';
import { eventually, REPO_ROOT, RunningService } from '../support/service-process';
import { CommandTap } from '../operator/command-tap';

/**
 * The operator's dashboard in real headless Chromium (Debian's chromium package): seeded rows
 * show up as the HR@1 chart and the adapter table; "Trigger round" publishes a RoundCommand, the
 * test plays the trainer (queues the round in ClickHouse) and the page shows the new round.
 */
const CHROMIUM = process.env.CPREC_CHROMIUM ?? '/usr/bin/chromium';
const ns = useNamespace('dashboard');
const TOPICS = ns.topics;
const token = `tok-${ns.run}`;
const SCREENSHOT = join(REPO_ROOT, '.cprec', 'screenshots', 'dashboard.png');

let operator: RunningService;
let base: string;
let ch: ClickHouse;
let repo: ControlPlaneRepository;
let tap: CommandTap;
let browser: Browser;
let page: Page;
const pageErrors: string[] = [];

const HOUR = 3600_000;
const now = Date.now();
const start = now - 24 * HOUR;

async function seed(): Promise<void> {
  const base = { message: '', requested_by: 'seed', total_steps: 120 };
  for (const [i, id] of ['round-1', 'round-2'].entries()) {
    const created = start + i * 12 * HOUR;
    await repo.insertRoundState({
      ...base,
      round_id: id,
      state: 'published',
      step: 120,
      loss: 1.9 - i * 0.2,
      lr: 5e-6,
      target_domains: ['games', 'steam'],
      created_ms: created,
      updated_ms: created + HOUR,
    });
    await repo.insertRoundSteps(
      Array.from({ length: 120 }, (_, s) => ({
        round_id: id,
        phase: s < 6 ? 'warmup' : s < 100 ? 'stable' : 'annealing',
        step: s + 1,
        loss: 3.2 * Math.exp(-s / 50) + 1.6 - i * 0.2 + 0.05 * Math.sin(s),
        lr:
          s < 6
            ? (5e-4 * (s + 1)) / 6
            : s < 100
              ? 5e-4
              : 5e-6 + (5e-4 - 5e-6) * 0.5 * (1 + Math.cos((Math.PI * (s - 100)) / 20)),
        tokens: 512,
        ts_ms: created + s * 1000,
      })),
    );
  }
  const adapters = [
    ['cpt-round-1', 'cpt', 'round-1', start + HOUR],
    ['sft-games-round-1', 'sft', 'round-1', start + HOUR + 1],
    ['sft-games-round-2', 'sft', 'round-2', start + 13 * HOUR],
  ] as const;
  for (const [id, kind, round, created] of adapters) {
    await repo.insertAdapter({
      adapter_id: id,
      adapter_kind: kind,
      round_id: round,
      target_domains: ['games', 'steam'],
      uri: `file:///adapters/${id}`,
      sha256: 'e'.repeat(64),
      lineage: { round_id: round },
      created_ms: created,
    });
  }
  const metrics = {
    split_id: 'test',
    method: 'generate',
    samples: 500,
    hr1_valid: 0.5,
    valid_ratio: 0.9,
    hr3: 0.5,
    hr5: 0.6,
    ndcg3: 0.4,
    ndcg5: 0.45,
    report: {},
  };
  await repo.insertEvaluations([
    {
      ...metrics,
      evaluation_id: 'e1',
      adapter_id: 'sft-games-round-1',
      domain: 'games',
      hr1: 0.412,
      created_ms: start + 2 * HOUR,
    },
    {
      ...metrics,
      evaluation_id: 'e2',
      adapter_id: 'sft-games-round-1',
      domain: 'steam',
      hr1: 0.377,
      created_ms: start + 2 * HOUR,
    },
    {
      ...metrics,
      evaluation_id: 'e3',
      adapter_id: 'sft-games-round-2',
      domain: 'games',
      hr1: 0.455,
      created_ms: start + 14 * HOUR,
    },
    {
      ...metrics,
      evaluation_id: 'e4',
      adapter_id: 'sft-games-round-2',
      domain: 'steam',
      hr1: 0.401,
      created_ms: start + 14 * HOUR,
    },
  ]);
  await repo.insertPromotion({
    adapter_id: 'sft-games-round-1',
    decision: 'promoted',
    reasons: ['first adapter'],
    hr1: { games: 0.412 },
    ts_ms: start + 2 * HOUR,
  });
  await repo.insertPromotion({
    adapter_id: 'sft-games-round-2',
    decision: 'promoted',
    reasons: ['HR@1 +0.043'],
    hr1: { games: 0.455 },
    ts_ms: start + 14 * HOUR,
  });
  // A row from before per-domain serving (domain '': every domain), then games gets its own.
  await repo.insertServingEvent({
    event: 'switch',
    domain: '',
    adapter_id: 'sft-games-round-1',
    previous_adapter_id: '',
    detail: '',
    ts_ms: start + 2 * HOUR,
  });
  await repo.insertServingEvent({
    event: 'switch',
    domain: 'games',
    adapter_id: 'sft-games-round-2',
    previous_adapter_id: 'sft-games-round-1',
    detail: '',
    ts_ms: start + 14 * HOUR,
  });
  // Hourly HR@1: drifting down after each promotion, back up after the next one.
  await repo.insertDriftObservations(
    Array.from({ length: 22 }, (_, h) => h + 2).flatMap((h) => {
      const sinceRefresh = h < 14 ? h - 2 : h - 14;
      const adapter = h < 14 ? 'sft-games-round-1' : 'sft-games-round-2';
      const level = h < 14 ? 0.41 : 0.45;
      return [
        ['games', level - 0.008 * sinceRefresh],
        ['steam', level - 0.04 - 0.005 * sinceRefresh],
      ].map(([domain, hr1]) => ({
        adapter_id: adapter,
        domain: domain as string,
        window_start_ms: start + (h - 1) * HOUR,
        window_end_ms: start + h * HOUR,
        hr1: hr1 as number,
        samples: 200,
        ts_ms: start + h * HOUR,
      }));
    }),
  );
  await repo.insertDriftAlert({
    adapter_id: 'sft-games-round-1',
    domain: 'games',
    hr1: 0.33,
    baseline_hr1: 0.41,
    relative_drop: 0.195,
    samples: 200,
    refresh_requested: true,
    ts_ms: start + 12 * HOUR,
  });
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM))
    throw new Error(
      `Chromium not found at ${CHROMIUM}: install Debian's chromium package or set CPREC_CHROMIUM`,
    );
  ch = ns.ch;
  operator = await ns.startService(
    'operator',
    'OPERATOR_PORT',
    { OPERATOR_TOKEN: token },
    { timeoutMs: 180_000 },
  );
  base = `http://127.0.0.1:${operator.port}`;
  repo = new ControlPlaneRepository(ch);
  await seed();
  tap = new CommandTap(ns.kafka(), ns.group('tap'));
  ns.onTearDown(() => tap.stop());
  await tap.start([TOPICS.roundCommands, TOPICS.servingCommands]);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.on('pageerror', (err) => pageErrors.push(err.message));
});

afterAll(async () => {
  await browser?.close();
});

it('shows the HR@1 chart and the adapter table from the stored rows', async () => {
  await page.goto(base);
  await page.locator('#hr1-chart canvas').waitFor();
  // uPlot's legend names the series: one per domain of the seeded drift series.
  const legend = await page.locator('#hr1-chart .u-legend').innerText();
  expect(legend).toContain('games');
  expect(legend).toContain('steam');

  const rows = page.locator('#adapters-table tbody tr[data-adapter-id]');
  await eventually(
    () => rows.count(),
    (n) => n === 3,
    'three adapter rows',
    30_000,
  );
  const serving = page.locator('#adapters-table tr[data-adapter-id="sft-games-round-2"]');
  expect(await serving.innerText()).toMatch(/0\.428 \(mean\)[\s\S]*serving/); // (0.455 + 0.401) / 2
  expect(await page.locator('#adapters-table tr[data-adapter-id="cpt-round-1"]').innerText()).toMatch(
    /pending/,
  );
  // One adapter per domain: games has round-2; steam is still answered by the legacy row's round-1.
  expect(await page.locator('#serving-badge').innerText()).toBe(
    'serving: games → sft-games-round-2 · steam → sft-games-round-1',
  );
  expect(await serving.innerText()).toMatch(/serving games/);
  expect(await page.locator('#adapters-table tr[data-adapter-id="sft-games-round-1"]').innerText()).toMatch(
    /serving steam/,
  );
  expect(await page.locator('#serving-table tr[data-domain="games"]').getAttribute('data-adapter-id')).toBe(
    'sft-games-round-2',
  );
  expect(await page.locator('#serving-table tr[data-domain="steam"]').innerText()).toMatch(
    /sft-games-round-1[\s\S]*all domains/,
  );
  // The newest round is the "current" one, with its loss/LR curve.
  expect(await page.locator('#round-id').innerText()).toBe('round-2');
  await page.locator('#loss-chart canvas').waitFor();
  mkdirSync(join(REPO_ROOT, '.cprec', 'screenshots'), { recursive: true });
  await page.screenshot({ path: SCREENSHOT, fullPage: true });
});

it('"Trigger round" asks for the token, publishes a RoundCommand, and the queued round appears', async () => {
  await page.locator('#trigger-round').click();
  await page.locator('#token-input').fill(token);
  await page.locator('#token-save').click();

  // Until the trainer has queued it, the dashboard lists the request under the command's id.
  const requested = page.locator('#rounds-table tr:has(.badge.requested)');
  await requested.waitFor();
  const roundId = (await requested.getAttribute('data-round-id')) ?? '';
  expect(await page.evaluate('sessionStorage.getItem("cprec.operatorToken")')).toBe(token);

  // Play the trainer: take that command off Kafka and queue the round under the command's id.
  const command = await tap.waitFor(TOPICS.roundCommands, roundId);
  expect(command).toMatchObject({
    kind: 'trigger',
    reason: 'dashboard',
    requested_by: 'operator-api:dashboard',
  });

  await repo.insertRoundState({
    round_id: roundId,
    state: 'queued',
    step: 0,
    total_steps: 0,
    loss: null,
    lr: null,
    message: 'waiting for the trainer',
    target_domains: [],
    requested_by: String(command.requested_by),
    created_ms: Date.now(),
    updated_ms: Date.now(),
  });
  await page
    .locator(`#rounds-table tr[data-round-id="${roundId}"][data-state="queued"]`)
    .waitFor({ timeout: 30_000 });
  await eventually(
    () => page.locator('#round-id').innerText(),
    (t) => t === roundId,
    'the new round as current',
    30_000,
  );
  expect(await page.locator('#phases li.active').innerText()).toBe('queued');

  await page.screenshot({ path: SCREENSHOT.replace('.png', '-triggered.png'), fullPage: true });
  expect(pageErrors).toEqual([]);
});

it('"roll back" on a domain row publishes a ServingCommand for that domain only', async () => {
  page.once('dialog', (dialog) => void dialog.accept());
  // The token is kept from the previous test (sessionStorage of this tab).
  await page.locator('#serving-table tr[data-domain="games"] button').click();
  const command = await eventually(
    async () => tap.messages.find((m) => m.topic === TOPICS.servingCommands)?.value,
    (v) => v !== undefined,
    'a serving command',
    30_000,
  );
  expect(command).toMatchObject({
    kind: 'rollback',
    domain: 'games',
    requested_by: 'operator-api:dashboard',
  });
  expect(command).not.toHaveProperty('to_adapter_id');
  expect(pageErrors).toEqual([]);
});
