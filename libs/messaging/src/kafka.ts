import {
  Admin,
  type ICustomPartitioner,
  Kafka,
  logLevel,
  type Message,
  Partitioners,
  Producer,
  type RecordMetadata,
  type TopicMessages,
} from 'kafkajs';
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
  try {
    await admin.createTopics({
      waitForLeaders: true,
      topics: missing.map((s) => ({
        topic: s.topic,
        numPartitions: s.numPartitions ?? 1,
        replicationFactor: s.replicationFactor ?? kafkaReplicationFactorFromEnv(),
      })),
    });
  } catch (err) {
    const type = (err as { type?: string }).type;
    // Under authentication only admin creates topics (infra/local/up does, for an installation).
    // kafkajs reports refused creations as an aggregate ("Topic creation errors"), one per topic.
    const refusals = [err, ...((err as { errors?: unknown[] }).errors ?? [])]
      .map((e) => (e as { type?: string }).type)
      .filter((t) => t === 'TOPIC_AUTHORIZATION_FAILED' || t === 'CLUSTER_AUTHORIZATION_FAILED');
    if (refusals.length > 0)
      throw new Error(
        `topics ${missing.map((s) => s.topic).join(', ')} do not exist and this principal may not create them ` +
          `(${refusals[0]}): infra/local/up creates an installation's topics as admin`,
      );
    // With several brokers, the one asked for metadata right after the creation may not know the
    // new topics yet (kafkajs waits out LEADER_NOT_AVAILABLE only): they exist, wait until every
    // broker answers for them.
    if (type !== 'UNKNOWN_TOPIC_OR_PARTITION') throw err;
    await waitForTopicMetadata(
      admin,
      missing.map((s) => s.topic),
    );
  }
}

async function waitForTopicMetadata(admin: Admin, topics: string[], timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const { topics: found } = await admin.fetchTopicMetadata({ topics });
      if (found.every((t) => t.partitions.length > 0 && t.partitions.every((p) => p.leader >= 0))) return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
    }
    if (Date.now() > deadline)
      throw new Error(`topics ${topics.join(', ')} have no leaders after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** The default topic layout of a cprec installation (`topics`: its names, prefixed or not). */
export function defaultTopicSpecs(interactionPartitions = 4, topics: Topics = TOPICS): TopicSpec[] {
  return Object.values(topics).map((topic) => ({
    topic,
    numPartitions: topic === topics.interactions ? interactionPartitions : 1,
  }));
}

/**
 * The partition kafkajs chose for each message a reliable producer sent (its default partitioner,
 * recorded): what `sendBatchAcknowledged` checks the brokers' answers against.
 */
const assignedPartitions = new WeakMap<Message, number>();

const recordingPartitioner: ICustomPartitioner = () => {
  const partition = Partitioners.DefaultPartitioner();
  return (args) => {
    const chosen = partition(args);
    assignedPartitions.set(args.message, chosen);
    return chosen;
  };
};

/**
 * A producer configured for no loss: idempotent, acks from all in-sync replicas. Send batches that
 * span partitions with `sendBatchAcknowledged` (see there why).
 */
export function createReliableProducer(kafka: Kafka): Producer {
  return kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
    createPartitioner: recordingPartitioner,
  });
}

/**
 * `producer.sendBatch` (acks=all) that makes sure every message was acknowledged, for batches
 * whose partitions have different leaders. kafkajs 2.2.4 (its last release) can resolve a send
 * having dropped messages: when one broker's produce request fails (the broker died), it retries
 * only for brokers without an answer yet — but after the metadata refresh the failed partitions'
 * new leaders are brokers that already answered for their own partitions, so the failed
 * partitions are never sent again and the call succeeds. The cluster profile's failover test
 * (test/cluster/failover.test.ts) lost 2-34 of 10,061 replayed events that way per broker kill.
 * Here the partitions kafkajs chose (recorded by createReliableProducer's partitioner) are
 * checked against the answers, and messages of an unanswered partition are sent again to that
 * partition: the idempotent producer re-uses their sequence numbers, so a copy the dead leader
 * did replicate is not written twice. A producer not made by createReliableProducer is only
 * sent with, not checked.
 */
export async function sendBatchAcknowledged(
  producer: Producer,
  topicMessages: readonly TopicMessages[],
  maxResends = 10,
): Promise<RecordMetadata[]> {
  const acknowledged: RecordMetadata[] = [];
  let pending = [...topicMessages];
  for (let resend = 0; ; resend++) {
    const answers = await producer.sendBatch({ acks: -1, topicMessages: pending });
    acknowledged.push(...answers);
    const answered = new Set(answers.map((a) => `${a.topicName}\u0000${a.partition}`));
    const unanswered: TopicMessages[] = [];
    for (const { topic, messages } of pending) {
      const dropped: Message[] = [];
      for (const message of messages) {
        const partition = assignedPartitions.get(message);
        if (partition !== undefined && !answered.has(`${topic}\u0000${partition}`))
          dropped.push({ ...message, partition });
      }
      if (dropped.length > 0) unanswered.push({ topic, messages: dropped });
    }
    if (unanswered.length === 0) return acknowledged;
    if (resend >= maxResends)
      throw new Error(
        `Kafka did not acknowledge ${unanswered.map((t) => `${t.messages.length} message(s) of ${t.topic}`).join(', ')} after ${maxResends} resends`,
      );
    pending = unanswered;
  }
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
