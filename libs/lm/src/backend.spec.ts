import * as tf from '@tensorflow/tfjs-core';
import { backendReport, selectBackend } from './backend';
import { generate } from './generate';
import { LlamaModel } from './model';
import { maxAbsDiff, tinyConfig } from './testing/tiny';
import { randomWeights } from './weights';

describe('backend selection', () => {
  const weights = randomWeights(tinyConfig(), 41);
  const ids = [[1, 2, 3, 4, 5, 6, 7]];
  const run = (): { logits: Float32Array; greedy: number[] } => {
    const model = new LlamaModel(weights);
    const logits = tf.tidy(
      () => model.forward(ids, { attentionMask: [[0, 1, 1, 1, 1, 1, 1]] }).dataSync() as Float32Array,
    );
    const greedy = generate(model, [1, 2, 3], { maxNewTokens: 8 });
    model.dispose();
    return { logits, greedy };
  };

  it('falls back to the plain cpu backend when asked to skip native kernels, and reports it', async () => {
    const r = await selectBackend('cpu', { nativeKernels: false });
    expect(r.backend).toBe('cpu');
    expect(tf.getBackend()).toBe('cpu');
    expect(r.nativeKernels).toBe(false);
    expect(r.notes).toContain('native kernels disabled by request');
    expect(backendReport()).toBe(r);
  });

  it('the same model runs on wasm with the cpu results', async () => {
    await selectBackend('cpu', { nativeKernels: false });
    const cpu = run();
    const r = await selectBackend('wasm');
    expect(r.backend).toBe('wasm');
    const wasm = run();
    expect(maxAbsDiff(wasm.logits, cpu.logits)).toBeLessThan(1e-4);
    expect(wasm.greedy).toEqual(cpu.greedy);
  });
});
