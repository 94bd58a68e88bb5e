import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { registerNativeKernels } from './index';
import { bufferPoolStats } from './buffer-pool';

// The native kernels' result arrays are recycled on the cpu backend unless something outside
// the native kernels has seen them (buffer-pool.ts).
const status = registerNativeKernels();
const describeNative = status.loaded || process.env.CI === 'true' ? describe : describe.skip;

function backend(): MathBackendCPU {
  return tf.backend() as MathBackendCPU;
}

describeNative('buffer pool of the native kernels', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  it('reuses the arrays of disposed results that nobody read', () => {
    const a = tf.fill([333, 7], 2);
    const b = tf.fill([333, 7], 3);
    const before = bufferPoolStats(backend());
    // Nothing returned from the tidies: what a tidy returns survives it.
    for (let i = 0; i < 5; i++)
      tf.tidy(() => {
        tf.mul(tf.add(a, b), a); // results die unread
      });
    const after = bufferPoolStats(backend());
    expect(after.recycled - before.recycled).toBeGreaterThanOrEqual(8);
    expect(after.reused - before.reused).toBeGreaterThanOrEqual(8);
    // Recycled arrays hold stale values until overwritten: results are still right.
    const r = tf.tidy(() => tf.mul(tf.add(a, b), a));
    expect([...r.dataSync()].every((x) => x === 10)).toBe(true);
    tf.dispose([a, b, r]);
  });

  it('still recycles results that were only reshaped or cloned (shared by reference count)', () => {
    const a = tf.fill([256, 9], 1);
    tf.tidy(() => {
      const r = tf.reshape(tf.clone(tf.add(a, a)), [9, 256]);
      tf.mul(r, r);
    });
    const before = bufferPoolStats(backend());
    tf.tidy(() => {
      const r = tf.reshape(tf.clone(tf.add(a, a)), [9, 256]);
      tf.mul(r, r);
    });
    const after = bufferPoolStats(backend());
    expect(after.allocated - before.allocated).toBe(0);
    expect(after.reused - before.reused).toBe(2);
    a.dispose();
  });

  it('never recycles an array that was read (dataSync keeps pointing at it)', () => {
    const a = tf.fill([511, 3], 1.5);
    const read = tf.tidy(() => tf.add(a, a).dataSync()); // the tensor is gone, its array is not
    expect(read[0]).toBe(3);
    for (let i = 0; i < 5; i++)
      tf.tidy(() => {
        tf.mul(tf.mul(a, 7), 7); // same size, other values
      });
    expect([...read].every((x) => x === 3)).toBe(true);
    a.dispose();
  });

  it('never recycles an array a JS kernel may have kept a view of', () => {
    const a = tf.reshape(tf.range(0, 4096, 1, 'float32'), [64, 64]);
    // StridedSlice runs the JS kernel, which returns a view into its input for simple slices.
    const sourceOfView = tf.add(a, 1);
    const view = tf.stridedSlice(sourceOfView, [1, 0], [2, 64], [1, 1]);
    sourceOfView.dispose();
    for (let i = 0; i < 5; i++)
      tf.tidy(() => {
        tf.mul(tf.add(a, 2), 3);
      });
    expect(Array.from(view.dataSync())).toEqual(Array.from({ length: 64 }, (_, i) => 64 + i + 1));
    tf.dispose([a, view]);
  });

  it('keeps shared data alive while any tensor refers to it (reshape, clone)', () => {
    const a = tf.fill([100, 10], 4);
    const result = tf.add(a, a);
    const alias = tf.reshape(result, [1000]);
    const copy = result.clone();
    result.dispose();
    alias.dispose();
    for (let i = 0; i < 5; i++)
      tf.tidy(() => {
        tf.mul(tf.add(a, a), 5);
      });
    expect([...copy.dataSync()].every((x) => x === 8)).toBe(true);
    tf.dispose([a, copy]);
  });
});
