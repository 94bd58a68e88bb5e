import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { registerTfjsGradients } from './register-gradients';
import { registerJsReferenceBackend, registerNativeKernels } from './index';
import { fusedAttentionAvailable, groupedAttention } from './attention';
import { KVCache, LlamaModel } from '../model';
import { attachLora } from '../lora';
import { randomWeights } from '../weights';
import { tinyConfig } from '../testing/tiny';

// The fused native attention (backend `cpu` with native kernels) against the op-by-op tfjs graph
// it replaces (backend `cpu-js`, the original JS kernels), values and gradients.
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

interface Case {
  name: string;
  batch: number;
  groups: number;
  kvMul: number;
  time: number;
  past: number;
  head: number;
  bias: 'none' | 'causal' | 'causal+padding';
}

const CASES: Case[] = [
  {
    name: 'training shape with causal bias',
    batch: 2,
    groups: 2,
    kvMul: 2,
    time: 7,
    past: 0,
    head: 4,
    bias: 'causal',
  },
  {
    name: 'padded batch (per-batch bias)',
    batch: 3,
    groups: 1,
    kvMul: 3,
    time: 5,
    past: 0,
    head: 8,
    bias: 'causal+padding',
  },
  {
    name: 'cached decoding step (one row, no bias)',
    batch: 2,
    groups: 2,
    kvMul: 2,
    time: 1,
    past: 9,
    head: 4,
    bias: 'none',
  },
  { name: 'prefill after a cache', batch: 1, groups: 1, kvMul: 1, time: 4, past: 6, head: 3, bias: 'causal' },
  { name: 'size-1 everything', batch: 1, groups: 1, kvMul: 1, time: 1, past: 0, head: 1, bias: 'none' },
  // Several 64-row blocks, blocks straddling two heads (T = 100), causal key skipping per block.
  {
    name: 'long causal rows in blocks',
    batch: 2,
    groups: 3,
    kvMul: 3,
    time: 100,
    past: 0,
    head: 16,
    bias: 'causal',
  },
  {
    name: 'long padded rows in blocks',
    batch: 3,
    groups: 1,
    kvMul: 2,
    time: 70,
    past: 0,
    head: 8,
    bias: 'causal+padding',
  },
  // Above the threading threshold (≥ 1e8 flops): units and row blocks split over threads.
  { name: 'two threads', batch: 4, groups: 2, kvMul: 3, time: 128, past: 0, head: 64, bias: 'causal' },
];

function inputs(c: Case): {
  q: tf.Tensor4D;
  k: tf.Tensor4D;
  v: tf.Tensor4D;
  bias: tf.Tensor4D | null;
  w: tf.Tensor;
} {
  const keys = c.past + c.time;
  const rows = c.kvMul * c.time;
  const q = random([c.batch, c.groups, rows, c.head], 1, 2) as tf.Tensor4D;
  const k = random([c.batch, c.groups, keys, c.head], 2, 2) as tf.Tensor4D;
  const v = random([c.batch, c.groups, keys, c.head], 3) as tf.Tensor4D;
  const w = random([c.batch, c.groups, rows, c.head], 4);
  let bias: tf.Tensor4D | null = null;
  if (c.bias !== 'none') {
    const causal = new Float32Array(c.time * keys);
    for (let i = 0; i < c.time; i++) for (let j = c.past + i + 1; j < keys; j++) causal[i * keys + j] = -1e9;
    bias = tf.tensor4d(causal, [1, 1, c.time, keys]);
    if (c.bias === 'causal+padding') {
      // Batch b pads its first b keys.
      const pad = new Float32Array(c.batch * keys);
      for (let b = 0; b < c.batch; b++) for (let j = 0; j < b; j++) pad[b * keys + j] = -1e9;
      bias = tf.add(bias, tf.tensor4d(pad, [c.batch, 1, 1, keys])) as tf.Tensor4D;
    }
  }
  return { q, k, v, bias, w };
}

async function run(backend: string, c: Case): Promise<{ out: Float32Array; grads: Float32Array[] }> {
  await tf.setBackend(backend);
  return tf.tidy(() => {
    const { q, k, v, bias, w } = inputs(c);
    const out = groupedAttention(q, k, v, bias, c.time);
    const loss = (qq: tf.Tensor, kk: tf.Tensor, vv: tf.Tensor) =>
      tf.sum(
        tf.mul(groupedAttention(qq as tf.Tensor4D, kk as tf.Tensor4D, vv as tf.Tensor4D, bias, c.time), w),
      );
    const grads = tf.grads(loss)([q, k, v]);
    return { out: out.dataSync() as Float32Array, grads: grads.map((g) => g.dataSync() as Float32Array) };
  });
}

function expectClose(actual: Float32Array, expected: Float32Array, tolerance: number): void {
  expect(actual.length).toBe(expected.length);
  let worst = 0;
  for (let i = 0; i < actual.length; i++) {
    worst = Math.max(worst, Math.abs(actual[i] - expected[i]) / Math.max(1, Math.abs(expected[i])));
  }
  expect(worst).toBeLessThanOrEqual(tolerance);
}

describeNative('fused native attention', () => {
  afterAll(async () => {
    await tf.setBackend('cpu');
  });

  it('is what the cpu backend uses once native kernels are registered, and not on other backends', async () => {
    await tf.setBackend('cpu');
    expect(fusedAttentionAvailable()).toBe(true);
    await tf.setBackend('cpu-js');
    expect(fusedAttentionAvailable()).toBe(false);
  });

  it.each(CASES)('matches the tfjs graph in values and gradients: $name', async (c) => {
    const reference = await run('cpu-js', c);
    const fused = await run('cpu', c);
    expectClose(fused.out, reference.out, 1e-5);
    fused.grads.forEach((g, i) => expectClose(g, reference.grads[i], 1e-4));
  });

  it('masked keys get exactly zero weight and zero key/value gradient', async () => {
    await tf.setBackend('cpu');
    const c = CASES[1];
    tf.tidy(() => {
      const { q, k, v, bias } = inputs(c);
      // Batch b pads its first b keys; rows whose time index is below 2 see only padded keys in
      // batch 2 (uniform weights, as in tfjs), so the loss leaves them out.
      const rows = c.kvMul * c.time;
      const keep = tf.tensor4d(
        Array.from({ length: rows }, (_, r) => (r % c.time >= 2 ? 1 : 0)),
        [1, 1, rows, 1],
      );
      const [, dk, dv] = tf.grads((qq: tf.Tensor, kk: tf.Tensor, vv: tf.Tensor) =>
        tf.sum(
          tf.mul(
            groupedAttention(qq as tf.Tensor4D, kk as tf.Tensor4D, vv as tf.Tensor4D, bias, c.time),
            keep,
          ),
        ),
      )([q, k, v]);
      const dkB2 = tf.slice(dk, [2, 0, 0, 0], [1, 1, 2, c.head]).dataSync();
      const dvB2 = tf.slice(dv, [2, 0, 0, 0], [1, 1, 2, c.head]).dataSync();
      expect([...dkB2].every((x) => x === 0)).toBe(true);
      expect([...dvB2].every((x) => x === 0)).toBe(true);
      // The unpadded keys do get gradient.
      expect(
        tf
          .slice(dv, [2, 0, 2, 0], [1, 1, 1, c.head])
          .dataSync()
          .some((x) => x !== 0),
      ).toBe(true);
    });
  });

  it('leaks no tensors, forward or backward', async () => {
    await tf.setBackend('cpu');
    const c = CASES[0];
    const { q, k, v, bias, w } = inputs(c);
    const before = tf.memory().numTensors;
    // Nothing is returned from the tidies: what a tidy returns survives it.
    tf.tidy(() => {
      groupedAttention(q, k, v, bias, c.time);
    });
    tf.tidy(() => {
      tf.grads((qq: tf.Tensor, kk: tf.Tensor, vv: tf.Tensor) =>
        tf.sum(
          tf.mul(groupedAttention(qq as tf.Tensor4D, kk as tf.Tensor4D, vv as tf.Tensor4D, bias, c.time), w),
        ),
      )([q, k, v]);
    });
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([q, k, v, bias, w].filter((t): t is tf.Tensor => t !== null));
  });

  it('rejects shapes that do not line up', async () => {
    await tf.setBackend('cpu');
    tf.tidy(() => {
      const q = tf.zeros([1, 1, 4, 2]) as tf.Tensor4D;
      const k = tf.zeros([1, 1, 3, 2]) as tf.Tensor4D;
      expect(() => groupedAttention(q, k, tf.zeros([1, 1, 3, 3]) as tf.Tensor4D, null, 4)).toThrow(
        /shapes differ/,
      );
      expect(() => groupedAttention(q, k, k, null, 3)).toThrow(/blocks of 3/);
      expect(() => groupedAttention(q, k, k, tf.zeros([1, 1, 4, 2]) as tf.Tensor4D, 4)).toThrow(/bias shape/);
    });
  });
});

describeNative('LlamaModel with fused attention', () => {
  // The model as a whole: logits (padded batch, then a cached decoding step) and LoRA gradients
  // on the native backend (fused attention) match the JS backend (op-by-op attention).
  const weights = randomWeights(tinyConfig({ maxSeqLen: 32 }), 17);
  const ids = [
    [1, 5, 9, 13, 2, 7, 30, 11],
    [0, 0, 1, 8, 21, 3, 17, 4],
  ];
  const mask = [
    [1, 1, 1, 1, 1, 1, 1, 1],
    [0, 0, 1, 1, 1, 1, 1, 1],
  ];

  async function runModel(
    backend: string,
  ): Promise<{ logits: Float32Array; step: Float32Array; grads: Float32Array[] }> {
    await tf.setBackend(backend);
    const model = new LlamaModel(weights);
    attachLora(model, { rank: 4, alpha: 8, dropout: 0 });
    // Give the zero-initialised LoRA B matrices values so the gradient reaches A as well.
    for (const [name, variable] of model.loraVariables())
      if (name.endsWith('.lora_B')) variable.assign(random(variable.shape, name.length, 0.3));
    try {
      const cache = new KVCache(model.config.nLayers, ids.length);
      const logits = tf.tidy(
        () => model.forward(ids, { attentionMask: mask, cache }).dataSync() as Float32Array,
      );
      const step = tf.tidy(
        () => model.forward([[6], [19]], { attentionMask: [[1], [1]], cache }).dataSync() as Float32Array,
      );
      cache.dispose();
      const variables = [...model.loraVariables().values()];
      const grads = tf.tidy(() => {
        const { grads: g } = tf.variableGrads(() => {
          const out = model.forward(ids, { attentionMask: mask, training: true });
          return tf.mean(tf.square(out));
        }, variables);
        return variables.map((v) => g[v.name].dataSync() as Float32Array);
      });
      return { logits, step, grads };
    } finally {
      model.dispose();
    }
  }

  it('matches the JS backend in logits, cached steps and LoRA gradients', async () => {
    const reference = await runModel('cpu-js');
    const fused = await runModel('cpu');
    expectClose(fused.logits, reference.logits, 1e-4);
    expectClose(fused.step, reference.step, 1e-4);
    expect(fused.grads.length).toBe(reference.grads.length);
    fused.grads.forEach((g, i) => expectClose(g, reference.grads[i], 1e-4));
  });
});
