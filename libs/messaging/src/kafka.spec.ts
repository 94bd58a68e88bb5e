import { kafkaReplicationFactorFromEnv } from './kafka';

describe('kafkaReplicationFactorFromEnv', () => {
  it('is 1 (one broker) unless CPREC_KAFKA_REPLICATION_FACTOR says otherwise', () => {
    expect(kafkaReplicationFactorFromEnv({})).toBe(1);
    expect(kafkaReplicationFactorFromEnv({ CPREC_KAFKA_REPLICATION_FACTOR: '' })).toBe(1);
    expect(kafkaReplicationFactorFromEnv({ CPREC_KAFKA_REPLICATION_FACTOR: '3' })).toBe(3);
  });

  it('refuses what is not a small positive integer', () => {
    for (const bad of ['0', '-1', '2.5', 'three', '99'])
      expect(() => kafkaReplicationFactorFromEnv({ CPREC_KAFKA_REPLICATION_FACTOR: bad })).toThrow(
        /CPREC_KAFKA_REPLICATION_FACTOR/,
      );
  });
});
