import { Admin, Kafka, logLevel, Producer } from 'kafkajs';
import { TOPICS, type Topics } from '@cprec/contracts';

export interface KafkaSettings {
  /** Comma-separated host:port list, e.g. `127.0.0.1:19092`. */
  brokers: string;
  /** Identifies this process in broker logs and quotas. */
  clientId: string;
  /** kafkajs log level; WARN keeps tests quiet but shows rebalances and retries. */
  logLevel?: logLevel;
}

export const DEFAULT_KAFKA_BROKERS = '127.0.0.1:19092';

export function kafkaSettingsFromEnv(clientId: string, env: NodeJS.ProcessEnv = process.env): KafkaSettings {
  return { brokers: env.CPREC_KAFKA_BROKERS ?? DEFAULT_KAFKA_BROKERS, clientId };
}

export function createKafka(settings: KafkaSettings): Kafka {
  return new Kafka({
    clientId: settings.clientId,
    brokers: settings.brokers
      .split(',')
      .map((b) => b.trim())
      .filter(Boolean),
    logLevel: settings.logLevel ?? logLevel.WARN,
    retry: { initialRetryTime: 200, retries: 10 },
  });
}

export interface TopicSpec {
  topic: string;
  numPartitions?: number;
}

/**
 * Creates missing topics (idempotent). Interactions get several partitions so ingest can scale
 * out by consumer group; control topics have one partition because their order matters.
 */
export async function ensureTopics(admin: Admin, specs: readonly TopicSpec[]): Promise<void> {
  const existing = new Set(await admin.listTopics());
  const missing = specs.filter((s) => !existing.has(s.topic));
  if (missing.length === 0) return;
  await admin.createTopics({
    waitForLeaders: true,
    topics: missing.map((s) => ({
      topic: s.topic,
      numPartitions: s.numPartitions ?? 1,
      replicationFactor: 1,
    })),
  });
}

/** The default topic layout of a cprec installation (`topics`: its names, prefixed or not). */
export function defaultTopicSpecs(interactionPartitions = 4, topics: Topics = TOPICS): TopicSpec[] {
  return Object.values(topics).map((topic) => ({
    topic,
    numPartitions: topic === topics.interactions ? interactionPartitions : 1,
  }));
}

/** A producer configured for no loss: idempotent, acks from all in-sync replicas. */
export function createReliableProducer(kafka: Kafka): Producer {
  return kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
}
