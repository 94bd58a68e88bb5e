import { ClickHouse, DOMAIN_SEQUENCES_TABLE, ident, ItemRepository, sql } from '@cprec/clickhouse';

/**
 * Read side of the catalogue and the sequences for serving: item titles (cached in memory for
 * `ttlMs`, so a hot request does not wait on ClickHouse for titles it has seen recently) and a
 * user's domain sequence (the history when a request gives only a user id).
 */
/**
 * Runs a read once more when the connection was reset: the ClickHouse client reuses keep-alive
 * sockets, and one the server closed while this process was busy scoring fails with "socket hang
 * up" although the server is fine. Reads are idempotent, so one retry on a fresh socket is safe.
 */
async function retryOnReset<T>(read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code !== 'ECONNRESET' && !/socket hang up/i.test(e.message)) throw err;
    return read();
  }
}

export class ServingCatalogue {
  private readonly items: ItemRepository;
  private readonly titles = new Map<string, { title: string; atMs: number }>();

  constructor(
    private readonly ch: ClickHouse,
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {
    this.items = new ItemRepository(ch);
  }

  /** Titles of the given items of `domain`; items not in the catalogue are absent from the map. */
  async titlesOf(domain: string, itemIds: readonly string[]): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    const missing: string[] = [];
    const now = this.now();
    for (const id of new Set(itemIds)) {
      const hit = this.titles.get(`${domain}\u0000${id}`);
      if (hit && now - hit.atMs < this.ttlMs) out.set(id, hit.title);
      else missing.push(id);
    }
    if (missing.length > 0) {
      for (const item of await retryOnReset(() => this.items.get(domain, missing))) {
        out.set(item.item_id, item.title);
        this.titles.set(`${domain}\u0000${item.item_id}`, { title: item.title, atMs: now });
      }
    }
    return out;
  }

  /** Every titled item of a domain, warming the title cache (first stage start-up). */
  async warm(domain: string): Promise<number> {
    const now = this.now();
    const all = await retryOnReset(() => this.items.get(domain));
    for (const item of all)
      this.titles.set(`${domain}\u0000${item.item_id}`, { title: item.title, atMs: now });
    return all.length;
  }

  /** The user's item ids in `domain`, oldest first; null when the user has no sequence there. */
  async userHistory(domain: string, userId: string): Promise<string[] | null> {
    const rows = await retryOnReset(() =>
      this.ch.query<{ item_ids: string[] }>(
        sql`SELECT item_ids FROM ${ident(DOMAIN_SEQUENCES_TABLE)} FINAL
WHERE domain = ${domain} AND user_id = ${userId} LIMIT 1`,
      ),
    );
    return rows.length === 0 ? null : rows[0].item_ids;
  }

  /** All users' sequences of a domain (item ids, oldest first): the first stage's training data. */
  async domainSequences(domain: string): Promise<string[][]> {
    const rows = await retryOnReset(() =>
      this.ch.query<{ item_ids: string[] }>(
        sql`SELECT item_ids FROM ${ident(DOMAIN_SEQUENCES_TABLE)} FINAL WHERE domain = ${domain} ORDER BY user_id`,
      ),
    );
    return rows.map((r) => r.item_ids);
  }
}
