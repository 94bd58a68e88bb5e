/**
 * The test tiers' isolation checks, run by scripts/test.sh around the integration tier:
 *
 *   snapshot FILE         writes the production fingerprint (test/support/production.ts) to FILE
 *   compare FILE          fails (exit 1, listing the changes) unless production still matches FILE
 *   cleanup RUN [--stale-hours H]
 *                         removes every database, topic, consumer group and ACL of test run RUN
 *                         (`cprec_t_<RUN>_*`: what a crashed suite left), and those of runs started
 *                         more than H hours ago (run ids begin with their start time in base 36)
 */
import { readFileSync, writeFileSync } from 'node:fs';
import {
  AclOperationTypes,
  AclPermissionTypes,
  AclResourceTypes,
  logLevel,
  ResourcePatternTypes,
} from 'kafkajs';
import { clickHouseSettingsFromEnv, createClickHouse, sql } from '@cprec/clickhouse';
import { createKafka, kafkaSettingsFromEnv } from '@cprec/messaging';
import { kafkaAuthOn, removeNamespaces, TEST_NAMESPACE_ROOT } from './harness';
import { fingerprintChanges, productionFingerprint, type ProductionFingerprint } from './production';

/** Run ids of test namespaces that exist now (databases and topics). */
async function existingRuns(): Promise<Set<string>> {
  const runs = new Set<string>();
  const idOf = (name: string) => /^cprec_t_([a-z0-9]+)_/.exec(name)?.[1];
  const ch = createClickHouse({ ...clickHouseSettingsFromEnv(), database: 'default', valueMode: 'inline' });
  try {
    for (const { name } of await ch.query<{ name: string }>(sql`SELECT name FROM system.databases`)) {
      const id = idOf(name);
      if (id) runs.add(id);
    }
  } finally {
    await ch.close();
  }
  const admin = createKafka({
    ...kafkaSettingsFromEnv('cprec-test-cleanup'),
    logLevel: logLevel.NOTHING,
  }).admin();
  await admin.connect();
  try {
    for (const topic of await admin.listTopics()) {
      const id = idOf(topic);
      if (id) runs.add(id);
    }
    // ACLs a crashed suite left on its namespace (their topics may be gone already).
    if (kafkaAuthOn()) {
      const acls = await admin.describeAcls({
        resourceType: AclResourceTypes.ANY,
        resourcePatternType: ResourcePatternTypes.ANY,
        operation: AclOperationTypes.ANY,
        permissionType: AclPermissionTypes.ANY,
      });
      for (const resource of acls.resources) {
        const id = idOf(resource.resourceName);
        if (id) runs.add(id);
      }
    }
  } finally {
    await admin.disconnect();
  }
  return runs;
}

/** The start time a run id encodes (its first 8 base-36 digits are Date.now()), or null. */
function startedAt(run: string): number | null {
  const ms = parseInt(run.slice(0, 8), 36);
  return Number.isFinite(ms) && ms > Date.UTC(2020, 0, 1) && ms < Date.now() + 86_400_000 ? ms : null;
}

async function main(): Promise<void> {
  const [command, arg, ...rest] = process.argv.slice(2);
  switch (command) {
    case 'snapshot': {
      writeFileSync(arg!, JSON.stringify(await productionFingerprint(), null, 2));
      return;
    }
    case 'compare': {
      const before = JSON.parse(readFileSync(arg!, 'utf8')) as ProductionFingerprint;
      const changes = fingerprintChanges(before, await productionFingerprint());
      if (changes.length === 0) {
        console.log(
          `production untouched: database ${before.database} and the cprec.* topics are as before the tests`,
        );
        return;
      }
      console.error(
        `the tests changed production (database ${before.database}, topics cprec.*) — or something else used it meanwhile (npm start?):`,
      );
      for (const line of changes) console.error(`  ${line}`);
      process.exit(1);
      return;
    }
    case 'cleanup': {
      const i = rest.indexOf('--stale-hours');
      const staleMs = i >= 0 ? Number(rest[i + 1]) * 3_600_000 : Infinity;
      const runs = [...(await existingRuns())].filter((run) => {
        if (run === arg) return true;
        const started = startedAt(run);
        return started !== null && Date.now() - started > staleMs;
      });
      for (const run of runs) await removeNamespaces(`${TEST_NAMESPACE_ROOT}${run}_`);
      console.log(
        runs.length === 0
          ? 'no test namespaces to remove'
          : `removed test namespaces of run(s) ${runs.join(', ')}`,
      );
      return;
    }
    default:
      throw new Error(`unknown command ${JSON.stringify(command)}; expected snapshot | compare | cleanup`);
  }
}

main().catch((err: unknown) => {
  console.error(`isolation: ${(err as Error).message}`);
  process.exit(1);
});
