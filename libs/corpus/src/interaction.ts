import type { InteractionEvent } from '@cprec/contracts';

/**
 * One user-item interaction as the corpus sees it. An item is identified by (domain, itemId):
 * platforms keep their own id spaces, so the same id string in two domains is two items.
 */
export interface Interaction {
  readonly eventId: string;
  readonly userId: string;
  readonly itemId: string;
  readonly domain: string;
  readonly tsMs: number;
  /** Position in the source log; breaks timestamp ties (many datasets have day resolution). */
  readonly seq: number;
}

/**
 * Converts a validated contract event. A missing `seq` becomes 0, so ties between events
 * without a source position fall through to the event id (still total and deterministic).
 */
export function interactionFromEvent(event: InteractionEvent): Interaction {
  return {
    eventId: event.event_id,
    userId: event.user_id,
    itemId: event.item_id,
    domain: event.domain,
    tsMs: event.ts,
    seq: event.seq ?? 0,
  };
}

/**
 * Plain code-unit comparison, never `localeCompare`: the order must not depend on the process
 * locale, and for the printable-ASCII ids of the contract it equals ClickHouse's byte order.
 */
export function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The documented total order of a sequence: timestamp, then source position `seq`, then event id.
 * Two distinct events compare equal only if they share an event id (a redelivery).
 */
export function compareInteractions(a: Interaction, b: Interaction): number {
  if (a.tsMs !== b.tsMs) return a.tsMs < b.tsMs ? -1 : 1;
  if (a.seq !== b.seq) return a.seq < b.seq ? -1 : 1;
  return compareIds(a.eventId, b.eventId);
}

/**
 * Key of the exact-duplicate rule: same user, same item (domain + id), same timestamp. NUL cannot
 * occur in contract ids or domain slugs, so the joined key is unambiguous.
 */
export function duplicateKey(i: Interaction): string {
  return `${i.userId}\u0000${i.domain}\u0000${i.itemId}\u0000${i.tsMs}`;
}
