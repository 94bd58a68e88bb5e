import { resolve } from 'node:path';
import { z } from 'zod';
import { CommonEnvSchema, envInt, envList, envNumber, loadConfig } from '@cprec/service-common';

const REPO_ROOT = resolve(__dirname, '../../..');

export const TrainerEnvSchema = CommonEnvSchema.extend({
  TRAINER_PORT: envInt(8103, 1),
  TRAINER_GROUP_ID: z.string().min(1).default('cprec-trainer'),
  /** `llama2c`: TRAINER_BASE_MODEL + TRAINER_TOKENIZER; `tiny-random`: a tiny model over catalogue titles. */
  TRAINER_MODEL: z.enum(['llama2c', 'tiny-random']).default('llama2c'),
  TRAINER_BASE_MODEL: z.string().default(resolve(REPO_ROOT, '../shared/models/stories260K/stories260K.bin')),
  TRAINER_TOKENIZER: z.string().default(resolve(REPO_ROOT, '../shared/models/stories260K/tok512.bin')),
  TRAINER_BACKEND: z.enum(['auto', 'cpu', 'wasm', 'tensorflow', 'tensorflow-gpu']).default('auto'),
  /** Policy: start a round every T ms (0 = off)… */
  TRAINER_AUTO_INTERVAL_MS: envInt(0),
  /** …or after K new interactions reported by the sequencer (0 = off). */
  TRAINER_AUTO_MIN_NEW_INTERACTIONS: envInt(0),
  /** Domains fine-tuned per round when a trigger names none. */
  TRAINER_TARGET_DOMAINS: envList([]),
  /** Domains whose domain-specific samples CPT trains on (empty = all). */
  TRAINER_CPT_DOMAINS: envList([]),
  TRAINER_BATCH_SIZE: envInt(4, 1),
  TRAINER_MAX_TOKENS: envInt(192, 16),
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
  /** Pause after each training step (ms; 0 = none): a throttle for demos and crash tests. */
  TRAINER_STEP_DELAY_MS: envInt(0),
  /** Commands older than this are ignored (a new consumer group replays the topic). */
  TRAINER_COMMAND_MAX_AGE_MS: envInt(3_600_000, 1),
});
export type TrainerConfig = z.infer<typeof TrainerEnvSchema>;

export const TRAINER_CONFIG = Symbol('TRAINER_CONFIG');
export const loadTrainerConfig = (env: NodeJS.ProcessEnv = process.env): TrainerConfig =>
  loadConfig(TrainerEnvSchema, env);
