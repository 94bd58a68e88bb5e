/**
 * Profiles the LM library's real work with the tfjs profiler and prints per-kernel time, so the
 * native kernel set is chosen from data: one LoRA CPT training step (stories260K + LoRA r=8,
 * seq 256, batch 8, the step `npm run bench:kernels` times) and a greedy generation of 32 tokens
 * with the KV cache after a 190-token prompt (what serving does). Usage:
 *   npx ts-node -r tsconfig-paths/register --transpile-only bench/kernels/profile.ts [--js] [--generate]
 * --js: the plain tfjs JS kernels instead of the native ones; --shapes: also time by kernel and input shapes.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { LlamaModel, Trainer, attachLora, generate, loadLlama2cCheckpoint, selectBackend } from '@cprec/lm';

const MODEL = join(__dirname, '..', '..', '..', 'shared', 'models', 'stories260K', 'stories260K.bin');

function table(info: Awaited<ReturnType<typeof tf.profile>>, title: string, wallMs: number): void {
  const byKernel = new Map<string, { ms: number; calls: number }>();
  for (const k of info.kernels) {
    const entry = byKernel.get(k.name) ?? { ms: 0, calls: 0 };
    entry.ms += typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
    entry.calls += 1;
    byKernel.set(k.name, entry);
  }
  const total = [...byKernel.values()].reduce((s, e) => s + e.ms, 0);
  if (process.argv.includes('--shapes')) {
    const byShape = new Map<string, { ms: number; calls: number }>();
    for (const k of info.kernels) {
      const key = `${k.name} ${JSON.stringify(k.inputShapes)}`;
      const entry = byShape.get(key) ?? { ms: 0, calls: 0 };
      entry.ms += typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
      entry.calls += 1;
      byShape.set(key, entry);
    }
    for (const [key, e] of [...byShape.entries()].sort((a, b) => b[1].ms - a[1].ms).slice(0, 30))
      console.log(`${e.ms.toFixed(1).padStart(7)} ms ${String(e.calls).padStart(4)}× ${key}`);
  }
  console.log(`${title}: wall ${wallMs.toFixed(0)} ms, kernel total ${total.toFixed(0)} ms`);
  console.log('| kernel | calls | ms | share |');
  console.log('|---|---:|---:|---:|');
  for (const [name, e] of [...byKernel.entries()].sort((a, b) => b[1].ms - a[1].ms).slice(0, 25)) {
    console.log(`| ${name} | ${e.calls} | ${e.ms.toFixed(1)} | ${((100 * e.ms) / total).toFixed(1)}% |`);
  }
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (!existsSync(MODEL)) throw new Error(`profile needs ${MODEL}`);
  const backend = await selectBackend('cpu', { nativeKernels: !args.includes('--js') });
  const label = `cpu${backend.nativeKernels ? '+native' : ' (JS kernels)'}`;
  const weights = loadLlama2cCheckpoint(MODEL);
  const model = new LlamaModel(weights);
  if (args.includes('--generate')) {
    const prompt = [1, ...Array.from({ length: 189 }, (_, i) => (i * 31) % weights.config.vocabSize)];
    generate(model, prompt, { maxNewTokens: 32, temperature: 0 }); // warm-up
    const started = performance.now();
    const info = await tf.profile(() => void generate(model, prompt, { maxNewTokens: 32, temperature: 0 }));
    table(info, `${label}, generate 32 tokens after a 190-token prompt`, performance.now() - started);
  } else {
    attachLora(model, { rank: 8, alpha: 16, dropout: 0 });
    const trainer = new Trainer(model, { weightDecay: 0 });
    const inputIds = Array.from({ length: 8 }, (_, b) =>
      Array.from({ length: 256 }, (_, i) => (i === 0 ? 1 : (i * 31 + b * 7) % weights.config.vocabSize)),
    );
    const lossMask = inputIds.map((row) => row.map(() => 1));
    trainer.trainStep({ inputIds, lossMask }, 1e-3); // warm-up
    const started = performance.now();
    const info = await tf.profile(() => void trainer.trainStep({ inputIds, lossMask }, 1e-3));
    table(info, `${label}, LoRA training step (batch 8 × 256)`, performance.now() - started);
    trainer.dispose();
  }
  model.dispose();
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
