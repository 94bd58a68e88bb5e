import type { RejectionKind } from '@cprec/contracts';

/**
 * How a consumer treats a message it failed to process:
 * - `permanent`: the message itself is the problem (invalid, unstorable, refused by storage) —
 *   retrying cannot cure it: dead-letter it and move on;
 * - `unavailable`: a dependency is down or overloaded (connection refused, timeouts, too many
 *   parts) — keep retrying with backoff, visible in /health, and never dead-letter for it;
 * - `transient`: unknown — retry a bounded number of times, then ask whether a dependency is down
 *   (keep waiting if so) and otherwise treat the message as permanent (`retries_exhausted`).
 */
export type FailureClass = 'permanent' | 'unavailable' | 'transient';
export type FailureClassifier = (err: unknown) => FailureClass;

/** Thrown by a handler to refuse a message: it is dead-lettered with this kind and reason. */
export class RejectedMessage extends Error {
  override readonly name = 'RejectedMessage';
  constructor(
    readonly kind: RejectionKind,
    reason: string,
  ) {
    super(reason);
  }
}

/** Kafka refusals a retry cannot cure: the record itself is too large or malformed. */
const PERMANENT_KAFKA_TYPES = new Set([
  'MESSAGE_TOO_LARGE',
  'RECORD_LIST_TOO_LARGE',
  'INVALID_RECORD',
  'CORRUPT_MESSAGE',
  'INVALID_TIMESTAMP',
]);

interface KafkaLikeError {
  name?: unknown;
  type?: unknown;
  retriable?: unknown;
  cause?: unknown;
}

/** A kafkajs protocol error of one of `types`, also when wrapped (retries exhausted). */
export function kafkaErrorType(err: unknown): string | null {
  for (let e: unknown = err, depth = 0; e && depth < 5; depth++) {
    const k = e as KafkaLikeError;
    if (typeof k.type === 'string' && typeof k.name === 'string' && k.name.startsWith('KafkaJS'))
      return k.type;
    e = k.cause;
  }
  return null;
}

/** True when Kafka refused a record for what it is (too large, malformed): not a broker outage. */
export function isPermanentKafkaError(err: unknown): boolean {
  const type = kafkaErrorType(err);
  return type !== null && PERMANENT_KAFKA_TYPES.has(type);
}

/** True for kafkajs errors about reaching the broker (connection, timeouts, retries exhausted). */
export function isKafkaUnavailable(err: unknown): boolean {
  if (isPermanentKafkaError(err)) return false;
  const name = (err as KafkaLikeError | null)?.name;
  return typeof name === 'string' && name.startsWith('KafkaJS');
}

export const errorMessage = (err: unknown): string => (err instanceof Error ? err.message : String(err));
