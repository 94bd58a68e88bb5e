/**
 * The one place where JavaScript values become ClickHouse SQL text.
 *
 * ClickHouse 18.16 has no query parameters, so values must be spliced into SQL as literals. This
 * module is hand-written because no maintained JS library targets ClickHouse's literal grammar
 * (it differs from MySQL/Postgres: backslash escapes inside '...', backquoted identifiers).
 * Every rule below is pinned by literal.spec.ts and round-tripped against a real server in
 * test/infra/clickhouse.test.ts.
 */

export type SqlScalar = string | number | bigint | boolean | Date | null;
export type SqlValue = SqlScalar | readonly SqlValue[];

export class SqlLiteralError extends TypeError {
  override readonly name = 'SqlLiteralError';
}

/** Largest value a ClickHouse `DateTime` (UInt32 seconds) can hold. */
const MAX_DATETIME_SECONDS = 4294967295;

const NAMED_ESCAPES: Readonly<Record<string, string>> = {
  '\\': '\\\\',
  "'": "\\'",
  '\0': '\\0',
  '\b': '\\b',
  '\f': '\\f',
  '\n': '\\n',
  '\r': '\\r',
  '\t': '\\t',
};

/** Backslash, quote and every C0 control character plus DEL. */
// eslint-disable-next-line no-control-regex
const NEEDS_ESCAPE = /[\\'\u0000-\u001f\u007f]/g;

/** A high surrogate not followed by a low one, or a low surrogate not preceded by a high one. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function escapeChar(ch: string): string {
  const named = NAMED_ESCAPES[ch];
  if (named !== undefined) return named;
  return '\\x' + ch.charCodeAt(0).toString(16).padStart(2, '0');
}

/**
 * Quotes a string as a ClickHouse string literal. Non-ASCII text passes through unchanged (the
 * HTTP body is UTF-8); strings with unpaired UTF-16 surrogates are rejected because they cannot be
 * encoded as UTF-8 and would silently become U+FFFD.
 */
export function sqlString(value: string): string {
  if (LONE_SURROGATE.test(value)) {
    throw new SqlLiteralError('string contains an unpaired UTF-16 surrogate and cannot be encoded as UTF-8');
  }
  return "'" + value.replace(NEEDS_ESCAPE, escapeChar) + "'";
}

function sqlNumber(value: number): string {
  if (!Number.isFinite(value)) {
    throw new SqlLiteralError(`number ${String(value)} has no SQL literal (NaN and Infinity are rejected)`);
  }
  if (Object.is(value, -0)) return '0';
  // String() gives the shortest text that round-trips (e.g. 1e+21, 5e-324); ClickHouse parses it.
  // Negative numbers are parenthesised so `a - ${x}` can never become the comment `a --5`.
  const text = String(value);
  return value < 0 ? `(${text})` : text;
}

function sqlBigInt(value: bigint): string {
  return value < 0n ? `(${value.toString()})` : value.toString();
}

/** DateTime has second resolution; keep milliseconds in a separate UInt64 column. */
function sqlDate(value: Date): string {
  const ms = value.getTime();
  if (Number.isNaN(ms)) throw new SqlLiteralError('Invalid Date has no SQL literal');
  const seconds = Math.floor(ms / 1000);
  if (seconds < 0 || seconds > MAX_DATETIME_SECONDS) {
    throw new SqlLiteralError(
      `date ${value.toISOString()} is outside the DateTime range 1970-01-01..2106-02-07`,
    );
  }
  return `toDateTime(${seconds})`;
}

/**
 * Renders a value as a ClickHouse literal:
 * strings → '...' with backslash escapes; finite numbers and bigints → decimal text (negatives in
 * parentheses); booleans → 1/0 (18.16 has no Bool); null → NULL; Date → toDateTime(epochSeconds);
 * arrays → [a, b, ...] (recursively). Anything else (undefined, objects, functions, symbols) is a
 * programming error and throws.
 */
export function sqlLiteral(value: SqlValue): string {
  if (value === null) return 'NULL';
  switch (typeof value) {
    case 'string':
      return sqlString(value);
    case 'number':
      return sqlNumber(value);
    case 'bigint':
      return sqlBigInt(value);
    case 'boolean':
      return value ? '1' : '0';
    case 'object':
      if (value instanceof Date) return sqlDate(value);
      if (Array.isArray(value)) return '[' + value.map((v: SqlValue) => sqlLiteral(v)).join(', ') + ']';
      break;
    default:
      break;
  }
  throw new SqlLiteralError(`cannot render ${describe(value)} as a SQL literal`);
}

function describe(value: unknown): string {
  if (value === undefined) return 'undefined';
  if (typeof value === 'object' && value !== null)
    return `an object (${value.constructor?.name ?? 'null prototype'})`;
  return `a ${typeof value}`;
}

/** Plain identifiers only: letters, digits and underscores, not starting with a digit. */
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
const MAX_IDENTIFIER_LENGTH = 128;

export function isValidIdentifier(name: string): boolean {
  return typeof name === 'string' && name.length <= MAX_IDENTIFIER_LENGTH && IDENTIFIER.test(name);
}

/**
 * Validates a database, table or column name and returns it backquoted. We validate rather than
 * escape: every name in cprec is ours, so an unusual name is a bug worth surfacing.
 * `sqlIdentifier('db', 'table')` renders the qualified name `db`.`table`.
 */
export function sqlIdentifier(...parts: string[]): string {
  if (parts.length === 0) throw new SqlLiteralError('sqlIdentifier needs at least one name');
  return parts
    .map((part) => {
      if (!isValidIdentifier(part)) {
        throw new SqlLiteralError(
          `invalid identifier ${JSON.stringify(part)}: use 1-${MAX_IDENTIFIER_LENGTH} characters [A-Za-z0-9_], not starting with a digit`,
        );
      }
      return '`' + part + '`';
    })
    .join('.');
}
