import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { registerNativeKernels } from './kernels/index';
import { loadNativeAddon } from './kernels/native-addon';
import { logProbabilities, logProbability } from './scoring';

const status = registerNativeKernels();
const describeNative = status.loaded || process.env.CI === 'true' ? describe : describe.skip;

describe('logProbability', () => {
  it('is the log-softmax value tfjs computes', () => {
    const row = Float32Array.from({ length: 37 }, (_, i) => Math.sin(i * 1.7) * 6);
    const reference = tf.tidy(() => tf.logSoftmax(tf.tensor1d(row)).dataSync());
    for (const token of [0, 5, 36])
      expect(logProbability(row, 0, 37, token)).toBeCloseTo(reference[token], 5);
  });
});

describeNative('logProbabilities (native)', () => {
  it('equals the JS loop at every position, for large and tiny logits', () => {
    const V = 515; // not a multiple of the kernel's 16 lanes
    const logits = Float32Array.from(
      { length: 7 * V },
      (_, i) => Math.cos(i * 0.37) * (i % 3 === 0 ? 40 : 3),
    );
    logits[2 * V + 9] = 88; // exp would overflow without the max shift
    const offsets = Int32Array.from([0, V, 2 * V, 2 * V, 6 * V]);
    const tokens = Int32Array.from([0, 514, 9, 10, 300]);
    const native = logProbabilities(logits, V, offsets, tokens);
    offsets.forEach((o, i) => expect(native[i]).toBeCloseTo(logProbability(logits, o, V, tokens[i]), 4));
    expect(native[2]).toBeGreaterThan(-1e-3); // the dominant logit's probability is ~1
  });

  it('refuses positions outside the logits instead of reading past them', () => {
    const addon = loadNativeAddon().addon!;
    const out = new Float32Array(1);
    const logits = new Float32Array(8);
    expect(() => addon.logProbabilities!(logits, 8, Int32Array.from([1]), Int32Array.from([0]), out)).toThrow(
      /out of range/,
    );
    expect(() => addon.logProbabilities!(logits, 8, Int32Array.from([0]), Int32Array.from([8]), out)).toThrow(
      /out of range/,
    );
  });
});
