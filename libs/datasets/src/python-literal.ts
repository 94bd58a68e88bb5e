/**
 * Parser for the Python literal subset used by the Amazon Reviews 2014 metadata dumps, whose lines
 * were written with `str(dict)` and are meant to be read with `eval`: dicts, lists, tuples,
 * single/double-quoted strings with backslash escapes (incl. \xNN, \uNNNN, \N is not used),
 * ints, floats, True/False/None. Hand-written because no maintained npm package parses Python
 * literals, and `eval`-style execution of data is out of the question.
 */
export type PyValue = string | number | boolean | null | PyValue[] | { [key: string]: PyValue };

export function parsePythonLiteral(text: string): PyValue {
  let pos = 0;

  const fail = (message: string): never => {
    throw new Error(`python literal: ${message} at offset ${pos}`);
  };
  const skipSpace = (): void => {
    while (pos < text.length && /\s/u.test(text[pos]!)) pos++;
  };

  function parseString(): string {
    const quote = text[pos]!;
    pos++;
    let out = '';
    while (pos < text.length) {
      const ch = text[pos]!;
      if (ch === quote) {
        pos++;
        return out;
      }
      if (ch === '\\') {
        const next = text[pos + 1];
        pos += 2;
        switch (next) {
          case 'n':
            out += '\n';
            break;
          case 't':
            out += '\t';
            break;
          case 'r':
            out += '\r';
            break;
          case '0':
            out += '\0';
            break;
          case 'x':
            out += String.fromCharCode(parseInt(text.slice(pos, pos + 2), 16));
            pos += 2;
            break;
          case 'u':
            out += String.fromCharCode(parseInt(text.slice(pos, pos + 4), 16));
            pos += 4;
            break;
          case 'U':
            out += String.fromCodePoint(parseInt(text.slice(pos, pos + 8), 16));
            pos += 8;
            break;
          case undefined:
            fail('unterminated escape');
            break;
          default:
            out += next; // \\ \' \" and unknown escapes keep the character
        }
        continue;
      }
      out += ch;
      pos++;
    }
    return fail('unterminated string');
  }

  function parseSequence(close: string): PyValue[] {
    pos++;
    const items: PyValue[] = [];
    for (;;) {
      skipSpace();
      if (text[pos] === close) {
        pos++;
        return items;
      }
      items.push(parseValue());
      skipSpace();
      if (text[pos] === ',') pos++;
      else if (text[pos] !== close) fail(`expected ',' or '${close}'`);
    }
  }

  function parseDict(): { [key: string]: PyValue } {
    pos++;
    const out: { [key: string]: PyValue } = {};
    for (;;) {
      skipSpace();
      if (text[pos] === '}') {
        pos++;
        return out;
      }
      const key = parseValue();
      skipSpace();
      if (text[pos] !== ':') fail("expected ':'");
      pos++;
      out[String(key)] = parseValue();
      skipSpace();
      if (text[pos] === ',') pos++;
      else if (text[pos] !== '}') fail("expected ',' or '}'");
    }
  }

  function parseValue(): PyValue {
    skipSpace();
    const ch = text[pos];
    if (ch === undefined) return fail('unexpected end');
    if (ch === '{') return parseDict();
    if (ch === '[') return parseSequence(']');
    if (ch === '(') return parseSequence(')');
    if (ch === "'" || ch === '"') return parseString();
    for (const [word, value] of [
      ['True', true],
      ['False', false],
      ['None', null],
    ] as const) {
      if (text.startsWith(word, pos)) {
        pos += word.length;
        return value;
      }
    }
    const number = /^[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|inf|nan)/u.exec(
      text.slice(pos, pos + 64),
    );
    if (number) {
      pos += number[0].length;
      return Number(number[0].replace('inf', 'Infinity').replace('nan', 'NaN'));
    }
    return fail(`unexpected character '${ch}'`);
  }

  const value = parseValue();
  skipSpace();
  if (pos !== text.length) fail('trailing characters');
  return value;
}
