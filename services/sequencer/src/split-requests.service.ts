import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { Consumer } from 'kafkajs';
import { ClickHouse, EmptySplitError, EvalSplitRepository, SplitMismatchError } from '@cprec/clickhouse';
import { parseWith, SplitRequestCommand, SplitRequestSchema, TOPICS } from '@cprec/contracts';
import { NotEnoughItemsError } from '@cprec/corpus';
import { createKafka } from '@cprec/messaging';
import { SEQUENCER_CONFIG, SequencerConfig } from './config';
import { SEQUENCER_CLICKHOUSE } from './sequencer.service';

/** What to do with one request; kept apart from Kafka so the decisions are unit-testable. */
export async function handleSplitRequest(
  raw: Buffer | null,
  splits: Pick<EvalSplitRepository, 'createIfAbsent' | 'recordRefusal'>,
  log: (line: string) => void,
): Promise<'created' | 'existing' | 'rejected'> {
  let value: unknown;
  try {
    value = JSON.parse(raw?.toString('utf8') ?? '');
  } catch {
    log('split request is not JSON; skipped');
    return 'rejected';
  }
  const parsed = parseWith(SplitRequestSchema, value);
  if (!parsed.ok) {
    log(`invalid split request skipped: ${parsed.reason}`);
    return 'rejected';
  }
  const r: SplitRequestCommand = parsed.value;
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

/**
 * The sequencer's mailbox for evaluation splits: it is their one writer, so trainers and the
 * evaluator ask here and then read the split table once the split row appears.
 */
@Injectable()
export class SplitRequestsService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('SplitRequests');
  private consumer: Consumer | null = null;

  constructor(
    @Inject(SEQUENCER_CONFIG) private readonly config: SequencerConfig,
    @Inject(SEQUENCER_CLICKHOUSE) private readonly ch: ClickHouse,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    const kafka = createKafka({
      brokers: this.config.CPREC_KAFKA_BROKERS,
      clientId: `${this.config.SEQUENCER_CLIENT_ID}-splits`,
    });
    const splits = new EvalSplitRepository(this.ch);
    const consumer = kafka.consumer({
      groupId: `${this.config.SEQUENCER_CLIENT_ID}-split-requests`,
      sessionTimeout: 30_000,
    });
    this.consumer = consumer;
    // Connecting can fail while Kafka starts; keep trying in the background like the rebuild loop.
    const start = async (attempt: number): Promise<void> => {
      try {
        await consumer.connect();
        await consumer.subscribe({
          topic: TOPICS.sequencerCommands,
          fromBeginning: this.config.SEQUENCER_FROM_BEGINNING,
        });
        await consumer.run({
          eachMessage: async ({ message, heartbeat }) => {
            const beat = setInterval(() => void heartbeat().catch(() => undefined), 3_000);
            try {
              await handleSplitRequest(message.value, splits, (line) => this.logger.log(line));
            } finally {
              clearInterval(beat);
            }
          },
        });
      } catch (err) {
        const delay = Math.min(30_000, 500 * 2 ** attempt);
        this.logger.warn(
          `split request consumer not started (${(err as Error).message}); retrying in ${delay} ms`,
        );
        setTimeout(() => void start(attempt + 1), delay);
      }
    };
    void start(0);
  }

  async onApplicationShutdown(): Promise<void> {
    await this.consumer?.disconnect().catch(() => undefined);
  }
}
