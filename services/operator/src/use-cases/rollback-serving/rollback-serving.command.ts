import { z } from 'zod';

/** Body of POST /v1/serving/rollback; without to_adapter_id serving goes back to its previous adapter. */
export const RollbackServingBodySchema = z.strictObject({
  to_adapter_id: z.string().min(1).max(200).optional(),
});
export type RollbackServingBody = z.infer<typeof RollbackServingBodySchema>;

export interface RollbackServingCommand extends RollbackServingBody {
  requestedBy: string;
}
