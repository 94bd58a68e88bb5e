import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Prometheus metrics of the evaluator: decisions, evaluation time, the HR@1 series and alerts. */
export class EvaluatorMetrics {
  readonly decisions: Counter<'decision'>;
  readonly evaluationSeconds: Histogram<'purpose'>;
  readonly driftHr1: Gauge<'domain'>;
  readonly driftAlerts: Counter<'domain'>;
  readonly failures: Counter<'stage'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.decisions = new Counter({
      name: 'cprec_evaluator_decisions_total',
      help: 'Gate decisions by outcome (promoted, rejected, skipped)',
      labelNames: ['decision'],
      registers,
    });
    this.evaluationSeconds = new Histogram({
      name: 'cprec_evaluator_evaluation_seconds',
      help: 'Wall time of evaluation processes',
      labelNames: ['purpose'],
      buckets: [1, 5, 15, 60, 180, 600, 1800],
      registers,
    });
    this.driftHr1 = new Gauge({
      name: 'cprec_evaluator_drift_hr1',
      help: 'HR@1 of the serving adapter on the latest time window',
      labelNames: ['domain'],
      registers,
    });
    this.driftAlerts = new Counter({
      name: 'cprec_evaluator_drift_alerts_total',
      help: 'Drift alerts raised',
      labelNames: ['domain'],
      registers,
    });
    this.failures = new Counter({
      name: 'cprec_evaluator_failures_total',
      help: 'Handler or drift tick failures (retried)',
      labelNames: ['stage'],
      registers,
    });
  }
}
