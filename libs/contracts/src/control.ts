import { z } from 'zod';
import { DomainSchema } from './events';
import { MAX_STORABLE_EPOCH_MS } from './storable';

/** Epoch milliseconds a ClickHouse DateTime can hold (control-plane rows store them as DateTime). */
const EpochMs = z.number().int().min(0).max(MAX_STORABLE_EPOCH_MS);

/** Operator or policy asks the trainer to run or cancel a round. */
export const RoundCommandSchema = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('trigger'),
    command_id: z.string().min(1),
    requested_by: z.string().min(1),
    reason: z.string().default(''),
    target_domains: z.array(DomainSchema).optional(),
    ts: EpochMs,
  }),
  z.strictObject({
    kind: z.literal('cancel'),
    command_id: z.string().min(1),
    round_id: z.string().min(1),
    requested_by: z.string().min(1),
    ts: EpochMs,
  }),
]);
export type RoundCommand = z.infer<typeof RoundCommandSchema>;

export const ROUND_STATES = [
  'queued',
  'warmup',
  'stable',
  'annealing',
  'fine_tuning',
  'published',
  'failed',
  'cancelled',
] as const;
export type RoundState = (typeof ROUND_STATES)[number];

/** Progress of a round, published by the trainer on every state change and periodically. */
export const RoundEventSchema = z.strictObject({
  round_id: z.string().min(1),
  state: z.enum(ROUND_STATES),
  step: z.number().int().min(0),
  total_steps: z.number().int().min(0),
  loss: z.number().nullable(),
  lr: z.number().nullable(),
  message: z.string().default(''),
  ts: EpochMs,
});
export type RoundEvent = z.infer<typeof RoundEventSchema>;

/**
 * Asks the sequencer (the one writer of evaluation splits) to freeze a split: leave-one-out over
 * the current sequences, or the next interactions inside a time window. Idempotent per split_id;
 * readers poll the split table until it appears.
 */
export const SplitRequestSchema = z.strictObject({
  kind: z.literal('create_split'),
  split_id: z.string().regex(/^[A-Za-z0-9._:-]{1,128}$/),
  split_kind: z.enum(['loo', 'window']),
  domains: z.array(DomainSchema).min(1),
  seed: z.number().int().min(0).max(0xffffffff),
  window_start_ms: z.number().int().min(0).optional(),
  window_end_ms: z.number().int().min(0).optional(),
  requested_by: z.string().min(1),
  ts: EpochMs,
});
export type SplitRequestCommand = z.infer<typeof SplitRequestSchema>;

/** Per-domain growth since the last round watermark, published by the sequencer. */
export const CorpusStatsSchema = z.strictObject({
  watermark: z.number().int().min(0),
  previous_watermark: z.number().int().min(0),
  domains: z.array(
    z.strictObject({
      domain: DomainSchema,
      new_interactions: z.number().int().min(0),
      new_users: z.number().int().min(0),
      total_interactions: z.number().int().min(0),
    }),
  ),
  ts: EpochMs,
});
export type CorpusStats = z.infer<typeof CorpusStatsSchema>;

export const AdapterLineageSchema = z.strictObject({
  base_model: z.string(),
  base_model_sha256: z.string(),
  round_id: z.string(),
  trunk_id: z.string().nullable(),
  cpt_adapter_id: z.string().nullable(),
  data_watermark: z.number().int().min(0),
});
export type AdapterLineage = z.infer<typeof AdapterLineageSchema>;

export const AdapterEventSchema = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('published'),
    adapter_id: z.string().min(1),
    adapter_kind: z.enum(['cpt', 'sft']),
    target_domains: z.array(DomainSchema),
    uri: z.string().min(1),
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
    lineage: AdapterLineageSchema,
    ts: EpochMs,
  }),
  z.strictObject({
    kind: z.literal('promoted'),
    adapter_id: z.string().min(1),
    uri: z.string().min(1),
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
    target_domains: z.array(DomainSchema),
    hr1: z.record(z.string(), z.number()),
    reasons: z.array(z.string()),
    ts: EpochMs,
  }),
  z.strictObject({
    kind: z.literal('rejected'),
    adapter_id: z.string().min(1),
    reasons: z.array(z.string()),
    ts: EpochMs,
  }),
]);
export type AdapterEvent = z.infer<typeof AdapterEventSchema>;

/** Operator asks the evaluator to promote an adapter, bypassing (but recording) the gate. */
export const EvaluatorCommandSchema = z.strictObject({
  kind: z.literal('promote'),
  command_id: z.string().min(1),
  adapter_id: z.string().min(1),
  requested_by: z.string().min(1),
  reason: z.string().default(''),
  ts: EpochMs,
});
export type EvaluatorCommand = z.infer<typeof EvaluatorCommandSchema>;

/**
 * Operator asks serving to roll back the adapter of one domain (serving holds one adapter per
 * domain, so a rollback never touches another domain's). Without `to_adapter_id`: that domain's
 * previous adapter; `base` serves the domain with the base model alone.
 */
export const ServingCommandSchema = z.strictObject({
  kind: z.literal('rollback'),
  command_id: z.string().min(1),
  domain: DomainSchema,
  to_adapter_id: z.string().min(1).optional(),
  requested_by: z.string().min(1),
  ts: EpochMs,
});
export type ServingCommand = z.infer<typeof ServingCommandSchema>;

/**
 * One serving event (`cprec.serving-events.v1`): the record of `serving_events` plus the replica
 * that published it (the message key too, so one replica's events stay in order). Serving
 * publishes it, the evaluator stores it (the table's one writer; a redelivery is the same row:
 * the table's sorting key is the event's identity and readers use FINAL).
 */
export const ServingEventSchema = z.strictObject({
  /** An adapter switched in (promotion), rolled back to, or refused at load. */
  event: z.enum(['switch', 'rollback', 'load_failed']),
  /** The target domain whose adapter changed (or failed to). */
  domain: DomainSchema,
  adapter_id: z.string().min(1),
  /** '' when nothing served the domain before. */
  previous_adapter_id: z.string(),
  detail: z.string().max(4_000),
  ts_ms: EpochMs,
  /** The serving replica (SERVING_INSTANCE_ID, default host-port). */
  instance: z.string().regex(/^[A-Za-z0-9._-]{1,256}$/),
});
export type ServingEventMessage = z.infer<typeof ServingEventSchema>;

export const DriftEventSchema = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('observation'),
    adapter_id: z.string(),
    domain: DomainSchema,
    window_start: EpochMs,
    window_end: EpochMs,
    hr1: z.number(),
    samples: z.number().int().min(0),
    ts: EpochMs,
  }),
  z.strictObject({
    kind: z.literal('alert'),
    adapter_id: z.string(),
    domain: DomainSchema,
    hr1: z.number(),
    baseline_hr1: z.number(),
    relative_drop: z.number(),
    samples: z.number().int().min(0),
    refresh_requested: z.boolean(),
    ts: EpochMs,
  }),
]);
export type DriftEvent = z.infer<typeof DriftEventSchema>;
