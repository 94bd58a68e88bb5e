/**
 * Child-process check for decoder-layer.spec.ts: the fused decoder block against the op graph,
 * in a process whose addon picked the instruction set named by CPREC_KERNEL_ISA. Prints one JSON
 * line `{ isa, error }` (largest relative logit error over head sizes 4, 8 and 16).
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { registerNativeKernels } from '../kernels/index';
import { loadNativeAddon } from '../kernels/native-addon';
import { KVCache, LlamaModel } from '../model';
import { randomWeights } from '../weights';
import { tinyConfig } from './tiny';

function logits(model: LlamaModel, fused: boolean): number[] {
  process.env.CPREC_FUSED_DECODER = fused ? '1' : '0';
  const V = model.config.vocabSize;
  const prompts = [0, 1, 2].map((b) => Array.from({ length: 37 }, (_, t) => (b * 13 + t * 5 + 1) % V));
  const mask = prompts.map((_, b) => prompts[b].map((__, t) => (t >= 9 * b ? 1 : 0)));
  const prefix = new KVCache(model.config.nLayers, 3);
  const last = model.forward(prompts, { cache: prefix, attentionMask: mask, lastOnly: true });
  const rows = [2, 0, 1, 1, 0];
  const cont = rows.map((r, i) => Array.from({ length: 6 }, (_, t) => (r * 7 + i * 3 + t) % V));
  const next = model.forward(cont, { prefix: { cache: prefix, rows } });
  const out = [...Array.from(last.dataSync()), ...Array.from(next.dataSync())];
  last.dispose();
  next.dispose();
  prefix.dispose();
  return out;
}

async function main(): Promise<void> {
  const status = registerNativeKernels();
  if (!status.loaded) throw new Error(`native kernels not loaded: ${status.reason}`);
  await tf.setBackend('cpu');
  let error = 0;
  for (const config of [
    tinyConfig({ dim: 16, nHeads: 4, nKvHeads: 2 }),
    tinyConfig({ dim: 64, nHeads: 8, nKvHeads: 4, hiddenDim: 80 }),
    tinyConfig({ dim: 64, nHeads: 4, nKvHeads: 2, hiddenDim: 48 }),
  ]) {
    const model = new LlamaModel(randomWeights(config, 7));
    const fused = logits(model, true);
    const graph = logits(model, false);
    let diff = 0;
    let scale = 1e-6;
    fused.forEach((v, i) => {
      diff = Math.max(diff, Math.abs(v - graph[i]));
      scale = Math.max(scale, Math.abs(graph[i]));
    });
    error = Math.max(error, diff / scale);
    model.dispose();
  }
  const isa = loadNativeAddon().addon?.describe().isa ?? 'unknown';
  process.stdout.write(`${JSON.stringify({ isa, error })}\n`);
}

void main();
