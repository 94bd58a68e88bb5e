import { z } from 'zod';
import { CommonEnvSchema, envBool, envInt, envList, envNumber, loadConfig } from '@cprec/service-common';

export const EvaluatorEnvSchema = CommonEnvSchema.extend({
  EVALUATOR_PORT: envInt(8104, 1),
  EVALUATOR_GROUP_ID: z.string().min(1).default('cprec-evaluator'),
  /**
   * A new consumer group starts at the topics' beginning (every adapter ever published gets a
   * decision; decided ones are skipped). Tests sharing the broker set false.
   */
  EVALUATOR_FROM_BEGINNING: envBool(true),
  /** Domains evaluated when an AdapterPublished names none (CPT adapters name none). */
  EVALUATOR_TARGET_DOMAINS: envList([]),
  /** Seed recorded with every split the evaluator asks for (candidates derive from it). */
  EVALUATOR_SPLIT_SEED: envInt(20_240_501),
  /**
   * Part of the frozen test split's id: bump it to freeze a new test split (e.g. after the
   * catalogue changed a lot); every adapter is compared on the same split within an epoch.
   */
  EVALUATOR_SPLIT_EPOCH: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,32}$/)
    .default('1'),
  /** Examples evaluated per domain (the first ones of the frozen split, in its fixed order). */
  EVALUATOR_MAX_EXAMPLES: envInt(100, 1),
  /** How long to wait for the sequencer to freeze a requested split. */
  EVALUATOR_SPLIT_TIMEOUT_MS: envInt(120_000, 1),
  EVALUATOR_SPLIT_POLL_MS: envInt(500, 10),
  /** Gate: the candidate's HR@1 may be at most this much (absolute) below the serving adapter's. */
  EVALUATOR_GATE_MAX_HR1_DROP: envNumber(0.02),
  /**
   * Gate: Valid Ratio floor. Only meaningful when generation runs; a tiny or random model rarely
   * writes an exact title, so the default is 0 (see docs/evaluator.md).
   */
  EVALUATOR_GATE_MIN_VALID_RATIO: envNumber(0),
  /** Gate: fewer examples than this on a domain rejects (the numbers would be noise). */
  EVALUATOR_GATE_MIN_SAMPLES: envInt(10),
  /** Which HR@1 the gate (and drift) use: exact candidate likelihood, or greedy generation. */
  EVALUATOR_GATE_METHOD: z.enum(['likelihood', 'generation']).default('likelihood'),
  /** Also run greedy generation (Valid Ratio, LLaRA HR@1) when the gate uses likelihood. */
  EVALUATOR_GENERATION: envBool(false),
  /** CPT adapters are evaluated zero-shot and recorded; gate and promote them only when true. */
  EVALUATOR_PROMOTE_CPT: envBool(false),
  /** Prompt budget (as the trainer's TRAINER_MAX_TOKENS / TRAINER_MAX_TITLE_TOKENS). */
  /** 0 = the base model's context capped at 1,024 (defaultPromptTokens), as the trainer's default. */
  EVALUATOR_MAX_TOKENS: envInt(0, 0).refine(
    (v) => v === 0 || v >= 16,
    'must be 0 (follow the model) or at least 16',
  ),
  EVALUATOR_MAX_TITLE_TOKENS: envInt(12, 1),
  /** Drift monitoring period (0 = off). */
  EVALUATOR_DRIFT_INTERVAL_MS: envInt(0),
  /** Length of a drift window in event time (aligned to multiples of it). */
  EVALUATOR_DRIFT_WINDOW_MS: envInt(86_400_000, 1),
  /** Alert when HR@1 < baseline · (1 − this). */
  EVALUATOR_DRIFT_RELATIVE_DROP: envNumber(0.2),
  /** Windows with fewer examples never alert and never become a baseline. */
  EVALUATOR_DRIFT_MIN_SAMPLES: envInt(30),
  /** Ask the trainer for a refresh round when an alert fires. */
  EVALUATOR_DRIFT_REFRESH: envBool(false),
  /** No second alert for a domain within this time after one. */
  EVALUATOR_DRIFT_COOLDOWN_MS: envInt(3_600_000),
  /**
   * `checkpoint`: EVALUATOR_BASE_MODEL, else CPREC_BASE_MODEL (`.gguf`, llama2.c `.bin` or a Hugging
   * Face folder; `llama2c` is the former name); `tiny-random`: the trainer's tiny base artefact.
   */
  EVALUATOR_MODEL: z.enum(['checkpoint', 'llama2c', 'tiny-random']).default('checkpoint'),
  EVALUATOR_BASE_MODEL: z.string().min(1).optional(),
  /** llama2.c bases only (default: the `tok*.bin` beside the checkpoint). */
  EVALUATOR_TOKENIZER: z.string().min(1).optional(),
  EVALUATOR_BACKEND: z.enum(['auto', 'cpu', 'wasm', 'tensorflow', 'tensorflow-gpu']).default('auto'),
  /** An evaluation process that has not answered after this long is killed (the adapter is rejected). */
  EVALUATOR_JOB_TIMEOUT_MS: envInt(1_800_000, 1),
  /** Commands older than this are ignored (a new consumer group replays the topic). */
  EVALUATOR_COMMAND_MAX_AGE_MS: envInt(3_600_000, 1),
});
export type EvaluatorConfig = z.infer<typeof EvaluatorEnvSchema>;

export const EVALUATOR_CONFIG = Symbol('EVALUATOR_CONFIG');
export const loadEvaluatorConfig = (env: NodeJS.ProcessEnv = process.env): EvaluatorConfig =>
  loadConfig(EvaluatorEnvSchema, env);
