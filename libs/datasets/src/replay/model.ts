import type { InteractionEvent, ItemEvent } from '@cprec/contracts';

/** One message of a replay, in the order it must be sent. */
export type ReplayRecord =
  { kind: 'item'; event: ItemEvent } | { kind: 'interaction'; event: InteractionEvent };

/** Where a replay goes. `send` resolves only once every record of the batch is acknowledged. */
export interface ReplaySink {
  send(batch: readonly ReplayRecord[]): Promise<void>;
}

/** What a replay has durably delivered; enough to resume without gaps. */
export interface ReplayProgress {
  /** Identifies the replay (hash of the arguments that define its record stream). */
  key: string;
  /** Records 0..acknowledged-1 of the deterministic stream have been acknowledged by the sink. */
  acknowledged: number;
  /** The whole stream was acknowledged (a run stopped by its limit is not done). */
  done: boolean;
  updatedAt: string;
}

export interface ProgressStore {
  load(): Promise<ReplayProgress | null>;
  save(progress: ReplayProgress): Promise<void>;
}

/**
 * A deterministic, re-readable record stream. `total` may become known only while streaming
 * (e.g. after the time-order sort has counted its input); it is `null` until then.
 */
export interface ReplaySource {
  records(): AsyncIterable<ReplayRecord>;
  readonly total: number | null;
}
