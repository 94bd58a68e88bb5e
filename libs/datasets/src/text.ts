import { decode } from 'he';

/**
 * Item titles as the model should read them: HTML entities decoded (`&amp;` → `&`; some dumps
 * double-encode, so decoding repeats until stable, at most 3 times) and all whitespace runs,
 * including newlines and non-breaking spaces, collapsed to one space.
 */
export function cleanTitle(raw: string): string {
  let text = raw;
  for (let i = 0; i < 3; i++) {
    const next = decode(text);
    if (next === text) break;
    text = next;
  }
  return text.replace(/\s+/gu, ' ').trim();
}

/**
 * Turns a dataset or category name into a domain slug the contracts accept:
 * `amazon2018-game` → `game`, `amazon2014-book_1000000` → `book`, `Industrial & Scientific` →
 * `industrial_scientific`, `steam_100000` → `steam`. Prefix/suffix stripping follows the naming of
 * the folders in ../shared/data (source year prefix, user-sample size suffix).
 */
export function domainSlug(name: string): string {
  const slug = name
    .toLowerCase()
    .replace(/^amazon\d{4}-/u, '')
    .replace(/_\d+$/u, '')
    .replace(/-unisrec$/u, '')
    .replace(/[^a-z0-9_-]+/gu, '_')
    .replace(/^[_-]+|[_-]+$/gu, '')
    .slice(0, 64);
  if (slug === '') throw new Error(`cannot derive a domain slug from '${name}'`);
  return slug;
}
