import { Consumer, Kafka } from 'kafkajs';
import { Waiter } from '../support/infra';

/**
 * Reads every message of some topics from the beginning with a group of its own, keeping the
 * decoded JSON values, so a test can wait for the command the operator published (matched by
 * its command_id — the control topics are shared with other runs).
 */
export class CommandTap {
  readonly messages: Array<{ topic: string; key: string | null; value: Record<string, unknown> }> = [];
  private readonly waiter = new Waiter();
  private consumer: Consumer | null = null;

  constructor(
    private readonly kafka: Kafka,
    private readonly groupId: string,
  ) {}

  async start(topics: readonly string[]): Promise<void> {
    const consumer = this.kafka.consumer({ groupId: this.groupId });
    this.consumer = consumer;
    await consumer.connect();
    await consumer.subscribe({ topics: [...topics], fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ topic, message }) => {
        this.messages.push({
          topic,
          key: message.key?.toString() ?? null,
          value: JSON.parse(message.value?.toString() ?? 'null') as Record<string, unknown>,
        });
        this.waiter.notify();
      },
    });
  }

  async waitFor(topic: string, commandId: string, timeoutMs = 60_000): Promise<Record<string, unknown>> {
    const find = () => this.messages.find((m) => m.topic === topic && m.value.command_id === commandId);
    await this.waiter.until(() => find() !== undefined, `command ${commandId} on ${topic}`, timeoutMs);
    return find()!.value;
  }

  async stop(): Promise<void> {
    await this.consumer?.disconnect();
  }
}
