import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import {
  CLICKHOUSE_READONLY_PRINCIPALS,
  credentialsFromEnv,
  principalPasswordVariable,
  PRINCIPALS,
  serviceEnvironment,
} from './principals';

const KAFKA_VARS = { username: 'CPREC_KAFKA_USERNAME', password: 'CPREC_KAFKA_PASSWORD' };
const CLICKHOUSE_VARS = {
  username: 'CPREC_CLICKHOUSE_USER',
  password: 'CPREC_CLICKHOUSE_PASSWORD',
  implicitUsername: 'default',
};

describe('principals', () => {
  it('names one password variable per principal and server', () => {
    expect(principalPasswordVariable('kafka', 'ingest')).toBe('CPREC_KAFKA_PASSWORD_INGEST');
    expect(principalPasswordVariable('clickhouse', 'admin')).toBe('CPREC_CLICKHOUSE_PASSWORD_ADMIN');
    expect(PRINCIPALS).toEqual([
      'admin',
      'ingest',
      'sequencer',
      'trainer',
      'evaluator',
      'serving',
      'operator',
      'platform',
    ]);
    expect(() => principalPasswordVariable('kafka', 'In gest')).toThrow(/principal/);
  });

  it('names the same principals and read-only ClickHouse users as the infra scripts that create them', () => {
    const script = readFileSync(resolve(__dirname, '../../../infra/local/lib.sh'), 'utf8');
    const list = (name: string) =>
      new RegExp(`^${name}=\\((.*)\\)$`, 'm').exec(script)?.[1]?.split(/\s+/).filter(Boolean);
    expect(list('PRINCIPALS')).toEqual([...PRINCIPALS]);
    expect(list('CLICKHOUSE_READONLY_PRINCIPALS')).toEqual([...CLICKHOUSE_READONLY_PRINCIPALS]);
  });

  it("picks the process's own principal from the secrets file's variables", () => {
    const env = {
      CPREC_KAFKA_PASSWORD_INGEST: 'ingest-secret',
      CPREC_KAFKA_PASSWORD_SERVING: 'serving-secret',
      CPREC_KAFKA_PASSWORD_ADMIN: 'admin-secret',
    };
    expect(credentialsFromEnv('kafka', 'serving', KAFKA_VARS, env)).toEqual({
      username: 'serving',
      password: 'serving-secret',
    });
    expect(credentialsFromEnv('kafka', 'admin', KAFKA_VARS, env)).toEqual({
      username: 'admin',
      password: 'admin-secret',
    });
  });

  it('lets the explicit pair override the principal', () => {
    const env = {
      CPREC_KAFKA_USERNAME: 'someone',
      CPREC_KAFKA_PASSWORD: 'their-secret',
      CPREC_KAFKA_PASSWORD_INGEST: 'ingest-secret',
    };
    expect(credentialsFromEnv('kafka', 'ingest', KAFKA_VARS, env)).toEqual({
      username: 'someone',
      password: 'their-secret',
    });
  });

  it('gives no credentials when nothing is set (a server without authentication)', () => {
    expect(credentialsFromEnv('kafka', 'ingest', KAFKA_VARS, {})).toBeNull();
    expect(credentialsFromEnv('kafka', 'ingest', KAFKA_VARS, { CPREC_KAFKA_PASSWORD_INGEST: '' })).toBeNull();
    // Another principal's password is not ours.
    expect(
      credentialsFromEnv('kafka', 'ingest', KAFKA_VARS, { CPREC_KAFKA_PASSWORD_SERVING: 's' }),
    ).toBeNull();
  });

  it('refuses half an explicit pair instead of connecting as somebody else', () => {
    expect(() => credentialsFromEnv('kafka', 'ingest', KAFKA_VARS, { CPREC_KAFKA_USERNAME: 'x' })).toThrow(
      /CPREC_KAFKA_PASSWORD is not/,
    );
    expect(() => credentialsFromEnv('kafka', 'ingest', KAFKA_VARS, { CPREC_KAFKA_PASSWORD: 'x' })).toThrow(
      /CPREC_KAFKA_USERNAME is not/,
    );
  });

  it("keeps ClickHouse's old meaning of a lone password (the default user's)", () => {
    expect(
      credentialsFromEnv('clickhouse', 'ingest', CLICKHOUSE_VARS, { CPREC_CLICKHOUSE_PASSWORD: 'p' }),
    ).toEqual({
      username: 'default',
      password: 'p',
    });
    expect(
      credentialsFromEnv('clickhouse', 'operator', CLICKHOUSE_VARS, {
        CPREC_CLICKHOUSE_PASSWORD_OPERATOR: 'o',
      }),
    ).toEqual({ username: 'operator', password: 'o' });
    // An explicit user with an empty password is allowed (a passwordless user on another server).
    expect(
      credentialsFromEnv('clickhouse', 'ingest', CLICKHOUSE_VARS, {
        CPREC_CLICKHOUSE_USER: 'reader',
        CPREC_CLICKHOUSE_PASSWORD: '',
      }),
    ).toEqual({ username: 'reader', password: '' });
  });

  it("starts services without the launcher's explicit identity, keeping the secrets file's", () => {
    const env = serviceEnvironment({
      CPREC_KAFKA_USERNAME: 'admin',
      CPREC_KAFKA_PASSWORD: 'a',
      CPREC_CLICKHOUSE_USER: 'admin',
      CPREC_CLICKHOUSE_PASSWORD: 'b',
      CPREC_KAFKA_PASSWORD_INGEST: 'i',
      PATH: '/bin',
    });
    expect(env).toEqual({ CPREC_KAFKA_PASSWORD_INGEST: 'i', PATH: '/bin' });
  });
});
