import { decode as decodeHtmlEntities } from 'he';

/**
 * Titles as they appear in prompts: HTML entities decoded (source catalogues are full of
 * `&amp;` and `&#39;`), every whitespace run — including newlines and tabs that would break
 * the one-line prompt — collapsed to one space, trimmed. Token-budget truncation happens later,
 * in `encodeSample`, because it depends on the tokenizer.
 */
export function normaliseTitle(raw: string): string {
  return decodeHtmlEntities(raw).replace(/\s+/gu, ' ').trim();
}

/** An item with no usable title is still shown, by id, so the prompt keeps one entry per item. */
export function displayTitle(itemId: string, raw: string | undefined): string {
  const title = raw === undefined ? '' : normaliseTitle(raw);
  return title.length > 0 ? title : `item ${itemId}`;
}
