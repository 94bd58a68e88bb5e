import { ClickHouse, ident, INTERACTIONS_TABLE, sql } from '@cprec/clickhouse';

/**
 * The stream's clock as seen from the wall clock: for moments of ingestion, the newest event time
 * ingested by then. It places wall-clock happenings (a round starting, a promotion, an alert) on
 * the event-time axis of the HR@1 series, so a replay at an accelerated clock — or a platform
 * catching up on a backlog — shows them where the stream was when they happened.
 */
export interface StreamTimeline {
  /** Ingestion moments (ms, ascending) and the newest event time (ms) ingested up to each. */
  readonly points: ReadonlyArray<{ wallMs: number; streamMs: number }>;
  readonly interactions: number;
}

export const STREAM_CLOCK = Symbol('STREAM_CLOCK');

export interface StreamClockPort {
  timeline(): Promise<StreamTimeline>;
}

/** At most this many points: ingestion seconds are merged into coarser buckets beyond it. */
const MAX_POINTS = 4000;

export class ClickHouseStreamClock implements StreamClockPort {
  constructor(private readonly ch: ClickHouse) {}

  async timeline(): Promise<StreamTimeline> {
    const table = ident(INTERACTIONS_TABLE);
    const [range] = await this.ch.query<{ n: string; lo: string; hi: string }>(
      sql`SELECT count() AS n, min(toUInt32(ingested_at)) AS lo, max(toUInt32(ingested_at)) AS hi FROM ${table}`,
    );
    const n = Number(range?.n ?? 0);
    if (n === 0) return { points: [], interactions: 0 };
    const bucket = Math.max(1, Math.ceil((Number(range!.hi) - Number(range!.lo) + 1) / MAX_POINTS));
    const rows = await this.ch.query<{ b: string; t: string }>(
      sql`SELECT intDiv(toUInt32(ingested_at), ${bucket}) AS b, max(ts_ms) AS t FROM ${table} GROUP BY b ORDER BY b`,
    );
    return {
      points: runningMax(
        rows.map((r) => ({ wallMs: (Number(r.b) + 1) * bucket * 1000 - 1, streamMs: Number(r.t) })),
      ),
      interactions: n,
    };
  }
}

/** Each point's stream time becomes the newest up to it (late events never move the clock back). */
export function runningMax(
  points: ReadonlyArray<{ wallMs: number; streamMs: number }>,
): Array<{ wallMs: number; streamMs: number }> {
  let top = -Infinity;
  return points.map((p) => ({ wallMs: p.wallMs, streamMs: (top = Math.max(top, p.streamMs)) }));
}

/**
 * Where the stream was at wall time `wallMs`: the newest event time ingested by then; null before
 * the first ingestion.
 */
export function streamTimeAt(timeline: StreamTimeline, wallMs: number): number | null {
  const points = timeline.points;
  let lo = 0;
  let hi = points.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (points[mid]!.wallMs <= wallMs) {
      found = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return found < 0 ? null : points[found]!.streamMs;
}
