import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { ClickHouseSettings, clickHouseSettingsFromEnv, createClickHouse } from '@cprec/clickhouse';
import { createKafka, kafkaSettingsFromEnv } from '@cprec/messaging';

/**
 * Shared set-up for integration tests: they run against the real servers started by
 * `bash infra/local/up` (endpoints from CPREC_KAFKA_BROKERS / CPREC_CLICKHOUSE_URL, defaulting to
 * the local ports) and isolate themselves with unique database and topic names.
 */

const START_HINT =
  'Start the local servers with `bash infra/local/up` (or `npm run infra:up`) and check `bash infra/local/status`; ' +
  'with authentication on (the default), load their secrets first: `set -a && . .cprec/secrets/cprec.env && set +a`.';

/** A name unique to this test run, valid as a ClickHouse identifier and as a Kafka topic. */
export function uniqueName(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
}

/** Settings for a database of its own (created by runMigrations or ensureDatabase). */
export function testClickHouseSettings(database: string): ClickHouseSettings {
  return { ...clickHouseSettingsFromEnv(), database };
}

export function testKafka(clientId: string): Kafka {
  return createKafka({ ...kafkaSettingsFromEnv(clientId), logLevel: logLevel.ERROR });
}

/**
 * Fails fast with a clear message when ClickHouse or Kafka is not reachable, instead of letting
 * each test time out on its own.
 */
export async function requireInfra(
  what: { clickhouse?: boolean; kafka?: boolean } = { clickhouse: true, kafka: true },
): Promise<void> {
  if (what.clickhouse) {
    const settings = clickHouseSettingsFromEnv();
    const ch = createClickHouse({ ...settings, database: 'default', requestTimeoutMs: 5_000 });
    try {
      const result = await ch.client.ping();
      if (!result.success) throw result.error;
    } catch (err) {
      throw new Error(
        `ClickHouse is not reachable at ${settings.url} (${(err as Error).message}). ${START_HINT}`,
      );
    } finally {
      await ch.close();
    }
  }
  if (what.kafka) {
    const settings = kafkaSettingsFromEnv('cprec-test-probe');
    const kafka = createKafka({ ...settings, logLevel: logLevel.NOTHING });
    const admin = kafka.admin({ retry: { retries: 1, initialRetryTime: 200 } });
    try {
      await admin.connect();
      await admin.describeCluster();
    } catch (err) {
      throw new Error(
        `Kafka is not reachable at ${settings.brokers} (${(err as Error).message}). ${START_HINT}`,
      );
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
  }
}

/** Resolves once `done()` holds, checking after every `notify()`; rejects after timeoutMs. */
export class Waiter {
  private pending: Array<{ check: () => boolean; resolve: () => void }> = [];

  notify(): void {
    this.pending = this.pending.filter((p) => {
      if (!p.check()) return true;
      p.resolve();
      return false;
    });
  }

  until(check: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
    if (check()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)),
        timeoutMs,
      );
      this.pending.push({
        check,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }
}

/** Polls `probe` every 200 ms until `accept` holds; rejects with the last value after timeoutMs. */
export async function pollUntil<T>(
  probe: () => Promise<T>,
  accept: (value: T) => boolean,
  what: string,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (accept(value)) return value;
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}; last value ${JSON.stringify(value)}`,
      );
    await new Promise((r) => setTimeout(r, 200));
  }
}

const REPO = join(__dirname, '..', '..');

/** SIGKILLs the local server whose pid `lib.sh`'s `pidFunction` prints, and waits until it is gone. */
async function killServer(pidFunction: 'clickhouse_pid' | 'kafka_pid', what: string): Promise<void> {
  const out = execFileSync('bash', ['-c', `source ${join(REPO, 'infra/local/lib.sh')}; ${pidFunction}`]);
  const pid = Number(out.toString().trim());
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`no ${what} server pid (${out.toString()})`);
  process.kill(pid, 'SIGKILL');
  await pollUntil(
    async () => {
      try {
        process.kill(pid, 0);
        return false;
      } catch {
        return true;
      }
    },
    Boolean,
    `${what} to stop`,
    30_000,
  );
}

/** Starts whichever local server is stopped (`infra/local/up`, migrations of `database` only). */
function infraUp(database: string): void {
  execFileSync('bash', [join(REPO, 'infra', 'local', 'up')], {
    stdio: 'ignore',
    env: { ...process.env, CPREC_CLICKHOUSE_DB: database },
  });
}

/**
 * SIGKILLs the local ClickHouse server and waits until it is gone: a real outage for fault tests.
 * Pair it with `restartClickHouse` in a `finally`, so later suites never find the server down.
 */
export function killClickHouse(): Promise<void> {
  return killServer('clickhouse_pid', 'ClickHouse');
}

/** Starts the stopped server again (`infra/local/up`, migrations of `database` only). */
export function restartClickHouse(database: string): void {
  infraUp(database);
}

/**
 * SIGKILLs the local Kafka broker (KRaft, one node: the whole cluster) and waits until it is gone.
 * Pair it with `restartKafka` in a `finally`, so later suites never find the broker down.
 */
export function killKafka(): Promise<void> {
  return killServer('kafka_pid', 'Kafka');
}

/** Starts the stopped broker again (`infra/local/up`; it recovers its log, topics and offsets). */
export function restartKafka(database: string): void {
  infraUp(database);
}
