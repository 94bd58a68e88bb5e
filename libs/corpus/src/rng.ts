import { createHash } from 'node:crypto';
import { unsafeUniformIntDistribution, xoroshiro128plus, type RandomGenerator } from 'pure-rand';

/**
 * Seeded randomness for the corpus. Generators come from pure-rand; every helper here advances
 * the generator it is given in place (pure-rand's `unsafe*` API), so a caller that needs to replay
 * a draw clones the generator first.
 */
export type Rng = RandomGenerator;

export function createRng(seed: number): Rng {
  return xoroshiro128plus(seed | 0);
}

/** Uniform integer in [min, max] (both inclusive). */
export function randomInt(rng: Rng, min: number, max: number): number {
  return unsafeUniformIntDistribution(min, max, rng);
}

/** Uniform float in [0, 1) with 32 bits of resolution (enough for choosing among phrasings). */
export function randomUnit(rng: Rng): number {
  return (rng.unsafeNext() >>> 0) / 4294967296;
}

/** Fisher–Yates shuffle in place; returns the same array. */
export function shuffleInPlace<T>(items: T[], rng: Rng): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = randomInt(rng, 0, i);
    const tmp = items[i];
    items[i] = items[j];
    items[j] = tmp;
  }
  return items;
}

/**
 * A 32-bit seed derived from its parts alone (SHA-256 of the NUL-joined parts), so a frozen
 * evaluation example gets the same seed however many other examples were computed before it and
 * in whatever order. A hash rather than a running generator is exactly what makes this
 * order-independent; SHA-256 is used because Node ships it and its output is stable forever.
 */
export function deriveSeed(...parts: ReadonlyArray<string | number>): number {
  const hash = createHash('sha256');
  parts.forEach((part, i) => {
    if (i > 0) hash.update('\u0000');
    hash.update(typeof part === 'number' ? `n:${part}` : `s:${part}`);
  });
  return hash.digest().readInt32BE(0);
}
