import { createHash } from 'node:crypto';
import { servingOf } from '@cprec/clickhouse';
import type { EvaluationCase } from '@cprec/training';
import { metricOf } from '../evaluation/metrics';
import type { EvaluationJob, EvaluationMethod } from '../evaluation/protocol';
import {
  BASE_MODEL_ADAPTER_ID,
  type ArtefactPort,
  type Clock,
  type ControlPlanePort,
  type EvaluationRunner,
  type EventsPort,
  type InteractionsPort,
  type JobSettings,
  type SplitPort,
} from '../ports';
import type { DriftAlert, DriftMonitor } from './drift-monitor';

export interface DriftWatchSettings {
  /** Event-time window length W; windows are aligned to multiples of W. */
  windowMs: number;
  splitSeed: number;
  /** Domains watched when the serving adapter's record names none. */
  defaultDomains: readonly string[];
  maxExamples: number;
  method: EvaluationMethod;
  job: JobSettings;
}

export type DriftTick =
  | { kind: 'idle'; reason: string }
  | {
      kind: 'observed';
      /** The adapter(s) evaluated, comma-separated when domains are served by different ones. */
      adapterId: string;
      windowStartMs: number;
      windowEndMs: number;
      observations: Array<{ domain: string; adapterId: string; hr1: number; samples: number }>;
      alerts: DriftAlert[];
    };

/**
 * The id of a window split: readable when short, hashed when the domain list is long (split ids
 * are at most 128 characters). Same domains, bounds and seed → same id, so the sequencer freezes
 * each window once however often it is asked.
 */
export function windowSplitId(domains: readonly string[], t0: number, t1: number, seed: number): string {
  const names = [...domains].sort().join('.');
  const part = names.length <= 60 ? names : createHash('sha256').update(names).digest('hex').slice(0, 16);
  return `win-${part}-${t0}-${t1}-s${seed}`;
}

/** The newest complete aligned window [t1 − W, t1) before `newestMs`, or null when none exists. */
export function latestCompleteWindow(newestMs: number, windowMs: number): { t0: number; t1: number } | null {
  const t1 = Math.floor(newestMs / windowMs) * windowMs;
  const t0 = t1 - windowMs;
  return t0 < 0 ? null : { t0, t1 };
}

interface Serving {
  adapterId: string;
  uri: string;
  sha256: string;
  domains: string[];
  lineage: { base_model: string; base_model_sha256: string };
}

const messageOf = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/**
 * Drift monitoring, one `tick()` per interval: when the interactions hold a complete event-time
 * window newer than the last one observed, the adapter serving each watched domain is evaluated
 * on that window's frozen split (each recently active user's next item, frozen candidates), the
 * HR@1 per domain is recorded in `drift_series` and published, and the DriftMonitor policy decides
 * on alerts (`drift_alerts`, a DriftEvent alert, and a refresh RoundCommand when configured).
 *
 * Watched domains: the fallback target domains plus every domain serving has switched an adapter
 * in for. The adapter watched on a domain is the gate's incumbent: the one serving THAT domain
 * (its latest switch or rollback in serving_events; a legacy all-domains row only where its
 * adapter was promoted), else — serving has recorded nothing for it yet — the newest promoted
 * adapter covering it; a domain served by the base model alone has no adapter to watch. So every
 * domain's adapter gets its own series. When a new adapter starts
 * serving a domain its baseline is reset and the current window is evaluated for it at once, so
 * the baseline is the new adapter's HR@1 at promotion time.
 */
export class DriftWatch {
  /** Per domain: the adapter watched on it and the end of the last window observed for it. */
  private readonly servingOf = new Map<string, string>();
  private readonly lastWindowEnd = new Map<string, number>();

  constructor(
    private readonly store: ControlPlanePort,
    private readonly interactions: InteractionsPort,
    private readonly splits: SplitPort,
    private readonly artefacts: ArtefactPort,
    private readonly runner: EvaluationRunner,
    private readonly events: EventsPort,
    private readonly clock: Clock,
    private readonly monitor: DriftMonitor,
    private readonly settings: DriftWatchSettings,
  ) {}

  async tick(): Promise<DriftTick> {
    const watched = await this.servingByDomain();
    if (watched === null) return { kind: 'idle', reason: 'no adapter has been promoted yet' };
    if (watched.size === 0) return { kind: 'idle', reason: 'the serving adapter names no domain to watch' };
    for (const [domain, serving] of watched)
      if (this.servingOf.get(domain) !== serving.adapterId) await this.adopt(domain, serving.adapterId);
    const newest = await this.interactions.newestEventMs();
    if (newest === null) return { kind: 'idle', reason: 'no interactions yet' };
    const window = latestCompleteWindow(newest, this.settings.windowMs);
    if (!window) return { kind: 'idle', reason: 'no complete window yet' };
    const due = [...watched.keys()].filter((d) => (this.lastWindowEnd.get(d) ?? -1) < window.t1);
    if (due.length === 0) return { kind: 'idle', reason: `window ending ${window.t1} already observed` };
    return this.observe(watched, due, window.t0, window.t1);
  }

  /** A new adapter serves `domain`: its baseline starts over, from what was recorded for it (restart) if anything. */
  private async adopt(domain: string, adapterId: string): Promise<void> {
    this.monitor.resetBaseline(domain);
    this.servingOf.set(domain, adapterId);
    let last = -1;
    let restored = false;
    const series = (await this.store.driftSeries({})).filter(
      (o) => o.adapter_id === adapterId && o.domain === domain,
    );
    for (const o of series) {
      last = Math.max(last, o.window_end_ms);
      if (restored) continue;
      this.monitor.restoreBaseline({ adapterId, domain, hr1: o.hr1, samples: o.samples });
      restored = this.monitor.baseline(domain) !== null;
    }
    this.lastWindowEnd.set(domain, last);
  }

  /**
   * Per watched domain, the adapter serving it (see the class comment); null when no adapter has
   * been promoted or is serving at all.
   */
  private async servingByDomain(): Promise<Map<string, Serving> | null> {
    const assignments = await this.store.servingByDomain();
    const promoted = (await this.store.listPromotions({ limit: 500 })).filter(
      (p) => p.decision === 'promoted',
    );
    if (assignments.length === 0 && promoted.length === 0) return null;
    const records = new Map<string, Serving | null>();
    const record = async (adapterId: string): Promise<Serving | null> => {
      if (!records.has(adapterId)) {
        const adapter = await this.store.getAdapter(adapterId);
        records.set(
          adapterId,
          adapter
            ? {
                adapterId,
                uri: adapter.uri,
                sha256: adapter.sha256,
                domains: adapter.target_domains,
                lineage: {
                  base_model: String(adapter.lineage.base_model ?? ''),
                  base_model_sha256: String(adapter.lineage.base_model_sha256 ?? ''),
                },
              }
            : null,
        );
      }
      return records.get(adapterId)!;
    };
    // What an adapter covers: the domains its promotion was decided on, else its own target domains.
    const covers = (s: Serving, domain: string): boolean =>
      promoted.some((p) => p.adapter_id === s.adapterId && p.hr1[domain] !== undefined) ||
      s.domains.includes(domain);
    const domains = new Set(this.settings.defaultDomains);
    for (const a of assignments) {
      if (a.domain !== '') domains.add(a.domain);
      else for (const d of (await record(a.adapter_id))?.domains ?? []) domains.add(d);
    }
    // Serving has recorded nothing yet: the newest promotion's domains, as before it runs.
    if (assignments.length === 0)
      for (const d of (await record(promoted[0].adapter_id))?.domains ?? []) domains.add(d);
    const out = new Map<string, Serving>();
    for (const domain of [...domains].sort()) {
      const row = servingOf(assignments, domain);
      if (row && row.adapter_id === BASE_MODEL_ADAPTER_ID) continue;
      const serving = row ? await record(row.adapter_id) : null;
      if (serving && (row!.domain === domain || covers(serving, domain))) {
        out.set(domain, serving);
        continue;
      }
      if (row && row.domain === domain) continue; // serving an adapter we know nothing about
      for (const p of promoted) {
        const candidate = await record(p.adapter_id);
        if (candidate && covers(candidate, domain)) {
          out.set(domain, candidate);
          break;
        }
      }
    }
    return out;
  }

  private async observe(
    watched: Map<string, Serving>,
    due: string[],
    t0: number,
    t1: number,
  ): Promise<DriftTick> {
    const s = this.settings;
    const domains = [...watched.keys()];
    const splitId = windowSplitId(domains, t0, t1, s.splitSeed);
    await this.splits.ensureSplit({
      splitId,
      kind: 'window',
      domains,
      seed: s.splitSeed,
      windowStartMs: t0,
      windowEndMs: t1,
    });
    const cases = new Map<string, EvaluationCase[]>();
    for (const domain of due)
      cases.set(domain, await this.splits.readCases(splitId, domain, 'window', s.maxExamples));
    // A domain without active users in the window has no HR@1 (not 0): nothing is recorded.
    const byAdapter = new Map<string, { serving: Serving; domains: string[] }>();
    for (const domain of due) {
      if (cases.get(domain)!.length === 0) continue;
      const serving = watched.get(domain)!;
      const entry = byAdapter.get(serving.adapterId) ?? { serving, domains: [] };
      entry.domains.push(domain);
      byAdapter.set(serving.adapterId, entry);
    }
    const observations: Array<{ domain: string; adapterId: string; hr1: number; samples: number }> = [];
    for (const { serving, domains: evaluated } of byAdapter.values()) {
      let dir: string;
      let model: EvaluationJob['model'];
      try {
        dir = await this.artefacts.adapterDir(serving.uri, serving.sha256);
        model = await this.artefacts.baseModel(serving.lineage);
      } catch (err) {
        throw new Error(`serving adapter ${serving.adapterId} cannot be evaluated: ${messageOf(err)}`);
      }
      const result = await this.runner.run({
        jobId: `drift-${serving.adapterId}-${t1}`,
        model,
        ...s.job,
        adapters: [{ adapterId: serving.adapterId, dir }],
        domains: evaluated.map((domain) => ({ domain, splitId, cases: cases.get(domain)! })),
        likelihood: true,
        generation: s.method === 'generation',
      });
      for (const e of result.evaluations) {
        const m = metricOf(e.metrics, s.method);
        if (m)
          observations.push({
            domain: e.domain,
            adapterId: serving.adapterId,
            hr1: m.hr1,
            samples: m.samples,
          });
      }
    }
    const now = this.clock.now();
    await this.store.insertDriftObservations(
      observations.map((o) => ({
        adapter_id: o.adapterId,
        domain: o.domain,
        window_start_ms: t0,
        window_end_ms: t1,
        hr1: o.hr1,
        samples: o.samples,
        ts_ms: now,
      })),
    );
    const alerts: DriftAlert[] = [];
    for (const o of observations) {
      await this.events.driftEvent({
        kind: 'observation',
        adapter_id: o.adapterId,
        domain: o.domain,
        window_start: t0,
        window_end: t1,
        hr1: o.hr1,
        samples: o.samples,
        ts: now,
      });
      const alert = this.monitor.observe(
        {
          adapterId: o.adapterId,
          windowStartMs: t0,
          windowEndMs: t1,
          domain: o.domain,
          hr1: o.hr1,
          samples: o.samples,
        },
        now,
      );
      if (alert) alerts.push(alert);
    }
    for (const a of alerts) await this.raise(a, now);
    for (const domain of due) this.lastWindowEnd.set(domain, t1);
    return {
      kind: 'observed',
      adapterId: [...byAdapter.keys()].join(','),
      windowStartMs: t0,
      windowEndMs: t1,
      observations,
      alerts,
    };
  }

  private async raise(a: DriftAlert, now: number): Promise<void> {
    await this.store.insertDriftAlert({
      adapter_id: a.adapterId,
      domain: a.domain,
      hr1: a.hr1,
      baseline_hr1: a.baselineHr1,
      relative_drop: a.relativeDrop,
      samples: a.samples,
      refresh_requested: a.refreshRequested,
      ts_ms: now,
    });
    await this.events.driftEvent({
      kind: 'alert',
      adapter_id: a.adapterId,
      domain: a.domain,
      hr1: a.hr1,
      baseline_hr1: a.baselineHr1,
      relative_drop: a.relativeDrop,
      samples: a.samples,
      refresh_requested: a.refreshRequested,
      ts: now,
    });
    if (a.refreshRequested) {
      await this.events.roundCommand({
        kind: 'trigger',
        command_id: `drift-${a.domain}-${a.adapterId}-${now}`,
        requested_by: 'evaluator:drift',
        reason: `HR@1 on ${a.domain} fell to ${(100 * a.hr1).toFixed(1)}% from ${(100 * a.baselineHr1).toFixed(1)}% at promotion (−${(100 * a.relativeDrop).toFixed(0)}%, ${a.samples} examples)`,
        target_domains: [a.domain],
        ts: now,
      });
    }
  }
}
