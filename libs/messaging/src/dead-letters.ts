import type { Admin, Producer } from 'kafkajs';
import { ConfigResourceTypes } from 'kafkajs';
import type { DeadLetter, RejectionKind } from '@cprec/contracts';
import { isPermanentKafkaError } from './failures';

/** One dead letter ready for the producer. */
export interface DeadLetterMessage {
  key: string | null;
  value: string;
}

/** Where refused messages go; `send` resolves once the broker has them all. */
export interface DeadLetterSink {
  send(records: readonly DeadLetter[]): Promise<void>;
}

/** The message a dead letter describes, as it was consumed. */
export interface DeadLetterSource {
  topic: string;
  partition: number;
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
}

/**
 * Below the broker's default `max.message.bytes` (1 MiB) with room for the record-batch and
 * request framing: kafkajs puts every message of one `send` to the single-partition dead-letter
 * topic into one record batch, and the broker refuses a batch over the limit — a refusal that
 * retrying cannot cure, so the consumer would stall on it. `deadLetterBudget` lowers it when the
 * topic's own limit is smaller.
 */
export const DEAD_LETTER_MAX_BYTES = 900 * 1024;
/** A key longer than this is cut to its first bytes in the dead letter (it is in it twice). */
export const DEAD_LETTER_KEY_BYTES = 1024;
/** A reason longer than this is cut (a message with thousands of bad fields words each). */
export const DEAD_LETTER_REASON_CHARS = 4096;
/** The smallest budget the publisher shrinks to when the broker refuses a dead letter as too large. */
const MIN_BUDGET_BYTES = 8 * 1024;

/** The dead letter of a consumed message: the original bytes (base64), the key, the reason and its kind. */
export function deadLetterOf(
  source: DeadLetterSource,
  reason: string,
  kind: RejectionKind,
  consumer: string,
  now: number = Date.now(),
): DeadLetter {
  return {
    source_topic: source.topic,
    partition: source.partition,
    offset: source.offset,
    reason,
    original_base64: source.value ? source.value.toString('base64') : '',
    key: source.key ? source.key.toString('utf8') : null,
    ts: now,
    reason_kind: kind,
    consumer,
  };
}

/** The first bytes of `text` that fit in `maxBytes` of UTF-8, never splitting a character. */
export function utf8Prefix(text: string, maxBytes: number): string {
  if (Buffer.byteLength(text) <= maxBytes) return text;
  let bytes = 0;
  let end = 0;
  for (const ch of text) {
    const n = Buffer.byteLength(ch);
    if (bytes + n > maxBytes) break;
    bytes += n;
    end += ch.length;
  }
  return text.slice(0, end);
}

const messageBytes = (m: DeadLetterMessage): number =>
  Buffer.byteLength(m.value) + Buffer.byteLength(m.key ?? '');

/**
 * The dead letter as one Kafka message of at most `maxBytes` (key + value). What cannot fit is cut,
 * in this order, and the reason says what was kept: a reason longer than DEAD_LETTER_REASON_CHARS;
 * a key longer than DEAD_LETTER_KEY_BYTES (it travels twice: as the message key and in the
 * record); the original (its first bytes are kept). topic/partition/offset still locate the full
 * message in the source topic for as long as it is retained.
 */
export function fitDeadLetter(
  record: DeadLetter,
  maxBytes: number = DEAD_LETTER_MAX_BYTES,
): DeadLetterMessage {
  const whole: DeadLetterMessage = { key: record.key, value: JSON.stringify(record) };
  if (messageBytes(whole) <= maxBytes && record.reason.length <= DEAD_LETTER_REASON_CHARS) return whole;

  let reason =
    record.reason.length <= DEAD_LETTER_REASON_CHARS
      ? record.reason
      : `${record.reason.slice(0, DEAD_LETTER_REASON_CHARS)}… (reason cut from ${record.reason.length} characters)`;
  let key = record.key;
  const keyBytes = Buffer.byteLength(key ?? '');
  const keyLimit = Math.min(DEAD_LETTER_KEY_BYTES, Math.floor(maxBytes / 8));
  if (key !== null && keyBytes > keyLimit) {
    key = utf8Prefix(key, keyLimit);
    reason += `; key holds the first ${Buffer.byteLength(key)} of ${keyBytes} bytes (dead-letter message size limit)`;
  }
  const cut: DeadLetter = { ...record, reason, key };
  const fitted: DeadLetterMessage = { key, value: JSON.stringify(cut) };
  if (messageBytes(fitted) <= maxBytes) return fitted;

  const original = Buffer.from(record.original_base64, 'base64');
  // Everything but the original, with the longest note the truncation can need.
  const note = (kept: number) =>
    `; original_base64 holds the first ${kept} of ${original.length} bytes (dead-letter message size limit)`;
  const frame = messageBytes({
    key,
    value: JSON.stringify({ ...cut, original_base64: '', reason: reason + note(original.length) }),
  });
  const base64Room = Math.max(0, maxBytes - frame);
  const kept = original.subarray(0, Math.floor(base64Room / 4) * 3);
  return {
    key,
    value: JSON.stringify({
      ...cut,
      reason: reason + note(kept.length),
      original_base64: kept.toString('base64'),
    }),
  };
}

/**
 * Splits dead letters into produce requests that each stay under `maxBatchBytes`, every dead
 * letter first fitted to that size (fitDeadLetter).
 */
export function deadLetterBatches(
  records: readonly DeadLetter[],
  maxBatchBytes: number = DEAD_LETTER_MAX_BYTES,
): DeadLetterMessage[][] {
  const batches: DeadLetterMessage[][] = [];
  let current: DeadLetterMessage[] = [];
  let currentBytes = 0;
  for (const record of records) {
    const message = fitDeadLetter(record, maxBatchBytes);
    const bytes = messageBytes(message);
    if (current.length > 0 && currentBytes + bytes > maxBatchBytes) {
      batches.push(current);
      current = [];
      currentBytes = 0;
    }
    current.push(message);
    currentBytes += bytes;
  }
  if (current.length > 0) batches.push(current);
  return batches;
}

/**
 * The byte budget of one dead-letter request: 90% of the topic's `max.message.bytes` (the
 * broker's default when the topic sets none), at most DEAD_LETTER_MAX_BYTES; the default when the
 * broker cannot be asked.
 */
export async function deadLetterBudget(admin: Admin, topic: string): Promise<number> {
  try {
    const described = await admin.describeConfigs({
      includeSynonyms: false,
      resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames: ['max.message.bytes'] }],
    });
    const value = described.resources[0]?.configEntries.find(
      (e) => e.configName === 'max.message.bytes',
    )?.configValue;
    const limit = Number(value);
    if (Number.isFinite(limit) && limit > 0)
      return Math.max(MIN_BUDGET_BYTES, Math.min(DEAD_LETTER_MAX_BYTES, Math.floor(limit * 0.9)));
  } catch {
    // the default below
  }
  return DEAD_LETTER_MAX_BYTES;
}

/**
 * Sends dead letters to the dead-letter topic, fitted and batched under the byte budget. Should
 * the broker still refuse a request as too large (its limit is lower than the budget), the
 * budget is halved and the refused letters re-fitted, down to a few kilobytes: a dead letter is
 * never refused forever for its size.
 */
export class DeadLetterPublisher implements DeadLetterSink {
  constructor(
    private readonly producer: Pick<Producer, 'send'>,
    readonly topic: string,
    private budgetBytes: number = DEAD_LETTER_MAX_BYTES,
  ) {}

  get budget(): number {
    return this.budgetBytes;
  }

  async send(records: readonly DeadLetter[]): Promise<void> {
    let pending = [...records];
    while (pending.length > 0) {
      const budget = this.budgetBytes;
      const batch: DeadLetter[] = [];
      let bytes = 0;
      for (const record of pending) {
        const size = messageBytes(fitDeadLetter(record, budget));
        if (batch.length > 0 && bytes + size > budget) break;
        batch.push(record);
        bytes += size;
      }
      try {
        await this.producer.send({
          topic: this.topic,
          acks: -1,
          messages: batch.map((r) => fitDeadLetter(r, budget)),
        });
        pending = pending.slice(batch.length);
      } catch (err) {
        if (!isPermanentKafkaError(err) || budget <= MIN_BUDGET_BYTES) throw err;
        this.budgetBytes = Math.max(MIN_BUDGET_BYTES, Math.floor(budget / 2));
      }
    }
  }
}
