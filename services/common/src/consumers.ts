import { Logger } from '@nestjs/common';
import type { Kafka, Producer } from 'kafkajs';
import type { Topics } from '@cprec/contracts';
import { DeadLetterPublisher, deadLetterBudget } from '@cprec/messaging';

/** A Nest logger in the shape the messaging library logs through. */
export function consumerLog(logger: Logger): {
  info(l: string): void;
  warn(l: string): void;
  error(l: string): void;
} {
  return {
    info: (line) => logger.log(line),
    warn: (line) => logger.warn(line),
    error: (line) => logger.error(line),
  };
}

/** The dead-letter publisher of a service, its budget read from the topic's size limit. */
export async function createDeadLetterPublisher(
  kafka: Kafka,
  producer: Pick<Producer, 'send'>,
  topics: Topics,
): Promise<DeadLetterPublisher> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    return new DeadLetterPublisher(
      producer,
      topics.deadLetter,
      await deadLetterBudget(admin, topics.deadLetter),
    );
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}
