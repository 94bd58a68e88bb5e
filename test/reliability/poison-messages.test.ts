import {
  ControlPlaneRepository,
  InteractionRepository,
  isClickHouseDataError,
  isClickHouseUnavailable,
  createClickHouse,
  sql,
} from '@cprec/clickhouse';
import { DeadLetterSchema, type DeadLetter } from '@cprec/contracts';
import { classifyFailure } from '@cprec/service-common';
import type { Producer } from 'kafkajs';
import { useNamespace } from '../support/harness';
import { eventually, type RunningService } from '../support/service-process';

/**
 * One message can never stop a consumer (issue 15), against the real servers: ingest and the
 * evaluator in a namespace of their own, fed messages that used to stall them for good — an
 * interaction whose title is a lone UTF-16 surrogate (valid JSON that ClickHouse refuses), an
 * invalid message with a ~600 kB key (its dead letter would exceed the broker's message limit)
 * and a forged `published` adapter event whose adapter id cannot be stored. Each is
 * dead-lettered with its reason and original bytes, the clean message after it is handled, and
 * both services stay healthy.
 */

const ns = useNamespace('poison');
let ingest: RunningService;
let evaluator: RunningService;
let producer: Producer;

const NOW = Date.now();
const event = (id: string, extra: Record<string, unknown> = {}) => ({
  event_id: id,
  user_id: 'u1',
  item_id: 'i1',
  domain: 'games',
  ts: NOW - 60_000,
  ...extra,
});

const health = async (service: RunningService) =>
  (await fetch(`http://127.0.0.1:${service.port}/health`)).status;

async function storedIds(): Promise<string[]> {
  const rows = await ns.ch.query<{ event_id: string }>(
    sql`SELECT DISTINCT event_id FROM interactions ORDER BY event_id`,
  );
  return rows.map((r) => r.event_id);
}

beforeAll(async () => {
  producer = await ns.producer();
  [ingest, evaluator] = await Promise.all([
    ns.startService('ingest', 'INGEST_PORT', {
      INGEST_GROUP_ID: ns.group('ingest'),
      INGEST_FLUSH_INTERVAL_MS: '200',
      INGEST_FROM_BEGINNING: 'true',
    }),
    ns.startService('evaluator', 'EVALUATOR_PORT', {
      EVALUATOR_GROUP_ID: ns.group('evaluator'),
      EVALUATOR_FROM_BEGINNING: 'true',
      EVALUATOR_MODEL: 'tiny-random',
      EVALUATOR_BACKEND: 'cpu',
    }),
  ]);
}, 180_000);

describe('one message can never stop a consumer', () => {
  it('ingest: a lone-surrogate title and a 600 kB-key invalid message are dead-lettered; the clean events after them are stored', async () => {
    const dlq = await ns.tap([ns.topics.deadLetter]);
    // JSON.stringify writes the lone surrogate as the escape \ud800: valid JSON, unstorable text.
    const surrogate = JSON.stringify(event('bad-surrogate', { title: '\ud800' }));
    expect(surrogate).toContain('"title":"\\ud800"');
    const bigKey = 'k'.repeat(600_000);
    const malformed = '{"event_id": "bad-key", ';
    await producer.send({
      topic: ns.topics.interactions,
      acks: -1,
      messages: [
        { key: 'u1', value: surrogate },
        { key: 'u1', value: JSON.stringify(event('clean-1', { title: 'a clean title' })) },
      ],
    });
    await producer.send({
      topic: ns.topics.interactions,
      acks: -1,
      // An explicit partition: kafkajs's default partitioner hashes a key in time quadratic in
      // its length (about a minute of CPU for 600 kB).
      messages: [{ key: bigKey, value: malformed, partition: 0 }],
    });
    await producer.send({
      topic: ns.topics.interactions,
      acks: -1,
      messages: [{ key: 'u1', value: JSON.stringify(event('clean-2')) }],
    });

    await eventually(
      storedIds,
      (ids) => ids.includes('clean-1') && ids.includes('clean-2'),
      'the clean events stored',
    );
    expect(await storedIds()).toEqual(['clean-1', 'clean-2']);

    const bad = await dlq.waitFor<DeadLetter>(
      ns.topics.deadLetter,
      (d) => Buffer.from(d.original_base64, 'base64').toString() === surrogate,
      'the surrogate dead letter',
    );
    expect(DeadLetterSchema.parse(bad)).toMatchObject({
      source_topic: ns.topics.interactions,
      reason_kind: 'unstorable',
      consumer: 'ingest',
    });
    expect(bad.reason).toMatch(/^title: contains an unpaired UTF-16 surrogate \(\\ud800\) at index 0/);

    const big = await dlq.waitFor<DeadLetter>(
      ns.topics.deadLetter,
      (d) => d.reason.startsWith('malformed JSON'),
      'the big-key dead letter',
    );
    expect(big.reason).toMatch(
      /; key holds the first \d+ of 600000 bytes \(dead-letter message size limit\)/,
    );
    expect(bigKey.startsWith(big.key!)).toBe(true);
    expect(Buffer.from(big.original_base64, 'base64').toString()).toBe(malformed);
    // The dead letter as the broker holds it: key and value well under its 1 MiB limit.
    const raw = dlq.messages.find(
      (m) => (JSON.parse(m.value!.toString()) as DeadLetter).reason === big.reason,
    )!;
    expect(raw.key!.length + raw.value!.length).toBeLessThan(1024 * 1024);

    expect(await health(ingest)).toBe(200);
    const metrics = await (await fetch(`http://127.0.0.1:${ingest.port}/metrics`)).text();
    // Dead-letter metrics are labelled by kind (a closed set), never by the reason text.
    expect(metrics).toMatch(/cprec_ingest_dead_lettered_total\{[^}]*reason="unstorable"[^}]*\} 1/);
    expect(metrics).toMatch(/cprec_ingest_dead_lettered_total\{[^}]*reason="malformed"[^}]*\} 1/);
  });

  it('evaluator: a forged published event with an unstorable adapter id is dead-lettered, and the next event is decided', async () => {
    const dlq = await ns.tap([ns.topics.deadLetter]);
    const published = (adapterId: string) => ({
      kind: 'published',
      adapter_id: adapterId,
      adapter_kind: 'sft',
      target_domains: [],
      uri: 'file:///nowhere',
      sha256: 'a'.repeat(64),
      lineage: {
        base_model: 'tiny-random',
        base_model_sha256: 'b'.repeat(64),
        round_id: 'r1',
        trunk_id: null,
        cpt_adapter_id: null,
        data_watermark: 0,
      },
      ts: Date.now(),
    });
    const forged = JSON.stringify(published('forged-\udfff'));
    await producer.send({
      topic: ns.topics.adapters,
      acks: -1,
      messages: [
        { key: 'forged', value: forged },
        { key: 'clean', value: JSON.stringify(published('clean-adapter')) },
      ],
    });
    const dead = await dlq.waitFor<DeadLetter>(
      ns.topics.deadLetter,
      (d) => d.consumer === 'evaluator',
      'the evaluator dead letter',
    );
    expect(dead).toMatchObject({ source_topic: ns.topics.adapters, reason_kind: 'unstorable' });
    expect(dead.reason).toMatch(/^adapter_id: contains an unpaired UTF-16 surrogate \(\\udfff\)/);
    expect(Buffer.from(dead.original_base64, 'base64').toString()).toBe(forged);

    // The clean event after it is handled: no target domain is configured, so the gate rejects it.
    const control = new ControlPlaneRepository(ns.ch);
    const [decision] = await eventually(
      () => control.listPromotions({ adapterIds: ['clean-adapter'], limit: 1 }),
      (rows) => rows.length > 0,
      'a decision on the clean adapter',
    );
    expect(decision?.decision).toBe('rejected');
    expect(await health(evaluator)).toBe(200);
  });

  it("classifies the real server's refusal of unstorable rows as permanent, and a down server as unavailable", async () => {
    const repo = new InteractionRepository(ns.ch);
    const refusal = await repo.insertEvents([{ ...event('direct-bad'), title: '\ud800' }]).then(
      () => null,
      (err: unknown) => err,
    );
    expect(refusal).not.toBeNull();
    expect(isClickHouseDataError(refusal)).toBe(true);
    expect(classifyFailure(refusal)).toBe('permanent');

    const nowhere = createClickHouse({
      ...ns.clickhouse,
      url: 'http://127.0.0.1:1',
      requestTimeoutMs: 2_000,
    });
    const down = await nowhere.query(sql`SELECT 1`).then(
      () => null,
      (err: unknown) => err,
    );
    await nowhere.close();
    expect(isClickHouseUnavailable(down)).toBe(true);
    expect(classifyFailure(down)).toBe('unavailable');
  });
});
