/**
 * Native kernel benchmark: sgemm GFLOP/s (native tfjs kernels, JS cpu, wasm, OpenBLAS direct) and
 * training-step tokens/s for a stories260K-shaped model + LoRA r=8, seq 256, batch 8.
 * Writes bench/results/kernels.json. Run:
 *   npx ts-node -r tsconfig-paths/register --transpile-only bench/kernels/kernels.bench.ts
 * The model is the kernels' own tiny LLaMA-shaped decoder (libs/lm/src/kernels/tiny-decoder.ts):
 * same op mix as the LM library's step, independent of its in-progress API.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { registerJsReferenceBackend, registerNativeKernels } from '@cprec/lm/kernels';
import { loadNativeAddon } from '@cprec/lm/kernels/native-addon';
import {
  STORIES_260K_SHAPE,
  createTinyDecoder,
  tinyDecoderBatch,
  tinyDecoderLoss,
} from '@cprec/lm/kernels/tiny-decoder';

const root = join(__dirname, '..', '..');
const SIZES = [256, 512, 1024];

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

async function matmulGflops(backend: string, n: number): Promise<number> {
  await tf.setBackend(backend);
  const a = tf.randomNormal([n, n]);
  const b = tf.randomNormal([n, n]);
  const budget = backend === 'cpu-js' ? 0.5 : 1;
  const perCall = seconds(
    () => tf.tidy(() => tf.matMul(a, b).dataSync()),
    budget,
    backend === 'cpu-js' ? 2 : 50,
  );
  a.dispose();
  b.dispose();
  return (2 * n ** 3) / perCall / 1e9;
}

async function trainTokensPerSecond(backend: string, steps: number): Promise<number> {
  await tf.setBackend(backend);
  const config = { ...STORIES_260K_SHAPE, seqLen: 256, loraRank: 8, seed: 11 };
  const batch = 8;
  const model = createTinyDecoder(config);
  const { tokens, targets } = tinyDecoderBatch(config, batch);
  const optimizer = tf.train.adam(1e-3);
  // LoRA step: only adapters train, so the embedding gradient (UnsortedSegmentSum, missing on wasm) is not needed.
  const step = (): void => {
    tf.tidy(() => {
      const { value, grads } = tf.variableGrads(
        () => tinyDecoderLoss(model, tokens, targets),
        model.loraVariables(),
      );
      optimizer.applyGradients(grads as tf.NamedTensorMap as Parameters<typeof optimizer.applyGradients>[0]);
      value.dataSync();
    });
  };
  const perStep = seconds(step, 0, steps);
  optimizer.dispose();
  tokens.dispose();
  targets.dispose();
  model.dispose();
  return (batch * config.seqLen) / perStep;
}

async function main(): Promise<void> {
  const status = registerNativeKernels();
  registerJsReferenceBackend('cpu-js');
  if (!status.loaded) console.warn(`native kernels unavailable: ${status.reason}`);
  setWasmPaths(join(root, 'node_modules', '@tensorflow', 'tfjs-backend-wasm', 'dist') + '/');
  const loaded = loadNativeAddon();
  const sgemm: Record<string, Record<string, number | null>> = {};
  for (const n of SIZES) {
    const row: Record<string, number | null> = {};
    row.native = status.loaded ? await matmulGflops('cpu', n) : null;
    row.js = n <= 512 ? await matmulGflops('cpu-js', n) : null;
    row.wasm = await matmulGflops('wasm', n);
    if (loaded.addon) {
      const addon = loaded.addon;
      const a = new Float32Array(n * n).fill(0.5);
      const b = new Float32Array(n * n).fill(0.25);
      const c = new Float32Array(n * n);
      row.openblas =
        (2 * n ** 3) / seconds(() => addon.matmul(a, b, c, 1, 1, 1, n, n, n, false, false), 1) / 1e9;
    } else row.openblas = null;
    sgemm[String(n)] = row;
    console.log(`sgemm ${n}:`, JSON.stringify(row));
  }
  const train: Record<string, number | null> = {
    native: status.loaded ? await trainTokensPerSecond('cpu', 3) : null,
    wasm: await trainTokensPerSecond('wasm', 1),
    js: await trainTokensPerSecond('cpu-js', 1),
    torch: null,
  };
  console.log('train tokens/s:', JSON.stringify(train));
  const result = {
    measured_at: new Date().toISOString(),
    machine: { cores: cpus().length, blas: loaded.addon ? loaded.addon.describe().blasConfig : null },
    model:
      'tiny-decoder (stories260K shape: dim 64, hidden 172, 5 layers, 8 heads, 4 kv heads, vocab 512) + LoRA r=8 on q,v; seq 256, batch 8, Adam',
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
