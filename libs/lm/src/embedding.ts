import * as tf from '@tensorflow/tfjs-core';

/**
 * Row lookup `table[ids]` whose gradient is a scatter-add (`tf.scatterND` sums duplicate indices)
 * instead of tfjs's default Gather gradient, which goes through UnsortedSegmentSum — very slow on
 * the cpu backend and missing from some wasm builds. `ids` is int32 [N]; returns [N, dim].
 */
export function embeddingLookup(table: tf.Tensor2D, ids: tf.Tensor1D): tf.Tensor2D {
  const lookup = tf.customGrad<tf.Tensor2D>((...inputs: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const t = inputs[0] as tf.Tensor2D;
    const value = tf.gather(t, ids);
    const gradFunc = (dy: tf.Tensor2D): tf.Tensor => tf.scatterND(tf.expandDims(ids, 1), dy, t.shape);
    return { value, gradFunc };
  });
  return lookup(table);
}

/**
 * Replaces rows of `embedded` [N, dim] at flat indices `rows` by `vectors` [K, dim], as
 * `keep ⊙ embedded + S·vectors` with a one-hot selection matrix S [N, K]: differentiable in
 * `vectors` through matMul only (no Gather/UnsortedSegmentSum gradient).
 */
export function injectRows(
  embedded: tf.Tensor2D,
  rows: readonly number[],
  vectors: tf.Tensor2D,
): tf.Tensor2D {
  const n = embedded.shape[0];
  const k = rows.length;
  if (vectors.shape[0] !== k)
    throw new Error(`injected vectors have ${vectors.shape[0]} rows but ${k} positions were given`);
  if (vectors.shape[1] !== embedded.shape[1])
    throw new Error(`injected vectors have width ${vectors.shape[1]}, model dim is ${embedded.shape[1]}`);
  const sel = new Float32Array(n * k);
  const keep = new Float32Array(n).fill(1);
  rows.forEach((r, i) => {
    if (!Number.isInteger(r) || r < 0 || r >= n)
      throw new Error(`injected position ${r} out of range [0, ${n})`);
    if (keep[r] === 0) throw new Error(`injected position ${r} given twice`);
    sel[r * k + i] = 1;
    keep[r] = 0;
  });
  return tf.tidy(() =>
    tf.add(tf.mul(embedded, tf.tensor2d(keep, [n, 1])), tf.matMul(tf.tensor2d(sel, [n, k]), vectors)),
  );
}
