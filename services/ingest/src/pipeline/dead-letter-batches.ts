import type { DeadLetter } from '@cprec/contracts';

/** One dead letter ready for the producer. */
export interface DeadLetterMessage {
  key: string | null;
  value: string;
}

/**
 * Below the broker's default `max.message.bytes` (1 MiB) with room for the record-batch and
 * request framing: kafkajs puts every message of one `send` to the single-partition dead-letter
 * topic into one record batch, and the broker refuses a batch over the limit — a refusal that
 * retrying cannot cure, so the flush (and the whole consumer) would stall on it.
 */
export const DEAD_LETTER_BATCH_BYTES = 900 * 1024;

/**
 * Splits dead letters into produce requests that each stay under `maxBatchBytes`. A single dead
 * letter that cannot fit (its original was itself near the broker's limit, and base64 adds a
 * third) keeps the first bytes of the original that fit, and its reason says how many of how
 * many bytes `original_base64` holds; topic/partition/offset still locate the full message.
 */
export function deadLetterBatches(
  records: readonly DeadLetter[],
  maxBatchBytes: number = DEAD_LETTER_BATCH_BYTES,
): DeadLetterMessage[][] {
  const batches: DeadLetterMessage[][] = [];
  let current: DeadLetterMessage[] = [];
  let currentBytes = 0;
  for (const record of records) {
    const message = fitMessage(record, maxBatchBytes);
    const bytes = Buffer.byteLength(message.value) + Buffer.byteLength(message.key ?? '');
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

function fitMessage(record: DeadLetter, maxBytes: number): DeadLetterMessage {
  const value = JSON.stringify(record);
  const keyBytes = Buffer.byteLength(record.key ?? '');
  if (Buffer.byteLength(value) + keyBytes <= maxBytes) return { key: record.key, value };
  const originalBytes = Buffer.from(record.original_base64, 'base64').length;
  // Everything but the original, with the longest note the truncation can need.
  const note = (kept: number) =>
    `; original_base64 holds the first ${kept} of ${originalBytes} bytes (dead-letter message size limit)`;
  const frame = Buffer.byteLength(
    JSON.stringify({ ...record, original_base64: '', reason: record.reason + note(originalBytes) }),
  );
  const base64Room = Math.max(0, maxBytes - keyBytes - frame);
  const keptBytes = Math.floor(base64Room / 4) * 3;
  const kept = Buffer.from(record.original_base64, 'base64').subarray(0, keptBytes);
  return {
    key: record.key,
    value: JSON.stringify({
      ...record,
      reason: record.reason + note(kept.length),
      original_base64: kept.toString('base64'),
    }),
  };
}
