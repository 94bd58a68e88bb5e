import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { Batch, Consumer, Kafka, Producer } from 'kafkajs';
import { Registry } from 'prom-client';
import type { Topics } from '@cprec/contracts';
import {
  ConsumerLiveness,
  createServiceKafka,
  createReliableProducer,
  defaultTopicSpecs,
  ensureTopics,
} from '@cprec/messaging';
import {
  classifyFailure,
  createDeadLetterPublisher,
  HealthCheck,
  METRICS_REGISTRY,
  topicsOf,
} from '@cprec/service-common';
import { INGEST_CONFIG, IngestConfig } from './config';
import { PrometheusIngestMetrics } from './ingest.metrics';
import { IngestPipeline } from './pipeline/ingest-pipeline';
import { IngestStore } from './pipeline/ports';
import { setPaused } from './consumer-flow';

export const INGEST_STORE = Symbol('INGEST_STORE');
/** Null when the store's server answers, else what is down (a bounded ping). */
export const INGEST_DEPENDENCIES = Symbol('INGEST_DEPENDENCIES');

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
  private stopping = false;
  private restartTimer: NodeJS.Timeout | null = null;
  private restartDelayMs = 1_000;
  private metrics: PrometheusIngestMetrics | null = null;
  private readonly topics: Topics;
  private readonly liveness: ConsumerLiveness;

  constructor(
    @Inject(INGEST_CONFIG) private readonly config: IngestConfig,
    @Inject(INGEST_STORE) private readonly store: IngestStore,
    @Inject(METRICS_REGISTRY) private readonly registry: Registry,
    @Inject(INGEST_DEPENDENCIES) private readonly dependencies: () => Promise<string | null>,
  ) {
    this.kafka = createServiceKafka('ingest', 'cprec-ingest', config.CPREC_KAFKA_BROKERS);
    this.topics = topicsOf(config);
    this.liveness = new ConsumerLiveness({ stalledAfterMs: config.CPREC_CONSUMER_STALLED_MS });
  }

  /** /health: the store waiting on ClickHouse, or the consumer not consuming (crashed, stalled, not in its group). */
  async check(): Promise<string | null> {
    return this.pipeline?.problem ?? this.liveness.problem();
  }

  async onApplicationBootstrap(): Promise<void> {
    const admin = this.kafka.admin();
    await admin.connect();
    try {
      await ensureTopics(admin, defaultTopicSpecs(4, this.topics));
    } finally {
      await admin.disconnect();
    }
    const producer = createReliableProducer(this.kafka);
    await producer.connect();
    this.producer = producer;
    const deadLetters = await createDeadLetterPublisher(this.kafka, producer, this.topics);

    const metrics = new PrometheusIngestMetrics(this.registry);
    this.metrics = metrics;
    const pipeline = new IngestPipeline(
      this.store,
      deadLetters,
      {
        commit: async (offsets) => {
          try {
            if (!this.consumer) throw new Error('consumer not running');
            await this.consumer.commitOffsets([...offsets]);
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
        retryAttempts: this.config.CPREC_CONSUMER_RETRY_ATTEMPTS,
        itemsTopic: this.topics.items,
        classify: classifyFailure,
        dependencies: this.dependencies,
        consumer: 'ingest',
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

    await this.startConsumer();
    // Time-based flush for trickling streams; serialised with size flushes inside the pipeline.
    // Pausing while a timer flush waits on a down store keeps fetches from piling up in memory.
    this.timer = setInterval(
      () => {
        // A size flush in flight will be followed by the next one; not adding a third batch here
        // keeps memory at two batches.
        const consumer = this.consumer;
        if (!consumer || pipeline.flushInFlight || !pipeline.shouldFlush()) return;
        const topics = [{ topic: this.topics.interactions }, { topic: this.topics.items }];
        // Never throws: a consumer kafkajs is restarting (Kafka down) refuses pause/resume.
        const toggle = (paused: boolean) =>
          setPaused(consumer, paused, topics, (err) =>
            this.logger.warn(`could not ${paused ? 'pause' : 'resume'} fetching: ${err.message}`),
          );
        toggle(true);
        this.liveness.busy(true);
        pipeline
          .flush()
          .catch((err: Error) => this.logger.error(`flush failed: ${err.message}`))
          .finally(() => {
            this.liveness.busy(false);
            toggle(false);
          });
      },
      Math.max(50, Math.floor(this.config.INGEST_FLUSH_INTERVAL_MS / 4)),
    );
    this.logger.log(
      `consuming ${this.topics.interactions}, ${this.topics.items} as group ${this.config.INGEST_GROUP_ID}`,
    );
  }

  /**
   * Joins the group and consumes. kafkajs restarts a consumer itself after retriable failures;
   * after any other crash a new consumer instance is started here (with backoff), so ingest never
   * stays stopped while Kafka is reachable. What was buffered stays in the pipeline: stored rows
   * are committed by the new member (or re-read and deduplicated by whoever owns the partition).
   */
  private async startConsumer(): Promise<void> {
    const consumer = this.kafka.consumer({
      groupId: this.config.INGEST_GROUP_ID,
      sessionTimeout: 30_000,
      heartbeatInterval: 3_000,
      maxBytesPerPartition: this.config.INGEST_MAX_BYTES_PER_PARTITION,
    });
    this.consumer = consumer;
    this.liveness.attach(consumer);
    consumer.on(consumer.events.GROUP_JOIN, () => (this.restartDelayMs = 1_000));
    consumer.on(consumer.events.CRASH, (e) => {
      this.logger.error(
        `consumer crashed: ${e.payload.error.message}${e.payload.restart ? ' (kafkajs restarts it)' : ''}`,
      );
      if (!e.payload.restart && consumer === this.consumer) this.scheduleRestart();
    });
    await consumer.connect();
    await consumer.subscribe({
      topics: [this.topics.interactions, this.topics.items],
      fromBeginning: this.config.INGEST_FROM_BEGINNING,
    });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      // Above 1, each concurrent eachBatch may hold one more buffer while waiting in flushBehind.
      partitionsConsumedConcurrently: this.config.INGEST_PARTITIONS_CONCURRENTLY,
      eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
        if (!isRunning() || isStale()) return;
        this.liveness.busy(true);
        try {
          await this.handleBatch(batch, resolveOffset, heartbeat);
        } finally {
          this.liveness.busy(false);
        }
      },
    });
  }

  private scheduleRestart(): void {
    if (this.stopping || this.restartTimer) return;
    const delay = this.restartDelayMs;
    this.restartDelayMs = Math.min(30_000, delay * 2);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      const old = this.consumer;
      this.consumer = null;
      void (async () => {
        await old?.disconnect().catch(() => undefined);
        if (this.stopping) return;
        try {
          await this.startConsumer();
          this.logger.log('consumer restarted');
        } catch (err) {
          this.liveness.crashed((err as Error).message, false);
          this.scheduleRestart();
        }
      })();
    }, delay);
  }

  private async handleBatch(
    batch: Batch,
    resolveOffset: (offset: string) => void,
    heartbeat: () => Promise<void>,
  ): Promise<void> {
    const pipeline = this.pipeline!;
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
    this.metrics!.lag.set(
      { topic: batch.topic, partition: String(batch.partition) },
      Number(batch.offsetLag()),
    );
    // Double buffering: wait for the previous flush (backpressure), start this one, go on
    // parsing while ClickHouse inserts. Commits stay in order inside the pipeline.
    if (flushNow)
      await pipeline.flushBehind(heartbeat, (err) => this.logger.error(`flush failed: ${err.message}`));
    await heartbeat();
  }

  /** SIGTERM: stop fetching, store and commit what is buffered, then leave the group. */
  async onApplicationShutdown(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearInterval(this.timer);
    if (this.restartTimer) clearTimeout(this.restartTimer);
    const consumer = this.consumer;
    const pipeline = this.pipeline;
    this.liveness.stop();
    if (consumer)
      setPaused(consumer, true, [{ topic: this.topics.interactions }, { topic: this.topics.items }], (err) =>
        this.logger.warn(`could not pause fetching: ${err.message}`),
      );
    if (pipeline && (pipeline.buffered > 0 || pipeline.flushInFlight)) {
      const deadline = setTimeout(() => pipeline.stop(), 10_000);
      await pipeline.flush().catch((err: Error) => this.logger.warn(`final flush abandoned: ${err.message}`));
      clearTimeout(deadline);
    }
    await consumer?.disconnect().catch(() => undefined);
    await this.producer?.disconnect().catch(() => undefined);
  }
}
