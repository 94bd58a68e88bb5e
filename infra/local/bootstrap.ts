/**
 * Node half of the infra scripts (run by lib.sh's run_bootstrap with ts-node and the project's
 * path aliases):
 *   up [--timeout-ms N] [--brokers N]  wait for Kafka (N brokers, default 1), create default topics
 *                                  and (CPREC_AUTH on) the services' ACLs; create the database and
 *                                  apply migrations (on every replica of CPREC_CLICKHOUSE_REPLICAS)
 *   kafka-health [--timeout-ms N] [--open]  exit 0 when the broker answers a metadata request
 *                                  (--open: without credentials, a broker started without auth)
 *   migrate [--database D] [--dir PATH]  apply migrations (used by test/infra for two processes)
 */
import { clickHouseSettingsFromEnv, runMigrations } from '@cprec/clickhouse';
import { TOPICS } from '@cprec/contracts';
import {
  applyAclRules,
  createKafka,
  defaultTopicSpecs,
  ensureTopics,
  kafkaReplicationFactorFromEnv,
  kafkaSettingsFromEnv,
  type KafkaSettings,
  serviceAclRules,
} from '@cprec/messaging';
import { logLevel } from 'kafkajs';

function option(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The admin's settings; `open`: without credentials (the one-off migration start of `up`). */
function adminSettings(open = false): KafkaSettings {
  const settings = kafkaSettingsFromEnv('cprec-infra');
  if (open) delete settings.sasl;
  return settings;
}

const authEnabled = (): boolean => !['off', '0', 'false'].includes(process.env.CPREC_AUTH ?? 'on');

/**
 * Polls describeCluster until the broker answers (KRaft brokers take 5-20 s to come up) and, with
 * `brokers`, until that many brokers are registered (topics with replication factor 3 need them).
 */
async function waitForKafka(timeoutMs: number, open = false, brokers = 1): Promise<string> {
  const kafka = createKafka({ ...adminSettings(open), logLevel: logLevel.NOTHING });
  const deadline = Date.now() + timeoutMs;
  let lastError = '';
  for (;;) {
    const admin = kafka.admin({ retry: { retries: 0 } });
    try {
      await admin.connect();
      const cluster = await admin.describeCluster();
      if (cluster.brokers.length < brokers)
        throw new Error(`${cluster.brokers.length} of ${brokers} brokers registered`);
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

/** Creates the default topics and, with authentication on, the services' ACLs on them. */
async function createTopics(): Promise<{ topics: string[]; acls: number }> {
  const kafka = createKafka({ ...adminSettings(), logLevel: logLevel.ERROR });
  const admin = kafka.admin();
  await admin.connect();
  try {
    const specs = defaultTopicSpecs();
    await ensureTopics(admin, specs);
    const rules = authEnabled() ? serviceAclRules(TOPICS) : [];
    await applyAclRules(admin, rules);
    const rf = kafkaReplicationFactorFromEnv();
    return {
      topics: specs.map((s) => `${s.topic}(${s.numPartitions ?? 1}${rf > 1 ? `×${rf}` : ''})`),
      acls: rules.length,
    };
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
      const where = settings.replicas ? ` (replicated on ${settings.replicas.join(', ')})` : '';
      log(
        `ClickHouse database ${settings.database}${where}: ${result.applied.length} migration(s) applied, ${result.alreadyApplied} already applied`,
      );
      const brokers = Number(option(args, '--brokers') ?? 1);
      log(`Kafka healthy: ${await waitForKafka(timeoutMs, false, brokers)}`);
      const { topics, acls } = await createTopics();
      log(`Kafka topics: ${topics.join(', ')}`);
      log(
        authEnabled() ? `Kafka ACLs: ${acls} bindings for the services` : 'Kafka ACLs: none (CPREC_AUTH=off)',
      );
      return;
    }
    case 'kafka-health':
      console.log(await waitForKafka(timeoutMs, args.includes('--open')));
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
