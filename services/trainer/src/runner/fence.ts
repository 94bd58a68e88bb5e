/**
 * A runner's view of its parent's lease. The parent sends the time its lease is valid until
 * (after every confirmation by the Kafka group); the runner checks it at each step boundary. A
 * parent that is paused (SIGSTOP) or cut off sends nothing more, so its runner stops by its own
 * clock — no message has to reach it. Times are the one machine's wall clock (parent and runner
 * are processes of one host).
 */
export class RunnerFence {
  private validUntil: number;

  constructor(
    validUntil: number,
    private readonly now: () => number = () => Date.now(),
  ) {
    this.validUntil = validUntil;
  }

  /** A renewal; an older time (messages reordered) never shortens the lease. */
  renew(validUntil: number): void {
    this.validUntil = Math.max(this.validUntil, validUntil);
  }

  expired(): boolean {
    return this.now() >= this.validUntil;
  }
}
