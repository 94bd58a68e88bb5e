import type { CorpusStats } from '@cprec/contracts';
import type { DomainDelta, RebuildResult } from '@cprec/clickhouse';

/** What the loop needs from the outside world (ClickHouse, Kafka, the clock). */
export interface SequencerPorts {
  /** Idempotent set-up (database, migrations, producer); called until it succeeds. */
  setup(): Promise<void>;
  rebuild(): Promise<RebuildResult>;
  deltas(fromMs: number, toMs: number): Promise<DomainDelta[]>;
  publish(stats: CorpusStats): Promise<void>;
  now(): number;
}

export interface SequencerObserver {
  rebuilt(result: RebuildResult): void;
  published(stats: CorpusStats): void;
  failed(stage: 'setup' | 'rebuild' | 'publish', error: Error): void;
}

export interface LoopOptions {
  intervalMs: number;
  retryInitialMs: number;
  retryMaxMs: number;
}

export type RoundOutcome =
  | { ok: true; rebuild: RebuildResult; published: CorpusStats | null }
  | { ok: false; stage: 'setup' | 'rebuild' | 'publish'; error: Error };

/**
 * One sequencer round: (set-up if needed) → incremental rebuild → CorpusStats for the interval
 * since the last *published* watermark. A failed publish keeps its interval pending, so the next
 * successful one covers it and no new interactions are left out of the statistics. Nothing here
 * throws: failures are outcomes, and `delayAfter` turns them into an exponential back-off.
 */
export class SequencerLoop {
  private ready = false;
  /** Start of the interval the next CorpusStats covers (null: take the rebuild's previous watermark). */
  private pendingFromMs: number | null = null;
  private failuresInARow = 0;
  lastOutcome: RoundOutcome | null = null;

  constructor(
    private readonly ports: SequencerPorts,
    private readonly observer: SequencerObserver,
    private readonly options: LoopOptions,
  ) {}

  async round(): Promise<RoundOutcome> {
    const outcome = await this.attempt();
    this.lastOutcome = outcome;
    if (outcome.ok) this.failuresInARow = 0;
    else {
      this.failuresInARow++;
      this.observer.failed(outcome.stage, outcome.error);
    }
    return outcome;
  }

  /** Pause before the next round: the interval, or a doubling back-off after failures. */
  delayAfter(): number {
    if (this.failuresInARow === 0) return this.options.intervalMs;
    const backoff = this.options.retryInitialMs * 2 ** Math.min(this.failuresInARow - 1, 20);
    return Math.min(this.options.retryMaxMs, backoff);
  }

  private async attempt(): Promise<RoundOutcome> {
    if (!this.ready) {
      try {
        await this.ports.setup();
        this.ready = true;
      } catch (err) {
        return { ok: false, stage: 'setup', error: asError(err) };
      }
    }
    let rebuild: RebuildResult;
    try {
      rebuild = await this.ports.rebuild();
    } catch (err) {
      // Set up again before the next attempt: after an outage the database may have been
      // recreated empty (set-up is idempotent and cheap when nothing is missing).
      this.ready = false;
      return { ok: false, stage: 'rebuild', error: asError(err) };
    }
    this.observer.rebuilt(rebuild);
    const from = this.pendingFromMs ?? rebuild.previousWatermarkMs;
    if (rebuild.watermarkMs <= from) return { ok: true, rebuild, published: null };
    this.pendingFromMs = from;
    try {
      const deltas = await this.ports.deltas(from, rebuild.watermarkMs);
      const stats: CorpusStats = {
        watermark: rebuild.watermarkMs,
        previous_watermark: from,
        domains: deltas.map((d) => ({
          domain: d.domain,
          new_interactions: d.newInteractions,
          new_users: d.newUsers,
          total_interactions: d.totalInteractions,
        })),
        ts: this.ports.now(),
      };
      await this.ports.publish(stats);
      this.pendingFromMs = null;
      this.observer.published(stats);
      return { ok: true, rebuild, published: stats };
    } catch (err) {
      return { ok: false, stage: 'publish', error: asError(err) };
    }
  }
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
