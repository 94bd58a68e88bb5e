import { sqlIdentifier, sqlLiteral, SqlValue } from './literal';

/**
 * A piece of SQL with its values kept apart from its text until it is rendered. Rendering is the
 * single point that decides how values reach the server: inlined as literals (ClickHouse 18.16,
 * which has no query parameters) or sent as query parameters (servers that have them). Call
 * sites never concatenate values into SQL themselves.
 */
export class SqlFragment {
  constructor(
    readonly strings: readonly string[],
    readonly values: readonly SqlPart[],
  ) {
    if (strings.length !== values.length + 1) {
      throw new Error('SqlFragment needs exactly one more string than values');
    }
  }
}

export type SqlPart = SqlValue | SqlFragment;

/** Tagged template: sql`SELECT * FROM ${ident('t')} WHERE id = ${id}`. */
export function sql(strings: TemplateStringsArray, ...values: SqlPart[]): SqlFragment {
  return new SqlFragment([...strings], values);
}

/** Trusted SQL text with no values (constant statements, migration files). */
export function rawSql(text: string): SqlFragment {
  return new SqlFragment([text], []);
}

/** A validated, backquoted identifier; `ident('db', 'table')` gives `db`.`table`. */
export function ident(...parts: string[]): SqlFragment {
  return rawSql(sqlIdentifier(...parts));
}

export function joinSql(parts: readonly SqlFragment[], separator = ', '): SqlFragment {
  if (parts.length === 0) return rawSql('');
  const strings: string[] = [''];
  const values: SqlPart[] = [];
  parts.forEach((part, i) => {
    if (i > 0) strings[strings.length - 1] += separator;
    values.push(part);
    strings.push('');
  });
  return new SqlFragment(strings, values);
}

export type ValueMode = 'inline' | 'params';

export interface RenderedSql {
  query: string;
  /** Only filled in `params` mode. */
  params: Record<string, string | string[]>;
}

/**
 * Renders a fragment. In `inline` mode every value becomes a literal via sqlLiteral. In `params`
 * mode strings and string arrays become typed placeholders ({p0:String}, {p1:Array(String)}) —
 * those are where size and escaping matter — while numbers, dates and the rest stay literals,
 * whose types then match inline mode exactly.
 */
export function renderSql(fragment: SqlFragment, mode: ValueMode = 'inline'): RenderedSql {
  const params: Record<string, string | string[]> = {};
  let counter = 0;
  const render = (f: SqlFragment): string => {
    let out = f.strings[0];
    f.values.forEach((value, i) => {
      out += renderPart(value) + f.strings[i + 1];
    });
    return out;
  };
  const renderPart = (value: SqlPart): string => {
    if (value instanceof SqlFragment) return render(value);
    if (mode === 'params') {
      if (typeof value === 'string') {
        sqlLiteral(value); // same validation as inline mode (e.g. unpaired surrogates)
        const name = `p${counter++}`;
        params[name] = value;
        return `{${name}:String}`;
      }
      if (
        Array.isArray(value) &&
        value.length > 0 &&
        value.every((v): v is string => typeof v === 'string')
      ) {
        sqlLiteral(value);
        const name = `p${counter++}`;
        params[name] = [...value];
        return `{${name}:Array(String)}`;
      }
    }
    return sqlLiteral(value as SqlValue);
  };
  return { query: render(fragment), params };
}
