import { logLevel } from 'kafkajs';
import { clickHouseSettingsFromEnv, createClickHouse, sql } from '@cprec/clickhouse';
import { TOPICS } from '@cprec/contracts';
import { createKafka, kafkaSettingsFromEnv } from '@cprec/messaging';
import { TestNamespace } from '../support/harness';
import { fingerprintChanges, productionFingerprint } from '../support/production';
import { CommandTap } from '../operator/command-tap';

/**
 * Test isolation (issue 15): a suite's services run in its namespace — their own database and
 * topics — so nothing they do reaches the production database or topics `npm start` uses, and
 * the namespace is gone after the suite. Here the operator (whose commands used to land on the
 * production mailboxes) triggers a round in a namespace; production is compared before and after,
 * and nothing of the namespace remains once it is torn down. scripts/test.sh makes the same
 * production comparison around the whole integration tier.
 */

jest.setTimeout(180_000);

async function leftovers(stem: string): Promise<string[]> {
  const admin = createKafka({
    ...kafkaSettingsFromEnv('isolation-test'),
    logLevel: logLevel.NOTHING,
  }).admin();
  await admin.connect();
  const ch = createClickHouse({ ...clickHouseSettingsFromEnv(), database: 'default', valueMode: 'inline' });
  try {
    const topics = (await admin.listTopics()).filter((t) => t.startsWith(stem));
    const groups = (await admin.listGroups()).groups.map((g) => g.groupId).filter((g) => g.startsWith(stem));
    const databases = (await ch.query<{ name: string }>(sql`SELECT name FROM system.databases`))
      .map((r) => r.name)
      .filter((n) => n.startsWith(stem));
    return [...topics, ...groups, ...databases];
  } finally {
    await admin.disconnect();
    await ch.close();
  }
}

it('a namespace keeps a suite out of the production database and topics, and leaves nothing behind', async () => {
  const before = await productionFingerprint();
  const ns = new TestNamespace('isolation');
  try {
    await ns.setUp();
    expect(ns.topics.roundCommands).toBe(`${ns.stem}.${TOPICS.roundCommands}`);
    expect(ns.database).not.toBe(before.database);
    const token = `tok-${ns.run}`;
    const operator = await ns.startService('operator', 'OPERATOR_PORT', { OPERATOR_TOKEN: token });
    const tap = new CommandTap(ns.kafka(), ns.group('tap'));
    ns.onTearDown(() => tap.stop());
    await tap.start([ns.topics.roundCommands]);
    const res = await fetch(`http://127.0.0.1:${operator.port}/v1/rounds`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ reason: 'isolation test' }),
    });
    expect(res.status).toBe(202);
    const accepted = (await res.json()) as { command_id: string; topic: string };
    // The command went to the namespace's mailbox, and the API says so.
    expect(accepted.topic).toBe(ns.topics.roundCommands);
    expect(await tap.waitFor(ns.topics.roundCommands, accepted.command_id)).toMatchObject({
      kind: 'trigger',
    });
  } finally {
    await ns.tearDown();
  }
  expect(await leftovers(ns.stem)).toEqual([]);
  expect(fingerprintChanges(before, await productionFingerprint())).toEqual([]);
});
