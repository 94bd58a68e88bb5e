import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { ClickHouse } from '../client';
import { ident, sql } from '../sql';

/**
 * A mutual-exclusion lock over ClickHouse, which has neither transactions nor compare-and-set.
 *
 * It is Lamport's bakery algorithm, which needs only registers that every participant can read
 * and write: each contender owns one row (keyed by a random token) in a ReplacingMergeTree table,
 * overwritten by inserting a newer row_version, and reads everyone's latest row with FINAL. A
 * contender announces `choosing`, takes ticket = 1 + the largest ticket it sees, clears
 * `choosing`, then waits until no other live row is choosing and none holds a smaller
 * (ticket, token). On one server an INSERT is visible to every query that starts after it
 * returns, which is all the algorithm needs. Anyone who starts choosing after we published our
 * ticket sees it and takes a larger one, so two holders can never overlap.
 *
 * Crashed contenders must not block forever, so rows carry a heartbeat (client clock, refreshed
 * every leaseMs/4 while waiting and while holding) and rows older than leaseMs are ignored. The
 * price: a holder that stalls longer than the lease (or hosts whose clocks disagree by more than
 * the lease) can lose exclusivity; the default 60 s lease is far above any migration step's stall.
 */
export interface LockOptions {
  leaseMs?: number;
  pollMs?: number;
  timeoutMs?: number;
  owner?: string;
}

interface LockRow {
  token: string;
  choosing: number;
  ticket: string;
  heartbeat_ms: string;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export class LockTimeoutError extends Error {
  override readonly name = 'LockTimeoutError';
}

export function lockTableDdl(database: string, table: string) {
  return sql`CREATE TABLE IF NOT EXISTS ${ident(database, table)} (
  token String,
  owner String,
  choosing UInt8,
  ticket UInt64,
  heartbeat_ms UInt64,
  row_version UInt64
) ENGINE = ReplacingMergeTree(row_version)
ORDER BY token`;
}

export class BakeryLock {
  readonly token = randomUUID();
  private readonly leaseMs: number;
  private readonly pollMs: number;
  private readonly timeoutMs: number;
  private readonly owner: string;
  private rowVersion = 0;
  private choosing = 0;
  private ticket = 0n;
  private heartbeat: NodeJS.Timeout | undefined;
  private lastWrite: Promise<void> = Promise.resolve();

  constructor(
    private readonly ch: ClickHouse,
    private readonly database: string,
    private readonly table: string,
    options: LockOptions = {},
  ) {
    this.leaseMs = options.leaseMs ?? 60_000;
    this.pollMs = options.pollMs ?? 150;
    this.timeoutMs = options.timeoutMs ?? 10 * 60_000;
    this.owner = options.owner ?? `${hostname()}:${process.pid}`;
  }

  /** Serialised so row versions reach the server in order. */
  private write(): Promise<void> {
    const row = {
      token: this.token,
      owner: this.owner,
      choosing: this.choosing,
      ticket: this.ticket.toString(),
      heartbeat_ms: Date.now(),
      row_version: ++this.rowVersion,
    };
    const next = this.lastWrite.then(() => this.ch.insertJsonEachRow(this.table, [row], this.database));
    this.lastWrite = next.catch(() => undefined);
    return next;
  }

  private async liveRows(): Promise<LockRow[]> {
    const cutoff = Date.now() - this.leaseMs;
    return this.ch.query<LockRow>(sql`SELECT token, choosing, ticket, heartbeat_ms
FROM ${ident(this.database, this.table)} FINAL
WHERE heartbeat_ms > ${cutoff} AND (choosing = 1 OR ticket > 0)`);
  }

  async acquire(): Promise<void> {
    const deadline = Date.now() + this.timeoutMs;
    this.heartbeat = setInterval(
      () => {
        this.write().catch(() => undefined); // a missed beat only matters after a whole lease
      },
      Math.max(50, Math.floor(this.leaseMs / 4)),
    );
    this.heartbeat.unref();
    try {
      this.choosing = 1;
      await this.write();
      const seen = await this.liveRows();
      const maxTicket = seen.reduce((m, r) => (BigInt(r.ticket) > m ? BigInt(r.ticket) : m), 0n);
      this.ticket = maxTicket + 1n;
      this.choosing = 0;
      await this.write();
      for (;;) {
        const others = (await this.liveRows()).filter((r) => r.token !== this.token);
        const blocked = others.some((r) => Number(r.choosing) === 1 || this.precedes(r));
        if (!blocked) return;
        if (Date.now() > deadline) {
          throw new LockTimeoutError(
            `could not take the lock ${this.database}.${this.table} within ${this.timeoutMs} ms; ` +
              `held by another runner (rows older than ${this.leaseMs} ms are ignored)`,
          );
        }
        await sleep(this.pollMs);
      }
    } catch (err) {
      await this.release().catch(() => undefined);
      throw err;
    }
  }

  private precedes(other: LockRow): boolean {
    const otherTicket = BigInt(other.ticket);
    if (otherTicket === 0n) return false;
    return otherTicket < this.ticket || (otherTicket === this.ticket && other.token < this.token);
  }

  async release(): Promise<void> {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = undefined;
    this.choosing = 0;
    this.ticket = 0n;
    await this.write();
  }
}
