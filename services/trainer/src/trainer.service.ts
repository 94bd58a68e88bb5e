import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { Kafka, Producer } from 'kafkajs';
import { resolve } from 'node:path';
import { Registry } from 'prom-client';
import { LocalArtefactStore } from '@cprec/artefacts';
import {
  ClickHouse,
  clickHouseProblem,
  ClickHouseSettings,
  ControlPlaneRepository,
  ident,
  INTERACTIONS_TABLE,
  sql,
} from '@cprec/clickhouse';
import {
  AdapterEvent,
  commandAgeProblem,
  CorpusStatsSchema,
  decodeJson,
  DEFAULT_LIMITS,
  parseWith,
  rejectionKindOf,
  RoundCommandSchema,
  RoundEvent,
  type Topics,
} from '@cprec/contracts';
import {
  createServiceKafka,
  createReliableProducer,
  defaultTopicSpecs,
  ensureTopics,
  RejectedMessage,
  ResilientConsumer,
  type InboundMessage,
} from '@cprec/messaging';
import {
  classifyFailure,
  consumerLog,
  ConsumerMetrics,
  createDeadLetterPublisher,
  HealthCheck,
  METRICS_REGISTRY,
  retryPolicyOf,
  topicsOf,
} from '@cprec/service-common';
import { TRAINER_CONFIG, TrainerConfig } from './config';
import { RoundPlanner } from './round-planner';
import { RoundCoordinator } from './rounds/round-coordinator';
import { RoundPolicy } from './rounds/round-policy';
import { RoundSupervisor } from './runner/supervisor';
import { PrometheusTrainerMetrics } from './trainer.metrics';

export const CLICKHOUSE = Symbol('CLICKHOUSE');
export const CLICKHOUSE_SETTINGS = Symbol('CLICKHOUSE_SETTINGS');

/**
 * The trainer actor's Kafka side: its mailbox (round commands) and the sequencer's corpus
 * statistics in, round events and adapter events out. kafkajs directly (as ingest) so each
 * command is handled — and its queued state persisted — before its offset is committed.
 * Training runs in runner processes, so this event loop (and the heartbeats) never stalls.
 */
@Injectable()
export class TrainerService implements OnApplicationBootstrap, OnApplicationShutdown, HealthCheck {
  readonly name = 'trainer';
  private readonly logger = new Logger('Trainer');
  private readonly kafka: Kafka;
  private consumer: ResilientConsumer | null = null;
  private producer: Producer | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly topics: Topics;
  private readonly consumerMetrics: ConsumerMetrics;
  readonly coordinator: RoundCoordinator;

  constructor(
    @Inject(TRAINER_CONFIG) private readonly config: TrainerConfig,
    @Inject(CLICKHOUSE) private readonly ch: ClickHouse,
    @Inject(CLICKHOUSE_SETTINGS) chSettings: ClickHouseSettings,
    @Inject(METRICS_REGISTRY) registry: Registry,
  ) {
    this.topics = topicsOf(config);
    this.consumerMetrics = new ConsumerMetrics(registry);
    this.kafka = createServiceKafka('trainer', 'cprec-trainer', config.CPREC_KAFKA_BROKERS);
    const artefacts = new LocalArtefactStore(resolve(config.CPREC_HOME, 'artefacts'));
    const supervisor = new RoundSupervisor({
      maxRestarts: config.TRAINER_MAX_RESTARTS,
      stopGraceMs: config.TRAINER_STOP_GRACE_MS,
      logFile: (roundId, attempt) =>
        resolve(config.CPREC_HOME, 'logs', 'trainer-rounds', `${roundId}-${attempt}.log`),
      outage: {
        maxMs: config.TRAINER_OUTAGE_MAX_MS,
        pollMs: config.TRAINER_OUTAGE_POLL_MS,
        dependenciesUp: () => ch.ping(),
      },
    });
    this.coordinator = new RoundCoordinator(
      new ControlPlaneRepository(ch),
      {
        roundEvent: (e) => this.publish(this.topics.roundEvents, e.round_id, e),
        adapterEvent: (e) => this.publish(this.topics.adapters, e.adapter_id, e),
      },
      new RoundPlanner(config, ch, chSettings, artefacts),
      supervisor,
      artefacts,
      new RoundPolicy({
        intervalMs: config.TRAINER_AUTO_INTERVAL_MS,
        minNewInteractions: config.TRAINER_AUTO_MIN_NEW_INTERACTIONS,
        streamIntervalMs: config.TRAINER_AUTO_STREAM_INTERVAL_MS,
      }),
      new PrometheusTrainerMetrics(registry),
      {
        defaultTargetDomains: config.TRAINER_TARGET_DOMAINS,
        stepFlushMs: config.TRAINER_STEP_FLUSH_MS,
        classify: classifyFailure,
      },
    );
  }

  async check(): Promise<string | null> {
    return (
      (this.consumer ? this.consumer.problem() : 'consumer not started') ??
      this.coordinator.status().lastError
    );
  }

  private async publish(topic: string, key: string, value: RoundEvent | AdapterEvent): Promise<void> {
    if (!this.producer) throw new Error('producer not connected');
    await this.producer.send({ topic, acks: -1, messages: [{ key, value: JSON.stringify(value) }] });
  }

  async onApplicationBootstrap(): Promise<void> {
    const admin = this.kafka.admin();
    await admin.connect();
    try {
      await ensureTopics(admin, defaultTopicSpecs(4, this.topics));
    } finally {
      await admin.disconnect();
    }
    this.producer = createReliableProducer(this.kafka);
    await this.producer.connect();
    await this.coordinator.recover();

    const c = this.config;
    this.consumer = new ResilientConsumer({
      consumer: 'trainer',
      kafka: this.kafka,
      groupId: c.TRAINER_GROUP_ID,
      topics: [this.topics.roundCommands, this.topics.corpusStats],
      // Commands older than TRAINER_COMMAND_MAX_AGE_MS are dropped, so replaying is safe.
      fromBeginning: true,
      handle: (message) => this.handle(message),
      classify: classifyFailure,
      dependencies: () => clickHouseProblem(() => this.ch.ping()),
      deadLetters: await createDeadLetterPublisher(this.kafka, this.producer, this.topics),
      policy: retryPolicyOf(c),
      stalledAfterMs: c.CPREC_CONSUMER_STALLED_MS,
      log: consumerLog(this.logger),
      observer: this.consumerMetrics.observer('trainer'),
    });
    await this.consumer.start();
    this.timer = setInterval(
      () => {
        this.coordinator
          .tick()
          .catch((err: Error) => this.logger.error(`policy tick failed: ${err.message}`));
      },
      Math.min(1_000, this.config.TRAINER_STEP_FLUSH_MS),
    );
  }

  /**
   * One message of the trainer's topics. What can never be handled is refused (dead-lettered by
   * the consumer); a stale command is dropped; other failures are retried by the consumer's rule.
   */
  private async handle(message: InboundMessage): Promise<void> {
    const decoded = decodeJson(message.value, DEFAULT_LIMITS);
    if (!decoded.ok) throw new RejectedMessage(rejectionKindOf(decoded), decoded.reason);
    if (message.topic === this.topics.corpusStats) {
      const stats = parseWith(CorpusStatsSchema, decoded.value);
      if (!stats.ok) throw new RejectedMessage('invalid', `corpus statistics refused: ${stats.reason}`);
      this.coordinator.observeCorpusStats(stats.value);
      if (this.coordinator.watchesStreamTime) {
        const newest = await this.newestEventMs();
        if (newest !== null) this.coordinator.observeStreamTime(newest);
      }
      await this.coordinator.tick();
      return;
    }
    const command = parseWith(RoundCommandSchema, decoded.value);
    if (!command.ok) throw new RejectedMessage('invalid', `round command refused: ${command.reason}`);
    const stale = commandAgeProblem(command.value.ts, Date.now(), this.config.TRAINER_COMMAND_MAX_AGE_MS);
    if (stale !== null) {
      this.consumerMetrics.skip('trainer', 'stale_command');
      return this.logger.warn(`round command ${command.value.command_id} ${stale}`);
    }
    this.logger.log(
      `command ${command.value.kind} ${command.value.command_id} from ${command.value.requested_by}`,
    );
    await this.coordinator.handleCommand(command.value);
  }

  /**
   * The stream's clock for the stream-time policy: the newest event time among the ingested
   * interactions (read-only; ingest writes the table). Asked when the sequencer reports new data.
   */
  private async newestEventMs(): Promise<number | null> {
    const [row] = await this.ch.query<{ n: string; t: string }>(
      sql`SELECT count() AS n, max(ts_ms) AS t FROM ${ident(INTERACTIONS_TABLE)}`,
    );
    return row === undefined || Number(row.n) === 0 ? null : Number(row.t);
  }

  /** SIGTERM: stop the running round at a step boundary (it resumes on restart), flush, leave. */
  async onApplicationShutdown(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.consumer?.stop();
    this.coordinator.beginShutdown();
    await this.coordinator.shutdown();
    await this.producer?.disconnect().catch(() => undefined);
  }
}
