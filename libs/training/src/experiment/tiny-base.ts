import { randomWeights, type LlamaConfig, type LlamaWeights } from '@cprec/lm';

/**
 * How the random stand-in for a pre-trained base is scaled.
 * - `unit`: unit-scale token embeddings (std 0.5) and ~1/√dim projections everywhere.
 * - `quiet`: a base whose layers write little into the residual stream and whose logits have a
 *   moderate range, like a trained LM's (see `tinyBaseWeights`).
 */
export type TinyBaseProfile = 'unit' | 'quiet';

/**
 * Random weights at the scale of a trained model, for tiny synthetic experiments. lm's
 * `randomWeights` uses GPT-2's init (std 0.02): with the tied classifier frozen, such a model's
 * logits stay near uniform whatever LoRA does, so nothing can be learned through adapters alone.
 * A trained base has unit-scale token embeddings and ~1/√dim projections; `unit` mimics that.
 *
 * `unit` has two flaws that stop LoRA from learning anything that depends on other tokens
 * (measured with tune.ts: title-token loss stays at the unigram level after hundreds of steps):
 * its frozen random layers add vectors several times the embedding's norm to the residual
 * stream, so the base's output is a strong random function of the context, and with a tied
 * classifier its logits are 0.5·dim·cos (std ≈ 0.5·√dim nats of noise, 64 for a perfect match at
 * dim 128). `quiet` keeps the same random directions but scales the residual writes (wo, w2) to
 * the embedding's norm and the embeddings to norm ≈ 2, so the base's logits have std ≈ 2 and the
 * adapters are not fighting loud random features.
 */
export function tinyBaseWeights(
  config: LlamaConfig,
  seed: number,
  profile: TinyBaseProfile = 'unit',
): LlamaWeights {
  const w = randomWeights(config, seed);
  const scale = (a: Float32Array, f: number): void => {
    for (let i = 0; i < a.length; i++) a[i]! *= f;
  };
  const initStd = 0.02;
  // randomWeights draws the residual writes (wo, w2) with GPT-2's smaller std.
  const residInitStd = initStd / Math.sqrt(2 * config.nLayers);
  if (profile === 'unit') {
    scale(w.tokEmbedding, 0.5 / initStd);
    const layerScale = 1 / Math.sqrt(config.dim) / initStd;
    for (const l of w.layers)
      for (const k of ['wq', 'wk', 'wv', 'wo', 'w1', 'w2', 'w3'] as const) scale(l[k], layerScale);
    return w;
  }
  const embeddingNorm = 2;
  if (config.vocabSize <= config.dim) orthonormalRows(w.tokEmbedding, config.vocabSize, config.dim);
  else scale(w.tokEmbedding, 1 / Math.sqrt(config.dim) / initStd);
  scale(w.tokEmbedding, embeddingNorm);
  // Reads (q, k, v, w1, w3) see an RMS-normalised input of norm √dim: unit-variance outputs.
  const readStd = 1 / Math.sqrt(config.dim);
  // Writes: wo gets ~unit entries from dim inputs, w2 gets ~0.5-scale entries from hiddenDim inputs;
  // both are scaled so that what they add to the residual stream has norm ≈ embeddingNorm.
  const woStd = embeddingNorm / config.dim;
  const w2Std = (2 * embeddingNorm) / Math.sqrt(config.hiddenDim * config.dim);
  for (const l of w.layers) {
    for (const k of ['wq', 'wk', 'wv', 'w1', 'w3'] as const) scale(l[k], readStd / initStd);
    scale(l.wo, woStd / residInitStd);
    scale(l.w2, w2Std / residInitStd);
  }
  return w;
}

/**
 * Gram–Schmidt on the rows of a [rows, dim] matrix (rows ≤ dim), in place: every token gets its
 * own direction, so a frozen tied classifier can put mass on any set of tokens without raising
 * the others (random rows in a small dim overlap by ~1/√dim, which caps how sharply the model can
 * prefer a set of title words over the rest of the vocabulary).
 */
function orthonormalRows(m: Float32Array, rows: number, dim: number): void {
  const row = (r: number) => m.subarray(r * dim, (r + 1) * dim);
  for (let r = 0; r < rows; r++) {
    const v = row(r);
    for (let p = 0; p < r; p++) {
      const u = row(p);
      let dot = 0;
      for (let i = 0; i < dim; i++) dot += v[i]! * u[i]!;
      for (let i = 0; i < dim; i++) v[i]! -= dot * u[i]!;
    }
    let norm = 0;
    for (let i = 0; i < dim; i++) norm += v[i]! * v[i]!;
    norm = Math.sqrt(norm);
    for (let i = 0; i < dim; i++) v[i]! /= norm;
  }
}
