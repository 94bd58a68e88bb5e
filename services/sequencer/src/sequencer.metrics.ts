import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Prometheus metrics of the rebuild loop. */
export class SequencerMetrics {
  readonly rebuildSeconds: Histogram<'kind'>;
  readonly usersRebuilt: Counter;
  readonly watermarkMs: Gauge;
  readonly watermarkLagSeconds: Gauge;
  readonly failures: Counter<'stage'>;
  readonly statsPublished: Counter;

  constructor(registry: Registry) {
    const registers = [registry];
    this.rebuildSeconds = new Histogram({
      name: 'cprec_sequencer_rebuild_seconds',
      help: 'Duration of a sequence rebuild (full or incremental)',
      labelNames: ['kind'],
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
      registers,
    });
    this.usersRebuilt = new Counter({
      name: 'cprec_sequencer_users_rebuilt_total',
      help: 'Users whose sequences were rewritten',
      registers,
    });
    this.watermarkMs = new Gauge({
      name: 'cprec_sequencer_watermark_ms',
      help: 'Ingest watermark (epoch ms) the sequence tables have reached',
      registers,
    });
    this.watermarkLagSeconds = new Gauge({
      name: 'cprec_sequencer_watermark_lag_seconds',
      help: 'Newest ingested interaction minus the watermark, in seconds (0 when caught up)',
      registers,
    });
    this.failures = new Counter({
      name: 'cprec_sequencer_failures_total',
      help: 'Failed rounds, by stage (setup, rebuild, publish)',
      labelNames: ['stage'],
      registers,
    });
    this.statsPublished = new Counter({
      name: 'cprec_sequencer_corpus_stats_published_total',
      help: 'CorpusStats messages published',
      registers,
    });
  }
}
