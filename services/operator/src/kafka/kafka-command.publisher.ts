import { Injectable, Logger, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import type { Kafka, Producer } from 'kafkajs';
import { EvaluatorCommand, RoundCommand, ServingCommand, TOPICS, type Topics } from '@cprec/contracts';
import { createReliableProducer, ensureTopics } from '@cprec/messaging';
import type { HealthCheck } from '@cprec/service-common';
import type { CommandPublisher } from '../ports';

/** The topics the operator writes to: the trainer's, the evaluator's and serving's mailboxes. */
export const operatorTopics = (topics: Topics): string[] => [
  topics.roundCommands,
  topics.evaluatorCommands,
  topics.servingCommands,
];

/**
 * Publishes operator commands with the no-loss producer (idempotent, acks=all); a send resolves
 * only once the broker has the command, so a 202 means it is in the mailbox.
 */
@Injectable()
export class KafkaCommandPublisher implements CommandPublisher, HealthCheck, OnModuleInit, OnModuleDestroy {
  readonly name = 'kafka';
  private readonly log = new Logger('KafkaCommandPublisher');
  private readonly producer: Producer;
  private connected = false;

  constructor(
    private readonly kafka: Kafka,
    private readonly topics: Topics = TOPICS,
  ) {
    this.producer = createReliableProducer(kafka);
    this.producer.on(this.producer.events.CONNECT, () => (this.connected = true));
    this.producer.on(this.producer.events.DISCONNECT, () => (this.connected = false));
  }

  async onModuleInit(): Promise<void> {
    const admin = this.kafka.admin();
    await admin.connect();
    try {
      await ensureTopics(
        admin,
        operatorTopics(this.topics).map((topic) => ({ topic })),
      );
    } finally {
      await admin.disconnect();
    }
    await this.producer.connect();
    this.log.log(`publishing to ${operatorTopics(this.topics).join(', ')}`);
  }

  async onModuleDestroy(): Promise<void> {
    await this.producer.disconnect();
  }

  async check(): Promise<string | null> {
    return this.connected ? null : 'producer not connected';
  }

  publishRoundCommand(command: RoundCommand): Promise<string> {
    return this.send(this.topics.roundCommands, command.command_id, command);
  }

  publishEvaluatorCommand(command: EvaluatorCommand): Promise<string> {
    return this.send(this.topics.evaluatorCommands, command.adapter_id, command);
  }

  publishServingCommand(command: ServingCommand): Promise<string> {
    return this.send(this.topics.servingCommands, command.command_id, command);
  }

  private async send(topic: string, key: string, value: object): Promise<string> {
    await this.producer.send({ topic, acks: -1, messages: [{ key, value: JSON.stringify(value) }] });
    return topic;
  }
}
