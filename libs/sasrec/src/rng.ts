import { RandomGenerator, unsafeUniformIntDistribution, xoroshiro128plus } from 'pure-rand';

/**
 * Seeded pseudo-random source for every JS-side random choice (weight init, shuffling, negative
 * sampling, dropout seeds), so that a run is reproducible from its config seed alone and does not
 * depend on the tfjs backend's own generator.
 */
export class SeededRandom {
  private generator: RandomGenerator;

  constructor(seed: number) {
    this.generator = xoroshiro128plus(seed | 0);
  }

  /** The generator's state, to continue the same stream after a restart (`restore`). */
  state(): number[] {
    return [...this.generator.getState!()];
  }

  /** Continues the stream a `state()` was taken from. */
  restore(state: readonly number[]): void {
    this.generator = xoroshiro128plus.fromState(state);
  }

  /** Uniform integer in [min, max] (both inclusive). */
  int(min: number, max: number): number {
    return unsafeUniformIntDistribution(min, max, this.generator);
  }

  /** Uniform float in [0, 1) with 2^-30 resolution, enough for sampling and initialisation. */
  float(): number {
    return unsafeUniformIntDistribution(0, 0x3fffffff, this.generator) / 0x40000000;
  }

  /** Standard normal draw (Box–Muller). */
  normal(): number {
    const u = 1 - this.float();
    const v = this.float();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** In-place Fisher–Yates shuffle. */
  shuffle<T>(values: T[]): T[] {
    for (let i = values.length - 1; i > 0; i--) {
      const j = this.int(0, i);
      const tmp = values[i];
      values[i] = values[j];
      values[j] = tmp;
    }
    return values;
  }
}
