import type { ControlPlaneRepository, ServingEventRecord } from '@cprec/clickhouse';
import {
  decodeJson,
  DEFAULT_LIMITS,
  parseWith,
  rejectionKindOf,
  ServingEventSchema,
  type ServingEventMessage,
} from '@cprec/contracts';
import { RejectedMessage, type InboundMessage } from '@cprec/messaging';

/** Where the serving events go: the `serving_events` table, whose one writer the evaluator is. */
export type ServingEventStore = Pick<ControlPlaneRepository, 'insertServingEvent'>;

/** The table's record of a message (the replica that published it is the message's key, not a column). */
export function servingEventRecord(message: ServingEventMessage): ServingEventRecord {
  return {
    event: message.event,
    domain: message.domain,
    adapter_id: message.adapter_id,
    previous_adapter_id: message.previous_adapter_id,
    detail: message.detail,
    ts_ms: message.ts_ms,
  };
}

/**
 * Stores one message of `cprec.serving-events.v1` (what serving switched, rolled back or refused,
 * per domain) in `serving_events`. A message that can never be stored — not JSON, not a serving
 * event, unstorable text — is refused with `RejectedMessage` (the consumer dead-letters it with the
 * reason and moves on); a storage failure is the consumer's to classify (wait while ClickHouse is
 * down, dead-letter what it refuses).
 *
 * Idempotent: a redelivered message (restart, rebalance, a new group replaying the topic) inserts
 * the same record again, whose sorting key (ts_ms, event, adapter_id, domain) is the one stored
 * before, so it collapses under FINAL — which every reader of the table uses.
 */
export async function storeServingEvent(
  message: Pick<InboundMessage, 'value'>,
  store: ServingEventStore,
): Promise<ServingEventRecord> {
  const decoded = decodeJson(message.value, DEFAULT_LIMITS);
  if (!decoded.ok) throw new RejectedMessage(rejectionKindOf(decoded), decoded.reason);
  const parsed = parseWith(ServingEventSchema, decoded.value);
  if (!parsed.ok) throw new RejectedMessage('invalid', `serving event refused: ${parsed.reason}`);
  const record = servingEventRecord(parsed.value);
  await store.insertServingEvent(record);
  return record;
}
