import { servingOf, type EvaluationRecord, type StoredPromotion } from '@cprec/clickhouse';
import { looSplitId, type AdapterEvent, type EvaluatorCommand } from '@cprec/contracts';
import type { EvaluationCase } from '@cprec/training';
import { decidePromotion, type DomainScore, type GatePolicy, type Incumbent } from '../gate/promotion-gate';
import {
  BASE_MODEL_ADAPTER_ID,
  EvaluationAbortedError,
  type ArtefactPort,
  type Clock,
  type ControlPlanePort,
  type EvaluationRunner,
  type EventsPort,
  type JobSettings,
  type SplitPort,
} from '../ports';
import { metricOf } from './metrics';
import type { BaseModelSpec, DomainEvaluation, EvaluationJob, EvaluationMethod } from './protocol';

export type AdapterPublished = Extract<AdapterEvent, { kind: 'published' }>;

export interface AdapterEvaluatorSettings {
  /** Domains evaluated when the event names none. */
  defaultTargetDomains: readonly string[];
  splitSeed: number;
  splitEpoch: string;
  maxExamples: number;
  gate: GatePolicy;
  /** The HR@1 the gate compares. */
  gateMethod: EvaluationMethod;
  /** Run generation as well (Valid Ratio); implied when the gate uses it. */
  generation: boolean;
  /** Gate and promote CPT adapters (otherwise evaluated zero-shot, recorded, not promoted). */
  promoteCpt: boolean;
  job: JobSettings;
}

export type Outcome =
  | { kind: 'skipped'; reason: string }
  | { kind: 'promoted' | 'rejected'; reasons: string[]; hr1: Record<string, number> };

/** The frozen leave-one-out split id, shared with the trainer (which fine-tunes on its validation side). */
export { looSplitId };

/** Deterministic, so a re-evaluation replaces its row instead of adding one. */
const evaluationId = (e: DomainEvaluation, method: string): string =>
  `${e.adapterId}/${e.splitId}/${e.domain}/${method}`;

const messageOf = (err: unknown): string => (err instanceof Error ? err.message : String(err));

interface Reference {
  adapterId: string;
  /** HR@1 per domain from the reference's promotion record (the fallback); null without one. */
  promotion: StoredPromotion | null;
}

class Refusal extends Error {}

/**
 * The evaluation use case: an AdapterPublished is evaluated on the frozen leave-one-out test
 * split of each target domain (in an evaluation process), its metrics written to `evaluations`,
 * and the promotion gate decides, per domain, against the adapter serving that domain (its
 * incumbent), compared on the same split; the decision goes to `promotions` and out as AdapterPromoted / AdapterRejected.
 * Handling is idempotent per adapter: an adapter that already has a decision is skipped, so a
 * redelivered event is never evaluated twice.
 */
export class AdapterEvaluator {
  constructor(
    private readonly store: ControlPlanePort,
    private readonly splits: SplitPort,
    private readonly artefacts: ArtefactPort,
    private readonly runner: EvaluationRunner,
    private readonly events: EventsPort,
    private readonly clock: Clock,
    private readonly settings: AdapterEvaluatorSettings,
  ) {}

  private get generation(): boolean {
    return this.settings.generation || this.settings.gateMethod === 'generation';
  }

  async handlePublished(event: AdapterPublished): Promise<Outcome> {
    const previous = await this.store.listPromotions({ adapterIds: [event.adapter_id], limit: 1 });
    if (previous.length > 0)
      return { kind: 'skipped', reason: `${event.adapter_id} was already ${previous[0].decision}` };
    let outcome: { promote: boolean; reasons: string[]; hr1: Record<string, number> };
    try {
      outcome = await this.evaluateAndGate(event);
    } catch (err) {
      if (err instanceof EvaluationAbortedError || !(err instanceof Refusal)) throw err;
      outcome = { promote: false, reasons: [err.message], hr1: {} };
    }
    await this.decide(event, outcome.promote, outcome.reasons, outcome.hr1);
    return { kind: outcome.promote ? 'promoted' : 'rejected', reasons: outcome.reasons, hr1: outcome.hr1 };
  }

  /** Operator's manual promotion: promoted whatever the gate said, recording that it was bypassed. */
  async handleCommand(command: EvaluatorCommand): Promise<Outcome> {
    const adapter = await this.store.getAdapter(command.adapter_id);
    if (!adapter) return { kind: 'skipped', reason: `adapter ${command.adapter_id} is unknown` };
    const [latest] = await this.store.listPromotions({ adapterIds: [command.adapter_id], limit: 1 });
    if (latest?.decision === 'promoted' && latest.ts_ms >= command.ts)
      return { kind: 'skipped', reason: `${command.adapter_id} was already promoted after this command` };
    const hr1: Record<string, number> = { ...(latest?.hr1 ?? {}) };
    const reasons = [
      `manual promotion by ${command.requested_by}, gate bypassed${command.reason ? `: ${command.reason}` : ''}`,
      ...(latest
        ? [`the gate had ${latest.decision} it:`, ...latest.reasons]
        : ['the adapter had not been evaluated by the gate']),
    ];
    const now = this.clock.now();
    await this.store.insertPromotion({
      adapter_id: adapter.adapter_id,
      decision: 'promoted',
      reasons,
      hr1,
      ts_ms: now,
    });
    await this.events.adapterEvent({
      kind: 'promoted',
      adapter_id: adapter.adapter_id,
      uri: adapter.uri,
      sha256: adapter.sha256,
      // Serving switches exactly these domains: the adapter's own, else (a CPT adapter) those it
      // was evaluated on, else the configured fallback.
      target_domains:
        adapter.target_domains.length > 0
          ? adapter.target_domains
          : Object.keys(hr1).length > 0
            ? Object.keys(hr1).sort()
            : [...this.settings.defaultTargetDomains],
      hr1,
      reasons,
      ts: now,
    });
    return { kind: 'promoted', reasons, hr1 };
  }

  private async decide(
    event: AdapterPublished,
    promote: boolean,
    reasons: string[],
    hr1: Record<string, number>,
  ): Promise<void> {
    const now = this.clock.now();
    await this.store.insertPromotion({
      adapter_id: event.adapter_id,
      decision: promote ? 'promoted' : 'rejected',
      reasons,
      hr1,
      ts_ms: now,
    });
    await this.events.adapterEvent(
      promote
        ? {
            kind: 'promoted',
            adapter_id: event.adapter_id,
            uri: event.uri,
            sha256: event.sha256,
            target_domains: this.domainsOf(event),
            hr1,
            reasons,
            ts: now,
          }
        : { kind: 'rejected', adapter_id: event.adapter_id, reasons, ts: now },
    );
  }

  private domainsOf(event: AdapterPublished): string[] {
    const named = event.target_domains.length > 0 ? event.target_domains : this.settings.defaultTargetDomains;
    return [...new Set(named)];
  }

  private async evaluateAndGate(
    event: AdapterPublished,
  ): Promise<{ promote: boolean; reasons: string[]; hr1: Record<string, number> }> {
    const s = this.settings;
    const domains = this.domainsOf(event);
    if (domains.length === 0)
      throw new Refusal(
        'no target domain to evaluate on: the event names none and EVALUATOR_TARGET_DOMAINS is empty',
      );
    const dir = await this.artefacts
      .adapterDir(event.uri, event.sha256)
      .catch((err: unknown) => Promise.reject(new Refusal(`artefact refused: ${messageOf(err)}`)));
    const model = await this.artefacts
      .baseModel(event.lineage)
      .catch((err: unknown) => Promise.reject(new Refusal(`base model refused: ${messageOf(err)}`)));
    const cases = new Map<string, { splitId: string; cases: EvaluationCase[] }>();
    for (const domain of domains) {
      const splitId = looSplitId(domain, s.splitEpoch, s.splitSeed);
      try {
        await this.splits.ensureSplit({ splitId, kind: 'loo', domains: [domain], seed: s.splitSeed });
        cases.set(domain, {
          splitId,
          cases: await this.splits.readCases(splitId, domain, 'loo-test', s.maxExamples),
        });
      } catch (err) {
        throw new Refusal(`${domain}: frozen test split ${splitId} unavailable: ${messageOf(err)}`);
      }
    }

    const references = await this.references(event.adapter_id, domains);
    const referenceJobs = await this.referenceJobs(references, cases, model);
    const job: EvaluationJob = {
      jobId: `${event.adapter_id}@${this.clock.now()}`,
      model,
      ...s.job,
      adapters: [{ adapterId: event.adapter_id, dir }, ...referenceJobs.toEvaluate],
      domains: domains.map((domain) => ({ domain, ...cases.get(domain)! })),
      likelihood: true,
      generation: this.generation,
    };
    let evaluations: DomainEvaluation[];
    try {
      evaluations = (await this.runner.run(job)).evaluations;
    } catch (err) {
      if (err instanceof EvaluationAbortedError) throw err;
      throw new Refusal(`evaluation failed: ${messageOf(err)}`);
    }
    await this.store.insertEvaluations(evaluations.flatMap((e) => this.rows(e)));

    const scores: DomainScore[] = [];
    const hr1: Record<string, number> = {};
    const incumbents = new Map<string, Incumbent>();
    const notes: string[] = [];
    for (const [domain, hr1] of referenceJobs.cached) {
      const adapterId = references.get(domain)!.adapterId;
      incumbents.set(domain, { adapterId, hr1 });
      notes.push(
        `${domain}: compared with ${adapterId}, serving ${domain}, by its stored evaluation on the same split`,
      );
    }
    for (const e of evaluations) {
      const gated = metricOf(e.metrics, s.gateMethod);
      if (!gated) continue;
      if (e.adapterId !== event.adapter_id) {
        // A reference evaluated for several domains counts only where it is the incumbent.
        if (references.get(e.domain)?.adapterId !== e.adapterId) continue;
        incumbents.set(e.domain, { adapterId: e.adapterId, hr1: gated.hr1 });
        notes.push(
          `${e.domain}: compared with ${e.adapterId}, serving ${e.domain}, re-evaluated on ${e.splitId}`,
        );
        continue;
      }
      const validRatio = metricOf(e.metrics, 'generation')?.validRatio ?? gated.validRatio;
      scores.push({ domain: e.domain, hr1: gated.hr1, validRatio, samples: gated.samples });
      hr1[e.domain] = gated.hr1;
    }
    for (const [domain, ref] of references) {
      if (incumbents.has(domain)) continue;
      const recorded = ref.promotion?.hr1[domain];
      if (recorded === undefined) {
        notes.push(
          `${domain}: ${ref.adapterId} serves ${domain} but has no HR@1 to compare with (not re-evaluable, none recorded)`,
        );
        continue;
      }
      incumbents.set(domain, { adapterId: ref.adapterId, hr1: recorded });
      notes.push(
        `${domain}: compared with ${ref.adapterId}, serving ${domain}, by its promotion record (not re-evaluable)`,
      );
    }
    const gate = decidePromotion(scores, incumbents, s.gate);
    const method = `gate on ${s.gateMethod} HR@1 over ${scores.map((x) => `${x.samples} ${x.domain}`).join(', ')} examples`;
    if (event.adapter_kind === 'cpt' && !s.promoteCpt) {
      return {
        promote: false,
        reasons: [
          'CPT adapter evaluated zero-shot and recorded; CPT adapters are not promoted (EVALUATOR_PROMOTE_CPT=false)',
          method,
          ...gate.reasons,
          ...notes,
        ],
        hr1,
      };
    }
    return { promote: gate.promote, reasons: [...gate.reasons, method, ...notes], hr1 };
  }

  /**
   * Per domain, the adapter to beat (the incumbent): the adapter serving that domain now (its
   * latest switch or rollback in serving_events; a legacy all-domains row only when its adapter
   * was promoted for the domain). None when the base model serves the domain. When serving has
   * recorded nothing for the domain (not started yet, or still loading the first promotion), the
   * newest adapter promoted for it.
   */
  private async references(candidateId: string, domains: readonly string[]): Promise<Map<string, Reference>> {
    const promoted = (await this.store.listPromotions({ limit: 500 })).filter(
      (p) => p.decision === 'promoted' && p.adapter_id !== candidateId,
    );
    const assignments = await this.store.servingByDomain();
    const out = new Map<string, Reference>();
    for (const domain of domains) {
      const covering = promoted.filter((p) => p.hr1[domain] !== undefined);
      const serving = servingOf(assignments, domain);
      const legacyElsewhere =
        serving?.domain === '' && !covering.some((p) => p.adapter_id === serving.adapter_id);
      if (serving && !legacyElsewhere) {
        if (serving.adapter_id === BASE_MODEL_ADAPTER_ID || serving.adapter_id === candidateId) continue;
        const promotion = promoted.find((p) => p.adapter_id === serving.adapter_id) ?? null;
        out.set(domain, { adapterId: serving.adapter_id, promotion });
        continue;
      }
      const pick = covering[0];
      if (pick) out.set(domain, { adapterId: pick.adapter_id, promotion: pick });
    }
    return out;
  }

  /**
   * The references' HR@1 on the very split the candidate is evaluated on: from their stored
   * evaluations when they were scored on the same examples, otherwise re-evaluated in the same
   * job (when their artefact still verifies and shares the candidate's base model).
   */
  private async referenceJobs(
    references: Map<string, Reference>,
    cases: Map<string, { splitId: string; cases: EvaluationCase[] }>,
    model: BaseModelSpec,
  ): Promise<{ cached: Map<string, number>; toEvaluate: EvaluationJob['adapters'] }> {
    const cached = new Map<string, number>();
    const missing = new Map<string, string[]>();
    const ids = [...new Set([...references.values()].map((r) => r.adapterId))];
    const stored = ids.length > 0 ? await this.store.listEvaluations({ adapterIds: ids }) : [];
    for (const [domain, ref] of references) {
      const want = cases.get(domain)!;
      const hit = stored.find(
        (r) =>
          r.adapter_id === ref.adapterId &&
          r.domain === domain &&
          r.split_id === want.splitId &&
          r.method === this.settings.gateMethod &&
          r.samples === want.cases.length,
      );
      if (hit) cached.set(domain, hit.hr1);
      else missing.set(ref.adapterId, [...(missing.get(ref.adapterId) ?? []), domain]);
    }
    const toEvaluate: EvaluationJob['adapters'] = [];
    for (const [adapterId, domains] of missing) {
      const adapter = await this.store.getAdapter(adapterId);
      if (!adapter) continue;
      try {
        const base = await this.artefacts.baseModel({
          base_model: String(adapter.lineage.base_model ?? ''),
          base_model_sha256: String(adapter.lineage.base_model_sha256 ?? ''),
        });
        if (base.sha256 !== model.sha256) continue;
        toEvaluate.push({
          adapterId,
          dir: await this.artefacts.adapterDir(adapter.uri, adapter.sha256),
          domains,
        });
      } catch {
        // Not re-evaluable (artefact gone or corrupted): its promotion record is the fallback.
      }
    }
    return { cached, toEvaluate };
  }

  private rows(e: DomainEvaluation): EvaluationRecord[] {
    const now = this.clock.now();
    return e.metrics.map((m) => ({
      evaluation_id: evaluationId(e, m.method),
      adapter_id: e.adapterId,
      split_id: e.splitId,
      domain: e.domain,
      method: m.method,
      samples: m.samples,
      hr1: m.hr1,
      hr1_valid: m.hr1Valid,
      valid_ratio: m.validRatio,
      hr3: m.hr3,
      hr5: m.hr5,
      ndcg3: m.ndcg3,
      ndcg5: m.ndcg5,
      report: { bucket_report: e.report, evaluated_by: 'evaluator' },
      created_ms: now,
    }));
  }
}
