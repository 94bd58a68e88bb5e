import * as tf from '@tensorflow/tfjs-core';
import { registerTfjsGradients } from './register-gradients';

registerTfjsGradients();

/**
 * A minimal LLaMA-shaped decoder (RMSNorm, RoPE, grouped-query attention, SwiGLU, LoRA on q/v)
 * written with plain tfjs ops. It exists so the native kernels can be profiled, benchmarked and
 * gradient-checked with exactly the op mix of a LLaMA training step, independently of the LM
 * library's own model (which is developed in parallel and may change shape).
 */
export interface TinyDecoderConfig {
  dim: number;
  hiddenDim: number;
  layers: number;
  heads: number;
  kvHeads: number;
  vocab: number;
  seqLen: number;
  loraRank: number;
  seed: number;
  /** Standard deviation of the random weights (default 0.02, as in LLaMA). */
  initStd?: number;
}

export const STORIES_260K_SHAPE: Omit<TinyDecoderConfig, 'seqLen' | 'loraRank' | 'seed'> = {
  dim: 64,
  hiddenDim: 172,
  layers: 5,
  heads: 8,
  kvHeads: 4,
  vocab: 512,
};

interface LayerWeights {
  attnNorm: tf.Variable;
  wq: tf.Variable;
  wk: tf.Variable;
  wv: tf.Variable;
  wo: tf.Variable;
  ffnNorm: tf.Variable;
  w1: tf.Variable;
  w2: tf.Variable;
  w3: tf.Variable;
  loraQA: tf.Variable;
  loraQB: tf.Variable;
  loraVA: tf.Variable;
  loraVB: tf.Variable;
}

export interface TinyDecoder {
  config: TinyDecoderConfig;
  embedding: tf.Variable;
  layers: LayerWeights[];
  finalNorm: tf.Variable;
  output: tf.Variable;
  /** Every variable, base weights first. */
  allVariables(): tf.Variable[];
  /** The LoRA adapter variables only (what a CPT step trains). */
  loraVariables(): tf.Variable[];
  dispose(): void;
}

export function createTinyDecoder(config: TinyDecoderConfig): TinyDecoder {
  let seed = config.seed;
  const headDim = config.dim / config.heads;
  const normal = (shape: number[], std: number): tf.Variable =>
    tf.variable(tf.randomNormal(shape, 0, std, 'float32', seed++), true);
  const ones = (n: number): tf.Variable => tf.variable(tf.ones([n]), true);
  const std = config.initStd ?? 0.02;
  const layers: LayerWeights[] = [];
  for (let l = 0; l < config.layers; l++) {
    layers.push({
      attnNorm: ones(config.dim),
      wq: normal([config.dim, config.dim], std),
      wk: normal([config.dim, config.kvHeads * headDim], std),
      wv: normal([config.dim, config.kvHeads * headDim], std),
      wo: normal([config.dim, config.dim], std),
      ffnNorm: ones(config.dim),
      w1: normal([config.dim, config.hiddenDim], std),
      w2: normal([config.hiddenDim, config.dim], std),
      w3: normal([config.dim, config.hiddenDim], std),
      loraQA: normal([config.dim, config.loraRank], std),
      // Non-zero B (unlike the usual zero init) so gradients flow into A as well.
      loraQB: normal([config.loraRank, config.dim], std),
      loraVA: normal([config.dim, config.loraRank], std),
      loraVB: normal([config.loraRank, config.kvHeads * headDim], std),
    });
  }
  const embedding = normal([config.vocab, config.dim], std);
  const finalNorm = ones(config.dim);
  const output = normal([config.dim, config.vocab], std);
  const loraVariables = (): tf.Variable[] => layers.flatMap((w) => [w.loraQA, w.loraQB, w.loraVA, w.loraVB]);
  const allVariables = (): tf.Variable[] => [
    embedding,
    ...layers.flatMap((w) => [w.attnNorm, w.wq, w.wk, w.wv, w.wo, w.ffnNorm, w.w1, w.w2, w.w3]),
    finalNorm,
    output,
    ...loraVariables(),
  ];
  return {
    config,
    embedding,
    layers,
    finalNorm,
    output,
    allVariables,
    loraVariables,
    dispose: () => allVariables().forEach((v) => v.dispose()),
  };
}

function rmsNorm(x: tf.Tensor2D, weight: tf.Tensor1D): tf.Tensor2D {
  const meanSquare = tf.mean(tf.square(x), -1, true);
  return tf.mul(tf.mul(x, tf.rsqrt(tf.add(meanSquare, 1e-5))), weight);
}

/** Rotary embedding in the rotate-half form: [x1, x2] → [x1·cos − x2·sin, x1·sin + x2·cos]. */
function rope(x: tf.Tensor4D, cos: tf.Tensor2D, sin: tf.Tensor2D): tf.Tensor4D {
  const [b, h, t, d] = x.shape;
  const half = d / 2;
  const x1 = tf.slice(x, [0, 0, 0, 0], [b, h, t, half]);
  const x2 = tf.slice(x, [0, 0, 0, half], [b, h, t, half]);
  return tf.concat(
    [tf.sub(tf.mul(x1, cos), tf.mul(x2, sin)), tf.add(tf.mul(x1, sin), tf.mul(x2, cos))],
    3,
  ) as tf.Tensor4D;
}

function ropeTables(seqLen: number, headDim: number): { cos: tf.Tensor2D; sin: tf.Tensor2D } {
  const half = headDim / 2;
  const angles = new Float32Array(seqLen * half);
  for (let p = 0; p < seqLen; p++) {
    for (let i = 0; i < half; i++) angles[p * half + i] = p / Math.pow(10000, (2 * i) / headDim);
  }
  const angle = tf.tensor2d(angles, [seqLen, half]);
  return { cos: tf.cos(angle), sin: tf.sin(angle) };
}

/** Mean next-token cross-entropy of `tokens` ([batch, seqLen] int32) predicting `targets`. */
export function tinyDecoderLoss(model: TinyDecoder, tokens: tf.Tensor2D, targets: tf.Tensor2D): tf.Scalar {
  const { dim, heads, kvHeads, vocab } = model.config;
  const [batch, seqLen] = tokens.shape;
  const headDim = dim / heads;
  const groups = heads / kvHeads;
  const rows = batch * seqLen;
  const { cos, sin } = ropeTables(seqLen, headDim);
  const maskValues = new Float32Array(seqLen * seqLen);
  for (let i = 0; i < seqLen; i++) for (let j = i + 1; j < seqLen; j++) maskValues[i * seqLen + j] = -1e9;
  const causalMask = tf.tensor2d(maskValues, [seqLen, seqLen]);
  const scale = 1 / Math.sqrt(headDim);

  let x = tf.gather(model.embedding, tf.reshape(tokens, [rows])) as tf.Tensor2D;
  for (const w of model.layers) {
    const h = rmsNorm(x, w.attnNorm as tf.Tensor1D);
    const q: tf.Tensor2D = tf.add(tf.matMul(h, w.wq), tf.matMul(tf.matMul(h, w.loraQA), w.loraQB));
    const k: tf.Tensor2D = tf.matMul(h, w.wk);
    const v: tf.Tensor2D = tf.add(tf.matMul(h, w.wv), tf.matMul(tf.matMul(h, w.loraVA), w.loraVB));
    const toHeads = (t: tf.Tensor2D, n: number): tf.Tensor4D =>
      tf.transpose(tf.reshape(t, [batch, seqLen, n, headDim]), [0, 2, 1, 3]);
    // Tiling the [seqLen, headDim] block along axis 2 then folding it into the head axis gives
    // head kv·groups + g = kv head kv (rank-4 tile, whose gradient tfjs implements).
    const repeatKv = (t: tf.Tensor4D): tf.Tensor4D =>
      tf.reshape(tf.tile(t, [1, 1, groups, 1]), [batch, heads, seqLen, headDim]);
    const qh = rope(toHeads(q, heads), cos, sin);
    const kh = repeatKv(rope(toHeads(k, kvHeads), cos, sin));
    const vh = repeatKv(toHeads(v, kvHeads));
    const scores = tf.add(tf.mul(tf.matMul(qh, kh, false, true), scale), causalMask);
    const attended = tf.matMul(tf.softmax(scores), vh);
    const merged = tf.reshape(tf.transpose(attended, [0, 2, 1, 3]), [rows, dim]);
    x = tf.add(x, tf.matMul(merged, w.wo));
    const f = rmsNorm(x, w.ffnNorm as tf.Tensor1D);
    const gate = tf.matMul(f, w.w1);
    const swiglu = tf.mul(tf.mul(gate, tf.sigmoid(gate)), tf.matMul(f, w.w3));
    x = tf.add(x, tf.matMul(swiglu, w.w2));
  }
  const logits = tf.matMul(rmsNorm(x, model.finalNorm as tf.Tensor1D), model.output);
  const labels = tf.oneHot(tf.reshape(targets, [rows]), vocab);
  return tf.losses.softmaxCrossEntropy(labels, logits) as tf.Scalar;
}

/** Deterministic pseudo-random token batch (next-token targets are the shifted tokens). */
export function tinyDecoderBatch(
  config: TinyDecoderConfig,
  batch: number,
): { tokens: tf.Tensor2D; targets: tf.Tensor2D } {
  const n = batch * (config.seqLen + 1);
  const ids = new Int32Array(n);
  // 32-bit LCG in integer arithmetic (Math.imul) and taking the high bits: plain JS doubles
  // lose precision past 2^53 and an LCG's low bits cycle quickly, both of which collapse the batch
  // into repeated tokens (and then attention gets no gradient).
  let state = (config.seed * 2654435761 + 1) >>> 0;
  for (let i = 0; i < n; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    ids[i] = Math.floor((state / 4294967296) * config.vocab);
  }
  const all = tf.tensor2d(ids, [batch, config.seqLen + 1], 'int32');
  const tokens = tf.slice(all, [0, 0], [batch, config.seqLen]);
  const targets = tf.slice(all, [0, 1], [batch, config.seqLen]);
  all.dispose();
  return { tokens, targets };
}
