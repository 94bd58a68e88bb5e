import type { InteractionEvent, ItemEvent } from '@cprec/contracts';
import { eventId } from '../event-id';
import { asRow, idField, numberField, optionalString, Row, secondsToMs } from '../fields';
import { readLines } from '../lines';
import type { Dataset } from '../model';
import { parsePythonLiteral } from '../python-literal';
import { cleanTitle } from '../text';

export interface AmazonRawOptions {
  /** Review dump, one record per line, gzipped or not (`reviews_Beauty_5.json.gz`, `Video_Games.json.gz`). */
  reviews: string;
  /** Metadata dump (`meta_Beauty.json.gz`); optional — without it there are no item events. */
  meta?: string;
  dataset: string;
  domain: string;
  platform?: string;
}

/**
 * Decodes one dump line: strict JSON (all review files, 2018 metadata) or, failing that, the
 * Python dict literal of the 2014 metadata (`{'asin': '...', 'title': '...'}`).
 */
export function parseAmazonLine(line: string, where: string): Row {
  try {
    return asRow(JSON.parse(line) as unknown, where);
  } catch (jsonError) {
    try {
      return asRow(parsePythonLiteral(line), where);
    } catch (pyError) {
      throw new Error(
        `${where}: neither JSON (${(jsonError as Error).message}) nor a Python literal (${(pyError as Error).message})`,
      );
    }
  }
}

/**
 * Amazon Reviews raw dumps (McAuley lab, 2014 and 2018). Reviews give
 * `reviewerID`, `asin`, `unixReviewTime` (Unix seconds) per line; metadata gives `asin` and
 * `title` (records without a title are skipped — the 2014 metadata often lacks one). reviewerIDs
 * and ASINs are global, so user ids are used as they are. `seq` is the line position.
 */
export function amazonRawDataset(options: AmazonRawOptions): Dataset {
  const { dataset, domain, platform } = options;

  async function* interactions(): AsyncGenerator<InteractionEvent> {
    let seq = 0;
    for await (const line of readLines(options.reviews)) {
      const where = `${options.reviews}:${seq + 1}`;
      const row = parseAmazonLine(line, where);
      const userId = idField(row, 'reviewerID', where);
      const itemId = idField(row, 'asin', where);
      const ts = secondsToMs(numberField(row, 'unixReviewTime', where));
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

  async function* items(): AsyncGenerator<ItemEvent> {
    if (!options.meta) return;
    let lineNo = 0;
    for await (const line of readLines(options.meta)) {
      lineNo++;
      const where = `${options.meta}:${lineNo}`;
      const row = parseAmazonLine(line, where);
      const title = cleanTitle(optionalString(row, 'title') ?? '');
      if (title === '') continue;
      const item: ItemEvent = { item_id: idField(row, 'asin', where), domain, title };
      const brand = optionalString(row, 'brand');
      if (brand) item.attributes = { brand: cleanTitle(brand) };
      yield item;
    }
  }

  return { name: dataset, format: 'amazon-raw-json', items, interactions };
}
