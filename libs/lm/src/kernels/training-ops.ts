import * as tf from '@tensorflow/tfjs-core';
import { nativeKernelsActive } from './index';
import { AdamWAttrs, LoraLinearLayout, TRAINING_KERNELS } from './training-kernels';

export type { AdamWAttrs } from './training-kernels';

/**
 * The pieces of a LLaMA training step as single fused native kernels when the native kernels run
 * the `cpu` backend, and as the tfjs op graph they replace everywhere else (JS cpu, wasm,
 * tfjs-node, or `CPREC_FUSED_TRAINING=0`). Both paths are differentiable and agree to float
 * rounding (training-ops.spec.ts).
 *
 * Why: after the fused attention, a SmolLM2 LoRA step spent about half its kernel time in
 * element-wise ops and the loss (docs/kernels.md): each tfjs op streams whole activations through
 * memory and allocates its result, and RMSNorm, SwiGLU and RoPE are 5–8 ops each forward and
 * more backward; the loss built [rows, 49,152] tensors for max, exp, one-hot and their gradients.
 */
export function fusedTrainingAvailable(): boolean {
  return (
    process.env.CPREC_FUSED_TRAINING !== '0' &&
    nativeKernelsActive() &&
    tf.getBackend() === 'cpu' &&
    tf.getKernel(TRAINING_KERNELS.loraLinear, 'cpu') !== undefined
  );
}

function float32(...tensors: tf.Tensor[]): boolean {
  return tensors.every((t) => t.dtype === 'float32');
}

function run<T extends tf.Tensor | tf.Tensor[]>(
  name: string,
  inputs: tf.NamedTensorMap | tf.Tensor[],
  attrs: tf.NamedAttrMap = {},
): T {
  return tf.engine().runKernel(name, inputs as unknown as tf.NamedTensorMap, attrs) as T;
}

function shape(t: tf.Tensor): string {
  return `[${t.shape.join(', ')}]`;
}

/** x · rsqrt(mean(x², last axis) + eps) · w, for x [..., dim] and w [dim]. */
export function rmsNorm<T extends tf.Tensor>(x: T, w: tf.Tensor, eps: number): T {
  if (w.rank !== 1 || x.rank < 1 || x.shape[x.rank - 1] !== w.shape[0])
    throw new Error(`rmsNorm: weight ${shape(w)} does not match the last axis of x ${shape(x)}`);
  if (fusedTrainingAvailable() && float32(x, w)) return run<T>(TRAINING_KERNELS.rmsNorm, { x, w }, { eps });
  return tf.tidy(() => tf.mul(tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), eps))), w)) as T;
}

/** silu(gate) · up = gate · sigmoid(gate) · up, element-wise (the SwiGLU feed-forward's gate). */
export function swiglu<T extends tf.Tensor>(gate: T, up: T): T {
  if (gate.shape.length !== up.shape.length || gate.shape.some((d, i) => d !== up.shape[i]))
    throw new Error(`swiglu: gate ${shape(gate)} and up ${shape(up)} differ`);
  if (fusedTrainingAvailable() && float32(gate, up)) return run<T>(TRAINING_KERNELS.swiglu, { gate, up });
  return tf.tidy(() => tf.mul(tf.mul(gate, tf.sigmoid(gate)), up)) as T;
}

export interface RopeOptions {
  /** Multiplies the rotated values (the attention scale folded into q). Default 1. */
  scale?: number;
  /** Return [B, H, T, hs] (what attention reads) instead of x's [B, T, H, hs]. */
  headsFirst?: boolean;
  /**
   * The graph path's pair-swap matrix [hs, hs] (x·R = (−x1, x0) per pair), if the caller keeps
   * one; otherwise it is built per call.
   */
  rotation?: tf.Tensor2D;
}

/** The pair-swap matrix of interleaved RoPE: (x·R) per adjacent pair is (−x1, x0). */
export function ropeRotation(hs: number): tf.Tensor2D {
  const rot = new Float32Array(hs * hs);
  for (let i = 0; i < hs; i += 2) {
    rot[(i + 1) * hs + i] = -1;
    rot[i * hs + i + 1] = 1;
  }
  return tf.tensor2d(rot, [hs, hs]);
}

/**
 * Interleaved rotary embedding of x [B, T, H, hs] with per-token tables cos/sin [T or B·T, hs]
 * (each pair's angle repeated): (x0, x1) → (x0·c − x1·s, x1·c + x0·s), times `scale`.
 */
export function rope(
  x: tf.Tensor4D,
  cos: tf.Tensor2D,
  sin: tf.Tensor2D,
  opts: RopeOptions = {},
): tf.Tensor4D {
  const [B, T, H, hs] = x.shape;
  const scale = opts.scale ?? 1;
  const headsFirst = opts.headsFirst ?? false;
  if (x.rank !== 4 || hs % 2 !== 0)
    throw new Error(`rope: x ${shape(x)} is not [B, T, heads, even head size]`);
  if (cos.rank !== 2 || cos.shape[1] !== hs || (cos.shape[0] !== T && cos.shape[0] !== B * T))
    throw new Error(`rope: cos ${shape(cos)} is not [${T} or ${B * T}, ${hs}]`);
  if (sin.shape.length !== 2 || sin.shape[0] !== cos.shape[0] || sin.shape[1] !== hs)
    throw new Error(`rope: sin ${shape(sin)} differs from cos ${shape(cos)}`);
  if (fusedTrainingAvailable() && float32(x, cos, sin))
    return run<tf.Tensor4D>(TRAINING_KERNELS.rope, { x, cos, sin }, { scale, headsFirst });
  return tf.tidy(() => {
    const pb = cos.shape[0] / T;
    const rot = opts.rotation ?? ropeRotation(hs);
    const rotated = tf.reshape(tf.matMul(tf.reshape(x, [B * T * H, hs]), rot), [B, T, H, hs]);
    let y: tf.Tensor = tf.add(
      tf.mul(x, tf.reshape(cos, [pb, T, 1, hs])),
      tf.mul(rotated, tf.reshape(sin, [pb, T, 1, hs])),
    );
    if (scale !== 1) y = tf.mul(y, scale);
    if (headsFirst) y = tf.transpose(y, [0, 2, 1, 3]);
    return y as tf.Tensor4D;
  });
}

/**
 * Σ_r weights[r] · −log softmax(logits[r])[targets[r]] / max(Σ weights, 1): the masked mean of the
 * causal-LM loss over rows of logits [R, vocab]. Rows with weight 0 are skipped by the fused
 * kernel (their gradient is 0); targets of those rows are not read.
 */
export function sparseCrossEntropy(
  logits: tf.Tensor2D,
  targets: tf.Tensor1D,
  weights: tf.Tensor1D,
): tf.Scalar {
  const [rows, vocab] = logits.shape;
  if (logits.rank !== 2) throw new Error(`sparseCrossEntropy: logits ${shape(logits)} are not [rows, vocab]`);
  if (targets.rank !== 1 || targets.shape[0] !== rows || targets.dtype !== 'int32')
    throw new Error(
      `sparseCrossEntropy: targets must be int32 [${rows}], got ${targets.dtype} ${shape(targets)}`,
    );
  if (weights.rank !== 1 || weights.shape[0] !== rows)
    throw new Error(`sparseCrossEntropy: weights ${shape(weights)} are not [${rows}]`);
  if (fusedTrainingAvailable() && float32(logits, weights)) {
    const [loss, lse] = run<tf.Tensor[]>(TRAINING_KERNELS.crossEntropy, { logits, targets, weights });
    lse.dispose(); // the tape keeps its own reference for the backward pass
    return loss as tf.Scalar;
  }
  return tf.tidy(() => {
    // One-hot pick instead of gather: its gradient is a dense multiply, not UnsortedSegmentSum.
    const picked = tf.sum(tf.mul(tf.logSoftmax(logits), tf.oneHot(targets, vocab)), -1);
    const count = tf.maximum(tf.sum(weights), 1);
    return tf.div(tf.neg(tf.sum(tf.mul(picked, weights))), count) as tf.Scalar;
  });
}

/**
 * 24 uniform bits for element `index` (flat, of the [rows, in] input) of a LoRA dropout with
 * `seed`: a hash, so the native kernel can redraw the forward's mask in the backward pass and
 * under any thread split; the same function as `DropoutDraw` in training_ops.cc.
 */
export function dropoutDraw(seed: number, index: number): number {
  return mix32((seed ^ mix32(index)) >>> 0) >>> 8;
}

function mix32(value: number): number {
  let x = value >>> 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b) >>> 0;
  x ^= x >>> 16;
  return x >>> 0;
}

/** Draws below this (of 2^24) are dropped: a fraction `rate` of them. */
function dropoutThreshold(rate: number): number {
  return Math.ceil(rate * 2 ** 24);
}

/** The multiplier of kept elements, 1/(1 − rate) in float32. */
function keepScale(rate: number): number {
  return Math.fround(1 / (1 - rate));
}

/** The dropout mask of `dropoutDraw` as a tensor [rows, cols]: 0 or 1/(1 − rate). */
export function dropoutMask(rows: number, cols: number, rate: number, seed: number): tf.Tensor2D {
  const threshold = dropoutThreshold(rate);
  const scale = keepScale(rate);
  const mask = new Float32Array(rows * cols);
  for (let i = 0; i < mask.length; i++) mask[i] = dropoutDraw(seed, i) >= threshold ? scale : 0;
  return tf.tensor2d(mask, [rows, cols]);
}

/** One projection y = [residual +] x·Wᵀ [+ scale·(x'·Aᵀ)·Bᵀ] of `loraProjections`. */
export interface ProjectionSpec {
  /** [out, in], the model's row layout. */
  w: tf.Tensor2D;
  /**
   * Adapter A [rank, in] and B [out, rank]. x' is x, or `input` when the adapter has its own
   * input, or x with dropout (`dropoutMask(rows, in, rate, seed)`, drawn inside the fused kernel).
   */
  lora?: { a: tf.Tensor2D; b: tf.Tensor2D; input?: tf.Tensor2D; dropout?: { rate: number; seed: number } };
  /** [rows, out], added to the result (the block's residual stream). */
  residual?: tf.Tensor2D;
}

/**
 * Linear projections of one input x [rows, in] with optional LoRA adapters and residuals: one
 * native call forward and one backward (dx summed over the projections, every adapter's dA and
 * dB), instead of five tfjs ops per projection forward (product, two adapter products, scale, add)
 * and a dozen backward. Base weights get a gradient only if they are trained.
 */
export function loraProjections(
  x: tf.Tensor2D,
  specs: readonly ProjectionSpec[],
  scale: number,
): tf.Tensor2D[] {
  const [rows, inDim] = x.shape;
  if (x.rank !== 2) throw new Error(`loraProjections: x ${shape(x)} is not [rows, in]`);
  for (const s of specs) {
    const out = s.w.shape[0];
    if (s.w.rank !== 2 || s.w.shape[1] !== inDim)
      throw new Error(`loraProjections: weight ${shape(s.w)} does not take inputs of width ${inDim}`);
    if (s.lora) {
      const { a, b, input } = s.lora;
      const rank = a.shape[0];
      if (a.rank !== 2 || a.shape[1] !== inDim || b.rank !== 2 || b.shape[0] !== out || b.shape[1] !== rank)
        throw new Error(
          `loraProjections: adapter A ${shape(a)}, B ${shape(b)} do not fit weight ${shape(s.w)}`,
        );
      if (input && (input.shape[0] !== rows || input.shape[1] !== inDim))
        throw new Error(`loraProjections: adapter input ${shape(input)} differs from x ${shape(x)}`);
      const dropout = s.lora.dropout;
      if (dropout && (input || !(dropout.rate >= 0 && dropout.rate < 1) || !Number.isInteger(dropout.seed)))
        throw new Error(
          'loraProjections: dropout needs a rate in [0, 1), an integer seed and no separate input',
        );
    }
    if (s.residual && (s.residual.shape[0] !== rows || s.residual.shape[1] !== out))
      throw new Error(`loraProjections: residual ${shape(s.residual)} is not [${rows}, ${out}]`);
  }
  const tensors = [x, ...specs.flatMap((s) => [s.w, ...(s.lora ? [s.lora.a, s.lora.b] : [])])];
  if (fusedTrainingAvailable() && rows > 0 && specs.length > 0 && float32(...tensors)) {
    const layout: LoraLinearLayout = {
      lora: specs.map((s) => (s.lora ? 1 : 0)),
      loraInput: specs.map((s) => (s.lora?.input ? 1 : 0)),
      residual: specs.map((s) => (s.residual ? 1 : 0)),
      dropoutThreshold: specs.map((s) => (s.lora?.dropout ? dropoutThreshold(s.lora.dropout.rate) : 0)),
      keepScale: specs.map((s) => (s.lora?.dropout ? keepScale(s.lora.dropout.rate) : 1)),
      seed: specs.map((s) => (s.lora?.dropout ? s.lora.dropout.seed >>> 0 : 0)),
    };
    const inputs: tf.Tensor[] = [x];
    for (const s of specs) {
      inputs.push(s.w);
      if (s.lora) {
        inputs.push(s.lora.a, s.lora.b);
        if (s.lora.input) inputs.push(s.lora.input);
      }
      if (s.residual) inputs.push(s.residual);
    }
    const out = run<tf.Tensor | tf.Tensor[]>(TRAINING_KERNELS.loraLinear, inputs, {
      ...layout,
      scale,
    } as unknown as tf.NamedAttrMap);
    return (Array.isArray(out) ? out : [out]) as tf.Tensor2D[];
  }
  return tf.tidy(() =>
    specs.map((s) => {
      let y: tf.Tensor2D = tf.matMul(x, s.w, false, true);
      if (s.lora) {
        const { dropout } = s.lora;
        const xin = dropout
          ? tf.mul(x, dropoutMask(rows, inDim, dropout.rate, dropout.seed))
          : (s.lora.input ?? x);
        const low = tf.matMul(tf.matMul(xin, s.lora.a, false, true), s.lora.b, false, true);
        y = tf.add(y, tf.mul(low, scale));
      }
      return s.residual ? tf.add(s.residual, y) : y;
    }),
  );
}

/**
 * Σ x² of each tensor, as numbers (squares in float32, each sum rounded to float32 like
 * `tf.sum(tf.square(t))`). One native call for all of them on the native cpu backend.
 */
export function sumsOfSquares(tensors: readonly tf.Tensor[]): number[] {
  if (tensors.length === 0) return [];
  if (fusedTrainingAvailable() && float32(...tensors))
    return tf.tidy(() => Array.from(run<tf.Tensor>(TRAINING_KERNELS.sumSquares, [...tensors]).dataSync()));
  return tf.tidy(() => tensors.map((t) => tf.sum(tf.square(t)).dataSync()[0]));
}

/**
 * One AdamW step for many variables in one native call: returns the new weights and moments per
 * entry (`AdamW.apply` assigns them). Only on the native cpu backend — callers check
 * `fusedTrainingAvailable()` and otherwise run their op graph.
 */
export function fusedAdamW(
  entries: ReadonlyArray<{ w: tf.Tensor; g: tf.Tensor; m: tf.Tensor; v: tf.Tensor }>,
  hyper: AdamWAttrs,
): Array<{ w: tf.Tensor; m: tf.Tensor; v: tf.Tensor }> {
  if (!fusedTrainingAvailable()) throw new Error('fusedAdamW needs the native cpu kernels');
  for (const e of entries)
    for (const t of [e.g, e.m, e.v])
      if (t.size !== e.w.size || t.dtype !== 'float32' || e.w.dtype !== 'float32')
        throw new Error(`fusedAdamW: gradient or moments ${shape(t)} do not match weight ${shape(e.w)}`);
  if (entries.length === 0) return [];
  const out = run<tf.Tensor[]>(
    TRAINING_KERNELS.adamw,
    entries.flatMap((e) => [e.w, e.g, e.m, e.v]),
    hyper as unknown as tf.NamedAttrMap,
  );
  const list = Array.isArray(out) ? out : [out];
  return entries.map((_, i) => ({ w: list[3 * i], m: list[3 * i + 1], v: list[3 * i + 2] }));
}
