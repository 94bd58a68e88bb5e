import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * Serving's Prometheus metrics. Latency is a histogram (p50/p95/p99 via histogram_quantile) with
 * buckets dense around the 50 ms target.
 */
export class ServingMetrics {
  readonly latency: Histogram<'route' | 'status'>;
  readonly errors: Counter<'route' | 'status'>;
  readonly adapter: Gauge<'domain' | 'adapter_id' | 'adapter_version'>;
  readonly batchSize: Histogram;
  readonly adapterLoads: Counter<'outcome'>;
  readonly firstStage: Counter<'source'>;

  constructor(registry: Registry) {
    this.latency = new Histogram({
      name: 'cprec_serving_request_duration_seconds',
      help: 'Request latency by route and HTTP status',
      labelNames: ['route', 'status'],
      buckets: [0.002, 0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.2, 0.5, 1, 2, 5],
      registers: [registry],
    });
    this.errors = new Counter({
      name: 'cprec_serving_errors_total',
      help: 'Requests answered with a 4xx/5xx status',
      labelNames: ['route', 'status'],
      registers: [registry],
    });
    this.adapter = new Gauge({
      name: 'cprec_serving_adapter_info',
      help: '1 per domain for the adapter serving it (domain "*": the base model, for every domain without an adapter)',
      labelNames: ['domain', 'adapter_id', 'adapter_version'],
      registers: [registry],
    });
    this.batchSize = new Histogram({
      name: 'cprec_serving_batch_size',
      help: 'Requests scored together by the model',
      buckets: [1, 2, 3, 4, 6, 8, 12, 16, 32],
      registers: [registry],
    });
    this.adapterLoads = new Counter({
      name: 'cprec_serving_adapter_loads_total',
      help: 'Adapter loads by outcome (switch, rollback, load_failed)',
      labelNames: ['outcome'],
      registers: [registry],
    });
    this.firstStage = new Counter({
      name: 'cprec_serving_first_stage_total',
      help: 'Requests by where their candidates came from',
      labelNames: ['source'],
      registers: [registry],
    });
  }

  /** Replaces the gauge's series with what serves each domain now (replaced adapters disappear). */
  setServing(serving: ReadonlyArray<{ domain: string; adapterId: string; adapterVersion: string }>): void {
    this.adapter.reset();
    for (const s of serving)
      this.adapter.set({ domain: s.domain, adapter_id: s.adapterId, adapter_version: s.adapterVersion }, 1);
  }
}
