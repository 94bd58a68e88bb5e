import { Kafka, logLevel } from 'kafkajs';
import {
  awaitMigrations,
  clickHouseSettingsFromEnv,
  createClickHouse,
  runMigrations,
  sql,
  type ClickHouse,
} from '@cprec/clickhouse';
import {
  SERVICE_PRINCIPALS,
  serviceEnvironment,
  type ServicePrincipal,
  type TopicKey,
} from '@cprec/contracts';
import { createKafka, kafkaSettingsFromEnv, SERVICE_TOPIC_ACCESS } from '@cprec/messaging';
import { kafkaAuthOn, useNamespace } from '../support/harness';

/**
 * Authentication and authorisation on the real servers (issue 15): nobody gets in without
 * credentials, and each service's principal can do what its ACLs and ClickHouse profile allow
 * and nothing else. Runs in a namespace of its own, whose topics carry production's ACL table
 * (test/support/harness.ts), and needs the secrets of `infra/local/up` in the environment.
 */
const ns = useNamespace('auth');
const describeAuth = kafkaAuthOn() ? describe : describe.skip;

/** A process's environment with only the secrets file (no explicit identity). */
const env = serviceEnvironment(process.env);

function kafkaAs(principal: ServicePrincipal | null, password?: string): Kafka {
  const settings = kafkaSettingsFromEnv(
    `${ns.stem}-auth-${principal ?? 'anonymous'}`,
    env,
    principal ?? 'admin',
  );
  if (principal === null) delete settings.sasl;
  else if (password !== undefined && settings.sasl) settings.sasl = { ...settings.sasl, password };
  return createKafka({ ...settings, logLevel: logLevel.NOTHING });
}

async function describeCluster(kafka: Kafka): Promise<number> {
  const admin = kafka.admin({ retry: { retries: 0 } });
  try {
    await admin.connect();
    return (await admin.describeCluster()).brokers.length;
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

/** Sends one message as `principal`; resolves with the error's type, or 'ok'. */
async function produceAs(principal: ServicePrincipal, topic: string): Promise<string> {
  const producer = kafkaAs(principal).producer({ retry: { retries: 0 }, allowAutoTopicCreation: false });
  await producer.connect();
  try {
    await producer.send({ topic, acks: -1, messages: [{ key: 'auth-test', value: '{}' }] });
    return 'ok';
  } catch (err) {
    return (err as { type?: string }).type ?? (err as Error).message;
  } finally {
    await producer.disconnect().catch(() => undefined);
  }
}

/** Fetches a group's committed offsets as `principal`; resolves with the error's type, or 'ok'. */
async function fetchOffsetsAs(principal: ServicePrincipal, groupId: string, topic: string): Promise<string> {
  const admin = kafkaAs(principal).admin({ retry: { retries: 0 } });
  await admin.connect();
  try {
    await admin.fetchOffsets({ groupId, topics: [topic] });
    return 'ok';
  } catch (err) {
    return (err as { type?: string }).type ?? (err as Error).message;
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

function clickHouseAs(principal: string, password?: string): ClickHouse {
  const settings = { ...clickHouseSettingsFromEnv(env, principal), database: ns.database };
  return createClickHouse({
    ...settings,
    ...(password !== undefined ? { password } : {}),
    requestTimeoutMs: 10_000,
  });
}

async function refusal(run: () => Promise<unknown>): Promise<string> {
  try {
    await run();
  } catch (err) {
    return (err as Error).message;
  }
  return 'accepted';
}

describeAuth('Kafka refuses clients without valid credentials', () => {
  it('lets a principal with its password in', async () => {
    expect(await describeCluster(kafkaAs('serving'))).toBe(1);
  });

  it('refuses a client without credentials', async () => {
    await expect(describeCluster(kafkaAs(null))).rejects.toThrow();
  });

  it('refuses a wrong password', async () => {
    await expect(describeCluster(kafkaAs('serving', 'not-the-password'))).rejects.toThrow(
      /SASL|authentication/i,
    );
  });
});

describeAuth('Kafka ACLs: each service reads what it consumes and writes what it produces', () => {
  it('refuses serving a topic it only consumes (adapters), allows its dead letters and its events', async () => {
    expect(await produceAs('serving', ns.topics.adapters)).toBe('TOPIC_AUTHORIZATION_FAILED');
    expect(await produceAs('serving', ns.topics.deadLetter)).toBe('ok');
    // What it switched and rolled back (the evaluator stores it in serving_events); nobody else.
    expect(await produceAs('serving', ns.topics.servingEvents)).toBe('ok');
    expect(await produceAs('evaluator', ns.topics.servingEvents)).toBe('TOPIC_AUTHORIZATION_FAILED');
    expect(await produceAs('operator', ns.topics.servingEvents)).toBe('TOPIC_AUTHORIZATION_FAILED');
    // The evaluator stores them, reading with a group of its own.
    expect(
      await fetchOffsetsAs('evaluator', `${ns.stem}.evaluator-serving-events`, ns.topics.servingEvents),
    ).toBe('ok');
  });

  it('refuses every service every topic it does not produce', async () => {
    const refusedAs: string[] = [];
    const allowedAs: string[] = [];
    const keys = Object.keys(ns.topics) as TopicKey[];
    for (const principal of SERVICE_PRINCIPALS) {
      const produces = new Set(SERVICE_TOPIC_ACCESS[principal].produces);
      // One topic it may write and one it may not (the first in TOPICS order of each).
      const allowed = keys.find((k) => produces.has(k));
      const refused = keys.find((k) => !produces.has(k))!;
      if (allowed)
        allowedAs.push(`${principal}→${allowed}: ${await produceAs(principal, ns.topics[allowed])}`);
      refusedAs.push(`${principal}→${refused}: ${await produceAs(principal, ns.topics[refused])}`);
    }
    expect(allowedAs.filter((line) => !line.endsWith(': ok'))).toEqual([]);
    expect(refusedAs.filter((line) => !line.endsWith(': TOPIC_AUTHORIZATION_FAILED'))).toEqual([]);
  });

  it('lets the platform principal feed events and nothing else (no command, no reading, no group)', async () => {
    expect(await produceAs('platform', ns.topics.interactions)).toBe('ok');
    expect(await produceAs('platform', ns.topics.items)).toBe('ok');
    expect(await produceAs('platform', ns.topics.roundCommands)).toBe('TOPIC_AUTHORIZATION_FAILED');
    expect(await produceAs('platform', ns.topics.adapters)).toBe('TOPIC_AUTHORIZATION_FAILED');
    // It consumes nothing: no consumer group of its own, not even on the topic it writes.
    expect(await fetchOffsetsAs('platform', `${ns.stem}.platform`, ns.topics.interactions)).toMatch(
      /GROUP_AUTHORIZATION_FAILED|Group authorization failed|Failed to find group coordinator/,
    );
  });

  it("refuses serving another service's topic and consumer group", async () => {
    // ingest's input: serving may see that it exists (describe) but not read it.
    const producer = await ns.producer();
    await producer.send({ topic: ns.topics.interactions, messages: [{ key: 'k', value: '{}' }] });
    const consumer = kafkaAs('serving').consumer({
      groupId: `${ns.stem}.serving-auth-test`,
      retry: { retries: 0 },
    });
    const received: string[] = [];
    const crashed = new Promise<string>((resolve) =>
      consumer.on(consumer.events.CRASH, (e) =>
        resolve((e.payload.error as { type?: string }).type ?? e.payload.error.message),
      ),
    );
    await consumer.connect();
    try {
      // Refused when kafkajs first asks for the topic's offsets (at subscribe) or its data (run).
      const refused = (async () => {
        try {
          await consumer.subscribe({ topics: [ns.topics.interactions], fromBeginning: true });
          await consumer.run({
            eachMessage: async ({ message }) => void received.push(String(message.value)),
          });
        } catch (err) {
          return (err as Error).message;
        }
        return crashed;
      })();
      expect(await refused).toMatch(/TOPIC_AUTHORIZATION_FAILED|Topic authorization failed/);
      expect(received).toEqual([]);
    } finally {
      await consumer.disconnect();
    }
    // ingest's consumer group, even on a topic serving may read. The broker answers FindCoordinator
    // with GROUP_AUTHORIZATION_FAILED, which kafkajs reports as "Failed to find group coordinator";
    // the controls below make the same call for groups the principal owns, and succeed.
    expect(await fetchOffsetsAs('serving', `${ns.stem}.ingest`, ns.topics.adapters)).toMatch(
      /GROUP_AUTHORIZATION_FAILED|Group authorization failed|Failed to find group coordinator/,
    );
    // Its own group on its own topic is fine; ingest's group is fine for ingest.
    expect(await fetchOffsetsAs('serving', `${ns.stem}.serving-auth-test`, ns.topics.adapters)).toBe('ok');
    expect(await fetchOffsetsAs('ingest', `${ns.stem}.ingest`, ns.topics.interactions)).toBe('ok');
  });
});

describeAuth('ClickHouse refuses clients without valid credentials', () => {
  it('refuses the passwordless default user and a wrong password', async () => {
    const anonymous = createClickHouse({
      ...clickHouseSettingsFromEnv({ CPREC_CLICKHOUSE_URL: process.env.CPREC_CLICKHOUSE_URL }),
      database: 'default',
      requestTimeoutMs: 10_000,
    });
    const wrong = clickHouseAs('ingest', 'not-the-password');
    try {
      expect(await refusal(() => anonymous.query(sql`SELECT 1 AS one`))).toMatch(/password|authentic/i);
      expect(await refusal(() => wrong.query(sql`SELECT 1 AS one`))).toMatch(/password|authentic/i);
    } finally {
      await anonymous.close();
      await wrong.close();
    }
  });

  it('lets the operator read but not write (readonly profile)', async () => {
    const operator = clickHouseAs('operator');
    try {
      expect(await operator.query<{ n: string }>(sql`SELECT count() AS n FROM interactions`)).toEqual([
        { n: '0' },
      ]);
      const row = { event_id: 'x', user_id: 'u', item_id: 'i', domain: 'd', ts_ms: 1, ts: 1 };
      expect(await refusal(() => operator.insertJsonEachRow('interactions', [row]))).toMatch(/readonly/i);
      expect(
        await refusal(() => operator.command(sql`CREATE TABLE auth_probe (x UInt8) ENGINE = Memory`)),
      ).toMatch(/readonly/i);
      expect(await refusal(() => operator.command(sql`DROP TABLE interactions`))).toMatch(/readonly/i);
      // And it cannot lift the profile's readonly for a query.
      expect(
        await refusal(() =>
          operator.client.command({
            query: 'CREATE TABLE auth_probe (x UInt8) ENGINE = Memory',
            clickhouse_settings: { readonly: '0' },
          }),
        ),
      ).toMatch(/readonly/i);
    } finally {
      await operator.close();
    }
    expect(await ns.ch.query<{ n: string }>(sql`SELECT count() AS n FROM interactions`)).toEqual([
      { n: '0' },
    ]);
  });

  it('lets serving read but not write: it publishes its events, the evaluator stores them', async () => {
    const serving = clickHouseAs('serving');
    try {
      expect(await serving.query<{ n: string }>(sql`SELECT count() AS n FROM serving_events`)).toEqual([
        { n: '0' },
      ]);
      const row = {
        event: 'switch',
        domain: 'games',
        adapter_id: 'a1',
        previous_adapter_id: '',
        detail: '',
        ts_ms: 1,
        ts: 0,
      };
      expect(await refusal(() => serving.insertJsonEachRow('serving_events', [row]))).toMatch(/readonly/i);
      expect(
        await refusal(() => serving.command(sql`CREATE TABLE auth_probe (x UInt8) ENGINE = Memory`)),
      ).toMatch(/readonly/i);
      expect(await refusal(() => serving.command(sql`DROP TABLE serving_events`))).toMatch(/readonly/i);
      expect(
        await refusal(() =>
          serving.client.command({
            query: 'INSERT INTO serving_events (event) VALUES (1)',
            clickhouse_settings: { readonly: '0' },
          }),
        ),
      ).toMatch(/readonly/i);
      // It waits for migrations instead of running them (as the operator does).
      const settings = { ...clickHouseSettingsFromEnv(env, 'serving'), database: ns.database };
      await expect(runMigrations(settings)).rejects.toThrow(/readonly/i);
      await expect(awaitMigrations(settings, { timeoutMs: 5_000 })).resolves.toBeUndefined();
    } finally {
      await serving.close();
    }
    // The evaluator, the table's writer, may.
    const evaluator = clickHouseAs('evaluator');
    try {
      await evaluator.command(
        sql`INSERT INTO serving_events (event, domain, adapter_id) VALUES ('switch', 'games', 'a1')`,
      );
    } finally {
      await evaluator.close();
    }
    expect(await ns.ch.query<{ n: string }>(sql`SELECT count() AS n FROM serving_events`)).toEqual([
      { n: '1' },
    ]);
  });

  it('lets the operator wait for migrations it may not run itself', async () => {
    const settings = { ...clickHouseSettingsFromEnv(env, 'operator'), database: ns.database };
    await expect(runMigrations(settings)).rejects.toThrow(/readonly/i);
    await expect(awaitMigrations(settings, { timeoutMs: 5_000 })).resolves.toBeUndefined();
    // A database nobody migrated: the operator waits, then says so.
    await expect(
      awaitMigrations(
        { ...settings, database: `${ns.database}_unmigrated` },
        { timeoutMs: 1_500, pollMs: 300 },
      ),
    ).rejects.toThrow(/not migrated after 1500 ms/);
  });

  it('lets a writing service write', async () => {
    const ingest = clickHouseAs('ingest');
    try {
      await ingest.command(sql`CREATE TABLE auth_probe (x UInt8) ENGINE = Memory`);
      await ingest.command(sql`INSERT INTO auth_probe VALUES (1)`);
      expect(await ingest.query(sql`SELECT x FROM auth_probe`)).toEqual([{ x: 1 }]);
    } finally {
      await ingest.close();
    }
  });
});
