import type { RejectionKind } from '@cprec/contracts';
import { deadLetterOf, type DeadLetterSink, type DeadLetterSource } from './dead-letters';
import { errorMessage, RejectedMessage, type FailureClassifier } from './failures';

/** A consumed message as handlers see it. */
export interface InboundMessage extends DeadLetterSource {
  /** Broker timestamp (epoch ms, as text). */
  timestamp: string;
}

export interface RetryPolicy {
  /** Attempts before a failure of unknown kind makes the consumer ask whether a dependency is down (≥ 1). */
  attempts: number;
  initialBackoffMs: number;
  maxBackoffMs: number;
}

export interface ProcessorObserver {
  handled?(topic: string): void;
  retried?(topic: string): void;
  deadLettered?(topic: string, kind: RejectionKind): void;
  /** A dependency is down and the message waits for it (null: it is back). */
  waiting?(problem: string | null): void;
}

export interface ProcessorLog {
  warn(line: string): void;
  error(line: string): void;
}

export interface MessageProcessorOptions {
  /** Names the consumer in dead letters and log lines. */
  consumer: string;
  handle(message: InboundMessage, heartbeat: () => Promise<void>): Promise<void>;
  classify: FailureClassifier;
  /** Null when every dependency answers, else what is down. */
  dependencies(): Promise<string | null>;
  deadLetters: DeadLetterSink;
  policy: RetryPolicy;
  /** A failure that means "stop, do not commit" (shutdown interrupting the handler). */
  isAbort?(err: unknown): boolean;
  log: ProcessorLog;
  observer?: ProcessorObserver;
  /** Injectable for tests. */
  sleep?(ms: number): Promise<void>;
  now?(): number;
}

export type ProcessOutcome = 'handled' | 'dead-lettered' | 'abandoned';

export interface ProcessContext {
  heartbeat(): Promise<void>;
  /** True once the message must be left uncommitted (shutdown, rebalance). */
  shouldStop(): boolean;
}

const HEARTBEAT_MS = 3_000;
const realSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const at = (m: InboundMessage) => `${m.topic}[${m.partition}]@${m.offset}`;

/**
 * The rule every consumer follows for one message: handle it; a failure is either permanent
 * (dead-letter it with the reason and the original bytes, then move on), the dependency being
 * unavailable (retry with backoff for as long as it is, reported as waiting), or unknown (bounded
 * retries, then: a dependency is down → keep waiting; everything is up → the message is the
 * problem, dead-letter it as `retries_exhausted`). One message can therefore never stop a
 * consumer for longer than its dependencies are down. Heartbeats continue while a handler runs
 * and while the processor waits. Kafka-free, so the policy is unit-tested with fakes.
 */
export class MessageProcessor {
  private readonly sleep: (ms: number) => Promise<void>;

  constructor(private readonly options: MessageProcessorOptions) {
    this.sleep = options.sleep ?? realSleep;
  }

  async process(message: InboundMessage, ctx: ProcessContext): Promise<ProcessOutcome> {
    const o = this.options;
    let failures = 0;
    let delay = o.policy.initialBackoffMs;
    for (;;) {
      let err: unknown;
      try {
        await this.withHeartbeats(ctx, () => o.handle(message, ctx.heartbeat));
        this.waiting(null);
        o.observer?.handled?.(message.topic);
        return 'handled';
      } catch (caught) {
        err = caught;
      }
      if (ctx.shouldStop() || o.isAbort?.(err)) {
        this.waiting(null);
        return 'abandoned';
      }
      const cls = err instanceof RejectedMessage ? 'permanent' : o.classify(err);
      if (cls === 'permanent') {
        const kind: RejectionKind = err instanceof RejectedMessage ? err.kind : 'unprocessable';
        return this.deadLetter(message, errorMessage(err), kind, ctx);
      }
      failures++;
      o.observer?.retried?.(message.topic);
      if (cls === 'unavailable') {
        this.waiting(
          `waiting for a dependency: ${at(message)} failed ${failures} time(s): ${errorMessage(err)}`,
        );
      } else if (failures >= o.policy.attempts) {
        const down = await o
          .dependencies()
          .catch((e: unknown) => `dependency check failed: ${errorMessage(e)}`);
        if (down === null)
          return this.deadLetter(
            message,
            `failed ${failures} times while every dependency was up; last error: ${errorMessage(err)}`,
            'retries_exhausted',
            ctx,
          );
        this.waiting(`waiting for ${down}: ${at(message)} failed ${failures} time(s): ${errorMessage(err)}`);
      }
      o.log.warn(`${o.consumer}: ${at(message)} failed (${cls}, attempt ${failures}): ${errorMessage(err)}`);
      if (!(await this.pause(delay, ctx))) {
        this.waiting(null);
        return 'abandoned';
      }
      delay = Math.min(o.policy.maxBackoffMs, delay * 2);
    }
  }

  private waiting(problem: string | null): void {
    this.options.observer?.waiting?.(problem);
  }

  /** Sends the dead letter, retrying for as long as the broker does not take it. */
  private async deadLetter(
    message: InboundMessage,
    reason: string,
    kind: RejectionKind,
    ctx: ProcessContext,
  ): Promise<ProcessOutcome> {
    const o = this.options;
    const record = deadLetterOf(message, reason, kind, o.consumer, o.now?.() ?? Date.now());
    let delay = o.policy.initialBackoffMs;
    for (;;) {
      try {
        await o.deadLetters.send([record]);
        this.waiting(null);
        o.observer?.deadLettered?.(message.topic, kind);
        o.log.warn(`${o.consumer}: ${at(message)} dead-lettered (${kind}): ${reason.slice(0, 500)}`);
        return 'dead-lettered';
      } catch (err) {
        this.waiting(`waiting for the dead-letter topic: ${errorMessage(err)}`);
        o.log.error(`${o.consumer}: dead letter for ${at(message)} not sent: ${errorMessage(err)}`);
        if (!(await this.pause(delay, ctx))) {
          this.waiting(null);
          return 'abandoned';
        }
        delay = Math.min(o.policy.maxBackoffMs, delay * 2);
      }
    }
  }

  /** Sleeps in slices, heartbeating; false when asked to stop meanwhile. */
  private async pause(ms: number, ctx: ProcessContext): Promise<boolean> {
    const now = () => this.options.now?.() ?? Date.now();
    const until = now() + ms;
    while (now() < until) {
      if (ctx.shouldStop()) return false;
      await this.sleep(Math.min(500, until - now()));
      await ctx.heartbeat().catch(() => undefined);
    }
    return !ctx.shouldStop();
  }

  private async withHeartbeats<T>(ctx: ProcessContext, work: () => Promise<T>): Promise<T> {
    const beat = setInterval(() => void ctx.heartbeat().catch(() => undefined), HEARTBEAT_MS);
    try {
      return await work();
    } finally {
      clearInterval(beat);
    }
  }
}
