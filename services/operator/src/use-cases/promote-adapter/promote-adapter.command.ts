import { z } from 'zod';

/** Body of POST /v1/adapters/:id/promote. */
export const PromoteAdapterBodySchema = z.strictObject({
  reason: z.string().max(500).default(''),
});
export type PromoteAdapterBody = z.infer<typeof PromoteAdapterBodySchema>;

export interface PromoteAdapterCommand extends PromoteAdapterBody {
  adapterId: string;
  requestedBy: string;
}
