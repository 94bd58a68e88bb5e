/**
 * Profiles one SmolLM2-135M LoRA training step (`Trainer.trainStep`, LoRA r=8 on every projection,
 * AdamW) with `tf.profile()` and prints per-kernel time, so the fused training kernels are chosen
 * and checked from data (docs/kernels.md). Usage:
 *   npx ts-node -r tsconfig-paths/register --transpile-only bench/kernels/profile-smollm2.ts \
 *     [--batch 1] [--seq 256] [--answer N] [--shapes] [--top 15] [--steps 1] [--backend cpu]
 * --answer N: loss only on the last N tokens of each row (SFT-style mask); default: every token.
 * CPREC_FUSED_TRAINING=0 profiles the op graph the fused kernels replace; --backend tensorflow
 * profiles tfjs-node instead of the cpu backend with the native kernels.
 *
 * Kernel times come from the tfjs profiler; a `tf.customGrad` op (tfjs's logSoftmax) appears as a
 * scope whose inner kernels are listed too, so scopes are shown but left out of the total.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import {
  LlamaModel,
  Trainer,
  attachLora,
  loadBaseModel,
  selectBackend,
  type BackendPreference,
} from '@cprec/lm';

const MODEL = join(
  __dirname,
  '..',
  '..',
  '..',
  'shared',
  'models',
  'smollm2-135m-instruct',
  'SmolLM2-135M-Instruct.Q4_1.gguf',
);

function option(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Number(process.argv[i + 1]);
  if (!Number.isFinite(v)) throw new Error(`--${name} needs a number`);
  return v;
}

interface Entry {
  ms: number;
  calls: number;
}

function add(map: Map<string, Entry>, key: string, ms: number): void {
  const e = map.get(key) ?? { ms: 0, calls: 0 };
  e.ms += ms;
  e.calls += 1;
  map.set(key, e);
}

async function main(): Promise<void> {
  if (!existsSync(MODEL)) throw new Error(`profile needs ${MODEL}`);
  const batch = option('batch', 1);
  const seq = option('seq', 256);
  const answer = option('answer', 0);
  const top = option('top', 15);
  const steps = option('steps', 1);
  const b = process.argv.indexOf('--backend');
  const backend = await selectBackend(b >= 0 ? (process.argv[b + 1] as BackendPreference) : 'cpu');
  const base = await loadBaseModel(MODEL);
  const model = new LlamaModel(base.weights);
  const vocab = base.weights.config.vocabSize;
  attachLora(model, { rank: 8, alpha: 16, dropout: 0 });
  const trainer = new Trainer(model, { weightDecay: 0 });
  let state = 1;
  const token = (): number => ((state = (state * 48271) % 2147483647) % (vocab - 100)) + 100;
  const inputIds = Array.from({ length: batch }, () => Array.from({ length: seq }, token));
  const lossMask = inputIds.map((row) => row.map((_, t) => (answer === 0 || t >= seq - answer ? 1 : 0)));
  trainer.trainStep({ inputIds, lossMask }, 1e-4); // warm-up
  for (let step = 0; step < steps; step++) {
    const started = performance.now();
    const info = await tf.profile(() => void trainer.trainStep({ inputIds, lossMask }, 1e-4));
    const wall = performance.now() - started;
    const byName = new Map<string, Entry>();
    const byShape = new Map<string, Entry>();
    const scopes = new Map<string, Entry>();
    for (const k of info.kernels) {
      const ms = typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
      if (!tf.getKernel(k.name, tf.getBackend())) {
        add(scopes, k.name, ms);
        continue;
      }
      add(byName, k.name, ms);
      // Kernels over hundreds of tensors (the optimizer step) are keyed by their input count.
      const shapes =
        k.inputShapes.length > 12 ? `[${k.inputShapes.length} inputs]` : JSON.stringify(k.inputShapes);
      add(byShape, `${k.name} ${shapes}`, ms);
    }
    const total = [...byName.values()].reduce((s, e) => s + e.ms, 0);
    const load = readFileSync('/proc/loadavg', 'utf8').trim();
    console.log(
      `SmolLM2-135M LoRA r=8 step, batch ${batch} × ${seq}, loss on ${answer === 0 ? 'every token' : `the last ${answer}`}` +
        ` (${backend.backend}${backend.nativeKernels ? ' + native kernels' : ''}, fused training ${process.env.CPREC_FUSED_TRAINING === '0' ? 'off' : 'on'})`,
    );
    console.log(
      `wall ${wall.toFixed(0)} ms (${((batch * seq * 1000) / wall).toFixed(1)} tokens/s under the profiler), ` +
        `kernels ${total.toFixed(0)} ms, ${info.kernels.length} kernel calls, peak ${(info.peakBytes / 1e9).toFixed(2)} GB, ` +
        `RSS ${(process.memoryUsage().rss / 1e9).toFixed(2)} GB, loadavg ${load}`,
    );
    console.log('| kernel | calls | ms | share |');
    console.log('|---|---:|---:|---:|');
    for (const [name, e] of [...byName.entries()].sort((a, b) => b[1].ms - a[1].ms).slice(0, top))
      console.log(`| ${name} | ${e.calls} | ${e.ms.toFixed(0)} | ${((100 * e.ms) / total).toFixed(1)}% |`);
    if (process.argv.includes('--shapes')) {
      console.log('\nby input shapes:');
      for (const [key, e] of [...byShape.entries()].sort((a, b) => b[1].ms - a[1].ms).slice(0, 40))
        console.log(`${e.ms.toFixed(0).padStart(7)} ms ${String(e.calls).padStart(5)}× ${key}`);
    }
    if (scopes.size > 0)
      console.log(
        `scopes (inner kernels counted above): ${[...scopes.entries()]
          .map(([n, e]) => `${n || '(unnamed)'} ${e.calls}× ${e.ms.toFixed(0)} ms`)
          .join(', ')}`,
      );
  }
  trainer.dispose();
  model.dispose();
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
