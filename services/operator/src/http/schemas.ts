import { z } from 'zod';
import { DomainSchema } from '@cprec/contracts';

/** Query strings of the read endpoints (strings coerced and bounded). */
const limit = (def: number, max: number) => z.coerce.number().int().min(1).max(max).default(def);

export const ListQuerySchema = z.object({ limit: limit(50, 1000) });
export const RoundQuerySchema = z.object({ max_points: limit(2000, 100_000) });
export const EvaluationsQuerySchema = z.object({
  adapter_id: z.string().min(1).max(200).optional(),
  domain: DomainSchema.optional(),
  limit: limit(500, 10_000),
});
export const DriftQuerySchema = z.object({
  domain: DomainSchema.optional(),
  from_ms: z.coerce.number().int().min(0).optional(),
  limit: limit(5000, 100_000),
});

/** Path ids: bounded printable text (they are passed to SQL only as escaped literals). */
export const IdSchema = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[\x21-\x7e]+$/, 'must be printable ASCII without spaces');

/** Who asked, from the optional X-Requested-By header (e.g. `cli:alice`); recorded on commands. */
export function requestedBy(header: string | string[] | undefined): string {
  const value = (Array.isArray(header) ? header[0] : header)?.trim() ?? '';
  return value === '' ? 'operator-api' : `operator-api:${value.slice(0, 100)}`;
}
