import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { Consumer, Kafka, Producer } from 'kafkajs';
import { Registry } from 'prom-client';
import { DeadLetter, TOPICS } from '@cprec/contracts';
import { createKafka, createReliableProducer, defaultTopicSpecs, ensureTopics } from '@cprec/messaging';
import { HealthCheck, METRICS_REGISTRY } from '@cprec/service-common';
import { INGEST_CONFIG, IngestConfig } from './config';
import { PrometheusIngestMetrics } from './ingest.metrics';
import { deadLetterBatches } from './pipeline/dead-letter-batches';
import { IngestPipeline } from './pipeline/ingest-pipeline';
import { IngestStore } from './pipeline/ports';

export const INGEST_STORE = Symbol('INGEST_STORE');

/**
 * Runs the Kafka consumer with kafkajs directly rather than @nestjs/microservices' transport:
 * exactly-once storage needs manual offset commits after the ClickHouse insert, which the
 * transport's message-handler model does not expose.
 */
@Injectable()
export class IngestConsumerService implements OnApplicationBootstrap, OnApplicationShutdown, HealthCheck {
  readonly name = 'kafka-consumer';
  private readonly logger = new Logger('IngestConsumer');
  private readonly kafka: Kafka;
  private consumer: Consumer | null = null;
  private producer: Producer | null = null;
  private pipeline: IngestPipeline | null = null;
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private lastError: string | null = null;

  constructor(
    @Inject(INGEST_CONFIG) private readonly config: IngestConfig,
    @Inject(INGEST_STORE) private readonly store: IngestStore,
    @Inject(METRICS_REGISTRY) private readonly registry: Registry,
  ) {
    this.kafka = createKafka({ brokers: config.CPREC_KAFKA_BROKERS, clientId: 'cprec-ingest' });
  }

  async check(): Promise<string | null> {
    if (!this.running) return this.lastError ?? 'consumer not running';
    return null;
  }

  async onApplicationBootstrap(): Promise<void> {
    const admin = this.kafka.admin();
    await admin.connect();
    try {
      await ensureTopics(admin, defaultTopicSpecs());
    } finally {
      await admin.disconnect();
    }
    const producer = createReliableProducer(this.kafka);
    await producer.connect();
    this.producer = producer;

    const consumer = this.kafka.consumer({
      groupId: this.config.INGEST_GROUP_ID,
      sessionTimeout: 30_000,
      heartbeatInterval: 3_000,
      maxBytesPerPartition: this.config.INGEST_MAX_BYTES_PER_PARTITION,
    });
    this.consumer = consumer;
    const metrics = new PrometheusIngestMetrics(this.registry);
    const pipeline = new IngestPipeline(
      this.store,
      { send: (records) => this.sendDeadLetters(records) },
      {
        commit: async (offsets) => {
          try {
            await consumer.commitOffsets([...offsets]);
          } catch (err) {
            // After a rebalance the partition may belong to another member; it will re-read
            // from the last committed offset and storage dedups what we already inserted.
            this.logger.warn(`offset commit failed (${(err as Error).message}); messages will be re-read`);
          }
        },
      },
      metrics,
      {
        maxBatchRows: this.config.INGEST_MAX_BATCH_ROWS,
        flushIntervalMs: this.config.INGEST_FLUSH_INTERVAL_MS,
        retryInitialMs: this.config.INGEST_RETRY_INITIAL_MS,
        retryMaxMs: this.config.INGEST_RETRY_MAX_MS,
        recentIdsCapacity: this.config.INGEST_RECENT_IDS,
        limits: {
          maxMessageBytes: this.config.INGEST_MAX_MESSAGE_BYTES,
          maxTitleLength: this.config.INGEST_MAX_TITLE_LENGTH,
          maxFutureSkewMs: this.config.INGEST_MAX_FUTURE_SKEW_MS,
          domainAllowList: this.config.INGEST_DOMAIN_ALLOW_LIST,
          now: () => Date.now(),
        },
      },
    );
    this.pipeline = pipeline;

    consumer.on(consumer.events.CRASH, (e) => {
      this.running = false;
      this.lastError = `consumer crashed: ${e.payload.error.message}`;
      this.logger.error(this.lastError);
    });
    await consumer.connect();
    await consumer.subscribe({
      topics: [TOPICS.interactions, TOPICS.items],
      fromBeginning: this.config.INGEST_FROM_BEGINNING,
    });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      // Above 1, each concurrent eachBatch may hold one more buffer while waiting in flushBehind.
      partitionsConsumedConcurrently: this.config.INGEST_PARTITIONS_CONCURRENTLY,
      eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
        if (!isRunning() || isStale()) return;
        const messages = batch.messages.map((m) => ({
          topic: batch.topic,
          partition: batch.partition,
          offset: m.offset,
          key: m.key,
          value: m.value,
        }));
        const flushNow = pipeline.accept(messages);
        // Resolving moves the in-memory fetch position only; commits wait for the store.
        const last = batch.messages[batch.messages.length - 1];
        if (last) resolveOffset(last.offset);
        metrics.lag.set(
          { topic: batch.topic, partition: String(batch.partition) },
          Number(batch.offsetLag()),
        );
        // Double buffering: wait for the previous flush (backpressure), start this one, go on
        // parsing while ClickHouse inserts. Commits stay in order inside the pipeline.
        if (flushNow)
          await pipeline.flushBehind(heartbeat, (err) => this.logger.error(`flush failed: ${err.message}`));
        await heartbeat();
      },
    });
    this.running = true;
    // Time-based flush for trickling streams; serialised with size flushes inside the pipeline.
    // Pausing while a timer flush waits on a down store keeps fetches from piling up in memory.
    this.timer = setInterval(
      () => {
        // A size flush in flight will be followed by the next one; not adding a third batch here
        // keeps memory at two batches.
        if (pipeline.flushInFlight || !pipeline.shouldFlush()) return;
        const topics = [{ topic: TOPICS.interactions }, { topic: TOPICS.items }];
        consumer.pause(topics);
        pipeline
          .flush()
          .catch((err: Error) => this.logger.error(`flush failed: ${err.message}`))
          .finally(() => consumer.resume(topics));
      },
      Math.max(50, Math.floor(this.config.INGEST_FLUSH_INTERVAL_MS / 4)),
    );
    this.logger.log(
      `consuming ${TOPICS.interactions}, ${TOPICS.items} as group ${this.config.INGEST_GROUP_ID}`,
    );
  }

  private async sendDeadLetters(records: readonly DeadLetter[]): Promise<void> {
    if (!this.producer) throw new Error('dead-letter producer not connected');
    // Requests under the broker's size limit: one oversized request would be refused on every
    // retry and stall the consumer (seen with a backlog holding many oversized messages).
    for (const messages of deadLetterBatches(records)) {
      await this.producer.send({ topic: TOPICS.deadLetter, acks: -1, messages });
    }
  }

  /** SIGTERM: stop fetching, store and commit what is buffered, then leave the group. */
  async onApplicationShutdown(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    const consumer = this.consumer;
    const pipeline = this.pipeline;
    this.running = false;
    if (consumer) {
      consumer.pause([{ topic: TOPICS.interactions }, { topic: TOPICS.items }]);
    }
    if (pipeline && (pipeline.buffered > 0 || pipeline.flushInFlight)) {
      const deadline = setTimeout(() => pipeline.stop(), 10_000);
      await pipeline.flush().catch((err: Error) => this.logger.warn(`final flush abandoned: ${err.message}`));
      clearTimeout(deadline);
    }
    await consumer?.disconnect().catch(() => undefined);
    await this.producer?.disconnect().catch(() => undefined);
  }
}
