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
import { SEQUENCER_CONFIG, SequencerConfig } from './config';
import { SequencerMetrics } from './sequencer.metrics';
import { SequencerLoop } from './sequencer-loop';

export const SEQUENCER_CLICKHOUSE = Symbol('SEQUENCER_CLICKHOUSE');
export const SEQUENCER_CLICKHOUSE_SETTINGS = Symbol('SEQUENCER_CLICKHOUSE_SETTINGS');

/**
 * Runs the rebuild loop in the background. Everything that touches ClickHouse or Kafka happens
 * inside rounds (including migrations and the producer connection), so an outage at start-up or
 * later only makes rounds fail and back off — the process never exits because a server is down;
 * /health reports the last failure until a round succeeds again.
 */
@Injectable()
export class SequencerService implements OnApplicationBootstrap, OnApplicationShutdown, HealthCheck {
  readonly name = 'sequencer-loop';
  private readonly logger = new Logger('Sequencer');
  private readonly kafka: Kafka;
  private producer: Producer | null = null;
  private readonly store: SequenceStore;
  private readonly loop: SequencerLoop;
  private readonly metrics: SequencerMetrics;
  private timer: NodeJS.Timeout | null = null;
  private stopping = false;
  private current: Promise<void> | null = null;

  constructor(
    @Inject(SEQUENCER_CONFIG) private readonly config: SequencerConfig,
    @Inject(SEQUENCER_CLICKHOUSE) private readonly ch: ClickHouse,
    @Inject(SEQUENCER_CLICKHOUSE_SETTINGS) private readonly settings: ClickHouseSettings,
    @Inject(METRICS_REGISTRY) registry: Registry,
  ) {
    this.kafka = createServiceKafka('sequencer', config.SEQUENCER_CLIENT_ID, config.CPREC_KAFKA_BROKERS);
    this.store = new SequenceStore(ch);
    this.metrics = new SequencerMetrics(registry);
    this.loop = new SequencerLoop(
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
  }

  async check(): Promise<string | null> {
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
    const message = CorpusStatsSchema.parse(stats);
    await this.producer.send({
      topic: topicsOf(this.config).corpusStats,
      acks: -1,
      messages: [{ key: 'corpus-stats', value: JSON.stringify(message) }],
    });
  }
}
