import type { Consumer, Kafka } from 'kafkajs';
import type { ClickHouse } from '@cprec/clickhouse';
import { EvalSplitRepository } from '@cprec/clickhouse';
import { SplitRequestSchema, TOPICS, type Topics } from '@cprec/contracts';
import { uniqueName } from '../support/infra';

/**
 * Plays the sequencer's split handler in tests (the sequencer is the one writer of evaluation
 * splits; its Kafka handler for split requests is being added separately): consumes the real
 * sequencer-commands topic of the test's namespace and freezes every requested split in this
 * test's database with EvalSplitRepository.createIfAbsent.
 */
export class TestSplitSequencer {
  readonly handled: string[] = [];
  readonly errors: string[] = [];
  private consumer: Consumer | null = null;

  constructor(
    private readonly kafka: Kafka,
    private readonly ch: ClickHouse,
    /** Only requests for these domains are frozen. */
    private readonly domains: readonly string[],
    /** The namespace's topics and a group id of it. */
    private readonly topics: Topics = TOPICS,
    private readonly groupId: string = uniqueName('split_sequencer'),
  ) {}

  async start(): Promise<void> {
    const consumer = this.kafka.consumer({ groupId: this.groupId });
    this.consumer = consumer;
    const joined = new Promise<void>((resolve) => consumer.on(consumer.events.GROUP_JOIN, () => resolve()));
    await consumer.connect();
    await consumer.subscribe({ topics: [this.topics.sequencerCommands], fromBeginning: false });
    const repo = new EvalSplitRepository(this.ch);
    await consumer.run({
      eachMessage: async ({ message }) => {
        const parsed = SplitRequestSchema.safeParse(JSON.parse(message.value?.toString() ?? 'null'));
        if (!parsed.success) return;
        const r = parsed.data;
        if (!r.domains.every((d) => this.domains.includes(d))) return;
        try {
          await repo.createIfAbsent({
            splitId: r.split_id,
            kind: r.split_kind,
            domains: r.domains,
            seed: r.seed,
            ...(r.window_start_ms !== undefined ? { windowStartMs: r.window_start_ms } : {}),
            ...(r.window_end_ms !== undefined ? { windowEndMs: r.window_end_ms } : {}),
          });
          this.handled.push(r.split_id);
        } catch (err) {
          // As the sequencer would: a split that cannot be made is reported, not retried forever.
          this.errors.push(`${r.split_id}: ${(err as Error).message}`);
        }
      },
    });
    await joined;
  }

  async stop(): Promise<void> {
    await this.consumer?.disconnect();
  }
}
