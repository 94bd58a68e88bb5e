import { Inject, Injectable } from '@nestjs/common';
import type {
  ControlPlaneRepository,
  DriftAlertRecord,
  DriftObservationRecord,
  EvaluationRecord,
  RoundStepRecord,
  ServingEventRecord,
  StoredPromotion,
  StoredRoundState,
} from '@cprec/clickhouse';
import { NotFoundError } from '../errors';
import { AdapterSummary, servingDomainsByAdapter, summariseAdapters, thin } from './adapter-summary';
import { STREAM_CLOCK, streamTimeAt, type StreamClockPort } from './stream-clock';

export const CONTROL_PLANE_REPOSITORY = Symbol('CONTROL_PLANE_REPOSITORY');

export interface RoundDetail {
  round: StoredRoundState;
  steps: RoundStepRecord[];
  /** Steps stored for the round before thinning to `steps`. */
  total_points: number;
}

/** Where the stream was when something happened (null: before any interaction was ingested). */
type AtStreamTime<T> = T & { stream_ms: number | null };

export interface DriftView {
  series: DriftObservationRecord[];
  alerts: Array<AtStreamTime<DriftAlertRecord>>;
  /** Chart markers: promotions (gate decisions 'promoted') and round starts. */
  promotions: Array<AtStreamTime<StoredPromotion>>;
  /** Every gate decision (promoted and rejected), newest first: the dashboard's timeline. */
  decisions: Array<AtStreamTime<StoredPromotion>>;
  rounds: Array<AtStreamTime<Pick<StoredRoundState, 'round_id' | 'state' | 'created_ms' | 'requested_by'>>>;
  /** The stream's clock: the newest event time ingested (null before any) and the interactions stored. */
  stream: { newest_ms: number | null; interactions: number };
}

export interface ServingView {
  /**
   * What serves each domain: per domain the switch or rollback that put its adapter in, newest
   * first (`adapter_id` 'base': the base model alone). A row with domain '' is from before
   * per-domain serving (one adapter for every domain) and stands for the domains without a row.
   */
  domains: ServingEventRecord[];
  events: ServingEventRecord[];
}

export interface AdaptersView {
  adapters: AdapterSummary[];
  /** Domain → the adapter serving it ('*': legacy, every domain without its own adapter). */
  serving: Record<string, string>;
}

/** The read side of the API: one method per GET endpoint, straight from the control-plane tables. */
@Injectable()
export class OperatorQueries {
  constructor(
    @Inject(CONTROL_PLANE_REPOSITORY) private readonly repo: ControlPlaneRepository,
    @Inject(STREAM_CLOCK) private readonly streamClock: StreamClockPort,
  ) {}

  listRounds(limit: number): Promise<StoredRoundState[]> {
    return this.repo.listRounds({ limit });
  }

  async round(roundId: string, maxPoints: number): Promise<RoundDetail> {
    const round = await this.repo.getRound(roundId);
    if (round === null) throw new NotFoundError(`round ${roundId} not found`);
    const steps = await this.repo.listRoundSteps(roundId);
    return { round, steps: thin(steps, maxPoints), total_points: steps.length };
  }

  async adapters(limit: number): Promise<AdaptersView> {
    const adapters = await this.repo.listAdapters({ limit });
    const ids = adapters.map((a) => a.adapter_id);
    const [evaluations, promotions, assignments] = await Promise.all([
      this.repo.listEvaluations({ adapterIds: ids, limit: 100_000 }),
      this.repo.listPromotions({ adapterIds: ids, limit: 100_000 }),
      this.repo.servingByDomain(),
    ]);
    const servingDomains = await this.servingDomains(assignments);
    const serving: Record<string, string> = {};
    for (const [adapterId, domains] of servingDomains) for (const d of domains) serving[d] = adapterId;
    return {
      adapters: summariseAdapters(adapters, evaluations, promotions, servingDomains),
      serving: Object.fromEntries(Object.entries(serving).sort(([a], [b]) => a.localeCompare(b))),
    };
  }

  /** Adapter → the domains it serves (a legacy row's adapter looked up for its target domains). */
  private async servingDomains(assignments: readonly ServingEventRecord[]): Promise<Map<string, string[]>> {
    const legacy = assignments.find((a) => a.domain === '' && a.adapter_id !== 'base');
    const targets = new Map<string, string[]>();
    if (legacy)
      targets.set(legacy.adapter_id, (await this.repo.getAdapter(legacy.adapter_id))?.target_domains ?? []);
    return servingDomainsByAdapter(assignments, (id) => targets.get(id));
  }

  async adapter(adapterId: string): Promise<{ adapter: AdapterSummary; evaluations: EvaluationRecord[] }> {
    const adapter = await this.repo.getAdapter(adapterId);
    if (adapter === null) throw new NotFoundError(`adapter ${adapterId} not found`);
    const [evaluations, promotions, assignments] = await Promise.all([
      this.repo.listEvaluations({ adapterIds: [adapterId] }),
      this.repo.listPromotions({ adapterIds: [adapterId] }),
      this.repo.servingByDomain(),
    ]);
    const servingDomains = await this.servingDomains(assignments);
    const [summary] = summariseAdapters([adapter], evaluations, promotions, servingDomains);
    return { adapter: summary, evaluations };
  }

  evaluations(filter: { adapterId?: string; domain?: string; limit: number }): Promise<EvaluationRecord[]> {
    return this.repo.listEvaluations({
      ...(filter.adapterId === undefined ? {} : { adapterIds: [filter.adapterId] }),
      ...(filter.domain === undefined ? {} : { domain: filter.domain }),
      limit: filter.limit,
    });
  }

  promotions(limit: number): Promise<StoredPromotion[]> {
    return this.repo.listPromotions({ limit });
  }

  async drift(filter: { domain?: string; fromMs?: number; limit: number }): Promise<DriftView> {
    const [series, alerts, promotions, rounds, timeline] = await Promise.all([
      this.repo.driftSeries(filter),
      this.repo.listDriftAlerts({ ...filter, limit: 1000 }),
      this.repo.listPromotions({ limit: 1000 }),
      this.repo.listRounds({ limit: 1000 }),
      this.streamClock.timeline(),
    ]);
    const at = (wallMs: number) => streamTimeAt(timeline, wallMs);
    return {
      series,
      alerts: alerts.map((a) => ({ ...a, stream_ms: at(a.ts_ms) })),
      promotions: promotions
        .filter((p) => p.decision === 'promoted')
        .map((p) => ({ ...p, stream_ms: at(p.ts_ms) })),
      decisions: promotions.slice(0, 200).map((p) => ({ ...p, stream_ms: at(p.ts_ms) })),
      rounds: rounds.map((r) => ({
        round_id: r.round_id,
        state: r.state,
        created_ms: r.created_ms,
        requested_by: r.requested_by,
        stream_ms: at(r.created_ms),
      })),
      stream: {
        newest_ms: timeline.points.at(-1)?.streamMs ?? null,
        interactions: timeline.interactions,
      },
    };
  }

  async serving(limit: number): Promise<ServingView> {
    const [domains, events] = await Promise.all([
      this.repo.servingByDomain(),
      this.repo.listServingEvents({ limit }),
    ]);
    return { domains, events };
  }
}
