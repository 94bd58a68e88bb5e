import { resolve } from 'node:path';
import { z } from 'zod';
import { TOPIC_PREFIX_PATTERN, topicsFor, type Topics } from '@cprec/contracts';
import type { RetryPolicy } from '@cprec/messaging';

/**
 * Typed configuration from the environment. Each service declares a zod schema with defaults
 * (documented in `.env.example`); a bad value stops start-up with every problem listed, instead
 * of failing later somewhere deep in a handler.
 */
export function loadConfig<S extends z.ZodType>(schema: S, env: NodeJS.ProcessEnv = process.env): z.infer<S> {
  const result = schema.safeParse(env);
  if (result.success) return result.data;
  const problems = result.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`).join('\n');
  throw new Error(`invalid configuration:\n${problems}`);
}

/** Environment values are strings; these coerce and bound them. */
export const envInt = (def: number, min = 0) => z.coerce.number().int().min(min).default(def);
export const envNumber = (def: number) => z.coerce.number().default(def);
export const envBool = (def: boolean) =>
  z
    .enum(['true', 'false', '1', '0', 'yes', 'no'])
    .default(def ? 'true' : 'false')
    .transform((v) => v === 'true' || v === '1' || v === 'yes');
export const envList = (def: string[]) =>
  z
    .string()
    .default(def.join(','))
    .transform((v) =>
      v
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean),
    );

/** Settings every service shares. */
const REPO_ROOT = resolve(__dirname, '../../..');

/** stories260K: tiny and fast (tests, demos); name a real LLM with CPREC_BASE_MODEL. */
export const DEFAULT_BASE_MODEL = resolve(REPO_ROOT, '../shared/models/stories260K/stories260K.bin');

export const CommonEnvSchema = z.object({
  /**
   * The base language model every service (trainer, evaluator, serving) uses unless its own
   * `*_BASE_MODEL` says otherwise: a `.gguf` file, a llama2.c `.bin`, or a Hugging Face folder.
   * Adapters record its sha256; one trained on another base is refused.
   */
  CPREC_BASE_MODEL: z.string().min(1).default(DEFAULT_BASE_MODEL),
  /** llama2.c bases only: their tokenizer.bin (default: the one `tok*.bin` beside the checkpoint). */
  CPREC_BASE_TOKENIZER: z.string().min(1).optional(),
  CPREC_KAFKA_BROKERS: z.string().default('127.0.0.1:19092'),
  CPREC_CLICKHOUSE_URL: z.string().url().default('http://127.0.0.1:18123'),
  CPREC_CLICKHOUSE_DB: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]*$/)
    .default('cprec'),
  CPREC_CLICKHOUSE_USER: z.string().default('default'),
  CPREC_CLICKHOUSE_PASSWORD: z.string().default(''),
  CPREC_HOME: z.string().default('.cprec'),
  /**
   * Prefix of every Kafka topic name of this installation (empty: the base names). The test
   * tiers run each suite on topics of its own (`t.<run>.<suite>.`) so nothing they send is ever
   * consumed by `npm start`'s services.
   */
  CPREC_TOPIC_PREFIX: z
    .string()
    .regex(TOPIC_PREFIX_PATTERN, 'must be at most 200 characters of [A-Za-z0-9._-]')
    .default(''),
  /** A message that fails for an unknown reason is retried this many times before the dependencies are checked. */
  CPREC_CONSUMER_RETRY_ATTEMPTS: envInt(5, 1),
  CPREC_CONSUMER_RETRY_INITIAL_MS: envInt(500, 1),
  CPREC_CONSUMER_RETRY_MAX_MS: envInt(30_000, 1),
  /** /health reports a consumer that has not fetched for this long while idle. */
  CPREC_CONSUMER_STALLED_MS: envInt(120_000, 1_000),
});
export type CommonEnv = z.infer<typeof CommonEnvSchema>;

/** The topic names of this installation. */
export const topicsOf = (env: Pick<CommonEnv, 'CPREC_TOPIC_PREFIX'>): Topics =>
  topicsFor(env.CPREC_TOPIC_PREFIX);

/** The consumers' retry policy from the common settings. */
export const retryPolicyOf = (env: CommonEnv): RetryPolicy => ({
  attempts: env.CPREC_CONSUMER_RETRY_ATTEMPTS,
  initialBackoffMs: env.CPREC_CONSUMER_RETRY_INITIAL_MS,
  maxBackoffMs: env.CPREC_CONSUMER_RETRY_MAX_MS,
});
