import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ClickHouse, ControlPlaneRepository } from '@cprec/clickhouse';
import { useNamespace } from '../support/harness';
import { REPO_ROOT, RunningService } from '../support/service-process';
import { CommandTap } from './command-tap';

/**
 * The operator as a real process against real Kafka and ClickHouse (a database of its own,
 * migrated by the service at start): auth, validation, commands on Kafka, reads of stored rows.
 */
const ns = useNamespace('operator');
const TOPICS = ns.topics;
const token = `tok-${ns.run}`;
let operator: RunningService;
let base: string;
let ch: ClickHouse;
let repo: ControlPlaneRepository;
let tap: CommandTap;
const t0 = 1_700_000_000_000;

async function call(
  method: 'GET' | 'POST',
  path: string,
  options: { body?: string | object; auth?: string | null } = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  const headers: Record<string, string> = { 'x-requested-by': 'operator-test' };
  const auth = options.auth === undefined ? token : options.auth;
  if (auth !== null) headers.authorization = `Bearer ${auth}`;
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${base}${path}`, {
    method,
    headers,
    body:
      options.body === undefined
        ? undefined
        : typeof options.body === 'string'
          ? options.body
          : JSON.stringify(options.body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

beforeAll(async () => {
  operator = await ns.startService(
    'operator',
    'OPERATOR_PORT',
    { OPERATOR_TOKEN: token },
    { timeoutMs: 180_000 },
  );
  base = `http://127.0.0.1:${operator.port}`;
  ch = ns.ch;
  repo = new ControlPlaneRepository(ch);
  tap = new CommandTap(ns.kafka(), ns.group('tap'));
  ns.onTearDown(() => tap.stop());
  await tap.start([TOPICS.roundCommands, TOPICS.evaluatorCommands, TOPICS.servingCommands]);
});

describe('auth', () => {
  it.each([
    ['/v1/rounds', undefined],
    ['/v1/rounds/r1/cancel', undefined],
    ['/v1/adapters/a1/promote', undefined],
    ['/v1/serving/rollback', undefined],
  ])('POST %s without a token answers 401', async (path) => {
    const res = await call('POST', path, { body: {}, auth: null });
    expect(res.status).toBe(401);
    expect(String(res.body.message)).toMatch(/Authorization: Bearer/);
  });

  it('a wrong token answers 401 and publishes nothing', async () => {
    const before = tap.messages.length;
    const res = await call('POST', '/v1/rounds', { body: { reason: 'wrong token' }, auth: `${token}x` });
    expect(res.status).toBe(401);
    expect(res.body.message).toBe('invalid operator token');
    expect(tap.messages.slice(before).some((m) => m.value.reason === 'wrong token')).toBe(false);
  });

  it.each(['/v1/rounds', '/v1/serving/rollback', '/v1/adapters/a1/promote'])(
    'POST %s with a text/plain body answers 415 and publishes nothing, even with the token',
    async (path) => {
      const before = tap.messages.length;
      const res = await fetch(`${base}${path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'text/plain' },
        body: '{"reason":"csrf"}',
      });
      expect(res.status).toBe(415);
      expect(String(((await res.json()) as { message: string }).message)).toMatch(/must be JSON/);
      await new Promise((r) => setTimeout(r, 300));
      expect(tap.messages.slice(before)).toEqual([]);
    },
  );

  it('reads need no token', async () => {
    expect((await call('GET', '/v1/rounds', { auth: null })).status).toBe(200);
  });
});

describe('validation', () => {
  it.each([
    ['/v1/rounds', '{"target_domains": [', /JSON|Unexpected|Expected/],
    ['/v1/rounds', { target_domains: ['Not A Slug'] }, /target_domains\.0: must be a lowercase slug/],
    ['/v1/rounds', { target_domains: 'games' }, /target_domains/],
    ['/v1/rounds', { reason: 'x', unknown_field: 1 }, /unknown_field/],
    ['/v1/rounds', [1, 2], /expected object/],
    ['/v1/serving/rollback', { domain: 'games', to_adapter_id: '' }, /to_adapter_id/],
    ['/v1/serving/rollback', {}, /domain/],
    ['/v1/serving/rollback', { domain: 'Games!' }, /domain: must be a lowercase slug/],
    ['/v1/adapters/a1/promote', { reason: 42 }, /reason/],
  ])('POST %s with %p answers 400 with a message', async (path, body, message) => {
    const res = await call('POST', path, { body });
    expect(res.status).toBe(400);
    expect(String(res.body.message)).toMatch(message);
  });

  it.each([
    ['/v1/rounds?limit=0', /limit/],
    ['/v1/drift?domain=Bad%20Domain', /domain/],
    ['/v1/evaluations?domain=%00', /domain/],
  ])('GET %s answers 400 with a message', async (path, message) => {
    const res = await call('GET', path);
    expect(res.status).toBe(400);
    expect(String(res.body.message)).toMatch(message);
  });
});

describe('commands on Kafka', () => {
  it('POST /v1/rounds publishes a trigger RoundCommand', async () => {
    const res = await call('POST', '/v1/rounds', {
      body: { target_domains: ['games', 'steam'], reason: 'it' },
    });
    expect(res.status).toBe(202);
    expect(res.body.topic).toBe(TOPICS.roundCommands);
    const command = await tap.waitFor(TOPICS.roundCommands, String(res.body.command_id));
    expect(command).toMatchObject({
      kind: 'trigger',
      target_domains: ['games', 'steam'],
      reason: 'it',
      requested_by: 'operator-api:operator-test',
    });
    expect(typeof command.ts).toBe('number');
  });

  it('an empty body triggers a default round', async () => {
    const res = await call('POST', '/v1/rounds');
    expect(res.status).toBe(202);
    const command = await tap.waitFor(TOPICS.roundCommands, String(res.body.command_id));
    expect(command.kind).toBe('trigger');
    expect(command).not.toHaveProperty('target_domains');
  });

  it('cancel: 202 and a cancel command for a running round, 404 unknown, 409 finished', async () => {
    const round = {
      step: 3,
      total_steps: 10,
      loss: 2,
      lr: 1e-4,
      message: '',
      target_domains: ['games'],
      requested_by: 'it',
      created_ms: t0,
      updated_ms: t0,
    };
    await repo.insertRoundState({ ...round, round_id: 'running', state: 'stable' });
    await repo.insertRoundState({ ...round, round_id: 'done', state: 'published' });

    const res = await call('POST', '/v1/rounds/running/cancel');
    expect(res.status).toBe(202);
    const command = await tap.waitFor(TOPICS.roundCommands, String(res.body.command_id));
    expect(command).toMatchObject({ kind: 'cancel', round_id: 'running' });

    const unknown = await call('POST', '/v1/rounds/nope/cancel');
    expect(unknown.status).toBe(404);
    expect(unknown.body.message).toBe('round nope not found');
    const finished = await call('POST', '/v1/rounds/done/cancel');
    expect(finished.status).toBe(409);
    expect(finished.body.message).toBe('round done is already published');
  });

  it('promote publishes an EvaluatorCommand for a known adapter, 404 for an unknown one', async () => {
    await repo.insertAdapter({
      adapter_id: 'promote-me',
      adapter_kind: 'sft',
      round_id: 'running',
      target_domains: ['games'],
      uri: 'file:///x',
      sha256: 'c'.repeat(64),
      lineage: {},
      created_ms: t0,
    });
    const res = await call('POST', '/v1/adapters/promote-me/promote', { body: { reason: 'reviewed' } });
    expect(res.status).toBe(202);
    expect(await tap.waitFor(TOPICS.evaluatorCommands, String(res.body.command_id))).toMatchObject({
      kind: 'promote',
      adapter_id: 'promote-me',
      reason: 'reviewed',
    });
    expect((await call('POST', '/v1/adapters/ghost/promote')).status).toBe(404);
  });

  it('rollback publishes a ServingCommand for one domain, with or without a target', async () => {
    const plain = await call('POST', '/v1/serving/rollback', { body: { domain: 'games' } });
    expect(plain.status).toBe(202);
    const command = await tap.waitFor(TOPICS.servingCommands, String(plain.body.command_id));
    expect(command).toMatchObject({ kind: 'rollback', domain: 'games' });
    expect(command).not.toHaveProperty('to_adapter_id');
    const targeted = await call('POST', '/v1/serving/rollback', {
      body: { domain: 'books', to_adapter_id: 'promote-me' },
    });
    expect(await tap.waitFor(TOPICS.servingCommands, String(targeted.body.command_id))).toMatchObject({
      kind: 'rollback',
      domain: 'books',
      to_adapter_id: 'promote-me',
    });
    const toBase = await call('POST', '/v1/serving/rollback', {
      body: { domain: 'books', to_adapter_id: 'base' },
    });
    expect(toBase.status).toBe(202);
    expect(
      (await call('POST', '/v1/serving/rollback', { body: { domain: 'books', to_adapter_id: 'ghost' } }))
        .status,
    ).toBe(404);
  });
});

describe('reads', () => {
  beforeAll(async () => {
    const round = {
      round_id: 'read-r1',
      step: 0,
      total_steps: 4,
      message: '',
      target_domains: ['books'],
      requested_by: 'it',
      created_ms: t0 + 1000,
    };
    await repo.insertRoundState({ ...round, state: 'queued', loss: null, lr: null, updated_ms: t0 + 1000 });
    await repo.insertRoundState({
      ...round,
      state: 'annealing',
      step: 3,
      loss: 1.5,
      lr: 2e-5,
      updated_ms: t0 + 1003,
    });
    await repo.insertRoundSteps(
      [1, 2, 3].map((step) => ({
        round_id: 'read-r1',
        phase: step < 3 ? 'stable' : 'annealing',
        step,
        loss: 3 - step / 2,
        lr: 1e-4 / step,
        tokens: 32,
        ts_ms: t0 + 1000 + step,
      })),
    );
    for (const [id, created] of [
      ['read-a1', 1],
      ['read-a2', 2],
    ] as const) {
      await repo.insertAdapter({
        adapter_id: id,
        adapter_kind: 'sft',
        round_id: 'read-r1',
        target_domains: ['books', 'films'],
        uri: `file:///${id}`,
        sha256: 'd'.repeat(64),
        lineage: { round_id: 'read-r1' },
        created_ms: t0 + 2000 + created,
      });
    }
    const metrics = {
      split_id: 's1',
      method: 'generate',
      samples: 100,
      hr1_valid: 0,
      valid_ratio: 1,
      hr3: 0,
      hr5: 0,
      ndcg3: 0,
      ndcg5: 0,
      report: {},
    };
    await repo.insertEvaluations([
      {
        ...metrics,
        evaluation_id: 'ev1',
        adapter_id: 'read-a1',
        domain: 'books',
        hr1: 0.25,
        created_ms: t0 + 3000,
      },
      {
        ...metrics,
        evaluation_id: 'ev2',
        adapter_id: 'read-a1',
        domain: 'films',
        hr1: 0.35,
        created_ms: t0 + 3001,
      },
      {
        ...metrics,
        evaluation_id: 'ev3',
        adapter_id: 'read-a2',
        domain: 'books',
        hr1: 0.1,
        created_ms: t0 + 3002,
      },
    ]);
    await repo.insertPromotion({
      adapter_id: 'read-a1',
      decision: 'promoted',
      reasons: ['gate passed'],
      hr1: { books: 0.25 },
      ts_ms: t0 + 4000,
    });
    await repo.insertPromotion({
      adapter_id: 'read-a2',
      decision: 'rejected',
      reasons: ['HR@1 -0.15'],
      hr1: { books: 0.1 },
      ts_ms: t0 + 4001,
    });
    // books is served by read-a1; films was rolled back to the base model.
    await repo.insertServingEvent({
      event: 'switch',
      domain: 'books',
      adapter_id: 'read-a1',
      previous_adapter_id: 'base',
      detail: '',
      ts_ms: t0 + 5000,
    });
    await repo.insertServingEvent({
      event: 'rollback',
      domain: 'films',
      adapter_id: 'base',
      previous_adapter_id: 'read-a1',
      detail: '',
      ts_ms: t0 + 5001,
    });
    await repo.insertDriftObservations(
      [0, 1, 2].map((i) => ({
        adapter_id: 'read-a1',
        domain: 'books',
        window_start_ms: t0 + i * 60_000,
        window_end_ms: t0 + (i + 1) * 60_000,
        hr1: [0.3, 0.25, 0.2][i],
        samples: 80,
        ts_ms: t0 + (i + 1) * 60_000,
      })),
    );
    await repo.insertDriftAlert({
      adapter_id: 'read-a1',
      domain: 'books',
      hr1: 0.2,
      baseline_hr1: 0.3,
      relative_drop: 1 / 3,
      samples: 80,
      refresh_requested: false,
      ts_ms: t0 + 180_001,
    });
  });

  it('GET /v1/rounds and /v1/rounds/:id show the latest state and the step/loss/lr series', async () => {
    const list = await call('GET', '/v1/rounds');
    const rounds = list.body.rounds as Array<{ round_id: string; state: string; step: number }>;
    expect(rounds.find((r) => r.round_id === 'read-r1')).toMatchObject({ state: 'annealing', step: 3 });

    const detail = await call('GET', '/v1/rounds/read-r1');
    expect(detail.status).toBe(200);
    expect(detail.body.round).toMatchObject({ round_id: 'read-r1', state: 'annealing', loss: 1.5, lr: 2e-5 });
    const steps = detail.body.steps as Array<{ step: number; phase: string; loss: number; lr: number }>;
    expect(steps.map((s) => [s.step, s.phase, s.loss])).toEqual([
      [1, 'stable', 2.5],
      [2, 'stable', 2],
      [3, 'annealing', 1.5],
    ]);
    const thinned = await call('GET', '/v1/rounds/read-r1?max_points=2');
    expect((thinned.body.steps as unknown[]).length).toBe(2);
    expect(thinned.body.total_points).toBe(3);
    expect((await call('GET', '/v1/rounds/missing')).status).toBe(404);
  });

  it('GET /v1/adapters joins HR@1 and status; /v1/evaluations filters', async () => {
    const res = await call('GET', '/v1/adapters');
    expect(res.body.serving).toEqual({ books: 'read-a1' });
    const adapters = res.body.adapters as Array<{
      adapter_id: string;
      status: string;
      hr1: Record<string, number>;
      hr1_mean: number;
    }>;
    const a1 = adapters.find((a) => a.adapter_id === 'read-a1');
    const a2 = adapters.find((a) => a.adapter_id === 'read-a2');
    expect(a1).toMatchObject({
      status: 'serving',
      serving_domains: ['books'],
      hr1: { books: 0.25, films: 0.35 },
    });
    expect(a1?.hr1_mean).toBeCloseTo(0.3, 12);
    expect(a2).toMatchObject({ status: 'rejected', hr1: { books: 0.1 }, reasons: ['HR@1 -0.15'] });

    const evals = await call('GET', '/v1/evaluations?adapter_id=read-a1&domain=films');
    expect((evals.body.evaluations as Array<{ evaluation_id: string }>).map((e) => e.evaluation_id)).toEqual([
      'ev2',
    ]);
    const one = await call('GET', '/v1/adapters/read-a2');
    expect((one.body.evaluations as unknown[]).length).toBe(1);
    expect((await call('GET', '/v1/adapters/none')).status).toBe(404);
  });

  it('GET /v1/drift returns the HR@1 series oldest first, alerts and markers', async () => {
    const res = await call('GET', '/v1/drift?domain=books');
    expect((res.body.series as Array<{ hr1: number }>).map((p) => p.hr1)).toEqual([0.3, 0.25, 0.2]);
    expect((res.body.alerts as Array<{ relative_drop: number }>)[0].relative_drop).toBeCloseTo(1 / 3, 12);
    expect((res.body.promotions as Array<{ adapter_id: string }>).map((p) => p.adapter_id)).toContain(
      'read-a1',
    );
    expect((res.body.promotions as Array<{ adapter_id: string }>).map((p) => p.adapter_id)).not.toContain(
      'read-a2',
    );
    expect((res.body.rounds as Array<{ round_id: string }>).map((r) => r.round_id)).toContain('read-r1');
    const later = await call('GET', `/v1/drift?domain=books&from_ms=${t0 + 120_000}`);
    expect((later.body.series as unknown[]).length).toBe(2);
  });

  it('GET /v1/serving names the adapter serving each domain', async () => {
    const res = await call('GET', '/v1/serving');
    const domains = res.body.domains as Array<{ domain: string; adapter_id: string; event: string }>;
    expect(domains.map((d) => [d.domain, d.adapter_id, d.event])).toEqual([
      ['films', 'base', 'rollback'],
      ['books', 'read-a1', 'switch'],
    ]);
    expect((res.body.events as unknown[]).length).toBe(2);
  });

  it('serves the OpenAPI document and the dashboard', async () => {
    const doc = (await (await fetch(`${base}/docs-json`)).json()) as { paths: Record<string, unknown> };
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        '/v1/rounds',
        '/v1/rounds/{id}/cancel',
        '/v1/adapters/{id}/promote',
        '/v1/serving/rollback',
        '/v1/drift',
      ]),
    );
    const page = await fetch(`${base}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toMatch(/<html/i);
    const uplot = await fetch(`${base}/vendor/uplot/uPlot.iife.min.js`);
    expect(uplot.status).toBe(200);
  });
});

describe('cprec CLI against the operator', () => {
  /** Runs `cprec <args>` as the user would (ts-node), pointed at this operator. */
  async function cprec(args: string[], withToken = true): Promise<string> {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [
        '-r',
        'ts-node/register/transpile-only',
        '-r',
        'tsconfig-paths/register',
        join(REPO_ROOT, 'cli', 'src', 'main.ts'),
        ...args,
      ],
      {
        cwd: REPO_ROOT,
        env: {
          ...process.env,
          CPREC_OPERATOR_URL: base,
          CPREC_OPERATOR_TOKEN: withToken ? token : '',
          TS_NODE_TRANSPILE_ONLY: 'true',
        },
      },
    );
    return stdout;
  }

  it('round trigger --json publishes a RoundCommand; adapters prints the table', async () => {
    const accepted = JSON.parse(
      await cprec(['round', 'trigger', '--domains', 'games,steam', '--reason', 'cli', '--json']),
    ) as {
      command_id: string;
    };
    expect(await tap.waitFor(TOPICS.roundCommands, accepted.command_id)).toMatchObject({
      kind: 'trigger',
      target_domains: ['games', 'steam'],
      reason: 'cli',
    });
    const table = await cprec(['adapters']);
    expect(table).toMatch(/^adapter\s+kind\s+round/);
    expect(table).toMatch(
      /read-a1\s+sft\s+read-r1\s+books,films\s+\S+ \S+\s+books=0\.250 films=0\.350\s+serving books/,
    );
  });

  it('serving shows the adapter of each domain; rollback --domain publishes a ServingCommand for that domain', async () => {
    const table = await cprec(['serving']);
    expect(table).toMatch(/^domain\s+adapter\s+since/);
    expect(table).toMatch(/books\s+read-a1\s+\S+ \S+\s+switch/);
    expect(table).toMatch(/films\s+base \(no adapter\)\s+\S+ \S+\s+rollback/);
    const accepted = JSON.parse(
      await cprec(['rollback', '--domain', 'films', '--to', 'read-a1', '--json']),
    ) as { command_id: string };
    expect(await tap.waitFor(TOPICS.servingCommands, accepted.command_id)).toMatchObject({
      kind: 'rollback',
      domain: 'films',
      to_adapter_id: 'read-a1',
    });
    await expect(cprec(['rollback'])).rejects.toMatchObject({
      stderr: expect.stringMatching(/--domain/),
    });
  });

  it('fails with the API message and a non-zero exit code', async () => {
    await expect(cprec(['round', 'cancel', 'nope'])).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/HTTP 404: round nope not found/),
    });
    await expect(cprec(['rollback', '--domain', 'games'], false)).rejects.toMatchObject({
      stderr: expect.stringMatching(/CPREC_OPERATOR_TOKEN/),
    });
  });
});
