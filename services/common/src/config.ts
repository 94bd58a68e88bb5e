import { z } from 'zod';

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
export const CommonEnvSchema = z.object({
  CPREC_KAFKA_BROKERS: z.string().default('127.0.0.1:19092'),
  CPREC_CLICKHOUSE_URL: z.string().url().default('http://127.0.0.1:18123'),
  CPREC_CLICKHOUSE_DB: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]*$/)
    .default('cprec'),
  CPREC_CLICKHOUSE_USER: z.string().default('default'),
  CPREC_CLICKHOUSE_PASSWORD: z.string().default(''),
  CPREC_HOME: z.string().default('.cprec'),
});
export type CommonEnv = z.infer<typeof CommonEnvSchema>;
