import { ClickHouse } from '../client';
import { inListChunks, queryInChunks } from '../in-list';
import { ident, joinSql, rawSql, sql, SqlFragment } from '../sql';

/**
 * Reads and writes the control-plane tables of migrations/0002 (rounds, round_steps, adapters,
 * evaluations, promotions, drift_series, drift_alerts, serving_events).
 *
 * One writer per table (DEVELOPERS.md):
 *   - trainer   → insertRoundState, insertRoundSteps, insertAdapter
 *   - evaluator → insertEvaluations, insertPromotion, insertDriftObservations, insertDriftAlert,
 *                 insertServingEvent (what serving publishes on cprec.serving-events.v1; serving is
 *                 read-only on ClickHouse)
 * Everybody (chiefly the operator) reads.
 *
 * Conventions: every timestamp is epoch milliseconds (`*_ms`); the DateTime column next to it is
 * derived here. 64-bit integers arrive from ClickHouse as strings and are converted to numbers.
 * A loss or learning rate that is not known yet is `null`; it is stored as NaN (the Float64
 * columns are not Nullable) and read back as `null`.
 */

export const CONTROL_PLANE_TABLES = {
  rounds: 'rounds',
  roundSteps: 'round_steps',
  adapters: 'adapters',
  evaluations: 'evaluations',
  promotions: 'promotions',
  driftSeries: 'drift_series',
  driftAlerts: 'drift_alerts',
  servingEvents: 'serving_events',
} as const;

const MAX_DATETIME_SECONDS = 4294967295;

function checkMs(value: number, what: string): number {
  if (!Number.isSafeInteger(value) || value < 0 || Math.floor(value / 1000) > MAX_DATETIME_SECONDS) {
    throw new RangeError(`${what} ${value} must be epoch milliseconds within 1970..2106`);
  }
  return value;
}

const seconds = (ms: number): number => Math.floor(ms / 1000);

/**
 * A nullable float for JSONEachRow: the string "nan" is read as NaN by 18.16 and by current
 * servers alike (a JSON null would become 0 on servers with input_format_null_as_default).
 */
function storeNullable(value: number | null): number | string {
  return value === null || Number.isNaN(value) ? 'nan' : value;
}

/** NaN is written as JSON null by ClickHouse (and "nan" by some settings); both mean unknown. */
function readNullable(value: number | string | null): number | null {
  if (value === null) return null;
  const n = typeof value === 'number' ? value : Number(value);
  return Number.isNaN(n) ? null : n;
}

function inList(column: string, values: readonly string[]): SqlFragment {
  if (values.length === 0) return rawSql('0');
  return sql`${ident(column)} IN (${joinSql(values.map((v) => sql`${v}`))})`;
}

function where(conditions: readonly SqlFragment[]): SqlFragment {
  return conditions.length === 0 ? rawSql('') : sql`WHERE ${joinSql(conditions, ' AND ')}`;
}

function limit(n: number | undefined, fallback: number): SqlFragment {
  const value = n ?? fallback;
  if (!Number.isSafeInteger(value) || value < 1)
    throw new RangeError(`limit ${value} must be a positive integer`);
  return sql`LIMIT ${value}`;
}

// ---------------------------------------------------------------------------------------------
// Row types
// ---------------------------------------------------------------------------------------------

/**
 * One state of a round (table `rounds`, written by the trainer). Insert a new row on every state
 * change and periodically with progress; the row with the highest `version` is the round's
 * current state. `version` defaults to `updated_ms`, so write rows with increasing times.
 */
export interface RoundStateRecord {
  round_id: string;
  /** One of ROUND_STATES in @cprec/contracts: queued, warmup, stable, annealing, fine_tuning, published, failed, cancelled. */
  state: string;
  step: number;
  total_steps: number;
  loss: number | null;
  lr: number | null;
  message: string;
  target_domains: readonly string[];
  requested_by: string;
  /** When the round was queued; the same in every row of a round. */
  created_ms: number;
  updated_ms: number;
  /** Defaults to updated_ms; must grow with every new row of the round. */
  version?: number;
}

export type StoredRoundState = Omit<RoundStateRecord, 'version' | 'target_domains'> & {
  target_domains: string[];
  version: number;
};

/** One training step of a round (table `round_steps`, written by the trainer). */
export interface RoundStepRecord {
  round_id: string;
  /** warmup | stable | annealing | fine_tuning */
  phase: string;
  step: number;
  loss: number;
  lr: number;
  /** Tokens trained on in this step (0 when unknown). */
  tokens: number;
  ts_ms: number;
}

/** An adapter the trainer wrote (table `adapters`), mirrors AdapterEvent 'published'. */
export interface AdapterRecord {
  adapter_id: string;
  /** cpt | sft */
  adapter_kind: string;
  round_id: string;
  target_domains: readonly string[];
  uri: string;
  sha256: string;
  /** AdapterLineage from @cprec/contracts (stored as a JSON string). */
  lineage: Record<string, unknown>;
  created_ms: number;
}

export type StoredAdapter = Omit<AdapterRecord, 'target_domains'> & { target_domains: string[] };

/** One offline evaluation (table `evaluations`, written by the evaluator and `cprec eval`). */
export interface EvaluationRecord {
  evaluation_id: string;
  adapter_id: string;
  /** Identifies the frozen split (e.g. `games/test@<watermark>`). */
  split_id: string;
  domain: string;
  /** How candidates were ranked, e.g. `generate` (greedy + title matching) or `likelihood`. */
  method: string;
  samples: number;
  /** correct / total */
  hr1: number;
  /** correct / valid (LLaRA's definition) */
  hr1_valid: number;
  valid_ratio: number;
  hr3: number;
  hr5: number;
  ndcg3: number;
  ndcg5: number;
  /** Anything else worth keeping (per-bucket metrics…), stored as a JSON string. */
  report: Record<string, unknown>;
  created_ms: number;
}

/** A gate decision (table `promotions`, written by the evaluator). */
export interface PromotionRecord {
  adapter_id: string;
  decision: 'promoted' | 'rejected';
  reasons: readonly string[];
  /** HR@1 per domain that the decision was based on. */
  hr1: Record<string, number>;
  ts_ms: number;
}

export type StoredPromotion = Omit<PromotionRecord, 'reasons'> & { reasons: string[] };

/** One HR@1 observation of the serving adapter on a time window (table `drift_series`). */
export interface DriftObservationRecord {
  adapter_id: string;
  domain: string;
  window_start_ms: number;
  window_end_ms: number;
  hr1: number;
  samples: number;
  ts_ms: number;
}

/** A drift alert raised by the evaluator (table `drift_alerts`). */
export interface DriftAlertRecord {
  adapter_id: string;
  domain: string;
  hr1: number;
  baseline_hr1: number;
  relative_drop: number;
  samples: number;
  refresh_requested: boolean;
  ts_ms: number;
}

/**
 * What serving did (table `serving_events`: serving publishes each event on
 * `cprec.serving-events.v1`, the evaluator stores it). The sorting key (ts_ms, event, adapter_id,
 * domain) is an event's identity: a redelivered message is the same row, collapsed by FINAL, which
 * every read here uses.
 *   - `switch`: `adapter_id` started serving in place of `previous_adapter_id` (hot swap);
 *   - `rollback`: the same, requested by an operator;
 *   - `load_failed`: `adapter_id` was refused at load (detail says why), the old one kept serving.
 */
export const SERVING_EVENT_KINDS = ['switch', 'rollback', 'load_failed'] as const;
export type ServingEventKind = (typeof SERVING_EVENT_KINDS)[number];
/** The event kinds after which `adapter_id` is the one serving. */
const SWITCHING_EVENTS: readonly ServingEventKind[] = ['switch', 'rollback'];

export interface ServingEventRecord {
  event: ServingEventKind;
  /**
   * The target domain the event applies to (serving holds one adapter per domain). '' on rows
   * written before migrations/0005, when one adapter served every domain: read as "every domain"
   * (see `servingOf`).
   */
  domain: string;
  adapter_id: string;
  /** '' when nothing was serving before. */
  previous_adapter_id: string;
  detail: string;
  ts_ms: number;
}

/**
 * The switch or rollback that decides what serves `domain`, among `servingByDomain()`'s rows: the
 * domain's own row, else a legacy row (domain '', written when one adapter served every domain).
 * Per-domain rows are always newer than legacy ones (the column came with per-domain serving), so
 * the domain's own row wins. Null: nothing was ever switched in for the domain (the base serves).
 */
export function servingOf(
  assignments: readonly ServingEventRecord[],
  domain: string,
): ServingEventRecord | null {
  return assignments.find((a) => a.domain === domain) ?? assignments.find((a) => a.domain === '') ?? null;
}

export interface EvaluationFilter {
  adapterIds?: readonly string[];
  domain?: string;
  limit?: number;
}

export interface DriftFilter {
  domain?: string;
  /** Inclusive lower bound on window_end_ms. */
  fromMs?: number;
  limit?: number;
}

// ---------------------------------------------------------------------------------------------
// Repository
// ---------------------------------------------------------------------------------------------

interface RoundRow {
  round_id: string;
  state: string;
  step: string;
  total_steps: string;
  loss: number | string | null;
  lr: number | string | null;
  message: string;
  target_domains: string[];
  requested_by: string;
  created_ms: string;
  updated_ms: string;
  version: string;
}

const ROUND_COLUMNS = rawSql(
  'round_id, state, step, total_steps, loss, lr, message, target_domains, requested_by, created_ms, updated_ms, version',
);

function toRound(r: RoundRow): StoredRoundState {
  return {
    round_id: r.round_id,
    state: r.state,
    step: Number(r.step),
    total_steps: Number(r.total_steps),
    loss: readNullable(r.loss),
    lr: readNullable(r.lr),
    message: r.message,
    target_domains: r.target_domains,
    requested_by: r.requested_by,
    created_ms: Number(r.created_ms),
    updated_ms: Number(r.updated_ms),
    version: Number(r.version),
  };
}

interface AdapterRow {
  adapter_id: string;
  adapter_kind: string;
  round_id: string;
  target_domains: string[];
  uri: string;
  sha256: string;
  lineage: string;
  created_ms: string;
}

const toAdapter = (r: AdapterRow): StoredAdapter => ({
  adapter_id: r.adapter_id,
  adapter_kind: r.adapter_kind,
  round_id: r.round_id,
  target_domains: r.target_domains,
  uri: r.uri,
  sha256: r.sha256,
  lineage: JSON.parse(r.lineage) as Record<string, unknown>,
  created_ms: Number(r.created_ms),
});

export class ControlPlaneRepository {
  constructor(private readonly ch: ClickHouse) {}

  // ----- trainer ------------------------------------------------------------------------------

  async insertRoundState(record: RoundStateRecord): Promise<void> {
    const updated = checkMs(record.updated_ms, `round ${record.round_id}: updated_ms`);
    await this.ch.insertJsonEachRow(CONTROL_PLANE_TABLES.rounds, [
      {
        round_id: record.round_id,
        state: record.state,
        step: record.step,
        total_steps: record.total_steps,
        loss: storeNullable(record.loss),
        lr: storeNullable(record.lr),
        message: record.message,
        target_domains: [...record.target_domains],
        requested_by: record.requested_by,
        created_ms: checkMs(record.created_ms, `round ${record.round_id}: created_ms`),
        updated_ms: updated,
        updated_at: seconds(updated),
        version: record.version ?? updated,
      },
    ]);
  }

  async insertRoundSteps(records: readonly RoundStepRecord[]): Promise<void> {
    await this.ch.insertJsonEachRow(
      CONTROL_PLANE_TABLES.roundSteps,
      records.map((r) => ({
        ...r,
        ts_ms: checkMs(r.ts_ms, `round ${r.round_id} step ${r.step}: ts_ms`),
        ts: seconds(r.ts_ms),
      })),
    );
  }

  async insertAdapter(record: AdapterRecord): Promise<void> {
    await this.ch.insertJsonEachRow(CONTROL_PLANE_TABLES.adapters, [
      {
        adapter_id: record.adapter_id,
        adapter_kind: record.adapter_kind,
        round_id: record.round_id,
        target_domains: [...record.target_domains],
        uri: record.uri,
        sha256: record.sha256,
        lineage: JSON.stringify(record.lineage),
        created_ms: checkMs(record.created_ms, `adapter ${record.adapter_id}: created_ms`),
        created_at: seconds(record.created_ms),
      },
    ]);
  }

  // ----- evaluator ----------------------------------------------------------------------------

  async insertEvaluations(records: readonly EvaluationRecord[]): Promise<void> {
    await this.ch.insertJsonEachRow(
      CONTROL_PLANE_TABLES.evaluations,
      records.map((r) => ({
        ...r,
        report: JSON.stringify(r.report),
        created_ms: checkMs(r.created_ms, `evaluation ${r.evaluation_id}: created_ms`),
        created_at: seconds(r.created_ms),
      })),
    );
  }

  async insertPromotion(record: PromotionRecord): Promise<void> {
    await this.ch.insertJsonEachRow(CONTROL_PLANE_TABLES.promotions, [
      {
        adapter_id: record.adapter_id,
        decision: record.decision,
        reasons: JSON.stringify(record.reasons),
        hr1: JSON.stringify(record.hr1),
        ts_ms: checkMs(record.ts_ms, `promotion of ${record.adapter_id}: ts_ms`),
        ts: seconds(record.ts_ms),
      },
    ]);
  }

  async insertDriftObservations(records: readonly DriftObservationRecord[]): Promise<void> {
    await this.ch.insertJsonEachRow(
      CONTROL_PLANE_TABLES.driftSeries,
      records.map((r) => ({
        ...r,
        ts_ms: checkMs(r.ts_ms, 'drift observation ts_ms'),
        ts: seconds(r.ts_ms),
      })),
    );
  }

  async insertDriftAlert(record: DriftAlertRecord): Promise<void> {
    await this.ch.insertJsonEachRow(CONTROL_PLANE_TABLES.driftAlerts, [
      {
        ...record,
        refresh_requested: record.refresh_requested ? 1 : 0,
        ts_ms: checkMs(record.ts_ms, 'drift alert ts_ms'),
        ts: seconds(record.ts_ms),
      },
    ]);
  }

  // ----- serving ------------------------------------------------------------------------------

  /** Idempotent for what reads see: the same record again collapses under FINAL (same sorting key). */
  async insertServingEvent(record: ServingEventRecord): Promise<void> {
    await this.ch.insertJsonEachRow(CONTROL_PLANE_TABLES.servingEvents, [
      { ...record, ts_ms: checkMs(record.ts_ms, 'serving event ts_ms'), ts: seconds(record.ts_ms) },
    ]);
  }

  // ----- reads --------------------------------------------------------------------------------

  /** Current state of the newest rounds (newest first). */
  async listRounds(options: { limit?: number } = {}): Promise<StoredRoundState[]> {
    const rows = await this.ch.query<RoundRow>(
      sql`SELECT ${ROUND_COLUMNS} FROM ${ident(CONTROL_PLANE_TABLES.rounds)} FINAL
ORDER BY created_ms DESC, round_id DESC ${limit(options.limit, 50)}`,
    );
    return rows.map(toRound);
  }

  async getRound(roundId: string): Promise<StoredRoundState | null> {
    const rows = await this.ch.query<RoundRow>(
      sql`SELECT ${ROUND_COLUMNS} FROM ${ident(CONTROL_PLANE_TABLES.rounds)} FINAL WHERE round_id = ${roundId}`,
    );
    return rows.length === 0 ? null : toRound(rows[0]);
  }

  /** Training curve of a round in step order (the newest write of a step wins). */
  async listRoundSteps(roundId: string, options: { limit?: number } = {}): Promise<RoundStepRecord[]> {
    const rows = await this.ch.query<{
      round_id: string;
      phase: string;
      step: string;
      loss: number | string | null;
      lr: number | string | null;
      tokens: string;
      ts_ms: string;
    }>(
      sql`SELECT round_id, phase, step, loss, lr, tokens, ts_ms FROM ${ident(CONTROL_PLANE_TABLES.roundSteps)} FINAL
WHERE round_id = ${roundId} ORDER BY step, ts_ms ${limit(options.limit, 100_000)}`,
    );
    return rows.map((r) => ({
      round_id: r.round_id,
      phase: r.phase,
      step: Number(r.step),
      loss: readNullable(r.loss) ?? Number.NaN,
      lr: readNullable(r.lr) ?? Number.NaN,
      tokens: Number(r.tokens),
      ts_ms: Number(r.ts_ms),
    }));
  }

  /** Newest adapters first. */
  async listAdapters(options: { limit?: number; roundId?: string } = {}): Promise<StoredAdapter[]> {
    const conditions = options.roundId === undefined ? [] : [sql`round_id = ${options.roundId}`];
    const rows = await this.ch.query<AdapterRow>(
      sql`SELECT adapter_id, adapter_kind, round_id, target_domains, uri, sha256, lineage, created_ms
FROM ${ident(CONTROL_PLANE_TABLES.adapters)} FINAL ${where(conditions)}
ORDER BY created_ms DESC, adapter_id ${limit(options.limit, 200)}`,
    );
    return rows.map(toAdapter);
  }

  async getAdapter(adapterId: string): Promise<StoredAdapter | null> {
    const rows = await this.ch.query<AdapterRow>(
      sql`SELECT adapter_id, adapter_kind, round_id, target_domains, uri, sha256, lineage, created_ms
FROM ${ident(CONTROL_PLANE_TABLES.adapters)} FINAL WHERE adapter_id = ${adapterId}`,
    );
    return rows.length === 0 ? null : toAdapter(rows[0]);
  }

  /** Evaluations, newest first, optionally of some adapters and/or one domain. */
  async listEvaluations(filter: EvaluationFilter = {}): Promise<EvaluationRecord[]> {
    // A long id list is queried in bounded chunks, merged in the same order.
    if (filter.adapterIds !== undefined && inListChunks(filter.adapterIds).length > 1)
      return queryInChunks(
        filter.adapterIds,
        (chunk) => this.listEvaluations({ ...filter, adapterIds: chunk }),
        {
          order: (a, b) => b.created_ms - a.created_ms || (a.evaluation_id < b.evaluation_id ? -1 : 1),
          limit: filter.limit ?? 1000,
        },
      );
    const conditions: SqlFragment[] = [];
    if (filter.adapterIds !== undefined) conditions.push(inList('adapter_id', filter.adapterIds));
    if (filter.domain !== undefined) conditions.push(sql`domain = ${filter.domain}`);
    const rows = await this.ch.query<
      Omit<EvaluationRecord, 'samples' | 'created_ms' | 'report'> & {
        samples: string;
        created_ms: string;
        report: string;
      }
    >(
      sql`SELECT evaluation_id, adapter_id, split_id, domain, method, samples, hr1, hr1_valid, valid_ratio,
hr3, hr5, ndcg3, ndcg5, report, created_ms
FROM ${ident(CONTROL_PLANE_TABLES.evaluations)} FINAL ${where(conditions)}
ORDER BY created_ms DESC, evaluation_id ${limit(filter.limit, 1000)}`,
    );
    return rows.map((r) => ({
      ...r,
      samples: Number(r.samples),
      report: JSON.parse(r.report) as Record<string, unknown>,
      created_ms: Number(r.created_ms),
    }));
  }

  /** Gate decisions, newest first. */
  async listPromotions(
    options: { adapterIds?: readonly string[]; limit?: number } = {},
  ): Promise<StoredPromotion[]> {
    if (options.adapterIds !== undefined && inListChunks(options.adapterIds).length > 1)
      return queryInChunks(
        options.adapterIds,
        (chunk) => this.listPromotions({ ...options, adapterIds: chunk }),
        {
          order: (a, b) => b.ts_ms - a.ts_ms,
          limit: options.limit ?? 1000,
        },
      );
    const conditions = options.adapterIds === undefined ? [] : [inList('adapter_id', options.adapterIds)];
    const rows = await this.ch.query<{
      adapter_id: string;
      decision: 'promoted' | 'rejected';
      reasons: string;
      hr1: string;
      ts_ms: string;
    }>(
      sql`SELECT adapter_id, decision, reasons, hr1, ts_ms FROM ${ident(CONTROL_PLANE_TABLES.promotions)} FINAL
${where(conditions)} ORDER BY ts_ms DESC ${limit(options.limit, 1000)}`,
    );
    return rows.map((r) => ({
      adapter_id: r.adapter_id,
      decision: r.decision,
      reasons: JSON.parse(r.reasons) as string[],
      hr1: JSON.parse(r.hr1) as Record<string, number>,
      ts_ms: Number(r.ts_ms),
    }));
  }

  /** HR@1 time series (oldest first), per domain when `domain` is omitted. */
  async driftSeries(filter: DriftFilter = {}): Promise<DriftObservationRecord[]> {
    const conditions: SqlFragment[] = [];
    if (filter.domain !== undefined) conditions.push(sql`domain = ${filter.domain}`);
    if (filter.fromMs !== undefined) conditions.push(sql`window_end_ms >= ${filter.fromMs}`);
    // The newest `limit` points, returned oldest first for plotting.
    const rows = await this.ch.query<{
      adapter_id: string;
      domain: string;
      window_start_ms: string;
      window_end_ms: string;
      hr1: number;
      samples: string;
      ts_ms: string;
    }>(
      sql`SELECT * FROM (
SELECT adapter_id, domain, window_start_ms, window_end_ms, hr1, samples, ts_ms
FROM ${ident(CONTROL_PLANE_TABLES.driftSeries)} FINAL ${where(conditions)}
ORDER BY window_end_ms DESC, domain, adapter_id ${limit(filter.limit, 10_000)}
) ORDER BY window_end_ms, domain, adapter_id`,
    );
    return rows.map((r) => ({
      adapter_id: r.adapter_id,
      domain: r.domain,
      window_start_ms: Number(r.window_start_ms),
      window_end_ms: Number(r.window_end_ms),
      hr1: r.hr1,
      samples: Number(r.samples),
      ts_ms: Number(r.ts_ms),
    }));
  }

  /** Drift alerts, newest first. */
  async listDriftAlerts(filter: DriftFilter = {}): Promise<DriftAlertRecord[]> {
    const conditions: SqlFragment[] = [];
    if (filter.domain !== undefined) conditions.push(sql`domain = ${filter.domain}`);
    if (filter.fromMs !== undefined) conditions.push(sql`ts_ms >= ${filter.fromMs}`);
    const rows = await this.ch.query<{
      adapter_id: string;
      domain: string;
      hr1: number;
      baseline_hr1: number;
      relative_drop: number;
      samples: string;
      refresh_requested: number | string;
      ts_ms: string;
    }>(
      sql`SELECT adapter_id, domain, hr1, baseline_hr1, relative_drop, samples, refresh_requested, ts_ms
FROM ${ident(CONTROL_PLANE_TABLES.driftAlerts)} FINAL ${where(conditions)}
ORDER BY ts_ms DESC ${limit(filter.limit, 1000)}`,
    );
    return rows.map((r) => ({
      adapter_id: r.adapter_id,
      domain: r.domain,
      hr1: r.hr1,
      baseline_hr1: r.baseline_hr1,
      relative_drop: r.relative_drop,
      samples: Number(r.samples),
      refresh_requested: Number(r.refresh_requested) === 1,
      ts_ms: Number(r.ts_ms),
    }));
  }

  /** Serving events, newest first. */
  async listServingEvents(options: { limit?: number } = {}): Promise<ServingEventRecord[]> {
    const rows = await this.ch.query<Omit<ServingEventRecord, 'ts_ms'> & { ts_ms: string }>(
      sql`SELECT event, domain, adapter_id, previous_adapter_id, detail, ts_ms FROM ${ident(CONTROL_PLANE_TABLES.servingEvents)} FINAL
ORDER BY ts_ms DESC, event, adapter_id, domain ${limit(options.limit, 50)}`,
    );
    return rows.map((r) => ({ ...r, ts_ms: Number(r.ts_ms) }));
  }

  /**
   * What serves each domain: per domain, the latest switch or rollback (newest first). A row with
   * domain '' is a legacy one (before per-domain serving) standing for every domain without a row
   * of its own — read a domain's adapter with `servingOf`.
   */
  async servingByDomain(): Promise<ServingEventRecord[]> {
    // LIMIT 1 BY (18.16 has no window functions): the newest switching row of each domain.
    const rows = await this.ch.query<Omit<ServingEventRecord, 'ts_ms'> & { ts_ms: string }>(
      sql`SELECT event, domain, adapter_id, previous_adapter_id, detail, ts_ms FROM ${ident(CONTROL_PLANE_TABLES.servingEvents)} FINAL
WHERE ${inList('event', SWITCHING_EVENTS)} ORDER BY ts_ms DESC, domain LIMIT 1 BY domain`,
    );
    return rows.map((r) => ({ ...r, ts_ms: Number(r.ts_ms) }));
  }
}
