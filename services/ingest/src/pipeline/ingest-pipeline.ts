import {
  ContractLimits,
  DeadLetter,
  InteractionEvent,
  ItemEvent,
  parseInteraction,
  parseItem,
  rejectionKindOf,
  type RejectionKind,
} from '@cprec/contracts';
import { deadLetterOf, errorMessage, type FailureClassifier } from '@cprec/messaging';
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
  /**
   * Failed inserts of unknown cause tried this many times before ClickHouse is pinged: down →
   * keep retrying (reported by `problem`); up → the rows are the problem (bisected).
   */
  retryAttempts: number;
  recentIdsCapacity: number;
  limits: ContractLimits;
  /** The item catalogue topic (every other topic carries interactions). */
  itemsTopic: string;
  /** How a failed insert is treated (permanent data error, ClickHouse unavailable, unknown). */
  classify: FailureClassifier;
  /** Null when ClickHouse answers, else what is down. */
  dependencies: () => Promise<string | null>;
  /** Names this consumer in its dead letters. */
  consumer?: string;
}

/** The metric label of a dead letter: its rejection kind (a closed set), never the reason text. */
export function reasonKind(letter: Pick<DeadLetter, 'reason_kind'>): RejectionKind {
  return letter.reason_kind ?? 'invalid';
}

/** A content fingerprint of an event (FNV-1a over every field but the id): tells a re-send from a reused id. */
export function eventFingerprint(e: InteractionEvent): number {
  const text = `${e.user_id}\u0000${e.item_id}\u0000${e.domain}\u0000${e.ts}\u0000${e.seq ?? ''}\u0000${e.platform ?? ''}\u0000${e.title ?? ''}`;
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

type StoreOutcome =
  { ok: true } | { ok: false; kind: 'storage_refused' | 'retries_exhausted'; error: string };

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * The ingest core, free of Kafka and NestJS so its delivery guarantees can be tested directly:
 *
 * 1. messages are parsed; rejects become dead letters (with their kind), accepted events are
 *    buffered next to the message each came from;
 * 2. `flush()` stores the buffered rows, then sends the dead letters, and only then commits the
 *    offsets of every message that was in the buffer. A failed insert is retried with backoff for
 *    as long as ClickHouse is unavailable (`problem` says so, for /health); when ClickHouse is up
 *    and refuses the rows themselves (a data error, or failures that outlast the retries), the
 *    batch is bisected: the halves that insert are stored, and each row ClickHouse refuses on its
 *    own is dead-lettered with the refusal and its original bytes. One message can never hold
 *    the others back.
 *
 * A crash between store and commit re-delivers messages; storage dedups on event_id, so the
 * outcome is exactly-once in what queries read. Offsets never run ahead of stored data.
 *
 * A reused event_id — an id seen within the last `recentIdsCapacity` events with different
 * content — is dead-lettered as a `conflict` (the first content is kept); see docs/ingest.md for
 * what storage does with one older than that window.
 */
export class IngestPipeline {
  private interactions: InteractionEvent[] = [];
  private interactionSources: RawMessage[] = [];
  private items: ItemEvent[] = [];
  private itemSources: RawMessage[] = [];
  private deadLetters: DeadLetter[] = [];
  private pendingOffsets = new Map<string, PartitionOffset>();
  private oldestBufferedAt: number | null = null;
  private readonly recent: RecentIds;
  /** Tail of the flush chain, settled (never rejects): the next flush starts after it. */
  private flushing: Promise<void> = Promise.resolve();
  private flushesInFlight = 0;
  private stopped = false;
  private storeFailing: { since: number; error: string; waitingFor: string | null } | null = null;

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

  /**
   * Why the pipeline cannot store right now (for /health): set once a failing insert has been
   * retried `retryAttempts` times and ClickHouse is down, or while it is unavailable; null otherwise.
   */
  get problem(): string | null {
    const f = this.storeFailing;
    if (f === null || f.waitingFor === null) return null;
    return `waiting for ${f.waitingFor}: inserts failing for ${Math.round((Date.now() - f.since) / 1000)} s (${f.error})`;
  }

  /** Parses and buffers messages; returns true when the buffer should be flushed now. */
  accept(messages: readonly RawMessage[]): boolean {
    let duplicates = 0;
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i]!;
      if (this.oldestBufferedAt === null) this.oldestBufferedAt = Date.now();
      if (m.topic === this.options.itemsTopic) {
        const parsed = parseItem(m.value, this.options.limits);
        if (parsed.ok) {
          this.items.push(parsed.value);
          this.itemSources.push(m);
        } else this.reject(m, parsed.reason, rejectionKindOf(parsed));
      } else {
        const parsed = parseInteraction(m.value, this.options.limits);
        if (!parsed.ok) this.reject(m, parsed.reason, rejectionKindOf(parsed));
        else {
          const event = parsed.value;
          const fingerprint = eventFingerprint(event);
          const seen = this.recent.get(event.event_id);
          if (seen === undefined) {
            this.recent.add(event.event_id, fingerprint);
            this.interactions.push(event);
            this.interactionSources.push(m);
          } else if (seen === fingerprint) duplicates++;
          else
            this.reject(
              m,
              `event_id: ${event.event_id} was already received with different content (user, item, domain, ts, seq, platform or title differ); the first is kept — send a new event_id for a new event`,
              'conflict',
            );
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

  private reject(m: RawMessage, reason: string, kind: RejectionKind): void {
    this.deadLetters.push(deadLetterOf(m, reason, kind, this.options.consumer ?? 'ingest'));
  }

  private async flushNow(keepAlive?: () => Promise<void>): Promise<void> {
    if (this.pendingOffsets.size === 0) return;
    const started = process.hrtime.bigint();
    // Take the buffer: messages accepted while this flush awaits the store go to a fresh one,
    // and their offsets are committed by a later flush, never by this one.
    const interactions = this.interactions;
    const interactionSources = this.interactionSources;
    const items = this.items;
    const itemSources = this.itemSources;
    const parsedDeadLetters = this.deadLetters;
    const pending = this.pendingOffsets;
    this.interactions = [];
    this.interactionSources = [];
    this.items = [];
    this.itemSources = [];
    this.deadLetters = [];
    this.pendingOffsets = new Map();
    this.oldestBufferedAt = null;
    // Rows storage refuses become dead letters of this flush (sent, like the parse rejects,
    // before the commit); a retried flush starts again from the parse rejects only.
    const deadLetters = [...parsedDeadLetters];
    let storedInteractions = 0;
    let storedItems = 0;
    try {
      storedInteractions = await this.storeAll(
        interactions,
        interactionSources,
        (rows) => this.store.insertInteractions(rows),
        keepAlive,
        deadLetters,
        (i) => this.recent.forget(interactions[i]!.event_id),
      );
      storedItems = await this.storeAll(
        items,
        itemSources,
        (rows) => this.store.insertItems(rows),
        keepAlive,
        deadLetters,
      );
      if (deadLetters.length > 0) await this.withRetry(() => this.dlq.send(deadLetters), keepAlive);
    } catch (err) {
      // Put the batch back in front so no later flush can commit past it.
      this.interactions = interactions.concat(this.interactions);
      this.interactionSources = interactionSources.concat(this.interactionSources);
      this.items = items.concat(this.items);
      this.itemSources = itemSources.concat(this.itemSources);
      this.deadLetters = parsedDeadLetters.concat(this.deadLetters);
      for (const [key, offset] of this.pendingOffsets) pending.set(key, offset);
      this.pendingOffsets = pending;
      this.oldestBufferedAt ??= Date.now();
      throw err;
    }
    // Everything up to these offsets is stored or dead-lettered; only now may the group move past them.
    await this.committer.commit([...pending.values()]);
    if (storedInteractions > 0) this.metrics.inserted('interactions', storedInteractions);
    if (storedItems > 0) this.metrics.inserted('items', storedItems);
    for (const d of deadLetters) this.metrics.deadLettered(reasonKind(d), 1);
    this.metrics.batchSeconds(Number(process.hrtime.bigint() - started) / 1e9);
  }

  /**
   * Inserts `rows`; when ClickHouse refuses them (and is up), bisects: each half is inserted on
   * its own, down to single rows, and a single refused row becomes a dead letter (with the
   * message it came from). Returns the number of rows stored.
   */
  private async storeAll<T>(
    rows: readonly T[],
    sources: readonly RawMessage[],
    insert: (rows: readonly T[]) => Promise<void>,
    keepAlive: (() => Promise<void>) | undefined,
    deadLetters: DeadLetter[],
    onRefused?: (index: number) => void,
    offset = 0,
  ): Promise<number> {
    if (rows.length === 0) return 0;
    const outcome = await this.insertOnce(() => insert(rows), keepAlive);
    if (outcome.ok) return rows.length;
    if (rows.length === 1) {
      onRefused?.(offset);
      deadLetters.push(
        deadLetterOf(
          sources[0]!,
          outcome.kind === 'storage_refused'
            ? `storage refused the row: ${outcome.error}`
            : `storing the row failed ${this.options.retryAttempts} times while ClickHouse was up: ${outcome.error}`,
          outcome.kind,
          this.options.consumer ?? 'ingest',
        ),
      );
      return 0;
    }
    const mid = rows.length >>> 1;
    const left = await this.storeAll(
      rows.slice(0, mid),
      sources.slice(0, mid),
      insert,
      keepAlive,
      deadLetters,
      onRefused,
      offset,
    );
    const right = await this.storeAll(
      rows.slice(mid),
      sources.slice(mid),
      insert,
      keepAlive,
      deadLetters,
      onRefused,
      offset + mid,
    );
    return left + right;
  }

  /**
   * One insert, retried while ClickHouse is unavailable. Resolves `ok`, or — ClickHouse being up —
   * the rows' refusal (a data error at once; an unknown error after `retryAttempts` tries).
   * Throws only when stopped.
   */
  private async insertOnce(
    action: () => Promise<void>,
    keepAlive?: () => Promise<void>,
  ): Promise<StoreOutcome> {
    let delay = this.options.retryInitialMs;
    let failures = 0;
    for (;;) {
      try {
        await action();
        this.storeFailing = null;
        return { ok: true };
      } catch (err) {
        if (this.stopped) throw new Error(`ingest stopped while the store was failing: ${errorMessage(err)}`);
        const cls = this.options.classify(err);
        if (cls === 'permanent') {
          this.storeFailing = null;
          return { ok: false, kind: 'storage_refused', error: errorMessage(err) };
        }
        failures++;
        const failing = (this.storeFailing ??= { since: Date.now(), error: '', waitingFor: null });
        failing.error = errorMessage(err);
        if (cls === 'unavailable') failing.waitingFor = 'ClickHouse';
        else if (failures >= this.options.retryAttempts) {
          const down = await this.options
            .dependencies()
            .catch((e: unknown) => `ClickHouse (check failed: ${errorMessage(e)})`);
          if (down === null) {
            this.storeFailing = null;
            return { ok: false, kind: 'retries_exhausted', error: errorMessage(err) };
          }
          failing.waitingFor = down;
        }
        this.metrics.storeRetry();
        await this.pause(delay, keepAlive);
        delay = Math.min(this.options.retryMaxMs, delay * 2);
      }
    }
  }

  /** Retries `action` until it succeeds (the dead-letter topic: nothing may be committed before it has them). */
  private async withRetry(action: () => Promise<void>, keepAlive?: () => Promise<void>): Promise<void> {
    let delay = this.options.retryInitialMs;
    for (;;) {
      try {
        await action();
        if (this.storeFailing?.waitingFor === 'the dead-letter topic') this.storeFailing = null;
        return;
      } catch (err) {
        if (this.stopped) throw new Error(`ingest stopped while the store was failing: ${errorMessage(err)}`);
        this.storeFailing ??= { since: Date.now(), error: '', waitingFor: null };
        this.storeFailing.error = errorMessage(err);
        this.storeFailing.waitingFor = 'the dead-letter topic';
        this.metrics.storeRetry();
        await this.pause(delay, keepAlive);
        delay = Math.min(this.options.retryMaxMs, delay * 2);
      }
    }
  }

  /** Sleeps in slices so the consumer keeps heartbeating and is not thrown out of the group. */
  private async pause(ms: number, keepAlive?: () => Promise<void>): Promise<void> {
    const until = Date.now() + ms;
    while (Date.now() < until && !this.stopped) {
      await sleep(Math.min(500, until - Date.now()));
      if (keepAlive) await keepAlive().catch(() => undefined);
    }
  }
}
