import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { Kafka, Producer } from 'kafkajs';
import { Registry } from 'prom-client';
import {
  ClickHouse,
  ClickHouseSettings,
  ensureDatabase,
  runMigrations,
  SequenceStore,
} from '@cprec/clickhouse';
import { CorpusStats, CorpusStatsSchema } from '@cprec/contracts';
import {
  createServiceKafka,
  createReliableProducer,
  defaultTopicSpecs,
  ensureTopics,
} from '@cprec/messaging';
import { HealthCheck, METRICS_REGISTRY, topicsOf } from '@cprec/service-common';
import { SEQUENCER_CONFIG, SEQUENCER_LEASE, SequencerConfig, type SequencerLeaseHolder } from './config';
import { SequencerMetrics } from './sequencer.metrics';
import { SequencerLoop } from './sequencer-loop';

export const SEQUENCER_CLICKHOUSE = Symbol('SEQUENCER_CLICKHOUSE');
export const SEQUENCER_CLICKHOUSE_SETTINGS = Symbol('SEQUENCER_CLICKHOUSE_SETTINGS');

/**
 * Runs the rebuild loop in the background. Everything that touches ClickHouse or Kafka happens
 * inside rounds (including migrations and the producer connection), so an outage at start-up or
 * later only makes rounds fail and back off — the process never exits because a server is down;
 * /health reports the last failure until a round succeeds again.
 *
 * With the lease (SEQUENCER_LEASE; off for a lone sequencer, on for replicas) rounds run only while this replica holds it
 * (SplitRequestsService's consumer group decides); a standby checks twice a second and starts
 * with a fresh loop when it becomes active.
 */
@Injectable()
export class SequencerService implements OnApplicationBootstrap, OnApplicationShutdown, HealthCheck {
  private readonly logger = new Logger('Sequencer');
  private readonly kafka: Kafka;
  private producer: Producer | null = null;
  private readonly store: SequenceStore;
  private loop: SequencerLoop;
  private readonly makeLoop: () => SequencerLoop;
  private readonly metrics: SequencerMetrics;
  private timer: NodeJS.Timeout | null = null;
  private stopping = false;
  private current: Promise<void> | null = null;
  private wasActive = false;
  private readonly lease: SequencerLeaseHolder['lease'];

  constructor(
    @Inject(SEQUENCER_CONFIG) private readonly config: SequencerConfig,
    @Inject(SEQUENCER_CLICKHOUSE) private readonly ch: ClickHouse,
    @Inject(SEQUENCER_CLICKHOUSE_SETTINGS) private readonly settings: ClickHouseSettings,
    @Inject(METRICS_REGISTRY) registry: Registry,
    @Inject(SEQUENCER_LEASE) leaseHolder: SequencerLeaseHolder,
  ) {
    this.lease = leaseHolder.lease;
    this.kafka = createServiceKafka('sequencer', config.SEQUENCER_CLIENT_ID, config.CPREC_KAFKA_BROKERS);
    this.store = new SequenceStore(ch);
    this.metrics = new SequencerMetrics(registry);
    this.makeLoop = () =>
      new SequencerLoop(
        {
          setup: () => this.setup(),
          rebuild: () => this.store.rebuild({ safetyMarginMs: config.SEQUENCER_SAFETY_MARGIN_MS }),
          deltas: (from, to) => this.store.domainDeltas(from, to),
          publish: (stats) => this.publish(stats),
          now: () => Date.now(),
        },
        {
          rebuilt: (r) => {
            this.metrics.rebuildSeconds.observe(
              { kind: r.fullRebuild ? 'full' : 'incremental' },
              r.durationMs / 1000,
            );
            this.metrics.usersRebuilt.inc(r.usersRebuilt);
            this.metrics.watermarkMs.set(r.watermarkMs);
            this.metrics.watermarkLagSeconds.set(Math.max(0, r.maxIngestMs - r.watermarkMs) / 1000);
            if (r.usersRebuilt > 0)
              this.logger.log(
                `${r.fullRebuild ? 'full' : 'incremental'} rebuild: ${r.usersRebuilt} users in ${r.durationMs} ms, watermark ${r.watermarkMs}`,
              );
          },
          published: () => this.metrics.statsPublished.inc(),
          failed: (stage, error) => {
            this.metrics.failures.inc({ stage });
            this.logger.warn(`${stage} failed (${error.message}); retrying in ${this.loop.delayAfter()} ms`);
          },
        },
        {
          intervalMs: config.SEQUENCER_INTERVAL_MS,
          retryInitialMs: config.SEQUENCER_RETRY_INITIAL_MS,
          retryMaxMs: config.SEQUENCER_RETRY_MAX_MS,
        },
      );
    this.loop = this.makeLoop();
  }

  /** The /health key: the replica's role, so a standby is visibly healthy and not the writer. */
  get name(): string {
    return this.lease ? `sequencer-loop (${this.lease.held() ? 'active' : 'standby'})` : 'sequencer-loop';
  }

  private active(): boolean {
    return this.lease === null || this.lease.held();
  }

  async check(): Promise<string | null> {
    // A standby's last outcome is from before it lost the lease (or none).
    if (!this.active()) return null;
    const last = this.loop.lastOutcome;
    if (last === null || last.ok) return null;
    return `${last.stage} failed: ${last.error.message}`;
  }

  onApplicationBootstrap(): void {
    this.schedule(0);
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    await this.current;
    await this.producer?.disconnect().catch(() => undefined);
    await this.ch.close().catch(() => undefined);
  }

  private schedule(delayMs: number): void {
    if (this.stopping) return;
    this.timer = setTimeout(() => {
      if (!this.active()) {
        if (this.wasActive) this.logger.log('lease: standby');
        this.wasActive = false;
        return this.schedule(Math.min(500, this.config.SEQUENCER_INTERVAL_MS));
      }
      if (this.lease && !this.wasActive) {
        // What a former term left pending (a failed publish's interval) is not this term's.
        this.logger.log('lease: active');
        this.loop = this.makeLoop();
        this.wasActive = true;
      }
      this.current = this.loop.round().then(() => {
        this.current = null;
        this.schedule(this.loop.delayAfter());
      });
    }, delayMs);
  }

  private async setup(): Promise<void> {
    await ensureDatabase(this.settings);
    await runMigrations(this.settings);
    if (this.producer === null) {
      const admin = this.kafka.admin();
      await admin.connect();
      try {
        await ensureTopics(admin, defaultTopicSpecs(4, topicsOf(this.config)));
      } finally {
        await admin.disconnect();
      }
      const producer = createReliableProducer(this.kafka);
      await producer.connect();
      this.producer = producer;
    }
  }

  private async publish(stats: CorpusStats): Promise<void> {
    if (this.producer === null) throw new Error('producer not connected');
    // A round that outlived its lease (the process was paused) publishes nothing.
    if (!this.active())
      throw new Error('not the active sequencer (lease not held): statistics not published');
    const message = CorpusStatsSchema.parse(stats);
    await this.producer.send({
      topic: topicsOf(this.config).corpusStats,
      acks: -1,
      messages: [{ key: 'corpus-stats', value: JSON.stringify(message) }],
    });
  }
}
