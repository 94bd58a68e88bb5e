import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { Consumer, Kafka, Producer } from 'kafkajs';
import { resolve } from 'node:path';
import { Registry } from 'prom-client';
import { LocalArtefactStore } from '@cprec/artefacts';
import { ClickHouse, ClickHouseSettings, ControlPlaneRepository } from '@cprec/clickhouse';
import {
  AdapterEvent,
  CorpusStatsSchema,
  decodeJson,
  DEFAULT_LIMITS,
  parseWith,
  RoundCommandSchema,
  RoundEvent,
  TOPICS,
} from '@cprec/contracts';
import { createKafka, createReliableProducer, defaultTopicSpecs, ensureTopics } from '@cprec/messaging';
import { HealthCheck, METRICS_REGISTRY } from '@cprec/service-common';
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
  private consumer: Consumer | null = null;
  private producer: Producer | null = null;
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private lastError: string | null = null;
  readonly coordinator: RoundCoordinator;

  constructor(
    @Inject(TRAINER_CONFIG) private readonly config: TrainerConfig,
    @Inject(CLICKHOUSE) ch: ClickHouse,
    @Inject(CLICKHOUSE_SETTINGS) chSettings: ClickHouseSettings,
    @Inject(METRICS_REGISTRY) registry: Registry,
  ) {
    this.kafka = createKafka({ brokers: config.CPREC_KAFKA_BROKERS, clientId: 'cprec-trainer' });
    const artefacts = new LocalArtefactStore(resolve(config.CPREC_HOME, 'artefacts'));
    const supervisor = new RoundSupervisor({
      maxRestarts: config.TRAINER_MAX_RESTARTS,
      stopGraceMs: config.TRAINER_STOP_GRACE_MS,
      logFile: (roundId, attempt) =>
        resolve(config.CPREC_HOME, 'logs', 'trainer-rounds', `${roundId}-${attempt}.log`),
    });
    this.coordinator = new RoundCoordinator(
      new ControlPlaneRepository(ch),
      {
        roundEvent: (e) => this.publish(TOPICS.roundEvents, e.round_id, e),
        adapterEvent: (e) => this.publish(TOPICS.adapters, e.adapter_id, e),
      },
      new RoundPlanner(config, ch, chSettings, artefacts),
      supervisor,
      artefacts,
      new RoundPolicy({
        intervalMs: config.TRAINER_AUTO_INTERVAL_MS,
        minNewInteractions: config.TRAINER_AUTO_MIN_NEW_INTERACTIONS,
      }),
      new PrometheusTrainerMetrics(registry),
      { defaultTargetDomains: config.TRAINER_TARGET_DOMAINS, stepFlushMs: config.TRAINER_STEP_FLUSH_MS },
    );
  }

  async check(): Promise<string | null> {
    if (!this.running) return this.lastError ?? 'consumer not running';
    return this.coordinator.status().lastError;
  }

  private async publish(topic: string, key: string, value: RoundEvent | AdapterEvent): Promise<void> {
    if (!this.producer) throw new Error('producer not connected');
    await this.producer.send({ topic, acks: -1, messages: [{ key, value: JSON.stringify(value) }] });
  }

  async onApplicationBootstrap(): Promise<void> {
    const admin = this.kafka.admin();
    await admin.connect();
    try {
      await ensureTopics(admin, defaultTopicSpecs());
    } finally {
      await admin.disconnect();
    }
    this.producer = createReliableProducer(this.kafka);
    await this.producer.connect();
    await this.coordinator.recover();

    const consumer = this.kafka.consumer({
      groupId: this.config.TRAINER_GROUP_ID,
      sessionTimeout: 30_000,
      heartbeatInterval: 3_000,
    });
    this.consumer = consumer;
    consumer.on(consumer.events.CRASH, (e) => {
      this.running = false;
      this.lastError = `consumer crashed: ${e.payload.error.message}`;
      this.logger.error(this.lastError);
    });
    await consumer.connect();
    await consumer.subscribe({ topics: [TOPICS.roundCommands, TOPICS.corpusStats], fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ topic, message }) => {
        const decoded = decodeJson(message.value, DEFAULT_LIMITS);
        if (!decoded.ok) return this.logger.warn(`${topic}: ${decoded.reason}`);
        if (topic === TOPICS.corpusStats) {
          const stats = parseWith(CorpusStatsSchema, decoded.value);
          if (!stats.ok) return this.logger.warn(`corpus statistics refused: ${stats.reason}`);
          this.coordinator.observeCorpusStats(stats.value);
          await this.coordinator.tick();
          return;
        }
        const command = parseWith(RoundCommandSchema, decoded.value);
        if (!command.ok) return this.logger.warn(`round command refused: ${command.reason}`);
        if (Date.now() - command.value.ts > this.config.TRAINER_COMMAND_MAX_AGE_MS)
          return this.logger.warn(`round command ${command.value.command_id} is too old; ignored`);
        this.logger.log(
          `command ${command.value.kind} ${command.value.command_id} from ${command.value.requested_by}`,
        );
        await this.coordinator.handleCommand(command.value);
      },
    });
    this.running = true;
    this.timer = setInterval(
      () => {
        this.coordinator
          .tick()
          .catch((err: Error) => this.logger.error(`policy tick failed: ${err.message}`));
      },
      Math.min(1_000, this.config.TRAINER_STEP_FLUSH_MS),
    );
    this.logger.log(
      `consuming ${TOPICS.roundCommands}, ${TOPICS.corpusStats} as group ${this.config.TRAINER_GROUP_ID}`,
    );
  }

  /** SIGTERM: stop the running round at a step boundary (it resumes on restart), flush, leave. */
  async onApplicationShutdown(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.running = false;
    await this.consumer?.disconnect().catch(() => undefined);
    this.coordinator.beginShutdown();
    await this.coordinator.shutdown();
    await this.producer?.disconnect().catch(() => undefined);
  }
}
