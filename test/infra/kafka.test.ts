import { Admin, Consumer, Kafka, Producer } from 'kafkajs';
import { requireInfra, testKafka, uniqueName, Waiter } from '../support/infra';

jest.setTimeout(120_000);

/**
 * A real broker: produce, consume through a consumer group, stop, produce more, and check a new
 * consumer in the same group resumes from the committed offset.
 */
describe('Kafka (real broker)', () => {
  const topic = uniqueName('it.kafka');
  const groupId = uniqueName('it-kafka-group');
  let kafka: Kafka;
  let admin: Admin;
  let producer: Producer;

  beforeAll(async () => {
    await requireInfra({ kafka: true });
    kafka = testKafka('it-kafka');
    admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({
      waitForLeaders: true,
      topics: [{ topic, numPartitions: 2, replicationFactor: 1 }],
    });
    producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
    await producer.connect();
  });

  afterAll(async () => {
    await producer?.disconnect();
    await admin?.deleteTopics({ topics: [topic] }).catch(() => undefined);
    await admin?.deleteGroups([groupId]).catch(() => undefined);
    await admin?.disconnect();
  });

  async function produce(values: string[]): Promise<void> {
    await producer.send({
      topic,
      acks: -1,
      messages: values.map((value, i) => ({ key: `k${i % 5}`, value })),
    });
  }

  /** Consumes until every expected value has arrived, then disconnects (committing offsets). */
  async function consumeUntil(expected: readonly string[]): Promise<string[]> {
    const received: string[] = [];
    const waiter = new Waiter();
    const consumer: Consumer = kafka.consumer({ groupId, sessionTimeout: 10_000, heartbeatInterval: 1_000 });
    await consumer.connect();
    try {
      await consumer.subscribe({ topic, fromBeginning: true });
      await consumer.run({
        eachMessage: async ({ message }) => {
          received.push(message.value?.toString('utf8') ?? '');
          waiter.notify();
        },
      });
      await waiter.until(
        () => expected.every((v) => received.includes(v)),
        `${expected.length} messages on ${topic}`,
      );
    } finally {
      await consumer.disconnect();
    }
    return received;
  }

  async function committedTotal(): Promise<number> {
    const [offsets] = await admin.fetchOffsets({ groupId, topics: [topic] });
    return offsets.partitions.reduce((sum, p) => sum + Math.max(0, Number(p.offset)), 0);
  }

  it('consumes through a consumer group and resumes from the committed offset after a restart', async () => {
    const first = Array.from({ length: 20 }, (_, i) => `first-${i}`);
    await produce(first);

    const firstRun = await consumeUntil(first);
    expect([...firstRun].sort()).toEqual([...first].sort());
    expect(await committedTotal()).toBe(first.length);

    const second = Array.from({ length: 7 }, (_, i) => `second-${i}`);
    await produce(second);

    // Within a partition Kafka delivers in offset order, so if the new consumer had started from
    // the beginning, the older messages would have arrived before the last new one: waiting for
    // all new messages is enough to see any replay, without sleeping.
    const secondRun = await consumeUntil(second);
    expect([...secondRun].sort()).toEqual([...second].sort());
    expect(await committedTotal()).toBe(first.length + second.length);
  });
});
