import { containsAsWords, matchGeneration, normaliseForMatch, tallyGenerations } from './matching';

const titles = [
  'Super Mario 64',
  'Mario',
  'The Legend of Zelda: Ocarina of Time',
  'Tom &amp; Jerry',
  'Halo 3',
  'Halo 3: ODST',
  'Portal',
];

describe('normaliseForMatch', () => {
  it('normalises case, whitespace, entities, quotes and trailing punctuation', () => {
    expect(normaliseForMatch('  "Super   MARIO 64."  ')).toBe('super mario 64');
    expect(normaliseForMatch('Tom &amp; Jerry!')).toBe('tom & jerry');
    expect(normaliseForMatch('“Portal”.')).toBe('portal');
    expect(normaliseForMatch('Ｐｏｒｔａｌ')).toBe('portal'); // NFKC folds full-width forms
  });
});

describe('containsAsWords', () => {
  it('requires word boundaries', () => {
    expect(containsAsWords('i pick portal now', 'portal')).toBe(true);
    expect(containsAsWords('portals', 'portal')).toBe(false);
    expect(containsAsWords('halo 3: odst', 'halo 3')).toBe(true);
    expect(containsAsWords('halo 30', 'halo 3')).toBe(false);
  });
});

describe('matchGeneration', () => {
  it.each([
    // [generation, expected]
    ['Super Mario 64', { valid: true, index: 0, rule: 'exact' }],
    ['super mario 64.', { valid: true, index: 0, rule: 'exact' }],
    ['Tom & Jerry', { valid: true, index: 3, rule: 'exact' }],
    ['Mario', { valid: true, index: 1, rule: 'exact' }], // exact wins over "contained in Super Mario 64"
    ['Halo 3', { valid: true, index: 4, rule: 'exact' }],
    ['Halo 3: ODST\nand then some more text', { valid: true, index: 5, rule: 'exact' }], // first line only
    ['I would recommend Portal to this user', { valid: true, index: 6, rule: 'contained' }],
    ['Definitely Super Mario 64!', { valid: true, index: 0, rule: 'contained' }], // "mario" is inside the longer title
    ['Halo 3: ODST is great', { valid: true, index: 5, rule: 'contained' }],
    ['The Legend of Zelda: Oca', { valid: true, index: 2, rule: 'prefix' }], // cut-off generation
    // A cut-off answer is the title it begins, not a shorter candidate it happens to contain.
    ['Halo 3: OD', { valid: true, index: 5, rule: 'prefix' }],
    ['Super Mario 6', { valid: true, index: 0, rule: 'prefix' }],
    ['Portal or Mario', { valid: false, reason: 'ambiguous' }],
    ['Halo', { valid: false, reason: 'no-match' }], // prefix of two titles and too short anyway
    ['Portals of Doom', { valid: false, reason: 'no-match' }],
    ['', { valid: false, reason: 'empty' }],
    ['  \n Portal', { valid: true, index: 6, rule: 'exact' }], // leading blank lines are skipped
    ['...', { valid: false, reason: 'empty' }],
  ])('%j → %j', (generation, expected) => {
    expect(matchGeneration(generation, titles)).toEqual(expected);
  });

  it('prefix rule needs a minimum length and a unique candidate', () => {
    expect(matchGeneration('The Legend', titles)).toEqual({ valid: true, index: 2, rule: 'prefix' });
    expect(matchGeneration('The Legend', titles, { minPrefixChars: 20 })).toEqual({
      valid: false,
      reason: 'no-match',
    });
    expect(matchGeneration('Halo 3: OD', ['Halo 3: ODST', 'Halo 3: ODST Deluxe'])).toEqual({
      valid: false,
      reason: 'ambiguous',
    });
  });

  it('duplicate candidate titles make an exact match ambiguous', () => {
    expect(matchGeneration('Portal', ['Portal', 'portal'])).toEqual({ valid: false, reason: 'ambiguous' });
  });
});

describe('tallyGenerations', () => {
  it('reports Valid Ratio and both HR@1 definitions', () => {
    const cands = ['A title', 'B title', 'C title'];
    const tally = tallyGenerations([
      { match: matchGeneration('A title', cands), targetIndex: 0 }, // correct
      { match: matchGeneration('B title', cands), targetIndex: 0 }, // valid, wrong
      { match: matchGeneration('nothing', cands), targetIndex: 1 }, // invalid
      { match: matchGeneration('C title', cands), targetIndex: 2 }, // correct
    ]);
    expect(tally).toEqual({
      total: 4,
      valid: 3,
      correct: 2,
      validRatio: 0.75,
      hr1: 0.5,
      hr1OverValid: 2 / 3,
    });
    expect(tallyGenerations([])).toEqual({
      total: 0,
      valid: 0,
      correct: 0,
      validRatio: 0,
      hr1: 0,
      hr1OverValid: 0,
    });
  });
});
