import { parseReplicas, replicaEnvironment, SERVICES } from './services';

const spec = (name: string) => SERVICES.find((s) => s.name === name)!;

describe('npm start --replicas', () => {
  it('reads service=N pairs, one process for every service not named', () => {
    const counts = parseReplicas('ingest=2, serving=3,trainer=2');
    expect(Object.fromEntries(counts)).toEqual({
      ingest: 2,
      sequencer: 1,
      trainer: 2,
      evaluator: 1,
      serving: 3,
      operator: 1,
    });
    expect(Object.fromEntries(parseReplicas(undefined))).toMatchObject({ ingest: 1, serving: 1 });
  });

  it('refuses unknown services, malformed pairs and counts outside 1-9', () => {
    expect(() => parseReplicas('servings=2')).toThrow(/not service=N/);
    expect(() => parseReplicas('serving')).toThrow(/not service=N/);
    expect(() => parseReplicas('serving=0')).toThrow(/1 to 9/);
    expect(() => parseReplicas('serving=10')).toThrow(/1 to 9/);
  });

  it('gives replica n its own port and, for serving, its own instance id', () => {
    const env = { SERVING_PORT: '9105', SERVING_INSTANCE_ID: 'web', INGEST_GROUP_ID: 'g' };
    expect(replicaEnvironment(spec('serving'), env, 1)).toBe(env);
    expect(replicaEnvironment(spec('serving'), env, 3)).toMatchObject({
      SERVING_PORT: '9305',
      SERVING_INSTANCE_ID: 'web-3',
    });
    // Ingest replicas share the group (they split the partitions); only the port differs.
    expect(replicaEnvironment(spec('ingest'), env, 2)).toMatchObject({
      INGEST_PORT: '8201',
      INGEST_GROUP_ID: 'g',
    });
    expect(replicaEnvironment(spec('serving'), {}, 2).SERVING_INSTANCE_ID).toBeUndefined();
  });
});
