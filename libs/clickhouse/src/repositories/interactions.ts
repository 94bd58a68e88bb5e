import { ClickHouse } from '../client';
import { ident, joinSql, rawSql, sql, SqlFragment } from '../sql';

/** One interaction as the ingest service stores it (ts in epoch milliseconds). */
export interface InteractionRecord {
  event_id: string;
  user_id: string;
  item_id: string;
  domain: string;
  ts_ms: number;
  seq?: number;
  platform?: string;
  title?: string;
}

/** A row read back from ClickHouse (64-bit integers arrive as strings and are converted). */
export interface StoredInteraction extends Required<InteractionRecord> {
  ingested_at_ms: number;
}

export interface InteractionFilter {
  domain?: string;
  userIds?: readonly string[];
  /** Inclusive lower bound on ts_ms. */
  fromTsMs?: number;
  /** Exclusive upper bound on ts_ms. */
  toTsMs?: number;
}

const MAX_DATETIME_SECONDS = 4294967295;
export const INTERACTIONS_TABLE = 'interactions';

function whereClause(filter: InteractionFilter): SqlFragment {
  const conditions: SqlFragment[] = [];
  if (filter.domain !== undefined) conditions.push(sql`domain = ${filter.domain}`);
  if (filter.userIds !== undefined) {
    conditions.push(
      filter.userIds.length === 0
        ? rawSql('0')
        : sql`user_id IN (${joinSql(filter.userIds.map((id) => sql`${id}`))})`,
    );
  }
  if (filter.fromTsMs !== undefined) conditions.push(sql`ts_ms >= ${filter.fromTsMs}`);
  if (filter.toTsMs !== undefined) conditions.push(sql`ts_ms < ${filter.toTsMs}`);
  return conditions.length === 0 ? rawSql('') : sql`WHERE ${joinSql(conditions, ' AND ')}`;
}

/** Reads and writes the raw `interactions` table (see migrations/0001). */
export class InteractionRepository {
  constructor(private readonly ch: ClickHouse) {}

  /**
   * Inserts one batch (one INSERT, one part). Redelivered events are fine: they collapse on
   * event_id (see the migration). Throws before sending anything if a timestamp cannot be stored.
   */
  async insertBatch(records: readonly InteractionRecord[], ingestedAtMs: number = Date.now()): Promise<void> {
    const rows = records.map((r) => {
      if (
        !Number.isSafeInteger(r.ts_ms) ||
        r.ts_ms < 0 ||
        Math.floor(r.ts_ms / 1000) > MAX_DATETIME_SECONDS
      ) {
        throw new RangeError(`event ${r.event_id}: ts ${r.ts_ms} is outside the storable range 1970..2106`);
      }
      return {
        event_id: r.event_id,
        user_id: r.user_id,
        item_id: r.item_id,
        domain: r.domain,
        ts: Math.floor(r.ts_ms / 1000),
        ts_ms: r.ts_ms,
        seq: r.seq ?? 0,
        platform: r.platform ?? '',
        title: r.title ?? '',
        ingested_at: Math.floor(ingestedAtMs / 1000),
        ingest_version: ingestedAtMs,
      };
    });
    await this.ch.insertJsonEachRow(INTERACTIONS_TABLE, rows);
  }

  /** Number of distinct events stored (exact, regardless of pending merges). */
  async countDistinct(filter: InteractionFilter = {}): Promise<number> {
    const rows = await this.ch.query<{ n: string }>(
      sql`SELECT uniqExact(event_id) AS n FROM ${ident(INTERACTIONS_TABLE)} ${whereClause(filter)}`,
    );
    return Number(rows[0]?.n ?? 0);
  }

  /** Deduplicated rows (FINAL) in (domain, user, time, seq) order. */
  async readDeduplicated(filter: InteractionFilter = {}, limit?: number): Promise<StoredInteraction[]> {
    const limitClause = limit === undefined ? rawSql('') : sql`LIMIT ${limit}`;
    const rows = await this.ch.query<
      Record<string, string | number>
    >(sql`SELECT event_id, user_id, item_id, domain,
  ts_ms, seq, platform, title, ingest_version
FROM ${ident(INTERACTIONS_TABLE)} FINAL
${whereClause(filter)}
ORDER BY domain, user_id, ts_ms, seq, event_id
${limitClause}`);
    return rows.map((r) => ({
      event_id: String(r.event_id),
      user_id: String(r.user_id),
      item_id: String(r.item_id),
      domain: String(r.domain),
      ts_ms: Number(r.ts_ms),
      seq: Number(r.seq),
      platform: String(r.platform),
      title: String(r.title),
      ingested_at_ms: Number(r.ingest_version),
    }));
  }
}
