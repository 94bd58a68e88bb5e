import type { InteractionEvent, ItemEvent } from '@cprec/contracts';

/** The on-disk layouts cprec can read; `openDataset` detects them from a folder's files. */
export const DATASET_FORMATS = [
  'seqrec-jsonl',
  'amazon2014-linked',
  'recbole',
  'amazon-raw-json',
  'synthetic',
] as const;
export type DatasetFormat = (typeof DATASET_FORMATS)[number];

/**
 * A dataset as two re-readable event streams. Each call starts a fresh pass over the files, so a
 * consumer can read items, then interactions, then interactions again without holding either.
 * `interactions()` yields rows in source order (usually grouped per user); use
 * `timeOrderedInteractions` for a global event-time order.
 */
export interface Dataset {
  /** Stable name that goes into every event_id (e.g. the folder name). */
  readonly name: string;
  readonly format: DatasetFormat;
  items(): AsyncIterable<ItemEvent>;
  interactions(): AsyncIterable<InteractionEvent>;
}
