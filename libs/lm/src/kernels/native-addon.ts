import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { NativeDecoderLayerArgs } from './decoder-layer';

/** The functions exported by libs/lm/native/src/kernels.cc (all write into caller-owned arrays). */
export interface NativeKernelAddon {
  matmul(
    a: Float32Array,
    b: Float32Array,
    out: Float32Array,
    batch: number,
    batchA: number,
    batchB: number,
    m: number,
    n: number,
    k: number,
    transposeA: boolean,
    transposeB: boolean,
  ): void;
  binary(
    op: number,
    a: Float32Array,
    aStrides: Int32Array,
    b: Float32Array,
    bStrides: Int32Array,
    out: Float32Array,
    outShape: Int32Array,
  ): void;
  unary(op: number, x: Float32Array, out: Float32Array): void;
  softmax(x: Float32Array, out: Float32Array, rows: number, cols: number): void;
  reduce(op: number, x: Float32Array, out: Float32Array, outer: number, inner: number): void;
  copyStrided(
    src: Float32Array,
    srcOffset: number,
    srcStrides: Int32Array,
    dst: Float32Array,
    dstOffset: number,
    dstStrides: Int32Array,
    shape: Int32Array,
  ): void;
  fill(dst: Float32Array, value: number): void;
  gather(
    x: Float32Array,
    indices: Int32Array,
    out: Float32Array,
    outer: number,
    dimSize: number,
    inner: number,
  ): void;
  unsortedSegmentSum(
    x: Float32Array,
    segmentIds: Int32Array,
    out: Float32Array,
    numSegments: number,
    inner: number,
  ): void;
  /** Absent from addons built before the fused decoder layer. */
  decoderLayer?(args: NativeDecoderLayerArgs): void;
  /** out[i] = log softmax(logits[offsets[i], offsets[i] + n))[tokens[i]]. */
  logProbabilities?(
    logits: Float32Array,
    n: number,
    offsets: Int32Array,
    tokens: Int32Array,
    out: Float32Array,
  ): void;
  /** The fused training kernels (training_ops.cc); absent from addons built before them. */
  rmsNormForward?(
    x: Float32Array,
    w: Float32Array,
    out: Float32Array,
    rows: number,
    dim: number,
    eps: number,
  ): void;
  rmsNormBackward?(
    x: Float32Array,
    w: Float32Array,
    dy: Float32Array,
    dx: Float32Array | null,
    dw: Float32Array | null,
    rows: number,
    dim: number,
    eps: number,
  ): void;
  swigluForward?(gate: Float32Array, up: Float32Array, out: Float32Array, n: number): void;
  swigluBackward?(
    gate: Float32Array,
    up: Float32Array,
    dy: Float32Array,
    dgate: Float32Array,
    dup: Float32Array,
    n: number,
  ): void;
  ropeForward?(...args: NativeRopeArgs): void;
  ropeBackward?(...args: NativeRopeArgs): void;
  /** Returns the loss Σ w·nll / max(Σ w, 1); writes each row's log-sum-exp. */
  crossEntropyForward?(
    logits: Float32Array,
    rows: number,
    vocab: number,
    targets: Int32Array,
    weights: Float32Array,
    lse: Float32Array,
  ): number;
  crossEntropyBackward?(
    logits: Float32Array,
    rows: number,
    vocab: number,
    targets: Int32Array,
    weights: Float32Array,
    lse: Float32Array,
    scale: number,
    dlogits: Float32Array,
  ): void;
  loraLinearForward?(args: NativeLoraLinearArgs): void;
  loraLinearBackward?(args: NativeLoraLinearArgs & { dx: Float32Array }): void;
  sumSquares?(arrays: Float32Array[], out: Float32Array): void;
  adamwUpdate?(args: NativeAdamWArgs): void;
  attentionTrainForward?(...args: NativeAttentionArgs<'forward'>): void;
  attentionTrainBackward?(...args: NativeAttentionArgs<'backward'>): void;
  describe(): { blasThreads: number; ompThreads: number; blasConfig: string; isa?: string };
  setThreads(n: number): void;
}

/** src (x or dy), cos, sin, out, batch, time, heads, headSize, cosRows, scale, headsFirst. */
export type NativeRopeArgs = [
  Float32Array,
  Float32Array,
  Float32Array,
  Float32Array,
  number,
  number,
  number,
  number,
  number,
  number,
  boolean,
];

/** One projection of `loraLinearForward`/`Backward` (training_ops.cc): y = [r +] x·Wᵀ + s·(x'·Aᵀ)·Bᵀ. */
export interface NativeLoraProjection {
  w: Float32Array;
  out: number;
  a?: Float32Array;
  b?: Float32Array;
  rank?: number;
  loraInput?: Float32Array | null;
  /** LoRA dropout drawn in the kernel: keep when draw >= threshold (of 2^24), times keepScale. */
  dropoutThreshold?: number;
  keepScale?: number;
  seed?: number;
  residual?: Float32Array | null;
  y?: Float32Array;
  dy?: Float32Array;
  dA?: Float32Array;
  dB?: Float32Array;
  dLoraInput?: Float32Array | null;
}

export interface NativeLoraLinearArgs {
  x: Float32Array;
  rows: number;
  in: number;
  scale: number;
  projections: NativeLoraProjection[];
}

/** `adamwUpdate` (training_ops.cc): one AdamW step over many variables, constants pre-rounded. */
export interface NativeAdamWArgs {
  w: Float32Array[];
  g: Float32Array[];
  m: Float32Array[];
  v: Float32Array[];
  wOut: Float32Array[];
  mOut: Float32Array[];
  vOut: Float32Array[];
  lr: number;
  beta1: number;
  oneMinusBeta1: number;
  beta2: number;
  oneMinusBeta2: number;
  epsilon: number;
  /** 1 − lr·weightDecay, or null without weight decay. */
  decay: number | null;
  bc1: number;
  bc2: number;
  /** Gradient multiplier (clipping), or null for none. */
  gradScale: number | null;
}

/** units, rows, keys, head, timeRows, biasUnitsPerBatch, biasPerBatch (training_ops.cc). */
type AttentionSizes = [number, number, number, number, number, number, boolean];

/**
 * Forward: q, k, v, bias|null, out, stats ([units, rows, 2]: each row's max and 1/Σ), sizes.
 * Backward: q, k, v, bias|null, stats, dOut, dQ, dK, dV, sizes.
 */
export type NativeAttentionArgs<D extends 'forward' | 'backward'> = D extends 'forward'
  ? [
      Float32Array,
      Float32Array,
      Float32Array,
      Float32Array | null,
      Float32Array,
      Float32Array,
      ...AttentionSizes,
    ]
  : [
      Float32Array,
      Float32Array,
      Float32Array,
      Float32Array | null,
      Float32Array,
      Float32Array,
      Float32Array,
      Float32Array,
      Float32Array,
      ...AttentionSizes,
    ];

const ADDON_RELATIVE_PATH = join('libs', 'lm', 'native', 'build', 'Release', 'cprec_kernels.node');

/** Where the addon is expected: $CPREC_NATIVE_ADDON, else the repo root found above this file or cwd. */
export function nativeAddonCandidates(): string[] {
  const fromEnv = process.env.CPREC_NATIVE_ADDON;
  if (fromEnv) return [resolve(fromEnv)];
  const candidates: string[] = [];
  for (const start of [__dirname, process.cwd()]) {
    let dir = resolve(start);
    for (;;) {
      candidates.push(join(dir, ADDON_RELATIVE_PATH));
      const parent = dirname(dir);
      if (parent === dir) break;
      dir = parent;
    }
  }
  return [...new Set(candidates)];
}

export type AddonLoadResult = { addon: NativeKernelAddon; path: string } | { addon: null; reason: string };

let cached: AddonLoadResult | undefined;

/**
 * The OpenBLAS kernel family to force for a CPU with these /proc/cpuinfo flags, or null to let
 * OpenBLAS decide. Why: in virtual machines the CPU model is often hidden ("Intel Xeon
 * Processor"), and Debian's DYNAMIC_ARCH OpenBLAS 0.3.21 then falls back to its Prescott (SSE3)
 * kernels: measured here 30 GFLOP/s for a 512² sgemm instead of 195 with SkylakeX (AVX-512) and
 * 113 with Haswell (AVX2). The flags say what the CPU can run even when the model is unknown.
 * OPENBLAS_CORETYPE set by the user always wins.
 */
export function openBlasCoreTypeFor(flags: ReadonlySet<string>): string | null {
  if (flags.has('avx512f') && flags.has('avx512bw') && flags.has('avx512vl') && flags.has('avx512dq'))
    return 'SkylakeX';
  if (flags.has('avx2') && flags.has('fma')) return 'Haswell';
  return null;
}

/** The CPU flags of the first processor in /proc/cpuinfo (empty where there is none, e.g. macOS). */
export function cpuFlags(cpuinfoPath = '/proc/cpuinfo'): Set<string> {
  try {
    const line = readFileSync(cpuinfoPath, 'utf8')
      .split('\n')
      .find((l) => /^flags\s*:/.test(l));
    return new Set(
      line
        ? line
            .replace(/^flags\s*:/, '')
            .trim()
            .split(/\s+/)
        : [],
    );
  } catch {
    return new Set();
  }
}

/**
 * Sets the environment OpenMP and OpenBLAS read when the addon's libraries load. Must run on the
 * main thread before the addon is loaded anywhere in the process: a worker thread's
 * `process.env` is its own copy, not the process environment the C libraries read, so a process
 * that loads the addon only in workers calls this first (the serving scoring pool does).
 */
export function prepareNativeEnvironment(): void {
  // libgomp reads its wait policy when it is loaded; the default (spin) would burn the core that
  // OpenBLAS and the JS thread need between parallel regions on a 2-core machine.
  process.env.OMP_WAIT_POLICY ??= 'PASSIVE';
  const coreType = openBlasCoreTypeFor(cpuFlags());
  if (coreType && process.env.OPENBLAS_CORETYPE === undefined) process.env.OPENBLAS_CORETYPE = coreType;
}

export function loadNativeAddon(): AddonLoadResult {
  if (cached) return cached;
  const path = nativeAddonCandidates().find((p) => existsSync(p));
  if (!path) {
    cached = { addon: null, reason: 'native addon not built (run `npm run build:native`)' };
    return cached;
  }
  prepareNativeEnvironment();
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- native addons load only via require
    const addon = require(path) as NativeKernelAddon;
    if (typeof addon.matmul !== 'function') throw new Error('addon has no matmul export');
    cached = { addon, path };
  } catch (error) {
    cached = {
      addon: null,
      reason: `failed to load ${path}: ${error instanceof Error ? error.message : String(error)}`,
    };
  }
  return cached;
}
