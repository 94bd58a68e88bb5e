import type { Consumer } from 'kafkajs';

const seconds = (ms: number): string => `${Math.round(ms / 1000)} s`;

/**
 * What /health says about a Kafka consumer, from kafkajs's own events: not yet (or no longer) in
 * its group, crashed, waiting on a dependency, or stalled (no fetch for a while although it is
 * not busy with a message). Every state clears by itself when the consumer consumes again — a
 * consumer that kafkajs restarts after a broker restart is healthy again at its next fetch.
 */
export class ConsumerLiveness {
  private joined = false;
  private crash: string | null = null;
  private lastFetchAt: number;
  private busyCount = 0;
  private waitingOn: string | null = null;
  private stopped = false;

  constructor(private readonly options: { stalledAfterMs: number; now?: () => number }) {
    this.lastFetchAt = this.now();
  }

  private now(): number {
    return this.options.now?.() ?? Date.now();
  }

  /** Follows a consumer's events (call again for each new consumer instance). */
  attach(consumer: Consumer): void {
    const e = consumer.events;
    consumer.on(e.GROUP_JOIN, () => this.consuming());
    consumer.on(e.FETCH_START, () => this.consuming());
    consumer.on(e.CRASH, (event) => this.crashed(event.payload.error.message, event.payload.restart));
    consumer.on(e.STOP, () => (this.joined = false));
    consumer.on(e.DISCONNECT, () => (this.joined = false));
  }

  /** The consumer fetched or joined its group: it is alive. */
  consuming(): void {
    this.joined = true;
    this.crash = null;
    this.lastFetchAt = this.now();
  }

  crashed(message: string, restarting: boolean): void {
    this.joined = false;
    this.crash = `consumer crashed (${message}); ${restarting ? 'kafkajs is restarting it' : 'restarting it'}`;
  }

  /** Busy with messages (a long handler fetches nothing meanwhile, which is not a stall). */
  busy(on: boolean): void {
    this.busyCount = Math.max(0, this.busyCount + (on ? 1 : -1));
    if (!on) this.lastFetchAt = this.now();
  }

  /** Waiting for a dependency that is down (null when it is back). */
  waiting(problem: string | null): void {
    this.waitingOn = problem;
  }

  /** Shutting down on purpose: not a problem to report. */
  stop(): void {
    this.stopped = true;
  }

  problem(): string | null {
    if (this.stopped) return 'shutting down';
    if (this.waitingOn !== null) return this.waitingOn;
    if (this.crash !== null) return this.crash;
    if (!this.joined) return 'consumer has not joined its group';
    const idleFor = this.now() - this.lastFetchAt;
    if (this.busyCount === 0 && idleFor > this.options.stalledAfterMs)
      return `consumer stalled: no fetch for ${seconds(idleFor)}`;
    return null;
  }
}
