import { z } from 'zod';
import { REJECTION_KINDS } from './rejections';
import { MAX_STORABLE_EPOCH_MS } from './storable';

/** Identifiers travel as strings so platforms keep their own id spaces; bounded and printable. */
const Id = z
  .string()
  .min(1, 'must not be empty')
  .max(256, 'must be at most 256 characters')
  .regex(/^[\x21-\x7e]+$/, 'must be printable ASCII without spaces');

/** Domains are short lowercase slugs (`beauty`, `video_games`), used in table keys and prompts. */
export const DomainSchema = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, 'must be a lowercase slug of 1-64 characters [a-z0-9_-]');

/**
 * Epoch milliseconds; ClickHouse 18.16 has no DateTime64 so we keep the integer as well. The
 * bound is what a `DateTime` column can hold (UInt32 seconds, up to 2106-02-07): beyond it the
 * server would wrap the date around silently.
 */
export const EpochMsSchema = z
  .number({ error: 'must be a number (epoch milliseconds)' })
  .int('must be an integer (epoch milliseconds)')
  .min(0, 'must not be negative')
  .max(MAX_STORABLE_EPOCH_MS, 'is beyond the storable date range (ClickHouse DateTime ends 2106-02-07)');
const EpochMs = EpochMsSchema;

export const InteractionEventSchema = z.strictObject({
  schema_version: z.literal(1).optional(),
  event_id: Id,
  user_id: Id,
  item_id: Id,
  domain: DomainSchema,
  ts: EpochMs,
  platform: z.string().min(1).max(64).optional(),
  title: z.string().max(1_000_000).optional(),
  /** Position in the source log; breaks timestamp ties (many datasets have day resolution). */
  seq: z.number().int().min(0).optional(),
});
export type InteractionEvent = z.infer<typeof InteractionEventSchema>;

export const ItemEventSchema = z.strictObject({
  schema_version: z.literal(1).optional(),
  item_id: Id,
  domain: DomainSchema,
  title: z.string().min(1, 'must not be empty').max(1_000_000),
  attributes: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).optional(),
  ts: EpochMs.optional(),
});
export type ItemEvent = z.infer<typeof ItemEventSchema>;

/** What ingest writes to the dead-letter topic: enough to explain and replay the message. */
export const DeadLetterSchema = z.strictObject({
  source_topic: z.string(),
  partition: z.number().int(),
  offset: z.string(),
  reason: z.string(),
  /** The original message value, base64 so arbitrary bytes survive (the first bytes only when the reason says so). */
  original_base64: z.string(),
  key: z.string().nullable(),
  ts: EpochMs,
  /** Why, as a closed set (the metric label); the reason says it in words. */
  reason_kind: z.enum(REJECTION_KINDS).optional(),
  /** The consumer (service) that refused the message. */
  consumer: z.string().optional(),
});
export type DeadLetter = z.infer<typeof DeadLetterSchema>;
