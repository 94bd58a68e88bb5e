import * as tf from '@tensorflow/tfjs-core';
import { nativeKernelsActive } from './index';
import { loadNativeAddon } from './native-addon';
import type { LayerWeights } from '../weights';

/** One decoder block's weights as tensors, [out, in] rows as in `LlamaModel.layers`. */
export type DecoderLayerWeights = Readonly<Record<keyof LayerWeights, tf.Tensor>>;

/** What one fused block reads besides its weights. */
export interface DecoderLayerInputs {
  /** Residual stream of the new columns, [B·T, dim] (row b·T + t). */
  readonly x: tf.Tensor2D;
  readonly batch: number;
  readonly time: number;
  /** RoPE angles of the new columns, [T, hs] (same positions for every row) or [B·T, hs]. */
  readonly cos: tf.Tensor2D;
  readonly sin: tf.Tensor2D;
  /**
   * Keys/values (after RoPE) of earlier columns, [P, kvHeads, Tp, hs]; row b of the input
   * attends to row `pastRows[b]` (default b, then P = B). Null when nothing is cached.
   */
  readonly pastK: tf.Tensor4D | null;
  readonly pastV: tf.Tensor4D | null;
  readonly pastRows?: Int32Array | null;
  /** [B, Tp], 1 for real and 0 for padded cached columns (already per input row); null = all real. */
  readonly pastMask: tf.Tensor2D | null;
  /** [B, T], 1 for real and 0 for padded new columns; null = all real. */
  readonly newMask: tf.Tensor2D | null;
  readonly heads: number;
  readonly kvHeads: number;
  readonly eps: number;
}

export interface DecoderLayerOutputs {
  /** Residual stream after the block, [B·T, dim]. */
  readonly x: tf.Tensor2D;
  /** The new columns' keys/values after RoPE, [B, kvHeads, T, hs] (the KV cache layout). */
  readonly k: tf.Tensor4D;
  readonly v: tf.Tensor4D;
}

/** The addon's `decoderLayer` argument object (libs/lm/native/src/decoder_layer.cc). */
export interface NativeDecoderLayerArgs extends LayerWeights {
  x: Float32Array;
  out: Float32Array;
  cos: Float32Array;
  sin: Float32Array;
  cosRows: number;
  pastK: Float32Array | null;
  pastV: Float32Array | null;
  pastRows: Int32Array | null;
  pastMask: Float32Array | null;
  newMask: Float32Array | null;
  newK: Float32Array;
  newV: Float32Array;
  batch: number;
  time: number;
  past: number;
  pastBatch: number;
  dim: number;
  heads: number;
  kvHeads: number;
  hidden: number;
  eps: number;
}

/**
 * Whether `LlamaModel` may run its blocks through the fused native kernel: native kernels on the
 * current `cpu` backend, an addon that has it, and not switched off (`CPREC_FUSED_DECODER=0`).
 * The model also requires that no gradient is being recorded (the kernel has none) and that LoRA,
 * if any, is merged.
 */
export function fusedDecoderAvailable(): boolean {
  return (
    process.env.CPREC_FUSED_DECODER !== '0' &&
    nativeKernelsActive() &&
    tf.getBackend() === 'cpu' &&
    loadNativeAddon().addon?.decoderLayer !== undefined
  );
}

/**
 * One LLaMA decoder block for inference in a single native call — exactly the op graph of
 * `LlamaModel.forward` (RMSNorm → q/k/v → interleaved RoPE → grouped-query attention over cached
 * and new keys, causal within the new columns, padded keys masked → wo → residual → RMSNorm →
 * SwiGLU → residual), without gradients.
 *
 * Why: on serving's tiny model a block is ~110 tfjs ops whose dispatch, allocation and
 * small-matrix overhead dwarf the arithmetic (docs/serving.md). Padding query rows (newMask 0)
 * get a zero attention output instead of the graph's average over masked keys: no real row ever
 * reads them.
 */
export function fusedDecoderLayer(
  weights: DecoderLayerWeights,
  inputs: DecoderLayerInputs,
): DecoderLayerOutputs {
  const addon = loadNativeAddon().addon;
  if (!addon?.decoderLayer) throw new Error('the fused decoder layer needs the native addon');
  const { batch: B, time: T, heads, kvHeads } = inputs;
  const [rows, dim] = inputs.x.shape;
  if (rows !== B * T) throw new Error(`x has ${rows} rows, expected batch ${B} × time ${T}`);
  const hs = dim / heads;
  const hidden = weights.w1.shape[0];
  const past = inputs.pastK ? inputs.pastK.shape[2] : 0;
  const pastBatch = inputs.pastK ? inputs.pastK.shape[0] : B;
  const out = new Float32Array(B * T * dim);
  const newK = new Float32Array(B * kvHeads * T * hs);
  const newV = new Float32Array(B * kvHeads * T * hs);
  addon.decoderLayer({
    x: float32(inputs.x),
    out,
    attnNorm: float32(weights.attnNorm),
    wq: float32(weights.wq),
    wk: float32(weights.wk),
    wv: float32(weights.wv),
    wo: float32(weights.wo),
    ffnNorm: float32(weights.ffnNorm),
    w1: float32(weights.w1),
    w2: float32(weights.w2),
    w3: float32(weights.w3),
    cos: float32(inputs.cos),
    sin: float32(inputs.sin),
    cosRows: inputs.cos.shape[0],
    pastK: inputs.pastK ? float32(inputs.pastK) : null,
    pastV: inputs.pastV ? float32(inputs.pastV) : null,
    pastRows: inputs.pastRows ?? null,
    pastMask: inputs.pastMask ? float32(inputs.pastMask) : null,
    newMask: inputs.newMask ? float32(inputs.newMask) : null,
    newK,
    newV,
    batch: B,
    time: T,
    past,
    pastBatch,
    dim,
    heads,
    kvHeads,
    hidden,
    eps: inputs.eps,
  });
  return {
    x: tf.tensor2d(out, [B * T, dim]),
    k: tf.tensor4d(newK, [B, kvHeads, T, hs]),
    v: tf.tensor4d(newV, [B, kvHeads, T, hs]),
  };
}

/** The tensor's values; on the cpu backend this is its own buffer, not a copy. */
function float32(t: tf.Tensor): Float32Array {
  if (t.dtype !== 'float32') throw new Error(`the fused decoder layer needs float32, got ${t.dtype}`);
  return t.dataSync() as Float32Array;
}
