import * as tf from '@tensorflow/tfjs-core';
import { nativeKernelsActive } from './index';
import { TRAINING_KERNELS } from './training-kernels';

/**
 * Scaled-dot-product attention for grouped query heads, fused into one native kernel per
 * direction when the native kernels run the `cpu` backend.
 *
 * Why not tfjs ops: profiling the LoRA training step (docs/kernels.md) showed the score tensors
 * ([B, kvHeads, rows, keys], 16 MB per layer at batch 8 × 256) dominating the step, because the
 * op-by-op graph streams them through memory about ten times per layer (bias add, softmax, two
 * matmuls, and the softmax gradient's Mul/Sum/Sub/Mul). The fused kernel handles one
 * (batch, kv head) unit and block of rows at a time while its scores are in cache.
 *
 * Shapes: q [B, G, rows, head] (already scaled; rows = kvMul · T, the kvMul query heads sharing a
 * kv head stacked in blocks of T rows), k and v [B, G, keys, head], bias [1 or B, 1, T, keys]
 * (added to every head's scores; row r of a block reads bias row r mod T) or null. Returns
 * softmax(q kᵀ + bias) v, [B, G, rows, head]. The bias gets no gradient (it is a mask).
 */
export function groupedAttention(
  q: tf.Tensor4D,
  k: tf.Tensor4D,
  v: tf.Tensor4D,
  bias: tf.Tensor4D | null,
  timeRows: number,
): tf.Tensor4D {
  if (fusedAttentionAvailable()) return fusedAttention(q, k, v, bias, timeRows);
  return tf.tidy(() => {
    const [B, G, rows] = q.shape;
    let scores: tf.Tensor = tf.matMul(q, k, false, true);
    if (bias) {
      // Materialised at the full score shape: same-shape adds take the backends' fast path,
      // while broadcasting adds fall back to per-element index arithmetic on the JS cpu backend.
      const full = tf.tile(bias, [bias.shape[0] === B ? 1 : B, G, rows / timeRows, 1]);
      scores = tf.add(scores, full);
    }
    return tf.matMul(tf.softmax(scores), v) as tf.Tensor4D;
  });
}

/** Whether `groupedAttention` runs the fused native kernel (native kernels on the current `cpu` backend). */
export function fusedAttentionAvailable(): boolean {
  return (
    process.env.CPREC_FUSED_ATTENTION !== '0' &&
    nativeKernelsActive() &&
    tf.getBackend() === 'cpu' &&
    tf.getKernel(TRAINING_KERNELS.attention, 'cpu') !== undefined
  );
}

/**
 * The registered `CprecAttention` kernel (training-kernels.ts, native training_ops.cc): one call
 * per direction; the forward keeps each row's softmax max and 1/Σ, and the backward recomputes the
 * probabilities from them block by block instead of keeping [B, G, rows, keys] alive between the
 * passes. Row blocks skip the keys the causal mask hides.
 */
function fusedAttention(
  q: tf.Tensor4D,
  k: tf.Tensor4D,
  v: tf.Tensor4D,
  bias: tf.Tensor4D | null,
  timeRows: number,
): tf.Tensor4D {
  const [B, G, rows, head] = q.shape;
  const keys = k.shape[2];
  if (k.shape[0] !== B || k.shape[1] !== G || k.shape[3] !== head || !sameShape(k.shape, v.shape))
    throw new Error(`attention shapes differ: q [${q.shape}], k [${k.shape}], v [${v.shape}]`);
  if (rows % timeRows !== 0) throw new Error(`rows ${rows} are not blocks of ${timeRows}`);
  if (bias && (bias.shape[1] !== 1 || bias.shape[2] !== timeRows || bias.shape[3] !== keys))
    throw new Error(`bias shape [${bias.shape}] is not [1|${B}, 1, ${timeRows}, ${keys}]`);
  if (bias && bias.shape[0] !== 1 && bias.shape[0] !== B)
    throw new Error(`bias batch ${bias.shape[0]} is neither 1 nor ${B}`);
  for (const t of [q, k, v, ...(bias ? [bias] : [])])
    if (t.dtype !== 'float32') throw new Error(`fused attention needs float32, got ${t.dtype}`);
  const inputs = bias ? [q, k, v, bias] : [q, k, v];
  const [out, stats] = tf
    .engine()
    .runKernel(TRAINING_KERNELS.attention, inputs as unknown as tf.NamedTensorMap, {
      timeRows,
    }) as tf.Tensor[];
  stats.dispose(); // the tape keeps its own reference for the backward pass
  return out as tf.Tensor4D;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
