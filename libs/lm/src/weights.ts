import { LlamaConfig, validateConfig } from './types';

/** One decoder block's weights, row-major, PyTorch `nn.Linear.weight` layout [out, in]. */
export interface LayerWeights {
  /** RMSNorm gain before attention, [dim]. */
  attnNorm: Float32Array;
  /** Query projection [nHeads*headSize, dim], rows in llama2.c (interleaved-RoPE) order. */
  wq: Float32Array;
  /** Key projection [nKvHeads*headSize, dim], interleaved-RoPE row order. */
  wk: Float32Array;
  /** Value projection [nKvHeads*headSize, dim]. */
  wv: Float32Array;
  /** Attention output projection [dim, dim]. */
  wo: Float32Array;
  /** RMSNorm gain before the FFN, [dim]. */
  ffnNorm: Float32Array;
  /** SwiGLU gate projection [hiddenDim, dim]. */
  w1: Float32Array;
  /** SwiGLU down projection [dim, hiddenDim]. */
  w2: Float32Array;
  /** SwiGLU up projection [hiddenDim, dim]. */
  w3: Float32Array;
}

/** A whole checkpoint as host arrays: the common form every loader produces and every writer reads. */
export interface LlamaWeights {
  config: LlamaConfig;
  /** [vocabSize, dim]. */
  tokEmbedding: Float32Array;
  layers: LayerWeights[];
  /** [dim]. */
  finalNorm: Float32Array;
  /** [vocabSize, dim]; absent when `config.tiedClassifier`. */
  classifier?: Float32Array;
}

/** Expected element count of every tensor, for validation and for loaders. */
export function weightShapes(
  c: LlamaConfig,
): Record<keyof LayerWeights | 'tokEmbedding' | 'finalNorm' | 'classifier', number[]> {
  const hs = c.dim / c.nHeads;
  const kv = c.nKvHeads * hs;
  return {
    tokEmbedding: [c.vocabSize, c.dim],
    attnNorm: [c.dim],
    wq: [c.dim, c.dim],
    wk: [kv, c.dim],
    wv: [kv, c.dim],
    wo: [c.dim, c.dim],
    ffnNorm: [c.dim],
    w1: [c.hiddenDim, c.dim],
    w2: [c.dim, c.hiddenDim],
    w3: [c.hiddenDim, c.dim],
    finalNorm: [c.dim],
    classifier: [c.vocabSize, c.dim],
  };
}

export const LAYER_TENSORS: readonly (keyof LayerWeights)[] = [
  'attnNorm',
  'wq',
  'wk',
  'wv',
  'wo',
  'ffnNorm',
  'w1',
  'w2',
  'w3',
];

/** Deterministic PRNG (mulberry32) so random models are reproducible from a seed. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Random initialisation as in llama2.c `model.py` (normal, std 0.02; norms at 1; residual
 * projections wo/w2 at 0.02/sqrt(2·nLayers)), seeded for reproducible tests.
 */
export function randomWeights(config: LlamaConfig, seed = 1): LlamaWeights {
  validateConfig(config);
  const rand = mulberry32(seed);
  const normal = (n: number, std: number): Float32Array => {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i += 2) {
      const u = Math.max(rand(), 1e-12);
      const v = rand();
      const r = Math.sqrt(-2 * Math.log(u)) * std;
      out[i] = r * Math.cos(2 * Math.PI * v);
      if (i + 1 < n) out[i + 1] = r * Math.sin(2 * Math.PI * v);
    }
    return out;
  };
  const size = (s: number[]): number => s.reduce((a, b) => a * b, 1);
  const sh = weightShapes(config);
  const resid = 0.02 / Math.sqrt(2 * config.nLayers);
  const layers: LayerWeights[] = [];
  for (let l = 0; l < config.nLayers; l++) {
    layers.push({
      attnNorm: new Float32Array(config.dim).fill(1),
      wq: normal(size(sh.wq), 0.02),
      wk: normal(size(sh.wk), 0.02),
      wv: normal(size(sh.wv), 0.02),
      wo: normal(size(sh.wo), resid),
      ffnNorm: new Float32Array(config.dim).fill(1),
      w1: normal(size(sh.w1), 0.02),
      w2: normal(size(sh.w2), resid),
      w3: normal(size(sh.w3), 0.02),
    });
  }
  return {
    config: { ...config },
    tokEmbedding: normal(size(sh.tokEmbedding), 0.02),
    layers,
    finalNorm: new Float32Array(config.dim).fill(1),
    classifier: config.tiedClassifier ? undefined : normal(size(sh.classifier), 0.02),
  };
}

/**
 * Head-wise row permutation between the two RoPE conventions. llama2.c/Meta rotate adjacent pairs
 * (2i, 2i+1); Hugging Face LLaMA rotates split halves (i, i+hs/2) and its conversion script permutes
 * q/k rows accordingly. `hfToInterleaved` undoes that permutation so one RoPE kernel serves both.
 * Row r_hf = h*hs + j*(hs/2) + i  ↔  row r_meta = h*hs + 2i + j.
 */
export function permuteRopeRows(
  w: Float32Array,
  nHeads: number,
  headSize: number,
  inDim: number,
  direction: 'hfToInterleaved' | 'interleavedToHf',
): Float32Array {
  const out = new Float32Array(w.length);
  const half = headSize / 2;
  for (let h = 0; h < nHeads; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const meta = h * headSize + 2 * i + j;
        const hf = h * headSize + j * half + i;
        const [src, dst] = direction === 'hfToInterleaved' ? [hf, meta] : [meta, hf];
        out.set(w.subarray(src * inDim, (src + 1) * inDim), dst * inDim);
      }
    }
  }
  return out;
}
