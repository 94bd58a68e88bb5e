import { join } from 'node:path';
import type { InteractionEvent, ItemEvent } from '@cprec/contracts';
import { eventId } from '../event-id';
import { asRow, idField, numberField, optionalString, secondsToMs } from '../fields';
import { readJsonLines } from '../lines';
import type { Dataset } from '../model';
import { cleanTitle, domainSlug } from '../text';

export interface Amazon2014LinkedOptions {
  /** The `amazon2014-linked` folder (holding `derived/`). */
  dir: string;
  dataset?: string;
  /**
   * Keep only these domains (as spelled in the data: beauty, clothing, sport, toy). Sport has no
   * titles, so text models usually pass `['beauty', 'clothing', 'toy']`.
   */
  domains?: readonly string[];
  platform?: string;
}

/**
 * `amazon2014-linked/derived/` (see its SOURCE.md): `interactions.jsonl.gz` rows
 * `{"user": reviewerID, "domain", "asin", "ts": unix seconds, "pos"}` sorted by user then time —
 * the original cross-domain reviewer ids, so one user's rows form an all-domain mixed sequence —
 * and `items.jsonl.gz` rows `{"domain", "asin", "title" | null}` (sport titles are null and are
 * skipped). Each row's domain comes from the data. `seq` is the line position in the file.
 */
export function amazon2014LinkedDataset(options: Amazon2014LinkedOptions): Dataset {
  const dataset = options.dataset ?? 'amazon2014-linked';
  const interactionsFile = join(options.dir, 'derived', 'interactions.jsonl.gz');
  const itemsFile = join(options.dir, 'derived', 'items.jsonl.gz');
  const keep = options.domains ? new Set(options.domains) : null;
  const { platform } = options;

  async function* interactions(): AsyncGenerator<InteractionEvent> {
    let seq = -1;
    for await (const value of readJsonLines(interactionsFile)) {
      seq++;
      const where = `${interactionsFile}:${seq + 1}`;
      const row = asRow(value, where);
      const rawDomain = idField(row, 'domain', where);
      if (keep && !keep.has(rawDomain)) continue;
      const userId = idField(row, 'user', where);
      const itemId = idField(row, 'asin', where);
      const ts = secondsToMs(numberField(row, 'ts', where));
      const event: InteractionEvent = {
        event_id: eventId(dataset, userId, itemId, ts, seq),
        user_id: userId,
        item_id: itemId,
        domain: domainSlug(rawDomain),
        ts,
        seq,
      };
      if (platform !== undefined) event.platform = platform;
      yield event;
    }
  }

  async function* items(): AsyncGenerator<ItemEvent> {
    let lineNo = 0;
    for await (const value of readJsonLines(itemsFile)) {
      lineNo++;
      const where = `${itemsFile}:${lineNo}`;
      const row = asRow(value, where);
      const rawDomain = idField(row, 'domain', where);
      if (keep && !keep.has(rawDomain)) continue;
      const title = cleanTitle(optionalString(row, 'title') ?? '');
      if (title === '') continue;
      yield { item_id: idField(row, 'asin', where), domain: domainSlug(rawDomain), title };
    }
  }

  return { name: dataset, format: 'amazon2014-linked', items, interactions };
}
