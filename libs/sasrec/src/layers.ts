import * as tf from '@tensorflow/tfjs-core';

/** Additive attention bias for masked-out keys: large but finite, so fully masked rows stay NaN-free. */
export const MASKED_LOGIT = -1e9;

/** x · w + b over the last axis of a tensor of any rank ≥ 2. */
export function linear(x: tf.Tensor, w: tf.Tensor2D, b?: tf.Tensor1D): tf.Tensor {
  const inner = x.shape[x.shape.length - 1];
  const flat = tf.reshape(x, [-1, inner]) as tf.Tensor2D;
  const projected = b ? tf.add(tf.matMul(flat, w), b) : tf.matMul(flat, w);
  return tf.reshape(projected, [...x.shape.slice(0, -1), w.shape[1]]);
}

/** Layer normalisation over the last axis (tfjs-core has no fused op for it). */
export function layerNorm(x: tf.Tensor, gamma: tf.Tensor1D, beta: tf.Tensor1D, epsilon = 1e-8): tf.Tensor {
  const { mean, variance } = tf.moments(x, -1, true);
  return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, epsilon))), gamma), beta);
}

/** Dropout that is a no-op outside training; `seed` makes the mask reproducible. */
export function maybeDropout(x: tf.Tensor, rate: number, training: boolean, seed: number): tf.Tensor {
  return training && rate > 0 ? tf.dropout(x, rate, undefined, seed) : x;
}

/**
 * Left-padded item windows of one batch, both as the int32 tensor [size, maxLen] the embedding
 * lookup needs and as the host array masks are built from.
 */
export interface WindowBatch {
  ids: Int32Array;
  size: number;
  maxLen: number;
  tensor: tf.Tensor2D;
}

export function windowBatch(ids: Int32Array, size: number, maxLen: number): WindowBatch {
  return { ids, size, maxLen, tensor: tf.tensor2d(ids, [size, maxLen], 'int32') };
}

/*
 * The masks below are built on the host at full shape rather than with broadcasting tensor ops
 * (e.g. x · mask[B, L, 1]): the ids are already in JS, and same-shape element-wise ops are the fast
 * path of every backend, whereas broadcasting binary ops on the tfjs cpu backend compute an index
 * per element and were the largest cost of a SASRec training step in profiles.
 */

/** 1 at item positions, 0 at padding, repeated over a last axis of `width`: [size, maxLen, width]. */
export function timelineMask(batch: WindowBatch, width: number): tf.Tensor3D {
  const { ids, size, maxLen } = batch;
  const values = new Float32Array(size * maxLen * width);
  for (let i = 0; i < size * maxLen; i++) if (ids[i] !== 0) values.fill(1, i * width, (i + 1) * width);
  return tf.tensor3d(values, [size, maxLen, width]);
}

/**
 * Additive attention bias [size, maxLen, maxLen] allowing query i to see key j iff j ≤ i (causal)
 * and key j is an item, not padding.
 */
export function causalPaddingBias(batch: WindowBatch): tf.Tensor3D {
  const { ids, size, maxLen } = batch;
  const values = new Float32Array(size * maxLen * maxLen).fill(MASKED_LOGIT);
  for (let b = 0; b < size; b++) {
    for (let i = 0; i < maxLen; i++) {
      const row = (b * maxLen + i) * maxLen;
      for (let j = 0; j <= i; j++) if (ids[b * maxLen + j] !== 0) values[row + j] = 0;
    }
  }
  return tf.tensor3d(values, [size, maxLen, maxLen]);
}

export interface AttentionWeights {
  wq: tf.Tensor2D;
  bq: tf.Tensor1D;
  wk: tf.Tensor2D;
  bk: tf.Tensor1D;
  wv: tf.Tensor2D;
  bv: tf.Tensor1D;
  wo: tf.Tensor2D;
  bo: tf.Tensor1D;
}

/**
 * Multi-head scaled dot-product attention. `queries` and `keys` are [B, L, H]; `bias` is the
 * additive mask [B, L, L] shared by all heads; dropout applies to the attention weights.
 */
export function multiHeadAttention(
  queries: tf.Tensor,
  keys: tf.Tensor,
  bias: tf.Tensor3D,
  weights: AttentionWeights,
  numHeads: number,
  dropout: number,
  training: boolean,
  seed: number,
): tf.Tensor {
  const [batch, length, hidden] = queries.shape;
  const headDim = hidden / numHeads;
  // [B, L, H] → [B·heads, L, headDim]
  // (With one head both reshuffles are identities; skipping them saves two full copies.)
  const splitHeads = (x: tf.Tensor): tf.Tensor3D =>
    numHeads === 1
      ? (x as tf.Tensor3D)
      : tf.reshape(tf.transpose(tf.reshape(x, [batch, length, numHeads, headDim]), [0, 2, 1, 3]), [
          batch * numHeads,
          length,
          headDim,
        ]);
  const q = splitHeads(linear(queries, weights.wq, weights.bq));
  const k = splitHeads(linear(keys, weights.wk, weights.bk));
  const v = splitHeads(linear(keys, weights.wv, weights.bv));
  let logits = tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(headDim));
  const headBias =
    numHeads === 1
      ? bias
      : tf.reshape(tf.tile(tf.expandDims(bias, 1), [1, numHeads, 1, 1]), [batch * numHeads, length, length]);
  logits = tf.add(logits, headBias);
  const attention = maybeDropout(tf.softmax(logits), dropout, training, seed);
  const context = tf.matMul(attention as tf.Tensor3D, v);
  const merged =
    numHeads === 1
      ? context
      : tf.reshape(tf.transpose(tf.reshape(context, [batch, numHeads, length, headDim]), [0, 2, 1, 3]), [
          batch,
          length,
          hidden,
        ]);
  return linear(merged, weights.wo, weights.bo);
}
