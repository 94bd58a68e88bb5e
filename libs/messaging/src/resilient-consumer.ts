import type { Consumer, ConsumerConfig, EachBatchPayload, Kafka } from 'kafkajs';
import { ConsumerLiveness } from './consumer-liveness';
import { errorMessage } from './failures';
import { MessageProcessor, type MessageProcessorOptions, type ProcessorLog } from './message-processor';

export interface ResilientConsumerOptions extends Omit<MessageProcessorOptions, 'log'> {
  kafka: Kafka;
  groupId: string;
  topics: readonly string[];
  fromBeginning: boolean;
  /** Extra kafkajs consumer settings (session timeout, …). */
  consumerConfig?: Partial<ConsumerConfig>;
  /** Not busy and no fetch for this long: /health reports the consumer as stalled. */
  stalledAfterMs?: number;
  log: ProcessorLog & { info(line: string): void };
  /** Sees each new kafkajs consumer before it connects (a GroupLease attaches to it). */
  onConsumer?: (consumer: Consumer) => void;
}

const RESTART_MIN_MS = 1_000;
const RESTART_MAX_MS = 30_000;

/**
 * A kafkajs consumer group member that applies MessageProcessor's rule to every message: handled
 * messages and dead-lettered ones are committed one by one, so the consumer always moves on; a
 * message is left uncommitted only when the consumer stops or loses its partition. `problem()`
 * is its /health line (ConsumerLiveness). A crash kafkajs does not recover from itself is
 * recovered here: a new consumer instance rejoins the group after a backoff.
 */
export class ResilientConsumer {
  readonly liveness: ConsumerLiveness;
  private readonly processor: MessageProcessor;
  private consumer: Consumer | null = null;
  private stopping = false;
  private restartTimer: NodeJS.Timeout | null = null;
  private restartDelay = RESTART_MIN_MS;

  constructor(private readonly options: ResilientConsumerOptions) {
    this.liveness = new ConsumerLiveness({ stalledAfterMs: options.stalledAfterMs ?? 120_000 });
    const observer = options.observer;
    this.processor = new MessageProcessor({
      ...options,
      observer: {
        ...observer,
        waiting: (problem) => {
          this.liveness.waiting(problem);
          observer?.waiting?.(problem);
        },
      },
    });
  }

  /** The /health line: null when consuming. */
  problem(): string | null {
    return this.liveness.problem();
  }

  /** Joins the group and starts consuming (throws when Kafka cannot be reached at all). */
  async start(): Promise<void> {
    const o = this.options;
    const consumer = o.kafka.consumer({
      groupId: o.groupId,
      sessionTimeout: 30_000,
      heartbeatInterval: 3_000,
      ...o.consumerConfig,
    });
    this.consumer = consumer;
    this.liveness.attach(consumer);
    o.onConsumer?.(consumer);
    consumer.on(consumer.events.GROUP_JOIN, () => (this.restartDelay = RESTART_MIN_MS));
    consumer.on(consumer.events.CRASH, (e) => {
      o.log.error(`${o.consumer}: consumer crashed: ${e.payload.error.message}`);
      if (!e.payload.restart && consumer === this.consumer) this.scheduleRestart();
    });
    await consumer.connect();
    await consumer.subscribe({ topics: [...o.topics], fromBeginning: o.fromBeginning });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      eachBatch: (payload) => this.handleBatch(consumer, payload),
    });
    o.log.info(`${o.consumer}: consuming ${o.topics.join(', ')} as group ${o.groupId}`);
  }

  private scheduleRestart(): void {
    if (this.stopping || this.restartTimer) return;
    const delay = this.restartDelay;
    this.restartDelay = Math.min(RESTART_MAX_MS, delay * 2);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      void this.restart();
    }, delay);
  }

  private async restart(): Promise<void> {
    if (this.stopping) return;
    const old = this.consumer;
    this.consumer = null;
    await old?.disconnect().catch(() => undefined);
    try {
      await this.start();
    } catch (err) {
      this.liveness.crashed(errorMessage(err), false);
      this.options.log.error(`${this.options.consumer}: restart failed: ${errorMessage(err)}`);
      this.scheduleRestart();
    }
  }

  private async handleBatch(consumer: Consumer, payload: EachBatchPayload): Promise<void> {
    const { batch, resolveOffset, heartbeat, isRunning, isStale } = payload;
    const shouldStop = () => this.stopping || !isRunning() || isStale();
    this.liveness.busy(true);
    try {
      for (const m of batch.messages) {
        if (shouldStop()) return;
        const outcome = await this.processor.process(
          {
            topic: batch.topic,
            partition: batch.partition,
            offset: m.offset,
            key: m.key ?? null,
            value: m.value ?? null,
            timestamp: m.timestamp,
          },
          { heartbeat, shouldStop },
        );
        if (outcome === 'abandoned') return;
        resolveOffset(m.offset);
        await consumer
          .commitOffsets([
            { topic: batch.topic, partition: batch.partition, offset: (BigInt(m.offset) + 1n).toString() },
          ])
          .catch((err: unknown) =>
            // A rebalance moved the partition: the new owner re-reads from the last commit.
            this.options.log.warn(`${this.options.consumer}: offset commit failed: ${errorMessage(err)}`),
          );
        await heartbeat().catch(() => undefined);
      }
    } finally {
      this.liveness.busy(false);
    }
  }

  /** Stops consuming: the message in hand is abandoned uncommitted (redelivered later). */
  async stop(): Promise<void> {
    this.stopping = true;
    this.liveness.stop();
    if (this.restartTimer) clearTimeout(this.restartTimer);
    await this.consumer?.disconnect().catch(() => undefined);
  }
}
