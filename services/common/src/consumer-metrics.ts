import { Counter, Registry } from 'prom-client';
import type { RejectionKind } from '@cprec/contracts';
import type { ProcessorObserver } from '@cprec/messaging';

/**
 * Counters of one service's consumers, labelled by bounded values only: the consumer, the topic
 * (the installation's own topic names) and the rejection kind (a closed set) — never a reason text.
 */
export class ConsumerMetrics {
  private readonly handled: Counter<'consumer' | 'topic'>;
  private readonly retries: Counter<'consumer' | 'topic'>;
  private readonly dead: Counter<'consumer' | 'topic' | 'kind'>;
  private readonly skipped: Counter<'consumer' | 'reason'>;

  constructor(registry: Registry) {
    const registers = [registry];
    const get = <T extends Counter<string>>(name: string, make: () => T): T =>
      (registry.getSingleMetric(name) as T | undefined) ?? make();
    this.handled = get(
      'cprec_consumer_handled_total',
      () =>
        new Counter({
          name: 'cprec_consumer_handled_total',
          help: 'Messages handled by a consumer',
          labelNames: ['consumer', 'topic'],
          registers,
        }),
    );
    this.retries = get(
      'cprec_consumer_retries_total',
      () =>
        new Counter({
          name: 'cprec_consumer_retries_total',
          help: 'Failed attempts at a message that were retried',
          labelNames: ['consumer', 'topic'],
          registers,
        }),
    );
    this.dead = get(
      'cprec_consumer_dead_lettered_total',
      () =>
        new Counter({
          name: 'cprec_consumer_dead_lettered_total',
          help: 'Messages a consumer sent to the dead-letter topic, by rejection kind',
          labelNames: ['consumer', 'topic', 'kind'],
          registers,
        }),
    );
    this.skipped = get(
      'cprec_consumer_skipped_total',
      () =>
        new Counter({
          name: 'cprec_consumer_skipped_total',
          help: 'Messages a consumer skipped on purpose (stale commands, events for others)',
          labelNames: ['consumer', 'reason'],
          registers,
        }),
    );
  }

  /** The observer to give a ResilientConsumer named `consumer`. */
  observer(consumer: string): ProcessorObserver {
    return {
      handled: (topic) => this.handled.inc({ consumer, topic }),
      retried: (topic) => this.retries.inc({ consumer, topic }),
      deadLettered: (topic, kind: RejectionKind) => this.dead.inc({ consumer, topic, kind }),
    };
  }

  skip(consumer: string, reason: 'stale_command' | 'not_for_us' | 'not_ready'): void {
    this.skipped.inc({ consumer, reason });
  }
}
