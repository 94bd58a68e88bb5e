/**
 * Native kernel benchmark: sgemm GFLOP/s (native tfjs kernels, JS cpu, wasm, OpenBLAS direct) and
 * training-step tokens/s for a stories260K-shaped model + LoRA r=8, seq 256, batch 8.
 * Writes bench/results/kernels.json. Run:
 *   npx ts-node -r tsconfig-paths/register --transpile-only bench/kernels/kernels.bench.ts
 * The model is the kernels' own tiny LLaMA-shaped decoder (libs/lm/src/kernels/tiny-decoder.ts):
 * same op mix as the LM library's step, independent of its in-progress API.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
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
  type LlamaConfig,
} from '@cprec/lm';

const root = join(__dirname, '..', '..');
const SIZES = [256, 512, 1024];
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

async function main(): Promise<void> {
  const status = registerNativeKernels();
  registerJsReferenceBackend('cpu-js');
  if (!status.loaded) console.warn(`native kernels unavailable: ${status.reason}`);
  setWasmPaths(join(root, 'node_modules', '@tensorflow', 'tfjs-backend-wasm', 'dist') + '/');
  const loaded = loadNativeAddon();
  // The machine is shared and its speed drifts (other VMs), so the contenders run interleaved,
  // ROUNDS times each, and the best round of each counts: ratios then compare like with like.
  const ROUNDS = 3;
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
      if (status.loaded) keep('native', await matmulSeconds('cpu', n));
      if (loaded.addon) {
        const addon = loaded.addon;
        keep(
          'openblas',
          seconds(() => addon.matmul(a, b, c, 1, 1, 1, n, n, n, false, false), 0.3, 200),
        );
      }
      keep('wasm', await matmulSeconds('wasm', n));
      // The JS kernel takes seconds per 1024² product: one round at the small sizes says enough.
      if (n <= 512 && round === 0) keep('js', await matmulSeconds('cpu-js', n));
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
    native: status.loaded ? await trainTokensPerSecond('cpu', 5, true) : null,
    wasm: await trainTokensPerSecond('wasm', 2, true),
    // ~30 s per step on the JS kernels: one step, no warm-up (which makes it slightly pessimistic).
    js: await trainTokensPerSecond('cpu-js', 1, false),
    torch: null,
  };
  if (train.native !== null) {
    train.native_vs_js = train.js ? train.native / train.js : null;
    train.native_vs_wasm = train.wasm ? train.native / train.wasm : null;
  }
  console.log('train tokens/s:', JSON.stringify(train));
  const result = {
    measured_at: new Date().toISOString(),
    machine: { cores: cpus().length, blas: loaded.addon ? loaded.addon.describe().blasConfig : null },
    model: `${existsSync(join(MODEL_DIR, 'stories260K.bin')) ? 'stories260K' : 'stories260K-shaped random weights'} (libs/lm LlamaModel + Trainer) + LoRA r=8; seq ${SEQ_LEN}, batch ${BATCH}, AdamW, full-sequence loss`,
    machine_speed_note:
      'shared VM whose speed drifts; sgemm contenders run interleaved, best of 3 rounds each',
    sgemm_gflops: sgemm,
    train_tokens_per_s: train,
  };
  mkdirSync(join(root, 'bench', 'results'), { recursive: true });
  writeFileSync(join(root, 'bench', 'results', 'kernels.json'), JSON.stringify(result, null, 2) + '\n');
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
