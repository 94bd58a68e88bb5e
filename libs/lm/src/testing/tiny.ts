import { LlamaConfig } from '../types';

/** A tiny GQA config (2 query heads per kv head, untied classifier) for fast unit tests. */
export function tinyConfig(overrides: Partial<LlamaConfig> = {}): LlamaConfig {
  return {
    dim: 16,
    hiddenDim: 24,
    nLayers: 2,
    nHeads: 4,
    nKvHeads: 2,
    vocabSize: 40,
    maxSeqLen: 64,
    normEps: 1e-5,
    ropeTheta: 10000,
    tiedClassifier: false,
    ...overrides,
  };
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
