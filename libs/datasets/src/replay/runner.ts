import type { ProgressStore, ReplayRecord, ReplaySink, ReplaySource } from './model';

const DAY_MS = 86_400_000;

export interface ReplayClock {
  now(): number;
  /** Resolves after `ms`, or early when the signal aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const systemClock: ReplayClock = {
  now: () => performance.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve) => {
      if (signal?.aborted) return resolve();
      const done = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, ms));
      signal?.addEventListener('abort', done, { once: true });
    }),
};

export interface ReplayOptions {
  /** Identifies the record stream; progress saved under another key is ignored. */
  key: string;
  /** Records per sink call (one Kafka request); bigger batches amortise round trips. */
  batchSize?: number;
  /** Event time replayed per wall-clock second, in days; `null` = as fast as possible. */
  speedDaysPerSecond?: number | null;
  /**
   * Live from this event time on: interactions before it are the platform's history (the
   * backlog) and go out as fast as possible (a rate cap still applies); pacing by
   * `speedDaysPerSecond` starts with the first interaction at or after it, whose event time is
   * then the clock's origin. `null` = paced from the first interaction (when a speed is given).
   */
  liveFromMs?: number | null;
  /** Upper bound on records per second; `null` = none. */
  rateCap?: number | null;
  /** Stop after this position of the stream (counted from its start, so a resume keeps the end). */
  limit?: number | null;
  /** Continue after the acknowledged records of a previous run with the same key. */
  resume?: boolean;
  signal?: AbortSignal;
  clock?: ReplayClock;
  onProgress?: (stats: ReplayStats) => void;
}

export interface ReplayStats {
  /** Records acknowledged by the sink in this run. */
  sent: number;
  /** Records skipped because a previous run had them acknowledged. */
  skipped: number;
  /** Position reached in the stream (skipped + sent). */
  position: number;
  /** Stream length (capped by the limit) when known. */
  total: number | null;
  elapsedMs: number;
  eventsPerSecond: number;
  items: number;
  interactions: number;
  /** Event time of the newest interaction acknowledged in this run (the stream clock), or null. */
  streamMs: number | null;
  /** Whether the paced (live) part of the stream has begun. */
  live: boolean;
}

export interface ReplaySummary extends ReplayStats {
  /** `completed`: end of stream or limit; `interrupted`: stopped by the signal (resumable). */
  outcome: 'completed' | 'interrupted' | 'already-complete';
}

/**
 * Sends a deterministic record stream to a sink in batches, paced by event time and/or a rate
 * cap, and persists after every acknowledged batch how far it got. Because the stream is
 * deterministic, resuming = skipping the acknowledged prefix; a batch in flight when the process
 * dies is re-sent on resume, and its deterministic event_ids let storage drop the overlap.
 * Framework-free: the Kafka sink and the progress file are injected.
 */
export class ReplayRunner {
  constructor(
    private readonly sink: ReplaySink,
    private readonly store: ProgressStore,
  ) {}

  async run(source: ReplaySource, options: ReplayOptions): Promise<ReplaySummary> {
    const clock = options.clock ?? systemClock;
    const batchSize = Math.max(1, options.batchSize ?? 500);
    const rateCap = options.rateCap ?? null;
    const speed = options.speedDaysPerSecond ?? null;
    const limit = options.limit ?? null;
    const liveFrom = options.liveFromMs ?? null;
    const signal = options.signal;
    if (rateCap !== null && !(rateCap > 0)) throw new Error('rateCap must be > 0');
    if (speed !== null && !(speed > 0)) throw new Error('speedDaysPerSecond must be > 0');

    const previous = options.resume ? await this.store.load() : null;
    const resumeFrom = previous && previous.key === options.key ? previous.acknowledged : 0;
    const startedAt = clock.now();
    let sent = 0;
    let items = 0;
    let interactions = 0;
    let position = 0;
    let batch: ReplayRecord[] = [];
    // Records per batch under a rate cap: about ten batches per second keep the pace smooth.
    const effectiveBatch =
      rateCap === null ? batchSize : Math.max(1, Math.min(batchSize, Math.floor(rateCap / 10)));
    let eventOrigin: number | null = null;
    // Wall-clock time the event origin maps to: the run's start, or when the live part began.
    let wallOrigin = startedAt;
    let streamMs: number | null = null;

    const stats = (): ReplayStats => {
      const elapsedMs = clock.now() - startedAt;
      const total =
        source.total === null ? null : limit === null ? source.total : Math.min(source.total, limit);
      return {
        sent,
        skipped: Math.min(resumeFrom, position),
        position,
        total,
        elapsedMs,
        eventsPerSecond: elapsedMs > 0 ? (sent * 1000) / elapsedMs : 0,
        items,
        interactions,
        streamMs,
        live: eventOrigin !== null,
      };
    };
    const save = (done: boolean): Promise<void> =>
      this.store.save({
        key: options.key,
        acknowledged: resumeFrom + sent,
        done,
        updatedAt: new Date().toISOString(),
      });

    const flush = async (): Promise<void> => {
      if (batch.length === 0) return;
      if (rateCap !== null) {
        // Send a batch no earlier than when its last record is due under the cap.
        const dueAt = startedAt + ((sent + batch.length) * 1000) / rateCap;
        const wait = dueAt - clock.now();
        if (wait > 0) await clock.sleep(wait, signal);
        if (signal?.aborted) return;
      }
      await this.sink.send(batch);
      for (const record of batch) {
        if (record.kind === 'item') items++;
        else {
          interactions++;
          streamMs = streamMs === null ? record.event.ts : Math.max(streamMs, record.event.ts);
        }
      }
      sent += batch.length;
      batch = [];
      await save(false);
      options.onProgress?.(stats());
    };

    if (previous?.done && previous.key === options.key) {
      return { ...stats(), skipped: resumeFrom, position: resumeFrom, outcome: 'already-complete' };
    }

    let stoppedEarly = false;
    for await (const record of source.records()) {
      if (limit !== null && position >= limit) {
        stoppedEarly = true;
        break;
      }
      if (signal?.aborted) break;
      if (position < resumeFrom) {
        position++;
        if (position % 50_000 === 0) options.onProgress?.(stats());
        continue;
      }
      if (
        speed !== null &&
        record.kind === 'interaction' &&
        (liveFrom === null || record.event.ts >= liveFrom)
      ) {
        if (eventOrigin === null) {
          if (liveFrom !== null) {
            // The backlog goes out before the clock starts.
            await flush();
            if (signal?.aborted) break;
            wallOrigin = clock.now();
          }
          eventOrigin = record.event.ts;
        }
        const dueAt = wallOrigin + ((record.event.ts - eventOrigin) / DAY_MS / speed) * 1000;
        if (dueAt > clock.now()) {
          await flush();
          if (signal?.aborted) break;
          await clock.sleep(dueAt - clock.now(), signal);
          if (signal?.aborted) break;
        }
      }
      batch.push(record);
      position++;
      if (batch.length >= effectiveBatch) {
        await flush();
      }
    }
    // An interrupted run drops its unsent batch: it was never acknowledged, so resume re-sends it.
    if (!signal?.aborted) await flush();
    const interrupted = signal?.aborted === true;
    if (!interrupted) await save(!stoppedEarly);
    options.onProgress?.(stats());
    return { ...stats(), position: resumeFrom + sent, outcome: interrupted ? 'interrupted' : 'completed' };
  }
}
