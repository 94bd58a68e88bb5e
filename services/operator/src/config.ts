import { z } from 'zod';
import { CommonEnvSchema, envInt, loadConfig } from '@cprec/service-common';

export const OperatorEnvSchema = CommonEnvSchema.extend({
  OPERATOR_PORT: envInt(8100, 1),
  /** Loopback by default: reads are open, so exposing the API is an explicit choice. */
  OPERATOR_HOST: z.string().min(1).default('127.0.0.1'),
  /**
   * Bearer token for mutating endpoints. Unset (or empty) means mutations are refused with 503:
   * an operator API that anyone on the host can drive is never the default.
   */
  OPERATOR_TOKEN: z
    .string()
    .optional()
    .transform((v) => (v === undefined || v === '' ? null : v)),
  /** Where the dashboard's static files are; found next to the sources when unset. */
  OPERATOR_DASHBOARD_DIR: z.string().optional(),
});
export type OperatorConfig = z.infer<typeof OperatorEnvSchema>;

export const OPERATOR_CONFIG = Symbol('OPERATOR_CONFIG');
export const loadOperatorConfig = (env: NodeJS.ProcessEnv = process.env): OperatorConfig =>
  loadConfig(OperatorEnvSchema, env);
