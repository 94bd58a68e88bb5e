import { AclOperationTypes, AclResourceTypes, ResourcePatternTypes } from 'kafkajs';
import { SERVICE_PRINCIPALS, topicsFor, TOPICS } from '@cprec/contracts';
import { aclBinding, serviceAclRules, SERVICE_TOPIC_ACCESS } from './acls';
import { kafkaSaslFromEnv, kafkaSettingsFromEnv } from './kafka';

const rulesOf = (principal: string, operation: string, rules = serviceAclRules(TOPICS)) =>
  rules
    .filter((r) => r.principal === principal && r.operation === operation)
    .map((r) => `${r.resource}:${r.pattern}:${r.name}`)
    .sort();

describe('the services’ Kafka ACL table', () => {
  it('lets each service read what it consumes, with its consumer groups, and nothing else', () => {
    expect(rulesOf('ingest', 'read')).toEqual([
      'group:prefixed:cprec-ingest',
      'topic:literal:cprec.interactions.v1',
      'topic:literal:cprec.items.v1',
    ]);
    expect(rulesOf('serving', 'read')).toEqual([
      'group:prefixed:cprec-serving',
      'topic:literal:cprec.adapters.v1',
      'topic:literal:cprec.serving-commands.v1',
      // Its own events, read back at start (what the evaluator has not stored yet).
      'topic:literal:cprec.serving-events.v1',
    ]);
    expect(rulesOf('evaluator', 'read')).toEqual([
      'group:prefixed:cprec-evaluator',
      'topic:literal:cprec.adapters.v1',
      'topic:literal:cprec.evaluator-commands.v1',
      'topic:literal:cprec.serving-events.v1',
    ]);
    expect(rulesOf('sequencer', 'read')).toEqual([
      'group:prefixed:cprec-sequencer',
      'topic:literal:cprec.sequencer-commands.v1',
    ]);
    // The operator consumes nothing: no read, no group.
    expect(rulesOf('operator', 'read')).toEqual([]);
  });

  it('lets each service write what it produces', () => {
    expect(rulesOf('serving', 'write')).toEqual([
      'topic:literal:cprec.dead-letter.v1',
      'topic:literal:cprec.serving-events.v1',
    ]);
    expect(rulesOf('operator', 'write')).toEqual([
      'topic:literal:cprec.evaluator-commands.v1',
      'topic:literal:cprec.round-commands.v1',
      'topic:literal:cprec.serving-commands.v1',
    ]);
    expect(rulesOf('trainer', 'write')).toEqual([
      'topic:literal:cprec.adapters.v1',
      'topic:literal:cprec.dead-letter.v1',
      'topic:literal:cprec.round-events.v1',
      'topic:literal:cprec.sequencer-commands.v1',
    ]);
    // Nobody but the trainer and the evaluator writes adapters; nobody but ingest reads input.
    const all = serviceAclRules(TOPICS);
    const writers = all.filter((r) => r.operation === 'write' && r.name === TOPICS.adapters);
    expect(writers.map((r) => r.principal).sort()).toEqual(['evaluator', 'trainer']);
    const readers = all.filter((r) => r.operation === 'read' && r.name === TOPICS.interactions);
    expect(readers.map((r) => r.principal)).toEqual(['ingest']);
    // serving_events has one writer: serving publishes the events, only the evaluator stores them.
    const servingEventWriters = all.filter((r) => r.operation === 'write' && r.name === TOPICS.servingEvents);
    expect(servingEventWriters.map((r) => r.principal)).toEqual(['serving']);
    const servingEventReaders = all.filter((r) => r.operation === 'read' && r.name === TOPICS.servingEvents);
    expect(servingEventReaders.map((r) => r.principal).sort()).toEqual(['evaluator', 'serving']);
  });

  it('grants describe (metadata) on every topic of the installation, and no create, alter or delete', () => {
    const all = serviceAclRules(TOPICS);
    for (const principal of SERVICE_PRINCIPALS)
      expect(rulesOf(principal, 'describe', all)).toHaveLength(Object.keys(TOPICS).length);
    expect(new Set(all.map((r) => r.operation))).toEqual(
      new Set(['describe', 'read', 'write', 'describe_configs']),
    );
  });

  it('follows an installation’s topic prefix and group prefixes (a test namespace)', () => {
    const topics = topicsFor('ns.');
    const groups = Object.fromEntries(SERVICE_PRINCIPALS.map((p) => [p, `ns.${p}`])) as never;
    const rules = serviceAclRules(topics, groups);
    expect(rules.every((r) => r.name.startsWith('ns.'))).toBe(true);
    expect(rulesOf('ingest', 'read', rules)).toContain('group:prefixed:ns.ingest');
  });

  it('covers every topic a service produces or consumes with a topic of the installation', () => {
    for (const principal of SERVICE_PRINCIPALS) {
      const { consumes, produces } = SERVICE_TOPIC_ACCESS[principal];
      for (const key of [...consumes, ...produces]) expect(TOPICS[key]).toBeDefined();
    }
  });

  it('maps a rule to the kafkajs binding', () => {
    expect(
      aclBinding({
        principal: 'ingest',
        resource: 'group',
        pattern: 'prefixed',
        name: 'g',
        operation: 'read',
      }),
    ).toEqual({
      resourceType: AclResourceTypes.GROUP,
      resourceName: 'g',
      resourcePatternType: ResourcePatternTypes.PREFIXED,
      principal: 'User:ingest',
      host: '*',
      operation: AclOperationTypes.READ,
      permissionType: 3,
    });
  });
});

describe('Kafka credentials from the environment', () => {
  it('uses SCRAM-SHA-256 with the principal’s password, or none', () => {
    expect(kafkaSaslFromEnv('ingest', { CPREC_KAFKA_PASSWORD_INGEST: 's' })).toEqual({
      mechanism: 'scram-sha-256',
      username: 'ingest',
      password: 's',
    });
    expect(kafkaSaslFromEnv('ingest', {})).toBeUndefined();
    expect(kafkaSettingsFromEnv('c', { CPREC_KAFKA_PASSWORD_ADMIN: 'a' }).sasl?.username).toBe('admin');
    expect(kafkaSettingsFromEnv('c', {})).toEqual({ brokers: '127.0.0.1:19092', clientId: 'c' });
  });
});
