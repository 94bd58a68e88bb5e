import { clickHouseSettingsFromEnv } from './settings';

describe('clickHouseSettingsFromEnv credentials', () => {
  it("uses the principal's own password from the secrets file", () => {
    const env = { CPREC_CLICKHOUSE_PASSWORD_SERVING: 's', CPREC_CLICKHOUSE_PASSWORD_ADMIN: 'a' };
    expect(clickHouseSettingsFromEnv(env, 'serving')).toMatchObject({ username: 'serving', password: 's' });
    // admin by default (infra scripts, CLI, tests).
    expect(clickHouseSettingsFromEnv(env)).toMatchObject({ username: 'admin', password: 'a' });
  });

  it('lets CPREC_CLICKHOUSE_USER/PASSWORD override, and keeps the open default user otherwise', () => {
    expect(
      clickHouseSettingsFromEnv(
        { CPREC_CLICKHOUSE_USER: 'u', CPREC_CLICKHOUSE_PASSWORD: 'p', CPREC_CLICKHOUSE_PASSWORD_INGEST: 'i' },
        'ingest',
      ),
    ).toMatchObject({ username: 'u', password: 'p' });
    expect(clickHouseSettingsFromEnv({}, 'ingest')).toMatchObject({ username: 'default', password: '' });
    expect(() => clickHouseSettingsFromEnv({ CPREC_CLICKHOUSE_USER: 'u' })).toThrow(
      /CPREC_CLICKHOUSE_PASSWORD/,
    );
  });
});

describe('clickHouseSettingsFromEnv replicas', () => {
  it('has no replicas on one server, every listed replica in the cluster profile', () => {
    expect(clickHouseSettingsFromEnv({}).replicas).toBeUndefined();
    expect(
      clickHouseSettingsFromEnv({
        CPREC_CLICKHOUSE_REPLICAS: ' http://127.0.0.1:28123, http://127.0.0.1:28124 ,',
      }).replicas,
    ).toEqual(['http://127.0.0.1:28123', 'http://127.0.0.1:28124']);
  });

  it('refuses a replica that is not an http(s) URL', () => {
    expect(() => clickHouseSettingsFromEnv({ CPREC_CLICKHOUSE_REPLICAS: 'ftp://x' })).toThrow(
      /http or https/,
    );
  });
});
