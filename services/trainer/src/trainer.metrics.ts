import { Counter, Gauge, Registry } from 'prom-client';
import type { RoundState } from '@cprec/contracts';
import type { TrainerMetricsPort } from './rounds/ports';

/** Prometheus metrics behind the coordinator's metrics port. */
export class PrometheusTrainerMetrics implements TrainerMetricsPort {
  private readonly rounds: Counter<'state'>;
  private readonly stepsTotal: Counter;
  private readonly tokensTotal: Counter;
  private readonly tokensPerSecond: Gauge;
  private readonly lastLoss: Gauge;
  private readonly crashes: Counter;

  constructor(registry: Registry) {
    const registers = [registry];
    this.rounds = new Counter({
      name: 'cprec_trainer_rounds_total',
      help: 'Rounds entering each state',
      labelNames: ['state'],
      registers,
    });
    this.stepsTotal = new Counter({
      name: 'cprec_trainer_steps_total',
      help: 'Optimizer steps trained',
      registers,
    });
    this.tokensTotal = new Counter({
      name: 'cprec_trainer_tokens_total',
      help: 'Tokens trained on',
      registers,
    });
    this.tokensPerSecond = new Gauge({
      name: 'cprec_trainer_tokens_per_second',
      help: 'Training throughput over the last step batch',
      registers,
    });
    this.lastLoss = new Gauge({
      name: 'cprec_trainer_last_loss',
      help: 'Loss of the latest step',
      registers,
    });
    this.crashes = new Counter({
      name: 'cprec_trainer_runner_crashes_total',
      help: 'Round runner processes that died',
      registers,
    });
  }

  roundState(state: RoundState): void {
    this.rounds.inc({ state });
  }
  steps(n: number, tokens: number, seconds: number, lastLoss: number): void {
    this.stepsTotal.inc(n);
    this.tokensTotal.inc(tokens);
    this.tokensPerSecond.set(tokens / seconds);
    if (Number.isFinite(lastLoss)) this.lastLoss.set(lastLoss);
  }
  runnerCrash(): void {
    this.crashes.inc();
  }
}
