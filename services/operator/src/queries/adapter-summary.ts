import type { EvaluationRecord, StoredAdapter, StoredPromotion } from '@cprec/clickhouse';

export type AdapterStatus = 'serving' | 'promoted' | 'rejected' | 'pending';

/** An adapter as the dashboard's table shows it. */
export interface AdapterSummary extends StoredAdapter {
  /** HR@1 of the newest evaluation per domain. */
  hr1: Record<string, number>;
  /** Mean of `hr1` over its domains; null before any evaluation. */
  hr1_mean: number | null;
  status: AdapterStatus;
  /** Reasons of the newest gate decision (empty while pending). */
  reasons: string[];
}

/**
 * Joins adapters with their evaluations and gate decisions in memory: the three tables have
 * different writers and engines, and the operator reads at most a few hundred adapters, so one
 * query each plus this join is simpler than a three-way JOIN that must also work on 18.16.
 */
export function summariseAdapters(
  adapters: readonly StoredAdapter[],
  evaluations: readonly EvaluationRecord[],
  promotions: readonly StoredPromotion[],
  servingAdapterId: string | null,
): AdapterSummary[] {
  const newestEval = new Map<string, Map<string, EvaluationRecord>>();
  for (const e of evaluations) {
    const byDomain = newestEval.get(e.adapter_id) ?? new Map<string, EvaluationRecord>();
    const seen = byDomain.get(e.domain);
    if (seen === undefined || e.created_ms > seen.created_ms) byDomain.set(e.domain, e);
    newestEval.set(e.adapter_id, byDomain);
  }
  const newestDecision = new Map<string, StoredPromotion>();
  for (const p of promotions) {
    const seen = newestDecision.get(p.adapter_id);
    if (seen === undefined || p.ts_ms > seen.ts_ms) newestDecision.set(p.adapter_id, p);
  }
  return adapters.map((adapter) => {
    const hr1: Record<string, number> = {};
    for (const [domain, e] of [
      ...(newestEval.get(adapter.adapter_id) ?? new Map<string, EvaluationRecord>()),
    ].sort(([a], [b]) => a.localeCompare(b))) {
      hr1[domain] = e.hr1;
    }
    const values = Object.values(hr1);
    const decision = newestDecision.get(adapter.adapter_id);
    const status: AdapterStatus =
      adapter.adapter_id === servingAdapterId ? 'serving' : (decision?.decision ?? 'pending');
    return {
      ...adapter,
      hr1,
      hr1_mean: values.length === 0 ? null : values.reduce((s, v) => s + v, 0) / values.length,
      status,
      reasons: decision?.reasons ?? [],
    };
  });
}

/**
 * Thins a curve to at most `maxPoints` by keeping every k-th point and always the last one, so a
 * long round's chart stays cheap to poll; the points kept are real measurements, not averages.
 */
export function thin<T>(points: readonly T[], maxPoints: number): T[] {
  if (points.length <= maxPoints) return [...points];
  const stride = Math.ceil(points.length / maxPoints);
  const kept = points.filter((_, i) => i % stride === 0);
  const last = points[points.length - 1];
  if (kept[kept.length - 1] !== last) {
    if (kept.length >= maxPoints) kept[kept.length - 1] = last;
    else kept.push(last);
  }
  return kept;
}
