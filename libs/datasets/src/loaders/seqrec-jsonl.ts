import { join } from 'node:path';
import type { InteractionEvent, ItemEvent } from '@cprec/contracts';
import { eventId } from '../event-id';
import { arrayField, asRow, idField, idValue, numberValue, optionalString, secondsToMs } from '../fields';
import { readJsonLines } from '../lines';
import type { Dataset } from '../model';
import { cleanTitle } from '../text';

export interface SeqRecJsonlOptions {
  /** Folder holding `derived/user2item.jsonl.gz` and `derived/item2title.jsonl.gz` (or the files directly). */
  dir: string;
  /** Goes into event ids and the user-id namespace, e.g. `amazon2018-game`. */
  dataset: string;
  /** Domain slug of every event, e.g. `game`. */
  domain: string;
  /**
   * Prefix for user ids. The SeqRecBenchmark ids are dense integers per folder, so user 100 of
   * one folder is unrelated to user 100 of another; prefixing with the dataset name (the default)
   * keeps them apart when several folders are replayed into the same system.
   */
  userPrefix?: string;
  platform?: string;
}

/**
 * The SeqRecBenchmark (Tiny-Snow) layout re-serialised as JSON Lines (see ../shared/data/README.md):
 * `user2item.jsonl.gz` rows `{"user_id", "item_ids": [...], "timestamps": [...]}` (Unix seconds,
 * aligned lists, one row per user) and `item2title.jsonl.gz` rows `{"item_id", "title"}`.
 * `seq` is the running position over the whole file (user-major), so it orders ties within a user.
 */
export function seqRecJsonlDataset(options: SeqRecJsonlOptions): Dataset {
  const derived = join(options.dir, 'derived');
  const usersFile = join(derived, 'user2item.jsonl.gz');
  const titlesFile = join(derived, 'item2title.jsonl.gz');
  const userPrefix = options.userPrefix ?? `${options.dataset}:`;
  const { dataset, domain, platform } = options;

  async function* interactions(): AsyncGenerator<InteractionEvent> {
    let seq = 0;
    let lineNo = 0;
    for await (const value of readJsonLines(usersFile)) {
      lineNo++;
      const where = `${usersFile}:${lineNo}`;
      const row = asRow(value, where);
      const userId = userPrefix + idField(row, 'user_id', where);
      const items = arrayField(row, 'item_ids', where);
      const times = arrayField(row, 'timestamps', where);
      if (items.length !== times.length) {
        throw new Error(`${where}: item_ids has ${items.length} entries but timestamps has ${times.length}`);
      }
      for (let i = 0; i < items.length; i++) {
        const itemId = idValue(items[i], `${where} item_ids[${i}]`);
        const ts = secondsToMs(numberValue(times[i], `${where} timestamps[${i}]`));
        const event: InteractionEvent = {
          event_id: eventId(dataset, userId, itemId, ts, seq),
          user_id: userId,
          item_id: itemId,
          domain,
          ts,
          seq,
        };
        if (platform !== undefined) event.platform = platform;
        yield event;
        seq++;
      }
    }
  }

  async function* items(): AsyncGenerator<ItemEvent> {
    let lineNo = 0;
    for await (const value of readJsonLines(titlesFile)) {
      lineNo++;
      const where = `${titlesFile}:${lineNo}`;
      const row = asRow(value, where);
      const title = cleanTitle(optionalString(row, 'title') ?? '');
      if (title === '') continue; // an item without a title cannot be shown to the LM
      yield { item_id: idField(row, 'item_id', where), domain, title };
    }
  }

  return { name: dataset, format: 'seqrec-jsonl', items, interactions };
}
