import type {
  DriftAlertRecord,
  DriftObservationRecord,
  EvaluationRecord,
  PromotionRecord,
  ServingEventRecord,
  StoredAdapter,
  StoredPromotion,
} from '@cprec/clickhouse';
import type { AdapterEvent, DriftEvent, RoundCommand } from '@cprec/contracts';
import type { EvaluationCase } from '@cprec/training';
import type {
  BaseModelSpec,
  DomainEvaluation,
  EvaluationJob,
  EvaluationJobResult,
} from '../evaluation/protocol';
import type {
  ArtefactPort,
  ControlPlanePort,
  EvaluationRunner,
  EventsPort,
  InteractionsPort,
  SplitPort,
  SplitSpec,
} from '../ports';

/**
 * In-memory stand-ins for the evaluator's ports, for unit specs of the use cases (the real
 * ClickHouse/Kafka/process implementations are exercised by test/evaluator).
 */

export class MemoryControlPlane implements ControlPlanePort {
  evaluations: EvaluationRecord[] = [];
  promotions: PromotionRecord[] = [];
  series: DriftObservationRecord[] = [];
  alerts: DriftAlertRecord[] = [];
  adapters = new Map<string, StoredAdapter>();
  /** serving_events: what serving recorded (switches, rollbacks), newest last. */
  servingEvents: ServingEventRecord[] = [];

  async insertEvaluations(records: readonly EvaluationRecord[]): Promise<void> {
    this.evaluations.push(...records);
  }
  async insertPromotion(record: PromotionRecord): Promise<void> {
    this.promotions.push(record);
  }
  async insertDriftObservations(records: readonly DriftObservationRecord[]): Promise<void> {
    this.series.push(...records);
  }
  async insertDriftAlert(record: DriftAlertRecord): Promise<void> {
    this.alerts.push(record);
  }
  async listPromotions(
    options: { adapterIds?: readonly string[]; limit?: number } = {},
  ): Promise<StoredPromotion[]> {
    return this.promotions
      .filter((p) => options.adapterIds === undefined || options.adapterIds.includes(p.adapter_id))
      .sort((a, b) => b.ts_ms - a.ts_ms)
      .slice(0, options.limit ?? 1000)
      .map((p) => ({ ...p, reasons: [...p.reasons] }));
  }
  async listEvaluations(
    filter: { adapterIds?: readonly string[]; domain?: string } = {},
  ): Promise<EvaluationRecord[]> {
    return this.evaluations.filter(
      (e) =>
        (filter.adapterIds === undefined || filter.adapterIds.includes(e.adapter_id)) &&
        (filter.domain === undefined || e.domain === filter.domain),
    );
  }
  async getAdapter(adapterId: string): Promise<StoredAdapter | null> {
    return this.adapters.get(adapterId) ?? null;
  }
  async servingByDomain(): Promise<ServingEventRecord[]> {
    const latest = new Map<string, ServingEventRecord>();
    for (const e of this.servingEvents)
      if (e.event !== 'load_failed' && (latest.get(e.domain)?.ts_ms ?? -1) <= e.ts_ms)
        latest.set(e.domain, e);
    return [...latest.values()].sort((a, b) => b.ts_ms - a.ts_ms);
  }
  /** Records what serving would: `adapterId` switched in for `domain`. */
  serve(domain: string, adapterId: string, ts_ms: number): void {
    this.servingEvents.push({
      event: 'switch',
      domain,
      adapter_id: adapterId,
      previous_adapter_id: '',
      detail: '',
      ts_ms,
    });
  }
  async driftSeries(): Promise<DriftObservationRecord[]> {
    return [...this.series].sort((a, b) => a.window_end_ms - b.window_end_ms);
  }
}

export class MemorySplits implements SplitPort {
  requested: SplitSpec[] = [];
  constructor(private readonly casesOf: (splitId: string, domain: string) => EvaluationCase[]) {}
  async ensureSplit(spec: SplitSpec): Promise<void> {
    this.requested.push(spec);
  }
  async readCases(splitId: string, domain: string, _kind: string, limit: number): Promise<EvaluationCase[]> {
    return this.casesOf(splitId, domain).slice(0, limit);
  }
}

export const TINY_BASE: BaseModelSpec = {
  kind: 'tiny-random',
  dir: '/base',
  baseModelId: 'tiny-random',
  sha256: 'b'.repeat(64),
};

/** Artefacts by URI; a URI listed in `corrupted` is refused as the real store refuses one. */
export class MemoryArtefacts implements ArtefactPort {
  corrupted = new Set<string>();
  async adapterDir(uri: string): Promise<string> {
    if (this.corrupted.has(uri))
      throw new Error(`artefact ${uri} is corrupted and was refused: sha256 differs`);
    return `/verified/${uri}`;
  }
  async baseModel(): Promise<BaseModelSpec> {
    return TINY_BASE;
  }
}

/** Scores come from `hr1Of(adapterId, domain, splitId)`; every job is recorded. */
export class ScriptedRunner implements EvaluationRunner {
  jobs: EvaluationJob[] = [];
  failWith: Error | null = null;
  constructor(private readonly hr1Of: (adapterId: string, domain: string, splitId: string) => number) {}
  async run(job: EvaluationJob): Promise<EvaluationJobResult> {
    this.jobs.push(job);
    if (this.failWith) throw this.failWith;
    const evaluations: DomainEvaluation[] = [];
    for (const a of job.adapters)
      for (const d of job.domains) {
        if (a.domains && !a.domains.includes(d.domain)) continue;
        const hr1 = this.hr1Of(a.adapterId, d.domain, d.splitId);
        const base = {
          samples: d.cases.length,
          hr1,
          hr1Valid: hr1,
          hr3: hr1,
          hr5: hr1,
          ndcg3: hr1,
          ndcg5: hr1,
        };
        evaluations.push({
          adapterId: a.adapterId,
          domain: d.domain,
          splitId: d.splitId,
          metrics: [
            { method: 'likelihood', validRatio: 1, ...base },
            ...(job.generation ? [{ method: 'generation' as const, validRatio: 0.5, ...base }] : []),
          ],
          report: null,
        });
      }
    return { jobId: job.jobId, evaluations, elapsedMs: 0 };
  }
}

export class RecordedEvents implements EventsPort {
  adapters: AdapterEvent[] = [];
  drift: DriftEvent[] = [];
  rounds: RoundCommand[] = [];
  async adapterEvent(e: AdapterEvent): Promise<void> {
    this.adapters.push(e);
  }
  async driftEvent(e: DriftEvent): Promise<void> {
    this.drift.push(e);
  }
  async roundCommand(c: RoundCommand): Promise<void> {
    this.rounds.push(c);
  }
}

export class MemoryInteractions implements InteractionsPort {
  newest: number | null = null;
  async newestEventMs(): Promise<number | null> {
    return this.newest;
  }
}

/** `n` distinct cases of a domain (the scripted runner only counts them). */
export function casesFor(domain: string, n: number): EvaluationCase[] {
  return Array.from({ length: n }, (_, i) => ({
    domain,
    userId: `u${i}`,
    historyLength: 1,
    history: [{ itemId: `${domain}-h${i}`, title: 'a' }],
    candidates: [{ itemId: `${domain}-t${i}`, title: 'b' }],
    target: { itemId: `${domain}-t${i}`, title: 'b' },
  }));
}

export class ManualClock {
  constructor(public t = 1_000_000) {}
  now(): number {
    return this.t++;
  }
}
