import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import {
  attachLora,
  detachLora,
  loadLoraAdapter,
  mergeLora,
  readLoraManifest,
  saveLoraAdapter,
  sha256File,
  unmergeLora,
} from './lora';
import { LlamaModel } from './model';
import { maxAbsDiff, tinyConfig } from './testing/tiny';
import { randomWeights } from './weights';

const ids = [[1, 5, 9, 12, 3, 7]];

function logitsOf(model: LlamaModel): Float32Array {
  return tf.tidy(() => model.forward(ids).dataSync() as Float32Array);
}

/** Puts non-zero values into every B so the adapters change the outputs. */
function perturbB(model: LlamaModel): void {
  for (const pair of model.lora?.adapters.values() ?? [])
    tf.tidy(() => pair.b.assign(tf.randomNormal(pair.b.shape, 0, 0.2, 'float32', 7)));
}

describe('LoRA adapters', () => {
  let dir: string;
  beforeAll(async () => {
    await tf.setBackend('cpu');
    dir = mkdtempSync(join(tmpdir(), 'cprec-lora-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('zero-initialised B leaves the outputs unchanged, and only adapters are trainable', () => {
    const model = new LlamaModel(randomWeights(tinyConfig(), 3));
    const before = logitsOf(model);
    const cfg = attachLora(model, { rank: 4, alpha: 8, dropout: 0 });
    expect(cfg.targets).toEqual(['q', 'k', 'v', 'o', 'w1', 'w2', 'w3']);
    expect(model.loraVariables().size).toBe(2 * 7 * 2);
    expect(maxAbsDiff(logitsOf(model), before)).toBe(0);
    const trainable = [...model.trainableVariables().keys()];
    expect(trainable.length).toBe(28);
    expect(trainable.every((n) => /\.lora_[AB]$/.test(n))).toBe(true);
    perturbB(model);
    expect(maxAbsDiff(logitsOf(model), before)).toBeGreaterThan(1e-3);
    model.dispose();
  });

  it('merge gives the same outputs as the adapter path, and unmerge restores the base exactly', () => {
    const model = new LlamaModel(randomWeights(tinyConfig(), 4));
    const base = logitsOf(model);
    const baseWq = model.layers[0].wq.dataSync().slice();
    attachLora(model, { rank: 2, alpha: 4, dropout: 0, targets: ['q', 'v', 'w2'] });
    perturbB(model);
    const adapted = logitsOf(model);
    mergeLora(model);
    expect(maxAbsDiff(logitsOf(model), adapted)).toBeLessThan(1e-4);
    unmergeLora(model);
    expect(maxAbsDiff(model.layers[0].wq.dataSync(), baseWq)).toBe(0);
    expect(maxAbsDiff(logitsOf(model), adapted)).toBeLessThan(1e-5);
    detachLora(model);
    expect(maxAbsDiff(logitsOf(model), base)).toBe(0);
    model.dispose();
  });

  it('models sharing one base carry different adapters, merged or not, without touching the base or each other', () => {
    const weights = randomWeights(tinyConfig(), 5);
    const start = tf.memory().numTensors;
    const base = new LlamaModel(weights);
    const baseTensors = tf.memory().numTensors - start;
    const plain = logitsOf(base);
    const baseWq = base.layers[0].wq.dataSync().slice();
    // Two adapters on models that share the base's tensors (nothing of the base is uploaded again).
    const adapted = (seed: number, merge: boolean) => {
      const view = new LlamaModel(base);
      expect(view.tokEmbedding).toBe(base.tokEmbedding);
      attachLora(view, { rank: 2, alpha: 4, dropout: 0, targets: ['q', 'v', 'w2'] }, seed);
      for (const pair of view.lora!.adapters.values())
        tf.tidy(() => pair.b.assign(tf.randomNormal(pair.b.shape, 0, 0.2, 'float32', seed)));
      const unmerged = logitsOf(view);
      if (merge) mergeLora(view);
      return { view, unmerged };
    };
    const a = adapted(11, true);
    const b = adapted(12, false);
    // The same adapter on its own full copy of the base scores the same as on the shared one.
    const alone = new LlamaModel(weights);
    attachLora(alone, { rank: 2, alpha: 4, dropout: 0, targets: ['q', 'v', 'w2'] }, 11);
    for (const pair of alone.lora!.adapters.values())
      tf.tidy(() => pair.b.assign(tf.randomNormal(pair.b.shape, 0, 0.2, 'float32', 11)));
    mergeLora(alone);
    expect(maxAbsDiff(logitsOf(a.view), logitsOf(alone))).toBeLessThan(1e-5);
    alone.dispose();
    expect(maxAbsDiff(logitsOf(a.view), a.unmerged)).toBeLessThan(1e-4);
    expect(maxAbsDiff(logitsOf(a.view), logitsOf(b.view))).toBeGreaterThan(1e-3);
    // The merge wrote a private copy of wq, not the shared one; the other view and the base are intact.
    expect(a.view.layers[0].wq).not.toBe(base.layers[0].wq);
    expect(b.view.layers[0].wq).toBe(base.layers[0].wq);
    expect(maxAbsDiff(base.layers[0].wq.dataSync(), baseWq)).toBe(0);
    expect(maxAbsDiff(logitsOf(base), plain)).toBe(0);
    unmergeLora(a.view);
    expect(a.view.layers[0].wq).toBe(base.layers[0].wq);
    mergeLora(a.view);
    // Disposing the views frees only what they own: the base still works, then frees the rest.
    a.view.dispose();
    b.view.dispose();
    expect(tf.memory().numTensors - start).toBe(baseTensors);
    expect(maxAbsDiff(logitsOf(base), plain)).toBe(0);
    base.dispose();
    expect(tf.memory().numTensors).toBe(start);
  });

  it('saves as safetensors + manifest and loads back onto a fresh copy of the base', async () => {
    const weights = randomWeights(tinyConfig(), 5);
    const basePath = join(dir, 'base.bin');
    writeFileSync(basePath, Buffer.from(weights.tokEmbedding.buffer));
    const checksum = await sha256File(basePath);
    const model = new LlamaModel(weights);
    attachLora(model, { rank: 3, alpha: 6, dropout: 0.1, targets: ['k', 'o', 'w1'] });
    perturbB(model);
    const adapted = logitsOf(model);
    const created = new Date('2024-05-01T12:00:00Z');
    saveLoraAdapter(model, join(dir, 'a1'), {
      baseModelId: 'tiny-random',
      baseChecksum: checksum,
      lineage: { round: 3, parent: null },
      createdAt: created,
    });
    const manifest = readLoraManifest(join(dir, 'a1'));
    expect(manifest).toMatchObject({
      baseModelId: 'tiny-random',
      baseChecksum: checksum,
      createdAt: created.toISOString(),
      lineage: { round: 3, parent: null },
      lora: { rank: 3, alpha: 6, dropout: 0.1, targets: ['k', 'o', 'w1'] },
    });
    expect(manifest.tensors).toContain('layers.1.w1.lora_B');

    const fresh = new LlamaModel(weights);
    expect(() => loadLoraAdapter(fresh, join(dir, 'a1'), { expectedBaseChecksum: '0'.repeat(64) })).toThrow(
      /trained on base tiny-random/,
    );
    loadLoraAdapter(fresh, join(dir, 'a1'), { expectedBaseChecksum: checksum });
    expect(maxAbsDiff(logitsOf(fresh), adapted)).toBe(0);
    model.dispose();
    fresh.dispose();
  });
});
