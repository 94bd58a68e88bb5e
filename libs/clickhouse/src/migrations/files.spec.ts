import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DEFAULT_MIGRATIONS_DIR,
  loadMigrations,
  migrationChecksum,
  MigrationFileError,
  parseMigration,
  parseMigrationFileName,
  splitSqlStatements,
} from './files';

describe('parseMigrationFileName', () => {
  it('reads version and name', () => {
    expect(parseMigrationFileName('0001_raw_tables.sql')).toEqual({ version: 1, name: 'raw_tables' });
    expect(parseMigrationFileName('0120_x.sql')).toEqual({ version: 120, name: 'x' });
    expect(parseMigrationFileName('12345_big.sql')).toEqual({ version: 12345, name: 'big' });
  });

  it.each([
    '1_short.sql',
    '0001-dash.sql',
    '0001_Upper.sql',
    '0001_x.SQL',
    'abcd_x.sql',
    '0000_zero.sql',
    '0001_.sql',
  ])('rejects %s', (fileName) => {
    expect(() => parseMigrationFileName(fileName)).toThrow(MigrationFileError);
  });
});

describe('splitSqlStatements', () => {
  it('splits on semicolons and drops empty statements', () => {
    expect(splitSqlStatements('CREATE TABLE a (x UInt8) ENGINE = Memory;\n;\nSELECT 1;\n')).toEqual([
      'CREATE TABLE a (x UInt8) ENGINE = Memory',
      'SELECT 1',
    ]);
    expect(splitSqlStatements('SELECT 1')).toEqual(['SELECT 1']);
  });

  it('ignores semicolons inside strings, quoted identifiers and comments', () => {
    const text = [
      "INSERT INTO t VALUES ('a;b', 'it\\'s;', 'back\\\\');",
      'SELECT `weird;name`, "other;name" FROM t; -- trailing; comment',
      '/* block; comment */ SELECT 2;',
      '-- only a comment; here',
    ].join('\n');
    expect(splitSqlStatements(text)).toEqual([
      "INSERT INTO t VALUES ('a;b', 'it\\'s;', 'back\\\\')",
      'SELECT `weird;name`, "other;name" FROM t',
      '-- trailing; comment\n/* block; comment */ SELECT 2',
    ]);
  });

  it('keeps comment-only files empty', () => {
    expect(splitSqlStatements('-- nothing\n/* here */\n')).toEqual([]);
  });

  it('reports unterminated quotes and comments', () => {
    expect(() => splitSqlStatements("SELECT 'open")).toThrow(/unterminated ' quote/);
    expect(() => splitSqlStatements('SELECT 1 /* open')).toThrow(/unterminated/);
  });
});

describe('parseMigration and loadMigrations', () => {
  it('checksums ignore CRLF vs LF', () => {
    expect(migrationChecksum('SELECT 1;\r\n')).toBe(migrationChecksum('SELECT 1;\n'));
    expect(migrationChecksum('SELECT 1;')).not.toBe(migrationChecksum('SELECT 2;'));
  });

  it('rejects a file without statements', () => {
    expect(() => parseMigration('0001_empty.sql', '-- nothing')).toThrow(/no SQL statement/);
  });

  it('loads a directory in version order and rejects duplicate versions', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cprec-migrations-'));
    try {
      await writeFile(join(dir, '0010_later.sql'), 'SELECT 10;');
      await writeFile(join(dir, '0002_first.sql'), 'SELECT 2; SELECT 3;');
      await writeFile(join(dir, 'README.md'), 'not a migration');
      const loaded = await loadMigrations(dir);
      expect(loaded.map((m) => [m.version, m.name, m.statements.length])).toEqual([
        [2, 'first', 2],
        [10, 'later', 1],
      ]);
      await writeFile(join(dir, '002_dup.sql'), 'SELECT 1;');
      await expect(loadMigrations(dir)).rejects.toThrow(MigrationFileError);
      await rm(join(dir, '002_dup.sql'));
      await writeFile(join(dir, '00002_dup.sql'), 'SELECT 1;');
      await expect(loadMigrations(dir)).rejects.toThrow(/share version 2/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('parses the shipped migrations', async () => {
    const shipped = await loadMigrations(DEFAULT_MIGRATIONS_DIR);
    expect(shipped[0]).toMatchObject({ version: 1, name: 'raw_interactions_and_items' });
    expect(shipped[0].statements.map((s) => /CREATE TABLE IF NOT EXISTS (\w+)/.exec(s)?.[1])).toEqual([
      'interactions',
      'items',
    ]);
  });
});
