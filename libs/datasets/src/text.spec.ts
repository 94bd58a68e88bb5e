import { cleanTitle, domainSlug } from './text';
import { eventId } from './event-id';
import { parsePythonLiteral } from './python-literal';

describe('cleanTitle', () => {
  it('decodes named, numeric and double-encoded entities and normalises whitespace', () => {
    expect(cleanTitle('Tom &amp; Jerry')).toBe('Tom & Jerry');
    expect(cleanTitle('5&#39;&#x27; &quot;Pro&quot;')).toBe(`5'' "Pro"`);
    expect(cleanTitle('Fish &amp;amp; Chips')).toBe('Fish & Chips');
    expect(cleanTitle('  a\t\tb\n c\u00a0d  ')).toBe('a b c d');
  });
});

describe('domainSlug', () => {
  it.each([
    ['amazon2018-game', 'game'],
    ['amazon2014-book_1000000', 'book'],
    ['steam_100000', 'steam'],
    ['amazon2018-scientific-unisrec', 'scientific'],
    ['Industrial & Scientific', 'industrial_scientific'],
  ])('%s → %s', (name, slug) => expect(domainSlug(name)).toBe(slug));
});

describe('eventId', () => {
  it('is a pure function of its parts and separates them unambiguously', () => {
    const id = eventId('ds', 'u1', 'i1', 1000, 3);
    expect(id).toMatch(/^ev-[0-9a-f]{32}$/);
    expect(eventId('ds', 'u1', 'i1', 1000, 3)).toBe(id);
    expect(eventId('ds', 'u1', 'i1', 1000, 4)).not.toBe(id);
    expect(eventId('ds', 'u1i', '1', 1000, 3)).not.toBe(id);
    expect(eventId('ds2', 'u1', 'i1', 1000, 3)).not.toBe(id);
  });
});

describe('parsePythonLiteral', () => {
  it('parses the 2014 metadata subset', () => {
    expect(
      parsePythonLiteral(`{'a': [1, -2.5e3, (True, False, None)], "b": 'it\\'s \\u00e9\\x41', 'c': {}}`),
    ).toEqual({
      a: [1, -2500, [true, false, null]],
      b: "it's éA",
      c: {},
    });
  });
  it('rejects trailing garbage', () => {
    expect(() => parsePythonLiteral(`{'a': 1} x`)).toThrow(/trailing/);
  });
});
