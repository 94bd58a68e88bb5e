export interface MicroBatcherOptions {
  /**
   * How long the first request of a batch waits for company, in ms. 0 (default): no timer — the
   * batch is whatever arrived before the event loop's next turn, which under load is every request
   * parsed while the previous (synchronous) batch was being scored, and at low load a batch of one
   * with no added latency.
   */
  windowMs?: number;
  /** Largest batch handed to `process` (the rest wait for the next one). */
  maxBatch: number;
  /**
   * Load shedding: a request that waited longer than this for its batch is rejected with
   * `shed(waitedMs)` instead of being scored (its client has likely given up; scoring it would
   * only delay the requests behind it). Undefined = never.
   */
  maxQueueMs?: number;
  shed?: (waitedMs: number) => Error;
  /**
   * Batches being processed at once (default 1 for a synchronous `process`, which cannot overlap
   * anyway). With scoring workers, one per worker: a batch is formed only when a worker can take
   * it, so under load requests wait in this queue and the next batch takes all of them.
   */
  maxConcurrent?: number;
  /** Called with the size of every batch (metrics). */
  onBatch?: (size: number) => void;
}

interface Pending<Req, Res> {
  request: Req;
  queuedAt: number;
  resolve: (res: Res) => void;
  reject: (err: unknown) => void;
}

/**
 * Collects concurrent requests and hands them to `process` together (the model scores a batch in
 * shared forwards, `LoadedRecommender.rankBatch`). Hand-written because it is a dozen lines tied
 * to the event loop's turn structure; the queue libraries on npm batch by count or time only.
 *
 * When a batch fails as a whole, each of its requests is retried alone, so one bad request
 * cannot fail the others that happened to share its batch.
 */
export class MicroBatcher<Req, Res> {
  private readonly queue: Pending<Req, Res>[] = [];
  private scheduled = false;
  private inFlight = 0;

  constructor(
    private readonly process: (batch: readonly Req[]) => Res[] | Promise<Res[]>,
    private readonly options: MicroBatcherOptions,
  ) {
    if (!Number.isInteger(options.maxBatch) || options.maxBatch < 1)
      throw new Error(`maxBatch must be a positive integer, got ${options.maxBatch}`);
    const concurrent = options.maxConcurrent ?? 1;
    if (!Number.isInteger(concurrent) || concurrent < 1)
      throw new Error(`maxConcurrent must be a positive integer, got ${options.maxConcurrent}`);
  }

  submit(request: Req): Promise<Res> {
    return new Promise<Res>((resolve, reject) => {
      this.queue.push({ request, queuedAt: performance.now(), resolve, reject });
      this.schedule();
    });
  }

  /** Requests waiting for a batch. */
  get pending(): number {
    return this.queue.length;
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    const flush = (): void => {
      this.scheduled = false;
      void this.flush();
    };
    const windowMs = this.options.windowMs ?? 0;
    if (windowMs > 0) setTimeout(flush, windowMs);
    else setImmediate(flush);
  }

  private async flush(): Promise<void> {
    const { maxQueueMs, shed } = this.options;
    if (maxQueueMs !== undefined) {
      const now = performance.now();
      while (this.queue.length > 0 && now - this.queue[0].queuedAt > maxQueueMs) {
        const late = this.queue.shift()!;
        const waited = now - late.queuedAt;
        late.reject(shed ? shed(waited) : new Error(`request shed after waiting ${Math.round(waited)} ms`));
      }
    }
    if (this.inFlight >= (this.options.maxConcurrent ?? 1)) return; // rescheduled when one finishes
    const batch = this.queue.splice(0, this.options.maxBatch);
    if (this.queue.length > 0) this.schedule();
    if (batch.length === 0) return;
    this.options.onBatch?.(batch.length);
    this.inFlight++;
    try {
      await this.run(batch);
    } finally {
      this.inFlight--;
      if (this.queue.length > 0) this.schedule();
    }
  }

  private async run(batch: Pending<Req, Res>[]): Promise<void> {
    try {
      const results = await this.process(batch.map((p) => p.request));
      if (results.length !== batch.length)
        throw new Error(`batch of ${batch.length} produced ${results.length} results`);
      batch.forEach((p, i) => p.resolve(results[i]));
    } catch (err) {
      if (batch.length === 1) return batch[0].reject(err);
      for (const p of batch) {
        try {
          const [result] = await this.process([p.request]);
          p.resolve(result);
        } catch (single) {
          p.reject(single);
        }
      }
    }
  }
}
