import { Admin, Kafka, logLevel, Producer } from 'kafkajs';
import {
  ADMIN_PRINCIPAL,
  credentialsFromEnv,
  type ServicePrincipal,
  TOPICS,
  type Topics,
} from '@cprec/contracts';

/** SASL/SCRAM credentials (the only mechanism cprec's brokers accept from clients). */
export interface KafkaSasl {
  mechanism: 'scram-sha-256';
  username: string;
  password: string;
}

export interface KafkaSettings {
  /** Comma-separated host:port list, e.g. `127.0.0.1:19092`. */
  brokers: string;
  /** Identifies this process in broker logs and quotas. */
  clientId: string;
  /** kafkajs log level; WARN keeps tests quiet but shows rebalances and retries. */
  logLevel?: logLevel;
  /** Credentials; absent: no authentication (a broker started with CPREC_AUTH=off). */
  sasl?: KafkaSasl;
}

export const DEFAULT_KAFKA_BROKERS = '127.0.0.1:19092';

/**
 * The SASL credentials of `principal` from the environment: CPREC_KAFKA_USERNAME and
 * CPREC_KAFKA_PASSWORD when set, else the principal's own CPREC_KAFKA_PASSWORD_<PRINCIPAL>
 * (`.cprec/secrets/cprec.env`), else none.
 */
export function kafkaSaslFromEnv(
  principal: string,
  env: NodeJS.ProcessEnv = process.env,
): KafkaSasl | undefined {
  const credentials = credentialsFromEnv(
    'kafka',
    principal,
    { username: 'CPREC_KAFKA_USERNAME', password: 'CPREC_KAFKA_PASSWORD' },
    env,
  );
  return credentials === null ? undefined : { mechanism: 'scram-sha-256', ...credentials };
}

/**
 * Settings from the environment. `principal` is who this process is: a service's name, or
 * `admin` (the default) for the infra scripts, the CLI and the test harness.
 */
export function kafkaSettingsFromEnv(
  clientId: string,
  env: NodeJS.ProcessEnv = process.env,
  principal: string = ADMIN_PRINCIPAL,
): KafkaSettings {
  const sasl = kafkaSaslFromEnv(principal, env);
  return { brokers: env.CPREC_KAFKA_BROKERS ?? DEFAULT_KAFKA_BROKERS, clientId, ...(sasl ? { sasl } : {}) };
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
    ...(settings.sasl ? { sasl: { ...settings.sasl } } : {}),
  });
}

export interface TopicSpec {
  topic: string;
  numPartitions?: number;
  /** Copies of each partition; default kafkaReplicationFactorFromEnv(). */
  replicationFactor?: number;
}

/**
 * How many brokers hold each partition of the topics cprec creates: CPREC_KAFKA_REPLICATION_FACTOR
 * (3 in the cluster profile, whose brokers also require two in-sync copies for an acks=all write),
 * default 1 (the single broker).
 */
export function kafkaReplicationFactorFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.CPREC_KAFKA_REPLICATION_FACTOR;
  if (raw === undefined || raw === '') return 1;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1 || value > 32)
    throw new Error(
      `CPREC_KAFKA_REPLICATION_FACTOR must be an integer from 1 to 32, got ${JSON.stringify(raw)}`,
    );
  return value;
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
      replicationFactor: s.replicationFactor ?? kafkaReplicationFactorFromEnv(),
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

/**
 * A service's Kafka client: its brokers (from its validated config) and its own principal's
 * credentials from the environment (see kafkaSaslFromEnv).
 */
export function createServiceKafka(
  principal: ServicePrincipal,
  clientId: string,
  brokers: string,
  env: NodeJS.ProcessEnv = process.env,
): Kafka {
  return createKafka({ ...kafkaSettingsFromEnv(clientId, env, principal), brokers });
}
