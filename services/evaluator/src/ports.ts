import type { ControlPlaneRepository } from '@cprec/clickhouse';
import type { AdapterEvent, AdapterLineage, DriftEvent, RoundCommand } from '@cprec/contracts';
import type { EvaluationCase } from '@cprec/training';
import type { BaseModelSpec, EvaluationJob, EvaluationJobResult } from './evaluation/protocol';

/**
 * What the evaluator's use cases need from the world, as small interfaces: the service wires
 * ClickHouse, Kafka, the artefact store and evaluation processes behind them; unit specs use
 * in-memory fakes.
 */

/** The control-plane tables the evaluator writes (evaluations, promotions, drift) and reads. */
export type ControlPlanePort = Pick<
  ControlPlaneRepository,
  | 'insertEvaluations'
  | 'insertPromotion'
  | 'insertDriftObservations'
  | 'insertDriftAlert'
  | 'listPromotions'
  | 'listEvaluations'
  | 'getAdapter'
  | 'servingByDomain'
  | 'driftSeries'
>;

/**
 * The adapter id serving records when a domain is answered by the base model alone (a rollback to
 * `base`): no adapter is the incumbent there, nothing to gate against or watch.
 */
export const BASE_MODEL_ADAPTER_ID = 'base';

/** A split the evaluator wants frozen (the sequencer writes it). */
export interface SplitSpec {
  splitId: string;
  kind: 'loo' | 'window';
  domains: string[];
  seed: number;
  windowStartMs?: number;
  windowEndMs?: number;
}

export interface SplitPort {
  /** Asks the sequencer to freeze the split (unless it exists) and waits until it does. */
  ensureSplit(spec: SplitSpec): Promise<void>;
  /** The first `limit` examples of one domain of a split (fixed order), with titles. */
  readCases(
    splitId: string,
    domain: string,
    kind: 'loo-test' | 'window',
    limit: number,
  ): Promise<EvaluationCase[]>;
}

export interface ArtefactPort {
  /**
   * A verified local directory of the adapter at `uri`: refuses an artefact that is not ours,
   * whose recorded sha256 differs from `sha256`, or whose content no longer matches.
   */
  adapterDir(uri: string, sha256: string): Promise<string>;
  /** The base model an adapter was trained on (refused when it is not the one configured). */
  baseModel(lineage: Pick<AdapterLineage, 'base_model' | 'base_model_sha256'>): Promise<BaseModelSpec>;
}

export interface EvaluationRunner {
  run(job: EvaluationJob): Promise<EvaluationJobResult>;
}

export interface EventsPort {
  adapterEvent(event: AdapterEvent): Promise<void>;
  driftEvent(event: DriftEvent): Promise<void>;
  roundCommand(command: RoundCommand): Promise<void>;
}

export interface InteractionsPort {
  /** The newest event time (ts_ms) among ingested interactions, or null when there are none. */
  newestEventMs(): Promise<number | null>;
}

export interface Clock {
  now(): number;
}

/** The evaluation was interrupted (shutdown): record no decision, let the message be redelivered. */
export class EvaluationAbortedError extends Error {
  override readonly name = 'EvaluationAbortedError';
}

/** Builds the job every use case runs, from what the service is configured with. */
export interface JobSettings {
  backend: EvaluationJob['backend'];
  budget: EvaluationJob['budget'];
}
