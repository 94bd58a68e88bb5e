import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { RejectionKind } from '@cprec/contracts';
import { IngestMetrics } from './pipeline/ports';

/** Prometheus counters behind the pipeline's metrics port. */
export class PrometheusIngestMetrics implements IngestMetrics {
  private readonly consumedTotal: Counter<'topic'>;
  private readonly insertedTotal: Counter<'kind'>;
  private readonly dedupTotal: Counter;
  private readonly deadTotal: Counter<'reason'>;
  private readonly retryTotal: Counter;
  private readonly batchLatency: Histogram;
  readonly lag: Gauge<'topic' | 'partition'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.consumedTotal = new Counter({
      name: 'cprec_ingest_consumed_total',
      help: 'Messages consumed',
      labelNames: ['topic'],
      registers,
    });
    this.insertedTotal = new Counter({
      name: 'cprec_ingest_inserted_total',
      help: 'Rows inserted into ClickHouse',
      labelNames: ['kind'],
      registers,
    });
    this.dedupTotal = new Counter({
      name: 'cprec_ingest_deduplicated_total',
      help: 'Re-sent events dropped before insert',
      registers,
    });
    this.deadTotal = new Counter({
      name: 'cprec_ingest_dead_lettered_total',
      help: 'Messages sent to the dead-letter topic, by rejection kind (a closed set)',
      labelNames: ['reason'],
      registers,
    });
    this.retryTotal = new Counter({
      name: 'cprec_ingest_store_retries_total',
      help: 'Failed store attempts that were retried',
      registers,
    });
    this.batchLatency = new Histogram({
      name: 'cprec_ingest_batch_seconds',
      help: 'Time from flush start to offset commit',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.lag = new Gauge({
      name: 'cprec_ingest_consumer_lag',
      help: 'Messages behind the high watermark',
      labelNames: ['topic', 'partition'],
      registers,
    });
  }

  consumed(topic: string, n: number): void {
    this.consumedTotal.inc({ topic }, n);
  }
  inserted(kind: 'interactions' | 'items', n: number): void {
    this.insertedTotal.inc({ kind }, n);
  }
  deduplicated(n: number): void {
    this.dedupTotal.inc(n);
  }
  deadLettered(kind: RejectionKind, n: number): void {
    this.deadTotal.inc({ reason: kind }, n);
  }
  batchSeconds(seconds: number): void {
    this.batchLatency.observe(seconds);
  }
  storeRetry(): void {
    this.retryTotal.inc();
  }
}
