import { join } from 'node:path';
import { loadMigrations } from './files';
import { replicatedStatement, statementScope, stripSqlComments } from './replicated';

describe('replicated migrations: the same files on one server and on a replicated shard', () => {
  it('rewrites a MergeTree-family engine with its ZooKeeper path and the replica macro', () => {
    const statement = `-- comment; with a semicolon-like text
CREATE TABLE IF NOT EXISTS interactions (
    event_id String, -- the id
    ingest_version UInt64
) ENGINE = ReplacingMergeTree(ingest_version)
PARTITION BY toYYYYMM(ts)
ORDER BY (domain, user_id, ts_ms, event_id)`;
    const out = replicatedStatement(statement, 'cprec');
    expect(out).toContain(
      "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/cprec.interactions', '{replica}', ingest_version)",
    );
    expect(out).toContain('PARTITION BY toYYYYMM(ts)');
    expect(out).not.toContain('--');
  });

  it('handles engines without arguments, qualified and backquoted names', () => {
    expect(replicatedStatement('CREATE TABLE t (v UInt64) ENGINE = MergeTree ORDER BY v', 'db')).toBe(
      "CREATE TABLE t (v UInt64) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/db.t', '{replica}') ORDER BY v",
    );
    expect(
      replicatedStatement(
        'CREATE TABLE IF NOT EXISTS `d2`.`s` (v UInt32) ENGINE = ReplacingMergeTree ORDER BY v',
        'db',
      ),
    ).toContain("ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/d2.s', '{replica}') ORDER BY v");
  });

  it('leaves other statements, other engines and replicated tables alone', () => {
    const alter = 'ALTER TABLE serving_events ADD COLUMN domain String AFTER event';
    expect(replicatedStatement(alter, 'db')).toBe(alter);
    const memory = 'CREATE TABLE m (v UInt8) ENGINE = Memory';
    expect(replicatedStatement(memory, 'db')).toBe(memory);
    const already = "CREATE TABLE r (v UInt8) ENGINE = ReplicatedMergeTree('/p', '{replica}') ORDER BY v";
    expect(replicatedStatement(already, 'db')).toBe(already);
  });

  it('refuses engine arguments it cannot rewrite safely, and names it cannot validate', () => {
    expect(() =>
      replicatedStatement(
        'CREATE TABLE t (v UInt8) ENGINE = ReplacingMergeTree(toUInt64(v)) ORDER BY v',
        'db',
      ),
    ).toThrow(/parentheses/);
    expect(() =>
      replicatedStatement('CREATE TABLE t (v UInt8) ENGINE = MergeTree ORDER BY v', 'bad-db'),
    ).toThrow();
  });

  it('runs catalogue DDL on every replica and everything else once', () => {
    expect(
      statementScope('-- note\nCREATE TABLE IF NOT EXISTS x (v UInt8) ENGINE = MergeTree ORDER BY v'),
    ).toBe('every-replica');
    expect(statementScope('/* why */ DROP TABLE IF EXISTS x')).toBe('every-replica');
    expect(statementScope('ALTER TABLE x ADD COLUMN y String')).toBe('once');
    expect(statementScope("INSERT INTO x VALUES ('CREATE TABLE')")).toBe('once');
  });

  it('keeps quoted text that looks like a comment', () => {
    expect(stripSqlComments("SELECT '-- not a comment' -- a comment")).toBe("SELECT '-- not a comment'");
  });

  it('every shipped migration has a replicated form: each MergeTree table rewritten, nothing else', async () => {
    const migrations = await loadMigrations(join(__dirname, '..', '..', 'migrations'));
    let tables = 0;
    for (const migration of migrations)
      for (const statement of migration.statements) {
        const out = replicatedStatement(statement, 'cprec');
        if (/^CREATE\s+TABLE/i.test(stripSqlComments(statement))) {
          tables++;
          expect(out).toMatch(
            /ENGINE = Replicated\w*MergeTree\('\/clickhouse\/tables\/\{shard\}\/cprec\.\w+', '\{replica\}'/,
          );
        } else expect(out).toBe(statement);
      }
    expect(tables).toBeGreaterThanOrEqual(15);
  });
});
