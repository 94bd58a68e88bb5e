import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { registerTfjsGradients } from '@cprec/lm/kernels/register-gradients';
import { embeddingLookup, EmbeddingGradientMethod } from './embedding';

jest.setTimeout(300_000);

beforeAll(async () => {
  await tf.setBackend('cpu');
  registerTfjsGradients();
});

/** Gradient of sum(lookup(table, idx) * weights) w.r.t. the table. */
function tableGradient(
  lookup: (t: tf.Tensor2D, i: tf.Tensor) => tf.Tensor,
  table: tf.Tensor2D,
  indices: tf.Tensor,
  weights: tf.Tensor,
): Float32Array {
  return tf.tidy(() => {
    const grad = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(lookup(t as tf.Tensor2D, indices), weights)))(table);
    return grad.dataSync() as Float32Array;
  });
}

describe('embeddingLookup', () => {
  // Duplicates (3 occurs three times, 0 twice) exercise the accumulation of repeated rows.
  const indexValues = [
    [3, 1, 3],
    [0, 3, 0],
  ];

  it('returns the same rows as tf.gather, shaped [...indices, width]', () => {
    tf.tidy(() => {
      const table = tf.randomNormal([5, 4], 0, 1, 'float32', 7) as tf.Tensor2D;
      const indices = tf.tensor2d(indexValues, undefined, 'int32');
      const mine = embeddingLookup(table, indices);
      expect(mine.shape).toEqual([2, 3, 4]);
      expect(Array.from(mine.dataSync())).toEqual(Array.from(tf.gather(table, indices).dataSync()));
    });
  });

  it.each<EmbeddingGradientMethod>(['one-hot', 'scatter', 'auto'])(
    'its %s gradient equals the gradient tfjs computes for tf.gather',
    (method) => {
      const table = tf.randomNormal([5, 4], 0, 1, 'float32', 7) as tf.Tensor2D;
      const indices = tf.tensor2d(indexValues, undefined, 'int32');
      const weights = tf.randomNormal([2, 3, 4], 0, 1, 'float32', 11);
      const expected = tableGradient((t, i) => tf.gather(t, i), table, indices, weights);
      const actual = tableGradient((t, i) => embeddingLookup(t, i, method), table, indices, weights);
      expect(actual.length).toBe(20);
      actual.forEach((value, i) => expect(value).toBeCloseTo(expected[i], 5));
      // Row 2 and 4 are never looked up: zero gradient; row 3 is looked up three times: non-zero.
      expect(Array.from(actual.slice(8, 12))).toEqual([0, 0, 0, 0]);
      expect(actual.slice(12, 16).some((v) => v !== 0)).toBe(true);
      tf.dispose([table, indices, weights]);
    },
  );

  it('rejects float indices', () => {
    const table = tf.zeros([3, 2]) as tf.Tensor2D;
    const indices = tf.tensor1d([1, 2], 'float32');
    expect(() => embeddingLookup(table, indices)).toThrow(/int32/);
    tf.dispose([table, indices]);
  });

  it('trains on the wasm backend, which has no gradient for tf.gather', async () => {
    expect(await tf.setBackend('wasm')).toBe(true);
    try {
      const table = tf.tensor2d([
        [1, 2],
        [3, 4],
        [5, 6],
      ]);
      const indices = tf.tensor1d([2, 0, 2], 'int32');
      expect(() => tf.grad((t: tf.Tensor) => tf.sum(tf.gather(t, indices)))(table)).toThrow(
        /UnsortedSegmentSum/,
      );
      for (const method of ['scatter', 'one-hot'] as const) {
        const grad = tf.grad((t: tf.Tensor) => tf.sum(embeddingLookup(t as tf.Tensor2D, indices, method)))(
          table,
        );
        expect(Array.from(grad.dataSync())).toEqual([1, 1, 0, 0, 2, 2]);
        grad.dispose();
      }
      tf.dispose([table, indices]);
    } finally {
      await tf.setBackend('cpu');
    }
  });
});
