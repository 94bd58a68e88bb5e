import * as tf from '@tensorflow/tfjs-core';

/**
 * Below this many elements of the one-hot matrix (lookups × table rows) the backward pass builds
 * the table gradient as oneHot(indices)ᵀ · dy (one dense matmul, which every backend runs well and
 * fast native matmul kernels accelerate); above it, a scatter-add with `tf.scatterND`, whose cost
 * grows with the number of lookups only, not with the table size.
 */
export const ONE_HOT_GRADIENT_MAX_ELEMENTS = 1 << 20;

/** How the table gradient of an embedding lookup is computed. */
export type EmbeddingGradientMethod = 'auto' | 'one-hot' | 'scatter';

function tableGradient(
  indices: tf.Tensor1D,
  dy: tf.Tensor2D,
  numRows: number,
  method: EmbeddingGradientMethod,
): tf.Tensor2D {
  const useOneHot =
    method === 'one-hot' || (method === 'auto' && indices.size * numRows <= ONE_HOT_GRADIENT_MAX_ELEMENTS);
  if (useOneHot) {
    // oneHot in int32 then cast: the wasm OneHot kernel ignores a float32 dtype and writes int32
    // bits into the float tensor (1 reads as 1.4e-45); caught by embedding.spec.ts.
    return tf.matMul(tf.cast(tf.oneHot(indices, numRows), 'float32'), dy, true, false);
  }
  // ScatterNd sums the updates of duplicate indices (TensorFlow semantics), which is exactly the
  // accumulation an embedding gradient needs when an item occurs several times in a batch.
  return tf.scatterND(tf.expandDims(indices, 1), dy, [numRows, dy.shape[1]]);
}

/**
 * `tf.gather(table, indices)` with a hand-written gradient.
 *
 * Why: tfjs differentiates `gather` through `UnsortedSegmentSum`, which the cpu backend runs as a
 * slow per-segment loop (it materialises a mask per segment) and which the wasm backend does not
 * implement at all, so training through a plain `tf.gather` is either slow or impossible there.
 * The backward pass here is a single scatter-add (or a one-hot matmul for small problems), both of
 * which exist on every backend.
 *
 * `indices` may have any shape; the result has shape `[...indices.shape, table.shape[1]]`.
 */
export function embeddingLookup(
  table: tf.Tensor2D,
  indices: tf.Tensor,
  method: EmbeddingGradientMethod = 'auto',
): tf.Tensor {
  if (indices.dtype !== 'int32')
    throw new Error(`embeddingLookup: indices must be int32, got ${indices.dtype}`);
  const [numRows, width] = table.shape;
  // customGrad passes the inputs followed by the save function; only the table gets a real
  // gradient (the int32 indices get zeros, which the optimizer never sees).
  const lookup = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [tableInput, indexInput, save] = args as [tf.Tensor2D, tf.Tensor1D, tf.GradSaveFunc];
    save([indexInput]);
    return {
      value: tf.gather(tableInput, indexInput),
      gradFunc: (dy: tf.Tensor2D, saved: tf.Tensor[]) => [
        tableGradient(saved[0] as tf.Tensor1D, dy, numRows, method),
        tf.zerosLike(saved[0]),
      ],
    };
  });
  return tf.tidy(() => {
    const flat = tf.reshape(indices, [indices.size]);
    const rows = lookup(table, flat);
    return tf.reshape(rows, [...indices.shape, width]);
  });
}
