import type { Producer } from 'kafkajs';
import { ControlPlaneRepository, sql } from '@cprec/clickhouse';
import { DeadLetterSchema, type DeadLetter, type ServingEventMessage } from '@cprec/contracts';
import { type Tap, useNamespace } from '../support/harness';
import { eventually, RunningService } from '../support/service-process';

/**
 * The evaluator as the one writer of serving_events, against the real servers: what serving
 * publishes on the serving-events topic is stored, a redelivered event (the same message twice, and
 * the whole topic replayed by a new consumer group) is one row for readers, and messages that are
 * not storable serving events are dead-lettered with a reason while the events after them are
 * stored. Serving's side (publishing, reading back after a restart) is in test/serving.
 */
const ns = useNamespace('serving_events');
let producer: Producer;
let evaluator: RunningService;
let dlq: Tap;
const T0 = 1_750_000_000_000;

const event = (
  adapterId: string,
  ts: number,
  extra: Partial<ServingEventMessage> = {},
): ServingEventMessage => ({
  event: 'switch',
  domain: 'games',
  adapter_id: adapterId,
  previous_adapter_id: '',
  detail: 'promoted',
  ts_ms: ts,
  instance: 'replica-1',
  ...extra,
});

const send = (values: Array<string | null>) =>
  producer.send({
    topic: ns.topics.servingEvents,
    acks: -1,
    messages: values.map((value) => ({ key: 'replica-1', value })),
  });

const startEvaluator = (group: string) =>
  ns.startService('evaluator', 'EVALUATOR_PORT', {
    EVALUATOR_GROUP_ID: ns.group(group),
    EVALUATOR_MODEL: 'tiny-random',
    EVALUATOR_BACKEND: 'cpu',
  });

/** Rows as readers see them (FINAL). */
async function rowsRead(): Promise<number> {
  const [{ n }] = await ns.ch.query<{ n: string }>(sql`SELECT count() AS n FROM serving_events FINAL`);
  return Number(n);
}

/** The dead letters of messages of the serving-events topic. */
const servingEventLetters = () =>
  dlq.values<DeadLetter>(ns.topics.deadLetter).filter((d) => d.source_topic === ns.topics.servingEvents);

beforeAll(async () => {
  producer = await ns.producer();
  dlq = await ns.tap([ns.topics.deadLetter]);
  evaluator = await startEvaluator('evaluator');
}, 180_000);

describe('the evaluator stores serving events (the one writer of serving_events)', () => {
  it('stores each event once for readers, dead-letters what is not a storable serving event and goes on', async () => {
    const control = new ControlPlaneRepository(ns.ch);
    const first = JSON.stringify(event('a1', T0));
    const poison = {
      malformed: '{"event": "switch", ',
      invalid: JSON.stringify({ ...event('a2', T0 + 1), event: 'exploded' }),
      // JSON.stringify writes the lone surrogate as the escape \ud800: valid JSON, unstorable text.
      unstorable: JSON.stringify(event('a3', T0 + 2, { detail: '\ud800' })),
      beyond2106: JSON.stringify(event('a4', 5_000_000_000_000)),
    };
    // The same event twice (a producer retry, a redelivery), the poison, then more events.
    await send([
      first,
      first,
      poison.malformed,
      poison.invalid,
      poison.unstorable,
      null,
      poison.beyond2106,
      JSON.stringify(event('base', T0 + 10, { event: 'rollback', previous_adapter_id: 'a1', detail: 'op' })),
      JSON.stringify(event('bad', T0 + 20, { event: 'load_failed', detail: 'sha256 mismatch' })),
    ]);

    const stored = await eventually(
      () => control.listServingEvents({ limit: 100 }),
      (rows) => rows.some((e) => e.adapter_id === 'bad'),
      'the events after the poison stored',
    );
    expect(
      stored.map((e) => [e.event, e.domain, e.adapter_id, e.previous_adapter_id, e.detail, e.ts_ms]),
    ).toEqual([
      ['load_failed', 'games', 'bad', '', 'sha256 mismatch', T0 + 20],
      ['rollback', 'games', 'base', 'a1', 'op', T0 + 10],
      ['switch', 'games', 'a1', '', 'promoted', T0],
    ]);
    expect(await rowsRead()).toBe(3);

    const letters = await eventually(
      async () => servingEventLetters(),
      (found) => found.length >= 5,
      'five dead letters',
    );
    for (const letter of letters) DeadLetterSchema.parse(letter);
    const byOriginal = (value: string | null) =>
      letters.find((d) => Buffer.from(d.original_base64, 'base64').toString() === (value ?? ''));
    expect(letters.map((d) => d.consumer)).toEqual(Array(5).fill('evaluator'));
    expect(byOriginal(poison.malformed)).toMatchObject({ reason_kind: 'malformed' });
    expect(byOriginal(poison.invalid)).toMatchObject({ reason_kind: 'invalid' });
    expect(byOriginal(poison.invalid)!.reason).toMatch(/^serving event refused: event: /);
    expect(byOriginal(poison.unstorable)).toMatchObject({ reason_kind: 'unstorable' });
    expect(byOriginal(poison.unstorable)!.reason).toMatch(/^detail: contains an unpaired UTF-16 surrogate/);
    expect(byOriginal(poison.beyond2106)!.reason).toMatch(/ts_ms/);
    expect(letters.filter((d) => d.reason_kind === 'empty')).toHaveLength(1);
    expect((await fetch(`http://127.0.0.1:${evaluator.port}/health`)).status).toBe(200);
  });

  it('a new consumer group replaying the whole topic adds no row for readers', async () => {
    await evaluator.stop();
    expect(await rowsRead()).toBe(3);
    // A new group starts at the beginning: every event is handled (stored, or dead-lettered) again.
    evaluator = await startEvaluator('evaluator-replay');
    await send([JSON.stringify(event('a5', T0 + 30))]);
    await eventually(rowsRead, (n) => n === 4, 'the new event stored');
    // The replay went through the whole topic: the poison was dead-lettered a second time …
    await eventually(
      async () => servingEventLetters().length,
      (n) => n === 10,
      'the poison refused again',
    );
    // … and the three events stored again are still three rows for readers.
    expect(await rowsRead()).toBe(4);
  });
});
