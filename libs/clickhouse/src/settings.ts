import { ADMIN_PRINCIPAL, credentialsFromEnv } from '@cprec/contracts';
import { isValidIdentifier } from './literal';

export interface ClickHouseSettings {
  /** HTTP endpoint, e.g. http://127.0.0.1:18123 (the port infra/local/up uses). */
  url: string;
  /** Database every unqualified table name refers to. */
  database: string;
  username: string;
  password: string;
  requestTimeoutMs: number;
  /**
   * How values reach the server: `auto` asks the server its version once and uses query
   * parameters only where they exist (ClickHouse ≥ 19.15); `inline` always splices literals.
   */
  valueMode: 'auto' | 'inline';
  /**
   * Every replica of the (one) shard, when the tables are replicated (the cluster profile:
   * CPREC_CLICKHOUSE_REPLICAS). Then the migration runner writes Replicated*MergeTree engines,
   * creates tables on each replica and coordinates through the first; queries still go to `url`.
   * Absent: one server, plain MergeTree engines.
   */
  replicas?: readonly string[];
}

export const DEFAULT_CLICKHOUSE_URL = 'http://127.0.0.1:18123';
export const DEFAULT_CLICKHOUSE_DATABASE = 'cprec';

/**
 * Settings from the environment. `principal` is who this process is (a service's name; `admin`
 * for the infra scripts, the CLI and the tests): its user and password come from
 * CPREC_CLICKHOUSE_USER/CPREC_CLICKHOUSE_PASSWORD when set, else from the principal's own
 * CPREC_CLICKHOUSE_PASSWORD_<PRINCIPAL> (`.cprec/secrets/cprec.env`), else the passwordless
 * `default` user of a server without authentication.
 */
export function clickHouseSettingsFromEnv(
  env: NodeJS.ProcessEnv = process.env,
  principal: string = ADMIN_PRINCIPAL,
): ClickHouseSettings {
  const credentials = credentialsFromEnv(
    'clickhouse',
    principal,
    { username: 'CPREC_CLICKHOUSE_USER', password: 'CPREC_CLICKHOUSE_PASSWORD', implicitUsername: 'default' },
    env,
  ) ?? { username: 'default', password: '' };
  const settings: ClickHouseSettings = {
    url: env.CPREC_CLICKHOUSE_URL ?? DEFAULT_CLICKHOUSE_URL,
    database: env.CPREC_CLICKHOUSE_DB ?? DEFAULT_CLICKHOUSE_DATABASE,
    username: credentials.username,
    password: credentials.password,
    requestTimeoutMs: parsePositiveInt(
      env.CPREC_CLICKHOUSE_TIMEOUT_MS,
      'CPREC_CLICKHOUSE_TIMEOUT_MS',
      300_000,
    ),
    valueMode: env.CPREC_CLICKHOUSE_VALUE_MODE === 'inline' ? 'inline' : 'auto',
  };
  const replicas = (env.CPREC_CLICKHOUSE_REPLICAS ?? '')
    .split(',')
    .map((u) => u.trim())
    .filter(Boolean);
  if (replicas.length > 0) settings.replicas = replicas;
  validateSettings(settings);
  return settings;
}

function validateUrl(text: string): void {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error(`ClickHouse URL ${JSON.stringify(text)} is not a valid URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new Error(`ClickHouse URL ${JSON.stringify(text)} must use http or https`);
  }
}

export function validateSettings(settings: ClickHouseSettings): void {
  validateUrl(settings.url);
  for (const replica of settings.replicas ?? []) validateUrl(replica);
  if (!isValidIdentifier(settings.database)) {
    throw new Error(
      `ClickHouse database ${JSON.stringify(settings.database)} must match [A-Za-z_][A-Za-z0-9_]*`,
    );
  }
}

function parsePositiveInt(raw: string | undefined, name: string, fallback: number): number {
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0)
    throw new Error(`${name} must be a positive integer, got ${JSON.stringify(raw)}`);
  return value;
}
