import type { RankRequest, ScoredCandidate } from '@cprec/training';
import type { ServingConfig } from '../config';

/** What the serving process sends a scoring worker (one message at a time per worker id). */
export type ToWorker =
  | { kind: 'load'; id: number; handle: number; adapterId: string; dir: string | null }
  | { kind: 'rank'; id: number; handle: number; requests: RankRequest[] }
  | { kind: 'dispose'; handle: number };

/** Replies, matched to requests by id; `ready` once the worker has its base model. */
export type FromWorker =
  | { kind: 'ready'; backend: string }
  | { kind: 'fatal'; error: string }
  | { kind: 'loaded'; id: number }
  | { kind: 'ranked'; id: number; results: ScoredCandidate[][] }
  | { kind: 'failed'; id: number; error: string };

/** workerData of a scoring worker. */
export interface ScoringWorkerData {
  config: ServingConfig;
}
