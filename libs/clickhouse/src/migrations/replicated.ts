import { sqlIdentifier, sqlLiteral } from '../literal';
import { MigrationFileError } from './files';

/**
 * The same migration files serve one server and a replicated shard. Files name the plain engines
 * (`ENGINE = ReplacingMergeTree(version)`); with replicas (CPREC_CLICKHOUSE_REPLICAS) the runner
 * rewrites each CREATE TABLE's engine to its Replicated form, with the table's ZooKeeper path and
 * the server's own `{replica}` macro:
 *
 *   ReplacingMergeTree(version)
 *   → ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/<db>.<table>', '{replica}', version)
 *
 * Files stay byte for byte what was applied (their recorded checksums hold on both layouts), and a
 * new migration is written once, for both. What runs where (`statementScope`): DDL that changes
 * one server's catalogue (CREATE/DROP/RENAME/ATTACH/DETACH) runs on every replica; everything
 * else once — ALTERs of replicated tables and INSERTs reach the other replicas through
 * ZooKeeper's replication log.
 */

/** The ZooKeeper path of a replicated table: one shard (`{shard}` macro), then database.table. */
export function replicatedTablePath(database: string, table: string): string {
  return `/clickhouse/tables/{shard}/${database}.${table}`;
}

/** The statement without comments (quotes respected), whitespace runs collapsed at the edges. */
export function stripSqlComments(statement: string): string {
  let out = '';
  let i = 0;
  while (i < statement.length) {
    const ch = statement[i];
    const next = statement[i + 1];
    if (ch === '-' && next === '-') {
      const end = statement.indexOf('\n', i);
      i = end === -1 ? statement.length : end;
    } else if (ch === '/' && next === '*') {
      const end = statement.indexOf('*/', i + 2);
      if (end === -1) throw new MigrationFileError('unterminated /* comment');
      out += ' ';
      i = end + 2;
    } else if (ch === "'" || ch === '`' || ch === '"') {
      let j = i + 1;
      while (j < statement.length && statement[j] !== ch) j += statement[j] === '\\' ? 2 : 1;
      if (j >= statement.length) throw new MigrationFileError(`unterminated ${ch} quote at offset ${i}`);
      out += statement.slice(i, j + 1);
      i = j + 1;
    } else {
      out += ch;
      i += 1;
    }
  }
  return out.trim();
}

/** `every-replica`: changes one server's catalogue; `once`: replicated by ClickHouse itself. */
export type StatementScope = 'every-replica' | 'once';

export function statementScope(statement: string): StatementScope {
  const head = stripSqlComments(statement);
  return /^(CREATE|DROP|RENAME|ATTACH|DETACH)\b/i.test(head) ? 'every-replica' : 'once';
}

const CREATE_TABLE =
  /^CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?((?:`[^`]+`|[A-Za-z_][A-Za-z0-9_]*)(?:\.(?:`[^`]+`|[A-Za-z_][A-Za-z0-9_]*))?)/i;
// The engine clause of a MergeTree-family table; engine arguments of that family are column
// names or simple expressions without parentheses in cprec's files (checked: else refused).
const ENGINE = /\bENGINE\s*=\s*([A-Za-z]*MergeTree)\b(\s*\(([^()]*)\))?(?!\s*\()/i;

/**
 * A statement as it runs on a replicated shard: CREATE TABLE of a MergeTree-family engine gets its
 * Replicated engine (ZooKeeper path from `database` and the table's name); every other statement
 * (and a table already Replicated, or of another engine) is returned unchanged.
 */
export function replicatedStatement(statement: string, database: string): string {
  const text = stripSqlComments(statement);
  const create = CREATE_TABLE.exec(text);
  if (!create) return statement;
  const engine = ENGINE.exec(text);
  if (!engine) {
    if (/\bENGINE\s*=\s*[A-Za-z]*MergeTree\s*\(/i.test(text))
      throw new MigrationFileError(
        `cannot replicate ${create[1]}: its engine arguments hold parentheses; write them as plain columns`,
      );
    return statement;
  }
  const [clause, name, , args] = engine;
  if (/^Replicated/i.test(name)) return statement;
  const parts = create[1].split('.').map((p) => p.replace(/`/g, ''));
  const table = parts[parts.length - 1];
  const db = parts.length > 1 ? parts[0] : database;
  sqlIdentifier(db, table); // validates both names
  const replicated = [sqlLiteral(replicatedTablePath(db, table)), sqlLiteral('{replica}')];
  if (args !== undefined && args.trim() !== '') replicated.push(args.trim());
  return text.replace(clause, `ENGINE = Replicated${name}(${replicated.join(', ')})`);
}
