import { z } from 'zod';
import { DomainSchema } from '@cprec/contracts';

/** Body of POST /v1/rounds; every field is optional (an empty body triggers a default round). */
export const TriggerRoundBodySchema = z.strictObject({
  target_domains: z.array(DomainSchema).min(1).max(64).optional(),
  reason: z.string().max(500).default(''),
});
export type TriggerRoundBody = z.infer<typeof TriggerRoundBodySchema>;

export interface TriggerRoundCommand extends TriggerRoundBody {
  /** Who asked (from the request), recorded on the command. */
  requestedBy: string;
}
