import type { Kafka } from 'kafkajs';
import type { Topics } from '@cprec/contracts';
import {
  applyAclRules,
  defaultTopicSpecs,
  ensureTopics,
  kafkaSettingsFromEnv,
  namespaceAclRules,
  removeAclsUnder,
} from '@cprec/messaging';

/**
 * A benchmark's own Kafka namespace: the run's topics (`topicsFor('<stem>.')`) and, when Kafka
 * authenticates, production's ACL table on them (each service's groups under `<stem>.<service>`).
 * Benchmarks never publish on the installation's topics: a serving started by `npm start` would
 * act on a benchmark's promotion. Returns the clean-up that removes the topics, the consumer
 * groups under `<stem>.` and the ACLs.
 */
export async function createBenchNamespace(
  kafka: Kafka,
  stem: string,
  topics: Topics,
): Promise<() => Promise<void>> {
  const authenticated = kafkaSettingsFromEnv('cprec-bench').sasl !== undefined;
  const admin = kafka.admin();
  await admin.connect();
  try {
    await ensureTopics(admin, defaultTopicSpecs(4, topics));
    if (authenticated) await applyAclRules(admin, namespaceAclRules(stem, topics));
  } finally {
    await admin.disconnect();
  }
  return async () => {
    const cleanup = kafka.admin();
    await cleanup.connect();
    try {
      const { groups } = await cleanup.listGroups();
      const ours = groups.map((g) => g.groupId).filter((id) => id.startsWith(`${stem}.`));
      if (ours.length > 0) await cleanup.deleteGroups(ours).catch(() => undefined);
      await cleanup.deleteTopics({ topics: [...new Set(Object.values(topics))] });
      if (authenticated) await removeAclsUnder(cleanup, stem);
    } finally {
      await cleanup.disconnect();
    }
  };
}
