import {
  ContractLimits,
  DeadLetter,
  InteractionEvent,
  ItemEvent,
  parseInteraction,
  parseItem,
  TOPICS,
} from '@cprec/contracts';
import {
  DeadLetterSink,
  IngestMetrics,
  IngestStore,
  OffsetCommitter,
  PartitionOffset,
  RawMessage,
} from './ports';
import { RecentIds } from './recent-ids';

export interface IngestPipelineOptions {
  /** Flush once this many accepted rows are buffered. */
  maxBatchRows: number;
  /** Flush when the oldest buffered message is this old (ms). */
  flushIntervalMs: number;
  /** First and maximum delay between store retries while ClickHouse is unavailable. */
  retryInitialMs: number;
  retryMaxMs: number;
  recentIdsCapacity: number;
  limits: ContractLimits;
}

/** Short label for metrics: the text before the first colon of a reason ("title", "malformed JSON"). */
export function reasonKind(reason: string): string {
  const head = reason.split(':')[0]?.trim() ?? 'unknown';
  return head.length > 40 ? head.slice(0, 40) : head;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * The ingest core, free of Kafka and NestJS so its delivery guarantees can be tested directly:
 *
 * 1. messages are parsed; rejects become dead letters, accepted events are buffered;
 * 2. `flush()` stores the buffered rows (retrying with backoff for as long as the store is down —
 *    the caller keeps heartbeating and does not fetch more, which is the backpressure), then sends
 *    the dead letters, and only then commits the offsets of every message that was in the buffer.
 *
 * A crash between store and commit re-delivers messages; storage dedups on event_id, so the
 * outcome is exactly-once in what queries read. Offsets never run ahead of stored data.
 */
export class IngestPipeline {
  private interactions: InteractionEvent[] = [];
  private items: ItemEvent[] = [];
  private deadLetters: DeadLetter[] = [];
  private pendingOffsets = new Map<string, PartitionOffset>();
  private oldestBufferedAt: number | null = null;
  private readonly recent: RecentIds;
  /** Tail of the flush chain, settled (never rejects): the next flush starts after it. */
  private flushing: Promise<void> = Promise.resolve();
  private flushesInFlight = 0;
  private stopped = false;

  constructor(
    private readonly store: IngestStore,
    private readonly dlq: DeadLetterSink,
    private readonly committer: OffsetCommitter,
    private readonly metrics: IngestMetrics,
    private readonly options: IngestPipelineOptions,
  ) {
    this.recent = new RecentIds(options.recentIdsCapacity);
  }

  /** Number of buffered rows (accepted + dead letters). */
  get buffered(): number {
    return this.interactions.length + this.items.length + this.deadLetters.length;
  }

  /** Parses and buffers messages; returns true when the buffer should be flushed now. */
  accept(messages: readonly RawMessage[]): boolean {
    let duplicates = 0;
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i]!;
      if (this.oldestBufferedAt === null) this.oldestBufferedAt = Date.now();
      if (m.topic === TOPICS.items) {
        const parsed = parseItem(m.value, this.options.limits);
        if (parsed.ok) this.items.push(parsed.value);
        else this.reject(m, parsed.reason);
      } else {
        const parsed = parseInteraction(m.value, this.options.limits);
        if (!parsed.ok) this.reject(m, parsed.reason);
        else if (this.recent.has(parsed.value.event_id)) duplicates++;
        else {
          this.recent.add(parsed.value.event_id);
          this.interactions.push(parsed.value);
        }
      }
      // Only the last message of each run of one partition moves its commit position (offsets
      // rise within a partition); doing the key + BigInt work for every message showed in profiles.
      const next = messages[i + 1];
      if (next === undefined || next.partition !== m.partition || next.topic !== m.topic) {
        this.pendingOffsets.set(`${m.topic}\u0000${m.partition}`, {
          topic: m.topic,
          partition: m.partition,
          offset: (BigInt(m.offset) + 1n).toString(),
        });
      }
    }
    if (messages.length > 0) this.metrics.consumed(messages[0]!.topic, messages.length);
    if (duplicates > 0) this.metrics.deduplicated(duplicates);
    return this.shouldFlush();
  }

  shouldFlush(): boolean {
    if (this.pendingOffsets.size === 0) return false;
    // Dead letters count too: a flood of bad input must not grow the buffer until the timer fires.
    if (this.buffered >= this.options.maxBatchRows) return true;
    return (
      this.oldestBufferedAt !== null && Date.now() - this.oldestBufferedAt >= this.options.flushIntervalMs
    );
  }

  /** True while a flush has been started and has not yet committed (or failed). */
  get flushInFlight(): boolean {
    return this.flushesInFlight > 0;
  }

  /**
   * Stores, dead-letters and commits everything buffered. Flushes are chained: each one takes the
   * buffer only when every earlier flush has stored *and* committed (or failed and put its rows
   * back), so commits happen in offset order and a later flush can never commit past rows an
   * earlier one has not stored. `keepAlive` is called while waiting on a down store.
   */
  flush(keepAlive?: () => Promise<void>): Promise<void> {
    this.flushesInFlight++;
    const next = this.flushing.then(() => this.flushNow(keepAlive)).finally(() => this.flushesInFlight--);
    this.flushing = next.catch(() => undefined);
    return next;
  }

  /**
   * Double buffering for a consumer loop: waits until the flush in flight (if any) has finished,
   * then starts flushing the current buffer *without* waiting for it, so parsing the next batch
   * overlaps the store of this one. Waiting for the previous flush is the backpressure: while the
   * store is down the caller is held here (kafkajs fetches nothing more), so at most two batches
   * are in memory — the one being stored and the one being filled. The started flush's failure
   * (only possible after `stop()`) goes to `onError`; its rows are back in the buffer, uncommitted.
   */
  async flushBehind(
    keepAlive: (() => Promise<void>) | undefined,
    onError: (err: Error) => void,
  ): Promise<void> {
    await this.flushing;
    this.flush(keepAlive).catch(onError);
  }

  /** Resolves when every flush started so far has settled (never rejects). */
  whenIdle(): Promise<void> {
    return this.flushing;
  }

  /** Stops retry loops (shutdown); buffered but unstored rows are abandoned, their offsets uncommitted. */
  stop(): void {
    this.stopped = true;
  }

  private reject(m: RawMessage, reason: string): void {
    this.deadLetters.push({
      source_topic: m.topic,
      partition: m.partition,
      offset: m.offset,
      reason,
      original_base64: m.value ? m.value.toString('base64') : '',
      key: m.key ? m.key.toString('utf8') : null,
      ts: Date.now(),
    });
  }

  private async flushNow(keepAlive?: () => Promise<void>): Promise<void> {
    if (this.pendingOffsets.size === 0) return;
    const started = process.hrtime.bigint();
    // Take the buffer: messages accepted while this flush awaits the store go to a fresh one,
    // and their offsets are committed by a later flush, never by this one.
    const interactions = this.interactions;
    const items = this.items;
    const deadLetters = this.deadLetters;
    const pending = this.pendingOffsets;
    this.interactions = [];
    this.items = [];
    this.deadLetters = [];
    this.pendingOffsets = new Map();
    this.oldestBufferedAt = null;

    try {
      if (interactions.length > 0)
        await this.withRetry(() => this.store.insertInteractions(interactions), keepAlive);
      if (items.length > 0) await this.withRetry(() => this.store.insertItems(items), keepAlive);
      if (deadLetters.length > 0) await this.withRetry(() => this.dlq.send(deadLetters), keepAlive);
    } catch (err) {
      // Put the batch back in front so no later flush can commit past it.
      this.interactions = interactions.concat(this.interactions);
      this.items = items.concat(this.items);
      this.deadLetters = deadLetters.concat(this.deadLetters);
      for (const [key, offset] of this.pendingOffsets) pending.set(key, offset);
      this.pendingOffsets = pending;
      this.oldestBufferedAt ??= Date.now();
      throw err;
    }

    // Everything up to these offsets is stored; only now may the group move past them.
    await this.committer.commit([...pending.values()]);

    if (interactions.length > 0) this.metrics.inserted('interactions', interactions.length);
    if (items.length > 0) this.metrics.inserted('items', items.length);
    for (const d of deadLetters) this.metrics.deadLettered(reasonKind(d.reason), 1);
    this.metrics.batchSeconds(Number(process.hrtime.bigint() - started) / 1e9);
  }

  private async withRetry(action: () => Promise<void>, keepAlive?: () => Promise<void>): Promise<void> {
    let delay = this.options.retryInitialMs;
    for (;;) {
      try {
        await action();
        return;
      } catch (err) {
        if (this.stopped)
          throw new Error(`ingest stopped while the store was failing: ${(err as Error).message}`);
        this.metrics.storeRetry();
        // Sleep in slices so the consumer keeps heartbeating and is not thrown out of the group.
        const until = Date.now() + delay;
        while (Date.now() < until && !this.stopped) {
          await sleep(Math.min(500, until - Date.now()));
          if (keepAlive) await keepAlive().catch(() => undefined);
        }
        delay = Math.min(this.options.retryMaxMs, delay * 2);
      }
    }
  }
}
