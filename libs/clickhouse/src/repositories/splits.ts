import {
  DomainSequence,
  EvaluationExample,
  Interaction,
  ItemPool,
  leaveOneOut,
  SplitOptions,
  timeWindowExample,
} from '@cprec/corpus';
import { ClickHouse } from '../client';
import { ident, rawSql, sql, SqlFragment } from '../sql';
import { ITEMS_TABLE } from './items';
import { DOMAIN_SEQUENCES_TABLE, SEQUENCER_WATERMARKS_TABLE } from './sequences';

export const EVAL_SPLITS_TABLE = 'eval_splits';
export const SPLIT_REFUSALS_TABLE = 'split_refusals';
export const EVAL_EXAMPLES_TABLE = 'eval_examples';

export type SplitKind = 'loo' | 'window';
/** Stored example kinds: leave-one-out test / validation, or time window. */
export type StoredExampleKind = 'loo-test' | 'loo-valid' | 'window';

export interface SplitRequest {
  splitId: string;
  kind: SplitKind;
  domains: readonly string[];
  /** The split's recorded seed (32-bit integer); per-example seeds derive from it. */
  seed: number;
  /** Time window [t0, t1) in epoch ms, for kind 'window'. */
  windowStartMs?: number;
  windowEndMs?: number;
  /** Negatives per example (default 19). */
  negatives?: number;
  /** Window splits: the target needs this many earlier items (default 1). */
  minHistory?: number;
  /** Users read per query while creating (default 2000). */
  chunkUsers?: number;
}

export interface StoredSplit {
  splitId: string;
  kind: SplitKind;
  domains: string[];
  seed: number;
  windowStartMs: number;
  windowEndMs: number;
  /** The sequencer watermark the split was cut at. */
  watermarkMs: number;
  examples: number;
  createdMs: number;
}

export interface StoredEvalExample {
  splitId: string;
  kind: StoredExampleKind;
  domain: string;
  userId: string;
  history: string[];
  target: string;
  targetEventId: string;
  targetTsMs: number;
  candidates: string[];
  seed: number;
  windowStartMs: number;
  windowEndMs: number;
}

export class SplitMismatchError extends Error {
  override readonly name = 'SplitMismatchError';
}

/**
 * A leave-one-out split would have no examples (its domains have no sequences yet, e.g. a
 * requester asked before the first events were sequenced). It is not frozen: frozen splits never
 * change, so an empty one would stay empty for good. Asking again later can succeed.
 */
export class EmptySplitError extends Error {
  override readonly name = 'EmptySplitError';
}

const KIND_OF: Record<EvaluationExample['kind'], StoredExampleKind> = {
  test: 'loo-test',
  validation: 'loo-valid',
  window: 'window',
};

interface SequenceRow {
  user_id: string;
  item_ids: string[];
  ts_ms: Array<string | number>;
  seqs: Array<string | number>;
  event_ids: string[];
}

function toDomainSequence(domain: string, r: SequenceRow): DomainSequence {
  const items: Interaction[] = r.item_ids.map((itemId, i) => ({
    eventId: r.event_ids[i],
    userId: r.user_id,
    itemId,
    domain,
    tsMs: Number(r.ts_ms[i]),
    seq: Number(r.seqs[i]),
  }));
  return { userId: r.user_id, domain, items };
}

/**
 * Frozen evaluation splits. The first request for a split id computes it — leave-one-out or
 * time-window examples from the current domain sequences, candidates drawn by libs/corpus with
 * per-example seeds derived from the split's recorded seed — and stores it; every later request
 * (any process, any round) reads the stored examples, so every model is scored on exactly the
 * same candidates. Users are streamed from ClickHouse in chunks; only one domain's item pool and
 * one chunk of sequences are in memory at a time.
 *
 * Writing is meant for one writer (the sequencer). Two concurrent creators of the same id would
 * write identical rows (the computation is deterministic for the same data), which the
 * ReplacingMergeTree collapses.
 */
export class EvalSplitRepository {
  constructor(private readonly ch: ClickHouse) {}

  /** The sequencer's answer to a request it will never fulfil (see migration 0004). */
  async recordRefusal(splitId: string, reason: string, requestTsMs: number): Promise<void> {
    await this.ch.insertJsonEachRow(SPLIT_REFUSALS_TABLE, [
      { split_id: splitId, reason, request_ts_ms: requestTsMs, refused_ms: Date.now() },
    ]);
  }

  /** The newest refusal of a request for `splitId` sent at or after `sinceRequestTsMs`, if any. */
  async refusalSince(splitId: string, sinceRequestTsMs: number): Promise<string | null> {
    const rows = await this.ch.query<{ reason: string }>(
      sql`SELECT reason FROM ${ident(SPLIT_REFUSALS_TABLE)} FINAL
WHERE split_id = ${splitId} AND request_ts_ms >= ${sinceRequestTsMs}
ORDER BY request_ts_ms DESC LIMIT 1`,
    );
    return rows[0]?.reason ?? null;
  }

  async getSplit(splitId: string): Promise<StoredSplit | undefined> {
    const rows = await this.ch.query<Record<string, string | number | string[]>>(
      sql`SELECT split_id, split_kind, domains, seed, window_start_ms, window_end_ms, watermark_ms, examples, created_ms
FROM ${ident(EVAL_SPLITS_TABLE)} FINAL WHERE split_id = ${splitId}`,
    );
    const r = rows[0];
    if (r === undefined) return undefined;
    return {
      splitId: String(r.split_id),
      kind: String(r.split_kind) as SplitKind,
      domains: r.domains as string[],
      seed: Number(r.seed),
      windowStartMs: Number(r.window_start_ms),
      windowEndMs: Number(r.window_end_ms),
      watermarkMs: Number(r.watermark_ms),
      examples: Number(r.examples),
      createdMs: Number(r.created_ms),
    };
  }

  /**
   * Returns the stored split, computing and storing it first if the id is new. A request that
   * names an existing id with a different definition is refused (ids are immutable).
   */
  async createIfAbsent(request: SplitRequest): Promise<{ split: StoredSplit; created: boolean }> {
    validateRequest(request);
    const existing = await this.getSplit(request.splitId);
    if (existing !== undefined) {
      assertSameDefinition(existing, request);
      return { split: existing, created: false };
    }
    const createdMs = Date.now();
    const [wm] = await this.ch.query<{ w: string }>(
      sql`SELECT max(watermark_ms) AS w FROM ${ident(SEQUENCER_WATERMARKS_TABLE)}`,
    );
    let examples = 0;
    for (const domain of request.domains) {
      examples += await this.createDomain(request, domain, createdMs);
    }
    if (examples === 0 && request.kind === 'loo')
      throw new EmptySplitError(
        `split ${request.splitId} would have no examples: no sequences of ${request.domains.join(', ')} yet`,
      );
    // Written last: a split whose row exists is complete (a crash before it leaves examples that
    // the next attempt rewrites identically).
    const split: StoredSplit = {
      splitId: request.splitId,
      kind: request.kind,
      domains: [...request.domains],
      seed: request.seed,
      windowStartMs: request.windowStartMs ?? 0,
      windowEndMs: request.windowEndMs ?? 0,
      watermarkMs: Number(wm?.w ?? 0),
      examples,
      createdMs,
    };
    await this.ch.insertJsonEachRow(EVAL_SPLITS_TABLE, [
      {
        split_id: split.splitId,
        split_kind: split.kind,
        domains: split.domains,
        seed: split.seed,
        window_start_ms: split.windowStartMs,
        window_end_ms: split.windowEndMs,
        watermark_ms: split.watermarkMs,
        examples: split.examples,
        created_ms: createdMs,
      },
    ]);
    return { split, created: true };
  }

  /** Examples of a split in a fixed order (domain, kind, user): identical on every read. */
  async readExamples(
    splitId: string,
    filter: { domain?: string; kind?: StoredExampleKind } = {},
  ): Promise<StoredEvalExample[]> {
    const out: StoredEvalExample[] = [];
    for await (const e of this.streamExamples(splitId, filter)) out.push(e);
    return out;
  }

  /** The same, in chunks of `chunk` examples (keyset pagination on the table's order). */
  async *streamExamples(
    splitId: string,
    filter: { domain?: string; kind?: StoredExampleKind; chunk?: number } = {},
  ): AsyncGenerator<StoredEvalExample> {
    const chunk = filter.chunk ?? 5000;
    const conditions: SqlFragment[] = [sql`split_id = ${splitId}`];
    if (filter.domain !== undefined) conditions.push(sql`domain = ${filter.domain}`);
    if (filter.kind !== undefined) conditions.push(sql`kind = ${filter.kind}`);
    let after: [string, string, string] | undefined;
    for (;;) {
      const keyset =
        after === undefined
          ? rawSql('')
          : sql`AND (domain, kind, user_id) > (${after[0]}, ${after[1]}, ${after[2]})`;
      const where = conditions.reduce((acc, c, i) => (i === 0 ? c : sql`${acc} AND ${c}`));
      const rows = await this.ch.query<Record<string, string | number | string[]>>(
        sql`SELECT split_id, kind, domain, user_id, history, target, target_event_id, target_ts_ms, candidates, seed,
  window_start_ms, window_end_ms
FROM ${ident(EVAL_EXAMPLES_TABLE)} FINAL
WHERE ${where} ${keyset}
ORDER BY domain, kind, user_id
LIMIT ${chunk}`,
      );
      for (const r of rows) {
        yield {
          splitId: String(r.split_id),
          kind: String(r.kind) as StoredExampleKind,
          domain: String(r.domain),
          userId: String(r.user_id),
          history: r.history as string[],
          target: String(r.target),
          targetEventId: String(r.target_event_id),
          targetTsMs: Number(r.target_ts_ms),
          candidates: r.candidates as string[],
          seed: Number(r.seed),
          windowStartMs: Number(r.window_start_ms),
          windowEndMs: Number(r.window_end_ms),
        };
      }
      if (rows.length < chunk) return;
      const last = rows[rows.length - 1];
      after = [String(last.domain), String(last.kind), String(last.user_id)];
    }
  }

  /**
   * The negative pool of a domain: its titled catalogue items when the catalogue has any (so
   * every candidate can be shown as text), otherwise every item seen in its interactions.
   */
  private async domainPool(domain: string): Promise<{ pool: ItemPool; titles: Map<string, string> }> {
    const catalogue = await this.ch.query<{ item_id: string; title: string }>(
      sql`SELECT item_id, title FROM ${ident(ITEMS_TABLE)} FINAL WHERE domain = ${domain} AND title != ''`,
    );
    const titles = new Map(catalogue.map((r) => [r.item_id, r.title]));
    if (titles.size > 0) return { pool: new ItemPool(domain, titles.keys()), titles };
    const seen = await this.ch.query<{ item_id: string }>(
      sql`SELECT DISTINCT arrayJoin(item_ids) AS item_id FROM ${ident(DOMAIN_SEQUENCES_TABLE)} FINAL WHERE domain = ${domain}`,
    );
    return {
      pool: new ItemPool(
        domain,
        seen.map((r) => r.item_id),
      ),
      titles,
    };
  }

  private async createDomain(request: SplitRequest, domain: string, createdMs: number): Promise<number> {
    const { pool, titles } = await this.domainPool(domain);
    const options: SplitOptions = {
      splitId: request.splitId,
      splitSeed: request.seed,
      domainItems: pool,
      ...(request.negatives !== undefined ? { negatives: request.negatives } : {}),
      ...(titles.size > 0 ? { titleOf: (id: string) => titles.get(id) } : {}),
    };
    const chunk = request.chunkUsers ?? 2000;
    let written = 0;
    let afterUser: string | undefined;
    for (;;) {
      const keyset = afterUser === undefined ? rawSql('') : sql`AND user_id > ${afterUser}`;
      const rows = await this.ch.query<SequenceRow>(
        sql`SELECT user_id, item_ids, ts_ms, seqs, event_ids FROM ${ident(DOMAIN_SEQUENCES_TABLE)} FINAL
WHERE domain = ${domain} ${keyset}
ORDER BY user_id
LIMIT ${chunk}`,
      );
      const examples: EvaluationExample[] = [];
      for (const row of rows) {
        const sequence = toDomainSequence(domain, row);
        if (request.kind === 'loo') {
          const split = leaveOneOut(sequence, options);
          if (split.validation !== undefined) examples.push(split.validation);
          if (split.test !== undefined) examples.push(split.test);
        } else {
          const e = timeWindowExample(sequence, {
            ...options,
            t0: request.windowStartMs ?? 0,
            t1: request.windowEndMs ?? 0,
            ...(request.minHistory !== undefined ? { minHistory: request.minHistory } : {}),
          });
          if (e !== undefined) examples.push(e);
        }
      }
      await this.ch.insertJsonEachRow(
        EVAL_EXAMPLES_TABLE,
        examples.map((e) => ({
          split_id: e.splitId,
          kind: KIND_OF[e.kind],
          domain: e.domain,
          user_id: e.userId,
          history: e.history,
          target: e.target,
          target_event_id: e.targetEventId,
          target_ts_ms: e.targetTsMs,
          candidates: e.candidates,
          seed: e.seed,
          window_start_ms: request.windowStartMs ?? 0,
          window_end_ms: request.windowEndMs ?? 0,
          created_ms: createdMs,
        })),
      );
      written += examples.length;
      if (rows.length < chunk) return written;
      afterUser = rows[rows.length - 1].user_id;
    }
  }
}

function validateRequest(r: SplitRequest): void {
  if (r.splitId.length === 0) throw new RangeError('splitId must not be empty');
  if (r.domains.length === 0) throw new RangeError(`split ${r.splitId}: domains must not be empty`);
  if (!Number.isInteger(r.seed) || r.seed < -2147483648 || r.seed > 2147483647)
    throw new RangeError(`split ${r.splitId}: seed must be a 32-bit integer, got ${r.seed}`);
  if (r.kind === 'window') {
    const { windowStartMs: t0, windowEndMs: t1 } = r;
    if (t0 === undefined || t1 === undefined || !(t0 < t1) || t0 < 0)
      throw new RangeError(`split ${r.splitId}: a window split needs 0 ≤ windowStartMs < windowEndMs`);
  }
}

function assertSameDefinition(existing: StoredSplit, r: SplitRequest): void {
  const same =
    existing.kind === r.kind &&
    existing.seed === r.seed &&
    existing.domains.join('\u0000') === r.domains.join('\u0000') &&
    existing.windowStartMs === (r.windowStartMs ?? 0) &&
    existing.windowEndMs === (r.windowEndMs ?? 0);
  if (!same) {
    throw new SplitMismatchError(
      `split ${r.splitId} already exists as ${JSON.stringify({
        kind: existing.kind,
        seed: existing.seed,
        domains: existing.domains,
        window: [existing.windowStartMs, existing.windowEndMs],
      })}; split ids are immutable, choose a new id`,
    );
  }
}
