import { availableParallelism } from 'node:os';
import { z } from 'zod';
import { CommonEnvSchema, envInt, loadConfig } from '@cprec/service-common';

export const ServingEnvSchema = CommonEnvSchema.extend({
  SERVING_PORT: envInt(8105, 1),
  /** Consumer group of the adapter events and serving commands (its own: every serving instance swaps). */
  SERVING_GROUP_ID: z.string().min(1).default('cprec-serving'),
  /**
   * `checkpoint`: SERVING_BASE_MODEL, else CPREC_BASE_MODEL (the trainer's base: `.gguf`, llama2.c
   * `.bin` or a Hugging Face folder; `llama2c` is the former name); `tiny-random`: the trainer's
   * tiny model, read from the artefact store (base-models/tiny-random).
   */
  SERVING_MODEL: z.enum(['checkpoint', 'llama2c', 'tiny-random']).default('checkpoint'),
  SERVING_BASE_MODEL: z.string().min(1).optional(),
  /** llama2.c bases only (default: the `tok*.bin` beside the checkpoint). */
  SERVING_TOKENIZER: z.string().min(1).optional(),
  SERVING_BACKEND: z.enum(['auto', 'cpu', 'wasm', 'tensorflow', 'tensorflow-gpu']).default('auto'),
  /** Prompt budget: the trainer's TRAINER_MAX_TOKENS (0 = the base's context capped at 1,024) / TRAINER_MAX_TITLE_TOKENS. */
  SERVING_MAX_TOKENS: envInt(0, 0).refine(
    (v) => v === 0 || v >= 16,
    'must be 0 (follow the model) or at least 16',
  ),
  SERVING_MAX_TITLE_TOKENS: envInt(12, 1),
  /**
   * Merge LoRA into the base weights (1 = yes): the fused native blocks run, at the cost of a
   * private merged copy of the adapted projections per domain's adapter; 0 keeps one base in
   * memory with only each adapter's A/B matrices (slower, unfused forward).
   */
  SERVING_MERGE_LORA: envInt(1),
  /** Micro-batching: wait up to this many ms for company (0 = only what queued during the last batch). */
  SERVING_BATCH_WINDOW_MS: envInt(0),
  SERVING_MAX_BATCH: envInt(8, 1),
  /**
   * Scoring worker threads (each with its own copy of the model); 0 = score on the serving
   * thread. Default: one per core the process may use.
   */
  SERVING_WORKERS: envInt(availableParallelism(), 0),
  /** Load shedding: 503 for a request that waited longer than this for the model (0 = never). */
  SERVING_QUEUE_DEADLINE_MS: envInt(2_000),
  SERVING_MAX_ROWS_PER_FORWARD: envInt(64, 1),
  SERVING_TITLE_CACHE_MS: envInt(60_000),
  SERVING_FIRST_STAGE_REFRESH_MS: envInt(600_000, 1),
  SERVING_SASREC_MIN_SEQUENCES: envInt(20, 1),
  SERVING_SASREC_FIT_BUDGET_MS: envInt(20_000, 1),
  SERVING_SASREC_EPOCHS: envInt(20, 1),
  /** Wait this long for the tiny-random base artefact at start-up (the trainer writes it). */
  SERVING_BASE_WAIT_MS: envInt(120_000),
  /** Commands older than this are ignored (a new consumer group replays the topic). */
  SERVING_COMMAND_MAX_AGE_MS: envInt(3_600_000, 1),
  /**
   * At start, the serving-events topic is read back (the events the evaluator may not have stored
   * in serving_events yet) for at most this long; 0 = resume from serving_events alone.
   */
  SERVING_EVENTS_READBACK_MS: envInt(30_000, 0),
  /**
   * How long a switch or rollback waits for Kafka to acknowledge its event before it returns (the
   * event is retried in order until it is sent either way).
   */
  SERVING_EVENT_PUBLISH_WAIT_MS: envInt(10_000, 0),
  /**
   * This replica's name: its consumer group for adapter events and serving commands is
   * `${SERVING_GROUP_ID}-${instance}`, one per replica, so every replica hot-swaps and rolls back
   * (replicas sharing a group would split the events between them). Default: host name and port,
   * stable across restarts so a restarted replica resumes from its committed offsets.
   */
  SERVING_INSTANCE_ID: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,128}$/)
    .optional(),
  /**
   * Bearer token for serving's mutating endpoints (POST /v1/rollback). Defaults to the operator's
   * OPERATOR_TOKEN (the same secret); with neither set, mutations are refused with 503.
   */
  SERVING_TOKEN: z
    .string()
    .optional()
    .transform((v) => (v === undefined || v === '' ? null : v)),
  OPERATOR_TOKEN: z
    .string()
    .optional()
    .transform((v) => (v === undefined || v === '' ? null : v)),
});
export type ServingConfig = z.infer<typeof ServingEnvSchema>;

export const SERVING_CONFIG = Symbol('SERVING_CONFIG');
export const loadServingConfig = (env: NodeJS.ProcessEnv = process.env): ServingConfig =>
  loadConfig(ServingEnvSchema, env);
