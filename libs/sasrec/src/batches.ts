import { SeededRandom } from './rng';

/** Tries of rejection sampling before falling back to "any item but the positive". */
const NEGATIVE_SAMPLING_TRIES = 64;

/**
 * The last `maxLen` items of a history, left-padded with 0 to exactly `maxLen` (the original
 * SASRec layout: the most recent item is always at position maxLen − 1).
 */
export function leftPadWindow(
  history: readonly number[],
  maxLen: number,
  target?: Int32Array,
  offset = 0,
): Int32Array {
  const out = target ?? new Int32Array(maxLen);
  const start = Math.max(0, history.length - maxLen);
  const pad = maxLen - (history.length - start);
  out.fill(0, offset, offset + pad);
  for (let i = start; i < history.length; i++) out[offset + pad + i - start] = history[i];
  return out;
}

/** Throws unless every value is a dense item index 1..numItems. */
export function checkItemIndices(what: string, items: readonly number[], numItems: number): void {
  for (const item of items) {
    if (!Number.isInteger(item) || item < 1 || item > numItems) {
      throw new Error(
        `${what}: item index ${item} is not in 1..${numItems} (0 is padding; map ids with ItemIndex)`,
      );
    }
  }
}

/** Draws an item in 1..numItems that is not in `exclude` (uniformly among the allowed ones, by rejection). */
export function sampleNegative(
  numItems: number,
  exclude: ReadonlySet<number>,
  positive: number,
  rng: SeededRandom,
): number {
  for (let tries = 0; tries < NEGATIVE_SAMPLING_TRIES; tries++) {
    const candidate = rng.int(1, numItems);
    if (!exclude.has(candidate)) return candidate;
  }
  // The user has seen (nearly) every item: any item other than the positive is the best we can do.
  if (numItems === 1) return positive;
  const candidate = rng.int(1, numItems - 1);
  return candidate >= positive ? candidate + 1 : candidate;
}

/** One training batch in the layout of the original SASRec: flat [batch × maxLen] int32 arrays. */
export interface TrainingBatch {
  size: number;
  /** Input items (the sequence without its last item), left-padded. */
  inputs: Int32Array;
  /** Next item at every input position (0 where the input is padding). */
  positives: Int32Array;
  /** One sampled negative per position, not in the user's sequence (0 where padded). */
  negatives: Int32Array;
}

/**
 * Builds the batch for the given training sequences: input = s[0..n−2], positive = s[1..n−1],
 * both cut to the last `maxLen` positions; one negative per position drawn from the items the user
 * never interacted with (as the original's `random_neq`).
 */
export function buildTrainingBatch(
  sequences: readonly (readonly number[])[],
  maxLen: number,
  numItems: number,
  rng: SeededRandom,
): TrainingBatch {
  const size = sequences.length;
  const inputs = new Int32Array(size * maxLen);
  const positives = new Int32Array(size * maxLen);
  const negatives = new Int32Array(size * maxLen);
  sequences.forEach((sequence, row) => {
    const offset = row * maxLen;
    leftPadWindow(sequence.slice(0, -1), maxLen, inputs, offset);
    leftPadWindow(sequence.slice(1), maxLen, positives, offset);
    const seen = new Set(sequence);
    for (let i = offset; i < offset + maxLen; i++) {
      if (positives[i] !== 0) negatives[i] = sampleNegative(numItems, seen, positives[i], rng);
    }
  });
  return { size, inputs, positives, negatives };
}
