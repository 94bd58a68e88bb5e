import {
  engine,
  getGradient,
  getKernel,
  matMul,
  registerGradient,
  registerKernel,
  util,
  zeros,
} from '@tensorflow/tfjs-core';
import type {
  GradConfig,
  KernelFunc,
  NamedAttrMap,
  NamedTensorMap,
  Tensor,
  TensorInfo,
} from '@tensorflow/tfjs-core';
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import type { NativeKernelAddon } from './native-addon';
import { allocate, rawValues } from './buffer-pool';

/**
 * The fused training kernels (libs/lm/native/src/training_ops.cc) as tfjs kernels of the `cpu`
 * backend, each with a registered gradient that runs its native backward kernel. Results come
 * from the backend's buffer pool (buffer-pool.ts): every kernel here writes all of its outputs.
 *
 * Why registered kernels rather than `tf.customGrad` around direct addon calls: the tape, memory
 * accounting and `tf.profile` then see each forward and backward call under its own name (a
 * customGrad's backward is invisible to the profiler, and its forward is a scope whose inner
 * kernels are counted twice), and a kernel may return several tensors (SwiGLU's dgate and dup,
 * the LoRA projections' outputs) where customGrad allows one. The ops that pick these kernels
 * or the op graph are in training-ops.ts.
 */
export const TRAINING_KERNELS = {
  rmsNorm: 'CprecRmsNorm',
  rmsNormGrad: 'CprecRmsNormGrad',
  swiglu: 'CprecSwiGlu',
  swigluGrad: 'CprecSwiGluGrad',
  rope: 'CprecRope',
  ropeGrad: 'CprecRopeGrad',
  crossEntropy: 'CprecCrossEntropy',
  crossEntropyGrad: 'CprecCrossEntropyGrad',
  loraLinear: 'CprecLoraLinear',
  loraLinearGrad: 'CprecLoraLinearGrad',
  sumSquares: 'CprecSumSquares',
  adamw: 'CprecAdamW',
  attention: 'CprecAttention',
  attentionGrad: 'CprecAttentionGrad',
} as const;

/** How the inputs of a `CprecLoraLinear` call are laid out (attrs; inputs are a flat array). */
export interface LoraLinearLayout {
  /** Per projection: 1 when it has an adapter (inputs a, b follow w). */
  lora: number[];
  /** Per projection: 1 when its adapter reads its own input (dropout), which follows b. */
  loraInput: number[];
  /** Per projection: 1 when a residual [rows, out] is added, the projection's last input. */
  residual: number[];
  /**
   * Per projection: LoRA dropout drawn in the kernel (training-ops.ts `dropoutDraw`): an element
   * is kept when its draw is at least `dropoutThreshold` (of 2^24; 0 = no dropout) and then
   * multiplied by `keepScale`.
   */
  dropoutThreshold: number[];
  keepScale: number[];
  seed: number[];
}

/** Index of every input of a `CprecLoraLinear` call: x is 0, then per projection w, a?, b?, in?, r?. */
export function loraLinearInputIndex(layout: LoraLinearLayout): Array<{
  w: number;
  a: number;
  b: number;
  input: number;
  residual: number;
}> {
  let next = 1;
  return layout.lora.map((hasLora, i) => {
    const w = next++;
    const a = hasLora ? next++ : -1;
    const b = hasLora ? next++ : -1;
    const input = hasLora && layout.loraInput[i] ? next++ : -1;
    const residual = layout.residual[i] ? next++ : -1;
    return { w, a, b, input, residual };
  });
}

/** Attributes of `CprecAdamW`: the hyper-parameters and this step's bias corrections. */
export interface AdamWAttrs {
  lr: number;
  beta1: number;
  beta2: number;
  epsilon: number;
  weightDecay: number;
  bc1: number;
  bc2: number;
  gradScale: number;
}

type KernelArgs = Parameters<KernelFunc>[0];

/** The native projection's dropout fields for projection i, if it has dropout. */
function dropoutOf(
  layout: LoraLinearLayout,
  i: number,
): { dropoutThreshold: number; keepScale: number; seed: number } | Record<string, never> {
  const threshold = layout.dropoutThreshold?.[i] ?? 0;
  if (threshold <= 0) return {};
  return { dropoutThreshold: threshold, keepScale: layout.keepScale[i], seed: layout.seed[i] };
}

function cpu(args: KernelArgs): MathBackendCPU {
  return args.backend as MathBackendCPU;
}

function input(args: KernelArgs, name: string | number): TensorInfo {
  const t = args.inputs[name];
  if (!t) throw new Error(`missing kernel input ${name}`);
  return t;
}

function values(backend: MathBackendCPU, t: TensorInfo, what: string): Float32Array {
  const v = rawValues(backend, t);
  if (t.dtype !== 'float32' || !(v instanceof Float32Array))
    throw new Error(`${what} must be float32, got ${t.dtype}`);
  return v;
}

function ints(backend: MathBackendCPU, t: TensorInfo, what: string): Int32Array {
  const v = rawValues(backend, t);
  if (t.dtype !== 'int32' || !(v instanceof Int32Array))
    throw new Error(`${what} must be int32, got ${t.dtype}`);
  return v;
}

function run(name: string, inputs: NamedTensorMap | Tensor[], attrs: NamedAttrMap = {}): Tensor | Tensor[] {
  return engine().runKernel(name, inputs as unknown as NamedTensorMap, attrs);
}

/** The addon functions these kernels call (optional in `NativeKernelAddon`: older builds lack them). */
type TrainingAddon = Required<
  Pick<
    NativeKernelAddon,
    | 'rmsNormForward'
    | 'rmsNormBackward'
    | 'swigluForward'
    | 'swigluBackward'
    | 'ropeForward'
    | 'ropeBackward'
    | 'crossEntropyForward'
    | 'crossEntropyBackward'
    | 'loraLinearForward'
    | 'loraLinearBackward'
    | 'sumSquares'
    | 'adamwUpdate'
    | 'attentionTrainForward'
    | 'attentionTrainBackward'
  >
>;

function hasTrainingKernels(addon: NativeKernelAddon): addon is NativeKernelAddon & TrainingAddon {
  return (
    addon.rmsNormForward !== undefined &&
    addon.rmsNormBackward !== undefined &&
    addon.swigluForward !== undefined &&
    addon.swigluBackward !== undefined &&
    addon.ropeForward !== undefined &&
    addon.ropeBackward !== undefined &&
    addon.crossEntropyForward !== undefined &&
    addon.crossEntropyBackward !== undefined &&
    addon.loraLinearForward !== undefined &&
    addon.loraLinearBackward !== undefined &&
    addon.sumSquares !== undefined &&
    addon.adamwUpdate !== undefined &&
    addon.attentionTrainForward !== undefined &&
    addon.attentionTrainBackward !== undefined
  );
}

function buildKernels(addon: TrainingAddon): Record<string, (args: KernelArgs) => TensorInfo | TensorInfo[]> {
  const rmsNorm = (args: KernelArgs): TensorInfo => {
    const backend = cpu(args);
    const x = input(args, 'x');
    const w = input(args, 'w');
    const dim = w.shape[0];
    const rows = util.sizeFromShape(x.shape) / dim;
    const out = allocate(backend, rows * dim);
    addon.rmsNormForward(
      values(backend, x, 'x'),
      values(backend, w, 'w'),
      out,
      rows,
      dim,
      args.attrs?.eps as number,
    );
    return backend.makeTensorInfo(x.shape, 'float32', out);
  };

  const rmsNormGrad = (args: KernelArgs): TensorInfo => {
    const backend = cpu(args);
    const x = input(args, 'x');
    const w = input(args, 'w');
    const dy = input(args, 'dy');
    const dim = w.shape[0];
    const rows = util.sizeFromShape(x.shape) / dim;
    const weight = args.attrs?.part === 'w';
    const out = allocate(backend, weight ? dim : rows * dim);
    addon.rmsNormBackward(
      values(backend, x, 'x'),
      values(backend, w, 'w'),
      values(backend, dy, 'dy'),
      weight ? null : out,
      weight ? out : null,
      rows,
      dim,
      args.attrs?.eps as number,
    );
    return backend.makeTensorInfo(weight ? w.shape : x.shape, 'float32', out);
  };

  const swiglu = (args: KernelArgs): TensorInfo => {
    const backend = cpu(args);
    const gate = input(args, 'gate');
    const up = input(args, 'up');
    const out = allocate(backend, util.sizeFromShape(gate.shape));
    addon.swigluForward(values(backend, gate, 'gate'), values(backend, up, 'up'), out, out.length);
    return backend.makeTensorInfo(gate.shape, 'float32', out);
  };

  const swigluGrad = (args: KernelArgs): TensorInfo[] => {
    const backend = cpu(args);
    const gate = input(args, 'gate');
    const up = input(args, 'up');
    const dy = input(args, 'dy');
    const n = util.sizeFromShape(gate.shape);
    const dgate = allocate(backend, n);
    const dup = allocate(backend, n);
    addon.swigluBackward(
      values(backend, gate, 'gate'),
      values(backend, up, 'up'),
      values(backend, dy, 'dy'),
      dgate,
      dup,
      n,
    );
    return [
      backend.makeTensorInfo(gate.shape, 'float32', dgate),
      backend.makeTensorInfo(up.shape, 'float32', dup),
    ];
  };

  /** x (forward) or dy (backward) [B, T, H, hs] or [B, H, T, hs]; attrs say which. */
  const ropeCall = (args: KernelArgs, backward: boolean): TensorInfo => {
    const backend = cpu(args);
    const src = input(args, backward ? 'dy' : 'x');
    const cos = input(args, 'cos');
    const sin = input(args, 'sin');
    const { scale, headsFirst } = args.attrs as { scale: number; headsFirst: boolean };
    const [B, T, H, hs] = (args.attrs?.inputShape as number[] | undefined) ?? src.shape;
    const out = allocate(backend, B * T * H * hs);
    (backward ? addon.ropeBackward : addon.ropeForward)(
      values(backend, src, backward ? 'dy' : 'x'),
      values(backend, cos, 'cos'),
      values(backend, sin, 'sin'),
      out,
      B,
      T,
      H,
      hs,
      cos.shape[0],
      scale,
      headsFirst,
    );
    const outShape = backward || !headsFirst ? [B, T, H, hs] : [B, H, T, hs];
    return backend.makeTensorInfo(outShape, 'float32', out);
  };

  const crossEntropy = (args: KernelArgs): TensorInfo[] => {
    const backend = cpu(args);
    const logits = input(args, 'logits');
    const targets = input(args, 'targets');
    const weights = input(args, 'weights');
    const [rows, vocab] = logits.shape;
    const lse = new Float32Array(rows);
    const loss = addon.crossEntropyForward(
      values(backend, logits, 'logits'),
      rows,
      vocab,
      ints(backend, targets, 'targets'),
      values(backend, weights, 'weights'),
      lse,
    );
    return [
      backend.makeTensorInfo([], 'float32', Float32Array.of(loss)),
      backend.makeTensorInfo([rows], 'float32', lse),
    ];
  };

  const crossEntropyGrad = (args: KernelArgs): TensorInfo => {
    const backend = cpu(args);
    const logits = input(args, 'logits');
    const weights = input(args, 'weights');
    const w = values(backend, weights, 'weights');
    const [rows, vocab] = logits.shape;
    let sum = 0;
    for (let i = 0; i < w.length; i++) sum += w[i];
    // The loss divides by max(Σ weights, 1) rounded to float, as the op graph's count.
    const denom = Math.max(Math.fround(sum), 1);
    const dy = values(backend, input(args, 'dy'), 'dy')[0];
    const out = allocate(backend, rows * vocab);
    addon.crossEntropyBackward(
      values(backend, logits, 'logits'),
      rows,
      vocab,
      ints(backend, input(args, 'targets'), 'targets'),
      w,
      values(backend, input(args, 'lse'), 'lse'),
      dy / denom,
      out,
    );
    return backend.makeTensorInfo(logits.shape, 'float32', out);
  };

  const loraLinear = (args: KernelArgs): TensorInfo[] => {
    const backend = cpu(args);
    const layout = args.attrs as unknown as LoraLinearLayout & { scale: number };
    const x = input(args, 0);
    const [rows, inDim] = x.shape;
    const index = loraLinearInputIndex(layout);
    const outputs: Float32Array[] = [];
    const projections = index.map((ix, i) => {
      const w = input(args, ix.w);
      const y = allocate(backend, rows * w.shape[0]);
      outputs.push(y);
      return {
        w: values(backend, w, 'w'),
        out: w.shape[0],
        ...(ix.a >= 0
          ? {
              a: values(backend, input(args, ix.a), 'a'),
              b: values(backend, input(args, ix.b), 'b'),
              rank: input(args, ix.a).shape[0],
              loraInput: ix.input >= 0 ? values(backend, input(args, ix.input), 'loraInput') : null,
              ...dropoutOf(layout, i),
            }
          : {}),
        residual: ix.residual >= 0 ? values(backend, input(args, ix.residual), 'residual') : null,
        y,
      };
    });
    addon.loraLinearForward({
      x: values(backend, x, 'x'),
      rows,
      in: inDim,
      scale: layout.scale,
      projections,
    });
    return outputs.map((y, i) => backend.makeTensorInfo([rows, projections[i].out], 'float32', y));
  };

  /** Inputs: the forward's inputs, then one dy per projection. Outputs: dx, then per adapter dA, dB, dIn?. */
  const loraLinearGrad = (args: KernelArgs): TensorInfo[] => {
    const backend = cpu(args);
    const layout = args.attrs as unknown as LoraLinearLayout & { scale: number };
    const x = input(args, 0);
    const [rows, inDim] = x.shape;
    const index = loraLinearInputIndex(layout);
    const total = Object.keys(args.inputs).length - index.length;
    const dx = allocate(backend, rows * inDim);
    const adapterGrads: Array<{ shape: number[]; values: Float32Array }> = [];
    const projections = index.map((ix, i) => {
      const w = input(args, ix.w);
      const out = w.shape[0];
      const base = { w: values(backend, w, 'w'), out, dy: values(backend, input(args, total + i), 'dy') };
      if (ix.a < 0) return base;
      const a = input(args, ix.a);
      const b = input(args, ix.b);
      const rank = a.shape[0];
      const dA = allocate(backend, rank * inDim);
      const dB = allocate(backend, out * rank);
      const dLoraInput = ix.input >= 0 ? allocate(backend, rows * inDim) : null;
      adapterGrads.push({ shape: a.shape, values: dA }, { shape: b.shape, values: dB });
      if (dLoraInput) adapterGrads.push({ shape: [rows, inDim], values: dLoraInput });
      return {
        ...base,
        a: values(backend, a, 'a'),
        b: values(backend, b, 'b'),
        rank,
        loraInput: ix.input >= 0 ? values(backend, input(args, ix.input), 'loraInput') : null,
        ...dropoutOf(layout, i),
        dA,
        dB,
        dLoraInput,
      };
    });
    addon.loraLinearBackward({
      x: values(backend, x, 'x'),
      rows,
      in: inDim,
      scale: layout.scale,
      dx,
      projections,
    });
    return [
      backend.makeTensorInfo([rows, inDim], 'float32', dx),
      ...adapterGrads.map((g) => backend.makeTensorInfo(g.shape, 'float32', g.values)),
    ];
  };

  /** Inputs: any float32 tensors; output [N], Σ x² of each. */
  const sumSquares = (args: KernelArgs): TensorInfo => {
    const backend = cpu(args);
    const list = Object.values(args.inputs) as TensorInfo[];
    const out = new Float32Array(list.length);
    addon.sumSquares(
      list.map((t) => values(backend, t, 'tensor')),
      out,
    );
    return backend.makeTensorInfo([list.length], 'float32', out);
  };

  /** Inputs: w, g, m, v per variable; outputs: w', m', v' per variable. Attrs: see AdamWAttrs. */
  const adamw = (args: KernelArgs): TensorInfo[] => {
    const backend = cpu(args);
    const list = Object.values(args.inputs) as TensorInfo[];
    const a = args.attrs as unknown as AdamWAttrs;
    const count = list.length / 4;
    const pick = (k: number): Float32Array[] =>
      Array.from({ length: count }, (_, i) => values(backend, list[4 * i + k], 'AdamW input'));
    const fresh = (): Float32Array[] =>
      Array.from({ length: count }, (_, i) => allocate(backend, util.sizeFromShape(list[4 * i].shape)));
    const [wOut, mOut, vOut] = [fresh(), fresh(), fresh()];
    const f = Math.fround;
    addon.adamwUpdate({
      w: pick(0),
      g: pick(1),
      m: pick(2),
      v: pick(3),
      wOut,
      mOut,
      vOut,
      // Each constant as the float32 scalar tensor the op graph would make of it.
      lr: f(a.lr),
      beta1: f(a.beta1),
      oneMinusBeta1: f(1 - a.beta1),
      beta2: f(a.beta2),
      oneMinusBeta2: f(1 - a.beta2),
      epsilon: f(a.epsilon),
      decay: a.weightDecay > 0 ? f(1 - a.lr * a.weightDecay) : null,
      bc1: f(a.bc1),
      bc2: f(a.bc2),
      gradScale: a.gradScale === 1 ? null : f(a.gradScale),
    });
    return Array.from({ length: count }, (_, i) => {
      const shape = list[4 * i].shape;
      return [wOut[i], mOut[i], vOut[i]].map((v) => backend.makeTensorInfo(shape, 'float32', v));
    }).flat();
  };

  /** units, rows, keys, head, timeRows, biasUnitsPerBatch, biasPerBatch of q [B, G, rows, head]. */
  const attentionSizes = (
    q: TensorInfo,
    k: TensorInfo,
    bias: TensorInfo | undefined,
    timeRows: number,
  ): [number, number, number, number, number, number, boolean] => {
    const [B, G, rows, head] = q.shape;
    return [B * G, rows, k.shape[2], head, timeRows, G, bias !== undefined && bias.shape[0] === B && B > 1];
  };

  /** Inputs [q, k, v, bias?]; outputs [out, stats] (stats: each row's softmax max and 1/Σ). */
  const attention = (args: KernelArgs): TensorInfo[] => {
    const backend = cpu(args);
    const [q, k, v, bias] = Object.values(args.inputs) as Array<TensorInfo | undefined> as TensorInfo[];
    const sizes = attentionSizes(q, k, bias, args.attrs?.timeRows as number);
    const out = allocate(backend, util.sizeFromShape(q.shape));
    const stats = allocate(backend, sizes[0] * sizes[1] * 2);
    addon.attentionTrainForward(
      values(backend, q, 'q'),
      values(backend, k, 'k'),
      values(backend, v, 'v'),
      bias ? values(backend, bias, 'bias') : null,
      out,
      stats,
      ...sizes,
    );
    return [
      backend.makeTensorInfo(q.shape, 'float32', out),
      backend.makeTensorInfo([sizes[0], sizes[1], 2], 'float32', stats),
    ];
  };

  /** Inputs [q, k, v, bias?, stats, dOut] (bias marked by attrs.hasBias); outputs [dq, dk, dv]. */
  const attentionGrad = (args: KernelArgs): TensorInfo[] => {
    const backend = cpu(args);
    const list = Object.values(args.inputs) as TensorInfo[];
    const hasBias = args.attrs?.hasBias === true;
    const [q, k, v] = list;
    const bias = hasBias ? list[3] : undefined;
    const [stats, dOut] = list.slice(hasBias ? 4 : 3);
    const sizes = attentionSizes(q, k, bias, args.attrs?.timeRows as number);
    const dq = allocate(backend, util.sizeFromShape(q.shape));
    const dk = allocate(backend, util.sizeFromShape(k.shape));
    const dv = allocate(backend, util.sizeFromShape(v.shape));
    addon.attentionTrainBackward(
      values(backend, q, 'q'),
      values(backend, k, 'k'),
      values(backend, v, 'v'),
      bias ? values(backend, bias, 'bias') : null,
      values(backend, stats, 'stats'),
      values(backend, dOut, 'dOut'),
      dq,
      dk,
      dv,
      ...sizes,
    );
    return [
      backend.makeTensorInfo(q.shape, 'float32', dq),
      backend.makeTensorInfo(k.shape, 'float32', dk),
      backend.makeTensorInfo(v.shape, 'float32', dv),
    ];
  };

  return {
    [TRAINING_KERNELS.attention]: attention,
    [TRAINING_KERNELS.attentionGrad]: attentionGrad,
    [TRAINING_KERNELS.sumSquares]: sumSquares,
    [TRAINING_KERNELS.adamw]: adamw,
    [TRAINING_KERNELS.rmsNorm]: rmsNorm,
    [TRAINING_KERNELS.rmsNormGrad]: rmsNormGrad,
    [TRAINING_KERNELS.swiglu]: swiglu,
    [TRAINING_KERNELS.swigluGrad]: swigluGrad,
    [TRAINING_KERNELS.rope]: (args) => ropeCall(args, false),
    [TRAINING_KERNELS.ropeGrad]: (args) => ropeCall(args, true),
    [TRAINING_KERNELS.crossEntropy]: crossEntropy,
    [TRAINING_KERNELS.crossEntropyGrad]: crossEntropyGrad,
    [TRAINING_KERNELS.loraLinear]: loraLinear,
    [TRAINING_KERNELS.loraLinearGrad]: loraLinearGrad,
  };
}

/** Zeros shaped like `t` in float32 (the engine requires float32 gradients, also for int inputs). */
function zeroGradient(t: Tensor): Tensor {
  return zeros(t.shape, 'float32');
}

function gradients(): GradConfig[] {
  return [
    {
      kernelName: TRAINING_KERNELS.attention,
      saveAllInputs: true,
      outputsToSave: [false, true],
      // saved: q, k, v, bias?, then the stats output. The bias is a mask: no gradient.
      gradFunc: (dys, saved, attrs) => {
        const hasBias = saved.length === 5;
        const [dq, dk, dv] = run(TRAINING_KERNELS.attentionGrad, [...saved, (dys as Tensor[])[0]], {
          ...attrs,
          hasBias,
        }) as Tensor[];
        return {
          0: () => dq,
          1: () => dk,
          2: () => dv,
          ...(hasBias ? { 3: () => zeroGradient(saved[3]) } : {}),
        };
      },
    },
    {
      kernelName: TRAINING_KERNELS.rmsNorm,
      inputsToSave: ['x', 'w'],
      // Each part is computed only when the engine asks for it: dw only when the weight is trained.
      gradFunc: (dy, saved, attrs) => {
        const [x, w] = saved;
        const part = (which: 'x' | 'w') => (): Tensor =>
          run(
            TRAINING_KERNELS.rmsNormGrad,
            { x, w, dy: dy as Tensor },
            { eps: attrs.eps, part: which },
          ) as Tensor;
        return { x: part('x'), w: part('w') };
      },
    },
    {
      kernelName: TRAINING_KERNELS.swiglu,
      inputsToSave: ['gate', 'up'],
      gradFunc: (dy, saved) => {
        const [gate, up] = saved;
        const [dgate, dup] = run(TRAINING_KERNELS.swigluGrad, { gate, up, dy: dy as Tensor }) as Tensor[];
        return { gate: () => dgate, up: () => dup };
      },
    },
    {
      kernelName: TRAINING_KERNELS.rope,
      inputsToSave: ['cos', 'sin'],
      gradFunc: (dy, saved, attrs) => {
        const [cos, sin] = saved;
        const d = dy as Tensor;
        const [b, first, second, hs] = d.shape as [number, number, number, number];
        const inputShape = attrs.headsFirst ? [b, second, first, hs] : [b, first, second, hs];
        return {
          x: () => run(TRAINING_KERNELS.ropeGrad, { dy: d, cos, sin }, { ...attrs, inputShape }) as Tensor,
          cos: () => zeroGradient(cos),
          sin: () => zeroGradient(sin),
        };
      },
    },
    {
      kernelName: TRAINING_KERNELS.crossEntropy,
      inputsToSave: ['logits', 'targets', 'weights'],
      outputsToSave: [false, true],
      gradFunc: (dys, saved) => {
        const [logits, targets, weights, lse] = saved;
        const dy = (dys as Tensor[])[0];
        return {
          logits: () =>
            run(TRAINING_KERNELS.crossEntropyGrad, { logits, targets, weights, lse, dy }) as Tensor,
          targets: () => zeroGradient(targets),
          weights: () => zeroGradient(weights),
        };
      },
    },
    {
      kernelName: TRAINING_KERNELS.loraLinear,
      saveAllInputs: true,
      gradFunc: (dys, saved, attrs) => {
        const layout = attrs as unknown as LoraLinearLayout;
        const list = Array.isArray(dys) ? dys : [dys];
        // One native call gives dx and every adapter's gradients; the engine then takes what it needs.
        const grads = run(TRAINING_KERNELS.loraLinearGrad, [...saved, ...list], attrs) as Tensor[];
        const x = saved[0];
        const map: Record<string, () => Tensor> = { 0: () => grads[0] };
        let next = 1;
        loraLinearInputIndex(layout).forEach((ix, i) => {
          // Base weights are frozen in LoRA training; a trained one gets dyᵀ·x from a tfjs product.
          map[ix.w] = () => matMul(list[i], x, true, false);
          if (ix.a >= 0) {
            const dA = grads[next++];
            const dB = grads[next++];
            map[ix.a] = () => dA;
            map[ix.b] = () => dB;
            if (ix.input >= 0) {
              const dIn = grads[next++];
              map[ix.input] = () => dIn;
            }
          }
          if (ix.residual >= 0) map[ix.residual] = () => list[i].clone();
        });
        return map;
      },
    },
  ];
}

/**
 * Registers the fused training kernels on the `cpu` backend and their gradients; returns the
 * kernel names, or none when the addon predates them.
 */
export function registerTrainingKernels(addon: NativeKernelAddon): string[] {
  if (!hasTrainingKernels(addon)) return [];
  const names: string[] = [];
  for (const [kernelName, kernelFunc] of Object.entries(buildKernels(addon))) {
    if (!getKernel(kernelName, 'cpu'))
      registerKernel({ kernelName, backendName: 'cpu', kernelFunc: kernelFunc as KernelFunc });
    names.push(kernelName);
  }
  for (const config of gradients()) if (!getGradient(config.kernelName)) registerGradient(config);
  return names;
}
