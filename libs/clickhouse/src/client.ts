import { ClickHouseClient, createClient } from '@clickhouse/client';
import { ident, renderSql, sql, SqlFragment, ValueMode } from './sql';
import { ClickHouseSettings, validateSettings } from './settings';
import { sqlIdentifier } from './literal';

export interface ServerVersion {
  text: string;
  major: number;
  minor: number;
}

/** Query parameters ({name:Type}) arrived in ClickHouse 19.15 (HTTP interface). */
export function supportsQueryParams(version: ServerVersion): boolean {
  return version.major > 19 || (version.major === 19 && version.minor >= 15);
}

export function parseServerVersion(text: string): ServerVersion {
  const match = /^(\d+)\.(\d+)/.exec(text.trim());
  if (!match) throw new Error(`unrecognised ClickHouse version ${JSON.stringify(text)}`);
  return { text: text.trim(), major: Number(match[1]), minor: Number(match[2]) };
}

/**
 * cprec's ClickHouse handle: every statement goes through a SqlFragment, so values are either
 * escaped by sqlLiteral or sent as query parameters, decided here and nowhere else.
 */
export class ClickHouse {
  private valueModePromise: Promise<ValueMode> | undefined;

  constructor(
    readonly client: ClickHouseClient,
    readonly settings: ClickHouseSettings,
  ) {}

  get database(): string {
    return this.settings.database;
  }

  async serverVersion(): Promise<ServerVersion> {
    const result = await this.client.query({ query: 'SELECT version() AS version', format: 'JSONEachRow' });
    const rows = await result.json<{ version: string }>();
    return parseServerVersion(rows[0]?.version ?? '');
  }

  private valueMode(): Promise<ValueMode> {
    if (this.settings.valueMode === 'inline') return Promise.resolve('inline');
    this.valueModePromise ??= this.serverVersion().then(
      (v) => (supportsQueryParams(v) ? 'params' : 'inline'),
      (err: unknown) => {
        this.valueModePromise = undefined; // let the next call retry the probe
        throw err;
      },
    );
    return this.valueModePromise;
  }

  /** Runs a SELECT and returns its rows (JSONEachRow; 64-bit integers arrive as strings). */
  async query<Row>(statement: SqlFragment): Promise<Row[]> {
    const { query, params } = renderSql(statement, await this.valueMode());
    const result = await this.client.query({ query, query_params: params, format: 'JSONEachRow' });
    return result.json<Row>();
  }

  /** Runs a statement that returns no rows (DDL, INSERT ... SELECT, OPTIMIZE). */
  async command(statement: SqlFragment): Promise<void> {
    const { query, params } = renderSql(statement, await this.valueMode());
    await this.client.command({ query, query_params: params });
  }

  /**
   * Inserts rows as JSONEachRow into `table` of this handle's database (or `database`). Values
   * travel as JSON, not SQL, so no literal escaping is involved; names are validated.
   */
  async insertJsonEachRow<Row extends object>(
    table: string,
    rows: readonly Row[],
    database?: string,
  ): Promise<void> {
    if (rows.length === 0) return;
    await this.client.insert({
      table: sqlIdentifier(database ?? this.database, table),
      values: [...rows],
      format: 'JSONEachRow',
    });
  }

  async ping(): Promise<boolean> {
    const result = await this.client.ping();
    return result.success;
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}

/** Builds the client from settings (see clickHouseSettingsFromEnv). The database must exist. */
export function createClickHouse(settings: ClickHouseSettings): ClickHouse {
  validateSettings(settings);
  const client = createClient({
    url: settings.url,
    database: settings.database,
    username: settings.username,
    password: settings.password,
    request_timeout: settings.requestTimeoutMs,
    application: 'cprec',
    // Only settings 18.16 knows (it rejects unknown ones). Progress headers keep long queries'
    // HTTP connections from idling out behind proxies.
    clickhouse_settings: { send_progress_in_http_headers: 1, http_headers_progress_interval_ms: '10000' },
  });
  return new ClickHouse(client, settings);
}

/** CREATE DATABASE IF NOT EXISTS through a connection to `default` (the target may not exist yet). */
export async function ensureDatabase(settings: ClickHouseSettings): Promise<void> {
  const bootstrap = createClickHouse({ ...settings, database: 'default', valueMode: 'inline' });
  try {
    await bootstrap.command(sql`CREATE DATABASE IF NOT EXISTS ${ident(settings.database)}`);
  } finally {
    await bootstrap.close();
  }
}
