import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { loadBaseModel, LoadedBaseModel } from './base-model';
import { generate } from './generate';
import { attachLora, detachLora } from './lora';
import { KVCache, LlamaModel } from './model';
import { useNativeKernelsLikeProduction } from './testing/native-kernels';
import {
  ReferenceDecode,
  requireSmollm2OrSkip,
  SMOLLM2_GGUF,
  SMOLLM2_REFERENCE_DECODE,
} from './testing/smollm2';
import { Trainer } from './train';

/**
 * SmolLM2-135M-Instruct from its GGUF file against Hugging Face transformers' outputs
 * (reference-decode.json): prompt ids, the top-5 next tokens in order with logits within 1e-3,
 * and 16 greedy tokens — through the op graph, the fused native block, with and without the KV
 * cache. Then LoRA on the real model.
 */
const available = requireSmollm2OrSkip();
const describeIfModel = available ? describe : describe.skip;

type Path = { name: string; fused: boolean; cache: boolean };
const PATHS: Path[] = [
  { name: 'op graph, no cache', fused: false, cache: false },
  { name: 'op graph, KV cache', fused: false, cache: true },
  { name: 'fused native block, no cache', fused: true, cache: false },
  { name: 'fused native block, KV cache', fused: true, cache: true },
];

function withFused<T>(fused: boolean, f: () => T): T {
  const before = process.env.CPREC_FUSED_DECODER;
  process.env.CPREC_FUSED_DECODER = fused ? '1' : '0';
  try {
    return f();
  } finally {
    if (before === undefined) delete process.env.CPREC_FUSED_DECODER;
    else process.env.CPREC_FUSED_DECODER = before;
  }
}

function lastLogits(model: LlamaModel, ids: number[]): Float32Array {
  return tf.tidy(() => model.forward([ids], { lastOnly: true }).dataSync() as Float32Array);
}

function top5(v: Float32Array): number[] {
  const best: number[] = [];
  for (let k = 0; k < 5; k++) {
    let arg = -1;
    for (let i = 0; i < v.length; i++) if (!best.includes(i) && (arg < 0 || v[i] > v[arg])) arg = i;
    best.push(arg);
  }
  return best;
}

describeIfModel('SmolLM2-135M from GGUF against the transformers reference', () => {
  let base: LoadedBaseModel;
  let model: LlamaModel;
  let reference: ReferenceDecode[];

  beforeAll(async () => {
    useNativeKernelsLikeProduction();
    await tf.setBackend('cpu');
    base = await loadBaseModel(SMOLLM2_GGUF);
    model = new LlamaModel(base.weights);
    reference = JSON.parse(readFileSync(SMOLLM2_REFERENCE_DECODE, 'utf8')) as ReferenceDecode[];
  }, 60_000);
  afterAll(() => model?.dispose());

  it('names the base by file and checksum and follows its context', () => {
    expect(base.format).toBe('gguf');
    expect(base.baseModelId).toBe('SmolLM2-135M-Instruct.Q4_1.gguf');
    // SOURCE.md's sha256 of the file.
    expect(base.baseChecksum).toBe('b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53');
    expect(base.contextLength).toBe(8192);
  });

  it('tokenizes both prompts exactly as the reference', () => {
    for (const r of reference) expect(base.tokenizer.encode(r.prompt)).toEqual(r.ids);
  });

  for (const path of PATHS) {
    it(`${path.name}: top-5 next tokens in order, logits within 1e-3, 16 greedy tokens identical`, () => {
      withFused(path.fused, () => {
        for (const r of reference) {
          const logits = lastLogits(model, r.ids);
          expect(top5(logits)).toEqual(r.last_top5_ids);
          r.last_top5_ids.forEach((id, k) =>
            expect(Math.abs(logits[id] - r.last_top5_logits[k])).toBeLessThan(1e-3),
          );
          const greedy = generate(model, r.ids, {
            maxNewTokens: r.greedy_ids.length,
            temperature: 0,
            useCache: path.cache,
          });
          expect(greedy).toEqual(r.greedy_ids);
          expect(base.tokenizer.decode(greedy)).toBe(r.greedy_text);
        }
      });
    }, 120_000);
  }

  it('the fused block reads a shared prompt cache for candidate rows like the op graph', () => {
    const prompt = reference[1].ids;
    const candidates = [base.tokenizer.encode(' 1'), base.tokenizer.encode(' Splatoon 2')];
    const width = Math.max(...candidates.map((c) => c.length));
    const padded = candidates.map((c) => [...c, ...new Array<number>(width - c.length).fill(2)]);
    const mask = candidates.map((c) => Array.from({ length: width }, (_, i) => (i < c.length ? 1 : 0)));
    const run = (fused: boolean): Float32Array =>
      withFused(fused, () => {
        const cache = new KVCache(model.config.nLayers, 1);
        try {
          tf.tidy(() => model.forward([prompt], { cache, lastOnly: true }));
          return tf.tidy(
            () =>
              model
                .forward(padded, { prefix: { cache, rows: [0, 0] }, attentionMask: mask })
                .dataSync() as Float32Array,
          );
        } finally {
          cache.dispose();
        }
      });
    const graph = run(false);
    const fusedOut = run(true);
    // Padded columns are never read, so only real ones are compared.
    const V = model.config.vocabSize;
    let worst = 0;
    mask.forEach((row, b) =>
      row.forEach((m, t) => {
        if (!m) return;
        for (let v = 0; v < V; v++) {
          const i = (b * width + t) * V + v;
          worst = Math.max(worst, Math.abs(graph[i] - fusedOut[i]));
        }
      }),
    );
    expect(worst).toBeLessThan(1e-3);
  }, 60_000);

  it('LoRA: zero-initialised B leaves logits unchanged; one training step changes only adapter tensors', () => {
    const ids = reference[0].ids;
    const before = withFused(false, () => lastLogits(model, ids));
    attachLora(model, { rank: 8, alpha: 16, dropout: 0 });
    try {
      const withAdapters = lastLogits(model, ids);
      expect(Array.from(withAdapters)).toEqual(Array.from(before));
      const baseBefore = new Map([...model.baseVariables()].map(([k, v]) => [k, v.dataSync().slice()]));
      const loraBefore = new Map([...model.loraVariables()].map(([k, v]) => [k, v.dataSync().slice()]));
      const trainer = new Trainer(model, { weightDecay: 0 });
      const row = reference[1].ids.slice(0, 32);
      const loss = trainer.trainStep(
        { inputIds: [row, row], lossMask: [row.map(() => 1), row.map(() => 1)] },
        1e-3,
      );
      expect(Number.isFinite(loss)).toBe(true);
      trainer.dispose();
      for (const [k, v] of model.baseVariables()) {
        const was = baseBefore.get(k) as Float32Array;
        const now = v.dataSync() as Float32Array;
        // A byte compare: a JS loop over 135M floats takes ~50 s in Jest's VM context.
        const same = Buffer.from(now.buffer, now.byteOffset, now.byteLength).equals(
          Buffer.from(was.buffer, was.byteOffset, was.byteLength),
        );
        expect({ k, same }).toEqual({ k, same: true });
      }
      let changed = 0;
      for (const [k, v] of model.loraVariables()) {
        const was = loraBefore.get(k) as Float32Array;
        if (v.dataSync().some((x, i) => x !== was[i])) changed++;
      }
      // Adam moves every adapter tensor that receives a gradient: all B at step 1 (A's gradient is 0 while B = 0).
      expect(changed).toBeGreaterThanOrEqual(model.loraVariables().size / 2);
      expect(lastLogits(model, ids).some((x, i) => x !== before[i])).toBe(true);
    } finally {
      detachLora(model);
    }
  }, 120_000);

  it('leaves no tensors behind', () => {
    const n = tf.memory().numTensors;
    withFused(true, () => generate(model, reference[0].ids, { maxNewTokens: 3, temperature: 0 }));
    withFused(false, () => generate(model, reference[0].ids, { maxNewTokens: 3, temperature: 0 }));
    expect(tf.memory().numTensors).toBe(n);
  });
});
