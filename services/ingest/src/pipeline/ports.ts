import type { DeadLetter, InteractionEvent, ItemEvent, RejectionKind } from '@cprec/contracts';

/** Where accepted events are stored; inserts must be idempotent on event_id / (domain, item_id). */
export interface IngestStore {
  insertInteractions(rows: readonly InteractionEvent[]): Promise<void>;
  insertItems(rows: readonly ItemEvent[]): Promise<void>;
}

/** Where rejected messages go, acknowledged by the broker before offsets are committed. */
export interface DeadLetterSink {
  send(records: readonly DeadLetter[]): Promise<void>;
}

export interface PartitionOffset {
  topic: string;
  partition: number;
  /** The next offset to consume (Kafka commit semantics: last processed + 1). */
  offset: string;
}

/** Commits consumer offsets; called only after the rows up to those offsets are stored. */
export interface OffsetCommitter {
  commit(offsets: readonly PartitionOffset[]): Promise<void>;
}

export interface IngestMetrics {
  consumed(topic: string, n: number): void;
  inserted(kind: 'interactions' | 'items', n: number): void;
  deduplicated(n: number): void;
  deadLettered(kind: RejectionKind, n: number): void;
  batchSeconds(seconds: number): void;
  storeRetry(): void;
}

export interface RawMessage {
  topic: string;
  partition: number;
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
}
