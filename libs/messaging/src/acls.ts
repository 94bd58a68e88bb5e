import {
  AclOperationTypes,
  AclPermissionTypes,
  AclResourceTypes,
  type Admin,
  ResourcePatternTypes,
} from 'kafkajs';
import { SERVICE_PRINCIPALS, type ServicePrincipal, type TopicKey, type Topics } from '@cprec/contracts';

/**
 * What each service may do on Kafka, read from the code: the topics it consumes (with its
 * consumer groups), the topics it produces, and nothing else. `admin` (infra scripts, CLI, test
 * harness) is a super user and needs no ACL. Dead letters are produced by every consumer
 * (`ResilientConsumer`, ingest's pipeline) — not by the operator, which consumes nothing.
 */
export const SERVICE_TOPIC_ACCESS: Readonly<
  Record<ServicePrincipal, { consumes: readonly TopicKey[]; produces: readonly TopicKey[] }>
> = {
  ingest: { consumes: ['interactions', 'items'], produces: ['deadLetter'] },
  sequencer: { consumes: ['sequencerCommands'], produces: ['corpusStats', 'deadLetter'] },
  trainer: {
    consumes: ['roundCommands', 'corpusStats'],
    // sequencerCommands: a round's runner asks the sequencer to freeze a missing split.
    produces: ['roundEvents', 'adapters', 'sequencerCommands', 'deadLetter'],
  },
  evaluator: {
    // servingEvents: the evaluator stores them in serving_events (the table's one writer).
    consumes: ['adapters', 'evaluatorCommands', 'servingEvents'],
    // adapters: promoted/rejected; roundCommands: a refresh round on drift; sequencerCommands: splits.
    produces: ['adapters', 'drift', 'roundCommands', 'sequencerCommands', 'deadLetter'],
  },
  serving: {
    // servingEvents: read back at start, for what the evaluator has not stored yet (its restart state).
    consumes: ['adapters', 'servingCommands', 'servingEvents'],
    // servingEvents: what it switched, rolled back or refused (read-only on ClickHouse).
    produces: ['servingEvents', 'deadLetter'],
  },
  operator: { consumes: [], produces: ['roundCommands', 'evaluatorCommands', 'servingCommands'] },
  platform: { consumes: [], produces: ['interactions', 'items'] },
};

/**
 * The consumer-group id prefix of each consuming service in a default installation (each
 * `*_GROUP_ID`/`SEQUENCER_CLIENT_ID` default; serving appends `-<instance>`, the sequencer
 * `-split-requests`, the evaluator's serving-events writer `-serving-events`, serving's read-back
 * `-<instance>-readback`). A service configured with another group id needs an ACL for it.
 */
export const DEFAULT_GROUP_PREFIXES: Readonly<Record<ServicePrincipal, string | null>> = {
  ingest: 'cprec-ingest',
  sequencer: 'cprec-sequencer',
  trainer: 'cprec-trainer',
  evaluator: 'cprec-evaluator',
  serving: 'cprec-serving',
  operator: null,
  platform: null,
};

export type AclOperation = 'read' | 'write' | 'describe' | 'describe_configs';

/** One ALLOW rule: `principal` may do `operation` on a topic or group named (or prefixed) `name`. */
export interface AclRule {
  principal: ServicePrincipal;
  resource: 'topic' | 'group';
  pattern: 'literal' | 'prefixed';
  name: string;
  operation: AclOperation;
}

/**
 * The ACL table of one installation: its topic names (`topicsFor(prefix)`) and the group prefix
 * of each consuming service. Every service may also describe every topic of the installation
 * (metadata only: topic names and partitions), which is what `ensureTopics` lists at start; it
 * may not create one — topics are created by `infra/local/up` (or the test harness) as admin.
 */
export function serviceAclRules(
  topics: Topics,
  groupPrefixes: Readonly<Record<ServicePrincipal, string | null>> = DEFAULT_GROUP_PREFIXES,
): AclRule[] {
  const rules: AclRule[] = [];
  const allTopics = [...new Set(Object.values(topics))];
  for (const principal of SERVICE_PRINCIPALS) {
    const access = SERVICE_TOPIC_ACCESS[principal];
    const topic = (name: string, operation: AclOperation): AclRule => ({
      principal,
      resource: 'topic',
      pattern: 'literal',
      name,
      operation,
    });
    for (const name of allTopics) rules.push(topic(name, 'describe'));
    for (const key of access.consumes) rules.push(topic(topics[key], 'read'));
    for (const key of access.produces) rules.push(topic(topics[key], 'write'));
    // The dead-letter publisher sizes letters from the topic's max.message.bytes.
    if (access.produces.includes('deadLetter')) rules.push(topic(topics.deadLetter, 'describe_configs'));
    const group = groupPrefixes[principal];
    if (access.consumes.length > 0 && group !== null)
      rules.push({ principal, resource: 'group', pattern: 'prefixed', name: group, operation: 'read' });
  }
  return rules;
}

/**
 * The ACL table of a namespace (a test suite's or a benchmark run's): production's on the
 * namespace's topics, with each service's consumer groups under `<stem>.<service>` (serving
 * appends `-<instance>`, the sequencer `-split-requests`); `removeAclsUnder(admin, stem)` removes it.
 */
export function namespaceAclRules(stem: string, topics: Topics): AclRule[] {
  const groups = Object.fromEntries(SERVICE_PRINCIPALS.map((p) => [p, `${stem}.${p}`])) as Record<
    ServicePrincipal,
    string
  >;
  return serviceAclRules(topics, groups);
}

const OPERATIONS: Record<AclOperation, AclOperationTypes> = {
  read: AclOperationTypes.READ,
  write: AclOperationTypes.WRITE,
  describe: AclOperationTypes.DESCRIBE,
  describe_configs: AclOperationTypes.DESCRIBE_CONFIGS,
};

/** kafkajs's binding for one rule (any host: the listener is on loopback anyway). */
export function aclBinding(rule: AclRule): {
  resourceType: AclResourceTypes;
  resourceName: string;
  resourcePatternType: ResourcePatternTypes;
  principal: string;
  host: string;
  operation: AclOperationTypes;
  permissionType: AclPermissionTypes;
} {
  return {
    resourceType: rule.resource === 'topic' ? AclResourceTypes.TOPIC : AclResourceTypes.GROUP,
    resourceName: rule.name,
    resourcePatternType:
      rule.pattern === 'literal' ? ResourcePatternTypes.LITERAL : ResourcePatternTypes.PREFIXED,
    principal: `User:${rule.principal}`,
    host: '*',
    operation: OPERATIONS[rule.operation],
    permissionType: AclPermissionTypes.ALLOW,
  };
}

const bindingKey = (b: {
  resourceType: number;
  resourceName: string;
  resourcePatternType: number;
  principal: string;
  operation: number;
}): string =>
  [b.resourceType, b.resourcePatternType, b.resourceName, b.principal, b.operation].join('\u0000');

/**
 * Creates the rules' ACLs (idempotent: an existing binding is left as it is) and waits until the
 * broker enforces them: in KRaft the controller commits them and the broker applies them when it
 * replays the metadata log, a few milliseconds later; a client started in between would be
 * refused. Needs admin.
 */
export async function applyAclRules(
  admin: Admin,
  rules: readonly AclRule[],
  timeoutMs = 30_000,
): Promise<void> {
  if (rules.length === 0) return;
  const bindings = rules.map(aclBinding);
  await admin.createAcls({ acl: bindings });
  const wanted = new Set(bindings.map(bindingKey));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const described = await admin.describeAcls({
      resourceType: AclResourceTypes.ANY,
      resourcePatternType: ResourcePatternTypes.ANY,
      operation: AclOperationTypes.ANY,
      permissionType: AclPermissionTypes.ALLOW,
    });
    const present = new Set(
      described.resources.flatMap((r) => r.acls.map((acl) => bindingKey({ ...r, ...acl }))),
    );
    if ([...wanted].every((key) => present.has(key))) return;
    if (Date.now() > deadline) throw new Error(`Kafka ACLs not in force after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Deletes exactly the rules' ACLs (a test namespace's, at tear-down). Needs admin. */
export async function removeAclRules(admin: Admin, rules: readonly AclRule[]): Promise<void> {
  if (rules.length === 0) return;
  await admin.deleteAcls({ filters: rules.map(aclBinding) });
}

/**
 * Deletes every ACL whose resource name starts with `stem` (a crashed test suite's namespace).
 * Returns how many bindings were removed. Needs admin.
 */
export async function removeAclsUnder(admin: Admin, stem: string): Promise<number> {
  const described = await admin.describeAcls({
    resourceType: AclResourceTypes.ANY,
    resourcePatternType: ResourcePatternTypes.ANY,
    operation: AclOperationTypes.ANY,
    permissionType: AclPermissionTypes.ANY,
  });
  const filters = described.resources
    .filter((r) => r.resourceName.startsWith(stem))
    .flatMap((r) =>
      r.acls.map((acl) => ({
        resourceType: r.resourceType,
        resourceName: r.resourceName,
        resourcePatternType: r.resourcePatternType,
        principal: acl.principal,
        host: acl.host,
        operation: acl.operation,
        permissionType: acl.permissionType,
      })),
    );
  if (filters.length > 0) await admin.deleteAcls({ filters });
  return filters.length;
}
