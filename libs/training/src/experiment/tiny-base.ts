import { randomWeights, type LlamaConfig, type LlamaWeights } from '@cprec/lm';

/**
 * Random weights at the scale of a trained model, for tiny synthetic experiments. lm's
 * `randomWeights` uses GPT-2's init (std 0.02): with the tied classifier frozen, such a model's
 * logits stay near uniform whatever LoRA does, so nothing can be learned through adapters alone.
 * A trained base has unit-scale token embeddings and ~1/√dim projections; this mimics that.
 */
export function tinyBaseWeights(config: LlamaConfig, seed: number): LlamaWeights {
  const w = randomWeights(config, seed);
  const scale = (a: Float32Array, f: number): void => {
    for (let i = 0; i < a.length; i++) a[i]! *= f;
  };
  scale(w.tokEmbedding, 0.5 / 0.02);
  const layerScale = 1 / Math.sqrt(config.dim) / 0.02;
  for (const l of w.layers) for (const k of ['wq', 'wk', 'wv', 'wo', 'w1', 'w2', 'w3'] as const) scale(l[k], layerScale);
  return w;
}
