import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { InteractionEvent, ItemEvent } from '@cprec/contracts';
import { eventId } from '../event-id';
import { secondsToMs } from '../fields';
import { readLines } from '../lines';
import type { Dataset } from '../model';
import { cleanTitle } from '../text';

const DAY_MS = 86_400_000;
/** First synthesised timestamp for files without times (see `RecBoleOptions.syntheticStartMs`). */
export const RECBOLE_SYNTHETIC_START_MS = Date.UTC(2018, 0, 1);
const SPLITS = ['train', 'valid', 'test'] as const;

export interface RecBoleOptions {
  /** Folder holding `<prefix>.inter` or `<prefix>.{train,valid,test}.inter`, plus `.item`/`.text`. */
  dir: string;
  /** File prefix (`Scientific` for `Scientific.text`); detected when the folder has one prefix. */
  prefix?: string;
  dataset: string;
  domain: string;
  /**
   * Files without a timestamp column get synthetic times: a user's k-th interaction (k from 0)
   * gets `syntheticStartMs + k days`. This keeps each user's order (the only thing such files
   * record) and gives every user the same calendar, so a global "time order" over such a dataset
   * interleaves users by sequence position. It is not real time; do not use it for time splits.
   */
  syntheticStartMs?: number;
  platform?: string;
}

interface Header {
  names: string[];
  index(name: string): number;
}

/** RecBole atomic headers look like `user_id:token\titem_id:token\ttimestamp:float`. */
function parseHeader(line: string): Header {
  const names = line.split('\t').map((field) => field.split(':')[0]?.trim() ?? '');
  return { names, index: (name) => names.indexOf(name) };
}

/** Lists the `<prefix>.*` files of a RecBole folder; returns the prefix used by the .inter files. */
export function detectRecBolePrefix(dir: string): string | null {
  const prefixes = new Set<string>();
  for (const file of readdirSync(dir)) {
    const match = /^(.+?)(?:\.(?:train|valid|test))?\.inter$/u.exec(file);
    if (match?.[1]) prefixes.add(match[1]);
  }
  if (prefixes.size > 1)
    throw new Error(`${dir}: several RecBole datasets (${[...prefixes].join(', ')}); pass a prefix`);
  return prefixes.size === 1 ? [...prefixes][0]! : null;
}

/** `<prefix>.item2index` / `.user2index` (UniSRec): `original-id \t index`, no header. */
async function readIndexMap(path: string): Promise<Map<string, string> | null> {
  if (!existsSync(path)) return null;
  const byIndex = new Map<string, string>();
  for await (const line of readLines(path)) {
    const [original, index] = line.split('\t');
    if (original && index !== undefined) byIndex.set(index.trim(), original.trim());
  }
  return byIndex;
}

/**
 * RecBole atomic files. Two interaction layouts are supported:
 * - plain `.inter` with `user_id` and `item_id` columns, one row per interaction (in file order),
 *   with an optional `timestamp` column in Unix seconds;
 * - UniSRec-style sequential splits (`.train/.valid/.test.inter` with `item_id_list` history plus
 *   target `item_id`): each user's sequence is the longest history+target row over the splits.
 *   Rebuilding it needs one sequence per user in memory (UniSRec caps histories at 50 items), the
 *   only non-streaming step in the loaders.
 * Item titles come from `.item` (column `title`, else `text`/`name`/the first `token_seq` column)
 * or `.text` (UniSRec: "title. category path. brand.", kept whole as the item text).
 * When `.item2index`/`.user2index` exist, integer indices are translated back to ASIN/reviewerID;
 * otherwise user ids are prefixed with the dataset name (they are local to the file).
 */
export function recBoleDataset(options: RecBoleOptions): Dataset {
  const { dir, dataset, domain, platform } = options;
  const prefix = options.prefix ?? detectRecBolePrefix(dir);
  if (!prefix) throw new Error(`${dir}: no RecBole .inter file found`);
  const start = options.syntheticStartMs ?? RECBOLE_SYNTHETIC_START_MS;
  const file = (suffix: string): string => join(dir, `${prefix}.${suffix}`);

  function makeEvent(userId: string, itemId: string, ts: number, seq: number): InteractionEvent {
    const event: InteractionEvent = {
      event_id: eventId(dataset, userId, itemId, ts, seq),
      user_id: userId,
      item_id: itemId,
      domain,
      ts,
      seq,
    };
    if (platform !== undefined) event.platform = platform;
    return event;
  }

  async function* plainInteractions(
    users: Map<string, string> | null,
    items: Map<string, string> | null,
  ): AsyncGenerator<InteractionEvent> {
    const path = file('inter');
    let header: Header | null = null;
    let userCol = -1;
    let itemCol = -1;
    let tsCol = -1;
    const positionOfUser = new Map<string, number>();
    let seq = 0;
    for await (const line of readLines(path)) {
      if (!header) {
        header = parseHeader(line);
        userCol = header.index('user_id');
        itemCol = header.index('item_id');
        tsCol = header.index('timestamp');
        if (userCol < 0 || itemCol < 0) throw new Error(`${path}: header needs user_id and item_id columns`);
        continue;
      }
      const cells = line.split('\t');
      const rawUser = cells[userCol]?.trim() ?? '';
      const rawItem = cells[itemCol]?.trim() ?? '';
      if (rawUser === '' || rawItem === '')
        throw new Error(`${path}: row ${seq + 1} lacks a user or item id`);
      const userId = users?.get(rawUser) ?? (users ? rawUser : `${dataset}:${rawUser}`);
      const itemId = items?.get(rawItem) ?? rawItem;
      let ts: number;
      if (tsCol >= 0) {
        const seconds = Number(cells[tsCol]);
        if (!Number.isFinite(seconds))
          throw new Error(`${path}: row ${seq + 1} has timestamp '${cells[tsCol]}'`);
        ts = secondsToMs(seconds);
      } else {
        const k = positionOfUser.get(userId) ?? 0;
        positionOfUser.set(userId, k + 1);
        ts = start + k * DAY_MS;
      }
      yield makeEvent(userId, itemId, ts, seq++);
    }
  }

  async function* sequentialInteractions(
    users: Map<string, string> | null,
    items: Map<string, string> | null,
  ): AsyncGenerator<InteractionEvent> {
    // Longest history+target per user, in order of first appearance (Map keeps insertion order).
    const longest = new Map<string, string[]>();
    for (const split of SPLITS) {
      const path = file(`${split}.inter`);
      if (!existsSync(path)) continue;
      let header: Header | null = null;
      let userCol = -1;
      let listCol = -1;
      let itemCol = -1;
      for await (const line of readLines(path)) {
        if (!header) {
          header = parseHeader(line);
          userCol = header.index('user_id');
          listCol = header.index('item_id_list');
          itemCol = header.index('item_id');
          if (userCol < 0 || itemCol < 0)
            throw new Error(`${path}: header needs user_id and item_id columns`);
          continue;
        }
        const cells = line.split('\t');
        const user = cells[userCol]?.trim() ?? '';
        const history = listCol >= 0 ? (cells[listCol] ?? '').trim().split(/\s+/u).filter(Boolean) : [];
        const target = cells[itemCol]?.trim() ?? '';
        if (user === '' || target === '')
          throw new Error(`${path}: row lacks a user or target item: '${line}'`);
        const sequence = [...history, target];
        const known = longest.get(user);
        if (!known || known.length < sequence.length) longest.set(user, sequence);
      }
    }
    let seq = 0;
    for (const [rawUser, sequence] of longest) {
      const userId = users?.get(rawUser) ?? (users ? rawUser : `${dataset}:${rawUser}`);
      for (let k = 0; k < sequence.length; k++) {
        const rawItem = sequence[k]!;
        yield makeEvent(userId, items?.get(rawItem) ?? rawItem, start + k * DAY_MS, seq++);
      }
    }
  }

  async function* interactions(): AsyncGenerator<InteractionEvent> {
    const users = await readIndexMap(file('user2index'));
    const items = await readIndexMap(file('item2index'));
    if (existsSync(file('inter'))) yield* plainInteractions(users, items);
    else yield* sequentialInteractions(users, items);
  }

  async function* items(): AsyncGenerator<ItemEvent> {
    const path = existsSync(file('item')) ? file('item') : existsSync(file('text')) ? file('text') : null;
    if (!path) return;
    let header: Header | null = null;
    let idCol = -1;
    let titleCol = -1;
    for await (const line of readLines(path)) {
      if (!header) {
        header = parseHeader(line);
        idCol = header.index('item_id');
        const rawHeader = line.split('\t');
        titleCol =
          ['title', 'text', 'movie_title', 'name'].map((n) => header!.index(n)).find((i) => i >= 0) ??
          rawHeader.findIndex((h) => h.endsWith(':token_seq'));
        if (idCol < 0 || titleCol < 0)
          throw new Error(`${path}: header needs item_id and a title/text column`);
        continue;
      }
      const cells = line.split('\t');
      const itemId = cells[idCol]?.trim() ?? '';
      const title = cleanTitle(cells[titleCol] ?? '');
      if (itemId === '' || title === '') continue;
      yield { item_id: itemId, domain, title };
    }
  }

  return { name: dataset, format: 'recbole', items, interactions };
}
