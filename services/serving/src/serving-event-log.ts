import type { Kafka } from 'kafkajs';
import type { ServingEventRecord } from '@cprec/clickhouse';
import {
  decodeJson,
  DEFAULT_LIMITS,
  parseWith,
  ServingEventSchema,
  type ServingEventMessage,
} from '@cprec/contracts';

/** Unpaired UTF-16 surrogates (no UTF-8 form: the event could not be stored) as U+FFFD. */
const wellFormed = (text: string): string =>
  text.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD');

/** Longest detail published (the schema's bound); a refused load's reason is cut to it. */
const MAX_DETAIL = 4_000;

/** The message serving publishes for one of its events: the record, storable, and the replica. */
export function servingEventMessage(record: ServingEventRecord, instance: string): ServingEventMessage {
  return {
    event: record.event,
    domain: record.domain,
    adapter_id: record.adapter_id,
    previous_adapter_id: record.previous_adapter_id,
    // A cut inside a surrogate pair leaves half of it: made well-formed again (same length).
    detail: wellFormed(wellFormed(record.detail).slice(0, MAX_DETAIL)),
    ts_ms: record.ts_ms,
    instance,
  };
}

export interface OutboxOptions {
  /** Sends one message (key: the replica, so its events stay in order); throws when Kafka refuses it. */
  send(key: string, value: string): Promise<void>;
  onError?(message: string): void;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  sleep?(ms: number): Promise<void>;
}

interface Pending {
  record: ServingEventRecord;
  settle: (sent: boolean) => void;
}

/**
 * Serving's events, published in the order they happened, each retried until Kafka has it: an
 * event the broker refused (down, leader moving) is sent again after a backoff (doubling up to
 * `maxBackoffMs`) and nothing after it overtakes it, so the evaluator stores one replica's events
 * in order. `publish` resolves with true once the event is acknowledged (false: closed before it
 * was; it never rejects); `close` waits for what is queued for a while and reports what it gives up.
 */
export class ServingEventOutbox {
  private readonly queue: Pending[] = [];
  private draining = false;
  private closed = false;
  private wake: (() => void) | null = null;

  constructor(
    private readonly instance: string,
    private readonly options: OutboxOptions,
  ) {}

  /** Events not acknowledged yet. */
  get pending(): number {
    return this.queue.length;
  }

  publish(record: ServingEventRecord): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    return new Promise<boolean>((settle) => {
      this.queue.push({ record, settle });
      void this.drain();
    });
  }

  /** Waits up to `timeoutMs` for the queue to empty, then stops; resolves with what was left unsent. */
  async close(timeoutMs: number): Promise<ServingEventRecord[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.queue.length > 0 && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 20));
    this.closed = true;
    this.wake?.();
    const unsent = this.queue.splice(0);
    for (const p of unsent) p.settle(false);
    return unsent.map((p) => p.record);
  }

  private async drain(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    const initial = this.options.initialBackoffMs ?? 500;
    let backoff = initial;
    try {
      while (this.queue.length > 0 && !this.closed) {
        const head = this.queue[0];
        try {
          await this.options.send(
            this.instance,
            JSON.stringify(servingEventMessage(head.record, this.instance)),
          );
        } catch (err) {
          this.options.onError?.(
            `publishing ${head.record.event} of ${head.record.adapter_id} for ${head.record.domain} failed ` +
              `(${(err as Error).message}); retrying in ${backoff} ms`,
          );
          await this.pause(backoff);
          backoff = Math.min(this.options.maxBackoffMs ?? 30_000, backoff * 2);
          continue;
        }
        backoff = initial;
        if (this.queue[0] === head) this.queue.shift();
        head.settle(true);
      }
    } finally {
      this.draining = false;
    }
  }

  /** Waits before a retry; `close` cuts the wait short. */
  private pause(ms: number): Promise<void> {
    if (this.options.sleep) return this.options.sleep(ms);
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.wake = null;
        resolve();
      }, ms);
      this.wake = () => {
        clearTimeout(timer);
        this.wake = null;
        resolve();
      };
    });
  }
}

export interface ReadBackOptions {
  /** Give up (and resume from the table alone) after this long. */
  timeoutMs: number;
}

export interface ReadBack {
  /** The switches and rollbacks on the topic, in topic order (load_failed never decides what serves). */
  events: ServingEventRecord[];
  /** Messages on the topic that are not serving events (the evaluator dead-letters them). */
  skipped: number;
}

/**
 * Reads the serving-events topic from its beginning to where it ends now: the events every
 * replica published, including those the evaluator has not stored in `serving_events` yet (it
 * stores them asynchronously, and may be down). Serving merges them with the table at start
 * (`mergeAssignments`), so a replica that switched, published and restarted before the event was
 * stored still resumes what it last switched in. Reads with a consumer group of its own that never
 * commits (so every read starts at the beginning); the topic holds a few hundred bytes per switch.
 */
export async function readServingEvents(
  kafka: Kafka,
  topic: string,
  groupId: string,
  options: ReadBackOptions,
): Promise<ReadBack> {
  const admin = kafka.admin();
  await admin.connect();
  let ends: Map<number, bigint>;
  try {
    const offsets = await admin.fetchTopicOffsets(topic);
    ends = new Map(
      offsets.filter((o) => BigInt(o.high) > BigInt(o.low)).map((o) => [o.partition, BigInt(o.high)]),
    );
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
  const result: ReadBack = { events: [], skipped: 0 };
  if (ends.size === 0) return result;
  const consumer = kafka.consumer({ groupId, sessionTimeout: 30_000, heartbeatInterval: 3_000 });
  let finish: () => void = () => undefined;
  const done = new Promise<void>((resolve) => (finish = resolve));
  let timer: NodeJS.Timeout | undefined;
  try {
    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        const end = ends.get(partition);
        if (end === undefined) return;
        const decoded = decodeJson(message.value, DEFAULT_LIMITS);
        const parsed = decoded.ok ? parseWith(ServingEventSchema, decoded.value) : decoded;
        if (!parsed.ok) result.skipped++;
        else if (parsed.value.event !== 'load_failed') {
          const { instance: _instance, ...record } = parsed.value;
          result.events.push(record);
        }
        if (BigInt(message.offset) + 1n >= end) {
          ends.delete(partition);
          if (ends.size === 0) finish();
        }
      },
    });
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), options.timeoutMs);
    });
    if ((await Promise.race([done, timedOut])) === 'timeout')
      throw new Error(`not read to its end within ${options.timeoutMs} ms`);
    return result;
  } finally {
    clearTimeout(timer);
    await consumer.disconnect().catch(() => undefined);
  }
}
