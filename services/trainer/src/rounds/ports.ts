import type { AdapterEvent, RoundEvent, RoundState } from '@cprec/contracts';
import type { AdapterRecord, RoundStateRecord, RoundStepRecord, StoredRoundState } from '@cprec/clickhouse';
import type { RoundJob } from '../runner/protocol';

/** The trainer's tables (it is their one writer); ControlPlaneRepository implements it. */
export interface RoundStorePort {
  insertRoundState(record: RoundStateRecord): Promise<void>;
  insertRoundSteps(records: readonly RoundStepRecord[]): Promise<void>;
  insertAdapter(record: AdapterRecord): Promise<void>;
  listRounds(options?: { limit?: number }): Promise<StoredRoundState[]>;
}

/** Kafka topics the trainer publishes on. */
export interface TrainerEventsPort {
  roundEvent(event: RoundEvent): Promise<void>;
  adapterEvent(event: AdapterEvent): Promise<void>;
}

/** A round ready to run: the runner's job plus what lineage needs. */
export interface PlannedRound {
  job: RoundJob;
  /** Artefact key of the trunk this round continues (null on the first round). */
  previousTrunkId: string | null;
  /** Human-readable base model name (path or `tiny-random`). */
  baseModel: string;
}

/** Builds (and remembers) a round's job: base model, previous trunk, watermarks, folders. */
export interface RoundPlannerPort {
  /** A new plan, saved so that `resume` returns it after a restart. */
  plan(roundId: string, targetDomains: readonly string[]): Promise<PlannedRound>;
  /** The saved plan of a round that already started, or null. */
  resume(roundId: string): Promise<PlannedRound | null>;
}

export interface TrainerMetricsPort {
  roundState(state: RoundState): void;
  steps(n: number, tokens: number, seconds: number, lastLoss: number): void;
  runnerCrash(): void;
}
