import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Consumer, EachMessagePayload, Kafka, logLevel, Producer } from 'kafkajs';
import {
  ClickHouse,
  ClickHouseSettings,
  clickHouseSettingsFromEnv,
  createClickHouse,
  ensureDatabase,
  ident,
  runMigrations,
  sql,
} from '@cprec/clickhouse';
import { topicsFor, type Topics } from '@cprec/contracts';
import {
  type AclRule,
  applyAclRules,
  createKafka,
  defaultTopicSpecs,
  ensureTopics,
  kafkaSettingsFromEnv,
  namespaceAclRules,
  removeAclsUnder,
} from '@cprec/messaging';
import { requireInfra, Waiter } from './infra';
import { RunningService, startService } from './service-process';

/**
 * The integration tier's one harness. Each suite gets a namespace of its own — a ClickHouse
 * database and Kafka topic names with a prefix per test run and suite, passed to the services
 * through the environment they already read (CPREC_CLICKHOUSE_DB, CPREC_TOPIC_PREFIX) — and the
 * services it starts in it. Everything is removed afterwards: services stopped, topics, consumer
 * groups and the database deleted. Nothing a test does is ever seen by `npm start`, whose
 * database is `cprec` and whose topics are `cprec.*`.
 *
 * Names: `cprec_t_<run>_<suite>` is the database, the topic prefix (`cprec_t_<run>_<suite>.`)
 * and the consumer-group prefix. `<run>` comes from CPREC_TEST_RUN (scripts/test.sh sets one per
 * `npm test`, and removes whatever a crashed suite left under it: test/support/cleanup.ts), else
 * one is made per test file.
 */

export const TEST_NAMESPACE_ROOT = 'cprec_t_';

/**
 * Whether Kafka authenticates (the admin's credentials are in the environment: the secrets file
 * of `infra/local/up` was loaded). Then each namespace gets the services' ACL table on its own
 * topics and groups, and the services run under their own principals — as in production.
 */
export function kafkaAuthOn(): boolean {
  return kafkaSettingsFromEnv('cprec-test').sasl !== undefined;
}

function runId(): string {
  const fromEnv = process.env.CPREC_TEST_RUN;
  if (fromEnv !== undefined && /^[a-z0-9]{1,24}$/.test(fromEnv)) return fromEnv;
  return `${Date.now().toString(36)}${randomBytes(2).toString('hex')}`;
}

export interface NamespaceOptions {
  /** Create the database and apply the migrations before the suite (default true). */
  migrate?: boolean;
  /** Create the namespace's topics before the suite (default true). */
  topics?: boolean;
  /** A temporary CPREC_HOME (artefacts, round folders), removed afterwards (default true). */
  home?: boolean;
}

export class TestNamespace {
  readonly stem: string;
  readonly database: string;
  readonly topicPrefix: string;
  readonly topics: Topics;
  readonly clickhouse: ClickHouseSettings;
  readonly home: string;
  private chHandle: ClickHouse | null = null;
  private kafkaHandle: Kafka | null = null;
  private readonly services: RunningService[] = [];
  private readonly closers: Array<() => Promise<unknown>> = [];
  private readonly groups = new Set<string>();

  constructor(
    readonly suite: string,
    readonly run: string = runId(),
    private readonly options: NamespaceOptions = {},
  ) {
    const safe = suite
      .toLowerCase()
      .replace(/[^a-z0-9_]/g, '_')
      .slice(0, 40);
    this.stem = `${TEST_NAMESPACE_ROOT}${run}_${safe}`;
    this.database = this.stem;
    this.topicPrefix = `${this.stem}.`;
    this.topics = topicsFor(this.topicPrefix);
    this.clickhouse = { ...clickHouseSettingsFromEnv(), database: this.database };
    this.home = options.home === false ? '' : mkdtempSync(join(tmpdir(), `${this.stem}-`));
  }

  /** The environment every service of this namespace gets (plus its own settings). */
  get env(): Record<string, string> {
    return {
      CPREC_CLICKHOUSE_DB: this.database,
      CPREC_TOPIC_PREFIX: this.topicPrefix,
      ...(this.home ? { CPREC_HOME: this.home } : {}),
      KAFKAJS_NO_PARTITIONER_WARNING: '1',
    };
  }

  /** A consumer-group (or client) id inside the namespace, removed afterwards. */
  group(name: string): string {
    const id = `${this.stem}.${name}`;
    this.groups.add(id);
    return id;
  }

  /** The namespace's ClickHouse handle (closed afterwards). */
  get ch(): ClickHouse {
    this.chHandle ??= createClickHouse(this.clickhouse);
    return this.chHandle;
  }

  kafka(clientId = 'test'): Kafka {
    this.kafkaHandle ??= createKafka({
      ...kafkaSettingsFromEnv(`${this.stem}-${clientId}`),
      logLevel: logLevel.ERROR,
    });
    return this.kafkaHandle;
  }

  async setUp(): Promise<void> {
    await requireInfra();
    if (this.options.migrate !== false) await runMigrations(this.clickhouse);
    else await ensureDatabase(this.clickhouse);
    if (this.options.topics !== false || kafkaAuthOn()) {
      const admin = this.kafka().admin();
      await admin.connect();
      try {
        // Services may not create topics under authentication (infra/local/up does, as admin), so
        // then the namespace's topics always exist before its services start.
        await ensureTopics(admin, defaultTopicSpecs(4, this.topics));
        if (kafkaAuthOn()) await applyAclRules(admin, this.aclRules);
      } finally {
        await admin.disconnect();
      }
    }
  }

  /** The services' ACLs on this namespace (applied in set-up when Kafka authenticates). */
  get aclRules(): AclRule[] {
    return namespaceAclRules(this.stem, this.topics);
  }

  /** Starts a service process in this namespace; stopped (SIGTERM) in tear-down. */
  async startService(
    name: string,
    portVariable: string,
    env: Record<string, string> = {},
    options: { port?: number; timeoutMs?: number } = {},
  ): Promise<RunningService> {
    const service = await startService(
      name,
      options.port ?? randomPortInRange(),
      { ...this.env, ...env },
      portVariable,
      options.timeoutMs,
    );
    this.services.push(service);
    return service;
  }

  /** A connected producer, disconnected in tear-down. */
  async producer(): Promise<Producer> {
    const producer = this.kafka().producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    this.closers.push(() => producer.disconnect());
    return producer;
  }

  /** Reads topics of the namespace from their beginning, decoding JSON values. */
  async tap(topics: readonly string[]): Promise<Tap> {
    const tap = new Tap(this.kafka(), this.group(`tap-${this.groups.size}`));
    await tap.start(topics);
    this.closers.push(() => tap.stop());
    return tap;
  }

  /**
   * Runs `handle` on every message of some namespace topics, from their beginning (they are the
   * suite's own), with a consumer group of its own; resolves once the group is joined.
   *
   * A refused connection while connecting or subscribing is tried again with a new consumer (for
   * up to 30 s): kafkajs gives up a metadata request at the first refused connection when the
   * broker it asks is one a failover test just killed (the cluster tier failed on exactly that).
   */
  async consume(
    topics: readonly string[],
    handle: (payload: EachMessagePayload) => Promise<void>,
  ): Promise<void> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const consumer = this.kafka().consumer({ groupId: this.group(`consumer-${this.groups.size}`) });
      this.closers.push(() => consumer.disconnect());
      const joined = new Promise<void>((resolve) => consumer.on(consumer.events.GROUP_JOIN, () => resolve()));
      try {
        await consumer.connect();
        await consumer.subscribe({ topics: [...topics], fromBeginning: true });
      } catch (err) {
        await consumer.disconnect().catch(() => undefined);
        if (!isRefusedConnection(err) || Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 500));
        continue;
      }
      await consumer.run({ eachMessage: handle });
      await joined;
      return;
    }
  }

  /** Registers something to close in tear-down (before the namespace is deleted). */
  onTearDown(close: () => Promise<unknown>): void {
    this.closers.push(close);
  }

  async tearDown(): Promise<void> {
    await Promise.all(this.services.map((s) => s.stop().catch(() => undefined)));
    for (const close of this.closers.reverse()) await close().catch(() => undefined);
    await removeNamespaces(this.stem, this.groups);
    await this.chHandle?.close().catch(() => undefined);
    if (this.home) rmSync(this.home, { recursive: true, force: true });
  }
}

/**
 * A namespace for the current suite: set up in beforeAll, removed in afterAll (register it at
 * the top of the test file, before the suite's own beforeAll).
 */
export function useNamespace(suite: string, options: NamespaceOptions = {}): TestNamespace {
  const ns = new TestNamespace(suite, runId(), options);
  beforeAll(() => ns.setUp(), 120_000);
  afterAll(() => ns.tearDown(), 120_000);
  return ns;
}

/** A free-ish port per service: random in a range no cprec default uses. */
function randomPortInRange(): number {
  return 20000 + Math.floor(Math.random() * 20000);
}

/**
 * Deletes every topic, consumer group and database whose name starts with `stem` (plus the
 * listed groups). Used by a namespace's tear-down and by the run-wide clean-up.
 */
export async function removeNamespaces(stem: string, groups: Iterable<string> = []): Promise<void> {
  if (!stem.startsWith(TEST_NAMESPACE_ROOT))
    throw new Error(`refusing to remove ${stem}: not a test namespace`);
  const kafka = createKafka({ ...kafkaSettingsFromEnv('cprec-test-cleanup'), logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  try {
    await admin.connect();
    if (kafkaAuthOn()) await removeAclsUnder(admin, stem);
    const listed = (await admin.listGroups()).groups.map((g) => g.groupId);
    const ours = [...new Set([...groups, ...listed])].filter((g) => g.startsWith(stem));
    if (ours.length > 0) await admin.deleteGroups(ours).catch(() => undefined);
    const topics = (await admin.listTopics()).filter((t) => t.startsWith(stem));
    if (topics.length > 0) await admin.deleteTopics({ topics, timeout: 30_000 });
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
  // Every replica's catalogue (the cluster profile: CPREC_CLICKHOUSE_REPLICAS), else the one server.
  const settings = clickHouseSettingsFromEnv();
  for (const url of settings.replicas ?? [settings.url]) {
    const ch = createClickHouse({ ...settings, url, database: 'default', valueMode: 'inline' });
    try {
      const rows = await ch.query<{ name: string }>(sql`SELECT name FROM system.databases`);
      for (const { name } of rows)
        if (name.startsWith(stem)) await ch.command(sql`DROP DATABASE IF EXISTS ${ident(name)}`);
    } finally {
      await ch.close();
    }
  }
}

/** Collects the decoded messages of some topics, read from the beginning with a group of its own. */
export class Tap {
  readonly messages: Array<{ topic: string; key: Buffer | null; value: Buffer | null }> = [];
  private readonly waiter = new Waiter();
  private consumer: Consumer | null = null;

  constructor(
    private readonly kafka: Kafka,
    private readonly groupId: string,
  ) {}

  async start(topics: readonly string[]): Promise<void> {
    const consumer = this.kafka.consumer({ groupId: this.groupId });
    this.consumer = consumer;
    const joined = new Promise<void>((resolve) => consumer.on(consumer.events.GROUP_JOIN, () => resolve()));
    await consumer.connect();
    await consumer.subscribe({ topics: [...topics], fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ topic, message }) => {
        this.messages.push({ topic, key: message.key, value: message.value });
        this.waiter.notify();
      },
    });
    await joined;
  }

  /** The JSON values of one topic's messages. */
  values<T = Record<string, unknown>>(topic: string): T[] {
    return this.messages
      .filter((m) => m.topic === topic)
      .map((m) => JSON.parse(m.value?.toString('utf8') ?? 'null') as T);
  }

  /** Waits until a message of `topic` satisfies `match`, and returns its JSON value. */
  async waitFor<T = Record<string, unknown>>(
    topic: string,
    match: (value: T) => boolean,
    what: string,
    timeoutMs = 60_000,
  ): Promise<T> {
    const find = () => this.values<T>(topic).find(match);
    await this.waiter.until(() => find() !== undefined, what, timeoutMs);
    return find()!;
  }

  async stop(): Promise<void> {
    await this.consumer?.disconnect();
  }
}

/** A kafkajs error caused, at any depth, by a refused or reset connection to a broker. */
function isRefusedConnection(err: unknown): boolean {
  for (
    let e = err as { name?: string; message?: string; cause?: unknown } | undefined;
    e;
    e = e.cause as typeof e
  ) {
    if (e.name === 'KafkaJSConnectionError' || /ECONNREFUSED|ECONNRESET/.test(e.message ?? '')) return true;
  }
  return false;
}
