/**
 * Profiles one LoRA CPT training step (and optionally a full-parameter step) of the tiny
 * LLaMA-shaped decoder with the tfjs profiler and prints per-kernel time, so the native kernel set
 * is chosen from data. Usage:
 *   npx ts-node -r tsconfig-paths/register --transpile-only bench/kernels/profile.ts [--native] [--full]
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { registerNativeKernels } from '@cprec/lm/kernels';
import {
  STORIES_260K_SHAPE,
  createTinyDecoder,
  tinyDecoderBatch,
  tinyDecoderLoss,
} from '@cprec/lm/kernels/tiny-decoder';

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  await tf.setBackend('cpu');
  if (args.includes('--native')) {
    const status = registerNativeKernels();
    if (!status.loaded) throw new Error(`native kernels not loaded: ${status.reason}`);
  }
  const config = { ...STORIES_260K_SHAPE, seqLen: 256, loraRank: 8, seed: 7 };
  const batch = 8;
  const model = createTinyDecoder(config);
  const { tokens, targets } = tinyDecoderBatch(config, batch);
  const trainable = args.includes('--full') ? model.allVariables() : model.loraVariables();
  const step = (): tf.Scalar => {
    const { value, grads } = tf.variableGrads(() => tinyDecoderLoss(model, tokens, targets), trainable);
    Object.values(grads).forEach((g) => g.dispose());
    return value;
  };
  tf.tidy(() => step()); // warm-up
  const started = Date.now();
  const info = await tf.profile(() => step());
  const wallMs = Date.now() - started;
  const byKernel = new Map<string, { ms: number; calls: number }>();
  for (const k of info.kernels) {
    const entry = byKernel.get(k.name) ?? { ms: 0, calls: 0 };
    entry.ms += typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
    entry.calls += 1;
    byKernel.set(k.name, entry);
  }
  const total = [...byKernel.values()].reduce((s, e) => s + e.ms, 0);
  const rows = [...byKernel.entries()].sort((a, b) => b[1].ms - a[1].ms);
  console.log(
    `backend ${tf.getBackend()}${args.includes('--native') ? '+native' : ''}, ` +
      `${args.includes('--full') ? 'full' : 'LoRA'} step, wall ${wallMs} ms, kernel total ${total.toFixed(0)} ms`,
  );
  console.log('| kernel | calls | ms | share |');
  console.log('|---|---:|---:|---:|');
  for (const [name, e] of rows) {
    console.log(`| ${name} | ${e.calls} | ${e.ms.toFixed(1)} | ${((100 * e.ms) / total).toFixed(1)}% |`);
  }
  tokens.dispose();
  targets.dispose();
  model.dispose();
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
