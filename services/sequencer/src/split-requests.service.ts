import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { Producer } from 'kafkajs';
import { Registry } from 'prom-client';
import {
  ClickHouse,
  clickHouseProblem,
  EmptySplitError,
  EvalSplitRepository,
  SplitMismatchError,
} from '@cprec/clickhouse';
import {
  commandAgeProblem,
  decodeJson,
  DEFAULT_LIMITS,
  parseWith,
  rejectionKindOf,
  SplitRequestCommand,
  SplitRequestSchema,
} from '@cprec/contracts';
import { NotEnoughItemsError } from '@cprec/corpus';
import {
  createServiceKafka,
  createReliableProducer,
  RejectedMessage,
  ResilientConsumer,
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
import { SEQUENCER_CONFIG, SEQUENCER_LEASE, SequencerConfig, type SequencerLeaseHolder } from './config';
import { SEQUENCER_CLICKHOUSE } from './sequencer.service';

/**
 * What to do with one request; kept apart from Kafka so the decisions are unit-testable. A
 * request that can never be handled (not JSON, invalid, unstorable) is refused with
 * RejectedMessage (the consumer dead-letters it); one older than `maxAgeMs` is dropped.
 */
export async function handleSplitRequest(
  raw: Buffer | null,
  splits: Pick<EvalSplitRepository, 'createIfAbsent' | 'recordRefusal'>,
  log: (line: string) => void,
  lifetime: { maxAgeMs: number; now: () => number } = { maxAgeMs: Infinity, now: () => Date.now() },
): Promise<'created' | 'existing' | 'rejected' | 'stale'> {
  const decoded = decodeJson(raw, DEFAULT_LIMITS);
  if (!decoded.ok)
    throw new RejectedMessage(rejectionKindOf(decoded), `split request refused: ${decoded.reason}`);
  const parsed = parseWith(SplitRequestSchema, decoded.value);
  if (!parsed.ok) throw new RejectedMessage('invalid', `split request refused: ${parsed.reason}`);
  const r: SplitRequestCommand = parsed.value;
  const stale = commandAgeProblem(r.ts, lifetime.now(), lifetime.maxAgeMs);
  if (stale !== null) {
    log(`split request ${r.split_id} ${stale}`);
    return 'stale';
  }
  try {
    const { split, created } = await splits.createIfAbsent({
      splitId: r.split_id,
      kind: r.split_kind,
      domains: r.domains,
      seed: r.seed,
      ...(r.window_start_ms === undefined ? {} : { windowStartMs: r.window_start_ms }),
      ...(r.window_end_ms === undefined ? {} : { windowEndMs: r.window_end_ms }),
    });
    log(`split ${split.splitId} ${created ? 'frozen' : 'already frozen'}: ${split.examples} examples`);
    return created ? 'created' : 'existing';
  } catch (err) {
    // Not yet possible (no sequences, too few items for the negatives): say so and let the
    // requester's periodic re-send try again once more data is sequenced.
    if (err instanceof EmptySplitError || err instanceof NotEnoughItemsError) {
      log(`split request ${r.split_id} not frozen yet: ${(err as Error).message}`);
      return 'rejected';
    }
    // A conflicting or malformed definition will never succeed: drop it, and answer the
    // requester (it polls for the split) so it stops waiting and says why. If this write fails
    // the message is retried (and refused again), so the answer is not lost. Anything else (the
    // server being down) is thrown so the message is retried.
    if (err instanceof SplitMismatchError || err instanceof RangeError) {
      const reason = (err as Error).message;
      log(`split request ${r.split_id} refused: ${reason}`);
      await splits.recordRefusal(r.split_id, reason, r.ts);
      return 'rejected';
    }
    throw err;
  }
}

class NotActiveSequencerError extends Error {
  constructor() {
    super('not the active sequencer (lease not held)');
  }
}

/**
 * The sequencer's mailbox for evaluation splits: it is their one writer, so trainers and the
 * evaluator ask here and then read the split table once the split row appears. Consumed by a
 * ResilientConsumer: refused requests are dead-lettered, failures retried only while ClickHouse is
 * down (reported by /health).
 */
@Injectable()
export class SplitRequestsService implements OnApplicationBootstrap, OnApplicationShutdown, HealthCheck {
  readonly name = 'split-requests';
  private readonly logger = new Logger('SplitRequests');
  private consumer: ResilientConsumer | null = null;
  private producer: Producer | null = null;
  private starting: NodeJS.Timeout | null = null;
  private stopping = false;
  private readonly metrics: ConsumerMetrics;

  constructor(
    @Inject(SEQUENCER_CONFIG) private readonly config: SequencerConfig,
    @Inject(SEQUENCER_CLICKHOUSE) private readonly ch: ClickHouse,
    @Inject(METRICS_REGISTRY) registry: Registry,
    @Inject(SEQUENCER_LEASE) private readonly leaseHolder: SequencerLeaseHolder,
  ) {
    this.metrics = new ConsumerMetrics(registry);
  }

  async check(): Promise<string | null> {
    return this.consumer ? this.consumer.problem() : 'split request consumer not started yet';
  }

  onApplicationBootstrap(): void {
    const c = this.config;
    const topics = topicsOf(c);
    const kafka = createServiceKafka('sequencer', `${c.SEQUENCER_CLIENT_ID}-splits`, c.CPREC_KAFKA_BROKERS);
    const splits = new EvalSplitRepository(this.ch);
    const lease = this.leaseHolder.lease;
    // Connecting can fail while Kafka starts; keep trying in the background like the rebuild loop.
    const start = async (attempt: number): Promise<void> => {
      if (this.stopping) return;
      try {
        const producer = this.producer ?? createReliableProducer(kafka);
        await producer.connect();
        this.producer = producer;
        const consumer = new ResilientConsumer({
          consumer: 'sequencer',
          kafka,
          groupId: `${c.SEQUENCER_CLIENT_ID}-split-requests`,
          topics: [topics.sequencerCommands],
          fromBeginning: c.SEQUENCER_FROM_BEGINNING,
          handle: async (message) => {
            // Only the active sequencer writes splits; anything else leaves the message uncommitted.
            if (lease && !lease.held()) throw new NotActiveSequencerError();
            const outcome = await handleSplitRequest(message.value, splits, (line) => this.logger.log(line), {
              maxAgeMs: c.SEQUENCER_COMMAND_MAX_AGE_MS,
              now: () => Date.now(),
            });
            if (outcome === 'stale') this.metrics.skip('sequencer', 'stale_command');
          },
          classify: classifyFailure,
          dependencies: () => clickHouseProblem(() => this.ch.ping()),
          deadLetters: await createDeadLetterPublisher(kafka, producer, topics),
          policy: retryPolicyOf(c),
          stalledAfterMs: c.CPREC_CONSUMER_STALLED_MS,
          log: consumerLog(this.logger),
          observer: this.metrics.observer('sequencer'),
          isAbort: (err) => err instanceof NotActiveSequencerError,
          // The split-request partition is the sequencer's lease (docs/scaling.md, "Leases").
          ...(lease
            ? {
                consumerConfig: {
                  partitionAssigners: [lease.assigner],
                  sessionTimeout: c.SEQUENCER_LEASE_SESSION_MS,
                  heartbeatInterval: c.SEQUENCER_LEASE_HEARTBEAT_MS,
                  maxWaitTimeInMs: c.SEQUENCER_LEASE_HEARTBEAT_MS,
                },
                onConsumer: (consumer) => lease.attach(consumer),
              }
            : {}),
        });
        await consumer.start();
        this.consumer = consumer;
      } catch (err) {
        const delay = Math.min(30_000, 500 * 2 ** attempt);
        this.logger.warn(
          `split request consumer not started (${(err as Error).message}); retrying in ${delay} ms`,
        );
        this.starting = setTimeout(() => void start(attempt + 1), delay);
      }
    };
    void start(0);
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopping = true;
    if (this.starting) clearTimeout(this.starting);
    await this.consumer?.stop();
    await this.producer?.disconnect().catch(() => undefined);
  }
}
