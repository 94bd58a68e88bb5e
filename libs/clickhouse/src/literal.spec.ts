import { isValidIdentifier, sqlIdentifier, sqlLiteral, SqlLiteralError, SqlValue } from './literal';

describe('sqlLiteral strings', () => {
  it.each<[string, string]>([
    ['', "''"],
    ['plain', "'plain'"],
    ["it's", "'it\\'s'"],
    ["''", "'\\'\\''"],
    ['back\\slash', "'back\\\\slash'"],
    ['\\', "'\\\\'"],
    ["\\'", "'\\\\\\''"],
    ['line\nbreak', "'line\\nbreak'"],
    ['cr\rlf', "'cr\\rlf'"],
    ['tab\there', "'tab\\there'"],
    ['nul\0byte', "'nul\\0byte'"],
    ['bell\u0007', "'bell\\x07'"],
    ['esc\u001b[0m', "'esc\\x1b[0m'"],
    ['del\u007f', "'del\\x7f'"],
    ['\b\f', "'\\b\\f'"],
    ['double "quotes" stay', '\'double "quotes" stay\''],
    ['`backticks` stay', "'`backticks` stay'"],
    ['-- not a comment', "'-- not a comment'"],
    ['/* nor this */', "'/* nor this */'"],
    ['{p0:String}', "'{p0:String}'"],
    ['?', "'?'"],
    ['Ünïcødé 日本語 😀', "'Ünïcødé 日本語 😀'"],
    ['\u2028\u2029', "'\u2028\u2029'"],
  ])('%j → %s', (input, expected) => {
    expect(sqlLiteral(input)).toBe(expected);
  });

  it('never lets a quote end the literal early, whatever surrounds it', () => {
    const attacks = ["'; DROP TABLE interactions; --", "\\'; DROP TABLE x; --", "\\\\'", "'\\", 'a\\'];
    for (const attack of attacks) {
      const literal = sqlLiteral(attack);
      // Walk the literal as ClickHouse's lexer does: after the opening quote, a backslash
      // consumes the next character; the first bare quote must be the very last character.
      let i = 1;
      while (i < literal.length && literal[i] !== "'") i += literal[i] === '\\' ? 2 : 1;
      expect(i).toBe(literal.length - 1);
    }
  });

  it('rejects unpaired surrogates instead of corrupting them to U+FFFD', () => {
    expect(() => sqlLiteral('\uD800')).toThrow(SqlLiteralError);
    expect(() => sqlLiteral('a\uDC00b')).toThrow(/surrogate/);
    expect(() => sqlLiteral('\uDC00\uD800')).toThrow(SqlLiteralError);
    expect(sqlLiteral('\uD83D\uDE00')).toBe("'😀'");
  });
});

describe('sqlLiteral numbers', () => {
  it.each<[number | bigint, string]>([
    [0, '0'],
    [-0, '0'],
    [42, '42'],
    [-5, '(-5)'],
    [1.5, '1.5'],
    [-0.25, '(-0.25)'],
    [1e21, '1e+21'],
    [5e-324, '5e-324'],
    [Number.MAX_SAFE_INTEGER, '9007199254740991'],
    [18446744073709551615n, '18446744073709551615'],
    [-9223372036854775808n, '(-9223372036854775808)'],
  ])('%p → %s', (input, expected) => {
    expect(sqlLiteral(input)).toBe(expected);
  });

  it('parenthesises negatives so `a - x` never becomes the comment `a --x`', () => {
    expect(`SELECT 1 -${sqlLiteral(-5)}`).toBe('SELECT 1 -(-5)');
  });

  it.each([NaN, Infinity, -Infinity])('rejects %p', (input) => {
    expect(() => sqlLiteral(input)).toThrow(SqlLiteralError);
  });
});

describe('sqlLiteral other values', () => {
  it('renders booleans as 1/0 and null as NULL', () => {
    expect(sqlLiteral(true)).toBe('1');
    expect(sqlLiteral(false)).toBe('0');
    expect(sqlLiteral(null)).toBe('NULL');
  });

  it('renders dates as toDateTime(epoch seconds), truncating milliseconds', () => {
    expect(sqlLiteral(new Date(0))).toBe('toDateTime(0)');
    expect(sqlLiteral(new Date(Date.UTC(2024, 0, 1, 0, 0, 0, 999)))).toBe('toDateTime(1704067200)');
    expect(sqlLiteral(new Date(4294967295000))).toBe('toDateTime(4294967295)');
  });

  it('rejects dates a DateTime cannot hold', () => {
    expect(() => sqlLiteral(new Date(NaN))).toThrow(/Invalid Date/);
    expect(() => sqlLiteral(new Date(-1000))).toThrow(/outside/);
    expect(() => sqlLiteral(new Date(4294967296000))).toThrow(/outside/);
  });

  it('renders arrays recursively', () => {
    expect(sqlLiteral([])).toBe('[]');
    expect(sqlLiteral(['a', "b'c", null])).toBe("['a', 'b\\'c', NULL]");
    expect(sqlLiteral([1, -2, [3n, 'x']])).toBe("[1, (-2), [3, 'x']]");
    expect(() => sqlLiteral([1, NaN])).toThrow(SqlLiteralError);
  });

  it.each<[string, unknown]>([
    ['undefined', undefined],
    ['a plain object', { a: 1 }],
    ['a Buffer', Buffer.from('x')],
    ['a function', () => 1],
    ['a symbol', Symbol('s')],
    ['an array holding undefined', [undefined]],
  ])('rejects %s', (_label, input) => {
    expect(() => sqlLiteral(input as SqlValue)).toThrow(SqlLiteralError);
  });
});

describe('sqlIdentifier', () => {
  it('backquotes valid names and joins qualified ones', () => {
    expect(sqlIdentifier('interactions')).toBe('`interactions`');
    expect(sqlIdentifier('_x1')).toBe('`_x1`');
    expect(sqlIdentifier('cprec', 'items')).toBe('`cprec`.`items`');
    expect(sqlIdentifier('a'.repeat(128))).toBe('`' + 'a'.repeat(128) + '`');
  });

  it.each(['', '1abc', 'a-b', 'a b', 'a.b', 'a`b', "a'b", 'a;DROP', 'tablé', 'a\0', '`x`', 'a'.repeat(129)])(
    'rejects %j',
    (name) => {
      expect(isValidIdentifier(name)).toBe(false);
      expect(() => sqlIdentifier(name)).toThrow(SqlLiteralError);
    },
  );

  it('rejects an empty name list', () => {
    expect(() => sqlIdentifier()).toThrow(SqlLiteralError);
  });
});
