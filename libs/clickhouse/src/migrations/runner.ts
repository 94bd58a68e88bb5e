import { hostname } from 'node:os';
import { ClickHouse, createClickHouse, ensureDatabase } from '../client';
import { ClickHouseSettings } from '../settings';
import { ident, rawSql, renderSql, sql, SqlFragment } from '../sql';
import { DEFAULT_MIGRATIONS_DIR, loadMigrations, MigrationFile } from './files';
import { BakeryLock, lockTableDdl, LockOptions } from './lock';
import { replicatedStatement, statementScope } from './replicated';

export const MIGRATIONS_TABLE = 'schema_migrations';
export const MIGRATIONS_LOCK_TABLE = 'schema_migrations_lock';

export interface AppliedMigration {
  version: number;
  name: string;
  checksum: string;
  applied_at: string;
  applied_by: string;
}

export interface MigrateOptions {
  /** Directory of NNNN_name.sql files; defaults to libs/clickhouse/migrations. */
  directory?: string;
  /** Already-loaded migrations (takes precedence over directory). */
  migrations?: MigrationFile[];
  lock?: LockOptions;
  /** Progress lines (defaults to silence). */
  log?: (line: string) => void;
}

export interface MigrateResult {
  applied: MigrationFile[];
  alreadyApplied: number;
}

export class MigrationChecksumError extends Error {
  override readonly name = 'MigrationChecksumError';
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Bootstrap DDL may race with another runner doing the same (18.16 refuses a CREATE while a
 * concurrent CREATE of the same name is in flight, even with IF NOT EXISTS); retry it briefly.
 */
async function idempotentDdl(run: () => Promise<void>): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await run();
      return;
    } catch (err) {
      const message = (err as Error).message ?? '';
      const raced = /already exists|right now|is being (created|dropped)/i.test(message);
      if (!raced || attempt >= 10) throw err;
      await sleep(50 * (attempt + 1));
    }
  }
}

export function migrationsTableDdl(database: string): SqlFragment {
  return sql`CREATE TABLE IF NOT EXISTS ${ident(database, MIGRATIONS_TABLE)} (
  version UInt32,
  name String,
  checksum String,
  applied_at DateTime,
  applied_by String,
  duration_ms UInt64
) ENGINE = ReplacingMergeTree
ORDER BY version`;
}

export async function listAppliedMigrations(
  ch: ClickHouse,
  database = ch.database,
): Promise<AppliedMigration[]> {
  const rows = await ch.query<AppliedMigration>(
    sql`SELECT version, name, checksum, toString(applied_at) AS applied_at, applied_by
FROM ${ident(database, MIGRATIONS_TABLE)} FINAL ORDER BY version`,
  );
  return rows.map((r) => ({ ...r, version: Number(r.version) }));
}

/**
 * Applies every migration not yet recorded in schema_migrations, in version order, each exactly
 * once even when several processes run this at the same time: the whole check-and-apply runs
 * under a BakeryLock (see lock.ts). Refuses to continue when an applied file has changed.
 */
export async function runMigrations(
  settings: ClickHouseSettings,
  options: MigrateOptions = {},
): Promise<MigrateResult> {
  const migrations =
    options.migrations ?? (await loadMigrations(options.directory ?? DEFAULT_MIGRATIONS_DIR));
  if (settings.replicas !== undefined && settings.replicas.length > 0)
    return runReplicatedMigrations(settings, settings.replicas, migrations, options);
  const log = options.log ?? (() => undefined);
  await idempotentDdl(() => ensureDatabase(settings));
  const ch = createClickHouse(settings);
  const database = settings.database;
  try {
    await idempotentDdl(() => ch.command(migrationsTableDdl(database)));
    await idempotentDdl(() => ch.command(lockTableDdl(database, MIGRATIONS_LOCK_TABLE)));
    const lock = new BakeryLock(ch, database, MIGRATIONS_LOCK_TABLE, options.lock);
    await lock.acquire();
    try {
      const applied = new Map((await listAppliedMigrations(ch, database)).map((m) => [m.version, m]));
      assertUnchanged(applied, migrations, database);
      const pending = migrations.filter((m) => !applied.has(m.version));
      for (const migration of pending) {
        const started = Date.now();
        log(`applying ${migration.fileName} to ${database}`);
        for (const statement of migration.statements) {
          await ch.command(rawSql(statement));
        }
        await recordApplied(ch, database, migration, started);
      }
      return { applied: pending, alreadyApplied: migrations.length - pending.length };
    } finally {
      await lock.release();
    }
  } finally {
    await ch.close();
  }
}

export interface AwaitMigrationsOptions {
  directory?: string;
  migrations?: MigrationFile[];
  /** Give up after this long (default 120 s). */
  timeoutMs?: number;
  pollMs?: number;
  log?: (line: string) => void;
}

/**
 * For a read-only principal (the operator): waits until every migration is applied by someone
 * who may (infra/local/up, a writing service), without writing anything itself. Refuses a
 * database where an applied migration's file has changed, like runMigrations.
 */
export async function awaitMigrations(
  settings: ClickHouseSettings,
  options: AwaitMigrationsOptions = {},
): Promise<void> {
  const migrations =
    options.migrations ?? (await loadMigrations(options.directory ?? DEFAULT_MIGRATIONS_DIR));
  const timeoutMs = options.timeoutMs ?? 120_000;
  const deadline = Date.now() + timeoutMs;
  const ch = createClickHouse(settings);
  let reported = false;
  try {
    for (;;) {
      let pending: string;
      try {
        const applied = new Map((await listAppliedMigrations(ch)).map((m) => [m.version, m]));
        for (const migration of migrations) {
          const previous = applied.get(migration.version);
          if (previous && previous.checksum !== migration.checksum)
            throw new MigrationChecksumError(
              `migration ${migration.fileName} in ${settings.database} differs from the file ` +
                '(applied with another checksum); this version of the code does not match the database',
            );
        }
        const missing = migrations.filter((m) => !applied.has(m.version));
        if (missing.length === 0) return;
        pending = missing.map((m) => m.fileName).join(', ');
      } catch (err) {
        if (err instanceof MigrationChecksumError) throw err;
        pending = (err as Error).message;
      }
      if (Date.now() > deadline)
        throw new Error(
          `database ${settings.database} not migrated after ${timeoutMs} ms (${pending}); ` +
            'run bash infra/local/up, or start a service that migrates',
        );
      if (!reported) options.log?.(`waiting for migrations of ${settings.database}: ${pending}`);
      reported = true;
      await sleep(options.pollMs ?? 1_000);
    }
  } finally {
    await ch.close();
  }
}

/** Records a migration as applied (schema_migrations), with how long it took since `started`. */
async function recordApplied(
  ch: ClickHouse,
  database: string,
  migration: MigrationFile,
  started: number,
): Promise<void> {
  await ch.insertJsonEachRow(
    MIGRATIONS_TABLE,
    [
      {
        version: migration.version,
        name: migration.name,
        checksum: migration.checksum,
        applied_at: Math.floor(Date.now() / 1000),
        applied_by: `${hostname()}:${process.pid}`,
        duration_ms: Date.now() - started,
      },
    ],
    database,
  );
}

function assertUnchanged(
  applied: ReadonlyMap<number, AppliedMigration>,
  migrations: readonly MigrationFile[],
  database: string,
): void {
  for (const migration of migrations) {
    const previous = applied.get(migration.version);
    if (previous && previous.checksum !== migration.checksum)
      throw new MigrationChecksumError(
        `migration ${migration.fileName} changed after it was applied to ${database} ` +
          `(recorded checksum ${previous.checksum.slice(0, 12)}…, file ${migration.checksum.slice(0, 12)}…); ` +
          'add a new migration instead of editing an applied one',
      );
  }
}

/**
 * runMigrations on a replicated shard (settings.replicas; libs/clickhouse/src/migrations/
 * replicated.ts says what is rewritten and what runs where). The first replica coordinates:
 * the lock (a plain table there, so every runner's INSERT is seen by every later read, as the
 * bakery algorithm needs) and the record of what was applied (replicated, so any replica can
 * answer awaitMigrations). When this process's own replica already lists every migration, nothing
 * else is touched — a service starting while another replica is down still starts. Applying a
 * migration needs every replica up (its tables are created on each).
 */
async function runReplicatedMigrations(
  settings: ClickHouseSettings,
  replicas: readonly string[],
  migrations: readonly MigrationFile[],
  options: MigrateOptions,
): Promise<MigrateResult> {
  const log = options.log ?? (() => undefined);
  const database = settings.database;
  const own = createClickHouse({ ...settings, database: 'default' });
  try {
    const recorded = await own.query<{ n: string }>(
      sql`SELECT count() AS n FROM system.tables WHERE database = ${database} AND name = ${MIGRATIONS_TABLE}`,
    );
    if (Number(recorded[0]?.n ?? 0) === 0) throw new Error('not migrated yet');
    const applied = new Map((await listAppliedMigrations(own, database)).map((m) => [m.version, m]));
    assertUnchanged(applied, migrations, database);
    if (migrations.every((m) => applied.has(m.version)))
      return { applied: [], alreadyApplied: migrations.length };
  } catch (err) {
    if (err instanceof MigrationChecksumError) throw err;
    // Not migrated yet (no database or no schema_migrations here): the full path below.
  } finally {
    await own.close();
  }

  const handles = replicas.map((url) => ({ url, settings: { ...settings, url } }));
  const recordDdl = replicatedStatement(renderSql(migrationsTableDdl(database)).query, database);
  for (const replica of handles) {
    await idempotentDdl(() => ensureDatabase(replica.settings));
    const ch = createClickHouse(replica.settings);
    try {
      await idempotentDdl(() => ch.command(rawSql(recordDdl)));
    } finally {
      await ch.close();
    }
  }
  const opened = handles.map((replica) => createClickHouse(replica.settings));
  const coordinator = opened[0];
  try {
    await idempotentDdl(() => coordinator.command(lockTableDdl(database, MIGRATIONS_LOCK_TABLE)));
    const lock = new BakeryLock(coordinator, database, MIGRATIONS_LOCK_TABLE, options.lock);
    await lock.acquire();
    try {
      const applied = new Map(
        (await listAppliedMigrations(coordinator, database)).map((m) => [m.version, m]),
      );
      assertUnchanged(applied, migrations, database);
      const pending = migrations.filter((m) => !applied.has(m.version));
      for (const migration of pending) {
        const started = Date.now();
        log(`applying ${migration.fileName} to ${database} (${replicas.length} replicas)`);
        for (const statement of migration.statements) {
          const text = replicatedStatement(statement, database);
          if (statementScope(statement) === 'every-replica') {
            for (const ch of opened) await ch.command(rawSql(text));
          } else {
            await coordinator.command(rawSql(text));
          }
        }
        await recordApplied(coordinator, database, migration, started);
      }
      return { applied: pending, alreadyApplied: migrations.length - pending.length };
    } finally {
      await lock.release();
    }
  } finally {
    await Promise.all(opened.map((ch) => ch.close()));
  }
}
