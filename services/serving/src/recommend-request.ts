import { z } from 'zod';
import { DomainSchema } from '@cprec/contracts';

const ItemId = z.string().min(1, 'item ids must be non-empty').max(256);

/** Body of `POST /v1/recommend`. */
export const RecommendRequestSchema = z
  .strictObject({
    user_id: z.string().min(1).max(256).optional(),
    /** Item ids of the user's history in the domain, oldest first (overrides the stored sequence). */
    history: z.array(ItemId).max(500).optional(),
    domain: DomainSchema,
    /** Items to re-rank; when absent a first stage proposes `n_candidates`. */
    candidate_ids: z
      .array(ItemId)
      .min(1, 'candidate_ids must not be empty (omit it to let the first stage propose candidates)')
      .max(100)
      .refine((ids) => new Set(ids).size === ids.length, 'candidate_ids must not repeat an item')
      .optional(),
    k: z.number().int().min(1).max(100).default(10),
    n_candidates: z.number().int().min(1).max(100).default(20),
  })
  .refine((r) => r.user_id !== undefined || r.history !== undefined, {
    message: 'give a user_id (history read from the sequences) or an explicit history',
    path: ['user_id'],
  });
export type RecommendRequest = z.infer<typeof RecommendRequestSchema>;

/** `POST /v1/rollback`: one domain's adapter goes back (the others keep theirs). */
export const RollbackRequestSchema = z.strictObject({
  domain: DomainSchema,
  to_adapter_id: z.string().min(1).max(256).optional(),
});

/** `GET /v1/adapter?domain=`: optional, one domain's view. */
export const AdapterQuerySchema = z.strictObject({ domain: DomainSchema.optional() });

/** zod issues as one readable line: `field: problem; field: problem`. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((i) => (i.path.length > 0 ? `${i.path.join('.')}: ${i.message}` : i.message))
    .join('; ');
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; message: string };

export function parseBody<S extends z.ZodType>(schema: S, body: unknown): Parsed<z.infer<S>> {
  if (body === undefined || body === null || typeof body !== 'object' || Array.isArray(body))
    return { ok: false, message: 'the body must be a JSON object (Content-Type: application/json)' };
  const result = schema.safeParse(body);
  return result.success
    ? { ok: true, value: result.data }
    : { ok: false, message: describeIssues(result.error) };
}
