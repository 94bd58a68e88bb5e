import type { InteractionEvent, ItemEvent } from '@cprec/contracts';
import type { Dataset } from '../model';
import { timeOrderedInteractions, TimeOrderOptions } from '../order';
import type { ReplayRecord, ReplaySource } from './model';

/**
 * The replay stream of one or more datasets: first every item of every dataset (the catalogue
 * exists before behaviour refers to it), then all interactions merged into global event-time
 * order by the external sort (bounded memory, see `timeOrderedInteractions`). Deterministic:
 * the same datasets always give the same records in the same order, which resume relies on.
 */
export function datasetReplaySource(
  datasets: readonly Dataset[],
  sortOptions: Omit<TimeOrderOptions, 'onCounted'> = {},
): ReplaySource {
  let itemCount: number | null = null;
  let interactionCount: number | null = null;
  async function* allInteractions(): AsyncGenerator<InteractionEvent> {
    for (const ds of datasets) yield* ds.interactions();
  }
  async function* records(): AsyncGenerator<ReplayRecord> {
    let items = 0;
    for (const ds of datasets) {
      for await (const event of ds.items()) {
        items++;
        yield { kind: 'item', event: event satisfies ItemEvent };
      }
    }
    itemCount = items;
    const ordered = timeOrderedInteractions(allInteractions(), {
      ...sortOptions,
      onCounted: (n) => (interactionCount = n),
    });
    for await (const event of ordered) yield { kind: 'interaction', event };
  }
  return {
    records,
    get total(): number | null {
      return itemCount !== null && interactionCount !== null ? itemCount + interactionCount : null;
    },
  };
}
