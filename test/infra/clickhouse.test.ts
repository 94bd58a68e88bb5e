import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  BakeryLock,
  ClickHouse,
  ClickHouseSettings,
  createClickHouse,
  ensureDatabase,
  ident,
  InteractionRepository,
  ItemRepository,
  listAppliedMigrations,
  lockTableDdl,
  MIGRATIONS_LOCK_TABLE,
  migrationsTableDdl,
  loadMigrations,
  MigrationChecksumError,
  runMigrations,
  sql,
  SqlValue,
} from '@cprec/clickhouse';
import { pollUntil, requireInfra, testClickHouseSettings, uniqueName } from '../support/infra';

jest.setTimeout(180_000);

const REPO_ROOT = resolve(__dirname, '../..');
const databases: string[] = [];

function freshDatabase(label: string): ClickHouseSettings {
  const settings = testClickHouseSettings(uniqueName(`cprec_it_${label}`));
  databases.push(settings.database);
  return settings;
}

async function tableNames(ch: ClickHouse, database: string): Promise<string[]> {
  const rows = await ch.query<{ name: string }>(
    sql`SELECT name FROM system.tables WHERE database = ${database} ORDER BY name`,
  );
  return rows.map((r) => r.name);
}

/** Runs `infra/local/bootstrap.ts migrate` as a separate OS process; resolves with its JSON result. */
function migrateInChildProcess(
  settings: ClickHouseSettings,
  directory: string,
): Promise<{ applied: number[] }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(
      process.execPath,
      [
        '-r',
        'ts-node/register/transpile-only',
        '-r',
        'tsconfig-paths/register',
        join(REPO_ROOT, 'infra/local/bootstrap.ts'),
        'migrate',
        '--database',
        settings.database,
        '--dir',
        directory,
      ],
      {
        cwd: REPO_ROOT,
        env: { ...process.env, CPREC_CLICKHOUSE_URL: settings.url },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code !== 0) reject(new Error(`migrate process exited with ${code}: ${stderr}`));
      else resolvePromise(JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as { applied: number[] });
    });
  });
}

let admin: ClickHouse;

beforeAll(async () => {
  await requireInfra({ clickhouse: true });
  admin = createClickHouse({ ...testClickHouseSettings('default') });
});

afterAll(async () => {
  for (const database of databases) {
    await admin?.command(sql`DROP DATABASE IF EXISTS ${ident(database)}`).catch(() => undefined);
  }
  await admin?.close();
});

describe('migrations (real ClickHouse)', () => {
  it('apply on an empty database, record themselves, and are idempotent on a second run', async () => {
    const settings = freshDatabase('migrate');
    const shipped = await loadMigrations(join(REPO_ROOT, 'libs/clickhouse/migrations'));

    const first = await runMigrations(settings);
    expect(first.applied.map((m) => m.version)).toEqual(shipped.map((m) => m.version));
    expect(first.alreadyApplied).toBe(0);
    expect(await tableNames(admin, settings.database)).toEqual(
      expect.arrayContaining(['interactions', 'items', 'schema_migrations', 'schema_migrations_lock']),
    );

    const second = await runMigrations(settings);
    expect(second.applied).toEqual([]);
    expect(second.alreadyApplied).toBe(shipped.length);

    const ch = createClickHouse(settings);
    try {
      const recorded = await listAppliedMigrations(ch);
      expect(recorded.map((m) => [m.version, m.name, m.checksum])).toEqual(
        shipped.map((m) => [m.version, m.name, m.checksum]),
      );
    } finally {
      await ch.close();
    }
  });

  it('apply each migration exactly once when runners race (two processes and one in-process)', async () => {
    const settings = freshDatabase('race');
    const dir = await mkdtemp(join(tmpdir(), 'cprec-race-'));
    const ch = createClickHouse(settings);
    try {
      // Plain INSERTs are not idempotent: a migration applied twice leaves two rows.
      await writeFile(
        join(dir, '0001_create_log.sql'),
        'CREATE TABLE applied_log (migration UInt32) ENGINE = MergeTree ORDER BY migration;\nINSERT INTO applied_log VALUES (1);\n',
      );
      await writeFile(
        join(dir, '0002_slow_insert.sql'),
        'SELECT sleep(1);\nINSERT INTO applied_log VALUES (2);\n',
      );
      await writeFile(join(dir, '0003_another.sql'), 'INSERT INTO applied_log VALUES (3);\n');

      // The test takes the migrations lock itself first, so all three runners are provably
      // waiting at the same moment, then lets them race for it.
      await ensureDatabase(settings);
      await ch.command(migrationsTableDdl(settings.database));
      await ch.command(lockTableDdl(settings.database, MIGRATIONS_LOCK_TABLE));
      const gate = new BakeryLock(ch, settings.database, MIGRATIONS_LOCK_TABLE);
      await gate.acquire();
      const runners = Promise.all([
        migrateInChildProcess(settings, dir),
        migrateInChildProcess(settings, dir),
        runMigrations(settings, { directory: dir }).then((r) => ({
          applied: r.applied.map((m) => m.version),
        })),
      ]);
      const waiting = await pollUntil(
        () =>
          ch.query<{ n: string }>(
            sql`SELECT count() AS n FROM ${ident(MIGRATIONS_LOCK_TABLE)} FINAL WHERE ticket > 0 AND token != ${gate.token}`,
          ),
        (rows) => Number(rows[0]?.n) === 3,
        'three runners queued on the lock',
        120_000,
      );
      expect(Number(waiting[0]?.n)).toBe(3);
      expect(await listAppliedMigrations(ch)).toEqual([]);
      await gate.release();

      const appliedBy = (await runners).map((r) => r.applied);
      expect(appliedBy.flat().sort()).toEqual([1, 2, 3]);
      // The first runner through the lock applies everything; the others find nothing to do.
      expect(appliedBy.filter((a) => a.length > 0)).toHaveLength(1);

      const log = await ch.query<{ migration: number; n: string }>(
        sql`SELECT migration, count() AS n FROM applied_log GROUP BY migration ORDER BY migration`,
      );
      expect(log.map((r) => [Number(r.migration), Number(r.n)])).toEqual([
        [1, 1],
        [2, 1],
        [3, 1],
      ]);
      expect((await listAppliedMigrations(ch)).map((m) => m.version)).toEqual([1, 2, 3]);
    } finally {
      await ch.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuse to run when an applied migration file was edited', async () => {
    const settings = freshDatabase('checksum');
    const dir = await mkdtemp(join(tmpdir(), 'cprec-checksum-'));
    try {
      await writeFile(join(dir, '0001_t.sql'), 'CREATE TABLE t (x UInt8) ENGINE = Memory;');
      await runMigrations(settings, { directory: dir });
      await writeFile(join(dir, '0001_t.sql'), 'CREATE TABLE t (x UInt16) ENGINE = Memory;');
      await expect(runMigrations(settings, { directory: dir })).rejects.toThrow(MigrationChecksumError);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('client, literals and repositories (real ClickHouse)', () => {
  let settings: ClickHouseSettings;
  let ch: ClickHouse;

  beforeAll(async () => {
    settings = freshDatabase('rw');
    await runMigrations(settings);
    ch = createClickHouse(settings);
  });

  afterAll(async () => {
    await ch?.close();
  });

  const adversarialStrings = [
    '',
    "it's",
    "'; DROP TABLE interactions; --",
    "back\\slash \\' \\\\",
    'line\nbreak\r\ttab',
    'nul\0byte',
    'ctrl\u0001\u001f\u007f',
    'Ünïcødé 日本語 😀 \u2028',
    '{p0:String} ? $1 %s',
    '-- comment /* block */',
  ];

  it('round-trips every adversarial string and number through sqlLiteral', async () => {
    for (const value of adversarialStrings) {
      const [row] = await ch.query<{ v: string }>(sql`SELECT ${value} AS v`);
      expect(row.v).toBe(value);
    }
    const numbers: Array<[SqlValue, string]> = [
      [-5, '-5'],
      [1.5, '1.5'],
      [1e21, '1e21'],
      [18446744073709551615n, '18446744073709551615'],
      [true, '1'],
    ];
    for (const [value, expected] of numbers) {
      const [row] = await ch.query<{ v: string }>(sql`SELECT toString(${value}) AS v`);
      expect(row.v).toBe(expected);
    }
    const [diff] = await ch.query<{ v: string }>(sql`SELECT 10 -${-5} AS v`);
    expect(Number(diff.v)).toBe(15);
    const [arr] = await ch.query<{ v: string[] }>(sql`SELECT ${adversarialStrings} AS v`);
    expect(arr.v).toEqual(adversarialStrings);
    const [date] = await ch.query<{ v: string }>(
      sql`SELECT toString(${new Date(Date.UTC(2024, 1, 29, 12, 30, 5))}) AS v`,
    );
    expect(date.v).toBe('2024-02-29 12:30:05');
  });

  it('writes interactions through the repository and reads them back deduplicated', async () => {
    const repo = new InteractionRepository(ch);
    const events = adversarialStrings.map((title, i) => ({
      event_id: `e${i}`,
      user_id: i % 2 === 0 ? "user'a" : 'user\\b',
      item_id: `item-${i}`,
      domain: 'games',
      ts_ms: 1_700_000_000_123 + i * 1000,
      seq: i,
      platform: 'it',
      title,
    }));
    await repo.insertBatch(events, 1_700_000_100_000);
    // At-least-once delivery: the same events again, later.
    await repo.insertBatch(events.slice(0, 4), 1_700_000_200_000);

    expect(await repo.countDistinct({ domain: 'games' })).toBe(events.length);
    const stored = await repo.readDeduplicated({ domain: 'games', userIds: ["user'a", 'user\\b'] });
    expect(stored).toHaveLength(events.length);
    const byId = new Map(stored.map((s) => [s.event_id, s]));
    for (const e of events) {
      expect(byId.get(e.event_id)).toMatchObject({ ...e });
    }
    expect(byId.get('e0')?.ingested_at_ms).toBe(1_700_000_200_000);
    expect(byId.get('e9')?.ingested_at_ms).toBe(1_700_000_100_000);
    expect(
      await repo.readDeduplicated({ domain: 'games', userIds: ["user'a"], fromTsMs: 1_700_000_002_123 }, 2),
    ).toEqual(stored.filter((s) => s.user_id === "user'a" && s.ts_ms >= 1_700_000_002_123).slice(0, 2));
    expect(await repo.countDistinct({ userIds: [] })).toBe(0);
  });

  it('keeps the newest version of an item', async () => {
    const items = new ItemRepository(ch);
    await items.upsertBatch([
      {
        item_id: 'i1',
        domain: 'books',
        title: 'Old "title"',
        attributes: { year: 1999 },
        updated_at_ms: 1000,
      },
      { item_id: 'i2', domain: 'books', title: 'Other', updated_at_ms: 1000 },
    ]);
    await items.upsertBatch([
      {
        item_id: 'i1',
        domain: 'books',
        title: "New 'title'\n",
        attributes: { year: 2001, hardcover: true },
        updated_at_ms: 2000,
      },
    ]);
    expect(await items.get('books', ['i1'])).toEqual([
      {
        item_id: 'i1',
        domain: 'books',
        title: "New 'title'\n",
        attributes: { year: 2001, hardcover: true },
        updated_at_ms: 2000,
      },
    ]);
    expect(await items.count('books')).toBe(2);
    expect((await items.get('books')).map((i) => i.item_id)).toEqual(['i1', 'i2']);
  });

  it('creates a database idempotently', async () => {
    await ensureDatabase(settings);
    await ensureDatabase(settings);
    const rows = await admin.query<{ name: string }>(
      sql`SELECT name FROM system.databases WHERE name = ${settings.database}`,
    );
    expect(rows).toHaveLength(1);
  });
});
