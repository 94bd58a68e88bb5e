import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { registerTfjsGradients } from './register-gradients';
import { registerNativeKernels } from './index';
import { fusedDecoderAvailable } from './decoder-layer';
import { loadNativeAddon } from './native-addon';
import { KVCache, LlamaModel } from '../model';
import { attachLora, mergeLora } from '../lora';
import { randomWeights } from '../weights';
import { tinyConfig } from '../testing/tiny';
import type { LlamaConfig } from '../types';

// The fused native decoder block (LlamaModel.forward without gradients on the native cpu
// backend) against the op graph it replaces (CPREC_FUSED_DECODER=0, same backend), so only the
// block differs between the two runs.
const status = registerNativeKernels();
registerTfjsGradients();
const describeNative = status.loaded || process.env.CI === 'true' ? describe : describe.skip;

/** Runs `f` with the fused blocks on or off. */
function withFused<T>(on: boolean, f: () => T): T {
  const before = process.env.CPREC_FUSED_DECODER;
  process.env.CPREC_FUSED_DECODER = on ? '1' : '0';
  try {
    return f();
  } finally {
    if (before === undefined) delete process.env.CPREC_FUSED_DECODER;
    else process.env.CPREC_FUSED_DECODER = before;
  }
}

/** Largest |a − b| relative to the largest |b| (logits of random models reach ~10). */
function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let diff = 0;
  let scale = 1e-6;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff / scale;
}

function ids(batch: number, time: number, vocab: number, seed: number): number[][] {
  return Array.from({ length: batch }, (_, b) =>
    Array.from({ length: time }, (_, t) => (seed * 31 + b * 17 + t * 7 + 3) % vocab),
  );
}

const CONFIGS: Array<{ name: string; config: LlamaConfig }> = [
  { name: 'GQA, head size 4 (any-size loops)', config: tinyConfig() },
  {
    name: 'head size 8 as stories260K (register loops), multi-head',
    config: tinyConfig({ dim: 32, nHeads: 4, nKvHeads: 4, hiddenDim: 40, nLayers: 2 }),
  },
  {
    name: 'head size 16, 4 query heads per kv head, tied classifier',
    config: tinyConfig({ dim: 64, nHeads: 4, nKvHeads: 1, hiddenDim: 48, tiedClassifier: true }),
  },
];

describeNative('fused decoder layer', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
    await tf.ready();
  });

  it('is what the model uses for inference on the native cpu backend', () => {
    expect(fusedDecoderAvailable()).toBe(true);
    expect(withFused(false, () => fusedDecoderAvailable())).toBe(false);
  });

  describe.each(CONFIGS)('$name', ({ config }) => {
    let model: LlamaModel;
    beforeAll(() => {
      model = new LlamaModel(randomWeights(config, 3));
    });
    afterAll(() => model.dispose());

    const both = (f: () => tf.Tensor): [Float32Array, Float32Array] => {
      const run = (on: boolean) =>
        withFused(on, () => {
          const t = f();
          const v = t.dataSync() as Float32Array;
          t.dispose();
          return v.slice();
        });
      return [run(true), run(false)];
    };

    it('gives the op graph’s logits for a causal batch (no padding)', () => {
      const [fused, graph] = both(() => model.forward(ids(2, 19, config.vocabSize, 1)));
      expect(relativeError(fused, graph)).toBeLessThan(1e-5);
    });

    it('gives the op graph’s logits for every real position of a left-padded batch', () => {
      const rows = ids(3, 21, config.vocabSize, 2);
      const mask = [21, 14, 3].map((real) => Array.from({ length: 21 }, (_, t) => (t >= 21 - real ? 1 : 0)));
      const [fused, graph] = both(() => model.forward(rows, { attentionMask: mask }));
      const V = config.vocabSize;
      const real = (values: Float32Array) =>
        mask.flatMap((m, b) =>
          m.flatMap((on, t) =>
            on ? Array.from(values.subarray((b * 21 + t) * V, (b * 21 + t + 1) * V)) : [],
          ),
        );
      expect(relativeError(real(fused), real(graph))).toBeLessThan(1e-5);
    });

    it('extends a KV cache as the op graph does (prefill, several columns, single steps)', () => {
      const run = (on: boolean) =>
        withFused(on, () => {
          const cache = new KVCache(config.nLayers, 2);
          const mask = [Array(9).fill(1), [0, 0, 0, 1, 1, 1, 1, 1, 1]];
          const out: number[] = [];
          const steps: Array<[number[][], number[][] | undefined]> = [
            [ids(2, 9, config.vocabSize, 3), mask],
            [ids(2, 4, config.vocabSize, 4), undefined],
            [ids(2, 1, config.vocabSize, 5), [[1], [1]]],
            [ids(2, 1, config.vocabSize, 6), undefined],
          ];
          for (const [columns, m] of steps) {
            const logits = model.forward(columns, { cache, ...(m ? { attentionMask: m } : {}) });
            const v = logits.dataSync();
            // Row 1's padded prefill columns are never read; compare its real columns only.
            const skip = columns === steps[0][0] ? 3 : 0;
            const T = columns[0].length;
            for (let b = 0; b < 2; b++)
              for (let t = b === 1 ? skip : 0; t < T; t++)
                out.push(...v.subarray((b * T + t) * config.vocabSize, (b * T + t + 1) * config.vocabSize));
            logits.dispose();
          }
          // Cached keys [B, kv, 15, hs] of real columns only (row 1's first three are padding,
          // whose hidden states the two implementations compute differently and nobody reads).
          const keys = cache.keys.map((k) => {
            const [, G, Tc, hs] = (k as tf.Tensor4D).shape;
            const v = (k as tf.Tensor4D).dataSync();
            const real: number[] = [];
            for (let b = 0; b < 2; b++)
              for (let g = 0; g < G; g++)
                for (let t = b === 1 ? 3 : 0; t < Tc; t++)
                  real.push(...v.subarray(((b * G + g) * Tc + t) * hs, ((b * G + g) * Tc + t + 1) * hs));
            return real;
          });
          expect(cache.length).toBe(15);
          cache.dispose();
          return { out, keys };
        });
      const fused = run(true);
      const graph = run(false);
      expect(relativeError(fused.out, graph.out)).toBeLessThan(1e-5);
      fused.keys.forEach((k, l) => expect(relativeError(k, graph.keys[l])).toBeLessThan(1e-5));
    });

    it('continues shared prompt rows in place as the gathered-cache graph does', () => {
      const prompts = ids(3, 12, config.vocabSize, 7);
      const mask = prompts.map((_, b) => Array.from({ length: 12 }, (__, t) => (t >= 4 * b ? 1 : 0)));
      const rows = [0, 0, 2, 1, 2, 0, 1];
      const continuations = ids(rows.length, 5, config.vocabSize, 8);
      const run = (on: boolean) =>
        withFused(on, () => {
          const prefix = new KVCache(config.nLayers, 3);
          model.forward(prompts, { cache: prefix, attentionMask: mask, lastOnly: true }).dispose();
          const logits = model.forward(continuations, { prefix: { cache: prefix, rows } });
          const v = Array.from(logits.dataSync());
          logits.dispose();
          expect(prefix.length).toBe(12); // read, not extended
          prefix.dispose();
          return v;
        });
      expect(relativeError(run(true), run(false))).toBeLessThan(1e-5);
    });

    it('takes injected embeddings like the graph (hybrid prompts)', () => {
      const vectors = tf.randomNormal([2, config.dim], 0, 1, 'float32', 5) as tf.Tensor2D;
      const inject = {
        positions: [
          [0, 3],
          [1, 6],
        ] as Array<[number, number]>,
        vectors,
      };
      const [fused, graph] = both(() => model.forward(ids(2, 8, config.vocabSize, 9), { inject }));
      vectors.dispose();
      expect(relativeError(fused, graph)).toBeLessThan(1e-5);
    });

    it('leaves no tensors behind', () => {
      withFused(true, () => {
        const before = tf.memory().numTensors;
        const prefix = new KVCache(config.nLayers, 2);
        model.forward(ids(2, 6, config.vocabSize, 10), { cache: prefix, lastOnly: true }).dispose();
        model
          .forward(ids(3, 2, config.vocabSize, 11), { prefix: { cache: prefix, rows: [1, 0, 1] } })
          .dispose();
        prefix.dispose();
        expect(tf.memory().numTensors).toBe(before);
      });
    });
  });

  it('is not used where gradients are needed: LoRA gradients equal the graph’s', () => {
    const config = tinyConfig();
    const model = new LlamaModel(randomWeights(config, 4));
    attachLora(model, { rank: 2, alpha: 4, dropout: 0 }, 2);
    for (const [name, v] of model.loraVariables())
      if (name.endsWith('lora_B')) v.assign(tf.randomNormal(v.shape, 0, 0.1, 'float32', 3));
    const grads = (on: boolean) =>
      withFused(on, () => {
        const vars = [...model.loraVariables().values()];
        const { value, grads } = tf.variableGrads(
          () => tf.mean(tf.square(model.forward(ids(2, 7, config.vocabSize, 12)))) as tf.Scalar,
          vars,
        );
        const out = Object.values(grads).map((g) => Array.from(g.dataSync()));
        value.dispose();
        Object.values(grads).forEach((g) => g.dispose());
        return out;
      });
    const fused = grads(true);
    const graph = grads(false);
    expect(fused.length).toBe(28); // A and B of 7 targets in 2 layers
    fused.forEach((g, i) => {
      expect(g.some((x) => x !== 0)).toBe(true);
      expect(relativeError(g, graph[i])).toBeLessThan(1e-6);
    });
    model.dispose();
  });

  it('runs unmerged LoRA through the graph and merged LoRA fused, with the same logits', () => {
    const config = tinyConfig();
    const model = new LlamaModel(randomWeights(config, 5));
    attachLora(model, { rank: 2, alpha: 4, dropout: 0 }, 3);
    for (const [name, v] of model.loraVariables())
      if (name.endsWith('lora_B')) v.assign(tf.randomNormal(v.shape, 0, 0.1, 'float32', 4));
    const input = ids(2, 9, config.vocabSize, 13);
    const unmerged = withFused(true, () => model.forward(input));
    mergeLora(model);
    const merged = withFused(true, () => model.forward(input));
    expect(relativeError(merged.dataSync(), unmerged.dataSync())).toBeLessThan(1e-5);
    unmerged.dispose();
    merged.dispose();
    model.dispose();
  });

  it('refuses inconsistent arguments with a message instead of reading out of bounds', () => {
    const addon = loadNativeAddon().addon;
    expect(addon?.decoderLayer).toBeDefined();
    const f = new Float32Array(4);
    expect(() =>
      addon!.decoderLayer!({
        x: f,
        out: f,
        attnNorm: f,
        wq: f,
        wk: f,
        wv: f,
        wo: f,
        ffnNorm: f,
        w1: f,
        w2: f,
        w3: f,
        cos: f,
        sin: f,
        cosRows: 1,
        pastK: null,
        pastV: null,
        pastRows: null,
        pastMask: null,
        newMask: null,
        newK: f,
        newV: f,
        batch: 1,
        time: 1,
        past: 0,
        pastBatch: 1,
        dim: 8,
        heads: 2,
        kvHeads: 1,
        hidden: 4,
        eps: 1e-5,
      }),
    ).toThrow(/x has 4 values, expected 8/);
  });

  // Each instruction-set variant is picked once when the addon loads, so every variant this CPU
  // can run is exercised in its own process and compared with the graph there.
  it.each(['base', 'avx2', 'avx512'])(
    'matches the graph with the %s loops',
    (isa) => {
      const script = join(__dirname, '..', 'testing', 'fused-parity.ts');
      const out = execFileSync(process.execPath, ['-r', 'ts-node/register/transpile-only', script], {
        env: {
          ...process.env,
          CPREC_KERNEL_ISA: isa,
          TS_NODE_PROJECT: join(__dirname, '..', '..', '..', '..', 'tsconfig.json'),
        },
        encoding: 'utf8',
      });
      const result = JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as { isa: string; error: number };
      expect(result.error).toBeLessThan(1e-5);
      // A CPU without the instruction set runs the best one it has.
      expect(['base', 'avx2', 'avx512']).toContain(result.isa);
      if (isa === 'base') expect(result.isa).toBe('base');
    },
    60_000,
  );
});
