import { createHash } from 'node:crypto';
import type { EvaluationCase } from '@cprec/training';
import { metricOf } from '../evaluation/metrics';
import type { EvaluationJob, EvaluationMethod } from '../evaluation/protocol';
import type {
  ArtefactPort,
  Clock,
  ControlPlanePort,
  EvaluationRunner,
  EventsPort,
  InteractionsPort,
  JobSettings,
  SplitPort,
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
      adapterId: string;
      windowStartMs: number;
      windowEndMs: number;
      observations: Array<{ domain: string; hr1: number; samples: number }>;
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
 * window newer than the last one observed, the serving adapter is evaluated on that window's
 * frozen split (each recently active user's next item, frozen candidates), the HR@1 per domain is
 * recorded in `drift_series` and published, and the DriftMonitor policy decides on alerts
 * (`drift_alerts`, a DriftEvent alert, and a refresh RoundCommand when configured). When a new
 * adapter starts serving the baselines are reset and the current window is evaluated at once, so
 * the baseline is the new adapter's HR@1 at promotion time.
 */
export class DriftWatch {
  private servingId: string | null = null;
  private lastWindowEnd = -1;

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
    const serving = await this.serving();
    if (!serving) return { kind: 'idle', reason: 'no adapter has been promoted yet' };
    if (serving.adapterId !== this.servingId) await this.adopt(serving.adapterId);
    const newest = await this.interactions.newestEventMs();
    if (newest === null) return { kind: 'idle', reason: 'no interactions yet' };
    const window = latestCompleteWindow(newest, this.settings.windowMs);
    if (!window) return { kind: 'idle', reason: 'no complete window yet' };
    if (window.t1 <= this.lastWindowEnd)
      return { kind: 'idle', reason: `window ending ${window.t1} already observed` };
    const domains = serving.domains.length > 0 ? serving.domains : [...this.settings.defaultDomains];
    if (domains.length === 0) return { kind: 'idle', reason: 'the serving adapter names no domain to watch' };
    return this.observe(serving, domains, window.t0, window.t1);
  }

  /** A new adapter is serving: baselines start over, from what was recorded for it (restart) if anything. */
  private async adopt(adapterId: string): Promise<void> {
    this.monitor.resetBaselines();
    this.servingId = adapterId;
    this.lastWindowEnd = -1;
    const series = (await this.store.driftSeries({})).filter((o) => o.adapter_id === adapterId);
    const restored = new Set<string>();
    for (const o of series) {
      this.lastWindowEnd = Math.max(this.lastWindowEnd, o.window_end_ms);
      if (restored.has(o.domain)) continue;
      this.monitor.restoreBaseline({ adapterId, domain: o.domain, hr1: o.hr1, samples: o.samples });
      if (this.monitor.baseline(o.domain) !== null) restored.add(o.domain);
    }
  }

  /** The adapter serving now (the latest switch or rollback), else the newest promoted one. */
  private async serving(): Promise<Serving | null> {
    const current = await this.store.currentServingAdapter();
    let adapterId = current?.adapter_id ?? null;
    if (adapterId === null) {
      const promoted = (await this.store.listPromotions({ limit: 200 })).find(
        (p) => p.decision === 'promoted',
      );
      adapterId = promoted?.adapter_id ?? null;
    }
    if (adapterId === null) return null;
    const adapter = await this.store.getAdapter(adapterId);
    if (!adapter) return null;
    return {
      adapterId,
      uri: adapter.uri,
      sha256: adapter.sha256,
      domains: adapter.target_domains,
      lineage: {
        base_model: String(adapter.lineage.base_model ?? ''),
        base_model_sha256: String(adapter.lineage.base_model_sha256 ?? ''),
      },
    };
  }

  private async observe(serving: Serving, domains: string[], t0: number, t1: number): Promise<DriftTick> {
    const s = this.settings;
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
    for (const domain of domains)
      cases.set(domain, await this.splits.readCases(splitId, domain, 'window', s.maxExamples));
    // A domain without active users in the window has no HR@1 (not 0): nothing is recorded.
    const evaluated = domains.filter((d) => cases.get(d)!.length > 0);
    const observations: Array<{ domain: string; hr1: number; samples: number }> = [];
    if (evaluated.length > 0) {
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
        if (m) observations.push({ domain: e.domain, hr1: m.hr1, samples: m.samples });
      }
    }
    const now = this.clock.now();
    await this.store.insertDriftObservations(
      observations.map((o) => ({
        adapter_id: serving.adapterId,
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
        adapter_id: serving.adapterId,
        domain: o.domain,
        window_start: t0,
        window_end: t1,
        hr1: o.hr1,
        samples: o.samples,
        ts: now,
      });
      const alert = this.monitor.observe(
        { adapterId: serving.adapterId, windowStartMs: t0, windowEndMs: t1, ...o },
        now,
      );
      if (alert) alerts.push(alert);
    }
    for (const a of alerts) await this.raise(a, now);
    this.lastWindowEnd = t1;
    return {
      kind: 'observed',
      adapterId: serving.adapterId,
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
