import * as tf from '@tensorflow/tfjs-core';
import {
  fusedAdamW,
  fusedTrainingAvailable,
  sparseCrossEntropy,
  sumsOfSquares,
} from './kernels/training-ops';
import { ForwardOptions, InjectedEmbeddings, LlamaModel } from './model';
import { TensorToWrite } from './safetensors';

/**
 * tfjs-core's CommonJS build ships no gradient definitions; libs/lm/src/kernels provides
 * `registerTfjsGradients()` which loads them. Required lazily so this file has no hard dependency
 * on the kernels module; a clear error explains what is missing.
 */
export function ensureGradientsRegistered(): void {
  if (tf.getGradient('RealDiv') && tf.getGradient('BatchMatMul')) return;
  let reason = '';
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const mod = require('./kernels/register-gradients') as { registerTfjsGradients?: () => void };
    mod.registerTfjsGradients?.();
  } catch (e) {
    reason = e instanceof Error ? e.message : String(e);
  }
  if (!tf.getGradient('RealDiv'))
    throw new Error(
      `tfjs gradients are not registered, training is impossible${reason ? `: ${reason}` : ''}`,
    );
}

/**
 * Causal-LM loss: mean over counted targets of −log p(ids[t] | ids[<t]).
 * `lossMask[b][t] = 1` makes token t a target (predicted from column t−1); column 0 is never a
 * target. All-ones = plain CPT loss; ones on answer tokens only = LLaRA/SFT loss.
 */
export function causalLmLoss(logits: tf.Tensor3D, ids: tf.Tensor2D, lossMask: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => {
    const [B, T, V] = logits.shape;
    if (T < 2) throw new Error('causal LM loss needs at least 2 columns');
    if (fusedTrainingAvailable()) {
      // The fused kernel reads all B·T rows in place (no [B, T−1, V] slice): row (b, t) targets
      // ids[b, t+1] with weight lossMask[b, t+1], and each row's last column has weight 0.
      const shifted = (t: tf.Tensor2D, dtype: 'int32' | 'float32'): tf.Tensor1D =>
        tf.reshape(
          tf.pad(tf.cast(tf.slice(t, [0, 1], [B, T - 1]), dtype), [
            [0, 0],
            [0, 1],
          ]),
          [-1],
        );
      return sparseCrossEntropy(
        tf.reshape(logits, [B * T, V]),
        shifted(ids, 'int32'),
        shifted(lossMask, 'float32'),
      );
    }
    const pred = tf.slice(logits, [0, 0, 0], [B, T - 1, V]);
    const targets = tf.cast(tf.slice(ids, [0, 1], [B, T - 1]), 'int32');
    const mask = tf.cast(tf.slice(lossMask, [0, 1], [B, T - 1]), 'float32');
    // One-hot pick instead of gather: its gradient is a dense multiply, not UnsortedSegmentSum.
    const picked = tf.sum(
      tf.mul(tf.logSoftmax(pred), tf.reshape(tf.oneHot(tf.reshape(targets, [-1]), V), [B, T - 1, V])),
      -1,
    );
    const count = tf.maximum(tf.sum(mask), 1);
    return tf.div(tf.neg(tf.sum(tf.mul(picked, mask))), count) as tf.Scalar;
  });
}

/**
 * `causalLmLoss(model.forward(ids, opts), ids, lossMask)` with the classifier run only on the
 * rows that are targets (`LlamaModel.logitsAt`): the same value and gradients, without the
 * [B, T, vocab] logits of positions the mask ignores — on SmolLM2 (vocab 49,152) those logits
 * and the classifier product are the largest tensors of a step, and an SFT batch counts ~10
 * answer tokens of ~500. The mask is read to the host to choose the rows.
 */
export function modelCausalLmLoss(
  model: LlamaModel,
  inputIds: tf.Tensor2D | number[][],
  lossMask: tf.Tensor2D | number[][],
  opts: Omit<ForwardOptions, 'lastOnly'> = {},
): tf.Scalar {
  return tf.tidy(() => {
    const ids = Array.isArray(inputIds) ? tf.tensor2d(inputIds, undefined, 'int32') : inputIds;
    const mask = Array.isArray(lossMask) ? tf.tensor2d(lossMask) : lossMask;
    const [B, T] = ids.shape;
    if (T < 2) throw new Error('causal LM loss needs at least 2 columns');
    if (mask.shape[0] !== B || mask.shape[1] !== T)
      throw new Error(`loss mask [${mask.shape.join(', ')}] differs from ids [${B}, ${T}]`);
    const idValues = ids.dataSync();
    const maskValues = mask.dataSync();
    const rows: number[] = [];
    const targets: number[] = [];
    const weights: number[] = [];
    for (let b = 0; b < B; b++)
      for (let t = 0; t + 1 < T; t++) {
        const w = maskValues[b * T + t + 1];
        if (w === 0) continue;
        rows.push(b * T + t);
        targets.push(idValues[b * T + t + 1]);
        weights.push(w);
      }
    if (rows.length === 0) {
      // Nothing counts: one row with weight 0 keeps the loss (0) connected to the variables.
      rows.push(0);
      targets.push(idValues[1]);
      weights.push(0);
    }
    const logits = model.logitsAt(ids, rows, opts);
    return sparseCrossEntropy(logits, tf.tensor1d(targets, 'int32'), tf.tensor1d(weights, 'float32'));
  });
}

/** Global L2 norm of gradients (float32 sums of squares added in order, as `tf.addN` does). */
export function globalNorm(grads: Map<string, tf.Tensor>): number {
  const list = [...grads.values()];
  if (list.length === 0) return 0;
  if (fusedTrainingAvailable()) {
    let sum = 0;
    for (const s of sumsOfSquares(list)) sum = Math.fround(sum + s);
    return Math.sqrt(sum);
  }
  return tf.tidy(() => Math.sqrt(tf.addN(list.map((g) => tf.sum(tf.square(g)))).dataSync()[0]));
}

/** The factor `clipByGlobalNorm` scales by: maxNorm / (norm + 1e-6) above maxNorm, else 1. */
export function clipScale(norm: number, maxNorm: number): number {
  return !(norm > maxNorm) || !Number.isFinite(maxNorm) ? 1 : maxNorm / (norm + 1e-6);
}

/** Scales gradients so their global L2 norm is at most `maxNorm`; returns the norm before clipping. */
export function clipByGlobalNorm(
  grads: Map<string, tf.Tensor>,
  maxNorm: number,
): { grads: Map<string, tf.Tensor>; norm: number } {
  const norm = globalNorm(grads);
  const scale = clipScale(norm, maxNorm);
  if (scale === 1) return { grads, norm };
  const out = new Map<string, tf.Tensor>();
  for (const [k, g] of grads) out.set(k, tf.mul(g, scale));
  return { grads: out, norm };
}

export interface AdamWOptions {
  beta1?: number;
  beta2?: number;
  epsilon?: number;
  /** Decoupled weight decay (Loshchilov & Hutter): w ← w − lr·wd·w, applied separately from the Adam step. */
  weightDecay?: number;
}

/** Optimizer state for checkpoints: first/second moments per variable and the step count. */
export interface AdamWState {
  step: number;
  m: Record<string, { shape: number[]; data: Float32Array }>;
  v: Record<string, { shape: number[]; data: Float32Array }>;
}

/** AdamW with bias correction; the learning rate is given per step (the WSA schedule lives elsewhere). */
export class AdamW {
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
  readonly weightDecay: number;
  step = 0;
  private readonly m = new Map<string, tf.Variable>();
  private readonly v = new Map<string, tf.Variable>();

  constructor(opts: AdamWOptions = {}) {
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.999;
    this.epsilon = opts.epsilon ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0;
  }

  private moment(store: Map<string, tf.Variable>, name: string, like: tf.Tensor): tf.Variable {
    let s = store.get(name);
    if (!s) store.set(name, (s = tf.tidy(() => tf.variable(tf.zerosLike(like), false))));
    return s;
  }

  /**
   * One step with learning rate `lr`. `gradScale` multiplies the gradients first (what
   * `clipByGlobalNorm` would do, without materialising the scaled copies).
   */
  apply(vars: Map<string, tf.Variable>, grads: Map<string, tf.Tensor>, lr: number, gradScale = 1): void {
    this.step++;
    const bc1 = 1 - Math.pow(this.beta1, this.step);
    const bc2 = 1 - Math.pow(this.beta2, this.step);
    const entries = [...grads].map(([name, g]) => {
      const w = vars.get(name);
      if (!w) throw new Error(`gradient for unknown variable ${name}`);
      return { name, w, g, m: this.moment(this.m, name, w), v: this.moment(this.v, name, w) };
    });
    if (
      fusedTrainingAvailable() &&
      entries.every((e) => e.w.dtype === 'float32' && e.g.dtype === 'float32')
    ) {
      // One native call for every variable; the same float32 arithmetic as the graph below.
      const updated = fusedAdamW(entries, {
        lr,
        beta1: this.beta1,
        beta2: this.beta2,
        epsilon: this.epsilon,
        weightDecay: this.weightDecay,
        bc1,
        bc2,
        gradScale,
      });
      updated.forEach((u, i) => {
        const e = entries[i];
        e.w.assign(u.w);
        e.m.assign(u.m);
        e.v.assign(u.v);
        tf.dispose([u.w, u.m, u.v]);
      });
      return;
    }
    for (const { w, g: raw, m, v } of entries) {
      tf.tidy(() => {
        const g = gradScale === 1 ? raw : tf.mul(raw, gradScale);
        const mNew = tf.add(tf.mul(m, this.beta1), tf.mul(g, 1 - this.beta1));
        const vNew = tf.add(tf.mul(v, this.beta2), tf.mul(tf.square(g), 1 - this.beta2));
        m.assign(mNew);
        v.assign(vNew);
        const update = tf.div(tf.div(mNew, bc1), tf.add(tf.sqrt(tf.div(vNew, bc2)), this.epsilon));
        const decayed = this.weightDecay > 0 ? tf.mul(w, 1 - lr * this.weightDecay) : w;
        w.assign(tf.sub(decayed, tf.mul(update, lr)));
      });
    }
  }

  getState(): AdamWState {
    const dump = (s: Map<string, tf.Variable>): AdamWState['m'] =>
      Object.fromEntries(
        [...s].map(([k, t]) => [k, { shape: t.shape, data: (t.dataSync() as Float32Array).slice() }]),
      );
    return { step: this.step, m: dump(this.m), v: dump(this.v) };
  }

  setState(state: AdamWState): void {
    this.dispose();
    this.step = state.step;
    for (const [k, t] of Object.entries(state.m))
      this.m.set(
        k,
        tf.tidy(() => tf.variable(tf.tensor(t.data, t.shape), false)),
      );
    for (const [k, t] of Object.entries(state.v))
      this.v.set(
        k,
        tf.tidy(() => tf.variable(tf.tensor(t.data, t.shape), false)),
      );
  }

  /** State as safetensors entries (`m.<var>`, `v.<var>`) plus the step for the metadata. */
  stateTensors(): { step: number; tensors: Map<string, TensorToWrite> } {
    const s = this.getState();
    const tensors = new Map<string, TensorToWrite>();
    for (const [k, t] of Object.entries(s.m)) tensors.set(`m.${k}`, t);
    for (const [k, t] of Object.entries(s.v)) tensors.set(`v.${k}`, t);
    return { step: s.step, tensors };
  }

  /** Inverse of `stateTensors()` (e.g. after reading the safetensors file back). */
  loadStateTensors(step: number, tensors: Map<string, { shape: number[]; data: Float32Array }>): void {
    const state: AdamWState = { step, m: {}, v: {} };
    for (const [name, t] of tensors) {
      if (name.startsWith('m.')) state.m[name.slice(2)] = t;
      else if (name.startsWith('v.')) state.v[name.slice(2)] = t;
      else throw new Error(`optimizer state tensor ${name} is neither m.* nor v.*`);
    }
    this.setState(state);
  }

  dispose(): void {
    for (const t of [...this.m.values(), ...this.v.values()]) t.dispose();
    this.m.clear();
    this.v.clear();
    this.step = 0;
  }
}

/** One micro-batch for `Trainer.trainStep`. Arrays or tensors; tensors stay owned by the caller. */
export interface TrainBatch {
  /** [B, T] token ids. */
  inputIds: number[][] | tf.Tensor2D;
  /** [B, T] 1 where the token is a loss target (see causalLmLoss). */
  lossMask: number[][] | tf.Tensor2D;
  /** [B, T] 1 real / 0 padding; omit when nothing is padded. */
  attentionMask?: number[][] | tf.Tensor2D;
  /** Externally supplied embeddings (LLaRA hybrid prompts). */
  /**
   * Externally supplied embeddings. Pass a function when the vectors come from trainable variables
   * (e.g. LLaRA's projector over SASRec embeddings listed in `extraVariables`): it is called inside
   * the gradient tape, so those variables receive gradients.
   */
  inject?: InjectedEmbeddings | (() => InjectedEmbeddings);
}

export interface TrainerOptions extends AdamWOptions {
  /** Clip the (accumulated) gradient to this global norm; Infinity disables. Default 1. */
  maxGradNorm?: number;
  /** Micro-batches per optimizer update. Default 1. */
  accumulationSteps?: number;
  /** Further trainable variables updated with the model's (e.g. a projector producing injected vectors). */
  extraVariables?: Map<string, tf.Variable>;
}

export interface TrainStepInfo {
  loss: number;
  /** True when this micro-batch completed an accumulation window and the weights were updated. */
  applied: boolean;
  /** Global gradient norm before clipping (only when applied). */
  gradNorm?: number;
}

/**
 * Causal-LM training loop body for the CPT/SFT trainers: forward (training mode), masked loss,
 * gradients of the trainable variables (LoRA adapters by default), accumulation, clipping, AdamW.
 */
export class Trainer {
  readonly optimizer: AdamW;
  readonly maxGradNorm: number;
  readonly accumulationSteps: number;
  private accumulated = new Map<string, tf.Tensor>();
  private micro = 0;
  lastInfo: TrainStepInfo | null = null;

  constructor(
    readonly model: LlamaModel,
    private readonly opts: TrainerOptions = {},
  ) {
    this.optimizer = new AdamW(opts);
    this.maxGradNorm = opts.maxGradNorm ?? 1;
    this.accumulationSteps = Math.max(1, Math.floor(opts.accumulationSteps ?? 1));
  }

  /** Variables updated by this trainer, by name. */
  variables(): Map<string, tf.Variable> {
    const vars = this.model.trainableVariables();
    for (const [k, v] of this.opts.extraVariables ?? []) vars.set(`extra.${k}`, v);
    if (vars.size === 0)
      throw new Error('nothing to train: attach LoRA adapters or call model.setBaseTrainable(true)');
    return vars;
  }

  /** Loss without updating anything (evaluation). */
  evalLoss(batch: TrainBatch): number {
    return tf.tidy(() => this.loss(batch, false).dataSync()[0]);
  }

  private loss(batch: TrainBatch, training: boolean): tf.Scalar {
    const ids = Array.isArray(batch.inputIds)
      ? tf.tensor2d(batch.inputIds, undefined, 'int32')
      : batch.inputIds;
    const lossMask = Array.isArray(batch.lossMask) ? tf.tensor2d(batch.lossMask) : batch.lossMask;
    return modelCausalLmLoss(this.model, ids, lossMask, {
      attentionMask: batch.attentionMask,
      inject: typeof batch.inject === 'function' ? batch.inject() : batch.inject,
      training,
    });
  }

  /**
   * One micro-batch: accumulates gradients and, every `accumulationSteps` calls, clips and applies
   * AdamW with learning rate `lr`. Returns this micro-batch's loss.
   */
  trainStep(batch: TrainBatch, lr: number): number {
    ensureGradientsRegistered();
    const vars = this.variables();
    const names = [...vars.keys()];
    const list = names.map((n) => vars.get(n) as tf.Variable);
    const { value, grads } = tf.variableGrads(() => this.loss(batch, true), list);
    const loss = value.dataSync()[0];
    value.dispose();
    const scale = 1 / this.accumulationSteps;
    const kept = new Set<tf.Tensor>();
    for (const [i, name] of names.entries()) {
      const g = grads[list[i].name];
      if (!g) continue;
      const prev = this.accumulated.get(name);
      if (!prev && scale === 1) {
        // g·1 is g: keep the gradient itself rather than a multiplied copy.
        this.accumulated.set(name, g);
        kept.add(g);
        continue;
      }
      this.accumulated.set(
        name,
        tf.tidy(() => (prev ? tf.add(prev, tf.mul(g, scale)) : tf.mul(g, scale))),
      );
      prev?.dispose();
    }
    tf.dispose(Object.values(grads).filter((g) => !kept.has(g)));
    this.micro++;
    let info: TrainStepInfo = { loss, applied: false };
    if (this.micro >= this.accumulationSteps)
      info = { loss, applied: true, gradNorm: this.applyAccumulated(vars, lr) };
    this.lastInfo = info;
    return loss;
  }

  /** Applies whatever has been accumulated (end of an epoch with a partial window). */
  flush(lr: number): number | undefined {
    if (this.micro === 0) return undefined;
    return this.applyAccumulated(this.variables(), lr);
  }

  private applyAccumulated(vars: Map<string, tf.Variable>, lr: number): number {
    const norm = globalNorm(this.accumulated);
    this.optimizer.apply(vars, this.accumulated, lr, clipScale(norm, this.maxGradNorm));
    for (const g of this.accumulated.values()) g.dispose();
    this.accumulated = new Map();
    this.micro = 0;
    return norm;
  }

  dispose(): void {
    for (const g of this.accumulated.values()) g.dispose();
    this.accumulated.clear();
    this.optimizer.dispose();
  }
}
