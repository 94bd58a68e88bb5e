import { decode as decodeHtmlEntities } from 'he';

/**
 * Matching an unconstrained generation to one of the candidate titles. Rules, in order (see
 * docs/metrics.md for the reasoning):
 *  0. Only the first line of the generation counts (the model is trained to stop after the title).
 *  1. Both sides are normalised: HTML entities decoded, Unicode NFKC, lower case, whitespace runs
 *     collapsed, surrounding quotes and trailing punctuation removed.
 *  2. Exact: the generation equals exactly one candidate title.
 *  3. Prefix: the generation (at least `minPrefixChars` characters) is a prefix of exactly one
 *     candidate title — an answer cut short. It comes before containment because it explains the
 *     whole generation: "Mario Kart 8 Del" is "Mario Kart 8 Deluxe", not the candidate "Mario" it
 *     happens to contain.
 *  4. Contained: exactly one candidate title occurs in the generation as whole words, after
 *     discarding contained titles that are themselves inside a longer contained title
 *     ("mario" inside "super mario 64").
 *  5. Otherwise invalid: ambiguous when a rule matched several candidates (and no later rule
 *     decided), else no match.
 */
export type MatchRule = 'exact' | 'contained' | 'prefix';

export type MatchResult =
  | { readonly valid: true; readonly index: number; readonly rule: MatchRule }
  | { readonly valid: false; readonly reason: 'empty' | 'ambiguous' | 'no-match' };

export interface MatchOptions {
  /** Shortest generation accepted by the prefix rule. Default 8 characters (after normalisation). */
  readonly minPrefixChars?: number;
}

export const DEFAULT_MIN_PREFIX_CHARS = 8;

const EDGE_QUOTES = /^["'“”‘’`«»\s]+|["'“”‘’`«»\s]+$/gu;
const TRAILING_PUNCTUATION = /[\s.,;:!?。、]+$/u;

export function normaliseForMatch(text: string): string {
  let s = decodeHtmlEntities(text).normalize('NFKC').toLowerCase().replace(/\s+/gu, ' ').trim();
  // Alternate until stable: `"Title."` and `Title".` both reduce to `title`.
  for (;;) {
    const next = s.replace(EDGE_QUOTES, '').replace(TRAILING_PUNCTUATION, '');
    if (next === s) return s;
    s = next;
  }
}

const WORD_CHAR = /[\p{L}\p{N}]/u;

/** `needle` occurs in `haystack` with no letter or digit directly before or after it. */
export function containsAsWords(haystack: string, needle: string): boolean {
  if (needle.length === 0) return false;
  for (let at = haystack.indexOf(needle); at >= 0; at = haystack.indexOf(needle, at + 1)) {
    const before = at === 0 ? '' : haystack[at - 1];
    const after = haystack.slice(at + needle.length, at + needle.length + 1);
    const boundedBefore = before === '' || !WORD_CHAR.test(before) || !WORD_CHAR.test(needle[0]);
    const boundedAfter = after === '' || !WORD_CHAR.test(after) || !WORD_CHAR.test(needle[needle.length - 1]);
    if (boundedBefore && boundedAfter) return true;
  }
  return false;
}

function decide(indices: number[], rule: MatchRule): MatchResult | undefined {
  if (indices.length === 1) return { valid: true, index: indices[0], rule };
  if (indices.length > 1) return { valid: false, reason: 'ambiguous' };
  return undefined;
}

export function matchGeneration(
  generation: string,
  candidateTitles: readonly string[],
  options: MatchOptions = {},
): MatchResult {
  const minPrefixChars = options.minPrefixChars ?? DEFAULT_MIN_PREFIX_CHARS;
  const firstLine = generation.replace(/^\s+/u, '').split(/\r?\n/u)[0];
  const g = normaliseForMatch(firstLine);
  if (g.length === 0) return { valid: false, reason: 'empty' };
  const titles = candidateTitles.map(normaliseForMatch);
  const all = titles.map((_, i) => i);

  const exact = decide(
    all.filter((i) => titles[i] === g),
    'exact',
  );
  if (exact) return exact;

  let ambiguous: MatchResult | undefined;
  if (g.length >= minPrefixChars) {
    const byPrefix = decide(
      all.filter((i) => titles[i].startsWith(g)),
      'prefix',
    );
    if (byPrefix?.valid) return byPrefix;
    ambiguous = byPrefix;
  }

  const contained = all.filter((i) => containsAsWords(g, titles[i]));
  const maximal = contained.filter(
    (i) => !contained.some((j) => titles[j] !== titles[i] && containsAsWords(titles[j], titles[i])),
  );
  const byContainment = decide(maximal, 'contained');
  if (byContainment) return byContainment;
  return ambiguous ?? { valid: false, reason: 'no-match' };
}

export interface GenerationTally {
  readonly total: number;
  readonly valid: number;
  readonly correct: number;
  /** valid / total. */
  readonly validRatio: number;
  /** correct / total: invalid generations count as misses (our headline HR@1). */
  readonly hr1: number;
  /** correct / valid: LLaRA's definition, for comparison with published numbers. */
  readonly hr1OverValid: number;
}

/** Valid Ratio and both HR@1 definitions from first-generation matches. */
export function tallyGenerations(
  outcomes: ReadonlyArray<{ readonly match: MatchResult; readonly targetIndex: number }>,
): GenerationTally {
  const total = outcomes.length;
  let valid = 0;
  let correct = 0;
  for (const { match, targetIndex } of outcomes) {
    if (!match.valid) continue;
    valid++;
    if (match.index === targetIndex) correct++;
  }
  return {
    total,
    valid,
    correct,
    validRatio: total === 0 ? 0 : valid / total,
    hr1: total === 0 ? 0 : correct / total,
    hr1OverValid: valid === 0 ? 0 : correct / valid,
  };
}
