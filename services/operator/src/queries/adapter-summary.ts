import type { EvaluationRecord, ServingEventRecord, StoredAdapter, StoredPromotion } from '@cprec/clickhouse';

export type AdapterStatus = 'serving' | 'promoted' | 'rejected' | 'pending';

/** An adapter as the dashboard's table shows it. */
export interface AdapterSummary extends StoredAdapter {
  /** HR@1 of the newest evaluation per domain. */
  hr1: Record<string, number>;
  /** Mean of `hr1` over its domains; null before any evaluation. */
  hr1_mean: number | null;
  /** `serving` while it serves at least one domain (`serving_domains`). */
  status: AdapterStatus;
  /** The target domains this adapter answers now (serving holds one adapter per domain). */
  serving_domains: string[];
  /** Reasons of the newest gate decision (empty while pending). */
  reasons: string[];
}

/**
 * Which domains each adapter serves, from `servingByDomain()`'s rows: a domain's own row names its
 * adapter; a legacy row (domain '', one adapter for every domain) gives its adapter its target
 * domains that have no row of their own ('*' when it names none). The base model is left out.
 */
export function servingDomainsByAdapter(
  assignments: readonly ServingEventRecord[],
  targetDomainsOf: (adapterId: string) => readonly string[] | undefined,
): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const add = (adapterId: string, domain: string) =>
    out.set(adapterId, [...(out.get(adapterId) ?? []), domain]);
  const own = new Set(assignments.filter((a) => a.domain !== '').map((a) => a.domain));
  for (const a of assignments) {
    if (a.adapter_id === 'base') continue;
    if (a.domain !== '') add(a.adapter_id, a.domain);
    else {
      const targets = targetDomainsOf(a.adapter_id) ?? [];
      const left = targets.filter((d) => !own.has(d));
      if (targets.length === 0) add(a.adapter_id, '*');
      for (const d of left) add(a.adapter_id, d);
    }
  }
  for (const domains of out.values()) domains.sort();
  return out;
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
  servingDomains: ReadonlyMap<string, readonly string[]>,
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
    const serving = [...(servingDomains.get(adapter.adapter_id) ?? [])];
    const status: AdapterStatus = serving.length > 0 ? 'serving' : (decision?.decision ?? 'pending');
    return {
      ...adapter,
      hr1,
      hr1_mean: values.length === 0 ? null : values.reduce((s, v) => s + v, 0) / values.length,
      status,
      serving_domains: serving,
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
