/**
 * Node half of the infra scripts (run by lib.sh's run_bootstrap with ts-node and the project's
 * path aliases):
 *   up [--timeout-ms N]            wait for Kafka, create default topics; create the database and
 *                                  apply migrations
 *   kafka-health [--timeout-ms N]  exit 0 when the broker answers a metadata request
 *   migrate [--database D] [--dir PATH]  apply migrations (used by test/infra for two processes)
 */
import { clickHouseSettingsFromEnv, runMigrations } from '@cprec/clickhouse';
import { createKafka, defaultTopicSpecs, ensureTopics, kafkaSettingsFromEnv } from '@cprec/messaging';
import { logLevel } from 'kafkajs';

function option(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls describeCluster until the broker answers (KRaft brokers take 5-20 s to come up). */
async function waitForKafka(timeoutMs: number): Promise<string> {
  const kafka = createKafka({ ...kafkaSettingsFromEnv('cprec-infra'), logLevel: logLevel.NOTHING });
  const deadline = Date.now() + timeoutMs;
  let lastError = '';
  for (;;) {
    const admin = kafka.admin({ retry: { retries: 0 } });
    try {
      await admin.connect();
      const cluster = await admin.describeCluster();
      return `cluster ${cluster.clusterId}, controller ${cluster.controller ?? 'none'}, ${cluster.brokers.length} broker(s)`;
    } catch (err) {
      lastError = (err as Error).message;
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
    if (Date.now() > deadline) throw new Error(`Kafka not healthy after ${timeoutMs} ms: ${lastError}`);
    await sleep(500);
  }
}

async function createTopics(): Promise<string[]> {
  const kafka = createKafka({ ...kafkaSettingsFromEnv('cprec-infra'), logLevel: logLevel.ERROR });
  const admin = kafka.admin();
  await admin.connect();
  try {
    const specs = defaultTopicSpecs();
    await ensureTopics(admin, specs);
    return specs.map((s) => `${s.topic}(${s.numPartitions ?? 1})`);
  } finally {
    await admin.disconnect();
  }
}

async function main(): Promise<void> {
  const [command, ...args] = process.argv.slice(2);
  const timeoutMs = Number(option(args, '--timeout-ms') ?? 60_000);
  const log = (line: string): void => console.error(`[infra] ${line}`);
  switch (command) {
    case 'up': {
      const settings = clickHouseSettingsFromEnv();
      const result = await runMigrations(settings, { log });
      log(
        `ClickHouse database ${settings.database}: ${result.applied.length} migration(s) applied, ${result.alreadyApplied} already applied`,
      );
      log(`Kafka healthy: ${await waitForKafka(timeoutMs)}`);
      log(`Kafka topics: ${(await createTopics()).join(', ')}`);
      return;
    }
    case 'kafka-health':
      console.log(await waitForKafka(timeoutMs));
      return;
    case 'migrate': {
      const base = clickHouseSettingsFromEnv();
      const settings = { ...base, database: option(args, '--database') ?? base.database };
      const result = await runMigrations(settings, { directory: option(args, '--dir'), log });
      console.log(
        JSON.stringify({
          applied: result.applied.map((m) => m.version),
          alreadyApplied: result.alreadyApplied,
        }),
      );
      return;
    }
    default:
      throw new Error(`unknown command ${JSON.stringify(command)}; expected up | kafka-health | migrate`);
  }
}

main().catch((err: unknown) => {
  console.error(`[infra] ${(err as Error).message}`);
  process.exit(1);
});
