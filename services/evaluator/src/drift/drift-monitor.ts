/** HR@1 of the serving adapter on one time window of one domain. */
export interface DriftObservation {
  adapterId: string;
  domain: string;
  windowStartMs: number;
  windowEndMs: number;
  hr1: number;
  samples: number;
}

export interface DriftPolicy {
  /** Alert when HR@1 < baseline · (1 − this). */
  relativeDrop: number;
  /** Observations on fewer examples never alert (noise). */
  minSamples: number;
  /** Ask the trainer for a refresh round when an alert fires. */
  refreshOnAlert: boolean;
  /** No second alert for the same domain within this time (ms) after one fired. */
  cooldownMs: number;
}

export interface DriftAlert {
  adapterId: string;
  domain: string;
  hr1: number;
  baselineHr1: number;
  relativeDrop: number;
  samples: number;
  refreshRequested: boolean;
}

/**
 * Watches the HR@1 series per domain against the value measured when the serving adapter was
 * promoted (its first window observation — same kind of split, so the comparison is like for
 * like). A promotion resets the baseline.
 */
export class DriftMonitor {
  private readonly baselines = new Map<string, { adapterId: string; hr1: number; samples: number }>();
  private readonly lastAlertAt = new Map<string, number>();

  constructor(private readonly policy: DriftPolicy) {}

  /** A new adapter is serving: its next observation per domain becomes the baseline. */
  resetBaselines(): void {
    this.baselines.clear();
    this.lastAlertAt.clear();
  }

  /** A new adapter serves this domain: its next observation there becomes the baseline. */
  resetBaseline(domain: string): void {
    this.baselines.delete(domain);
    this.lastAlertAt.delete(domain);
  }

  /**
   * Re-installs a baseline recorded earlier (the first qualifying observation of the adapter in
   * `drift_series`), so a restarted evaluator keeps comparing against the value at promotion.
   */
  restoreBaseline(o: Pick<DriftObservation, 'adapterId' | 'domain' | 'hr1' | 'samples'>): void {
    if (o.samples < this.policy.minSamples) return;
    this.baselines.set(o.domain, { adapterId: o.adapterId, hr1: o.hr1, samples: o.samples });
  }

  baseline(domain: string): number | null {
    return this.baselines.get(domain)?.hr1 ?? null;
  }

  observe(o: DriftObservation, now: number): DriftAlert | null {
    const base = this.baselines.get(o.domain);
    if (!base || base.adapterId !== o.adapterId) {
      // Only a window with enough examples can serve as a baseline.
      if (o.samples >= this.policy.minSamples) {
        this.baselines.set(o.domain, { adapterId: o.adapterId, hr1: o.hr1, samples: o.samples });
      }
      return null;
    }
    if (o.samples < this.policy.minSamples || base.hr1 <= 0) return null;
    const drop = (base.hr1 - o.hr1) / base.hr1;
    if (drop <= this.policy.relativeDrop) return null;
    const last = this.lastAlertAt.get(o.domain);
    if (last !== undefined && now - last < this.policy.cooldownMs) return null;
    this.lastAlertAt.set(o.domain, now);
    return {
      adapterId: o.adapterId,
      domain: o.domain,
      hr1: o.hr1,
      baselineHr1: base.hr1,
      relativeDrop: drop,
      samples: o.samples,
      refreshRequested: this.policy.refreshOnAlert,
    };
  }
}
