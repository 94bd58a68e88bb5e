import { sqlString } from './literal';

/**
 * `IN (…)` lists whose values come from callers (user ids, item ids, adapter ids) are bounded:
 * ClickHouse refuses a statement longer than `max_query_size` (262 144 bytes by default, 18.16
 * included) with "Max query size exceeded" — a refusal no retry cures. A list is split into
 * chunks of at most IN_LIST_MAX_BYTES of literal text, far below that limit with room for the
 * rest of the statement, and the repository runs one query per chunk and merges the rows.
 */
export const IN_LIST_MAX_BYTES = 64 * 1024;

/** Splits `values` into lists whose rendered literals (with separators) stay within `maxBytes`. */
export function inListChunks<T extends string>(
  values: readonly T[],
  maxBytes: number = IN_LIST_MAX_BYTES,
): T[][] {
  const chunks: T[][] = [];
  let current: T[] = [];
  let bytes = 0;
  for (const value of values) {
    const size = Buffer.byteLength(sqlString(value)) + 2;
    if (current.length > 0 && bytes + size > maxBytes) {
      chunks.push(current);
      current = [];
      bytes = 0;
    }
    current.push(value);
    bytes += size;
  }
  if (current.length > 0 || chunks.length === 0) chunks.push(current);
  return chunks;
}

/**
 * Runs `query` once per chunk of `values` and concatenates the rows; with `order` (and `limit`),
 * the merged rows are sorted (and cut) as the single query would have returned them — every chunk
 * query must then apply the same order and limit itself.
 */
export async function queryInChunks<T extends string, Row>(
  values: readonly T[],
  query: (chunk: readonly T[]) => Promise<Row[]>,
  merge: { order?: (a: Row, b: Row) => number; limit?: number } = {},
): Promise<Row[]> {
  const chunks = inListChunks(values);
  if (chunks.length === 1) return query(chunks[0]!);
  const rows: Row[] = [];
  for (const chunk of chunks) rows.push(...(await query(chunk)));
  if (merge.order) rows.sort(merge.order);
  return merge.limit === undefined ? rows : rows.slice(0, merge.limit);
}
