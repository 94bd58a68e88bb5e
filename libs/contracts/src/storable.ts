/**
 * What storage can hold. ClickHouse stores strings as UTF-8 bytes, and a string holding an
 * unpaired UTF-16 surrogate has no UTF-8 form: ClickHouse's JSON reader refuses the whole insert
 * ("missing second part of surrogate pair"), and any other encoding path silently turns it into
 * U+FFFD. `DateTime` is UInt32 seconds: a later date wraps around silently on 18.16. Messages
 * carrying either are rejected at validation, before they can reach (and stall) a batch insert.
 */

/** Largest epoch-milliseconds value a ClickHouse `DateTime` (UInt32 seconds) can hold: 2106-02-07T06:28:15.999Z. */
export const MAX_STORABLE_EPOCH_MS = 4_294_967_295_999;

type WellFormed = { isWellFormed?: () => boolean };

/** A high surrogate not followed by a low one, or a low surrogate not preceded by a high one. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** True when the string has no unpaired UTF-16 surrogate (it has a UTF-8 encoding). */
export function isWellFormedText(s: string): boolean {
  const native = (s as unknown as WellFormed).isWellFormed;
  return typeof native === 'function' ? native.call(s) : !LONE_SURROGATE.test(s);
}

/** Index of the first unpaired surrogate of `s`, or -1. */
export function loneSurrogateIndex(s: string): number {
  const match = LONE_SURROGATE.exec(s);
  return match ? match.index : -1;
}

/** A position in the walked value: its key and its parent, so no path is built until one is needed. */
interface Place {
  key: string | number | null;
  parent: Place | null;
}

function pathOf(place: Place | null): string {
  const parts: (string | number)[] = [];
  for (let p = place; p !== null && p.key !== null; p = p.parent) parts.push(p.key);
  return parts.length === 0 ? '(message)' : parts.reverse().join('.');
}

/**
 * Finds the first string (object key or value, at any depth) that storage cannot hold and
 * describes it — `title: contains an unpaired UTF-16 surrogate (\ud800) at index 0, …` — or
 * returns null when every string is storable. Iterative and linear, so a deeply nested message
 * can neither overflow the stack nor take quadratic time.
 */
export function findUnstorableText(value: unknown): string | null {
  const root: Place = { key: null, parent: null };
  const stack: { value: unknown; place: Place }[] = [{ value, place: root }];
  while (stack.length > 0) {
    const { value: v, place } = stack.pop()!;
    if (typeof v === 'string') {
      if (!isWellFormedText(v)) return unpaired(v, pathOf(place));
    } else if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push({ value: v[i], place: { key: i, parent: place } });
    } else if (typeof v === 'object' && v !== null) {
      const entries = Object.entries(v as Record<string, unknown>);
      for (let i = entries.length - 1; i >= 0; i--) {
        const [key, child] = entries[i]!;
        if (!isWellFormedText(key)) return unpaired(key, `${pathOf(place)} (a key)`);
        stack.push({ value: child, place: { key, parent: place } });
      }
    }
  }
  return null;
}

function unpaired(s: string, where: string): string {
  const at = loneSurrogateIndex(s);
  const unit = at >= 0 ? `\\u${s.charCodeAt(at).toString(16).padStart(4, '0')}` : 'a surrogate';
  return `${where}: contains an unpaired UTF-16 surrogate (${unit}) at index ${at}, which has no UTF-8 form and cannot be stored`;
}
