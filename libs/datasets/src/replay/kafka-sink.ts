import type { Message, Producer, TopicMessages } from 'kafkajs';
import { TOPICS } from '@cprec/contracts';
import { sendBatchAcknowledged } from '@cprec/messaging';
import type { ReplayRecord, ReplaySink } from './model';

export interface ReplayTopics {
  interactions: string;
  items: string;
}

/**
 * Sends replay batches with one `sendBatch` request per batch, acks from all in-sync replicas,
 * checked for messages kafkajs dropped when a broker died mid-request (sendBatchAcknowledged).
 * Interactions are keyed by user_id so one user's events land in one partition in order; items
 * by domain/item_id so updates of one item stay ordered. Use a producer from
 * `createReliableProducer` (idempotent, one request in flight) to keep that order across retries.
 */
export class KafkaReplaySink implements ReplaySink {
  constructor(
    private readonly producer: Producer,
    private readonly topics: ReplayTopics = { interactions: TOPICS.interactions, items: TOPICS.items },
  ) {}

  async send(batch: readonly ReplayRecord[]): Promise<void> {
    const interactions: Message[] = [];
    const items: Message[] = [];
    for (const record of batch) {
      if (record.kind === 'interaction')
        interactions.push({ key: record.event.user_id, value: JSON.stringify(record.event) });
      else
        items.push({
          key: `${record.event.domain}/${record.event.item_id}`,
          value: JSON.stringify(record.event),
        });
    }
    const topicMessages: TopicMessages[] = [];
    if (items.length > 0) topicMessages.push({ topic: this.topics.items, messages: items });
    if (interactions.length > 0)
      topicMessages.push({ topic: this.topics.interactions, messages: interactions });
    if (topicMessages.length > 0) await sendBatchAcknowledged(this.producer, topicMessages);
  }
}
