import { ClickHouse } from '../client';
import { queryInChunks } from '../in-list';
import { ident, joinSql, rawSql, sql } from '../sql';

export interface ItemRecord {
  item_id: string;
  domain: string;
  title: string;
  attributes?: Record<string, string | number | boolean>;
  /** Epoch ms of the change; also the version: the newest update of an item wins. */
  updated_at_ms: number;
}

export type StoredItem = Required<ItemRecord>;

export const ITEMS_TABLE = 'items';

/** Reads and writes the `items` catalogue (ReplacingMergeTree(version), see migrations/0001). */
export class ItemRepository {
  constructor(private readonly ch: ClickHouse) {}

  async upsertBatch(items: readonly ItemRecord[]): Promise<void> {
    const rows = items.map((item) => {
      if (!Number.isSafeInteger(item.updated_at_ms) || item.updated_at_ms < 0) {
        throw new RangeError(
          `item ${item.item_id}: updated_at_ms ${item.updated_at_ms} must be a non-negative integer`,
        );
      }
      return {
        item_id: item.item_id,
        domain: item.domain,
        title: item.title,
        attributes: JSON.stringify(item.attributes ?? {}),
        updated_at: Math.floor(item.updated_at_ms / 1000),
        version: item.updated_at_ms,
      };
    });
    await this.ch.insertJsonEachRow(ITEMS_TABLE, rows);
  }

  /**
   * Latest version of each requested item of a domain (all items of the domain if omitted), in
   * item_id order; a long id list is queried in bounded chunks (inListChunks).
   */
  async get(domain: string, itemIds?: readonly string[]): Promise<StoredItem[]> {
    if (itemIds !== undefined && itemIds.length === 0) return [];
    const read = async (ids: readonly string[] | undefined) => {
      const idFilter =
        ids === undefined ? rawSql('') : sql`AND item_id IN (${joinSql(ids.map((id) => sql`${id}`))})`;
      return this.ch.query<{
        item_id: string;
        domain: string;
        title: string;
        attributes: string;
        version: string;
      }>(
        sql`SELECT item_id, domain, title, attributes, version FROM ${ident(ITEMS_TABLE)} FINAL
WHERE domain = ${domain} ${idFilter}
ORDER BY item_id`,
      );
    };
    const rows =
      itemIds === undefined
        ? await read(undefined)
        : await queryInChunks(itemIds, read, {
            order: (a, b) => (a.item_id < b.item_id ? -1 : a.item_id > b.item_id ? 1 : 0),
          });
    return rows.map((r) => ({
      item_id: r.item_id,
      domain: r.domain,
      title: r.title,
      attributes: JSON.parse(r.attributes) as Record<string, string | number | boolean>,
      updated_at_ms: Number(r.version),
    }));
  }

  async count(domain?: string): Promise<number> {
    const where = domain === undefined ? rawSql('') : sql`WHERE domain = ${domain}`;
    const rows = await this.ch.query<{ n: string }>(
      sql`SELECT uniqExact(domain, item_id) AS n FROM ${ident(ITEMS_TABLE)} ${where}`,
    );
    return Number(rows[0]?.n ?? 0);
  }
}
