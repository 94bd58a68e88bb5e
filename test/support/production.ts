import { logLevel } from 'kafkajs';
import { clickHouseSettingsFromEnv, createClickHouse, ident, sql } from '@cprec/clickhouse';
import { ALL_TOPICS } from '@cprec/contracts';
import { createKafka, kafkaSettingsFromEnv } from '@cprec/messaging';

/**
 * What `npm start` would see of a test run: the production database (CPREC_CLICKHOUSE_DB,
 * default `cprec`) and the production topics (the base names `cprec.*`). A fingerprint records,
 * for each production topic, its partitions' end offsets and the offsets every consumer group
 * has committed on it; for each production table, its row count (deduplicated with FINAL where
 * the engine merges rows, so background merges do not change it). Two fingerprints taken around
 * the integration tier must be equal: a test that wrote to a production topic, committed in a
 * production group or inserted into a production table shows up as a difference.
 */
export interface ProductionFingerprint {
  database: string;
  tables: Record<string, number>;
  topics: Record<string, string[]>;
  groups: Record<string, Record<string, string[]>>;
}

const MERGING_ENGINES = /^(Replacing|Collapsing|VersionedCollapsing|Summing|Aggregating)MergeTree/;

export async function productionFingerprint(): Promise<ProductionFingerprint> {
  const settings = clickHouseSettingsFromEnv();
  const ch = createClickHouse({ ...settings, database: 'default', valueMode: 'inline' });
  const tables: Record<string, number> = {};
  try {
    const rows = await ch.query<{ name: string; engine: string }>(
      sql`SELECT name, engine FROM system.tables WHERE database = ${settings.database} ORDER BY name`,
    );
    for (const { name, engine } of rows) {
      if (!/MergeTree|Log|Memory/.test(engine)) continue;
      const final = MERGING_ENGINES.test(engine) ? sql`FINAL` : sql``;
      const [count] = await ch.query<{ n: string }>(
        sql`SELECT count() AS n FROM ${ident(settings.database, name)} ${final}`,
      );
      tables[name] = Number(count?.n ?? 0);
    }
  } finally {
    await ch.close();
  }

  const kafka = createKafka({
    ...kafkaSettingsFromEnv('cprec-production-check'),
    logLevel: logLevel.NOTHING,
  });
  const admin = kafka.admin();
  const topics: Record<string, string[]> = {};
  const groups: Record<string, Record<string, string[]>> = {};
  await admin.connect();
  try {
    const existing = new Set(await admin.listTopics());
    const production = [...ALL_TOPICS].filter((t) => existing.has(t)).sort();
    for (const topic of production) {
      const offsets = await admin.fetchTopicOffsets(topic);
      topics[topic] = offsets.sort((a, b) => a.partition - b.partition).map((o) => o.high);
    }
    const groupIds = (await admin.listGroups()).groups.map((g) => g.groupId).sort();
    for (const groupId of groupIds) {
      const committed = await admin.fetchOffsets({ groupId, topics: production }).catch(() => []);
      for (const { topic, partitions } of committed) {
        const offsets = partitions.sort((a, b) => a.partition - b.partition).map((p) => p.offset);
        if (offsets.every((o) => o === '-1')) continue;
        (groups[groupId] ??= {})[topic] = offsets;
      }
    }
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
  return { database: settings.database, tables, topics, groups };
}

/** The differences between two fingerprints, one line each (empty: untouched). */
export function fingerprintChanges(before: ProductionFingerprint, after: ProductionFingerprint): string[] {
  const changes: string[] = [];
  const compare = (what: string, a: Record<string, unknown>, b: Record<string, unknown>) => {
    for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
      const x = JSON.stringify(a[key] ?? null);
      const y = JSON.stringify(b[key] ?? null);
      if (x !== y) changes.push(`${what} ${key}: ${x} -> ${y}`);
    }
  };
  compare(`table ${before.database}.`, before.tables, after.tables);
  compare('topic', before.topics, after.topics);
  compare('consumer group', before.groups, after.groups);
  return changes;
}
