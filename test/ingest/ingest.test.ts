import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { Kafka, Producer } from 'kafkajs';
import { DeadLetter, InteractionEvent } from '@cprec/contracts';
import { ClickHouse, sql } from '@cprec/clickhouse';
import { useNamespace } from '../support/harness';
import { eventually, randomPort, REPO_ROOT } from '../support/service-process';

/**
 * Ingest in a namespace of its own (database and topics), so nothing here reaches `npm start`.
 * Its faults — SIGKILLed during a replay, ClickHouse down for 60 s — are in test/faults.
 */
const ns = useNamespace('ingest');
const TOPICS = ns.topics;
const run = ns.run;
const env = {
  INGEST_GROUP_ID: ns.group('ingest'),
  INGEST_FLUSH_INTERVAL_MS: '200',
  INGEST_MAX_BATCH_ROWS: '500',
  INGEST_RETRY_MAX_MS: '1000',
  INGEST_MAX_TITLE_LENGTH: '300',
  INGEST_MAX_MESSAGE_BYTES: '4096',
  INGEST_DOMAIN_ALLOW_LIST: 'games,beauty',
  // The topics are this suite's own: read them from the beginning.
  INGEST_FROM_BEGINNING: 'true',
};

let kafka: Kafka;
let producer: Producer;
let ch: ClickHouse;
let port = randomPort();

const event = (id: string, i: number): InteractionEvent => ({
  event_id: `${run}-${id}`,
  user_id: `u${i % 37}`,
  item_id: `i${i % 101}`,
  domain: i % 2 === 0 ? 'games' : 'beauty',
  ts: 1_600_000_000_000 + i * 1000,
  seq: i,
});

async function send(events: readonly InteractionEvent[]): Promise<void> {
  for (let i = 0; i < events.length; i += 1000) {
    await producer.send({
      topic: TOPICS.interactions,
      acks: -1,
      messages: events.slice(i, i + 1000).map((e) => ({ key: e.user_id, value: JSON.stringify(e) })),
    });
  }
}

async function counts(prefix: string): Promise<{ rows: number; distinct: number }> {
  const like = `${run}-${prefix}%`;
  const [r] = await ch.query<{ rows: string; distinct: string }>(
    sql`SELECT count() AS rows, uniqExact(event_id) AS distinct FROM interactions FINAL WHERE event_id LIKE ${like}`,
  );
  return { rows: Number(r?.rows ?? 0), distinct: Number(r?.distinct ?? 0) };
}

async function startIngest(): Promise<void> {
  port = randomPort();
  await ns.startService('ingest', 'INGEST_PORT', env, { port });
}

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return text
    .split('\n')
    .filter((l) => l.startsWith(name))
    .reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
}

/** Runs an infra script (with this suite's database). */
function infra(script: 'status'): void {
  execFileSync('bash', [join(REPO_ROOT, 'infra', 'local', script)], {
    stdio: 'ignore',
    env: { ...process.env, CPREC_CLICKHOUSE_DB: ns.database },
  });
}

beforeAll(async () => {
  try {
    infra('status');
  } catch {
    throw new Error('Kafka/ClickHouse are not running: run `npm run infra:up` first');
  }
  kafka = ns.kafka();
  producer = await ns.producer();
  ch = ns.ch;
  await startIngest();
}, 180_000);

describe('ingest service against real Kafka and ClickHouse', () => {
  it('stores exactly the N distinct events when some are re-sent', async () => {
    const events = Array.from({ length: 3000 }, (_, i) => event(`dup-${i}`, i));
    await send(events);
    await send(events.slice(0, 700)); // a platform retrying part of its stream
    const c = await eventually(
      () => counts('dup-'),
      (v) => v.distinct >= 3000,
      'all 3000 events stored',
    );
    expect(c).toEqual({ rows: 3000, distinct: 3000 });
  });

  it('dead-letters every kind of bad input with its reason and stores the good events around it', async () => {
    const good = (n: number) => JSON.stringify(event(`dlq-good-${n}`, n));
    const bad: Record<string, string> = {
      malformed: '{"event_id": "x", ',
      missing: JSON.stringify({ ...event('dlq-missing', 1), user_id: undefined }),
      wrongType: JSON.stringify({ ...event('dlq-type', 1), ts: 'last tuesday' }),
      domain: JSON.stringify({ ...event('dlq-domain', 1), domain: 'books' }),
      future: JSON.stringify({ ...event('dlq-future', 1), ts: Date.now() + 30 * 24 * 3600 * 1000 }),
      longTitle: JSON.stringify({ ...event('dlq-title', 1), title: 'x'.repeat(400) }),
      oversized: JSON.stringify({
        ...event('dlq-big', 1),
        platform: 'p',
        title: 'y'.repeat(100),
        pad: 'z'.repeat(5000),
      }),
    };
    const expected: Record<string, RegExp> = {
      malformed: /malformed JSON/,
      missing: /user_id/,
      wrongType: /ts: must be a number/,
      domain: /not in the allow-list/,
      future: /in the future/,
      longTitle: /title: 400 characters/,
      oversized: /larger than the limit of 4096/,
    };
    await producer.send({
      topic: TOPICS.interactions,
      acks: -1,
      messages: [
        { key: `${run}-good`, value: good(1) },
        ...Object.entries(bad).map(([kind, value]) => ({ key: `${run}-${kind}`, value })),
        { key: `${run}-good`, value: good(2) },
      ],
    });
    const seen = new Map<string, DeadLetter>();
    const consumer = kafka.consumer({ groupId: ns.group('dlq-reader') });
    await consumer.connect();
    await consumer.subscribe({ topic: TOPICS.deadLetter, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ message }) => {
        const dl = JSON.parse(message.value!.toString()) as DeadLetter;
        if (dl.key?.startsWith(`${run}-`)) seen.set(dl.key.slice(run.length + 1), dl);
      },
    });
    try {
      await eventually(
        async () => seen.size,
        (n) => n >= Object.keys(bad).length,
        'all dead letters',
        60_000,
      );
    } finally {
      await consumer.disconnect();
    }
    for (const [kind, value] of Object.entries(bad)) {
      const dl = seen.get(kind)!;
      expect(dl.reason).toMatch(expected[kind]!);
      expect(Buffer.from(dl.original_base64, 'base64').toString()).toBe(value);
      expect(dl.source_topic).toBe(TOPICS.interactions);
      expect(Number(dl.offset)).toBeGreaterThanOrEqual(0);
    }
    const c = await eventually(
      () => counts('dlq-good-'),
      (v) => v.distinct >= 2,
      'good events stored',
    );
    expect(c.distinct).toBe(2);
    expect(await metric('cprec_ingest_dead_lettered_total')).toBeGreaterThanOrEqual(Object.keys(bad).length);
  });
});
