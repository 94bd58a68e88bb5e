import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { nativeAddonCandidates } from './kernels/native-addon';
import type { LlamaConfig } from './types';

/**
 * The tfjs backends cprec runs on. `tensorflow` is @tensorflow/tfjs-node (TensorFlow's C library,
 * installed by scripts/install-tfjs-node.sh), `tensorflow-gpu` @tensorflow/tfjs-node-gpu
 * (infra/gpu/install), `cpu` tfjs-backend-cpu with cprec's native kernels, `wasm` the wasm backend.
 * `auto` picks, per model and workload, the one measured fastest on this machine.
 */
export type BackendPreference = 'auto' | 'tensorflow-gpu' | 'tensorflow' | 'cpu' | 'wasm';
export const BACKEND_PREFERENCES: readonly BackendPreference[] = [
  'auto',
  'tensorflow-gpu',
  'tensorflow',
  'cpu',
  'wasm',
];

/** What `auto` optimises for: a LoRA training step (full loss), or scoring (prefill + candidates). */
export type BackendWorkload = 'train' | 'infer';

export interface BackendReport {
  /** tfjs backend name now active (`tensorflow`, `cpu`, `wasm`). */
  backend: string;
  /** Which package provided it. */
  source: string;
  /** Whether `registerNativeKernels()` from ./kernels registered native cpu kernels. */
  nativeKernels: boolean;
  /** Whether the optional @tensorflow/tfjs-node(-gpu) packages can be loaded. */
  tfjsNode: boolean;
  tfjsNodeGpu: boolean;
  /** Why preferred choices were skipped. */
  notes: string[];
  /** For `auto`: what was decided, for which model and workload, from which measurement. */
  auto?: AutoDecision;
}

export interface SelectBackendOptions {
  /** false keeps the plain JS cpu kernels (also CPREC_NATIVE_KERNELS=0). */
  nativeKernels?: boolean;
  /**
   * For `auto`: the model the backend is chosen for — a base model path (.gguf, llama2.c .bin, HF
   * folder; only its header is read) or its config. Default: $CPREC_BASE_MODEL; with neither, `auto`
   * keeps the cpu backend (a decision holds for a model).
   */
  model?: string | LlamaConfig;
  /** For `auto`: what the process will mostly do. Default `train`. */
  workload?: BackendWorkload;
  /**
   * For `auto`: the shape the process runs — train: one micro-batch (batch × seq, default 4 × 256);
   * infer: the prompt length in `seq` (default 280), scored with 20 candidates of 8 tokens. Backends
   * scale differently with it (TensorFlow wins small steps here and loses big ones), so a decision
   * holds for its shape.
   */
  shape?: WorkloadShape;
}

export interface WorkloadShape {
  batch: number;
  seq: number;
}

/** One measured `auto` decision, as kept in the cache file and shown by `cprec doctor`. */
export interface AutoDecision {
  backend: BackendPreference;
  /**
   * `measured` now, `cached` from an earlier measurement, `only` (one candidate), `env`
   * (CPREC_BACKEND), `no-model` (nothing named to measure for: cpu).
   */
  from: 'measured' | 'cached' | 'only' | 'env' | 'no-model';
  model: string;
  workload: BackendWorkload;
  /** Estimated ms per workload unit for the whole model, per measured backend. */
  msPerRun: Partial<Record<BackendPreference, number>>;
  /** Estimated resident memory (MB) of a process running it, per measured backend. */
  rssMb?: Partial<Record<BackendPreference, number>>;
  /** Backends estimated above this (AUTO_MEMORY_FRACTION of the machine) were left out. */
  memoryLimitMb?: number;
  /** The measurement's shape: train = LoRA r=8 step of batch×seq; infer = prefill of seq + 20 candidates of 8. */
  shape?: { batch: number; seq: number };
  measuredAt?: string;
  loadAverage?: number;
}

// ---------------------------------------------------------------------------------------------------
// Loading packages

/**
 * Loads an optional module by name. A plain `require` with a variable name so TypeScript does not
 * demand the (optional, usually absent) package at compile time.
 */
function tryRequire(name: string): { ok: true; mod: unknown } | { ok: false; error: string } {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return { ok: true, mod: require(name) as unknown };
  } catch (e) {
    return { ok: false, error: e instanceof Error ? e.message.split('\n')[0] : String(e) };
  }
}

function canResolve(name: string): boolean {
  try {
    require.resolve(name);
    return true;
  } catch {
    return false;
  }
}

const TF_PACKAGES = {
  tensorflow: '@tensorflow/tfjs-node',
  'tensorflow-gpu': '@tensorflow/tfjs-node-gpu',
} as const;

/** Whether @tensorflow/tfjs-node resolves from here (scripts/install-tfjs-node.sh installs it). */
export function tfjsNodeInstalled(): boolean {
  return canResolve(TF_PACKAGES.tensorflow);
}

/** Whether @tensorflow/tfjs-node-gpu resolves from here (infra/gpu/install installs it). */
export function tfjsNodeGpuInstalled(): boolean {
  return canResolve(TF_PACKAGES['tensorflow-gpu']);
}

/** Whether an NVIDIA driver exposes a device here (without loading TensorFlow). */
export function nvidiaDevicePresent(): boolean {
  return existsSync('/dev/nvidia0') || existsSync('/proc/driver/nvidia/version');
}

/**
 * The TensorFlow package loaded in this process. tfjs-node and tfjs-node-gpu both register the
 * backend `tensorflow` and link a library with the same soname, so one process gets one of them.
 */
let tfPackageLoaded: string | null = null;

/**
 * Loads @tensorflow/tfjs-node(-gpu) once and returns null, or why it cannot. Quietens TensorFlow's
 * INFO logging (TF_CPP_MIN_LOG_LEVEL=1 unless set) and, for the GPU package, lets TensorFlow grow
 * GPU memory as needed instead of taking it all up front (TF_FORCE_GPU_ALLOW_GROWTH=true unless set).
 */
function loadTensorflow(choice: 'tensorflow' | 'tensorflow-gpu', notes: string[]): string | null {
  const pkg = TF_PACKAGES[choice];
  if (tfPackageLoaded && tfPackageLoaded !== pkg) {
    notes.push(
      `${tfPackageLoaded} is already loaded in this process and provides 'tensorflow'; ${pkg} is not loaded too`,
    );
    return tf.findBackend('tensorflow') ? null : `${tfPackageLoaded} did not register 'tensorflow'`;
  }
  if (!canResolve(pkg)) return `${pkg} is not installed`;
  process.env.TF_CPP_MIN_LOG_LEVEL ??= '1';
  if (choice === 'tensorflow-gpu') process.env.TF_FORCE_GPU_ALLOW_GROWTH ??= 'true';
  // Loading tfjs-node makes `tensorflow` the active backend; whoever called us sets the one wanted.
  const before = tf.getBackend();
  const r = tryRequire(pkg);
  if (!r.ok) return `${pkg} failed to load: ${r.error}`;
  tfPackageLoaded = pkg;
  if (before && before !== 'tensorflow' && tf.getBackend() !== before) void tf.setBackend(before);
  // tfjs-node registers into its own copy of tfjs-core unless versions dedupe to ours.
  if (!tf.findBackend('tensorflow'))
    return `${pkg} loaded but its backend is not registered with this @tensorflow/tfjs-core (version mismatch?)`;
  return null;
}

/** Calls `registerNativeKernels()` from libs/lm/src/kernels when that module exists. */
function loadNativeKernels(notes: string[]): boolean {
  const r = tryRequire('./kernels');
  if (!r.ok) {
    notes.push(`native kernels not loaded: ${r.error}`);
    return false;
  }
  const reg = (r.mod as { registerNativeKernels?: unknown }).registerNativeKernels;
  if (typeof reg !== 'function') {
    notes.push('native kernels module has no registerNativeKernels()');
    return false;
  }
  try {
    // Returns { loaded, reason?, kernels } (NativeKernelStatus); a bare boolean is accepted too.
    const res: unknown = (reg as () => unknown)();
    const loaded =
      typeof res === 'boolean'
        ? res
        : typeof res === 'object' && res !== null && (res as { loaded?: unknown }).loaded === true;
    if (!loaded) {
      const reason =
        typeof res === 'object' && res !== null ? (res as { reason?: unknown }).reason : undefined;
      notes.push(`native kernels not registered${typeof reason === 'string' ? `: ${reason}` : ''}`);
    }
    return loaded;
  } catch (e) {
    notes.push(`registerNativeKernels() failed: ${e instanceof Error ? e.message : String(e)}`);
    return false;
  }
}

/**
 * Makes `choice` the active backend (no fallback). Returns the report, or null with a note saying
 * why it is unavailable.
 */
async function activate(
  choice: Exclude<BackendPreference, 'auto'>,
  notes: string[],
  wantNative: boolean,
): Promise<BackendReport | null> {
  const tfjsNode = tfjsNodeInstalled();
  const tfjsNodeGpu = tfjsNodeGpuInstalled();
  if (choice === 'tensorflow-gpu' || choice === 'tensorflow') {
    const why = loadTensorflow(choice, notes);
    if (why) {
      notes.push(why);
      return null;
    }
    if (!(await tf.setBackend('tensorflow'))) {
      notes.push(`${TF_PACKAGES[choice]}: the tensorflow backend failed to initialise`);
      return null;
    }
    if (choice === 'tensorflow-gpu' && !(tf.backend() as { isUsingGpuDevice?: boolean }).isUsingGpuDevice)
      notes.push(
        'tensorflow-gpu found no usable GPU (driver, CUDA wheels, CUDA_VISIBLE_DEVICES): it runs on the CPU',
      );
    return {
      backend: 'tensorflow',
      source: tfPackageLoaded ?? TF_PACKAGES[choice],
      nativeKernels: false,
      tfjsNode,
      tfjsNodeGpu,
      notes,
    };
  }
  if (choice === 'cpu') {
    await import('@tensorflow/tfjs-backend-cpu');
    if (!(await tf.setBackend('cpu'))) {
      notes.push('the cpu backend failed to initialise');
      return null;
    }
    const nativeKernels = wantNative ? loadNativeKernels(notes) : false;
    if (!wantNative) notes.push('native kernels disabled by request');
    return {
      backend: 'cpu',
      source: nativeKernels
        ? '@tensorflow/tfjs-backend-cpu + cprec native kernels'
        : '@tensorflow/tfjs-backend-cpu',
      nativeKernels,
      tfjsNode,
      tfjsNodeGpu,
      notes,
    };
  }
  try {
    await import('@tensorflow/tfjs-backend-wasm');
    if (await tf.setBackend('wasm'))
      return {
        backend: 'wasm',
        source: '@tensorflow/tfjs-backend-wasm',
        nativeKernels: false,
        tfjsNode,
        tfjsNodeGpu,
        notes,
      };
    notes.push('the wasm backend failed to initialise');
  } catch (e) {
    notes.push(`wasm backend failed: ${e instanceof Error ? e.message : String(e)}`);
  }
  return null;
}

// ---------------------------------------------------------------------------------------------------
// auto: measured per model and workload, cached per machine and libraries

/** stories260K's config: the fields a llama2.c header does not carry (norm eps, RoPE base) come from here. */
const DEFAULT_MODEL_SHAPE: LlamaConfig = {
  dim: 64,
  hiddenDim: 172,
  nLayers: 5,
  nHeads: 8,
  nKvHeads: 4,
  vocabSize: 512,
  maxSeqLen: 512,
  normEps: 1e-5,
  ropeTheta: 10000,
  tiedClassifier: true,
};

/** A base model's config from its header alone (no weights are read). */
export async function modelShapeOf(path: string): Promise<LlamaConfig> {
  const { baseModelFormat } = await import('./base-model');
  const format = baseModelFormat(path);
  if (format === 'gguf') {
    const { llamaConfigFromGguf, readGguf } = await import('./gguf');
    return llamaConfigFromGguf(readGguf(path));
  }
  if (format === 'hf') {
    const { configFromHf } = await import('./hf');
    return configFromHf(
      JSON.parse(readFileSync(join(path, 'config.json'), 'utf8')) as Parameters<typeof configFromHf>[0],
    );
  }
  // llama2.c header: dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size (< 0: untied), seq_len.
  const b = readFileSync(path).subarray(0, 28);
  if (b.length < 28) throw new Error(`llama2.c checkpoint ${path} is truncated`);
  const h = Array.from({ length: 7 }, (_, i) => b.readInt32LE(i * 4));
  return {
    ...DEFAULT_MODEL_SHAPE,
    dim: h[0],
    hiddenDim: h[1],
    nLayers: h[2],
    nHeads: h[3],
    nKvHeads: h[4],
    vocabSize: Math.abs(h[5]),
    maxSeqLen: h[6],
    tiedClassifier: h[5] > 0,
  };
}

/** What the speed of a shape depends on (not its name, RoPE base or context). */
export function modelShapeKey(c: LlamaConfig): string {
  return `d${c.dim}-h${c.hiddenDim}-L${c.nLayers}-H${c.nHeads}-kv${c.nKvHeads}-V${c.vocabSize}${c.tiedClassifier ? '-tied' : ''}`;
}

/**
 * The shape a workload is measured at: the caller's, else issue 12's benchmark shapes (LoRA training
 * at batch 4 × 256; ranking after a 280-token prompt), within the model's context.
 */
export function measurementShape(
  c: LlamaConfig,
  workload: BackendWorkload,
  shape?: WorkloadShape,
): WorkloadShape {
  if (workload === 'train')
    return {
      batch: Math.max(1, shape?.batch ?? 4),
      seq: Math.max(2, Math.min(shape?.seq ?? 256, c.maxSeqLen)),
    };
  return { batch: 1, seq: Math.max(1, Math.min(shape?.seq ?? 280, c.maxSeqLen - 8)) };
}

/** Where `auto` keeps its decisions: $CPREC_BACKEND_CACHE, else node_modules/.cache/cprec/. */
export function backendCacheFile(): string {
  if (process.env.CPREC_BACKEND_CACHE) return resolve(process.env.CPREC_BACKEND_CACHE);
  const core = require.resolve('@tensorflow/tfjs-core/package.json');
  // …/node_modules/@tensorflow/tfjs-core/package.json → …/node_modules/.cache/cprec
  return join(dirname(core), '..', '..', '.cache', 'cprec', 'backend-auto.json');
}

function fileDigest(path: string): string | null {
  try {
    return createHash('sha256').update(readFileSync(path)).digest('hex').slice(0, 16);
  } catch {
    return null;
  }
}

function packageVersion(pkg: string): string | null {
  try {
    return (JSON.parse(readFileSync(require.resolve(`${pkg}/package.json`), 'utf8')) as { version: string })
      .version;
  } catch {
    return null;
  }
}

/** The install stamp scripts/install-tfjs-node.sh leaves in the package (versions + wheel sha256). */
function tfInstallStamp(pkg: string): string | null {
  try {
    return readFileSync(
      join(dirname(require.resolve(`${pkg}/package.json`)), '.cprec-install'),
      'utf8',
    ).trim();
  } catch {
    return null;
  }
}

/** Speed-relevant environment: thread counts and kernel switches. */
const FINGERPRINT_ENV = [
  'OMP_NUM_THREADS',
  'OPENBLAS_NUM_THREADS',
  'OPENBLAS_CORETYPE',
  'TF_NUM_INTRAOP_THREADS',
  'TF_NUM_INTEROP_THREADS',
  'TF_ENABLE_ONEDNN_OPTS',
  'CPREC_NATIVE_KERNELS',
  'CPREC_FUSED_DECODER',
  'CPREC_MALLOC_TUNING',
  'CUDA_VISIBLE_DEVICES',
];

/**
 * The machine and libraries a measurement holds for: CPU model and count, memory, Node, tfjs,
 * tfjs-node(-gpu) with the wheel they were built from, the native addon's bytes, thread settings.
 * A decision measured under another fingerprint is measured again.
 */
export function machineFingerprint(): { hash: string; parts: Record<string, string | number | null> } {
  const addonPath = nativeAddonCandidates().find((p) => existsSync(p));
  const parts: Record<string, string | number | null> = {
    cpu: cpus()[0]?.model ?? 'unknown',
    cpus: availableParallelism(),
    memGiB: Math.round(totalmem() / 2 ** 30),
    arch: process.arch,
    node: process.versions.node,
    tfjsCore: packageVersion('@tensorflow/tfjs-core'),
    tfjsNode: tfInstallStamp(TF_PACKAGES.tensorflow) ?? packageVersion(TF_PACKAGES.tensorflow),
    tfjsNodeGpu:
      tfInstallStamp(TF_PACKAGES['tensorflow-gpu']) ?? packageVersion(TF_PACKAGES['tensorflow-gpu']),
    gpu: nvidiaDevicePresent() ? 1 : 0,
    nativeAddon: addonPath ? fileDigest(addonPath) : null,
  };
  for (const k of FINGERPRINT_ENV) parts[k] = process.env[k] ?? null;
  const hash = createHash('sha256').update(JSON.stringify(parts)).digest('hex').slice(0, 16);
  return { hash, parts };
}

interface AutoCacheFile {
  version: 2;
  fingerprint: string;
  machine: Record<string, string | number | null>;
  decisions: Record<string, AutoDecision>;
}

function readAutoCache(file: string): AutoCacheFile | null {
  try {
    const c = JSON.parse(readFileSync(file, 'utf8')) as AutoCacheFile;
    return c.version === 2 && typeof c.decisions === 'object' ? c : null;
  } catch {
    return null;
  }
}

function writeAutoCache(
  file: string,
  fp: ReturnType<typeof machineFingerprint>,
  key: string,
  d: AutoDecision,
): void {
  const prev = readAutoCache(file);
  const decisions = prev && prev.fingerprint === fp.hash ? prev.decisions : {};
  decisions[key] = d;
  const body: AutoCacheFile = { version: 2, fingerprint: fp.hash, machine: fp.parts, decisions };
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(body, null, 2) + '\n');
  renameSync(tmp, file);
}

/**
 * The `auto` decisions kept for this machine: `current` when they were measured under today's
 * fingerprint, else they are stale and will be measured again (what `cprec doctor` shows).
 */
export function autoDecisions(): { file: string; current: boolean; decisions: AutoDecision[] } {
  const file = backendCacheFile();
  const c = readAutoCache(file);
  if (!c) return { file, current: false, decisions: [] };
  return {
    file,
    current: c.fingerprint === machineFingerprint().hash,
    decisions: Object.values(c.decisions),
  };
}

/** The backends `auto` chooses among here: TensorFlow (the GPU build where a GPU is present), then cpu. */
export function autoCandidates(): Exclude<BackendPreference, 'auto'>[] {
  const out: Exclude<BackendPreference, 'auto'>[] = [];
  if (tfjsNodeGpuInstalled() && nvidiaDevicePresent()) out.push('tensorflow-gpu');
  else if (tfjsNodeInstalled()) out.push('tensorflow');
  out.push('cpu');
  return out;
}

/**
 * ms for one run of `workload` on the active backend for a model of shape `c` with `layers` decoder
 * blocks (random weights): the best of `reps` after one warm-up. train = LoRA r=8 step with the full
 * loss (Trainer.trainStep); infer = `scoreCandidates` of 20 candidates of 8 tokens after the prompt
 * (the ranking path: one prefill, candidates over its KV cache, fused native blocks where they apply).
 */
async function timeWorkload(
  c: LlamaConfig,
  layers: number,
  workload: BackendWorkload,
  shape: WorkloadShape,
  reps: number,
): Promise<WorkloadCost> {
  const [{ LlamaModel }, { Trainer }, { attachLora }, { randomWeights }, { scoreCandidates }] =
    await Promise.all([
      import('./model'),
      import('./train'),
      import('./lora'),
      import('./weights'),
      import('./generate'),
    ]);
  const cfg: LlamaConfig = { ...c, nLayers: layers };
  const model = new LlamaModel(randomWeights(cfg, 7));
  const { batch, seq } = shape;
  let s = 11;
  const rnd = (): number => (s = (s * 48271) % 2147483647) % cfg.vocabSize;
  const rows = Array.from({ length: batch }, () => Array.from({ length: seq }, rnd));
  let run: () => void;
  let trainer: InstanceType<typeof Trainer> | null = null;
  if (workload === 'train') {
    attachLora(model, { rank: 8, alpha: 16, dropout: 0 });
    trainer = new Trainer(model, { weightDecay: 0 });
    const t = trainer;
    const mask = rows.map((r) => r.map(() => 1));
    run = () => void t.trainStep({ inputIds: rows, lossMask: mask }, 1e-5);
  } else {
    const cands = Array.from({ length: 20 }, () => Array.from({ length: 8 }, rnd));
    run = () => void scoreCandidates(model, rows[0], cands);
  }
  try {
    run();
    let best = Infinity;
    let rss = process.memoryUsage().rss;
    let spent = 0;
    // At least `reps` runs, more while they are cheap (tiny models: the best of up to 8).
    for (let i = 0; i < 8 && (i < reps || spent < 300); i++) {
      const t0 = performance.now();
      run();
      const ms = performance.now() - t0;
      spent += ms;
      best = Math.min(best, ms);
      rss = Math.max(rss, process.memoryUsage().rss);
    }
    return { ms: best, rssMb: Math.round(rss / 2 ** 20) };
  } finally {
    trainer?.dispose();
    model.dispose();
  }
}

/**
 * Estimated ms per run for the whole model on the active backend. A model whose full run is cheap
 * (under FULL_MODEL_BUDGET_MS by its one-block time) is measured whole; a bigger one with one and
 * three decoder blocks (the embedding and classifier cost once, each block the same), extrapolated
 * to all blocks. On this 2-core machine under load the extrapolation was within 20% for the cpu
 * backend on SmolLM2 and overestimated TensorFlow up to 4× (its per-block cost is lower in the deep
 * model than in a shallow one), so for big models `auto` leans towards cpu.
 */
export async function measureOnActiveBackend(
  c: LlamaConfig,
  workload: BackendWorkload,
  shape?: WorkloadShape,
): Promise<WorkloadCost> {
  const at = measurementShape(c, workload, shape);
  const reps = 2;
  const one = await timeWorkload(c, 1, workload, at, reps);
  if (c.nLayers === 1) return one;
  if (one.ms * c.nLayers <= FULL_MODEL_BUDGET_MS) return timeWorkload(c, c.nLayers, workload, at, reps);
  const k = Math.min(3, c.nLayers);
  const more = await timeWorkload(c, k, workload, at, reps);
  // A block never costs less than a tenth of the one-block run (noise can make `more` < `one`).
  const perLayer = Math.max((more.ms - one.ms) / (k - 1), one.ms / 10);
  // The process's resident memory after the runs, extrapolated the same way (an upper bound: it
  // includes whatever the process held before).
  const rssPerLayer = Math.max(0, (more.rssMb - one.rssMb) / (k - 1));
  return {
    ms: one.ms + (c.nLayers - 1) * perLayer,
    rssMb: Math.round(one.rssMb + (c.nLayers - 1) * rssPerLayer),
  };
}

/** What one run of a workload costs: its time, and the process's resident memory after it. */
export interface WorkloadCost {
  ms: number;
  rssMb: number;
}

/** Below this (one-block time × blocks) `auto` measures the whole model rather than extrapolating. */
export const FULL_MODEL_BUDGET_MS = 2000;

/** ms per run of a workload for a model on the active backend. */
export type BackendMeasure = (
  backend: Exclude<BackendPreference, 'auto'>,
  model: LlamaConfig,
  workload: BackendWorkload,
  shape: WorkloadShape,
) => Promise<number | WorkloadCost>;

/**
 * Test seam for the decision logic: which backends `auto` considers and how it measures them
 * (null restores the real ones). Specs use cpu and wasm, which exist everywhere.
 */
export interface AutoSeam {
  candidates?: Exclude<BackendPreference, 'auto'>[];
  measure?: BackendMeasure;
}
let seam: AutoSeam | null = null;
export function setAutoSeamForTests(s: AutoSeam | null): void {
  seam = s;
}

async function resolveModel(
  model: SelectBackendOptions['model'],
): Promise<{ name: string; config: LlamaConfig } | null> {
  const named = model ?? process.env.CPREC_BASE_MODEL;
  if (named === undefined || named === '') return null;
  if (typeof named !== 'string') return { name: modelShapeKey(named), config: named };
  return { name: named, config: await modelShapeOf(named) };
}

/** The share of the machine's memory a backend may be estimated to hold and still be chosen by `auto`. */
export const AUTO_MEMORY_FRACTION = 0.4;

/** How much faster than the cpu backend another must measure for `auto` to choose it. */
export const AUTO_MARGIN = 0.05;

async function decideAuto(
  opts: SelectBackendOptions,
  notes: string[],
  wantNative: boolean,
): Promise<AutoDecision> {
  const workload = opts.workload ?? 'train';
  const resolved = await resolveModel(opts.model);
  // A decision holds for a model: without one (no opts.model, no $CPREC_BASE_MODEL) the process may
  // load anything, and a choice measured on a small shape can be wrong for a big model (TensorFlow
  // won stories260K-sized steps here and took 13.7 GB for SmolLM2's), so it keeps the reference.
  if (!resolved) return { model: 'none named', workload, backend: 'cpu', from: 'no-model', msPerRun: {} };
  const { name, config } = resolved;
  const shape = measurementShape(config, workload, opts.shape);
  const candidates = seam?.candidates ?? autoCandidates();
  const base = { model: name, workload, shape };
  if (candidates.length === 1) return { ...base, backend: candidates[0], from: 'only', msPerRun: {} };
  const fp = machineFingerprint();
  const key = `${modelShapeKey(config)}|${workload}|${shape.batch}x${shape.seq}|${candidates.join(',')}`;
  const file = backendCacheFile();
  const cached = readAutoCache(file);
  if (process.env.CPREC_BACKEND_REMEASURE !== '1' && cached?.fingerprint === fp.hash && cached.decisions[key])
    return { ...cached.decisions[key], model: name, from: 'cached' };
  const msPerRun: Partial<Record<BackendPreference, number>> = {};
  const rssMb: Partial<Record<BackendPreference, number>> = {};
  const failed = new Set<BackendPreference>();
  // Rounds alternate the order so a change in the machine's load does not favour one backend;
  // the second round only when the first was cheap (a few seconds for a small model).
  const started = performance.now();
  for (let round = 0; round < 2; round++) {
    if (round > 0 && performance.now() - started > 5000) break;
    for (const b of round % 2 === 0 ? candidates : [...candidates].reverse()) {
      if (failed.has(b)) continue;
      const scratch: string[] = [];
      if (!(await activate(b, scratch, wantNative))) {
        notes.push(`auto: ${b} unavailable (${scratch.join('; ')})`);
        failed.add(b);
        continue;
      }
      try {
        const got = seam?.measure
          ? await seam.measure(b, config, workload, shape)
          : await measureOnActiveBackend(config, workload, shape);
        const cost = typeof got === 'number' ? { ms: got, rssMb: 0 } : got;
        msPerRun[b] = Math.min(msPerRun[b] ?? Infinity, cost.ms);
        rssMb[b] = Math.max(rssMb[b] ?? 0, cost.rssMb);
      } catch (e) {
        notes.push(`auto: ${b} failed the measurement: ${e instanceof Error ? e.message : String(e)}`);
        failed.add(b);
        delete msPerRun[b];
      }
    }
  }
  // A backend that would hold more than AUTO_MEMORY_FRACTION of the machine's memory is left out
  // (cpu stays eligible: it is the fallback). TensorFlow held 13.7 GB for a SmolLM2 step at 4 × 256
  // where the native cpu path held 3.6 GB; on a shared 23 GB machine that was an OOM kill.
  const limitMb = Math.round((AUTO_MEMORY_FRACTION * totalmem()) / 2 ** 20);
  for (const b of Object.keys(msPerRun) as BackendPreference[])
    if (b !== 'cpu' && (rssMb[b] ?? 0) > limitMb)
      notes.push(
        `auto: ${b} left out: it would hold ~${rssMb[b]} MB, more than ${AUTO_MEMORY_FRACTION * 100}% of this machine's ${Math.round(totalmem() / 2 ** 20)} MB`,
      );
  const ranked = (Object.entries(msPerRun) as [BackendPreference, number][])
    .filter(([b]) => b === 'cpu' || (rssMb[b] ?? 0) <= limitMb)
    .sort((a, b) => a[1] - b[1]);
  // Hysteresis: the cpu backend (native kernels, the reference path) keeps the job unless another
  // is more than AUTO_MARGIN faster, so noise between near-equal backends does not flip decisions.
  const cpuMs = msPerRun.cpu;
  const winner =
    ranked[0] && cpuMs !== undefined && ranked[0][1] * (1 + AUTO_MARGIN) >= cpuMs ? 'cpu' : ranked[0]?.[0];
  const decision: AutoDecision = {
    ...base,
    backend: winner ?? 'cpu',
    from: 'measured',
    msPerRun,
    rssMb,
    memoryLimitMb: limitMb,
    measuredAt: new Date().toISOString(),
    loadAverage: Math.round(loadavg()[0] * 100) / 100,
  };
  if (ranked.length > 0) {
    try {
      writeAutoCache(file, fp, key, decision);
    } catch (e) {
      notes.push(`auto: decision not cached (${file}): ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  return decision;
}

// ---------------------------------------------------------------------------------------------------
// selectBackend

let lastReport: BackendReport | null = null;

/** $CPREC_BACKEND when set: the operator's choice, which wins over `auto`. */
function envBackend(): BackendPreference | null {
  const v = process.env.CPREC_BACKEND;
  if (v === undefined || v === '') return null;
  if (!(BACKEND_PREFERENCES as readonly string[]).includes(v))
    throw new Error(`CPREC_BACKEND=${v} is not a backend; use one of ${BACKEND_PREFERENCES.join(', ')}`);
  return v as BackendPreference;
}

/**
 * Makes a tfjs backend active and reports it. A specific preference is tried first and falls back
 * along tensorflow-gpu → tensorflow → cpu (native kernels when built) → wasm. `auto` takes
 * $CPREC_BACKEND when set (`CPREC_BACKEND=cpu` keeps tests cheap and deterministic); otherwise it
 * uses the backend measured fastest here for the model (`opts.model`, else $CPREC_BASE_MODEL; with
 * neither it keeps cpu), workload (`opts.workload`, default train) and shape (`opts.shape`),
 * measuring once per machine and library fingerprint and keeping the decision in `backendCacheFile()`.
 */
export async function selectBackend(
  preference: BackendPreference = 'auto',
  opts: SelectBackendOptions = {},
): Promise<BackendReport> {
  const notes: string[] = [];
  // CPREC_NATIVE_KERNELS=0 keeps the plain JS cpu kernels (for comparisons and debugging).
  const wantNative = opts.nativeKernels ?? process.env.CPREC_NATIVE_KERNELS !== '0';
  let first: BackendPreference = preference;
  let auto: AutoDecision | undefined;
  if (preference === 'auto') {
    const fromEnv = envBackend();
    if (fromEnv && fromEnv !== 'auto') {
      first = fromEnv;
      notes.push(`CPREC_BACKEND=${fromEnv}`);
      auto = {
        backend: fromEnv,
        from: 'env',
        model: typeof opts.model === 'string' ? opts.model : 'any',
        workload: opts.workload ?? 'train',
        msPerRun: {},
      };
    } else {
      auto = await decideAuto(opts, notes, wantNative);
      first = auto.backend;
    }
  }
  const order: Exclude<BackendPreference, 'auto'>[] = ['tensorflow-gpu', 'tensorflow', 'cpu', 'wasm'];
  const chain = [first as Exclude<BackendPreference, 'auto'>, ...order.filter((p) => p !== first)];
  for (const choice of chain) {
    // The fallback after a specific preference skips the optional packages nobody installed.
    if (choice !== first && choice === 'tensorflow-gpu' && !tfjsNodeGpuInstalled()) continue;
    if (choice !== first && choice === 'tensorflow' && !tfjsNodeInstalled()) continue;
    const report = await activate(choice, notes, wantNative);
    if (report) {
      lastReport = auto ? { ...report, auto } : report;
      return lastReport;
    }
  }
  throw new Error(`no tfjs backend could be initialised: ${notes.join('; ')}`);
}

/** The last `selectBackend` result, or a description of whatever tfjs is using now. */
export function backendReport(): BackendReport {
  return (
    lastReport ?? {
      backend: tf.getBackend(),
      source: 'not selected through selectBackend',
      nativeKernels: false,
      tfjsNode: tfjsNodeInstalled(),
      tfjsNodeGpu: tfjsNodeGpuInstalled(),
      notes: [],
    }
  );
}

// ---------------------------------------------------------------------------------------------------
// What TensorFlow runs with (cprec doctor)

export interface TensorflowInfo {
  /** The npm package and its version, and the TensorFlow C library's version (TF_Version()). */
  package: string;
  packageVersion: string | null;
  tensorflowVersion: string | null;
  /** Intra-op (one kernel's) and inter-op (independent kernels') thread pools. */
  intraOpThreads: number;
  interOpThreads: number;
  /** oneDNN kernels (TF_ENABLE_ONEDNN_OPTS, on by default on x86). */
  oneDnn: boolean;
  /** The vector instruction sets this CPU offers (TensorFlow's and oneDNN's kernels dispatch on them). */
  isa: string[];
  gpu: boolean;
  /** The wheel the library was taken from (scripts/install-tfjs-node.sh's stamp). */
  installStamp: string | null;
}

const ISA_FLAGS = [
  'sse4_2',
  'avx',
  'avx2',
  'fma',
  'avx512f',
  'avx512_vnni',
  'avx512_bf16',
  'avx_vnni',
  'amx_tile',
  'amx_bf16',
  'asimd',
];

function cpuIsa(): string[] {
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8')
      .split('\n')
      .find((l) => /^(flags|Features)\s*:/.test(l));
    const flags = new Set(
      (line ?? '')
        .replace(/^[^:]*:/, '')
        .trim()
        .split(/\s+/),
    );
    return ISA_FLAGS.filter((f) => flags.has(f));
  } catch {
    return [];
  }
}

/** Positive integer from the environment, else `fallback` (TensorFlow's own rule for its pools). */
function envThreads(name: string, fallback: number): number {
  const n = Number(process.env[name]);
  return Number.isInteger(n) && n > 0 ? n : fallback;
}

/**
 * The TensorFlow library the `tensorflow` backend runs on (loading it when installed), or null when
 * neither tfjs-node package is installed. TensorFlow sizes both thread pools to the CPUs this
 * process may use unless TF_NUM_INTRAOP_THREADS / TF_NUM_INTEROP_THREADS say otherwise.
 */
export function tensorflowInfo(): TensorflowInfo | null {
  const choice =
    tfjsNodeGpuInstalled() && nvidiaDevicePresent()
      ? 'tensorflow-gpu'
      : tfjsNodeInstalled()
        ? 'tensorflow'
        : null;
  if (!choice) return null;
  const pkg = TF_PACKAGES[choice];
  const notes: string[] = [];
  const why = loadTensorflow(choice, notes);
  let tensorflowVersion: string | null = null;
  let gpu = false;
  if (!why) {
    const factory = tf.findBackend('tensorflow') as {
      binding?: { TF_Version?: string };
      isUsingGpuDevice?: boolean;
    } | null;
    tensorflowVersion = factory?.binding?.TF_Version ?? null;
    gpu = factory?.isUsingGpuDevice === true;
  }
  const cores = availableParallelism();
  return {
    package: tfPackageLoaded ?? pkg,
    packageVersion: packageVersion(tfPackageLoaded ?? pkg),
    tensorflowVersion,
    intraOpThreads: envThreads('TF_NUM_INTRAOP_THREADS', cores),
    interOpThreads: envThreads('TF_NUM_INTEROP_THREADS', cores),
    oneDnn: process.env.TF_ENABLE_ONEDNN_OPTS !== '0' && process.arch === 'x64',
    isa: cpuIsa(),
    gpu,
    installStamp: tfInstallStamp(tfPackageLoaded ?? pkg),
  };
}
