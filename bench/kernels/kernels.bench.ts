/**
 * Native kernel benchmark: sgemm GFLOP/s (native tfjs kernels, JS cpu, wasm, OpenBLAS direct,
 * TensorFlow through tfjs-node) and training-step tokens/s for a stories260K-shaped model + LoRA r=8,
 * seq 256, batch 8 (the same columns, and PyTorch on the converted stories260K checkpoint when
 * CPREC_TORCH_PYTHON names a Python with torch, transformers and peft: bench/lm/torch_peer.py).
 * Writes bench/results/kernels.json. Run:
 *   npm run bench:kernels [-- --columns native,openblas,wasm,js,tensorflow,torch] [--sizes 256,512,1024]
 *                           [--rounds 3] [--steps 5] [--out FILE]
 * The `tensorflow` column (@tensorflow/tfjs-node, when installed) runs in a child process of its
 * own: loading TensorFlow into this process would put its thread pools next to the others'.
 * The model is the kernels' own tiny LLaMA-shaped decoder (libs/lm/src/kernels/tiny-decoder.ts):
 * same op mix as the LM library's step, independent of its in-progress API.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { registerJsReferenceBackend, registerNativeKernels } from '@cprec/lm/kernels';
import { loadNativeAddon } from '@cprec/lm/kernels/native-addon';
import {
  LlamaModel,
  Trainer,
  attachLora,
  loadLlama2cCheckpoint,
  randomWeights,
  selectBackend,
  tfjsNodeInstalled,
  type LlamaConfig,
} from '@cprec/lm';

const root = join(__dirname, '..', '..');
const RESULT_MARK = '@@kernels-bench-result ';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

const SIZES = arg('sizes', '256,512,1024').split(',').map(Number);
/** Rounds of interleaved sgemm contenders (best round counts) and timed training steps. */
const ROUNDS = Number(arg('rounds', '3'));
const STEPS = Number(arg('steps', '5'));
const COLUMNS = new Set(arg('columns', 'native,openblas,wasm,js,tensorflow,torch').split(','));
const MODEL_DIR = join(root, '..', 'shared', 'models', 'stories260K');
const SEQ_LEN = 256;
const BATCH = 8;
/** stories260K's shape (its llama2.c header), for when the checkpoint is not on disk. */
const STORIES_260K_CONFIG: LlamaConfig = {
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

function seconds(fn: () => void, minSeconds: number, maxRuns = 50): number {
  fn();
  let runs = 0;
  const start = process.hrtime.bigint();
  let elapsed = 0;
  while (runs < maxRuns && (runs === 0 || elapsed < minSeconds)) {
    fn();
    runs++;
    elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  }
  return elapsed / runs;
}

/**
 * Seconds per product through tfjs on `backend`. The tidy returns nothing on purpose: tidy walks
 * whatever its callback returns looking for tensors, and walking a 1M-element Float32Array costs
 * far more than the product itself (an earlier version of this bench measured that walk).
 */
async function matmulSeconds(backend: string, n: number): Promise<number> {
  await tf.setBackend(backend);
  const a = tf.randomNormal([n, n]);
  const b = tf.randomNormal([n, n]);
  const slow = backend === 'cpu-js';
  const perCall = seconds(
    () =>
      tf.tidy(() => {
        tf.matMul(a, b).dataSync();
      }),
    slow ? 0.5 : 0.3,
    slow ? 2 : 200,
  );
  a.dispose();
  b.dispose();
  return perCall;
}

/**
 * The LM library's real LoRA training step (stories260K weights when ../shared has them, else the
 * same shape with random weights: the arithmetic is identical), timed on `backend`.
 */
async function trainTokensPerSecond(backend: string, steps: number, warmUp: boolean): Promise<number> {
  await tf.setBackend(backend);
  const checkpoint = join(MODEL_DIR, 'stories260K.bin');
  const weights = existsSync(checkpoint)
    ? loadLlama2cCheckpoint(checkpoint)
    : randomWeights(STORIES_260K_CONFIG, 11);
  const model = new LlamaModel(weights);
  attachLora(model, { rank: 8, alpha: 16, dropout: 0 });
  const trainer = new Trainer(model, { weightDecay: 0 });
  const vocab = weights.config.vocabSize;
  // Token ids cycling through the vocabulary; the step's cost does not depend on their values.
  const inputIds = Array.from({ length: BATCH }, (_, b) =>
    Array.from({ length: SEQ_LEN }, (_, i) => (i === 0 ? 1 : (i * 31 + b * 7) % vocab)),
  );
  const lossMask = inputIds.map((row) => row.map(() => 1));
  if (warmUp) trainer.trainStep({ inputIds, lossMask }, 1e-3);
  const start = process.hrtime.bigint();
  for (let i = 0; i < steps; i++) trainer.trainStep({ inputIds, lossMask }, 1e-3);
  const perStep = Number(process.hrtime.bigint() - start) / 1e9 / steps;
  trainer.dispose();
  model.dispose();
  return (BATCH * SEQ_LEN) / perStep;
}

/** Why a measurement failed (a backend without a kernel the step needs), by what was measured. */
const failures: Record<string, string> = {};

/** Runs `fn`, logging and keeping its error and returning null when it throws. */
async function orNull(what: string, fn: () => Promise<number>): Promise<number | null> {
  try {
    return await fn();
  } catch (e) {
    failures[what] = e instanceof Error ? e.message : String(e);
    console.warn(`${what} failed: ${failures[what]}`);
    return null;
  }
}

/** The tensorflow column, in this child process: sgemm (best of ROUNDS) and the training step. */
async function tensorflowChild(): Promise<void> {
  const report = await selectBackend('tensorflow');
  if (report.backend !== 'tensorflow') throw new Error(`tensorflow unavailable: ${report.notes.join('; ')}`);
  const sgemm: Record<string, number> = {};
  for (const n of SIZES) {
    let best = 0;
    for (let round = 0; round < ROUNDS; round++)
      best = Math.max(best, (2 * n ** 3) / (await matmulSeconds('tensorflow', n)) / 1e9);
    sgemm[String(n)] = best;
    console.log(`tensorflow sgemm ${n}: ${best.toFixed(1)} GFLOP/s`);
  }
  const train = await orNull('tensorflow training', () => trainTokensPerSecond('tensorflow', STEPS, true));
  console.log(`tensorflow train: ${train?.toFixed(0)} tokens/s`);
  process.stdout.write(
    `\n${RESULT_MARK}${JSON.stringify({ source: report.source, sgemm, train, peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024) })}\n`,
  );
}

interface TensorflowColumn {
  source: string;
  sgemm: Record<string, number>;
  train: number | null;
  peak_rss_mb: number;
}

function runTensorflowChild(): { result: TensorflowColumn | null; note: string } {
  if (!tfjsNodeInstalled())
    return { result: null, note: '@tensorflow/tfjs-node is not installed (scripts/install-tfjs-node.sh)' };
  const r = spawnSync(
    process.execPath,
    [
      '-r',
      'ts-node/register/transpile-only',
      '-r',
      'tsconfig-paths/register',
      __filename,
      ...process.argv.slice(2),
      '--tensorflow-child',
    ],
    {
      cwd: root,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
      timeout: 3_600_000,
      maxBuffer: 64 * 2 ** 20,
    },
  );
  process.stdout.write(
    (r.stdout ?? '')
      .split('\n')
      .filter((l) => !l.startsWith(RESULT_MARK))
      .join('\n'),
  );
  const line = (r.stdout ?? '').split('\n').find((l) => l.startsWith(RESULT_MARK));
  if (r.status === 0 && line)
    return { result: JSON.parse(line.slice(RESULT_MARK.length)) as TensorflowColumn, note: 'child process' };
  return { result: null, note: `tensorflow child failed (${r.signal ?? `exit ${r.status}`})` };
}

/** PyTorch + peft on the converted stories260K checkpoint: the training step only, same shape. */
function runTorchTraining(): { tokensPerS: number | null; note: string } {
  const python = process.env.CPREC_TORCH_PYTHON;
  const checkpoint = join(MODEL_DIR, 'stories260K.bin');
  if (!python) return { tokensPerS: null, note: 'CPREC_TORCH_PYTHON not set: PyTorch peer not run' };
  if (!existsSync(checkpoint))
    return { tokensPerS: null, note: `${checkpoint} missing: PyTorch peer not run` };
  const args = [
    resolve(root, 'bench', 'lm', 'torch_peer.py'),
    '--checkpoint',
    checkpoint,
    '--measure',
    'train',
    '--threads',
    String(availableParallelism()),
    '--batch',
    String(BATCH),
    '--seq',
    String(SEQ_LEN),
    '--train-steps',
    String(STEPS),
    '--lora-dropout',
    '0',
  ];
  const r = spawnSync(python, args, {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    timeout: 3_600_000,
  });
  if (r.status !== 0) return { tokensPerS: null, note: `PyTorch peer failed (exit ${r.status})` };
  const out = JSON.parse(r.stdout.trim().split('\n').at(-1) as string) as {
    torch: string;
    threads: number;
    train_tokens_per_s: number;
  };
  return {
    tokensPerS: out.train_tokens_per_s,
    note: `torch ${out.torch}, ${out.threads} threads, transformers LlamaForCausalLM + peft LoRA r=8 (dropout 0) on the converted stories260K checkpoint`,
  };
}

async function main(): Promise<void> {
  if (process.argv.includes('--tensorflow-child')) return tensorflowChild();
  const status = registerNativeKernels();
  registerJsReferenceBackend('cpu-js');
  if (!status.loaded) console.warn(`native kernels unavailable: ${status.reason}`);
  setWasmPaths(join(root, 'node_modules', '@tensorflow', 'tfjs-backend-wasm', 'dist') + '/');
  const loaded = loadNativeAddon();
  // The machine is shared and its speed drifts (other VMs), so the contenders run interleaved,
  // ROUNDS times each, and the best round of each counts: ratios then compare like with like
  // (TensorFlow, in its own process, runs its rounds after the others).
  const sgemm: Record<string, Record<string, number | null>> = {};
  for (const n of SIZES) {
    const best: Record<string, number> = {};
    const keep = (name: string, secondsPerCall: number) => {
      const gflops = (2 * n ** 3) / secondsPerCall / 1e9;
      best[name] = Math.max(best[name] ?? 0, gflops);
    };
    const a = new Float32Array(n * n).fill(0.5);
    const b = new Float32Array(n * n).fill(0.25);
    const c = new Float32Array(n * n);
    for (let round = 0; round < ROUNDS; round++) {
      if (status.loaded && COLUMNS.has('native')) keep('native', await matmulSeconds('cpu', n));
      if (loaded.addon && COLUMNS.has('openblas')) {
        const addon = loaded.addon;
        keep(
          'openblas',
          seconds(() => addon.matmul(a, b, c, 1, 1, 1, n, n, n, false, false), 0.3, 200),
        );
      }
      if (COLUMNS.has('wasm')) keep('wasm', await matmulSeconds('wasm', n));
      // The JS kernel takes seconds per 1024² product: one round at the small sizes says enough.
      if (n <= 512 && round === 0 && COLUMNS.has('js')) keep('js', await matmulSeconds('cpu-js', n));
    }
    const row: Record<string, number | null> = {
      native: best.native ?? null,
      js: best.js ?? null,
      wasm: best.wasm ?? null,
      openblas: best.openblas ?? null,
    };
    row.native_vs_openblas = row.native !== null && row.openblas ? row.native / row.openblas : null;
    sgemm[String(n)] = row;
    console.log(`sgemm ${n}:`, JSON.stringify(row));
  }
  const train: Record<string, number | null> = {
    native:
      status.loaded && COLUMNS.has('native')
        ? await orNull('native training', () => trainTokensPerSecond('cpu', STEPS, true))
        : null,
    wasm: COLUMNS.has('wasm')
      ? await orNull('wasm training', () => trainTokensPerSecond('wasm', Math.min(STEPS, 2), true))
      : null,
    // ~30 s per step on the JS kernels: one step, no warm-up (which makes it slightly pessimistic).
    js: COLUMNS.has('js')
      ? await orNull('JS training', () => trainTokensPerSecond('cpu-js', 1, false))
      : null,
    tensorflow: null,
    torch: null,
  };
  const notes: Record<string, string> = {};
  if (COLUMNS.has('tensorflow')) {
    const tfRun = runTensorflowChild();
    notes.tensorflow = tfRun.note;
    if (tfRun.result) {
      for (const [n, gflops] of Object.entries(tfRun.result.sgemm)) {
        const row = sgemm[n];
        row.tensorflow = gflops;
        row.native_vs_tensorflow = row.native !== null ? row.native / gflops : null;
      }
      train.tensorflow = tfRun.result.train;
      notes.tensorflow = `${tfRun.result.source} in a child process (peak RSS ${tfRun.result.peak_rss_mb} MB)`;
    }
  }
  if (COLUMNS.has('torch')) {
    const torchRun = runTorchTraining();
    train.torch = torchRun.tokensPerS;
    notes.torch = torchRun.note;
  }
  if (train.native !== null) {
    train.native_vs_js = train.js ? train.native / train.js : null;
    train.native_vs_wasm = train.wasm ? train.native / train.wasm : null;
    train.native_vs_tensorflow = train.tensorflow ? train.native / train.tensorflow : null;
    train.native_vs_torch = train.torch ? train.native / train.torch : null;
  }
  if (train.tensorflow !== null)
    train.tensorflow_vs_torch = train.torch ? train.tensorflow / train.torch : null;
  console.log('train tokens/s:', JSON.stringify(train));
  const result = {
    measured_at: new Date().toISOString(),
    machine: { cores: cpus().length, blas: loaded.addon ? loaded.addon.describe().blasConfig : null },
    model: `${existsSync(join(MODEL_DIR, 'stories260K.bin')) ? 'stories260K' : 'stories260K-shaped random weights'} (libs/lm LlamaModel + Trainer) + LoRA r=8; seq ${SEQ_LEN}, batch ${BATCH}, AdamW, full-sequence loss`,
    machine_speed_note: `shared VM whose speed drifts; sgemm contenders run interleaved, best of ${ROUNDS} rounds each (tensorflow: its ${ROUNDS} rounds in its own process after the others)`,
    sgemm_gflops: sgemm,
    train_tokens_per_s: train,
    train_steps_timed: { native: STEPS, wasm: Math.min(STEPS, 2), js: 1, tensorflow: STEPS, torch: STEPS },
    columns: [...COLUMNS],
    notes,
    failures,
  };
  const out = resolve(arg('out', join(root, 'bench', 'results', 'kernels.json')));
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
  console.log(`wrote ${out}`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
