import { availableParallelism } from 'node:os';
import { extname, join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { prepareNativeEnvironment } from '@cprec/lm/kernels/native-addon';
import type { LoadedRecommender, RankRequest, ScoredCandidate } from '@cprec/training';
import type { ServingConfig } from '../config';
import type { FromWorker, ScoringWorkerData, ToWorker } from './scoring-protocol';

/** A loaded model that ranks batches of requests: in this thread or in the scoring workers. */
export interface Scorer {
  readonly adapterId: string;
  rankBatch(requests: readonly RankRequest[]): Promise<ScoredCandidate[][]>;
  dispose(): void;
}

/** The model on the serving thread itself (SERVING_WORKERS=0). */
export class InProcessScorer implements Scorer {
  constructor(private readonly model: LoadedRecommender) {}

  get adapterId(): string {
    return this.model.adapterId;
  }

  rankBatch(requests: readonly RankRequest[]): Promise<ScoredCandidate[][]> {
    try {
      return Promise.resolve(this.model.rankBatch(requests));
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  dispose(): void {
    this.model.dispose();
  }
}

interface Pending {
  resolve: (m: FromWorker) => void;
  reject: (err: Error) => void;
}

class ScoringThread {
  readonly pending = new Map<number, Pending>();
  dead: string | null = null;

  constructor(
    readonly worker: Worker,
    readonly index: number,
  ) {}

  fail(reason: string): void {
    if (this.dead) return;
    this.dead = reason;
    for (const p of this.pending.values()) p.reject(new Error(`scoring worker ${this.index} ${reason}`));
    this.pending.clear();
  }
}

/**
 * Scoring worker threads, so requests are ranked on every core while the serving thread keeps
 * parsing HTTP and reading the catalogue. Why threads: one request's scoring (a ~190-token prompt
 * and 20 candidate titles through the model) is ~30 ms of synchronous tfjs work, so a single
 * thread caps a serving process near 30 requests/s whatever the batching.
 *
 * Every worker holds every loaded adapter (`load` broadcasts and succeeds only if all workers
 * loaded it and passed the smoke test); `rankBatch` goes to the worker with the fewest batches in
 * flight. A worker that dies fails its in-flight batches and is left out; `problem` reports it so
 * the health check turns red and the orchestrator restarts the process.
 */
export class ScoringPool {
  private readonly threads: ScoringThread[];
  private nextId = 1;
  private nextHandle = 1;

  private constructor(threads: ScoringThread[]) {
    this.threads = threads;
  }

  /** Workers to start by default: one per core the process may use. */
  static defaultSize(): number {
    return availableParallelism();
  }

  /** Starts `size` workers and waits until each has its base model (or throws the first failure). */
  static async start(config: ServingConfig, size: number): Promise<ScoringPool> {
    if (!Number.isInteger(size) || size < 1) throw new Error(`scoring pool size must be ≥ 1, got ${size}`);
    // The workers load the native kernels; OpenMP and OpenBLAS read their settings from the
    // process environment, which only this (main) thread can set.
    prepareNativeEnvironment();
    const file = join(__dirname, `scoring-worker${extname(__filename)}`);
    // Under ts-node (development, tests) the worker needs the same TypeScript hooks as this thread.
    const execArgv =
      extname(__filename) === '.ts'
        ? ['--require', 'ts-node/register/transpile-only', '--require', 'tsconfig-paths/register']
        : [];
    const threads: ScoringThread[] = [];
    const ready: Promise<void>[] = [];
    for (let i = 0; i < size; i++) {
      const data: ScoringWorkerData = { config };
      const worker = new Worker(file, { workerData: data, execArgv });
      const thread = new ScoringThread(worker, i);
      threads.push(thread);
      ready.push(
        new Promise<void>((resolve, reject) => {
          const onMessage = (m: FromWorker) => {
            if (m.kind === 'ready') resolve();
            else if (m.kind === 'fatal') reject(new Error(`scoring worker ${i} could not start: ${m.error}`));
            else {
              const pending = thread.pending.get(m.id);
              if (!pending) return;
              thread.pending.delete(m.id);
              pending.resolve(m);
            }
          };
          worker.on('message', onMessage);
          worker.on('error', (err) => {
            thread.fail(`crashed: ${err.message}`);
            reject(err);
          });
          worker.on('exit', (code) => {
            thread.fail(`exited with code ${code}`);
            reject(new Error(`scoring worker ${i} exited with code ${code} while starting`));
          });
        }),
      );
    }
    const pool = new ScoringPool(threads);
    try {
      await Promise.all(ready);
    } catch (err) {
      await pool.close();
      throw err;
    }
    return pool;
  }

  get size(): number {
    return this.threads.length;
  }

  /** Live workers; batches in flight beyond this many queue inside the workers. */
  get alive(): number {
    return this.threads.filter((t) => !t.dead).length;
  }

  /** Why the pool is degraded, or null. */
  get problem(): string | null {
    const dead = this.threads.filter((t) => t.dead);
    if (dead.length === 0) return null;
    return dead.map((t) => `scoring worker ${t.index} ${t.dead}`).join('; ');
  }

  /**
   * Loads an adapter (dir = its verified local copy; null = the base model alone) in every
   * worker, each running the smoke inference. If any worker fails, the others drop it again.
   */
  async load(adapterId: string, dir: string | null): Promise<Scorer> {
    const handle = this.nextHandle++;
    const live = this.threads.filter((t) => !t.dead);
    if (live.length === 0) throw new Error(`no scoring worker is alive: ${this.problem}`);
    const results = await Promise.allSettled(
      live.map((t) => this.call(t, { kind: 'load', id: this.nextId++, handle, adapterId, dir })),
    );
    const failure = results.find((r) => r.status === 'rejected');
    if (failure) {
      this.broadcast({ kind: 'dispose', handle });
      throw (failure as PromiseRejectedResult).reason;
    }
    return new PooledScorer(this, handle, adapterId);
  }

  /** Ranks on the least busy live worker. */
  async rank(handle: number, requests: readonly RankRequest[]): Promise<ScoredCandidate[][]> {
    const live = this.threads.filter((t) => !t.dead);
    if (live.length === 0) throw new Error(`no scoring worker is alive: ${this.problem}`);
    const thread = live.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
    const reply = await this.call(thread, {
      kind: 'rank',
      id: this.nextId++,
      handle,
      requests: [...requests],
    });
    if (reply.kind !== 'ranked') throw new Error(`unexpected reply ${reply.kind}`);
    return reply.results;
  }

  release(handle: number): void {
    this.broadcast({ kind: 'dispose', handle });
  }

  async close(): Promise<void> {
    await Promise.all(
      this.threads.map(async (t) => {
        t.fail('was stopped');
        await t.worker.terminate().catch(() => undefined);
      }),
    );
  }

  private broadcast(message: ToWorker): void {
    for (const t of this.threads) if (!t.dead) t.worker.postMessage(message);
  }

  private call(thread: ScoringThread, message: Extract<ToWorker, { id: number }>): Promise<FromWorker> {
    return new Promise<FromWorker>((resolve, reject) => {
      thread.pending.set(message.id, {
        resolve: (reply) => (reply.kind === 'failed' ? reject(new Error(reply.error)) : resolve(reply)),
        reject,
      });
      thread.worker.postMessage(message);
    });
  }
}

class PooledScorer implements Scorer {
  private disposed = false;

  constructor(
    private readonly pool: ScoringPool,
    private readonly handle: number,
    readonly adapterId: string,
  ) {}

  rankBatch(requests: readonly RankRequest[]): Promise<ScoredCandidate[][]> {
    if (this.disposed) return Promise.reject(new Error(`scorer for ${this.adapterId} was disposed`));
    return this.pool.rank(this.handle, requests);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.pool.release(this.handle);
  }
}
