import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { useNativeKernelsLikeProduction } from '@cprec/lm/testing/native-kernels';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { evaluateOnSplits, leaveOneOutSplits } from './evaluation';
import { Gru4Rec } from './gru4rec';
import { Popularity } from './popularity';
import { transitionPatternSequences } from './synthetic';
import { Gru4RecConfig } from './types';

useNativeKernelsLikeProduction();

jest.setTimeout(600_000);

// Same setting as sasrec.spec.ts (see there why 60 items).
const NUM_ITEMS = 60;
const tiny: Partial<Gru4RecConfig> & { numItems: number } = {
  numItems: NUM_ITEMS,
  maxLen: 10,
  embeddingDim: 32,
  hiddenDim: 32,
  dropout: 0,
  learningRate: 1e-2,
  batchSize: 50,
  seed: 5,
};
const sequences = transitionPatternSequences({
  numUsers: 200,
  length: 20,
  numItems: NUM_ITEMS,
  noise: 0.1,
  seed: 1,
});
const trainSequences = sequences.map((s) => s.slice(0, -1));
const splits = leaveOneOutSplits(sequences, NUM_ITEMS, 19, 2);

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('Gru4Rec', () => {
  it('reaches HR@1 far above popularity and random (1/20) on held-out last items (BCE)', async () => {
    const model = new Gru4Rec(tiny);
    try {
      await model.fit(trainSequences, { epochs: 10 });
      const popularity = new Popularity({ numItems: NUM_ITEMS });
      await popularity.fit(trainSequences);
      const gruHr1 = evaluateOnSplits(model, splits).hitRate[1];
      const popularityHr1 = evaluateOnSplits(popularity, splits).hitRate[1];
      expect(splits).toHaveLength(200);
      expect(popularityHr1).toBeLessThan(0.2);
      expect(gruHr1).toBeGreaterThan(0.6);
      expect(gruHr1).toBeGreaterThan(popularityHr1 + 0.4);
    } finally {
      model.dispose();
    }
  });

  it('learns with the BPR loss too (loss falls, ranking beats chance)', async () => {
    const model = new Gru4Rec({ ...tiny, loss: 'bpr' });
    try {
      const report = await model.fit(trainSequences, { epochs: 4 });
      expect(report.epochs[3].loss).toBeLessThan(report.epochs[0].loss);
      expect(evaluateOnSplits(model, splits).hitRate[1]).toBeGreaterThan(0.2);
    } finally {
      model.dispose();
    }
  });

  it('ignores left padding: a 3-item history scores the same with maxLen 10 and maxLen 3', () => {
    const long = new Gru4Rec({ ...tiny, maxLen: 10 });
    const short = new Gru4Rec({ ...tiny, maxLen: 3 });
    try {
      short.setWeights(long.weights());
      const candidates = [1, 7, 20, 60];
      const a = long.scoreCandidates([3, 9, 27], candidates);
      const b = short.scoreCandidates([3, 9, 27], candidates);
      a.forEach((v, i) => expect(v).toBeCloseTo(b[i], 5));
      // Order matters to a GRU: the comparison above is not vacuous.
      expect(Array.from(long.scoreCandidates([27, 9, 3], candidates))).not.toEqual(Array.from(a));
    } finally {
      long.dispose();
      short.dispose();
    }
  });

  it('leaks no tensors and round-trips save/load with identical scores', async () => {
    const model = new Gru4Rec({ ...tiny, dropout: 0.2, l2Emb: 1e-4 });
    const dir = mkdtempSync(join(tmpdir(), 'gru4rec-'));
    try {
      const before = tf.memory().numTensors;
      await model.fit(trainSequences.slice(0, 40), { epochs: 1 });
      model.scoreCandidates([1, 2, 3], [4, 5, 6]);
      model.topN([1, 2, 3], 5, [1, 2, 3]);
      expect(tf.memory().numTensors).toBe(before);
      await model.save(dir);
      const loaded = await Gru4Rec.load(dir);
      try {
        expect(Array.from(loaded.scoreCandidates([5, 6], [7, 8, 9]))).toEqual(
          Array.from(model.scoreCandidates([5, 6], [7, 8, 9])),
        );
      } finally {
        loaded.dispose();
      }
    } finally {
      model.dispose();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
