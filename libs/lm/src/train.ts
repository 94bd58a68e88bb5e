import * as tf from '@tensorflow/tfjs-core';
import { InjectedEmbeddings, LlamaModel } from './model';
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

/** Scales gradients so their global L2 norm is at most `maxNorm`; returns the norm before clipping. */
export function clipByGlobalNorm(
  grads: Map<string, tf.Tensor>,
  maxNorm: number,
): { grads: Map<string, tf.Tensor>; norm: number } {
  const norm = tf.tidy(() => {
    const sq = [...grads.values()].map((g) => tf.sum(tf.square(g)));
    return sq.length === 0 ? 0 : Math.sqrt(tf.addN(sq).dataSync()[0]);
  });
  if (!(norm > maxNorm) || !Number.isFinite(maxNorm)) return { grads, norm };
  const scale = maxNorm / (norm + 1e-6);
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

  apply(vars: Map<string, tf.Variable>, grads: Map<string, tf.Tensor>, lr: number): void {
    this.step++;
    const bc1 = 1 - Math.pow(this.beta1, this.step);
    const bc2 = 1 - Math.pow(this.beta2, this.step);
    for (const [name, g] of grads) {
      const w = vars.get(name);
      if (!w) throw new Error(`gradient for unknown variable ${name}`);
      const m = this.moment(this.m, name, w);
      const v = this.moment(this.v, name, w);
      tf.tidy(() => {
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
    const logits = this.model.forward(ids, {
      attentionMask: batch.attentionMask,
      inject: typeof batch.inject === 'function' ? batch.inject() : batch.inject,
      training,
    });
    return causalLmLoss(logits, ids, lossMask);
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
    for (const [i, name] of names.entries()) {
      const g = grads[list[i].name];
      if (!g) continue;
      const prev = this.accumulated.get(name);
      this.accumulated.set(
        name,
        tf.tidy(() => (prev ? tf.add(prev, tf.mul(g, scale)) : tf.mul(g, scale))),
      );
      prev?.dispose();
    }
    tf.dispose(grads);
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
    const { grads, norm } = clipByGlobalNorm(this.accumulated, this.maxGradNorm);
    this.optimizer.apply(vars, grads, lr);
    if (grads !== this.accumulated) for (const g of grads.values()) g.dispose();
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
