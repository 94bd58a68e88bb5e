import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Kafka } from 'kafkajs';
import type { InteractionEvent, ItemEvent } from '@cprec/contracts';
import {
  datasetReplaySource,
  KafkaReplaySink,
  ReplayRunner,
  replayProgressPath,
  syntheticDataset,
  ProgressStore,
  ReplayProgress,
} from '@cprec/datasets';
import { createKafka, createReliableProducer, ensureTopics, kafkaSettingsFromEnv } from '@cprec/messaging';
import { kafkaAuthOn, useNamespace } from '../support/harness';
import {
  planReplay,
  replayCommand,
  ReplayCommandOptions,
  SYNTHETIC_START_MS,
} from '../../cli/src/commands/replay.command';

/** The options `cprec replay` parses from these arguments, without running it. */
async function replayArgs(args: string[]): Promise<ReplayCommandOptions> {
  let parsed: ReplayCommandOptions | null = null;
  await replayCommand(async (options) => {
    parsed = options;
  }).parseAsync(args, { from: 'user' });
  return parsed!;
}

/**
 * Replays synthetic streams into real Kafka (topics of the suite's namespace, removed afterwards,
 * so parallel runs and old data
 * never interfere) and reads them back with a consumer.
 */
const ROOT = resolve(__dirname, '../..');
const settings = kafkaSettingsFromEnv('cprec-replay-test');
const ns = useNamespace('replay', { migrate: false, topics: false });
let kafka: Kafka;

beforeAll(() => {
  kafka = createKafka(settings);
});

class MemoryStore implements ProgressStore {
  value: ReplayProgress | null = null;
  async load(): Promise<ReplayProgress | null> {
    return this.value;
  }
  async save(progress: ReplayProgress): Promise<void> {
    this.value = progress;
  }
}

interface Consumed {
  interactions: { event: InteractionEvent; partition: number; key: string | undefined }[];
  items: ItemEvent[];
}

/** Reads both topics from the beginning until the expected counts arrived (or the deadline). */
async function consumeAll(
  topics: { interactions: string; items: string },
  expected: { interactions: number; items: number },
): Promise<Consumed> {
  const consumer = kafka.consumer({ groupId: ns.group(`reader-${Math.random().toString(36).slice(2)}`) });
  const consumed: Consumed = { interactions: [], items: [] };
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [topics.interactions, topics.items], fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ topic, partition, message }) => {
        const value = JSON.parse(message.value!.toString('utf8')) as unknown;
        if (topic === topics.items) consumed.items.push(value as ItemEvent);
        else {
          consumed.interactions.push({
            event: value as InteractionEvent,
            partition,
            key: message.key?.toString('utf8'),
          });
        }
      },
    });
    const deadline = Date.now() + 60_000;
    while (
      Date.now() < deadline &&
      (consumed.interactions.length < expected.interactions || consumed.items.length < expected.items)
    ) {
      await new Promise((r) => setTimeout(r, 200));
    }
    // Linger briefly so that any surplus (duplicates) would also arrive and fail the count.
    await new Promise((r) => setTimeout(r, 1000));
  } finally {
    await consumer.disconnect();
  }
  return consumed;
}

function expectExactlyTheStream(consumed: Consumed, expected: InteractionEvent[], itemCount: number): void {
  expect(consumed.items).toHaveLength(itemCount);
  expect(consumed.interactions).toHaveLength(expected.length);
  const ids = consumed.interactions.map((c) => c.event.event_id);
  expect(new Set(ids).size).toBe(ids.length);
  expect(new Set(ids)).toEqual(new Set(expected.map((e) => e.event_id)));
  // Per user: one partition, and the order of the stream (event time, then seq).
  const expectedOrder = new Map<string, string[]>();
  for (const e of expected)
    expectedOrder.set(e.user_id, [...(expectedOrder.get(e.user_id) ?? []), e.event_id]);
  const seenOrder = new Map<string, string[]>();
  const partitionOf = new Map<string, number>();
  for (const { event, partition, key } of consumed.interactions) {
    expect(key).toBe(event.user_id);
    seenOrder.set(event.user_id, [...(seenOrder.get(event.user_id) ?? []), event.event_id]);
    expect(partitionOf.get(event.user_id) ?? partition).toBe(partition);
    partitionOf.set(event.user_id, partition);
  }
  expect(seenOrder).toEqual(expectedOrder);
}

async function expectedStream(
  config: Parameters<typeof syntheticDataset>[0],
): Promise<{ interactions: InteractionEvent[]; items: number }> {
  const interactions: InteractionEvent[] = [];
  let items = 0;
  for await (const record of datasetReplaySource([syntheticDataset(config)]).records()) {
    if (record.kind === 'item') items++;
    else interactions.push(record.event);
  }
  return { interactions, items };
}

describe('replay into Kafka', () => {
  it('delivers every synthetic event once, keyed by user, in per-user event-time order', async () => {
    const topics = {
      interactions: `${ns.topicPrefix}replay.interactions`,
      items: `${ns.topicPrefix}replay.items`,
    };
    const admin = kafka.admin();
    await admin.connect();
    await ensureTopics(admin, [{ topic: topics.interactions, numPartitions: 4 }, { topic: topics.items }]);
    await admin.disconnect();
    const config = { seed: 11, users: 150, itemsPerDomain: 60 };
    const producer = createReliableProducer(kafka);
    await producer.connect();
    try {
      const summary = await new ReplayRunner(new KafkaReplaySink(producer, topics), new MemoryStore()).run(
        datasetReplaySource([syntheticDataset(config)]),
        {
          key: 'it',
          batchSize: 250,
        },
      );
      expect(summary.outcome).toBe('completed');
    } finally {
      await producer.disconnect();
    }
    const expected = await expectedStream(config);
    expectExactlyTheStream(
      await consumeAll(topics, { interactions: expected.interactions.length, items: expected.items }),
      expected.interactions,
      expected.items,
    );
  }, 120_000);

  it('cprec replay: SIGINT mid-stream, then --resume, delivers the stream with no duplicates and no gaps', async () => {
    const topics = {
      interactions: `${ns.topicPrefix}replay-cli.interactions`,
      items: `${ns.topicPrefix}replay-cli.items`,
    };
    const args = [
      '--synthetic',
      '--users',
      '300',
      '--seed',
      '5',
      '--interactions-topic',
      topics.interactions,
      '--items-topic',
      topics.items,
      '--brokers',
      settings.brokers,
      '--batch-size',
      '100',
      '--rate-cap',
      '1500',
      '--no-progress',
    ];
    // The key the command derives from these arguments names its progress file.
    const startMs = SYNTHETIC_START_MS;
    const { key } = planReplay(await replayArgs(args), { CPREC_KAFKA_BROKERS: settings.brokers });
    const progressFile = replayProgressPath(key, ROOT);
    const readProgress = (): ReplayProgress | null =>
      existsSync(progressFile) ? (JSON.parse(readFileSync(progressFile, 'utf8')) as ReplayProgress) : null;

    // The command runs as the `platform` principal, which writes the installation's interaction
    // and item topics only; these ad-hoc topics need admin, named in the environment.
    const asAdmin: Record<string, string> = kafkaAuthOn()
      ? { CPREC_KAFKA_USERNAME: 'admin', CPREC_KAFKA_PASSWORD: process.env.CPREC_KAFKA_PASSWORD_ADMIN ?? '' }
      : {};
    const runCli = (
      extra: string[],
      interruptAfter: number | null,
      env: Record<string, string> = asAdmin,
    ): Promise<{ code: number | null; stdout: string; stderr: string }> =>
      new Promise((resolvePromise, reject) => {
        const child = spawn(
          process.execPath,
          [
            '-r',
            'ts-node/register/transpile-only',
            '-r',
            'tsconfig-paths/register',
            'cli/src/main.ts',
            'replay',
            ...args,
            ...extra,
          ],
          {
            cwd: ROOT,
            env: { ...process.env, KAFKAJS_NO_PARTITIONER_WARNING: '1', ...env },
            stdio: ['ignore', 'pipe', 'pipe'],
          },
        );
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
        child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        let poller: NodeJS.Timeout | null = null;
        if (interruptAfter !== null) {
          poller = setInterval(() => {
            if ((readProgress()?.acknowledged ?? 0) >= interruptAfter) {
              child.kill('SIGINT');
              clearInterval(poller!);
            }
          }, 50);
        }
        child.on('error', reject);
        child.on('exit', (code) => {
          if (poller) clearInterval(poller);
          resolvePromise({ code, stdout, stderr });
        });
      });

    try {
      const expected = await expectedStream({
        seed: 5,
        users: 300,
        domains: ['games', 'beauty', 'books'],
        eventsPerUser: 20,
        startMs,
      });
      const total = expected.items + expected.interactions.length;

      if (kafkaAuthOn()) {
        // As the platform it may not create topics (nor write any but the installation's input).
        const refused = await runCli([], null, {});
        expect(refused.code).not.toBe(0);
        expect(refused.stderr).toMatch(/do not exist and this principal may not create them/);
        expect(readProgress()).toBeNull();
      }
      const first = await runCli([], 1500);
      expect(first.stdout).toMatch(/replay interrupted/);
      expect(first.code).toBe(130);
      const afterInterrupt = readProgress()!;
      expect(afterInterrupt.done).toBe(false);
      expect(afterInterrupt.acknowledged).toBeGreaterThanOrEqual(1500);
      expect(afterInterrupt.acknowledged).toBeLessThan(total);

      const second = await runCli(['--resume'], null);
      expect(second.code).toBe(0);
      expect(second.stdout).toMatch(/replay completed/);
      expect(second.stdout).toContain(`skipped     ${afterInterrupt.acknowledged}`);
      expect(readProgress()).toMatchObject({ acknowledged: total, done: true });

      expectExactlyTheStream(
        await consumeAll(topics, { interactions: expected.interactions.length, items: expected.items }),
        expected.interactions,
        expected.items,
      );
    } finally {
      rmSync(progressFile, { force: true });
    }
  }, 180_000);
});
