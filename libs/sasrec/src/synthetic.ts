import { SeededRandom } from './rng';

export interface TransitionPatternOptions {
  numUsers: number;
  /** Items per user sequence. */
  length: number;
  numItems: number;
  /** Probability that a step jumps to a uniformly random item instead of following i → i+1. */
  noise: number;
  seed: number;
}

/**
 * Sequences with a learnable order: each user starts at a random item and moves i → i+1
 * (wrapping numItems → 1), except that with probability `noise` a step goes to a random item.
 * Items are dense indices 1..numItems. Popularity is flat by construction, so only a model that
 * reads the order can beat chance — what the specs and the sanity check in benches need.
 */
export function transitionPatternSequences(options: TransitionPatternOptions): number[][] {
  const rng = new SeededRandom(options.seed);
  const sequences: number[][] = [];
  for (let u = 0; u < options.numUsers; u++) {
    let item = rng.int(1, options.numItems);
    const sequence = [item];
    while (sequence.length < options.length) {
      item = rng.float() < options.noise ? rng.int(1, options.numItems) : (item % options.numItems) + 1;
      sequence.push(item);
    }
    sequences.push(sequence);
  }
  return sequences;
}
