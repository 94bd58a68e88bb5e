import type { Producer } from 'kafkajs';
import { ident, sql } from '@cprec/clickhouse';
import type { DeadLetter, Topics } from '@cprec/contracts';
import { useNamespace, type Tap } from '../support/harness';
import { eventually, type RunningService } from '../support/service-process';
import { fuzzMessages, type FuzzMessage, type TopicTemplate } from './fuzz';
import { deadLetters, healthStatus, metric, seconds, sendEach } from './support';

/**
 * Fault suite, part 1 (issue 15): seeded random malformed, oversized and adversarial messages on
 * every topic a service consumes, against the real servers. Every message is accounted for —
 * stored (ingest), handled, skipped as a stale command, or dead-lettered with its kind and its
 * source offset, never two of these and never lost — every consumer stays healthy, and the clean
 * messages sent after the fuzz are stored or handled.
 */

const SEED = Number(process.env.CPREC_FUZZ_SEED ?? 20_260_515);
const PER_TOPIC = Number(process.env.CPREC_FUZZ_PER_TOPIC ?? 40);

const ns = useNamespace('faults_fuzz');
const T = ns.topics;
const NOW = Date.now();
/** Older than every consumer's command lifetime (1 h by default): valid commands are skipped. */
const STALE = NOW - 2 * 3600_000;

const TEMPLATES: Record<string, TopicTemplate> = {
  interactions: {
    make: (i) => ({
      event_id: `fz-int-${i}`,
      user_id: `fu${i % 7}`,
      item_id: `fz-item-${i % 11}`,
      domain: 'games',
      ts: NOW - 600_000 + i,
      title: `title ${i}`,
    }),
    idField: 'event_id',
    required: ['event_id', 'user_id', 'item_id', 'domain', 'ts'],
    strings: ['title', 'user_id', 'item_id', 'domain'],
    tsField: 'ts',
    padField: 'title',
  },
  items: {
    make: (i) => ({
      item_id: `fz-item-${i}`,
      domain: 'games',
      title: `item ${i}`,
      attributes: { colour: 'red', size: i },
      ts: NOW,
    }),
    idField: 'item_id',
    required: ['item_id', 'domain', 'title'],
    strings: ['title', 'domain'],
    tsField: 'ts',
    padField: 'title',
  },
  sequencerCommands: {
    make: (i) => ({
      kind: 'create_split',
      split_id: `fz-split-${i}`,
      split_kind: 'loo',
      domains: ['games'],
      seed: i,
      requested_by: 'fuzz',
      ts: STALE,
    }),
    required: ['kind', 'split_id', 'split_kind', 'domains', 'seed', 'requested_by', 'ts'],
    strings: ['requested_by', 'split_id'],
    tsField: 'ts',
    padField: 'requested_by',
  },
  roundCommands: {
    make: (i) => ({
      kind: 'trigger',
      command_id: `fz-round-${i}`,
      requested_by: 'fuzz',
      reason: 'fuzz',
      target_domains: ['games'],
      ts: STALE,
    }),
    required: ['kind', 'command_id', 'requested_by', 'ts'],
    strings: ['reason', 'command_id', 'requested_by'],
    tsField: 'ts',
    padField: 'reason',
  },
  corpusStats: {
    make: (i) => ({
      watermark: 1_000 + i,
      previous_watermark: 0,
      domains: [{ domain: 'games', new_interactions: 1, new_users: 1, total_interactions: 10 + i }],
      ts: NOW,
    }),
    required: ['watermark', 'previous_watermark', 'domains', 'ts'],
    strings: ['watermark', 'previous_watermark'],
    tsField: 'ts',
    padField: 'watermark',
  },
  adapters: {
    // A decision, which the evaluator and serving both read and neither acts on.
    make: (i) => ({ kind: 'rejected', adapter_id: `fz-adapter-${i}`, reasons: ['fuzz'], ts: NOW }),
    required: ['kind', 'adapter_id', 'reasons', 'ts'],
    strings: ['adapter_id'],
    tsField: 'ts',
    padField: 'adapter_id',
  },
  evaluatorCommands: {
    make: (i) => ({
      kind: 'promote',
      command_id: `fz-promote-${i}`,
      adapter_id: `fz-adapter-${i}`,
      requested_by: 'fuzz',
      reason: 'fuzz',
      ts: STALE,
    }),
    required: ['kind', 'command_id', 'adapter_id', 'requested_by', 'ts'],
    strings: ['reason', 'command_id', 'adapter_id', 'requested_by'],
    tsField: 'ts',
    padField: 'reason',
  },
  servingEvents: {
    // What a serving replica reports; the evaluator stores it. A domain nothing else uses, so the
    // stored switches never become an incumbent that matters to this suite.
    make: (i) => ({
      event: 'switch',
      domain: 'fzevents',
      adapter_id: `fz-adapter-${i}`,
      previous_adapter_id: '',
      detail: 'fuzz',
      ts_ms: NOW + i,
      instance: 'fuzz-replica',
    }),
    required: ['event', 'domain', 'adapter_id', 'previous_adapter_id', 'detail', 'ts_ms', 'instance'],
    strings: ['detail', 'adapter_id', 'domain', 'instance'],
    tsField: 'ts_ms',
    padField: 'detail',
  },
  servingCommands: {
    make: (i) => ({
      kind: 'rollback',
      command_id: `fz-rollback-${i}`,
      domain: 'games',
      requested_by: 'fuzz',
      ts: STALE,
    }),
    required: ['kind', 'command_id', 'domain', 'requested_by', 'ts'],
    strings: ['requested_by', 'command_id', 'domain'],
    tsField: 'ts',
    padField: 'requested_by',
  },
};

/** Clean, fresh and harmless messages per topic (nothing here starts work). */
const CLEAN: Record<string, (tag: string) => Record<string, unknown>> = {
  interactions: (tag) => ({
    event_id: `clean-int-${tag}`,
    user_id: 'clean-user',
    item_id: 'fz-item-1',
    domain: 'games',
    ts: Date.now() - 1_000,
  }),
  items: (tag) => ({ item_id: `clean-item-${tag}`, domain: 'games', title: `clean ${tag}` }),
  // A domain nothing was ingested for: the split cannot be frozen yet (handled, not refused).
  sequencerCommands: (tag) => ({
    kind: 'create_split',
    split_id: `clean-split-${tag}`,
    split_kind: 'loo',
    domains: ['fzempty'],
    seed: 1,
    requested_by: 'clean',
    ts: Date.now(),
  }),
  roundCommands: (tag) => ({
    kind: 'cancel',
    command_id: `clean-cancel-${tag}`,
    round_id: 'no-such-round',
    requested_by: 'clean',
    ts: Date.now(),
  }),
  corpusStats: () => ({ watermark: 5, previous_watermark: 0, domains: [], ts: Date.now() }),
  adapters: (tag) => ({ kind: 'rejected', adapter_id: `clean-${tag}`, reasons: [], ts: Date.now() }),
  evaluatorCommands: (tag) => ({
    kind: 'promote',
    command_id: `clean-promote-${tag}`,
    adapter_id: 'no-such-adapter',
    requested_by: 'clean',
    ts: Date.now(),
  }),
  servingEvents: (tag) => ({
    event: 'rollback',
    domain: 'fzevents',
    adapter_id: `clean-${tag}`,
    previous_adapter_id: '',
    detail: 'clean',
    ts_ms: Date.now(),
    instance: 'clean-replica',
  }),
  servingCommands: (tag) => ({
    kind: 'rollback',
    command_id: `clean-rollback-${tag}`,
    domain: 'fzempty',
    requested_by: 'clean',
    ts: Date.now(),
  }),
};

type TopicKey = keyof typeof TEMPLATES & keyof Topics;

/** Who consumes what (libs/messaging/src/acls.ts has the same table for the ACLs). */
const CONSUMERS: Record<string, readonly string[]> = {
  interactions: ['ingest'],
  items: ['ingest'],
  sequencerCommands: ['sequencer'],
  roundCommands: ['trainer'],
  corpusStats: ['trainer'],
  adapters: ['evaluator', 'serving'],
  evaluatorCommands: ['evaluator'],
  servingCommands: ['serving'],
  servingEvents: ['evaluator'],
};
const COMMAND_TOPICS = ['sequencerCommands', 'roundCommands', 'evaluatorCommands', 'servingCommands'];
const topicKeys = Object.keys(TEMPLATES) as TopicKey[];

let producer: Producer;
let tap: Tap;
const services: Record<string, RunningService> = {};
/** Per topic: the fuzz messages sent and their offsets (all on partition 0). */
const sent: Record<string, Array<FuzzMessage & { offset: string }>> = {};

/** Two adversarial messages that are well-formed: forged decisions that must change nothing. */
const FORGED = {
  // Published with no target domain: the gate rejects it without evaluating anything.
  published: {
    kind: 'published',
    adapter_id: 'forged-published',
    adapter_kind: 'sft',
    target_domains: [],
    uri: 'file:///nowhere/at/all',
    sha256: 'a'.repeat(64),
    lineage: {
      base_model: 'x',
      base_model_sha256: 'b'.repeat(64),
      round_id: 'r',
      trunk_id: null,
      cpt_adapter_id: null,
      data_watermark: 0,
    },
    ts: NOW,
  },
  // A promotion of an artefact that does not exist: serving must keep serving the base model.
  promoted: {
    kind: 'promoted',
    adapter_id: 'forged-promoted',
    uri: 'file:///etc/passwd',
    sha256: 'c'.repeat(64),
    target_domains: ['games'],
    hr1: { games: 1 },
    reasons: ['forged'],
    ts: NOW,
  },
};

beforeAll(async () => {
  producer = await ns.producer();
  tap = await ns.tap([...topicKeys.map((k) => T[k]), T.deadLetter]);
  const common = { CPREC_CONSUMER_RETRY_INITIAL_MS: '100', CPREC_CONSUMER_RETRY_MAX_MS: '1000' };
  const started = await Promise.all([
    ns.startService('ingest', 'INGEST_PORT', {
      ...common,
      INGEST_GROUP_ID: ns.group('ingest'),
      INGEST_FLUSH_INTERVAL_MS: '200',
    }),
    ns.startService('sequencer', 'SEQUENCER_PORT', {
      ...common,
      SEQUENCER_CLIENT_ID: ns.group('sequencer'),
      SEQUENCER_INTERVAL_MS: '1000',
      SEQUENCER_SAFETY_MARGIN_MS: '0',
    }),
    ns.startService('trainer', 'TRAINER_PORT', {
      ...common,
      TRAINER_GROUP_ID: ns.group('trainer'),
      TRAINER_MODEL: 'tiny-random',
      TRAINER_BACKEND: 'cpu',
    }),
    ns.startService('evaluator', 'EVALUATOR_PORT', {
      ...common,
      EVALUATOR_GROUP_ID: ns.group('evaluator'),
      EVALUATOR_MODEL: 'tiny-random',
      EVALUATOR_BACKEND: 'cpu',
    }),
    // The stories260K checkpoint (CPREC_BASE_MODEL's default): no trainer round needed first.
    ns.startService(
      'serving',
      'SERVING_PORT',
      {
        ...common,
        SERVING_GROUP_ID: ns.group('serving'),
        SERVING_BACKEND: 'cpu',
        SERVING_WORKERS: '0',
        SERVING_FIRST_STAGE_REFRESH_MS: '3600000',
      },
      { timeoutMs: 180_000 },
    ),
  ]);
  for (const s of started) services[s.name] = s;
}, 300_000);

/** The stored ids among `ids` in an ingest table, with their row counts after deduplication. */
async function storedCounts(table: 'interactions' | 'items', column: string, prefix: string) {
  const rows = await ns.ch.query<{ id: string; n: string }>(
    sql`SELECT ${ident(column)} AS id, count() AS n FROM ${ident(table)} FINAL WHERE ${ident(column)} LIKE ${`${prefix}%`} GROUP BY id`,
  );
  return new Map(rows.map((r) => [r.id, Number(r.n)]));
}

const dlKey = (consumer: string, topic: string, offset: string) => `${consumer} ${topic} ${offset}`;

function deadLetterIndex(): Map<string, DeadLetter[]> {
  const index = new Map<string, DeadLetter[]>();
  for (const d of deadLetters(tap, T.deadLetter)) {
    if (d.partition !== 0) continue;
    const key = dlKey(d.consumer ?? '?', d.source_topic, d.offset);
    index.set(key, [...(index.get(key) ?? []), d]);
  }
  return index;
}

const onTopic = (topic: string) => tap.messages.filter((m) => m.topic === topic).length;

describe('fault suite: seeded fuzz on every consumed topic', () => {
  it(`accounts for every message, keeps every consumer healthy and handles the clean messages after them (seed ${SEED})`, async () => {
    const start = Date.now();
    console.log(`fuzz seed ${SEED}, ${PER_TOPIC} messages per topic (CPREC_FUZZ_SEED to replay)`);
    // A clean message first on every topic, handled: every consumer is reading (serving starts at
    // the end of its topics, so nothing it must count is sent before it is positioned).
    for (const k of topicKeys)
      await sendEach(producer, T[k], [{ key: 'canary', value: JSON.stringify(CLEAN[k]!('canary')) }]);
    for (const k of topicKeys)
      for (const consumer of CONSUMERS[k]!) {
        if (consumer === 'ingest') continue;
        await eventually(
          () => metric(services[consumer]!.port, 'cprec_consumer_handled_total', { consumer, topic: T[k] }),
          (n) => n >= 1,
          `${consumer} to handle the canary on ${k}`,
        );
      }

    for (const [i, k] of topicKeys.entries()) {
      const messages = fuzzMessages(TEMPLATES[k]!, SEED + i, PER_TOPIC);
      const offsets = await sendEach(producer, T[k], messages);
      sent[k] = messages.map((m, j) => ({ ...m, offset: offsets[j]! }));
    }
    await sendEach(producer, T.adapters, [
      { key: 'forged', value: JSON.stringify(FORGED.published) },
      { key: 'forged', value: JSON.stringify(FORGED.promoted) },
    ]);
    // Clean messages after the fuzz.
    for (const k of topicKeys)
      await sendEach(producer, T[k], [{ key: 'after', value: JSON.stringify(CLEAN[k]!('after')) }]);
    const sentAt = Date.now();

    // Accounted: per consumer and topic, handled + dead-lettered = every message on the topic.
    const ledger = async () => {
      const pending: string[] = [];
      for (const k of topicKeys)
        for (const consumer of CONSUMERS[k]!) {
          if (consumer === 'ingest') continue;
          const port = services[consumer]!.port;
          const handled = await metric(port, 'cprec_consumer_handled_total', { consumer, topic: T[k] });
          const dead = await metric(port, 'cprec_consumer_dead_lettered_total', { consumer, topic: T[k] });
          if (handled + dead !== onTopic(T[k]))
            pending.push(`${consumer}/${k}: ${handled} handled + ${dead} dead of ${onTopic(T[k])}`);
        }
      const ints = await storedCounts('interactions', 'event_id', 'clean-int-after');
      const items = await storedCounts('items', 'item_id', 'clean-item-after');
      if (ints.size === 0 || items.size === 0) pending.push('ingest: clean events not stored yet');
      const index = deadLetterIndex();
      for (const k of ['interactions', 'items'] as const) {
        const stored = await storedCounts(
          k,
          k === 'interactions' ? 'event_id' : 'item_id',
          k === 'interactions' ? 'fz-int-' : 'fz-item-',
        );
        const open = sent[k]!.filter(
          (m) => !stored.has(m.id!) && !index.has(dlKey('ingest', T[k], m.offset)),
        ).length;
        if (open > 0) pending.push(`ingest/${k}: ${open} neither stored nor dead-lettered`);
      }
      return pending;
    };
    await eventually(ledger, (p) => p.length === 0, 'every message accounted for', 120_000);
    const accountedIn = seconds(sentAt);

    const index = deadLetterIndex();
    const summary: string[] = [];
    for (const k of topicKeys) {
      const messages = sent[k]!;
      for (const consumer of CONSUMERS[k]!) {
        const dead = (m: { offset: string }) => index.get(dlKey(consumer, T[k], m.offset)) ?? [];
        // No message dead-lettered twice by one consumer, and nothing clean dead-lettered.
        for (const [key, letters] of index)
          if (key.startsWith(`${consumer} ${T[k]} `))
            expect({ key, count: letters.length }).toEqual({ key, count: 1 });
        const fuzzOffsets = new Set(messages.map((m) => m.offset));
        for (const key of index.keys())
          if (key.startsWith(`${consumer} ${T[k]} `))
            expect({ key, fuzz: fuzzOffsets.has(key.split(' ')[2]!) }).toEqual({ key, fuzz: true });

        let stored: Map<string, number> | null = null;
        if (consumer === 'ingest') {
          stored = await storedCounts(
            k as 'interactions' | 'items',
            k === 'interactions' ? 'event_id' : 'item_id',
            k === 'interactions' ? 'fz-int-' : 'fz-item-',
          );
          // Nothing duplicated in what queries read.
          for (const [id, n] of stored) expect({ id, n }).toEqual({ id, n: 1 });
        }
        for (const m of messages) {
          const letters = dead(m);
          const what = { topic: k, consumer, index: m.index, mutation: m.mutation };
          if (m.expected === 'dead-letter') {
            expect({ ...what, deadLettered: letters.length }).toEqual({ ...what, deadLettered: 1 });
            expect(m.kinds).toContain(letters[0]!.reason_kind);
            expect(letters[0]!.reason.length).toBeGreaterThan(0);
            // The original bytes, or their first bytes when the dead letter says it was cut to fit.
            const original = Buffer.from(letters[0]!.original_base64, 'base64');
            const value = m.value ?? Buffer.alloc(0);
            const cut = /holds the first \d+ of \d+ bytes/.test(letters[0]!.reason);
            expect({
              ...what,
              cut,
              original: cut ? value.subarray(0, original.length).equals(original) : value.equals(original),
            }).toEqual({ ...what, cut, original: true });
          }
          if (m.expected === 'accept')
            expect({ ...what, deadLettered: letters.length }).toEqual({ ...what, deadLettered: 0 });
          if (stored !== null)
            // Exactly one of stored and dead-lettered.
            expect({ ...what, stored: stored.has(m.id!), deadLettered: letters.length === 1 }).toEqual({
              ...what,
              stored: letters.length === 0,
              deadLettered: letters.length === 1,
            });
        }
        const deadCount = messages.filter((m) => dead(m).length > 0).length;
        if (COMMAND_TOPICS.includes(k)) {
          // Every well-formed fuzz command is stale: skipped, never acted on.
          const skipped = await metric(services[consumer]!.port, 'cprec_consumer_skipped_total', {
            consumer,
            reason: 'stale_command',
          });
          expect({ topic: k, skipped }).toEqual({ topic: k, skipped: messages.length - deadCount });
        }
        summary.push(
          `${k.padEnd(18)} ${consumer.padEnd(9)} ${messages.length} sent: ${deadCount} dead-lettered, ${
            messages.length - deadCount
          } ${consumer === 'ingest' ? 'stored' : COMMAND_TOPICS.includes(k) ? 'skipped (stale)' : 'handled'}`,
        );
      }
    }

    // The clean messages after the fuzz were stored (ingest) and handled (counted above, and not
    // dead-lettered); the forged promotion changed nothing that serves.
    expect([...(await storedCounts('interactions', 'event_id', 'clean-int-'))].sort()).toEqual(
      [
        ['clean-int-after', 1],
        ['clean-int-canary', 1],
      ].sort(),
    );
    expect((await storedCounts('items', 'item_id', 'clean-item-')).size).toBe(2);
    const games = (await (
      await fetch(`http://127.0.0.1:${services.serving!.port}/v1/adapter?domain=games`)
    ).json()) as { adapter_id: string };
    expect(games.adapter_id).toBe('base');
    for (const s of Object.values(services))
      expect({ service: s.name, health: await healthStatus(s.port) }).toEqual({
        service: s.name,
        health: 200,
      });
    console.log(
      `fuzz: ${topicKeys.length * PER_TOPIC} messages on ${topicKeys.length} topics, all accounted for ${accountedIn} after the last was sent (${seconds(start)} in all)\n${summary.join('\n')}`,
    );
  });
});
