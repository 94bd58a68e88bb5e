import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { registerTfjsGradients } from './register-gradients';
import { registerJsReferenceBackend, registerNativeKernels } from './index';
import {
  dropoutDraw,
  dropoutMask,
  fusedAdamW,
  fusedTrainingAvailable,
  loraProjections,
  ProjectionSpec,
  rmsNorm,
  rope,
  sparseCrossEntropy,
  sumsOfSquares,
  swiglu,
} from './training-ops';
import { LlamaModel } from '../model';
import { attachLora } from '../lora';
import { AdamW, causalLmLoss, modelCausalLmLoss, Trainer } from '../train';
import { randomWeights } from '../weights';
import { tinyConfig } from '../testing/tiny';

// Each fused training kernel (backend `cpu` with native kernels) against the op graph it replaces
// (backend `cpu-js`: the same ops on the original JS kernels), in values and gradients.
const status = registerNativeKernels();
registerJsReferenceBackend('cpu-js');
registerTfjsGradients();
const describeNative = status.loaded || process.env.CI === 'true' ? describe : describe.skip;

function random(shape: number[], seed: number, scale = 1): tf.Tensor {
  let state = seed >>> 0;
  const values = Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return (state / 4294967296 - 0.5) * 2 * scale;
  });
  return tf.tensor(values, shape);
}

/** Worst |a − e| / max(|e|, floor), the floor being the reference's RMS (so near-zeros do not dominate). */
function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance: number): void {
  expect(actual.length).toBe(expected.length);
  let rms = 0;
  for (let i = 0; i < expected.length; i++) rms += expected[i] * expected[i];
  const floor = Math.max(Math.sqrt(rms / Math.max(1, expected.length)), 1e-30);
  let worst = 0;
  for (let i = 0; i < actual.length; i++) {
    const d = Math.abs(actual[i] - expected[i]) / Math.max(Math.abs(expected[i]), floor);
    worst = Math.max(worst, Number.isNaN(d) ? Infinity : d);
  }
  expect(worst).toBeLessThanOrEqual(tolerance);
}

interface Result {
  value: Float32Array;
  grads: Float32Array[];
}

/**
 * Runs `f` on the fused kernels (`cpu`) and on the op graph (`cpu-js`): its value and the
 * gradients of Σ value ⊙ weights with respect to `inputs` (made afresh per backend). Inputs of
 * millions of values (the two-thread paths) take the graph on the native kernels instead
 * (`graphOn: 'native'`, CPREC_FUSED_TRAINING=0): the JS kernels need most of a minute there, and
 * the native ones are themselves checked against them in native-kernels.spec.ts.
 */
async function both(
  makeInputs: () => tf.Tensor[],
  f: (...xs: tf.Tensor[]) => tf.Tensor,
  gradOf: number[],
  graphOn: 'js' | 'native' = 'js',
): Promise<{ fused: Result; graph: Result }> {
  const runOn = async (backend: string, fusedOn: boolean): Promise<Result> => {
    await tf.setBackend(backend);
    if (!fusedOn) process.env.CPREC_FUSED_TRAINING = '0';
    try {
      expect(fusedTrainingAvailable()).toBe(fusedOn);
      return compute();
    } finally {
      delete process.env.CPREC_FUSED_TRAINING;
    }
  };
  const compute = (): Result => {
    // The tidy returns tensors, read afterwards: a tidy returning a typed array walks every element.
    const out = tf.tidy(() => {
      const inputs = makeInputs();
      const value = f(...inputs);
      const weights = random(value.shape, 99);
      const grads = tf.grads((...xs: tf.Tensor[]) => {
        const all = inputs.map((t, i) => (gradOf.includes(i) ? xs[gradOf.indexOf(i)] : t));
        return tf.sum(tf.mul(f(...all), weights));
      })(gradOf.map((i) => inputs[i]));
      return { value, grads };
    });
    const result = {
      value: out.value.dataSync().slice() as Float32Array,
      grads: out.grads.map((g) => g.dataSync().slice() as Float32Array),
    };
    tf.dispose([out.value, ...out.grads]);
    return result;
  };
  const graph = await runOn(graphOn === 'js' ? 'cpu-js' : 'cpu', false);
  const fused = await runOn('cpu', true);
  return { fused, graph };
}

function expectSame(r: { fused: Result; graph: Result }, valueTol: number, gradTol: number): void {
  expectClose(r.fused.value, r.graph.value, valueTol);
  expect(r.fused.grads.length).toBe(r.graph.grads.length);
  r.fused.grads.forEach((g, i) => expectClose(g, r.graph.grads[i], gradTol));
}

/** Creates tensors outside any tidy, runs `f` twice in tidies, and checks nothing was left over. */
async function expectNoLeaks(
  makeInputs: () => tf.Tensor[],
  f: (...xs: tf.Tensor[]) => tf.Tensor,
): Promise<void> {
  await tf.setBackend('cpu');
  const inputs = makeInputs();
  const before = tf.memory().numTensors;
  tf.tidy(() => {
    f(...inputs);
  });
  tf.tidy(() => {
    const floats = inputs.filter((t) => t.dtype === 'float32');
    tf.grads((...xs: tf.Tensor[]) => {
      let k = 0;
      return tf.sum(f(...inputs.map((t) => (t.dtype === 'float32' ? xs[k++] : t))));
    })(floats);
  });
  expect(tf.memory().numTensors).toBe(before);
  tf.dispose(inputs);
}

describeNative('fused training kernels', () => {
  afterAll(async () => {
    await tf.setBackend('cpu');
  });

  it('are used on the native cpu backend only, and CPREC_FUSED_TRAINING=0 turns them off', async () => {
    await tf.setBackend('cpu');
    expect(fusedTrainingAvailable()).toBe(true);
    process.env.CPREC_FUSED_TRAINING = '0';
    try {
      expect(fusedTrainingAvailable()).toBe(false);
    } finally {
      delete process.env.CPREC_FUSED_TRAINING;
    }
    await tf.setBackend('cpu-js');
    expect(fusedTrainingAvailable()).toBe(false);
  });

  describe('RMSNorm', () => {
    it.each([
      // dim 1 with a small eps cancels catastrophically in both paths (dx ∝ eps): a larger eps.
      [[1, 1], 0.5],
      [[3, 7], 1e-5],
      [[17, 576], 1e-6],
      [[2, 3, 33], 0.1],
    ])('matches the graph in value, dx and dw for x %j (eps %d)', async (shape, eps) => {
      const dim = shape[shape.length - 1];
      const r = await both(
        () => [random(shape, 1, 3), random([dim], 2, 2)],
        (x, w) => rmsNorm(x, w, eps),
        [0, 1],
      );
      expectSame(r, 1e-6, 1e-5);
    });

    it('leaks no tensors and refuses a weight that does not fit', async () => {
      await expectNoLeaks(
        () => [random([5, 9], 3), random([9], 4)],
        (x, w) => rmsNorm(x, w, 1e-5),
      );
      tf.tidy(() => {
        expect(() => rmsNorm(tf.zeros([2, 4]), tf.zeros([5]), 1e-5)).toThrow(/weight \[5\] does not match/);
        expect(() => rmsNorm(tf.zeros([2, 4]), tf.zeros([2, 4]), 1e-5)).toThrow(/does not match/);
      });
    });
  });

  describe('SwiGLU', () => {
    it.each([[[1]], [[7, 13]], [[2, 3, 5]], [[2731, 1536]]])('matches the graph for %j', async (shape) => {
      const r = await both(
        () => [random(shape, 5, 9), random(shape, 6, 2)],
        (g, u) => swiglu(g, u),
        [0, 1],
        shape.reduce((a, b) => a * b, 1) >= 1 << 22 ? 'native' : 'js',
      );
      expectSame(r, 1e-6, 1e-5);
    });

    it('leaks no tensors and refuses different shapes', async () => {
      await expectNoLeaks(
        () => [random([4, 6], 7), random([4, 6], 8)],
        (g, u) => swiglu(g, u),
      );
      tf.tidy(() => {
        expect(() => swiglu(tf.zeros([2, 4]), tf.zeros([4, 2]))).toThrow(/differ/);
      });
    });
  });

  describe('RoPE', () => {
    const cases: Array<{
      shape: [number, number, number, number];
      perBatch: boolean;
      scale: number;
      headsFirst: boolean;
    }> = [
      { shape: [1, 1, 1, 2], perBatch: false, scale: 1, headsFirst: false },
      { shape: [2, 5, 3, 4], perBatch: false, scale: 0.35355339, headsFirst: true },
      { shape: [3, 7, 2, 8], perBatch: true, scale: 1, headsFirst: true },
      { shape: [2, 9, 3, 64], perBatch: true, scale: 0.125, headsFirst: false },
    ];
    it.each(cases)(
      'matches the graph for $shape (cos per batch row: $perBatch, scale $scale, heads first: $headsFirst)',
      async (c) => {
        const [B, T, , hs] = c.shape;
        const rows = c.perBatch ? B * T : T;
        const r = await both(
          () => [random(c.shape, 9, 2), random([rows, hs], 10), random([rows, hs], 11)],
          (x, cos, sin) =>
            rope(x as tf.Tensor4D, cos as tf.Tensor2D, sin as tf.Tensor2D, {
              scale: c.scale,
              headsFirst: c.headsFirst,
            }),
          [0],
        );
        expectSame(r, 1e-6, 1e-5);
      },
    );

    it('leaks no tensors and refuses tables or head sizes that do not fit', async () => {
      await expectNoLeaks(
        () => [random([2, 3, 2, 4], 12), random([3, 4], 13), random([3, 4], 14)],
        (x, cos, sin) => rope(x as tf.Tensor4D, cos as tf.Tensor2D, sin as tf.Tensor2D, { headsFirst: true }),
      );
      tf.tidy(() => {
        const x = tf.zeros([1, 3, 2, 4]) as tf.Tensor4D;
        expect(() => rope(x, tf.zeros([2, 4]) as tf.Tensor2D, tf.zeros([2, 4]) as tf.Tensor2D)).toThrow(
          /cos \[2, 4\]/,
        );
        expect(() => rope(x, tf.zeros([3, 4]) as tf.Tensor2D, tf.zeros([3, 2]) as tf.Tensor2D)).toThrow(
          /sin/,
        );
        expect(() =>
          rope(
            tf.zeros([1, 3, 2, 3]) as tf.Tensor4D,
            tf.zeros([3, 3]) as tf.Tensor2D,
            tf.zeros([3, 3]) as tf.Tensor2D,
          ),
        ).toThrow(/even head size/);
      });
    });
  });

  describe('cross-entropy', () => {
    const cases = [
      { rows: 1, vocab: 2, weights: [1] },
      { rows: 5, vocab: 7, weights: [1, 0, 1, 1, 0] },
      { rows: 6, vocab: 1000, weights: [0.5, 2, 0, 1, 1, 0.25] },
      { rows: 3, vocab: 33, weights: [0, 0, 0] },
      // SmolLM2's vocabulary, enough counted rows (86) for the two-thread path (4M values).
      { rows: 129, vocab: 49152, weights: Array.from({ length: 129 }, (_, i) => (i % 3 === 0 ? 0 : 1)) },
    ];
    it.each(cases)('matches the graph in loss and dlogits ($rows rows, vocab $vocab)', async (c) => {
      const targets = Array.from({ length: c.rows }, (_, i) => (i * 7919 + 3) % c.vocab);
      const r = await both(
        () => [random([c.rows, c.vocab], 15, 6), tf.tensor1d(targets, 'int32'), tf.tensor1d(c.weights)],
        (logits, t, w) => sparseCrossEntropy(logits as tf.Tensor2D, t as tf.Tensor1D, w as tf.Tensor1D),
        [0],
        c.rows * c.vocab >= 1 << 22 ? 'native' : 'js',
      );
      expectSame(r, 1e-6, 1e-5);
    });

    it('never reads the logits of rows with weight 0', async () => {
      await tf.setBackend('cpu');
      tf.tidy(() => {
        const values = random([3, 5], 16).dataSync().slice();
        values.fill(NaN, 5, 10); // row 1: weight 0
        const logits = tf.tensor2d(values, [3, 5]);
        const targets = tf.tensor1d([1, 99, 4], 'int32'); // row 1's target is not even in range
        const weights = tf.tensor1d([1, 0, 1]);
        const [loss, dlogits] = [
          sparseCrossEntropy(logits, targets, weights),
          tf.grad((l: tf.Tensor) => sparseCrossEntropy(l as tf.Tensor2D, targets, weights))(logits),
        ];
        expect(Number.isFinite(loss.dataSync()[0])).toBe(true);
        expect([...dlogits.dataSync().slice(5, 10)]).toEqual([0, 0, 0, 0, 0]);
      });
    });

    it('leaks no tensors and refuses bad shapes or targets', async () => {
      await expectNoLeaks(
        () => [random([4, 9], 17), tf.tensor1d([1, 2, 3, 4], 'int32'), tf.tensor1d([1, 1, 0, 1])],
        (l, t, w) => sparseCrossEntropy(l as tf.Tensor2D, t as tf.Tensor1D, w as tf.Tensor1D),
      );
      await tf.setBackend('cpu');
      tf.tidy(() => {
        const logits = tf.zeros([2, 4]) as tf.Tensor2D;
        const w = tf.ones([2]) as tf.Tensor1D;
        expect(() => sparseCrossEntropy(logits, tf.tensor1d([1, 2, 3], 'int32'), w)).toThrow(
          /targets must be int32 \[2\]/,
        );
        expect(() => sparseCrossEntropy(logits, tf.tensor1d([1, 2]), w)).toThrow(/int32/);
        expect(() =>
          sparseCrossEntropy(logits, tf.tensor1d([1, 2], 'int32'), tf.ones([3]) as tf.Tensor1D),
        ).toThrow(/weights \[3\]/);
        expect(() => sparseCrossEntropy(logits, tf.tensor1d([1, 4], 'int32'), w)).toThrow(
          /outside the vocabulary/,
        );
      });
    });
  });

  describe('LoRA projections', () => {
    // x [rows, in]; projections with and without adapters, own (dropout) inputs and residuals.
    function setup(
      rows: number,
      inDim: number,
      outs: number[],
      opts: { input?: boolean; residual?: boolean; dropout?: number },
    ) {
      const make = (): tf.Tensor[] => {
        const list: tf.Tensor[] = [random([rows, inDim], 20)];
        outs.forEach((out, i) => {
          list.push(random([out, inDim], 21 + i, 0.5));
          if (i !== 1) list.push(random([3, inDim], 31 + i, 0.5), random([out, 3], 41 + i, 0.5));
          if (i !== 1 && opts.input) list.push(random([rows, inDim], 51 + i));
          if (i === 0 && opts.residual) list.push(random([rows, out], 61));
        });
        return list;
      };
      const f = (...t: tf.Tensor[]): tf.Tensor => {
        let next = 1;
        const specs = outs.map((_, i): ProjectionSpec => {
          const spec: ProjectionSpec = { w: t[next++] as tf.Tensor2D };
          if (i !== 1) {
            spec.lora = { a: t[next++] as tf.Tensor2D, b: t[next++] as tf.Tensor2D };
            if (opts.input) spec.lora.input = t[next++] as tf.Tensor2D;
            if (opts.dropout) spec.lora.dropout = { rate: opts.dropout, seed: 1000 + i };
          }
          if (i === 0 && opts.residual) spec.residual = t[next++] as tf.Tensor2D;
          return spec;
        });
        const ys = loraProjections(t[0] as tf.Tensor2D, specs, 2);
        return tf.concat(ys.map((y) => tf.reshape(y, [-1])));
      };
      return { make, f };
    }

    it.each([
      { rows: 1, inDim: 5, outs: [3], input: false, residual: false, dropout: 0 },
      { rows: 7, inDim: 13, outs: [13, 6, 6], input: false, residual: true, dropout: 0 },
      { rows: 9, inDim: 16, outs: [24, 11], input: true, residual: true, dropout: 0 },
      { rows: 300, inDim: 96, outs: [96, 32, 32], input: false, residual: false, dropout: 0 },
      // Above the threading threshold: row blocks on two threads, dA/dB partials summed.
      { rows: 512, inDim: 256, outs: [256, 256], input: true, residual: true, dropout: 0 },
      // Dropout drawn in the kernel against the same draws as a mask in the graph.
      { rows: 7, inDim: 13, outs: [13, 6, 6], input: false, residual: true, dropout: 0.3 },
      { rows: 512, inDim: 256, outs: [256, 256, 64], input: false, residual: true, dropout: 0.05 },
    ])(
      'match the graph in outputs and every gradient: $rows × $inDim → $outs (dropout $dropout)',
      async (c) => {
        const { make, f } = setup(c.rows, c.inDim, c.outs, c);
        const probe = make();
        const all = probe.map((_, i) => i);
        tf.dispose(probe);
        const r = await both(make, f, all);
        expectSame(r, 1e-5, 1e-4);
      },
    );

    it('draw dropout masks that keep 1 − rate of the values, the same for every call', () => {
      const rate = 0.05;
      const mask = dropoutMask(400, 250, rate, 7);
      const values = mask.dataSync();
      const kept = values.filter((v) => v !== 0);
      expect(kept.length / values.length).toBeGreaterThan(1 - rate - 0.005);
      expect(kept.length / values.length).toBeLessThan(1 - rate + 0.005);
      expect(kept.every((v) => v === Math.fround(1 / (1 - rate)))).toBe(true);
      expect(Array.from(dropoutMask(400, 250, rate, 7).dataSync())).toEqual(Array.from(values));
      expect(Array.from(dropoutMask(400, 250, rate, 8).dataSync())).not.toEqual(Array.from(values));
      expect(dropoutDraw(12345, 678)).toBe(dropoutDraw(12345, 678));
      tf.dispose(mask);
    });

    it('leaks no tensors and refuses adapters that do not fit', async () => {
      const { make, f } = setup(4, 6, [6, 2], { input: true, residual: true });
      await expectNoLeaks(make, f);
      await tf.setBackend('cpu');
      tf.tidy(() => {
        const x = tf.zeros([4, 6]) as tf.Tensor2D;
        const w = tf.zeros([5, 6]) as tf.Tensor2D;
        expect(() => loraProjections(x, [{ w: tf.zeros([5, 7]) as tf.Tensor2D }], 1)).toThrow(/width 6/);
        expect(() =>
          loraProjections(
            x,
            [{ w, lora: { a: tf.zeros([2, 6]) as tf.Tensor2D, b: tf.zeros([5, 3]) as tf.Tensor2D } }],
            1,
          ),
        ).toThrow(/do not fit/);
        expect(() => loraProjections(x, [{ w, residual: tf.zeros([4, 6]) as tf.Tensor2D }], 1)).toThrow(
          /residual/,
        );
      });
    });
  });

  describe('optimizer step', () => {
    it('gives the same norm and bit-identical AdamW updates as the graph, with clipping and weight decay', async () => {
      const shapes = [[8, 576], [1536, 8], [3], [5, 7]];
      const run = async (backend: string) => {
        await tf.setBackend(backend);
        const vars = new Map(shapes.map((s, i) => [`v${i}`, tf.variable(random(s, 70 + i))]));
        const opt = new AdamW({ weightDecay: 0.1 });
        const out: Float32Array[] = [];
        let norms: number[] = [];
        for (let step = 0; step < 3; step++) {
          const grads = new Map(shapes.map((s, i) => [`v${i}`, random(s, 80 + i + step, 3)]));
          norms = sumsOfSquares([...grads.values()]);
          opt.apply(vars, grads, 1e-2, step === 1 ? 0.37 : 1);
          tf.dispose([...grads.values()]);
        }
        for (const v of vars.values()) out.push(v.dataSync().slice() as Float32Array);
        const state = opt.getState();
        opt.dispose();
        tf.dispose([...vars.values()]);
        return { out, norms, m: Object.values(state.m).map((t) => t.data) };
      };
      const graph = await run('cpu-js');
      const fused = await run('cpu');
      expect(fused.norms).toEqual(graph.norms);
      fused.out.forEach((w, i) => expect(Array.from(w)).toEqual(Array.from(graph.out[i])));
      fused.m.forEach((m, i) => expect(Array.from(m)).toEqual(Array.from(graph.m[i])));
    });

    it('refuses moments that do not match the weights', async () => {
      await tf.setBackend('cpu');
      tf.tidy(() => {
        const w = tf.zeros([3]);
        expect(() => fusedAdamW([{ w, g: tf.zeros([4]), m: w, v: w }], {} as never)).toThrow(/do not match/);
      });
    });
  });
});

describeNative('training with the fused kernels', () => {
  const config = tinyConfig({ maxSeqLen: 32, tiedClassifier: true });
  const weights = randomWeights(config, 23);
  const ids = [
    [1, 5, 9, 13, 2, 7, 30, 11, 4],
    [0, 0, 1, 8, 21, 3, 17, 4, 6],
  ];
  const attentionMask = [
    [1, 1, 1, 1, 1, 1, 1, 1, 1],
    [0, 0, 1, 1, 1, 1, 1, 1, 1],
  ];
  const lossMask = [
    [0, 1, 1, 1, 1, 1, 1, 1, 1],
    [0, 0, 0, 0, 0, 0, 1, 1, 0],
  ];

  async function train(
    backend: string,
    mask: number[][],
  ): Promise<{ losses: number[]; adapters: Float32Array[] }> {
    await tf.setBackend(backend);
    const model = new LlamaModel(weights);
    attachLora(model, { rank: 4, alpha: 8, dropout: 0 });
    const trainer = new Trainer(model, { weightDecay: 0.01, maxGradNorm: 0.5 });
    try {
      const losses: number[] = [];
      for (let i = 0; i < 3; i++)
        losses.push(trainer.trainStep({ inputIds: ids, lossMask: mask, attentionMask }, 1e-2));
      return {
        losses,
        adapters: [...model.loraVariables().values()].map((v) => v.dataSync().slice() as Float32Array),
      };
    } finally {
      trainer.dispose();
      model.dispose();
    }
  }

  it.each([
    ['every token', lossMask.map((r) => r.map(() => 1))],
    ['an answer-only mask', lossMask],
    ['an empty mask', lossMask.map((r) => r.map(() => 0))],
  ])('Trainer steps match the op graph with %s (loss, clipped AdamW updates)', async (_, mask) => {
    const graph = await train('cpu-js', mask);
    const fused = await train('cpu', mask);
    expectClose(fused.losses, graph.losses, 1e-5);
    fused.adapters.forEach((a, i) => expectClose(a, graph.adapters[i], 1e-4));
  });

  it('modelCausalLmLoss equals causalLmLoss over full logits, in value and gradients', async () => {
    await tf.setBackend('cpu');
    const model = new LlamaModel(weights);
    attachLora(model, { rank: 4, alpha: 8, dropout: 0 });
    for (const [name, v] of model.loraVariables())
      if (name.endsWith('lora_B')) v.assign(random(v.shape, name.length, 0.3));
    const vars = [...model.loraVariables().values()];
    const idsT = tf.tensor2d(ids, undefined, 'int32');
    const maskT = tf.tensor2d(lossMask);
    const lossAndGrads = (f: () => tf.Scalar): { loss: number; grads: Float32Array[] } =>
      tf.tidy(() => {
        const { value, grads } = tf.variableGrads(f, vars);
        return {
          loss: value.dataSync()[0],
          grads: vars.map((v) => grads[v.name].dataSync() as Float32Array),
        };
      });
    try {
      const opts = { attentionMask, training: true };
      const selected = lossAndGrads(() => modelCausalLmLoss(model, idsT, maskT, opts));
      const full = lossAndGrads(() => causalLmLoss(model.forward(idsT, opts), idsT, maskT));
      process.env.CPREC_FUSED_TRAINING = '0';
      const graph = lossAndGrads(() => causalLmLoss(model.forward(idsT, opts), idsT, maskT));
      delete process.env.CPREC_FUSED_TRAINING;
      expect(Math.abs(selected.loss - full.loss) / full.loss).toBeLessThan(1e-6);
      expect(Math.abs(selected.loss - graph.loss) / graph.loss).toBeLessThan(1e-5);
      selected.grads.forEach((g, i) => expectClose(g, full.grads[i], 1e-5));
      selected.grads.forEach((g, i) => expectClose(g, graph.grads[i], 1e-4));
      // logitsAt gives forward's rows.
      const rows = [0, 4, 10, 17];
      const at = tf.tidy(() => model.logitsAt(idsT, rows, { attentionMask }).dataSync().slice());
      const all = tf.tidy(() => model.forward(idsT, { attentionMask }).dataSync().slice());
      const V = config.vocabSize;
      rows.forEach((r, k) =>
        expectClose(at.subarray(k * V, (k + 1) * V), all.subarray(r * V, (r + 1) * V), 1e-5),
      );
      expect(() => model.logitsAt(idsT, [18])).toThrow(/outside the batch/);
    } finally {
      delete process.env.CPREC_FUSED_TRAINING;
      tf.dispose([idsT, maskT]);
      model.dispose();
    }
  });

  it('a training step leaves no tensors behind', async () => {
    await tf.setBackend('cpu');
    const model = new LlamaModel(weights);
    attachLora(model, { rank: 4, alpha: 8, dropout: 0.1 });
    const trainer = new Trainer(model, { maxGradNorm: 0.1 });
    trainer.trainStep({ inputIds: ids, lossMask, attentionMask }, 1e-2); // creates the moments
    const before = tf.memory().numTensors;
    trainer.trainStep({ inputIds: ids, lossMask, attentionMask }, 1e-2);
    expect(tf.memory().numTensors).toBe(before);
    trainer.dispose();
    model.dispose();
  });
});
