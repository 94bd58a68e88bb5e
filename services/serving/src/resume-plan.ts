import { servingOf, type PromotionRecord, type ServingEventRecord } from '@cprec/clickhouse';

/**
 * What served each domain, from the table and from the topic: `serving_events` rows
 * (`servingByDomain`: per domain its latest switch or rollback, newest first) merged with the
 * switches and rollbacks read back from `cprec.serving-events.v1` (`readServingEvents`, topic
 * order), which the evaluator stores asynchronously — an event published just before a restart
 * may not be in the table yet. Per domain the newest wins (on equal times the later on the topic:
 * the same event, or one published after it); the result has servingByDomain's shape.
 */
export function mergeAssignments(
  stored: readonly ServingEventRecord[],
  published: readonly ServingEventRecord[],
): ServingEventRecord[] {
  const latest = new Map<string, ServingEventRecord>();
  for (const e of [...stored, ...published]) {
    if (e.event === 'load_failed') continue;
    const seen = latest.get(e.domain);
    if (!seen || e.ts_ms >= seen.ts_ms) latest.set(e.domain, e);
  }
  return [...latest.values()].sort((a, b) => b.ts_ms - a.ts_ms || a.domain.localeCompare(b.domain));
}

/** What a domain resumes at start, and from which record. */
export interface ResumeStep {
  domain: string;
  adapterId: string;
  /** `served`: what a replica last switched in (serving_events); `promoted`: the gate's newer decision. */
  source: 'served' | 'promoted';
  /** For a promotion: what a replica last served there, resumed if the promoted one cannot be. */
  fallbackAdapterId?: string;
}

/**
 * Per domain, the adapter serving resumes at start: the newer of what a replica last switched in
 * for it (`serving_events`, any replica) and the domain's latest promotion (`promotions`, a domain
 * being one the decision's HR@1 names). Serving reads adapter events from the end of its topic, so
 * without the promotions a replica that starts after a promotion — its first start, or its group's
 * offsets expired — would serve the base model there until the next one. A rollback (or any
 * switch) newer than the promotion wins, so resuming never undoes it. `domains` are further
 * domains to consider (a legacy row's adapter's domains). Domains resuming the base are left out.
 */
export function resumePlan(
  assignments: readonly ServingEventRecord[],
  promotions: ReadonlyArray<Pick<PromotionRecord, 'adapter_id' | 'decision' | 'hr1' | 'ts_ms'>>,
  domains: Iterable<string> = [],
): ResumeStep[] {
  const promoted = new Map<string, { adapterId: string; ts: number }>();
  for (const p of promotions) {
    if (p.decision !== 'promoted') continue;
    for (const domain of Object.keys(p.hr1)) {
      const seen = promoted.get(domain);
      if (!seen || p.ts_ms > seen.ts) promoted.set(domain, { adapterId: p.adapter_id, ts: p.ts_ms });
    }
  }
  const all = new Set<string>([
    ...assignments.map((a) => a.domain).filter((d) => d !== ''),
    ...domains,
    ...promoted.keys(),
  ]);
  const plan: ResumeStep[] = [];
  for (const domain of [...all].sort()) {
    const last = servingOf(assignments, domain);
    const promotion = promoted.get(domain);
    const step: ResumeStep | null =
      promotion && (!last || promotion.ts > last.ts_ms)
        ? {
            domain,
            adapterId: promotion.adapterId,
            source: 'promoted',
            ...(last && last.adapter_id !== 'base' ? { fallbackAdapterId: last.adapter_id } : {}),
          }
        : last
          ? { domain, adapterId: last.adapter_id, source: 'served' }
          : null;
    if (step && step.adapterId !== 'base') plan.push(step);
  }
  return plan;
}
