import {
  backend_util,
  broadcast_util,
  getKernel,
  getKernelsForBackend,
  registerBackend,
  registerKernel,
  slice_util,
  unregisterKernel,
  util,
} from '@tensorflow/tfjs-core';
import type { KernelConfig, KernelFunc, NamedAttrMap, TensorInfo } from '@tensorflow/tfjs-core';
import { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { loadNativeAddon } from './native-addon';
import type { NativeKernelAddon } from './native-addon';
import { registerTrainingKernels } from './training-kernels';
import { allocate, rawValues, withRawAccess } from './buffer-pool';

/**
 * Native (OpenBLAS + OpenMP) float32 kernels for the tfjs `cpu` backend.
 *
 * Each kernel mirrors the shape/dtype semantics of the tfjs-backend-cpu kernel it replaces and
 * works directly on the backend's typed arrays; anything outside the float32 fast path (other
 * dtypes, complex, rare attribute combinations) is delegated to the original JS kernel.
 * The kernel set comes from profiling a LLaMA training step (see docs/kernels.md).
 */
export interface NativeKernelStatus {
  loaded: boolean;
  reason?: string;
  kernels: string[];
  addonPath?: string;
}

type KernelArgs = Parameters<KernelFunc>[0];
type KernelResult = TensorInfo | TensorInfo[];

const BINARY_OPS: Record<string, number> = {
  Add: 0,
  Sub: 1,
  Multiply: 2,
  RealDiv: 3,
  Maximum: 4,
  Minimum: 5,
  SquaredDifference: 6,
};
const UNARY_OPS: Record<string, number> = {
  Exp: 0,
  Log: 1,
  Neg: 2,
  Sqrt: 3,
  Rsqrt: 4,
  Reciprocal: 5,
  Sigmoid: 6,
  Relu: 7,
  Square: 8,
  Abs: 9,
};
const REDUCE_SUM = 0;
const REDUCE_MAX = 1;

/** The JS kernels that were replaced, by kernel name (used for fallbacks and reference runs). */
const originalKernels = new Map<string, KernelConfig>();
let status: NativeKernelStatus | undefined;

function cpuOf(args: KernelArgs): MathBackendCPU {
  return args.backend as MathBackendCPU;
}

function f32(backend: MathBackendCPU, t: TensorInfo): Float32Array {
  return rawValues(backend, t) as Float32Array;
}

function i32(backend: MathBackendCPU, t: TensorInfo): Int32Array {
  return rawValues(backend, t) as Int32Array;
}

function allFloat32(backend: MathBackendCPU, tensors: TensorInfo[]): boolean {
  return tensors.every((t) => t.dtype === 'float32' && rawValues(backend, t) instanceof Float32Array);
}

function input(args: KernelArgs, name: string): TensorInfo {
  const t = args.inputs[name];
  if (!t) throw new Error(`missing kernel input ${name}`);
  return t;
}

function attrs(args: KernelArgs): NamedAttrMap {
  return args.attrs ?? {};
}

function ints(values: number[]): Int32Array {
  return Int32Array.from(values);
}

/** Strides of `shape` as seen from an output of rank `outRank` under NumPy broadcasting (0 = broadcast). */
function broadcastStrides(shape: number[], outShape: number[]): Int32Array {
  const strides = util.computeStrides(shape);
  const result = new Int32Array(outShape.length);
  const offset = outShape.length - shape.length;
  for (let d = 0; d < outShape.length; d++) {
    const sd = d - offset;
    if (sd < 0 || shape[sd] === 1) continue;
    result[d] = sd === shape.length - 1 ? 1 : strides[sd];
  }
  return result;
}

function contiguousStrides(shape: number[]): number[] {
  const strides = new Array<number>(shape.length).fill(1);
  for (let d = shape.length - 2; d >= 0; d--) strides[d] = strides[d + 1] * shape[d + 1];
  return strides;
}

function transposeValues(
  addon: NativeKernelAddon,
  values: Float32Array,
  shape: number[],
  perm: number[],
  out: Float32Array = new Float32Array(values.length),
): Float32Array {
  const inStrides = contiguousStrides(shape);
  const outShape = perm.map((p) => shape[p]);
  addon.copyStrided(
    values,
    0,
    ints(perm.map((p) => inStrides[p])),
    out,
    0,
    ints(contiguousStrides(outShape)),
    ints(outShape),
  );
  return out;
}

function fallback(name: string, args: KernelArgs): KernelResult {
  const original = originalKernels.get(name);
  if (!original) throw new Error(`no JS kernel recorded for ${name}`);
  return original.kernelFunc(args);
}

/** Calls whatever kernel is currently registered for the cpu backend (native if overridden). */
function callCpuKernel(name: string, args: KernelArgs): TensorInfo {
  const config = getKernel(name, 'cpu');
  if (!config) throw new Error(`no cpu kernel ${name}`);
  return config.kernelFunc(args) as TensorInfo;
}

function buildKernels(addon: NativeKernelAddon): Record<string, (args: KernelArgs) => KernelResult> {
  const batchMatMul = (args: KernelArgs): KernelResult => {
    const backend = cpuOf(args);
    const a = input(args, 'a');
    const b = input(args, 'b');
    if (!allFloat32(backend, [a, b])) return fallback('BatchMatMul', args);
    const { transposeA, transposeB } = attrs(args) as { transposeA: boolean; transposeB: boolean };
    const aRank = a.shape.length;
    const bRank = b.shape.length;
    const innerA = transposeA ? a.shape[aRank - 2] : a.shape[aRank - 1];
    const innerB = transposeB ? b.shape[bRank - 1] : b.shape[bRank - 2];
    const m = transposeA ? a.shape[aRank - 1] : a.shape[aRank - 2];
    const n = transposeB ? b.shape[bRank - 2] : b.shape[bRank - 1];
    const batchA = util.sizeFromShape(a.shape.slice(0, -2));
    const batchB = util.sizeFromShape(b.shape.slice(0, -2));
    const outOuter = broadcast_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
    util.assert(
      innerA === innerB,
      () =>
        `Error in matMul: inner shapes (${innerA}) and (${innerB}) of Tensors with shapes ${a.shape} and ` +
        `${b.shape} and transposeA=${transposeA} and transposeB=${transposeB} must match.`,
    );
    const batch = Math.max(batchA, batchB);
    const out = allocate(backend, batch * m * n);
    addon.matmul(
      f32(backend, a),
      f32(backend, b),
      out,
      batch,
      batchA,
      batchB,
      m,
      n,
      innerA,
      transposeA,
      transposeB,
    );
    return backend.makeTensorInfo(outOuter.concat([m, n]), 'float32', out);
  };

  const activationKernel: Record<string, string> = {
    linear: 'Identity',
    relu: 'Relu',
    elu: 'Elu',
    relu6: 'Relu6',
    sigmoid: 'Sigmoid',
    prelu: 'Prelu',
    leakyrelu: 'LeakyRelu',
  };

  const fusedMatMul = (args: KernelArgs): KernelResult => {
    const backend = cpuOf(args);
    const a = input(args, 'a');
    const b = input(args, 'b');
    const { bias, preluActivationWeights } = args.inputs;
    const { transposeA, transposeB, activation, leakyreluAlpha } = attrs(args) as {
      transposeA: boolean;
      transposeB: boolean;
      activation?: string;
      leakyreluAlpha?: number;
    };
    if (!allFloat32(backend, [a, b])) return fallback('_FusedMatMul', args);
    let current = batchMatMul({ inputs: { a, b }, backend, attrs: { transposeA, transposeB } }) as TensorInfo;
    if (bias) {
      const added = callCpuKernel('Add', { inputs: { a: current, b: bias }, backend });
      backend.disposeIntermediateTensorInfo(current);
      current = added;
    }
    if (activation) {
      const kernelName = activationKernel[activation];
      if (!kernelName)
        throw new Error(`Activation ${activation} has not been implemented for the CPU backend.`);
      const activationInputs: KernelArgs['inputs'] =
        activation === 'prelu' ? { x: current, alpha: preluActivationWeights } : { x: current };
      const activationAttrs: NamedAttrMap =
        activation === 'leakyrelu' ? { alpha: leakyreluAlpha ?? 0.2 } : {};
      const activated = callCpuKernel(kernelName, {
        inputs: activationInputs,
        backend,
        attrs: activationAttrs,
      });
      backend.disposeIntermediateTensorInfo(current);
      current = activated;
    }
    return current;
  };

  const binary =
    (name: string) =>
    (args: KernelArgs): KernelResult => {
      const backend = cpuOf(args);
      const a = input(args, 'a');
      const b = input(args, 'b');
      if (!allFloat32(backend, [a, b])) return fallback(name, args);
      const outShape = backend_util.assertAndGetBroadcastShape(a.shape, b.shape);
      const out = allocate(backend, util.sizeFromShape(outShape));
      addon.binary(
        BINARY_OPS[name],
        f32(backend, a),
        broadcastStrides(a.shape, outShape),
        f32(backend, b),
        broadcastStrides(b.shape, outShape),
        out,
        ints(outShape),
      );
      return backend.makeTensorInfo(outShape, 'float32', out);
    };

  const unary =
    (name: string) =>
    (args: KernelArgs): KernelResult => {
      const backend = cpuOf(args);
      const x = input(args, 'x');
      if (!allFloat32(backend, [x])) return fallback(name, args);
      const values = f32(backend, x);
      const out = allocate(backend, values.length);
      addon.unary(UNARY_OPS[name], values, out);
      return backend.makeTensorInfo(x.shape, 'float32', out);
    };

  const softmax = (args: KernelArgs): KernelResult => {
    const backend = cpuOf(args);
    const logits = input(args, 'logits');
    const { dim } = attrs(args) as { dim: number };
    const rank = logits.shape.length;
    const axis = dim === -1 ? rank - 1 : dim;
    if (!allFloat32(backend, [logits]) || axis !== rank - 1) return fallback('Softmax', args);
    const values = f32(backend, logits);
    const cols = logits.shape[rank - 1];
    const out = allocate(backend, values.length);
    if (values.length > 0) addon.softmax(values, out, values.length / cols, cols);
    return backend.makeTensorInfo(logits.shape, 'float32', out);
  };

  /** Sum / Max / Mean: transpose reduce axes innermost (as tfjs cpu does), then reduce rows. */
  const reduction =
    (name: 'Sum' | 'Max' | 'Mean') =>
    (args: KernelArgs): KernelResult => {
      const backend = cpuOf(args);
      const x = input(args, 'x');
      if (!allFloat32(backend, [x])) return fallback(name, args);
      const a = attrs(args);
      const axisAttr = (name === 'Max' ? a.reductionIndices : a.axis) as number | number[];
      const keepDims = a.keepDims as boolean;
      const rank = x.shape.length;
      const axes = util.parseAxisParam(axisAttr, x.shape);
      const permutation = backend_util.getAxesPermutation(axes, rank);
      let values = f32(backend, x);
      let shape = x.shape;
      let reduceAxes = axes;
      if (permutation != null) {
        values = transposeValues(addon, values, shape, permutation);
        shape = permutation.map((p) => x.shape[p]);
        reduceAxes = backend_util.getInnerMostAxes(axes.length, rank);
      }
      const [outShape, reduceShape] = backend_util.computeOutAndReduceShapes(shape, reduceAxes);
      const inner = util.sizeFromShape(reduceShape);
      const outer = util.sizeFromShape(outShape);
      const out = new Float32Array(outer);
      if (name === 'Max' && inner === 0 && outer > 0) return fallback(name, args);
      if (outer > 0) addon.reduce(name === 'Max' ? REDUCE_MAX : REDUCE_SUM, values, out, outer, inner);
      if (name === 'Mean') for (let i = 0; i < outer; i++) out[i] /= inner;
      const finalShape = keepDims ? backend_util.expandShapeToKeepDim(outShape, axes) : outShape;
      return backend.makeTensorInfo(finalShape, 'float32', out);
    };

  const transpose = (args: KernelArgs): KernelResult => {
    const backend = cpuOf(args);
    const x = input(args, 'x');
    if (!allFloat32(backend, [x])) return fallback('Transpose', args);
    const { perm } = attrs(args) as { perm: number[] };
    const values = f32(backend, x);
    const out = transposeValues(addon, values, x.shape, perm, allocate(backend, values.length));
    return backend.makeTensorInfo(
      perm.map((p) => x.shape[p]),
      'float32',
      out,
    );
  };

  const sliceValues = (
    backend: MathBackendCPU,
    x: TensorInfo,
    begin: number[],
    size: number[],
  ): TensorInfo => {
    const strides = contiguousStrides(x.shape);
    const offset = begin.reduce((s, b, d) => s + b * strides[d], 0);
    const out = new Float32Array(util.sizeFromShape(size));
    if (out.length > 0) {
      addon.copyStrided(
        f32(backend, x),
        offset,
        ints(strides),
        out,
        0,
        ints(contiguousStrides(size)),
        ints(size),
      );
    }
    return backend.makeTensorInfo(size, 'float32', out);
  };

  const slice = (args: KernelArgs): KernelResult => {
    const backend = cpuOf(args);
    const x = input(args, 'x');
    if (!allFloat32(backend, [x])) return fallback('Slice', args);
    const { begin, size } = attrs(args) as { begin: number | number[]; size: number | number[] };
    const [$begin, $size] = slice_util.parseSliceParams(x, begin, size);
    slice_util.assertParamsValid(x, $begin, $size);
    return sliceValues(backend, x, $begin, $size);
  };

  const splitV = (args: KernelArgs): KernelResult => {
    const backend = cpuOf(args);
    const x = input(args, 'x');
    if (!allFloat32(backend, [x])) return fallback('SplitV', args);
    const { numOrSizeSplits, axis } = attrs(args) as { numOrSizeSplits: number | number[]; axis: number };
    const $axis = util.parseAxisParam(axis, x.shape)[0];
    const splitSizes = backend_util.prepareSplitSize(x, numOrSizeSplits, $axis);
    const begin = new Array<number>(x.shape.length).fill(0);
    const size = x.shape.slice();
    return splitSizes.map((s) => {
      const sliceSize = [...size];
      sliceSize[$axis] = s;
      const piece = sliceValues(backend, x, begin, sliceSize);
      begin[$axis] += s;
      return piece;
    });
  };

  const padV2 = (args: KernelArgs): KernelResult => {
    const backend = cpuOf(args);
    const x = input(args, 'x');
    if (!allFloat32(backend, [x])) return fallback('PadV2', args);
    const { paddings, constantValue } = attrs(args) as {
      paddings: Array<[number, number]>;
      constantValue: number;
    };
    const outShape = paddings.map((p, d) => p[0] + x.shape[d] + p[1]);
    const outStrides = contiguousStrides(outShape);
    const out = new Float32Array(util.sizeFromShape(outShape));
    addon.fill(out, constantValue);
    if (util.sizeFromShape(x.shape) > 0) {
      const offset = paddings.reduce((s, p, d) => s + p[0] * outStrides[d], 0);
      addon.copyStrided(
        f32(backend, x),
        0,
        ints(contiguousStrides(x.shape)),
        out,
        offset,
        ints(outStrides),
        ints(x.shape),
      );
    }
    return backend.makeTensorInfo(outShape, 'float32', out);
  };

  const concat = (args: KernelArgs): KernelResult => {
    const backend = cpuOf(args);
    const inputs = Object.values(args.inputs) as TensorInfo[];
    if (inputs.length === 0 || !allFloat32(backend, inputs)) return fallback('Concat', args);
    const { axis } = attrs(args) as { axis: number };
    const $axis = util.parseAxisParam(axis, inputs[0].shape)[0];
    backend_util.assertParamsConsistent(
      inputs.map((t) => t.shape),
      $axis,
    );
    const outShape = backend_util.computeOutShape(
      inputs.map((t) => t.shape),
      $axis,
    );
    const outStrides = contiguousStrides(outShape);
    const out = new Float32Array(util.sizeFromShape(outShape));
    let offset = 0;
    for (const t of inputs) {
      if (util.sizeFromShape(t.shape) > 0) {
        addon.copyStrided(
          f32(backend, t),
          0,
          ints(contiguousStrides(t.shape)),
          out,
          offset,
          ints(outStrides),
          ints(t.shape),
        );
      }
      offset += t.shape[$axis] * outStrides[$axis];
    }
    return backend.makeTensorInfo(outShape, 'float32', out);
  };

  const tile = (args: KernelArgs): KernelResult => {
    const backend = cpuOf(args);
    const x = input(args, 'x');
    if (!allFloat32(backend, [x])) return fallback('Tile', args);
    const { reps } = attrs(args) as { reps: number[] };
    const outShape = x.shape.map((s, d) => s * reps[d]);
    const out = new Float32Array(util.sizeFromShape(outShape));
    if (out.length > 0) {
      // View the output as [reps0, s0, reps1, s1, …]: the source ignores the reps axes.
      const inStrides = contiguousStrides(x.shape);
      const outStrides = contiguousStrides(outShape);
      const shape: number[] = [];
      const src: number[] = [];
      const dst: number[] = [];
      x.shape.forEach((s, d) => {
        shape.push(reps[d], s);
        src.push(0, inStrides[d]);
        dst.push(s * outStrides[d], outStrides[d]);
      });
      addon.copyStrided(f32(backend, x), 0, ints(src), out, 0, ints(dst), ints(shape));
    }
    return backend.makeTensorInfo(outShape, 'float32', out);
  };

  const gatherV2 = (args: KernelArgs): KernelResult => {
    const backend = cpuOf(args);
    const x = input(args, 'x');
    const indices = input(args, 'indices');
    const { axis, batchDims } = attrs(args) as { axis: number; batchDims?: number };
    if (!allFloat32(backend, [x]) || indices.dtype !== 'int32' || (batchDims ?? 0) !== 0) {
      return fallback('GatherV2', args);
    }
    const $axis = util.parseAxisParam(axis, x.shape)[0];
    const indexValues = i32(backend, indices);
    const axisDim = x.shape[$axis];
    for (let i = 0; i < indexValues.length; ++i) {
      const index = indexValues[i];
      util.assert(
        index <= axisDim - 1 && index >= 0,
        () => `GatherV2: the index value ${index} is not in [0, ${axisDim - 1}]`,
      );
    }
    const outer = util.sizeFromShape(x.shape.slice(0, $axis));
    const inner = util.sizeFromShape(x.shape.slice($axis + 1));
    const outShape = [...x.shape.slice(0, $axis), ...indices.shape, ...x.shape.slice($axis + 1)];
    const out = new Float32Array(util.sizeFromShape(outShape));
    if (out.length > 0) addon.gather(f32(backend, x), indexValues, out, outer, axisDim, inner);
    return backend.makeTensorInfo(outShape, 'float32', out);
  };

  const unsortedSegmentSum = (args: KernelArgs): KernelResult => {
    const backend = cpuOf(args);
    const x = input(args, 'x');
    const segmentIds = input(args, 'segmentIds');
    if (!allFloat32(backend, [x]) || segmentIds.dtype !== 'int32')
      return fallback('UnsortedSegmentSum', args);
    const { numSegments } = attrs(args) as { numSegments: number };
    const rowShape = x.shape.slice(segmentIds.shape.length);
    const inner = util.sizeFromShape(rowShape);
    const outShape = [numSegments, ...rowShape];
    const out = new Float32Array(numSegments * inner);
    if (out.length > 0)
      addon.unsortedSegmentSum(f32(backend, x), i32(backend, segmentIds), out, numSegments, inner);
    return backend.makeTensorInfo(outShape, 'float32', out);
  };

  const kernels: Record<string, (args: KernelArgs) => KernelResult> = {
    // The JS kernel, run so that the buffer pool does not count its look at the input's record
    // (it checks for complex data, then shares the input's data by reference count) as an escape.
    Reshape: (args) => withRawAccess(cpuOf(args), () => fallback('Reshape', args)),
    BatchMatMul: batchMatMul,
    _FusedMatMul: fusedMatMul,
    Softmax: softmax,
    Sum: reduction('Sum'),
    Max: reduction('Max'),
    Mean: reduction('Mean'),
    Transpose: transpose,
    Slice: slice,
    SplitV: splitV,
    PadV2: padV2,
    Concat: concat,
    Tile: tile,
    GatherV2: gatherV2,
    UnsortedSegmentSum: unsortedSegmentSum,
  };
  for (const name of Object.keys(BINARY_OPS)) kernels[name] = binary(name);
  for (const name of Object.keys(UNARY_OPS)) kernels[name] = unary(name);
  return kernels;
}

/**
 * Loads the addon and overrides the cpu backend's kernels with native ones. Safe to call more
 * than once; when the addon is missing it changes nothing and says why.
 */
export function registerNativeKernels(): NativeKernelStatus {
  if (status) return status;
  const loaded = loadNativeAddon();
  if (!loaded.addon) {
    status = { loaded: false, reason: loaded.reason, kernels: [] };
    return status;
  }
  const kernels = buildKernels(loaded.addon);
  const registered: string[] = [];
  for (const [kernelName, kernelFunc] of Object.entries(kernels)) {
    const original = getKernel(kernelName, 'cpu');
    if (!original) continue; // not a kernel this tfjs version has on cpu
    originalKernels.set(kernelName, original);
    unregisterKernel(kernelName, 'cpu');
    registerKernel({ kernelName, backendName: 'cpu', kernelFunc: kernelFunc as KernelFunc });
    registered.push(kernelName);
  }
  registered.push(...registerTrainingKernels(loaded.addon));
  status = { loaded: true, kernels: registered, addonPath: loaded.path };
  return status;
}

/** True once the native kernels replaced the JS ones on the `cpu` backend in this process. */
export function nativeKernelsActive(): boolean {
  return status?.loaded === true;
}

/**
 * Registers a backend (default `cpu-js`) that runs the original tfjs-backend-cpu JS kernels,
 * even after the native ones replaced them on `cpu`. Used by the specs and the benchmark to
 * compare both in one process.
 */
export function registerJsReferenceBackend(name = 'cpu-js'): void {
  if (getKernelsForBackend(name).length > 0) return;
  registerBackend(name, () => new MathBackendCPU(), -1);
  for (const config of getKernelsForBackend('cpu')) {
    const original = originalKernels.get(config.kernelName) ?? config;
    registerKernel({ ...original, backendName: name });
  }
}
