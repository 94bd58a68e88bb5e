import { createHash } from 'node:crypto';

/**
 * Deterministic event id: the same source row always gets the same id, so replaying a dataset
 * twice (or resuming with overlap) lets storage deduplicate on `event_id`. The parts are joined
 * with a unit separator (cannot occur in ids) before hashing, so ('ab','c') ≠ ('a','bc').
 * 128 bits of SHA-256 keep collisions negligible for billions of events.
 */
export function eventId(dataset: string, userId: string, itemId: string, tsMs: number, position: number): string {
  const digest = createHash('sha256')
    .update([dataset, userId, itemId, String(tsMs), String(position)].join('\u001f'))
    .digest('hex');
  return `ev-${digest.slice(0, 32)}`;
}
