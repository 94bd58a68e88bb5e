import type { Tokenizer } from './encode';

/**
 * A tokenizer whose `encode` remembers its last `capacity` distinct inputs (least recently used
 * evicted). Everything else is the wrapped tokenizer's.
 *
 * Why: ranking a request encodes the same template literals and, across requests, the same
 * catalogue titles again and again — BPE in JS was ~10% of a serving request on stories260K.
 * Encoding is a pure function of the text, so a cached result is the result.
 */
export function memoizeTokenizer<T extends Tokenizer>(tokenizer: T, capacity = 50_000): T {
  if (!Number.isInteger(capacity) || capacity < 1)
    throw new RangeError('capacity must be a positive integer');
  const cache = new Map<string, readonly number[]>();
  const encode = (text: string, opts?: { bos?: boolean; eos?: boolean }): number[] => {
    const key = `${opts?.bos ? 1 : 0}${opts?.eos ? 1 : 0}${text}`;
    const hit = cache.get(key);
    if (hit !== undefined) {
      cache.delete(key);
      cache.set(key, hit); // most recently used last
      return hit.slice();
    }
    const ids = tokenizer.encode(text, opts);
    cache.set(key, ids.slice());
    if (cache.size > capacity) cache.delete(cache.keys().next().value as string);
    return ids;
  };
  // A prototype-linked view keeps every other member (vocabSize, placeholderId, decode, …) and
  // its `this` binding; only encode is shadowed.
  const memoized = Object.create(tokenizer) as T;
  Object.defineProperty(memoized, 'encode', { value: encode });
  return memoized;
}
