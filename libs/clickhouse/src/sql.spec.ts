import { ident, joinSql, rawSql, renderSql, sql } from './sql';
import { parseServerVersion, supportsQueryParams } from './client';

describe('sql fragments', () => {
  it('inlines values as literals and identifiers as backquoted names', () => {
    const id = "x'; DROP TABLE t; --";
    const rendered = renderSql(sql`SELECT * FROM ${ident('db', 't')} WHERE id = ${id} AND n > ${-3}`);
    expect(rendered.query).toBe("SELECT * FROM `db`.`t` WHERE id = 'x\\'; DROP TABLE t; --' AND n > (-3)");
    expect(rendered.params).toEqual({});
  });

  it('nests fragments and joins them', () => {
    const conditions = [sql`a = ${1}`, sql`b = ${'two'}`, rawSql('c IS NULL')];
    const rendered = renderSql(sql`SELECT 1 WHERE ${joinSql(conditions, ' AND ')}`);
    expect(rendered.query).toBe("SELECT 1 WHERE a = 1 AND b = 'two' AND c IS NULL");
    expect(renderSql(joinSql([])).query).toBe('');
  });

  it('in params mode sends strings and string arrays as typed parameters, other values inline', () => {
    const rendered = renderSql(
      sql`SELECT ${'a'} AS s, ${['x', 'y']} AS arr, ${5} AS n, ${new Date(0)} AS d, ${[]} AS e WHERE k = ${"it's"}`,
      'params',
    );
    expect(rendered.query).toBe(
      'SELECT {p0:String} AS s, {p1:Array(String)} AS arr, 5 AS n, toDateTime(0) AS d, [] AS e WHERE k = {p2:String}',
    );
    expect(rendered.params).toEqual({ p0: 'a', p1: ['x', 'y'], p2: "it's" });
  });

  it('validates strings the same way in params mode', () => {
    expect(() => renderSql(sql`SELECT ${'\uD800'}`, 'params')).toThrow(/surrogate/);
  });

  it('rejects invalid identifiers when the fragment is built', () => {
    expect(() => ident('t; DROP')).toThrow(/invalid identifier/);
  });
});

describe('server version', () => {
  it('parses versions and knows which have query parameters', () => {
    expect(parseServerVersion('18.16.1')).toEqual({ text: '18.16.1', major: 18, minor: 16 });
    expect(supportsQueryParams(parseServerVersion('18.16.1'))).toBe(false);
    expect(supportsQueryParams(parseServerVersion('19.14.3.3'))).toBe(false);
    expect(supportsQueryParams(parseServerVersion('19.15.2.2'))).toBe(true);
    expect(supportsQueryParams(parseServerVersion('24.8.4.13'))).toBe(true);
    expect(() => parseServerVersion('unknown')).toThrow(/unrecognised/);
  });
});
