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
}

export const DEFAULT_CLICKHOUSE_URL = 'http://127.0.0.1:18123';
export const DEFAULT_CLICKHOUSE_DATABASE = 'cprec';

export function clickHouseSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): ClickHouseSettings {
  const settings: ClickHouseSettings = {
    url: env.CPREC_CLICKHOUSE_URL ?? DEFAULT_CLICKHOUSE_URL,
    database: env.CPREC_CLICKHOUSE_DB ?? DEFAULT_CLICKHOUSE_DATABASE,
    username: env.CPREC_CLICKHOUSE_USER ?? 'default',
    password: env.CPREC_CLICKHOUSE_PASSWORD ?? '',
    requestTimeoutMs: parsePositiveInt(
      env.CPREC_CLICKHOUSE_TIMEOUT_MS,
      'CPREC_CLICKHOUSE_TIMEOUT_MS',
      300_000,
    ),
    valueMode: env.CPREC_CLICKHOUSE_VALUE_MODE === 'inline' ? 'inline' : 'auto',
  };
  validateSettings(settings);
  return settings;
}

export function validateSettings(settings: ClickHouseSettings): void {
  let url: URL;
  try {
    url = new URL(settings.url);
  } catch {
    throw new Error(`ClickHouse URL ${JSON.stringify(settings.url)} is not a valid URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new Error(`ClickHouse URL ${JSON.stringify(settings.url)} must use http or https`);
  }
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
