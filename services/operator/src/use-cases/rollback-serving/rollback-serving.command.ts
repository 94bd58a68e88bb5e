import { z } from 'zod';
import { DomainSchema } from '@cprec/contracts';

/**
 * Body of POST /v1/serving/rollback: the domain whose adapter goes back (serving holds one adapter
 * per domain; the others are not touched); without to_adapter_id, to that domain's previous
 * adapter; `base` serves the domain with the base model alone.
 */
export const RollbackServingBodySchema = z.strictObject({
  domain: DomainSchema,
  to_adapter_id: z.string().min(1).max(200).optional(),
});
export type RollbackServingBody = z.infer<typeof RollbackServingBodySchema>;

export interface RollbackServingCommand extends RollbackServingBody {
  requestedBy: string;
}
