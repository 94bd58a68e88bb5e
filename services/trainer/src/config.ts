import { z } from 'zod';
import { leaseValidityFor } from '@cprec/messaging';
import { DEFAULT_SPLIT_EPOCH, DEFAULT_SPLIT_SEED, SPLIT_EPOCH_PATTERN } from '@cprec/contracts';
import { CommonEnvSchema, envBool, envInt, envList, envNumber, loadConfig } from '@cprec/service-common';

export const TrainerEnvSchema = CommonEnvSchema.extend({
  TRAINER_PORT: envInt(8103, 1),
  TRAINER_GROUP_ID: z.string().min(1).default('cprec-trainer'),
  /**
   * `checkpoint`: the base named by TRAINER_BASE_MODEL, else CPREC_BASE_MODEL (a `.gguf` file, a
   * llama2.c `.bin`, or a Hugging Face folder; `llama2c` is the former name of the same);
   * `tiny-random`: a tiny model over catalogue titles (tests).
   */
  TRAINER_MODEL: z.enum(['checkpoint', 'llama2c', 'tiny-random']).default('checkpoint'),
  TRAINER_BASE_MODEL: z.string().min(1).optional(),
  /** llama2.c bases only (default: the `tok*.bin` beside the checkpoint). */
  TRAINER_TOKENIZER: z.string().min(1).optional(),
  TRAINER_BACKEND: z.enum(['auto', 'cpu', 'wasm', 'tensorflow', 'tensorflow-gpu']).default('auto'),
  /** Policy: start a round every T ms (0 = off)… */
  TRAINER_AUTO_INTERVAL_MS: envInt(0),
  /** …or after K new interactions reported by the sequencer (0 = off)… */
  TRAINER_AUTO_MIN_NEW_INTERACTIONS: envInt(0),
  /** …or after S ms of stream (event) time since the last round started (0 = off). */
  TRAINER_AUTO_STREAM_INTERVAL_MS: envInt(0),
  /** Domains fine-tuned per round when a trigger names none. */
  TRAINER_TARGET_DOMAINS: envList([]),
  /** Domains whose domain-specific samples CPT trains on (empty = all). */
  TRAINER_CPT_DOMAINS: envList([]),
  TRAINER_BATCH_SIZE: envInt(4, 1),
  /** Prompt tokens; 0 = the base model's context capped at 1,024 (defaultPromptTokens). */
  TRAINER_MAX_TOKENS: envInt(0, 0).refine(
    (v) => v === 0 || v >= 16,
    'must be 0 (follow the model) or at least 16',
  ),
  TRAINER_MAX_TITLE_TOKENS: envInt(12, 1),
  /** Upper bound on stable steps per round (0 = no bound). */
  TRAINER_MAX_STEPS_PER_ROUND: envInt(60),
  TRAINER_ETA_LOW: envNumber(5e-6),
  TRAINER_ETA_HIGH: envNumber(5e-4),
  TRAINER_WARMUP_FRACTION: envNumber(0.05),
  TRAINER_ANNEAL_FRACTION: envNumber(0.1),
  TRAINER_LORA_RANK: envInt(4, 1),
  TRAINER_LORA_ALPHA: envNumber(8),
  TRAINER_CHECKPOINT_EVERY: envInt(10, 1),
  TRAINER_REPLAY_FRACTION: envNumber(0.03),
  TRAINER_NEGATIVES: envInt(4),
  TRAINER_SEED: envInt(1),
  TRAINER_STEP_FLUSH_MS: envInt(1_000, 1),
  TRAINER_MAX_RESTARTS: envInt(2),
  TRAINER_STOP_GRACE_MS: envInt(30_000, 1),
  /**
   * How long a round waits for ClickHouse when its runner cannot reach it (an outage): it resumes
   * from its checkpoint when ClickHouse answers again, and fails only after this long.
   */
  TRAINER_OUTAGE_MAX_MS: envInt(600_000, 1),
  TRAINER_OUTAGE_POLL_MS: envInt(2_000, 10),
  /** Pause after each training step (ms; 0 = none): a throttle for demos and crash tests. */
  TRAINER_STEP_DELAY_MS: envInt(0),
  /**
   * Fine-tuning (LLaRA-style SFT per target domain, after CPT). Its data is the validation side
   * of the evaluator's frozen leave-one-out split, so epoch and seed must equal the evaluator's
   * EVALUATOR_SPLIT_EPOCH / EVALUATOR_SPLIT_SEED (same defaults).
   */
  TRAINER_SPLIT_EPOCH: z.string().regex(SPLIT_EPOCH_PATTERN).default(DEFAULT_SPLIT_EPOCH),
  TRAINER_SPLIT_SEED: envInt(DEFAULT_SPLIT_SEED),
  /** How long a round waits for the sequencer to freeze a requested split. */
  TRAINER_SPLIT_TIMEOUT_MS: envInt(120_000, 1),
  TRAINER_SPLIT_POLL_MS: envInt(500, 10),
  TRAINER_SFT_EPOCHS: envInt(2, 1),
  TRAINER_SFT_BATCH_SIZE: envInt(4, 1),
  /** Learning-rate grid searched on the validation cases (comma-separated). */
  TRAINER_SFT_LEARNING_RATES: z
    .string()
    .default('3e-4,1e-3')
    .transform((v, ctx) => {
      const rates = v
        .split(',')
        .map((x) => x.trim())
        .filter(Boolean)
        .map(Number);
      if (rates.length === 0 || rates.some((r) => !(r > 0) || !Number.isFinite(r))) {
        ctx.addIssue({
          code: 'custom',
          message: `expected positive numbers separated by commas, got "${v}"`,
        });
        return z.NEVER;
      }
      return rates;
    }),
  /** Training samples per target domain (a seeded draw), and the minimum to fine-tune at all. */
  TRAINER_SFT_MAX_SAMPLES: envInt(128, 1),
  TRAINER_SFT_MIN_SAMPLES: envInt(8, 1),
  TRAINER_SFT_MAX_VALIDATION: envInt(32, 1),
  /** Negatives per training prompt (19 = the evaluation's 20 candidates). */
  TRAINER_SFT_NEGATIVES: envInt(19),
  TRAINER_SFT_HISTORY_CAP: envInt(10, 1),
  /** SASRec (item embeddings of the hybrid prompts): width, window, epochs, wall-clock budget. */
  TRAINER_SASREC_DIM: envInt(32, 2),
  TRAINER_SASREC_MAX_LEN: envInt(20, 2),
  TRAINER_SASREC_EPOCHS: envInt(20, 1),
  TRAINER_SASREC_TIME_BUDGET_MS: envInt(60_000, 1),
  /** Commands older than this are ignored (a new consumer group replays the topic). */
  TRAINER_COMMAND_MAX_AGE_MS: envInt(3_600_000, 1),
  /**
   * One active trainer per consumer group (docs/scaling.md, "Leases"): the replica that Kafka's
   * group assignment gives the round-command partition runs rounds; the others are standbys that
   * take over, resuming a round from its checkpoint, when it dies. Off (the default for a single
   * trainer; `npm start --replicas trainer=N` and the cluster tests turn it on): every replica
   * acts. Not on by default because a lone trainer gains nothing from it and loses the lease in a
   * Kafka outage — the fault suite's Kafka restart then killed the round's runner mid-publish and
   * the resumed round failed on the artefact it had already written.
   */
  TRAINER_LEASE: envBool(false),
  /** Group session timeout: how long a dead active trainer keeps the lease (broker minimum 6 s). */
  TRAINER_LEASE_SESSION_MS: envInt(30_000, 1_000),
  TRAINER_LEASE_HEARTBEAT_MS: envInt(3_000, 100),
  /** How long the lease counts as held after a confirmation (0 = half the session timeout). */
  TRAINER_LEASE_VALIDITY_MS: envInt(0, 0),
});
export type TrainerConfig = z.infer<typeof TrainerEnvSchema>;

export const TRAINER_CONFIG = Symbol('TRAINER_CONFIG');
export const loadTrainerConfig = (env: NodeJS.ProcessEnv = process.env): TrainerConfig =>
  loadConfig(TrainerEnvSchema, env);

/** The lease's validity: set, or half the session timeout; always shorter than the session. */
export const leaseValidityMs = (
  c: Pick<TrainerConfig, 'TRAINER_LEASE_SESSION_MS' | 'TRAINER_LEASE_VALIDITY_MS'>,
): number => leaseValidityFor(c.TRAINER_LEASE_SESSION_MS, c.TRAINER_LEASE_VALIDITY_MS);
