import { mulberry32 } from './weights';

export interface SampleOptions {
  /** 0 (default) = greedy argmax; otherwise logits are divided by it before softmax. */
  temperature?: number;
  /** Keep only the k most likely tokens (0/undefined = all). */
  topK?: number;
  /** Nucleus sampling: smallest set of tokens whose probability mass reaches p (1/undefined = off). */
  topP?: number;
  /** Seed for reproducible sampling. */
  seed?: number;
}

export function argmax(x: ArrayLike<number>, allowed?: readonly number[]): number {
  let best = -1;
  let bestV = -Infinity;
  if (allowed) {
    for (const i of allowed) {
      if (x[i] > bestV || best < 0) {
        bestV = x[i];
        best = i;
      }
    }
    return best;
  }
  for (let i = 0; i < x.length; i++) {
    if (x[i] > bestV) {
      bestV = x[i];
      best = i;
    }
  }
  return best;
}

/**
 * Picks a token from one row of logits on the host: a vocab-sized row is small, and sampling
 * needs sorting/cumulative sums that would cost several kernel launches per token in tfjs.
 */
export class TokenSampler {
  private readonly rand: () => number;
  constructor(private readonly opts: SampleOptions = {}) {
    this.rand = mulberry32(opts.seed ?? Date.now() & 0x7fffffff);
  }

  get greedy(): boolean {
    return !this.opts.temperature || this.opts.temperature <= 0;
  }

  sample(logits: ArrayLike<number>, allowed?: readonly number[]): number {
    if (this.greedy) return argmax(logits, allowed);
    const t = this.opts.temperature as number;
    let ids = allowed ? [...allowed] : Array.from({ length: logits.length }, (_, i) => i);
    ids.sort((a, b) => logits[b] - logits[a]);
    if (this.opts.topK && this.opts.topK > 0) ids = ids.slice(0, this.opts.topK);
    const max = logits[ids[0]];
    let probs = ids.map((i) => Math.exp((logits[i] - max) / t));
    let sum = probs.reduce((a, b) => a + b, 0);
    probs = probs.map((p) => p / sum);
    const topP = this.opts.topP;
    if (topP !== undefined && topP > 0 && topP < 1) {
      let mass = 0;
      let cut = probs.length;
      for (let i = 0; i < probs.length; i++) {
        mass += probs[i];
        if (mass >= topP) {
          cut = i + 1;
          break;
        }
      }
      ids = ids.slice(0, cut);
      probs = probs.slice(0, cut);
      sum = probs.reduce((a, b) => a + b, 0);
      probs = probs.map((p) => p / sum);
    }
    const r = this.rand();
    let cdf = 0;
    for (let i = 0; i < ids.length; i++) {
      cdf += probs[i];
      if (r < cdf) return ids[i];
    }
    return ids[ids.length - 1];
  }
}
