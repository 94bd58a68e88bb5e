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
  GroupLease,
  type LeaseRole,
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
import { leaseValidityMs, TRAINER_CONFIG, TrainerConfig } from './config';
import { RoundPlanner } from './round-planner';
import { NotActiveError, RoundCoordinator } from './rounds/round-coordinator';
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
 *
 * With the lease (TRAINER_LEASE; off for a lone trainer, on for replicas) any number of replicas may run: the one the
 * group assigns its partitions to is active — it recovers the rounds from ClickHouse and runs
 * them — and the others wait. Losing the lease (its session expired: it was paused or cut off)
 * abandons the coordinator: the runner is killed, nothing more is written, and the new active
 * replica resumes the round from its checkpoint.
 */
@Injectable()
export class TrainerService implements OnApplicationBootstrap, OnApplicationShutdown, HealthCheck {
  private readonly logger = new Logger('Trainer');
  private readonly kafka: Kafka;
  private consumer: ResilientConsumer | null = null;
  private producer: Producer | null = null;
  private timer: NodeJS.Timeout | null = null;
  private leaseTimer: NodeJS.Timeout | null = null;
  private readonly topics: Topics;
  private readonly consumerMetrics: ConsumerMetrics;
  private readonly newCoordinator: () => RoundCoordinator;
  /** The active coordinator (null while standby, or until recovered). */
  private active: RoundCoordinator | null = null;
  /** Resolves with the coordinator once it has recovered (null: the lease was lost first). */
  private activation: Promise<RoundCoordinator | null> | null = null;
  private stopping = false;
  private generation = 0;
  readonly lease: GroupLease | null;

  constructor(
    @Inject(TRAINER_CONFIG) private readonly config: TrainerConfig,
    @Inject(CLICKHOUSE) private readonly ch: ClickHouse,
    @Inject(CLICKHOUSE_SETTINGS) chSettings: ClickHouseSettings,
    @Inject(METRICS_REGISTRY) registry: Registry,
  ) {
    this.topics = topicsOf(config);
    this.consumerMetrics = new ConsumerMetrics(registry);
    this.kafka = createServiceKafka('trainer', 'cprec-trainer', config.CPREC_KAFKA_BROKERS);
    this.lease = config.TRAINER_LEASE
      ? new GroupLease({ validityMs: leaseValidityMs(config), onChange: (role) => this.roleChanged(role) })
      : null;
    const lease = this.lease;
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
      ...(lease
        ? {
            lease: {
              validUntil: () => lease.status().validUntil,
              pingMs: Math.max(100, Math.min(1_000, Math.floor(leaseValidityMs(config) / 4))),
            },
          }
        : {}),
    });
    const planner = new RoundPlanner(config, ch, chSettings, artefacts);
    const metrics = new PrometheusTrainerMetrics(registry);
    this.newCoordinator = () =>
      new RoundCoordinator(
        new ControlPlaneRepository(ch),
        {
          roundEvent: (e) => this.publish(this.topics.roundEvents, e.round_id, e),
          adapterEvent: (e) => this.publish(this.topics.adapters, e.adapter_id, e),
        },
        planner,
        supervisor,
        artefacts,
        new RoundPolicy({
          intervalMs: config.TRAINER_AUTO_INTERVAL_MS,
          minNewInteractions: config.TRAINER_AUTO_MIN_NEW_INTERACTIONS,
          streamIntervalMs: config.TRAINER_AUTO_STREAM_INTERVAL_MS,
        }),
        metrics,
        {
          defaultTargetDomains: config.TRAINER_TARGET_DOMAINS,
          stepFlushMs: config.TRAINER_STEP_FLUSH_MS,
          classify: classifyFailure,
          ...(lease ? { mayWrite: () => lease.held() } : {}),
        },
      );
  }

  /** The /health key: the replica's role, so a standby is visibly healthy and not the writer. */
  get name(): string {
    return this.lease ? `trainer (${this.lease.status().role})` : 'trainer';
  }

  /** The coordinator running rounds here, or null on a standby. */
  get coordinator(): RoundCoordinator | null {
    return this.active;
  }

  async check(): Promise<string | null> {
    return (
      (this.consumer ? this.consumer.problem() : 'consumer not started') ??
      this.active?.status().lastError ??
      null
    );
  }

  /**
   * Lease won: a fresh coordinator recovers the rounds from ClickHouse (a round another replica
   * left mid-training resumes from its checkpoint). Lease lost: the coordinator is abandoned.
   */
  private roleChanged(role: LeaseRole): void {
    if (this.stopping) return;
    this.logger.log(`lease: ${role}`);
    if (role === 'standby') {
      this.generation++;
      this.active?.abandon();
      this.active = null;
      this.activation = null;
      return;
    }
    // Each activation is a generation; a later change of role makes this one give up.
    const generation = ++this.generation;
    const current = () => this.generation === generation && !this.stopping;
    this.activation = (async (): Promise<RoundCoordinator | null> => {
      for (let attempt = 0; ; attempt++) {
        if (!current()) return null;
        const coordinator = this.newCoordinator();
        try {
          await coordinator.recover();
        } catch (err) {
          coordinator.abandon();
          const delay = Math.min(10_000, 500 * 2 ** attempt);
          this.logger.warn(`recovery failed (${(err as Error).message}); retrying in ${delay} ms`);
          await new Promise((r) => setTimeout(r, delay));
          continue;
        }
        if (!current()) {
          coordinator.abandon();
          return null;
        }
        this.active = coordinator;
        return coordinator;
      }
    })();
  }

  /** The coordinator that may act now; NotActiveError leaves the message uncommitted. */
  private async actor(): Promise<RoundCoordinator> {
    if (!this.lease) return this.active!;
    const coordinator = this.lease.held() ? await this.activation : null;
    if (!coordinator || !this.lease.held()) throw new NotActiveError();
    return coordinator;
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
    if (!this.lease) {
      this.active = this.newCoordinator();
      await this.active.recover();
    }

    const c = this.config;
    const lease = this.lease;
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
      // A message reached a replica that is not (or no longer) active: not committed.
      isAbort: (err) => err instanceof NotActiveError,
      ...(lease
        ? {
            consumerConfig: {
              partitionAssigners: [lease.assigner],
              sessionTimeout: c.TRAINER_LEASE_SESSION_MS,
              heartbeatInterval: c.TRAINER_LEASE_HEARTBEAT_MS,
              // Fetches end often enough for the heartbeats that keep the lease confirmed.
              maxWaitTimeInMs: c.TRAINER_LEASE_HEARTBEAT_MS,
            },
            onConsumer: (consumer) => lease.attach(consumer),
          }
        : {}),
    });
    await this.consumer.start();
    // Expiry is noticed by the clock, not by an event (a paused replica gets none).
    if (lease) this.leaseTimer = setInterval(() => lease.check(), 200);
    this.timer = setInterval(
      () => {
        this.active?.tick().catch((err: Error) => this.logger.error(`policy tick failed: ${err.message}`));
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
    const coordinator = await this.actor();
    if (message.topic === this.topics.corpusStats) {
      const stats = parseWith(CorpusStatsSchema, decoded.value);
      if (!stats.ok) throw new RejectedMessage('invalid', `corpus statistics refused: ${stats.reason}`);
      coordinator.observeCorpusStats(stats.value);
      if (coordinator.watchesStreamTime) {
        const newest = await this.newestEventMs();
        if (newest !== null) coordinator.observeStreamTime(newest);
      }
      await coordinator.tick();
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
    await coordinator.handleCommand(command.value);
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
    if (this.leaseTimer) clearInterval(this.leaseTimer);
    const coordinator = this.active;
    // Stop the round before leaving the group: the lease (and the right to checkpoint and record
    // the stop) is kept until the runner is at a step boundary; a standby then resumes it.
    this.stopping = true;
    coordinator?.beginShutdown();
    await coordinator?.shutdown();
    await this.consumer?.stop();
    await this.producer?.disconnect().catch(() => undefined);
  }
}
