import type { Producer } from 'kafkajs';
import {
  createClickHouse,
  awaitFrozenSplit,
  EvalSplitRepository,
  type SplitWaitOptions,
  SequenceRepository,
  type ClickHouse,
  type ClickHouseSettings,
} from '@cprec/clickhouse';
import { topicsFor, type SplitRequestCommand } from '@cprec/contracts';
import { createServiceKafka, createReliableProducer } from '@cprec/messaging';
import type { ValidationExample } from './sft-data';

/** What fine-tuning reads about a target domain (ClickHouse + the sequencer's mailbox in production). */
export interface TargetDomainSource {
  /**
   * Resolves once the frozen leave-one-out split `splitId` of `domain` exists; rejects with a
   * clear message when it does not appear in time.
   */
  ensureLooSplit(splitId: string, domain: string, seed: number): Promise<void>;
  /** The split's 'loo-valid' examples of the domain, in the split's fixed order. */
  validationExamples(splitId: string, domain: string): Promise<ValidationExample[]>;
  /** Titled catalogue items of the domain. */
  catalogue(domain: string): Promise<Array<{ itemId: string; title: string }>>;
  close(): Promise<void>;
}

/**
 * Reads splits and the catalogue from ClickHouse; the sequencer is the one writer of splits, so a
 * missing split is requested on its mailbox and polled for. The request is repeated every ten
 * seconds while waiting (the sequencer handles requests idempotently per split id), in case the
 * first one was lost.
 */
export class ClickHouseTargetDomains implements TargetDomainSource {
  private readonly splits: EvalSplitRepository;
  private readonly sequences: SequenceRepository;

  constructor(
    private readonly ch: ClickHouse,
    private readonly requestSplit: (command: SplitRequestCommand) => Promise<void>,
    private readonly wait: SplitWaitOptions,
    private readonly onClose: () => Promise<void> = async () => undefined,
  ) {
    this.splits = new EvalSplitRepository(ch);
    this.sequences = new SequenceRepository(ch);
  }

  async ensureLooSplit(splitId: string, domain: string, seed: number): Promise<void> {
    await awaitFrozenSplit(
      this.splits,
      splitId,
      (ts) =>
        this.requestSplit({
          kind: 'create_split',
          split_id: splitId,
          split_kind: 'loo',
          domains: [domain],
          seed,
          requested_by: 'trainer',
          ts,
        }),
      this.wait,
    );
  }

  async validationExamples(splitId: string, domain: string): Promise<ValidationExample[]> {
    const stored = await this.splits.readExamples(splitId, { domain, kind: 'loo-valid' });
    return stored.map((e) => ({
      splitId: e.splitId,
      userId: e.userId,
      domain: e.domain,
      history: e.history,
      target: e.target,
      targetEventId: e.targetEventId,
      targetTsMs: e.targetTsMs,
      candidates: e.candidates,
      seed: e.seed,
    }));
  }

  catalogue(domain: string): Promise<Array<{ itemId: string; title: string }>> {
    return this.sequences.domainItems(domain);
  }

  async close(): Promise<void> {
    await this.onClose();
    await this.ch.close();
  }
}

/**
 * Opens the production source for a runner process: its own ClickHouse client and a Kafka
 * producer for split requests, connected only when a split is actually missing (most rounds
 * find the split frozen already).
 */
export function openClickHouseTargetDomains(
  settings: ClickHouseSettings,
  kafkaBrokers: string,
  wait: SplitWaitOptions,
): ClickHouseTargetDomains {
  let producer: Producer | null = null;
  const request = async (command: SplitRequestCommand): Promise<void> => {
    if (!producer) {
      const created = createReliableProducer(
        createServiceKafka('trainer', 'cprec-trainer-runner', kafkaBrokers),
      );
      await created.connect();
      producer = created;
    }
    await producer.send({
      // The runner inherits the trainer's environment, so its installation's topic prefix.
      topic: topicsFor(process.env.CPREC_TOPIC_PREFIX ?? '').sequencerCommands,
      acks: -1,
      messages: [{ key: command.split_id, value: JSON.stringify(command) }],
    });
  };
  return new ClickHouseTargetDomains(createClickHouse(settings), request, wait, async () => {
    await (producer as Producer | null)?.disconnect().catch(() => undefined);
  });
}
