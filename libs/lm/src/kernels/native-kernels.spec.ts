import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { registerJsReferenceBackend, registerNativeKernels } from './index';
import { createTinyDecoder, tinyDecoderBatch, tinyDecoderLoss } from './tiny-decoder';

// Every native kernel is compared with the tfjs-backend-cpu JS kernel it replaces: `cpu` runs the
// native kernels, `cpu-js` the original JS ones, on identical inputs.
const status = registerNativeKernels();
registerJsReferenceBackend('cpu-js');
const inCi = process.env.CI === 'true';

if (!status.loaded && !inCi) {
  console.warn(`native kernel specs skipped: ${status.reason} (run scripts/build-native.sh)`);
}

const describeNative = status.loaded ? describe : inCi ? describe : describe.skip;

/** Deterministic pseudo-random floats in roughly N(0, 1) (sum of uniforms). */
function randomValues(size: number, seed: number, positive = false): Float32Array {
  const out = new Float32Array(size);
  let state = (seed * 2654435761) >>> 0;
  const next = (): number => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 4294967296;
  };
  for (let i = 0; i < size; i++) {
    const v = next() + next() + next() - 1.5;
    out[i] = positive ? Math.abs(v) * 2 + 0.05 : v * 2;
  }
  return out;
}

type Build = () => tf.Tensor | tf.Tensor[];

async function runOn(
  backend: string,
  build: Build,
): Promise<Array<{ shape: number[]; dtype: string; values: Float32Array }>> {
  await tf.setBackend(backend);
  return tf.tidy(() => {
    const result = build();
    return (Array.isArray(result) ? result : [result]).map((t) => ({
      shape: t.shape,
      dtype: t.dtype,
      values: Float32Array.from(t.dataSync() as Float32Array),
    }));
  });
}

/**
 * Element-wise relative error, with the tensor's RMS (over its finite values) as the floor of the denominator so values
 * that cancel to ~0 (where float summation order dominates) do not produce spurious failures.
 */
function maxRelativeError(actual: Float32Array, expected: Float32Array): number {
  let sumSquares = 0;
  let finite = 0;
  for (const v of expected) {
    if (!Number.isFinite(v)) continue;
    sumSquares += v * v;
    finite++;
  }
  const floor = Math.max(Math.sqrt(sumSquares / Math.max(1, finite)), 1e-12);
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i];
    const a = actual[i];
    if (Number.isNaN(e) || Number.isNaN(a)) {
      if (!(Number.isNaN(e) && Number.isNaN(a))) return Infinity;
      continue;
    }
    if (e === a) continue;
    worst = Math.max(worst, Math.abs(a - e) / Math.max(Math.abs(e), floor));
  }
  return worst;
}

async function expectNativeMatchesJs(build: Build, tolerance = 1e-5): Promise<void> {
  const expected = await runOn('cpu-js', build);
  const actual = await runOn('cpu', build);
  expect(actual.length).toBe(expected.length);
  actual.forEach((a, i) => {
    expect(a.shape).toEqual(expected[i].shape);
    expect(a.dtype).toBe(expected[i].dtype);
    expect(a.values.length).toBe(expected[i].values.length);
    expect(maxRelativeError(a.values, expected[i].values)).toBeLessThanOrEqual(tolerance);
  });
}

let seed = 1;
const t = (shape: number[], positive = false): tf.Tensor =>
  tf.tensor(
    randomValues(
      shape.reduce((s, d) => s * d, 1),
      seed++,
      positive,
    ),
    shape,
  );

/** Fixed inputs per test case: created once so both backends see identical values. */
function fixed(shapes: number[][], positive = false): () => tf.Tensor[] {
  const data = shapes.map((s) => ({
    shape: s,
    values: randomValues(
      s.reduce((p, d) => p * d, 1),
      seed++,
      positive,
    ),
  }));
  return () => data.map((d) => tf.tensor(d.values, d.shape));
}

describeNative('native tfjs kernels', () => {
  afterAll(async () => {
    await tf.setBackend('cpu');
  });

  it('loaded the addon and overrode the profiled kernels', () => {
    if (!status.loaded) throw new Error(`native addon not available in CI: ${status.reason}`);
    expect(status.kernels).toEqual(
      expect.arrayContaining([
        'BatchMatMul',
        '_FusedMatMul',
        'Add',
        'Multiply',
        'Softmax',
        'Sum',
        'Transpose',
        'GatherV2',
      ]),
    );
    expect(tf.getKernel('BatchMatMul', 'cpu')?.kernelFunc).not.toBe(
      tf.getKernel('BatchMatMul', 'cpu-js')?.kernelFunc,
    );
  });

  describe('BatchMatMul', () => {
    const cases: Array<[number[], number[]]> = [
      [
        [2, 3],
        [3, 4],
      ],
      [
        [1, 1],
        [1, 1],
      ],
      [
        [0, 3],
        [3, 4],
      ],
      [
        [5, 0],
        [0, 4],
      ],
      [
        [3, 4, 5],
        [3, 5, 6],
      ],
      [
        [1, 4, 5],
        [3, 5, 6],
      ],
      [
        [3, 4, 5],
        [1, 5, 6],
      ],
      [
        [2, 2, 7, 9],
        [2, 2, 9, 3],
      ],
      [
        [64, 128],
        [128, 96],
      ],
      [
        [16, 32, 24],
        [16, 24, 40],
      ],
      // Above the kernel's threading threshold (1e8 flops): split by output rows, by output
      // columns (m < n), and by batch.
      [
        [601, 300],
        [300, 377],
      ],
      [
        [97, 800],
        [800, 701],
      ],
      [
        [3, 260, 250],
        [3, 250, 270],
      ],
    ];
    for (const [aShape, bShape] of cases) {
      for (const transposeA of [false, true]) {
        for (const transposeB of [false, true]) {
          const swap = (s: number[], tr: boolean): number[] =>
            tr ? [...s.slice(0, -2), s[s.length - 1], s[s.length - 2]] : s;
          const shapes = [swap(aShape, transposeA), swap(bShape, transposeB)];
          it(`${aShape}×${bShape} transposeA=${transposeA} transposeB=${transposeB}`, async () => {
            const inputs = fixed(shapes);
            await expectNativeMatchesJs(() => {
              const [a, b] = inputs();
              return tf.matMul(a, b, transposeA, transposeB);
            });
          });
        }
      }
    }
  });

  describe('_FusedMatMul', () => {
    const activations: Array<
      'linear' | 'relu' | 'elu' | 'relu6' | 'sigmoid' | 'prelu' | 'leakyrelu' | undefined
    > = [undefined, 'linear', 'relu', 'elu', 'relu6', 'sigmoid', 'prelu', 'leakyrelu'];
    for (const activation of activations) {
      for (const transposeB of [false, true]) {
        it(`bias + ${activation ?? 'no activation'} transposeB=${transposeB}`, async () => {
          const inputs = fixed([[2, 5, 6], transposeB ? [2, 7, 6] : [2, 6, 7], [7], [7]]);
          await expectNativeMatchesJs(() => {
            const [a, b, bias, alpha] = inputs();
            return tf.fused.matMul({
              a: a as tf.Tensor3D,
              b: b as tf.Tensor3D,
              transposeB,
              bias,
              activation,
              preluActivationWeights: activation === 'prelu' ? alpha : undefined,
              leakyreluAlpha: activation === 'leakyrelu' ? 0.3 : undefined,
            });
          });
        });
      }
    }
  });

  describe('binary ops with broadcasting', () => {
    const ops: Record<string, (a: tf.Tensor, b: tf.Tensor) => tf.Tensor> = {
      Add: tf.add,
      Sub: tf.sub,
      Multiply: tf.mul,
      RealDiv: tf.div,
      Maximum: tf.maximum,
      Minimum: tf.minimum,
      SquaredDifference: tf.squaredDifference,
    };
    const shapes: Array<[number[], number[]]> = [
      [
        [3, 4],
        [3, 4],
      ],
      [[3, 4], [4]],
      [[4], [3, 4]],
      [
        [3, 1],
        [1, 4],
      ],
      [
        [2, 3, 4],
        [3, 1],
      ],
      [[], [5]],
      [[5], []],
      [[0, 4], [4]],
      [
        [2, 1, 3],
        [2, 5, 1],
      ],
      [[1, 1, 1], [1]],
      [
        [64, 600],
        [64, 600],
      ],
      [
        [8, 8, 64, 64],
        [64, 64],
      ],
      [
        [8, 4, 64, 16],
        [8, 1, 64, 1],
      ],
    ];
    for (const [name, op] of Object.entries(ops)) {
      for (const [aShape, bShape] of shapes) {
        it(`${name} [${aShape}] ∘ [${bShape}]`, async () => {
          const inputs = fixed([aShape, bShape], name === 'RealDiv');
          await expectNativeMatchesJs(() => {
            const [a, b] = inputs();
            return op(a, b);
          });
        });
      }
    }
    it('falls back to JS for int32 inputs', async () => {
      await expectNativeMatchesJs(() =>
        tf.add(tf.tensor([1, 2, 3], [3], 'int32'), tf.tensor([4], [1], 'int32')),
      );
    });
  });

  describe('unary ops', () => {
    const ops: Record<string, [(x: tf.Tensor) => tf.Tensor, boolean]> = {
      Exp: [tf.exp, false],
      Log: [tf.log, true],
      Neg: [tf.neg, false],
      Sqrt: [tf.sqrt, true],
      Rsqrt: [tf.rsqrt, true],
      Reciprocal: [tf.reciprocal, true],
      Sigmoid: [tf.sigmoid, false],
      Relu: [tf.relu, false],
      Square: [tf.square, false],
      Abs: [tf.abs, false],
    };
    for (const [name, [op, positive]] of Object.entries(ops)) {
      for (const shape of [[0], [1], [7], [3, 5], [300, 200]]) {
        it(`${name} [${shape}]`, async () => {
          const inputs = fixed([shape], positive);
          await expectNativeMatchesJs(() => op(inputs()[0]));
        });
      }
    }
    // exp and sigmoid use a polynomial exp in the native kernels: check its range ends, where it
    // must underflow to exactly 0, overflow to Infinity and keep NaN, like Math.exp.
    const extremes = [
      -1e9,
      -200,
      -103.9,
      -88,
      -87.3,
      -1e-30,
      0,
      1e-30,
      1,
      50,
      88.5,
      88.8,
      200,
      NaN,
      Infinity,
      -Infinity,
    ];
    for (const [name, op] of [
      ['Exp', tf.exp],
      ['Sigmoid', tf.sigmoid],
    ] as const) {
      it(`${name} at the float range ends, ±Infinity and NaN`, async () => {
        await expectNativeMatchesJs(() => op(tf.tensor1d(extremes)));
      });
    }
  });

  describe('Softmax', () => {
    for (const shape of [[5, 7], [2, 3, 1], [1], [8, 8, 32, 32], [64, 1000]]) {
      it(`[${shape}]`, async () => {
        const inputs = fixed([shape]);
        await expectNativeMatchesJs(() => tf.softmax(inputs()[0]));
      });
    }
    it('rows with masked (-1e9) entries, huge spreads and a NaN', async () => {
      await expectNativeMatchesJs(() =>
        tf.softmax(
          tf.tensor2d(
            [
              [0, -1e9, 3, -1e9],
              [1000, -1000, 0, 999],
              [-1e9, -1e9, -1e9, -1e9],
              [1, NaN, 2, 3],
            ],
            [4, 4],
          ),
        ),
      );
    });
  });

  describe('reductions', () => {
    const cases: Array<[number[], number | number[], boolean]> = [
      [[3, 4, 5], 0, false],
      [[3, 4, 5], 1, true],
      [[3, 4, 5], 2, false],
      [[3, 4, 5], -1, true],
      [[3, 4, 5], [0, 2], false],
      [[3, 4, 5], [0, 1, 2], true],
      [[1000, 80], 1, false],
      [[1000, 80], 0, true],
      [[7], 0, false],
    ];
    const ops: Record<string, (x: tf.Tensor, axis: number | number[], keepDims: boolean) => tf.Tensor> = {
      Sum: tf.sum,
      Max: tf.max,
      Mean: tf.mean,
    };
    for (const [name, op] of Object.entries(ops)) {
      for (const [shape, axis, keepDims] of cases) {
        it(`${name} [${shape}] axis ${axis} keepDims ${keepDims}`, async () => {
          const inputs = fixed([shape]);
          await expectNativeMatchesJs(() => op(inputs()[0], axis, keepDims));
        });
      }
    }
    it('Sum over an empty axis is zero', async () => {
      await expectNativeMatchesJs(() => tf.sum(tf.zeros([3, 0]), 1));
    });
  });

  describe('data movement', () => {
    it('Transpose, all permutations of rank 3 and a head split', async () => {
      const inputs = fixed([
        [2, 3, 4],
        [4, 16, 8, 8],
        [0, 3, 2],
      ]);
      for (const perm of [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
      ]) {
        await expectNativeMatchesJs(() => tf.transpose(inputs()[0], perm));
      }
      await expectNativeMatchesJs(() => tf.transpose(inputs()[1], [0, 2, 1, 3]));
      await expectNativeMatchesJs(() => tf.transpose(inputs()[2], [2, 0, 1]));
    });
    it('Slice, including full, empty and strided windows', async () => {
      const inputs = fixed([[4, 5, 6]]);
      await expectNativeMatchesJs(() => tf.slice(inputs()[0], [1, 0, 2], [2, -1, 3]));
      await expectNativeMatchesJs(() => tf.slice(inputs()[0], [0, 0, 0], [4, 5, 6]));
      await expectNativeMatchesJs(() => tf.slice(inputs()[0], [1, 2, 3], [2, 0, 2]));
      await expectNativeMatchesJs(() => tf.slice(inputs()[0], [3], [1]));
    });
    it('SplitV and Concat', async () => {
      const inputs = fixed([
        [4, 6],
        [2, 3],
        [2, 0],
        [2, 4],
        [3, 2, 5],
      ]);
      await expectNativeMatchesJs(() => tf.split(inputs()[0], [2, 4], 1));
      await expectNativeMatchesJs(() => tf.split(inputs()[0], 2, 0));
      await expectNativeMatchesJs(() => {
        const [, a, b, c] = inputs();
        return tf.concat([a, b, c], 1);
      });
      await expectNativeMatchesJs(() => {
        const x = inputs()[4];
        return [tf.concat([x, x], 0), tf.concat([x, x, x], 2)];
      });
    });
    it('PadV2', async () => {
      const inputs = fixed([
        [3, 4],
        [2, 1, 3],
      ]);
      await expectNativeMatchesJs(() =>
        tf.pad(
          inputs()[0],
          [
            [1, 2],
            [0, 3],
          ],
          1.5,
        ),
      );
      await expectNativeMatchesJs(() =>
        tf.pad(inputs()[1], [
          [0, 0],
          [2, 0],
          [1, 1],
        ]),
      );
    });
    it('Tile', async () => {
      const inputs = fixed([
        [2, 3],
        [2, 1, 3, 4],
      ]);
      await expectNativeMatchesJs(() => tf.tile(inputs()[0], [2, 3]));
      await expectNativeMatchesJs(() => tf.tile(inputs()[1], [1, 1, 2, 1]));
      await expectNativeMatchesJs(() => tf.tile(inputs()[1], [2, 3, 1, 2]));
    });
    it('GatherV2 on axes 0 and 1 with 1-d and 2-d indices', async () => {
      const inputs = fixed([
        [10, 4],
        [3, 5, 2],
      ]);
      const idx = (values: number[], shape: number[]): tf.Tensor => tf.tensor(values, shape, 'int32');
      await expectNativeMatchesJs(() => tf.gather(inputs()[0], idx([0, 9, 3, 3], [4])));
      await expectNativeMatchesJs(() => tf.gather(inputs()[0], idx([1, 2, 2, 0, 3, 1], [2, 3]), 0));
      await expectNativeMatchesJs(() => tf.gather(inputs()[1], idx([4, 0, 4], [3]), 1));
      await expectNativeMatchesJs(() => tf.gather(inputs()[0], idx([], [0])));
    });
    it('UnsortedSegmentSum with repeated and missing segment ids', async () => {
      const inputs = fixed([
        [6, 4],
        [2, 3, 5],
      ]);
      await expectNativeMatchesJs(() =>
        tf.unsortedSegmentSum(inputs()[0], tf.tensor1d([0, 2, 2, 5, 1, 0], 'int32'), 7),
      );
      // (2-d segment ids are not compared: the JS kernel itself fails on them.)
      await expectNativeMatchesJs(() => tf.unsortedSegmentSum(inputs()[1], tf.tensor1d([1, 1], 'int32'), 3));
    });
  });

  it('gradients through a small LLaMA-shaped decoder match the JS backend within 1e-4', async () => {
    const config = {
      dim: 16,
      hiddenDim: 24,
      layers: 2,
      heads: 4,
      kvHeads: 2,
      vocab: 32,
      seqLen: 8,
      loraRank: 2,
      seed: 3,
    };
    const gradsOn = async (backend: string): Promise<{ loss: number; grads: Float32Array[] }> => {
      await tf.setBackend(backend);
      const model = createTinyDecoder(config);
      const { tokens, targets } = tinyDecoderBatch(config, 2);
      const { value, grads } = tf.variableGrads(
        () => tinyDecoderLoss(model, tokens, targets),
        model.allVariables(),
      );
      const result = {
        loss: value.dataSync()[0],
        grads: model.allVariables().map((v) => Float32Array.from(grads[v.name].dataSync() as Float32Array)),
      };
      value.dispose();
      Object.values(grads).forEach((g) => g.dispose());
      tokens.dispose();
      targets.dispose();
      model.dispose();
      return result;
    };
    const expected = await gradsOn('cpu-js');
    const actual = await gradsOn('cpu');
    expect(Math.abs(actual.loss - expected.loss) / Math.abs(expected.loss)).toBeLessThanOrEqual(1e-5);
    expect(actual.grads.length).toBe(expected.grads.length);
    actual.grads.forEach((g, i) => expect(maxRelativeError(g, expected.grads[i])).toBeLessThanOrEqual(1e-4));
  });

  it('leaks no tensors or backend buffers', async () => {
    await tf.setBackend('cpu');
    const config = {
      dim: 8,
      hiddenDim: 12,
      layers: 1,
      heads: 2,
      kvHeads: 1,
      vocab: 16,
      seqLen: 4,
      loraRank: 2,
      seed: 5,
    };
    const model = createTinyDecoder(config);
    const { tokens, targets } = tinyDecoderBatch(config, 2);
    const run = (): void => {
      const { value, grads } = tf.variableGrads(
        () => tinyDecoderLoss(model, tokens, targets),
        model.allVariables(),
      );
      value.dispose();
      Object.values(grads).forEach((g) => g.dispose());
      tf.tidy(() => {
        const x = t([3, 4, 5]);
        tf.fused.matMul({ a: t([2, 3]), b: t([3, 4]), bias: t([4]), activation: 'relu' });
        tf.split(x, [1, 4], 2);
        tf.mean(x, [0, 2]);
        tf.max(x, 1);
      });
    };
    run(); // warm-up allocates lazily-created constants
    const backend = tf.backend() as unknown as { numDataIds(): number };
    const tensorsBefore = tf.memory().numTensors;
    const buffersBefore = backend.numDataIds();
    run();
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    expect(backend.numDataIds()).toBe(buffersBefore);
    tokens.dispose();
    targets.dispose();
    model.dispose();
  });
});
