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
