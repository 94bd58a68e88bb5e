import * as tf from '@tensorflow/tfjs-core';
import { nativeKernelsActive } from './index';
import { loadNativeAddon } from './native-addon';

/**
 * Scaled-dot-product attention for grouped query heads, fused into one native kernel per
 * direction when the native kernels run the `cpu` backend.
 *
 * Why not tfjs ops: profiling the LoRA training step (docs/kernels.md) showed the score tensors
 * ([B, kvHeads, rows, keys], 16 MB per layer at batch 8 × 256) dominating the step, because the
 * op-by-op graph streams them through memory about ten times per layer (bias add, softmax, two
 * matmuls, and the softmax gradient's Mul/Sum/Sub/Mul). The fused kernel handles one
 * (batch, kv head) at a time while its scores are in cache.
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
    loadNativeAddon().addon?.attentionForward !== undefined
  );
}

function fusedAttention(
  q: tf.Tensor4D,
  k: tf.Tensor4D,
  v: tf.Tensor4D,
  bias: tf.Tensor4D | null,
  timeRows: number,
): tf.Tensor4D {
  const addon = loadNativeAddon().addon;
  if (!addon) throw new Error('fused attention needs the native addon');
  const [B, G, rows, head] = q.shape;
  const keys = k.shape[2];
  if (k.shape[0] !== B || k.shape[1] !== G || k.shape[3] !== head || !sameShape(k.shape, v.shape))
    throw new Error(`attention shapes differ: q [${q.shape}], k [${k.shape}], v [${v.shape}]`);
  if (rows % timeRows !== 0) throw new Error(`rows ${rows} are not blocks of ${timeRows}`);
  if (bias && (bias.shape[1] !== 1 || bias.shape[2] !== timeRows || bias.shape[3] !== keys))
    throw new Error(`bias shape [${bias.shape}] is not [1|${B}, 1, ${timeRows}, ${keys}]`);
  if (bias && bias.shape[0] !== 1 && bias.shape[0] !== B)
    throw new Error(`bias batch ${bias.shape[0]} is neither 1 nor ${B}`);
  const biasValues = bias ? float32(bias) : null;
  const biasPerBatch = bias !== null && bias.shape[0] === B && B > 1;
  const units = B * G;
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [qIn, kIn, vIn] = args as tf.Tensor[];
    const save = args[3] as tf.GradSaveFunc;
    const probs = new Float32Array(units * rows * keys);
    const out = new Float32Array(units * rows * head);
    addon.attentionForward(
      float32(qIn),
      float32(kIn),
      float32(vIn),
      biasValues,
      probs,
      out,
      units,
      rows,
      keys,
      head,
      timeRows,
      G,
      biasPerBatch,
    );
    const p = tf.tensor4d(probs, [B, G, rows, keys]);
    save([qIn, kIn, vIn, p]);
    return {
      value: tf.tensor4d(out, [B, G, rows, head]),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sq, sk, sv, sp] = saved;
        const dq = new Float32Array(units * rows * head);
        const dk = new Float32Array(units * keys * head);
        const dv = new Float32Array(units * keys * head);
        addon.attentionBackward(
          float32(sq),
          float32(sk),
          float32(sv),
          float32(sp),
          float32(dy),
          dq,
          dk,
          dv,
          units,
          rows,
          keys,
          head,
        );
        return [
          tf.tensor4d(dq, [B, G, rows, head]),
          tf.tensor4d(dk, [B, G, keys, head]),
          tf.tensor4d(dv, [B, G, keys, head]),
        ];
      },
    };
  });
  return op(q, k, v);
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** The tensor's values; on the cpu backend this is its own buffer, not a copy. */
function float32(t: tf.Tensor): Float32Array {
  if (t.dtype !== 'float32') throw new Error(`fused attention needs float32, got ${t.dtype}`);
  return t.dataSync() as Float32Array;
}
