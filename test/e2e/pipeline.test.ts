import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { ClickHouse, sql } from '@cprec/clickhouse';
import { useNamespace } from '../support/harness';
import { eventually, randomPort, REPO_ROOT, RunningService } from '../support/service-process';

/**
 * The whole pipeline on real Kafka and ClickHouse with a tiny model: events replayed → round
 * triggered through the operator API → adapters published → evaluated → promoted → served.
 * Every service runs as its own process, all in one namespace (database, topics, consumer groups,
 * state folder) of their own: nothing here is seen by `npm start`.
 */
const ns = useNamespace('e2e', { migrate: false, topics: false });
const token = randomBytes(12).toString('hex');
const target = 'games';
const ports = {
  ingest: randomPort(),
  sequencer: randomPort(),
  trainer: randomPort(),
  evaluator: randomPort(),
  serving: randomPort(),
  operator: randomPort(),
};
const env: Record<string, string> = {
  INGEST_GROUP_ID: ns.group('ingest'),
  INGEST_FLUSH_INTERVAL_MS: '300',
  SEQUENCER_CLIENT_ID: ns.group('sequencer'),
  SEQUENCER_INTERVAL_MS: '1000',
  SEQUENCER_SAFETY_MARGIN_MS: '2000',
  TRAINER_GROUP_ID: ns.group('trainer'),
  TRAINER_MODEL: 'tiny-random',
  TRAINER_TARGET_DOMAINS: target,
  TRAINER_MAX_STEPS_PER_ROUND: '12',
  TRAINER_BATCH_SIZE: '4',
  TRAINER_MAX_TOKENS: '128',
  TRAINER_COMMAND_MAX_AGE_MS: '600000',
  EVALUATOR_GROUP_ID: ns.group('evaluator'),
  EVALUATOR_MODEL: 'tiny-random',
  EVALUATOR_TARGET_DOMAINS: target,
  EVALUATOR_MAX_EXAMPLES: '20',
  EVALUATOR_MAX_TOKENS: '128',
  EVALUATOR_GATE_MIN_SAMPLES: '5',
  EVALUATOR_PROMOTE_CPT: 'true',
  SERVING_GROUP_ID: ns.group('serving'),
  SERVING_MODEL: 'tiny-random',
  SERVING_MAX_TOKENS: '128',
  OPERATOR_TOKEN: token,
};

let ch: ClickHouse;
const services: RunningService[] = [];

async function api<T>(port: number, path: string, init?: RequestInit): Promise<{ status: number; body: T }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, init);
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : null) as T };
}

function replay(): Promise<void> {
  const args = [
    '-r',
    'ts-node/register/transpile-only',
    '-r',
    'tsconfig-paths/register',
    join(REPO_ROOT, 'cli/src/main.ts'),
    'replay',
    '--synthetic',
    '--users',
    '120',
    '--seed',
    '7',
    '--domains',
    `beauty,${target}`,
    '--events-per-user',
    '12',
    '--no-progress',
    // The namespace's topics (the CLI defaults to the base names).
    '--interactions-topic',
    ns.topics.interactions,
    '--items-topic',
    ns.topics.items,
  ];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      cwd: REPO_ROOT,
      env: { ...process.env, ...ns.env, ...env },
      stdio: 'ignore',
    });
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`replay exited with ${code}`))));
  });
}

beforeAll(async () => {
  ch = ns.ch;
  // The trainer creates the tiny base model the evaluator and serving load, so it starts first.
  // The services create the database and the topics themselves, as in production.
  services.push(
    ...(await Promise.all([
      ns.startService('ingest', 'INGEST_PORT', env, { port: ports.ingest }),
      ns.startService('sequencer', 'SEQUENCER_PORT', env, { port: ports.sequencer }),
      ns.startService('trainer', 'TRAINER_PORT', env, { port: ports.trainer, timeoutMs: 180_000 }),
      ns.startService('operator', 'OPERATOR_PORT', env, { port: ports.operator }),
    ])),
  );
}, 300_000);

describe('the whole pipeline (real Kafka + ClickHouse, tiny model)', () => {
  it('replays events, runs a round from the operator API, gates the adapter and serves it', async () => {
    await replay();
    const [{ n }] = await ch.query<{ n: string }>(sql`SELECT count() AS n FROM interactions`);
    await eventually(
      async () =>
        Number((await ch.query<{ n: string }>(sql`SELECT count() AS n FROM interactions FINAL`))[0]?.n ?? 0),
      (v) => v > 0 && v >= Number(n),
      'interactions stored',
    );
    await eventually(
      async () =>
        Number(
          (
            await ch.query<{ n: string }>(
              sql`SELECT count() AS n FROM domain_sequences FINAL WHERE domain = ${target}`,
            )
          )[0]?.n ?? 0,
        ),
      (v) => v > 50,
      'target-domain sequences built',
      120_000,
    );

    // The first round must exist before evaluator and serving load the tiny base it creates.
    const auth = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    const trigger = await api<{ command_id: string }>(ports.operator, '/v1/rounds', {
      method: 'POST',
      headers: auth,
      body: JSON.stringify({ target_domains: [target], reason: 'e2e' }),
    });
    expect(trigger.status).toBe(202);
    const roundId = trigger.body.command_id;
    services.push(
      ...(await Promise.all([
        ns.startService('evaluator', 'EVALUATOR_PORT', env, { port: ports.evaluator, timeoutMs: 240_000 }),
        ns.startService('serving', 'SERVING_PORT', env, { port: ports.serving, timeoutMs: 240_000 }),
      ])),
    );

    const round = await eventually(
      async () =>
        (
          await api<{ round: { state: string; message: string } | null }>(
            ports.operator,
            `/v1/rounds/${roundId}`,
          )
        ).body?.round ?? null,
      (r) => r !== null && ['published', 'failed', 'cancelled'].includes(r.state),
      'the round to finish',
      900_000,
    );
    expect(round?.state).toBe('published');

    const adapters = (
      await api<{ adapters: Array<{ adapter_id: string; round_id: string; adapter_kind: string }> }>(
        ports.operator,
        '/v1/adapters',
      )
    ).body.adapters.filter((a) => a.round_id === roundId);
    expect(adapters.length).toBeGreaterThan(0);

    // The evaluator scores them on the frozen split and promotes the first sane one.
    const promotedId = await eventually(
      async () => {
        const promotions = (
          await api<{ promotions: Array<{ adapter_id: string; decision: string }> }>(
            ports.operator,
            '/v1/promotions',
          )
        ).body.promotions;
        return (
          promotions.find(
            (p) => p.decision === 'promoted' && adapters.some((a) => a.adapter_id === p.adapter_id),
          )?.adapter_id ?? null
        );
      },
      (id) => id !== null,
      'an adapter of the round to be promoted',
      600_000,
    );
    const evaluations = (
      await api<{ evaluations: Array<{ adapter_id: string; domain: string; samples: number }> }>(
        ports.operator,
        `/v1/evaluations?adapter_id=${promotedId}`,
      )
    ).body.evaluations;
    expect(evaluations.some((e) => e.domain === target && e.samples > 0)).toBe(true);

    // A real user of the target domain, a handful of its catalogue items as candidates.
    const [user] = await ch.query<{ user_id: string }>(
      sql`SELECT user_id FROM domain_sequences FINAL WHERE domain = ${target} LIMIT 1`,
    );
    const items = await ch.query<{ item_id: string }>(
      sql`SELECT item_id FROM items FINAL WHERE domain = ${target} ORDER BY item_id LIMIT 5`,
    );
    const candidates = items.map((i) => i.item_id);
    const answer = await eventually(
      async () =>
        (
          await api<{ items: Array<{ item_id: string }>; adapter_id: string }>(
            ports.serving,
            '/v1/recommend',
            {
              method: 'POST',
              headers: { 'content-type': 'application/json' },
              body: JSON.stringify({
                user_id: user!.user_id,
                domain: target,
                candidate_ids: candidates,
                k: 3,
              }),
            },
          )
        ).body,
      (b) => b?.adapter_id === promotedId,
      'serving to switch to the promoted adapter',
      180_000,
    );
    expect(answer.items).toHaveLength(3);
    for (const item of answer.items) expect(candidates).toContain(item.item_id);
  }, 1_500_000);
});
