import { ClickHouse } from '../client';
import { ident, rawSql, sql, SqlFragment } from '../sql';
import { INTERACTIONS_TABLE } from './interactions';

export const DOMAIN_SEQUENCES_TABLE = 'domain_sequences';
export const MIXED_SEQUENCES_TABLE = 'mixed_sequences';
export const SEQUENCER_WATERMARKS_TABLE = 'sequencer_watermarks';

/** One stored sequence; the arrays are parallel, one entry per item in the documented order. */
export interface StoredSequence {
  userId: string;
  /** Only for domain sequences. */
  domain?: string;
  /** Per item (mixed sequences); for domain sequences every entry is `domain`. */
  domains: string[];
  itemIds: string[];
  tsMs: number[];
  seqs: number[];
  eventIds: string[];
  ingestedMs: number[];
}

export interface RebuildOptions {
  /**
   * Rows ingested up to this long before the previous watermark are treated as possibly late:
   * their users are rebuilt again and the watermark never runs closer than this to "now". Covers
   * ingest stamping ingest_version before its INSERT becomes visible, and clock skew between
   * ingest instances. Default 10 s.
   */
  safetyMarginMs?: number;
  /** Rebuild every user (same statement, no touched-user filter). */
  full?: boolean;
  /** "Now" in epoch ms (tests); default Date.now(). */
  nowMs?: number;
}

export interface RebuildResult {
  version: number;
  fullRebuild: boolean;
  previousWatermarkMs: number;
  watermarkMs: number;
  maxIngestMs: number;
  /** Distinct users whose sequences were rewritten. */
  usersRebuilt: number;
  durationMs: number;
}

export interface WatermarkRow {
  version: number;
  watermarkMs: number;
  previousWatermarkMs: number;
  maxIngestMs: number;
  fullRebuild: boolean;
  usersRebuilt: number;
  durationMs: number;
  createdMs: number;
}

export interface DomainDelta {
  domain: string;
  /** Items (deduplicated interactions) ingested in (previous, watermark] (latest ingest of an event). */
  newInteractions: number;
  /** Users with at least one such item in the domain. */
  newUsers: number;
  /** All items of the domain in the sequence tables. */
  totalInteractions: number;
}

export const DEFAULT_SAFETY_MARGIN_MS = 10_000;

/**
 * The deduplicated interactions of the selected users, one row per kept item:
 * (user_id, domain, item_id, ts_ms, kept = (seq, event_id, first ingest_version)).
 *
 * - Redeliveries of one event (same event_id, rows not yet merged) collapse without FINAL: the
 *   tuple minimum picks the event and, through the negated version, its *latest* ingest_version —
 *   the copy a merge of the ReplacingMergeTree(ingest_version) keeps, so the result is the same
 *   before and after merges (the first ingest time is gone once parts merge). A redelivered event
 *   therefore counts as newly ingested; ingest drops recent redeliveries, so this is rare.
 * - The exact-duplicate rule (same user, item, timestamp under different event ids) keeps the copy
 *   that is smallest under (seq, event_id) — the same copy libs/corpus keeps (`compareInteractions`
 *   with equal timestamps).
 */
function keptInteractions(userFilter: SqlFragment): SqlFragment {
  return sql`SELECT user_id, domain, item_id, ts_ms, min((seq, event_id, -toInt64(ingest_version))) AS kept
FROM ${ident(INTERACTIONS_TABLE)}
${userFilter}
GROUP BY user_id, domain, item_id, ts_ms`;
}

/** Users with a row ingested after `sinceMs`, computed inside ClickHouse (never shipped to Node). */
function touchedUsers(sinceMs: number): SqlFragment {
  return sql`SELECT DISTINCT user_id FROM ${ident(INTERACTIONS_TABLE)} WHERE ingest_version > ${sinceMs}`;
}

/**
 * INSERT ... SELECT of domain sequences. The tuple sort is lexicographic on (ts_ms, seq, event_id)
 * — the documented order; item_id and ingest time never decide because event ids are unique in a
 * group.
 */
function domainRebuild(userFilter: SqlFragment, version: number): SqlFragment {
  return sql`INSERT INTO ${ident(DOMAIN_SEQUENCES_TABLE)}
  (domain, user_id, item_ids, ts_ms, seqs, event_ids, ingested_ms, n, version)
SELECT domain, user_id,
  arrayMap(x -> tupleElement(x, 4), s),
  arrayMap(x -> tupleElement(x, 1), s),
  arrayMap(x -> tupleElement(x, 2), s),
  arrayMap(x -> tupleElement(x, 3), s),
  arrayMap(x -> tupleElement(x, 5), s),
  length(s),
  ${version}
FROM (
  SELECT domain, user_id,
    arraySort(groupArray((ts_ms, tupleElement(kept, 1), tupleElement(kept, 2), item_id, toUInt64(-tupleElement(kept, 3))))) AS s
  FROM (${keptInteractions(userFilter)})
  GROUP BY domain, user_id
)`;
}

/**
 * INSERT ... SELECT of mixed sequences from the domain sequences this rebuild just wrote (rows of
 * `version`): a rebuild always rewrites every domain of a touched user, so those rows hold all of
 * the user's kept items and `interactions` is not read a second time.
 */
function mixedRebuild(version: number): SqlFragment {
  return sql`INSERT INTO ${ident(MIXED_SEQUENCES_TABLE)}
  (user_id, domains, item_ids, ts_ms, seqs, event_ids, ingested_ms, n, version)
SELECT user_id,
  arrayMap(x -> tupleElement(x, 6), s),
  arrayMap(x -> tupleElement(x, 4), s),
  arrayMap(x -> tupleElement(x, 1), s),
  arrayMap(x -> tupleElement(x, 2), s),
  arrayMap(x -> tupleElement(x, 3), s),
  arrayMap(x -> tupleElement(x, 5), s),
  length(s),
  ${version}
FROM (
  SELECT user_id, arraySort(groupArray((a_ts, a_seq, a_event, a_item, a_ingested, domain))) AS s
  FROM ${ident(DOMAIN_SEQUENCES_TABLE)}
  ARRAY JOIN item_ids AS a_item, ts_ms AS a_ts, seqs AS a_seq, event_ids AS a_event, ingested_ms AS a_ingested
  WHERE version = ${version}
  GROUP BY user_id
)`;
}

const num = (v: string | number): number => Number(v);

/**
 * The writer of the sequence tables (the sequencer service, one instance). Each rebuild:
 *
 * 1. reads the previous watermark w and the newest ingest_version M;
 * 2. rewrites, with one INSERT ... SELECT, the domain sequences of every user with a row ingested
 *    after w − margin (the set is a subquery inside ClickHouse), or of every user for a full
 *    rebuild; then, with a second one, those users' mixed sequences from the rows just written;
 * 3. records the new watermark min(M, now − margin) (never below w).
 *
 * Rebuilding a user recomputes its sequences from all its interactions, so an incremental rebuild
 * gives exactly the rows a full rebuild gives (tested), whatever the arrival order.
 */
export class SequenceStore {
  private lastVersion = 0;

  constructor(private readonly ch: ClickHouse) {}

  async latestWatermark(): Promise<WatermarkRow | undefined> {
    const rows = await this.ch.query<Record<string, string | number>>(
      sql`SELECT version, watermark_ms, previous_watermark_ms, max_ingest_ms, full_rebuild, users_rebuilt,
  duration_ms, created_ms
FROM ${ident(SEQUENCER_WATERMARKS_TABLE)} ORDER BY version DESC LIMIT 1`,
    );
    const r = rows[0];
    if (r === undefined) return undefined;
    return {
      version: num(r.version),
      watermarkMs: num(r.watermark_ms),
      previousWatermarkMs: num(r.previous_watermark_ms),
      maxIngestMs: num(r.max_ingest_ms),
      fullRebuild: num(r.full_rebuild) === 1,
      usersRebuilt: num(r.users_rebuilt),
      durationMs: num(r.duration_ms),
      createdMs: num(r.created_ms),
    };
  }

  async rebuild(options: RebuildOptions = {}): Promise<RebuildResult> {
    const started = Date.now();
    const now = options.nowMs ?? started;
    const margin = options.safetyMarginMs ?? DEFAULT_SAFETY_MARGIN_MS;
    const previous = await this.latestWatermark();
    const previousWatermark = previous?.watermarkMs ?? 0;
    // Versions only grow: at least the previous one + 1, usually the wall clock in ms.
    const version = Math.max(started, (previous?.version ?? 0) + 1, this.lastVersion + 1);
    this.lastVersion = version;

    const [maxRow] = await this.ch.query<{ m: string }>(
      sql`SELECT max(ingest_version) AS m FROM ${ident(INTERACTIONS_TABLE)}`,
    );
    const maxIngest = num(maxRow?.m ?? 0);
    const full = options.full === true || previous === undefined;
    const since = Math.max(0, previousWatermark - margin);
    const userFilter = full ? rawSql('') : sql`WHERE user_id IN (${touchedUsers(since)})`;

    await this.ch.command(domainRebuild(userFilter, version));
    await this.ch.command(mixedRebuild(version));

    const [rebuilt] = await this.ch.query<{ n: string }>(
      sql`SELECT count() AS n FROM ${ident(MIXED_SEQUENCES_TABLE)} WHERE version = ${version}`,
    );
    const usersRebuilt = num(rebuilt?.n ?? 0);
    const watermark = Math.max(previousWatermark, Math.min(maxIngest, now - margin));
    const durationMs = Date.now() - started;
    await this.ch.insertJsonEachRow(SEQUENCER_WATERMARKS_TABLE, [
      {
        version,
        watermark_ms: watermark,
        previous_watermark_ms: previousWatermark,
        max_ingest_ms: maxIngest,
        full_rebuild: full ? 1 : 0,
        users_rebuilt: usersRebuilt,
        duration_ms: durationMs,
        created_ms: Date.now(),
        created_at: Math.floor(Date.now() / 1000),
      },
    ]);
    return {
      version,
      fullRebuild: full,
      previousWatermarkMs: previousWatermark,
      watermarkMs: watermark,
      maxIngestMs: maxIngest,
      usersRebuilt,
      durationMs,
    };
  }

  /**
   * Per domain: items first ingested in (fromMs, toMs] and the users who have them, plus the
   * domain's total. Reads the sequence tables (FINAL), so it counts deduplicated interactions.
   */
  async domainDeltas(fromMs: number, toMs: number): Promise<DomainDelta[]> {
    const rows = await this.ch.query<Record<string, string>>(
      sql`SELECT domain,
  sum(arrayCount(x -> x > ${fromMs} AND x <= ${toMs}, ingested_ms)) AS new_interactions,
  countIf(arrayExists(x -> x > ${fromMs} AND x <= ${toMs}, ingested_ms)) AS new_users,
  sum(n) AS total
FROM ${ident(DOMAIN_SEQUENCES_TABLE)} FINAL
GROUP BY domain ORDER BY domain`,
    );
    return rows.map((r) => ({
      domain: r.domain,
      newInteractions: num(r.new_interactions),
      newUsers: num(r.new_users),
      totalInteractions: num(r.total),
    }));
  }

  /** All domain sequences (FINAL), ordered by domain then user: for tests and small tools. */
  async readDomainSequences(domain?: string): Promise<StoredSequence[]> {
    const where = domain === undefined ? rawSql('') : sql`WHERE domain = ${domain}`;
    const rows = await this.ch.query<SequenceRow>(
      sql`SELECT domain, user_id, item_ids, ts_ms, seqs, event_ids, ingested_ms
FROM ${ident(DOMAIN_SEQUENCES_TABLE)} FINAL ${where} ORDER BY domain, user_id`,
    );
    return rows.map((r) => toStoredSequence(r));
  }

  /** All mixed sequences (FINAL), ordered by user. */
  async readMixedSequences(): Promise<StoredSequence[]> {
    const rows = await this.ch.query<SequenceRow>(
      sql`SELECT user_id, domains, item_ids, ts_ms, seqs, event_ids, ingested_ms
FROM ${ident(MIXED_SEQUENCES_TABLE)} FINAL ORDER BY user_id`,
    );
    return rows.map((r) => toStoredSequence(r));
  }
}

interface SequenceRow {
  domain?: string;
  domains?: string[];
  user_id: string;
  item_ids: string[];
  ts_ms: Array<string | number>;
  seqs: Array<string | number>;
  event_ids: string[];
  ingested_ms: Array<string | number>;
}

function toStoredSequence(r: SequenceRow): StoredSequence {
  const out: StoredSequence = {
    userId: r.user_id,
    domains: r.domains ?? r.item_ids.map(() => r.domain ?? ''),
    itemIds: r.item_ids,
    tsMs: r.ts_ms.map(num),
    seqs: r.seqs.map(num),
    eventIds: r.event_ids,
    ingestedMs: r.ingested_ms.map(num),
  };
  if (r.domain !== undefined) out.domain = r.domain;
  return out;
}
