import { ClickHouse } from '../client';
import { ident, joinSql, rawSql, renderSql, sql, SqlFragment } from '../sql';
import { ITEMS_TABLE } from './items';
import { DOMAIN_SEQUENCES_TABLE, MIXED_SEQUENCES_TABLE } from './sequences';

/** One item of a sample as the trainer sees it. */
export interface SampleItem {
  itemId: string;
  domain: string;
  /** Latest catalogue title ('' when the catalogue has none). */
  title: string;
  tsMs: number;
}

export interface SampleTarget extends SampleItem {
  eventId: string;
  seq: number;
  /** When the target's event was first ingested: what watermarks compare against. */
  ingestedMs: number;
}

/** A next-item sample read from the sequence tables (same content as libs/corpus samples). */
export interface CorpusSample {
  /** 0-based position in the stream order of this query and seed; resume with `from`. */
  position: number;
  userId: string;
  /** The target's domain. */
  domain: string;
  /** Oldest first. */
  history: SampleItem[];
  target: SampleTarget;
  /** True for an older sample mixed in by `replayFraction` (target ingested ≤ sinceWatermark). */
  replay: boolean;
}

interface SliceQuery {
  /** Targets first ingested after this (exclusive). Default 0: everything. */
  sinceWatermark?: number;
  /** …and at or before this (inclusive). Default: no upper bound. */
  untilWatermark?: number;
  /** Seed of the stream order and of the replay subset. Non-negative integer; default 0. */
  seed?: number;
  /**
   * Fraction in [0, 1] of the samples whose target was ingested at or before `sinceWatermark` to
   * mix in (a fixed, hash-chosen subset for a given seed), so a round that trains on new data
   * also revisits some old data. Default 0.
   */
  replayFraction?: number;
  /** Resume: skip the first `from` samples of the order. Default 0. */
  from?: number;
  /** At most this many samples. */
  limit?: number;
  /** Attach catalogue titles (default true). */
  withTitles?: boolean;
  /** Rows per title lookup / yield batch (default 2000). */
  batchSize?: number;
}

export interface DomainSampleQuery extends SliceQuery {
  /** Target domains (default all). */
  domains?: readonly string[];
  /** History cap, as LLaRA: default 10. */
  historyCap?: number;
  /** Targets need at least this many earlier items in their (user, domain) sequence. Default 1. */
  minHistory?: number;
}

export interface MixedSampleQuery extends SliceQuery {
  /**
   * Only items of these domains form the mixed sequence (other domains' items are removed before
   * windows are cut), e.g. the titled domains. Default all.
   */
  domains?: readonly string[];
  /** N of the guideline: window = target + up to N-1 earlier items. Default 20. */
  windowSize?: number;
  /** Further cap on the history shown (most recent items of the window). Default N-1. */
  historyCap?: number;
}

const DEFAULT_HISTORY_CAP = 10;
const DEFAULT_WINDOW = 20;
const REPLAY_SCALE = 1_000_000;
/** Bounded so a long stream over a huge catalogue cannot grow the title cache without limit. */
const TITLE_CACHE_LIMIT = 500_000;

function positiveInt(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1)
    throw new RangeError(`${name} must be a positive integer, got ${value}`);
  return value;
}

function nonNegativeInt(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 0)
    throw new RangeError(`${name} must be a non-negative integer, got ${value}`);
  return value;
}

function domainList(domains: readonly string[] | undefined): readonly string[] | undefined {
  if (domains === undefined) return undefined;
  if (domains.length === 0) throw new RangeError('domains must not be empty (omit it for all domains)');
  return domains;
}

/**
 * Which targets a query selects: new ones in (since, until], plus the replay subset of older ones.
 * `ingested` and `eventId` are SQL expressions for the target's first-ingest time and event id.
 */
function targetWindow(
  q: SliceQuery,
  ingested: SqlFragment,
  userId: SqlFragment,
  eventId: SqlFragment,
): SqlFragment {
  const since = nonNegativeInt('sinceWatermark', q.sinceWatermark ?? 0);
  const seed = nonNegativeInt('seed', q.seed ?? 0);
  const fraction = q.replayFraction ?? 0;
  if (!(fraction >= 0 && fraction <= 1))
    throw new RangeError(`replayFraction must be in [0, 1], got ${fraction}`);
  const fresh: SqlFragment[] = [sql`${ingested} > ${since}`];
  if (q.untilWatermark !== undefined)
    fresh.push(sql`${ingested} <= ${nonNegativeInt('untilWatermark', q.untilWatermark)}`);
  const freshSql = joinSql(fresh, ' AND ');
  if (fraction === 0 || since === 0) return freshSql;
  const threshold = Math.round(fraction * REPLAY_SCALE);
  return sql`((${freshSql}) OR (${ingested} <= ${since} AND cityHash64(toUInt64(${seed}), 'replay', ${userId}, ${eventId}) % ${REPLAY_SCALE} < ${threshold}))`;
}

/** Deterministic shuffle for a seed: a hash of the sample's identity, then the identity itself. */
function streamOrder(seed: number, userId: SqlFragment, eventId: SqlFragment): SqlFragment {
  return sql`cityHash64(toUInt64(${nonNegativeInt('seed', seed)}), ${userId}, ${eventId}), ${userId}, ${eventId}`;
}

function limitClause(q: SliceQuery): SqlFragment {
  const from = nonNegativeInt('from', q.from ?? 0);
  if (q.limit === undefined && from === 0) return rawSql('');
  // LIMIT offset, count: the form 18.16 and current servers both accept.
  const count = q.limit === undefined ? Number.MAX_SAFE_INTEGER : nonNegativeInt('limit', q.limit);
  return sql`LIMIT ${from}, ${count}`;
}

interface SampleRow {
  user_id: string;
  h_items: string[];
  h_domains: string[];
  h_ts: Array<string | number>;
  target: string;
  target_domain: string;
  target_event: string;
  target_ts: string | number;
  target_seq: string | number;
  target_ingested: string | number;
  replay: number | string;
}

/**
 * Columns every sample query returns. `arrays` name the (possibly filtered) parallel arrays;
 * `domains` undefined means a domain sequence, whose items all have the row's `domain`.
 */
function sampleColumns(
  since: number,
  arrays: { items: string; domains?: string; ts: string; seqs: string; events: string; ingested: string },
  historyStart: SqlFragment,
): SqlFragment {
  const a = (name: string): SqlFragment => rawSql(name);
  const slice = (name: string): SqlFragment =>
    sql`arraySlice(${a(name)}, ${historyStart}, toInt64(t) - ${historyStart})`;
  const historyDomains =
    arrays.domains === undefined ? rawSql('arrayMap(x -> domain, h_items)') : slice(arrays.domains);
  const targetDomain = arrays.domains === undefined ? rawSql('domain') : sql`${a(arrays.domains)}[t]`;
  return sql`user_id,
  ${slice(arrays.items)} AS h_items,
  ${historyDomains} AS h_domains,
  ${slice(arrays.ts)} AS h_ts,
  ${a(arrays.items)}[t] AS target,
  ${targetDomain} AS target_domain,
  ${a(arrays.events)}[t] AS target_event,
  ${a(arrays.ts)}[t] AS target_ts,
  ${a(arrays.seqs)}[t] AS target_seq,
  ${a(arrays.ingested)}[t] AS target_ingested,
  ${a(arrays.ingested)}[t] <= ${since} AS replay`;
}

/**
 * Read-only access to the corpus for the trainer (and any number of other readers): streamed,
 * seeded, resumable sample slices computed at query time from the sequence tables the sequencer
 * writes. Samples equal libs/corpus `domainSamples` / `mixedSamples` on the same sequences.
 */
export class SequenceRepository {
  private readonly titles = new Map<string, string>();

  constructor(private readonly ch: ClickHouse) {}

  private domainSampleSql(q: DomainSampleQuery, select: 'rows' | 'count'): SqlFragment {
    const cap = positiveInt('historyCap', q.historyCap ?? DEFAULT_HISTORY_CAP);
    const minHistory = positiveInt('minHistory', q.minHistory ?? 1);
    const since = nonNegativeInt('sinceWatermark', q.sinceWatermark ?? 0);
    const domains = domainList(q.domains);
    const conditions: SqlFragment[] = [
      sql`t > ${minHistory}`,
      targetWindow(q, rawSql('ingested_ms[t]'), rawSql('user_id'), rawSql('event_ids[t]')),
    ];
    if (domains !== undefined) conditions.unshift(sql`domain IN (${joinSql(domains.map((d) => sql`${d}`))})`);
    const where = joinSql(conditions, ' AND ');
    const from = sql`FROM ${ident(DOMAIN_SEQUENCES_TABLE)} FINAL
ARRAY JOIN arrayEnumerate(item_ids) AS t
WHERE ${where}`;
    if (select === 'count') return sql`SELECT count() AS n ${from}`;
    const historyStart = sql`greatest(1, toInt64(t) - ${cap})`;
    return sql`SELECT ${sampleColumns(
      since,
      { items: 'item_ids', ts: 'ts_ms', seqs: 'seqs', events: 'event_ids', ingested: 'ingested_ms' },
      historyStart,
    )}
${from}
ORDER BY ${streamOrder(q.seed ?? 0, rawSql('user_id'), rawSql('target_event'))}
${limitClause(q)}`;
  }

  private mixedSampleSql(q: MixedSampleQuery, select: 'rows' | 'count' | 'users'): SqlFragment {
    const windowSize = positiveInt('windowSize', q.windowSize ?? DEFAULT_WINDOW);
    const cap =
      q.historyCap === undefined ? Math.max(1, windowSize - 1) : positiveInt('historyCap', q.historyCap);
    const since = nonNegativeInt('sinceWatermark', q.sinceWatermark ?? 0);
    const domains = domainList(q.domains);
    // With a domain filter, every array keeps only the items of those domains, so windows are
    // cut on the filtered sequence (as if the other domains did not exist).
    const keep = domains === undefined ? undefined : sql`has([${joinSql(domains.map((d) => sql`${d}`))}], d)`;
    const filtered = (column: string): SqlFragment =>
      keep === undefined ? rawSql(column) : sql`arrayFilter((x, d) -> ${keep}, ${rawSql(column)}, domains)`;
    const source = sql`SELECT user_id,
  ${filtered('domains')} AS f_domains,
  ${filtered('item_ids')} AS f_items,
  ${filtered('ts_ms')} AS f_ts,
  ${filtered('seqs')} AS f_seqs,
  ${filtered('event_ids')} AS f_events,
  ${filtered('ingested_ms')} AS f_ingested
FROM ${ident(MIXED_SEQUENCES_TABLE)} FINAL`;
    // The guideline on the window (items ws..t): its history spans ≥ 2 domains counting the
    // target's, and contains the target's domain — i.e. has(history, target domain) and some
    // history item of another domain (libs/corpus isValidMixedWindow).
    const windowStart = sql`greatest(1, toInt64(t) - ${windowSize - 1})`;
    const windowDomains = sql`arraySlice(f_domains, ${windowStart}, toInt64(t) - ${windowStart})`;
    const where = joinSql(
      [
        rawSql('t >= 2'),
        sql`has(${windowDomains}, f_domains[t])`,
        sql`arrayExists(x -> x != f_domains[t], ${windowDomains})`,
        targetWindow(q, rawSql('f_ingested[t]'), rawSql('user_id'), rawSql('f_events[t]')),
      ],
      ' AND ',
    );
    const from = sql`FROM (${source})
ARRAY JOIN arrayEnumerate(f_items) AS t
WHERE ${where}`;
    if (select === 'count') return sql`SELECT count() AS n ${from}`;
    if (select === 'users') return sql`SELECT uniqExact(user_id) AS n ${from}`;
    const historyStart = sql`greatest(${windowStart}, toInt64(t) - ${cap})`;
    return sql`SELECT ${sampleColumns(
      since,
      {
        items: 'f_items',
        domains: 'f_domains',
        ts: 'f_ts',
        seqs: 'f_seqs',
        events: 'f_events',
        ingested: 'f_ingested',
      },
      historyStart,
    )}
${from}
ORDER BY ${streamOrder(q.seed ?? 0, rawSql('user_id'), rawSql('target_event'))}
${limitClause(q)}`;
  }

  /** Domain-specific samples (libs/corpus `domainSamples`), streamed in the seed's order. */
  streamDomainSamples(query: DomainSampleQuery = {}): AsyncIterable<CorpusSample> {
    return this.stream(this.domainSampleSql(query, 'rows'), query);
  }

  /** Mixed samples (libs/corpus `mixedSamples`, sliding targets), streamed in the seed's order. */
  streamMixedSamples(query: MixedSampleQuery = {}): AsyncIterable<CorpusSample> {
    return this.stream(this.mixedSampleSql(query, 'rows'), query);
  }

  /** Number of samples the same query streams (ignoring from/limit). */
  async countDomainSamples(query: DomainSampleQuery = {}): Promise<number> {
    return this.count(this.domainSampleSql(query, 'count'));
  }

  async countMixedSamples(query: MixedSampleQuery = {}): Promise<number> {
    return this.count(this.mixedSampleSql(query, 'count'));
  }

  /** Users with at least one kept mixed window (libs/corpus `hasValidMixedSequence`). */
  async countUsersWithValidMixedSequence(query: MixedSampleQuery = {}): Promise<number> {
    return this.count(this.mixedSampleSql(query, 'users'));
  }

  /** Titled items of a domain from the catalogue (latest version), ordered by id. */
  async domainItems(domain: string): Promise<Array<{ itemId: string; title: string }>> {
    const rows = await this.ch.query<{ item_id: string; title: string }>(
      sql`SELECT item_id, title FROM ${ident(ITEMS_TABLE)} FINAL WHERE domain = ${domain} AND title != '' ORDER BY item_id`,
    );
    return rows.map((r) => ({ itemId: r.item_id, title: r.title }));
  }

  /** Distinct item ids of a domain seen in interactions (the sequence tables), ordered by id. */
  async interactedItems(domain: string): Promise<string[]> {
    const rows = await this.ch.query<{ item_id: string }>(
      sql`SELECT DISTINCT arrayJoin(item_ids) AS item_id FROM ${ident(DOMAIN_SEQUENCES_TABLE)} FINAL
WHERE domain = ${domain} ORDER BY item_id`,
    );
    return rows.map((r) => r.item_id);
  }

  /** Titles of items (latest catalogue version); missing items map to ''. Cached, bounded. */
  async titlesOf(items: ReadonlyArray<{ domain: string; itemId: string }>): Promise<Map<string, string>> {
    const key = (domain: string, itemId: string): string => `${domain}\u0000${itemId}`;
    const missing = new Map<string, Set<string>>();
    for (const { domain, itemId } of items) {
      if (this.titles.has(key(domain, itemId))) continue;
      let set = missing.get(domain);
      if (set === undefined) missing.set(domain, (set = new Set()));
      set.add(itemId);
    }
    if (this.titles.size > TITLE_CACHE_LIMIT) this.titles.clear();
    for (const [domain, ids] of missing) {
      const list = [...ids];
      const rows = await this.ch.query<{ item_id: string; title: string }>(
        sql`SELECT item_id, title FROM ${ident(ITEMS_TABLE)} FINAL
WHERE domain = ${domain} AND item_id IN (${joinSql(list.map((id) => sql`${id}`))})`,
      );
      for (const id of list) this.titles.set(key(domain, id), '');
      for (const r of rows) this.titles.set(key(domain, r.item_id), r.title);
    }
    const out = new Map<string, string>();
    for (const { domain, itemId } of items)
      out.set(key(domain, itemId), this.titles.get(key(domain, itemId)) ?? '');
    return out;
  }

  private async count(statement: SqlFragment): Promise<number> {
    const [row] = await this.ch.query<{ n: string }>(statement);
    return Number(row?.n ?? 0);
  }

  /**
   * Streams a sample query: rows arrive through the HTTP response stream (never the whole result
   * in memory), are grouped in batches for one title lookup each, and are yielded one by one.
   * Leaving the loop early destroys the stream, which aborts the query.
   */
  private async *stream(statement: SqlFragment, q: SliceQuery): AsyncGenerator<CorpusSample> {
    const batchSize = positiveInt('batchSize', q.batchSize ?? 2000);
    const withTitles = q.withTitles ?? true;
    let position = q.from ?? 0;
    // Inline literals: valid on every server version, and this path needs no parameter support.
    const { query } = renderSql(statement, 'inline');
    const result = await this.ch.client.query({ query, format: 'JSONEachRow' });
    const stream = result.stream<SampleRow>();
    let batch: SampleRow[] = [];
    const flush = async function* (
      this: SequenceRepository,
      rows: SampleRow[],
    ): AsyncGenerator<CorpusSample> {
      const titles = withTitles ? await this.titlesOf(rowItems(rows)) : undefined;
      const title = (domain: string, itemId: string): string => titles?.get(`${domain}\u0000${itemId}`) ?? '';
      for (const r of rows) {
        yield {
          position: position++,
          userId: r.user_id,
          domain: r.target_domain,
          history: r.h_items.map((itemId, i) => ({
            itemId,
            domain: r.h_domains[i],
            title: title(r.h_domains[i], itemId),
            tsMs: Number(r.h_ts[i]),
          })),
          target: {
            itemId: r.target,
            domain: r.target_domain,
            title: title(r.target_domain, r.target),
            tsMs: Number(r.target_ts),
            eventId: r.target_event,
            seq: Number(r.target_seq),
            ingestedMs: Number(r.target_ingested),
          },
          replay: Number(r.replay) === 1,
        };
      }
    }.bind(this);
    try {
      for await (const rows of stream) {
        for (const row of rows) {
          batch.push(row.json<SampleRow>());
          if (batch.length >= batchSize) {
            const full = batch;
            batch = [];
            yield* flush(full);
          }
        }
      }
      if (batch.length > 0) yield* flush(batch);
    } finally {
      stream.destroy();
    }
  }
}

function rowItems(rows: readonly SampleRow[]): Array<{ domain: string; itemId: string }> {
  const out: Array<{ domain: string; itemId: string }> = [];
  for (const r of rows) {
    out.push({ domain: r.target_domain, itemId: r.target });
    r.h_items.forEach((itemId, i) => out.push({ domain: r.h_domains[i], itemId }));
  }
  return out;
}
