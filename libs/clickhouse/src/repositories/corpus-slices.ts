import { ClickHouse } from '../client';
import { queryInChunks } from '../in-list';
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
 * Target positions per chunk of a sequence (see `chunkedTargets`). A sequence of n items costs
 * about n²/64 array elements for cutting its chunks plus n·(64 + window) for its samples' rows;
 * a sequence of at most 64 items is a single chunk.
 */
export const SAMPLE_CHUNK_TARGETS = 64;

/** Names of the parallel arrays of the sequence rows a sample query reads. */
interface SequenceArrays {
  items: string;
  /** Undefined for a domain sequence, whose items all have the row's `domain` column. */
  domains?: string;
  ts: string;
  seqs: string;
  events: string;
  ingested: string;
}

/**
 * `FROM …` of a sample query: one row per target position of every sequence row of `source`,
 * with these columns (besides `keys`):
 * - `j`: the target's 1-based index in the chunk arrays, `base + j` its index in the sequence;
 * - `c_items`, `c_ts` (and `c_domains`): the chunk's items, from `window` items before its first
 *   target through its last, for history slices (`arraySlice(c_items, …, j - …)`);
 * - `target`, `target_ts`, `target_seq`, `target_event`, `target_ingested` (and
 *   `target_domain`): the target's own fields.
 *
 * Why chunks: `ARRAY JOIN arrayEnumerate(item_ids)` over whole sequences copies each row's full
 * arrays into each of its n output rows, so memory grew with n² (3.5 GB for one mixed-sample
 * query over twenty 1,200-item users and 2,000 short ones, docs/sequencer.md; a lambda over
 * positions is no better on 18.16, its captured arrays are replicated per element too). Here a
 * first ARRAY JOIN over chunk starts `s` (every SAMPLE_CHUNK_TARGETS positions) copies the full
 * arrays only n/64 times, each copy cut at once to its chunk's targets plus the `window` items
 * before them (all that any of its targets can look back to). The second ARRAY JOIN zips the
 * chunk's target fields (no copies) and copies only the short history arrays to each target
 * row. Items before `s` are history only (no row is made for them), so every target is in
 * exactly one chunk.
 */
function chunkedTargets(
  source: SqlFragment,
  keys: string,
  arrays: SequenceArrays,
  window: number,
): SqlFragment {
  const C = SAMPLE_CHUNK_TARGETS;
  const a = (name: string): SqlFragment => rawSql(name);
  // s: 0-based index of the chunk's first target; base: 0-based index of its first item.
  const history = (name: string, alias: string): SqlFragment =>
    sql`arraySlice(${a(name)}, base + 1, toInt64(s) + ${C} - base) AS ${rawSql(alias)}`;
  const targets = (name: string, alias: string): SqlFragment =>
    sql`arraySlice(${a(name)}, s + 1, ${C}) AS ${rawSql(alias)}`;
  const chunkColumns = [
    history(arrays.items, 'c_items'),
    ...(arrays.domains === undefined ? [] : [history(arrays.domains, 'c_domains')]),
    history(arrays.ts, 'c_ts'),
    targets(arrays.seqs, 'c_seqs'),
    targets(arrays.events, 'c_events'),
    targets(arrays.ingested, 'c_ingested'),
  ];
  const fromFirst = (name: string, alias: string): SqlFragment =>
    sql`arraySlice(${a(name)}, k) AS ${rawSql(alias)}`;
  const targetColumns = [
    rawSql('arraySlice(arrayEnumerate(c_items), k) AS j'),
    fromFirst('c_items', 'target'),
    ...(arrays.domains === undefined ? [] : [fromFirst('c_domains', 'target_domain')]),
    fromFirst('c_ts', 'target_ts'),
    rawSql('c_seqs AS target_seq'),
    rawSql('c_events AS target_event'),
    rawSql('c_ingested AS target_ingested'),
  ];
  return sql`FROM (SELECT ${rawSql(keys)},
  greatest(0, toInt64(s) - ${window}) AS base,
  toInt64(s) - base + 1 AS k,
  ${joinSql(chunkColumns, ',\n  ')}
FROM (${source})
ARRAY JOIN arrayMap(i -> i * ${C}, range(intDiv(length(${a(arrays.items)}) + ${C - 1}, ${C}))) AS s)
ARRAY JOIN ${joinSql(targetColumns, ',\n  ')}`;
}

/**
 * Columns every sample query returns, from the rows of `chunkedTargets`; `historyStart` is the
 * 1-based index in the chunk arrays of the target's first history item.
 */
function sampleColumns(since: number, withDomains: boolean, historyStart: SqlFragment): SqlFragment {
  const slice = (name: string): SqlFragment =>
    sql`arraySlice(${rawSql(name)}, ${historyStart}, toInt64(j) - ${historyStart})`;
  const historyDomains = withDomains ? slice('c_domains') : rawSql('arrayMap(x -> domain, h_items)');
  const targetDomain = withDomains ? rawSql('target_domain') : rawSql('domain AS target_domain');
  return sql`user_id,
  ${slice('c_items')} AS h_items,
  ${historyDomains} AS h_domains,
  ${slice('c_ts')} AS h_ts,
  target,
  ${targetDomain},
  target_event,
  target_ts,
  target_seq,
  target_ingested,
  target_ingested <= ${since} AS replay`;
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
    const source = sql`SELECT user_id, domain, item_ids, ts_ms, seqs, event_ids, ingested_ms
FROM ${ident(DOMAIN_SEQUENCES_TABLE)} FINAL${
      domains === undefined ? rawSql('') : sql`\nWHERE domain IN (${joinSql(domains.map((d) => sql`${d}`))})`
    }`;
    // base + j: the target's 1-based position in its (user, domain) sequence.
    const where = joinSql(
      [
        sql`base + j > ${minHistory}`,
        targetWindow(q, rawSql('target_ingested'), rawSql('user_id'), rawSql('target_event')),
      ],
      ' AND ',
    );
    const from = sql`${chunkedTargets(
      source,
      'user_id, domain',
      { items: 'item_ids', ts: 'ts_ms', seqs: 'seqs', events: 'event_ids', ingested: 'ingested_ms' },
      cap,
    )}
WHERE ${where}`;
    if (select === 'count') return sql`SELECT count() AS n ${from}`;
    // The chunk starts `cap` items before its first target (or at the sequence's start), so the
    // cap counted in chunk indices is the same as in sequence indices.
    const historyStart = sql`greatest(1, toInt64(j) - ${cap})`;
    return sql`SELECT ${sampleColumns(since, false, historyStart)}
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
    // history item of another domain (libs/corpus isValidMixedWindow). Indices are the chunk's:
    // a chunk starts N-1 items before its first target (or at the sequence's start), so windows
    // cut in chunk indices are the windows cut in sequence indices.
    const windowStart = sql`greatest(1, toInt64(j) - ${windowSize - 1})`;
    const windowDomains = sql`arraySlice(c_domains, ${windowStart}, toInt64(j) - ${windowStart})`;
    const where = joinSql(
      [
        rawSql('base + j >= 2'),
        sql`has(${windowDomains}, target_domain)`,
        sql`arrayExists(x -> x != target_domain, ${windowDomains})`,
        targetWindow(q, rawSql('target_ingested'), rawSql('user_id'), rawSql('target_event')),
      ],
      ' AND ',
    );
    const from = sql`${chunkedTargets(
      source,
      'user_id',
      {
        items: 'f_items',
        domains: 'f_domains',
        ts: 'f_ts',
        seqs: 'f_seqs',
        events: 'f_events',
        ingested: 'f_ingested',
      },
      windowSize - 1,
    )}
WHERE ${where}`;
    if (select === 'count') return sql`SELECT count() AS n ${from}`;
    if (select === 'users') return sql`SELECT uniqExact(user_id) AS n ${from}`;
    // A cap at or beyond the window changes nothing: the same expression as the window's start,
    // so the server computes the window's domains once.
    const historyStart =
      cap >= windowSize - 1 ? windowStart : sql`greatest(${windowStart}, toInt64(j) - ${cap})`;
    return sql`SELECT ${sampleColumns(since, true, historyStart)}
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
      const rows = await queryInChunks(list, (chunk) =>
        this.ch.query<{ item_id: string; title: string }>(
          sql`SELECT item_id, title FROM ${ident(ITEMS_TABLE)} FINAL
WHERE domain = ${domain} AND item_id IN (${joinSql(chunk.map((id) => sql`${id}`))})`,
        ),
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
