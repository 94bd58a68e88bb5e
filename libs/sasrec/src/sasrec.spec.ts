import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { useNativeKernelsLikeProduction } from '@cprec/lm/testing/native-kernels';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { evaluateOnSplits, leaveOneOutSplits } from './evaluation';
import { AttentionWeights, causalPaddingBias, multiHeadAttention, windowBatch } from './layers';
import { Popularity } from './popularity';
import { SasRec } from './sasrec';
import { transitionPatternSequences } from './synthetic';
import { CandidateSplit, SasRecConfig } from './types';

useNativeKernelsLikeProduction();

// The cpu backend is slow and the machine is shared: keep configs tiny, allow generous time.
jest.setTimeout(600_000);

// 60 items rather than 30: each user sees ~19 distinct items, and the SASRec protocol draws the
// 19 negatives from items the user never saw, which needs at least 19 unseen items. (Training
// negatives are unseen items too, so the model is never taught to rank seen items low; candidates
// drawn from the history would measure that blind spot rather than sequence learning.)
const NUM_ITEMS = 60;
const tiny: Partial<SasRecConfig> & { numItems: number } = {
  numItems: NUM_ITEMS,
  maxLen: 10,
  hiddenDim: 16,
  numBlocks: 1,
  numHeads: 1,
  dropout: 0,
  learningRate: 1e-2,
  batchSize: 50,
  seed: 3,
};

const sequences = transitionPatternSequences({
  numUsers: 200,
  length: 20,
  numItems: NUM_ITEMS,
  noise: 0.1,
  seed: 1,
});
const trainSequences = sequences.map((s) => s.slice(0, -1));
// 20 candidates each: the held-out last item + 19 items the user never interacted with.
const splits: CandidateSplit[] = leaveOneOutSplits(sequences, NUM_ITEMS, 19, 2);

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('SasRec on a synthetic i → i+1 pattern', () => {
  let model: SasRec;

  beforeAll(async () => {
    model = new SasRec(tiny);
    await model.fit(trainSequences, { epochs: 8 });
  });

  afterAll(() => model.dispose());

  it('reaches HR@1 far above popularity and random (1/20) on held-out last items', async () => {
    expect(splits).toHaveLength(200);
    expect(splits.every((s) => s.candidates.length === 20)).toBe(true);
    const popularity = new Popularity({ numItems: NUM_ITEMS });
    await popularity.fit(trainSequences);
    const sasrecHr1 = evaluateOnSplits(model, splits).hitRate[1];
    const popularityHr1 = evaluateOnSplits(popularity, splits).hitRate[1];
    expect(popularityHr1).toBeLessThan(0.2);
    expect(sasrecHr1).toBeGreaterThan(0.6);
    expect(sasrecHr1).toBeGreaterThan(popularityHr1 + 0.4);
  });

  it('ranks the successor of the last item first in topN and honours exclusions', () => {
    const history = [4, 5, 6];
    const top = model.topN(history, 3, history);
    expect(top.items[0]).toBe(7);
    expect(top.scores[0]).toBeGreaterThanOrEqual(top.scores[1]);
    const excluded = model.topN(history, 3, [...history, 7]);
    expect(excluded.items).not.toContain(7);
    expect(excluded.items.some((item) => history.includes(item))).toBe(false);
    expect(excluded.items).toHaveLength(3);
  });

  it('scores candidates consistently one by one and in a batch', () => {
    const batch = model.scoreCandidatesBatch(
      splits.slice(0, 3).map((s) => s.history),
      splits.slice(0, 3).map((s) => s.candidates),
    );
    splits.slice(0, 3).forEach((split, i) => {
      const single = model.scoreCandidates(split.history, split.candidates);
      single.forEach((v, j) => expect(v).toBeCloseTo(batch[i][j], 5));
    });
  });

  it('round-trips weights through save/load with identical scores', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sasrec-'));
    try {
      await model.save(join(dir, 'model'));
      const loaded = await SasRec.load(join(dir, 'model'));
      try {
        expect(loaded.config).toEqual(model.config);
        for (const split of splits.slice(0, 5)) {
          expect(Array.from(loaded.scoreCandidates(split.history, split.candidates))).toEqual(
            Array.from(model.scoreCandidates(split.history, split.candidates)),
          );
        }
        const table = loaded.itemEmbeddings();
        expect(table.shape).toEqual([NUM_ITEMS + 1, 16]);
        table.dispose();
      } finally {
        loaded.dispose();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses weights of a different architecture', () => {
    const other = new SasRec({ ...tiny, numHeads: 2 });
    try {
      expect(() => other.loadEncodedWeights(model.encodeWeights())).toThrow(/architecture/);
    } finally {
      other.dispose();
    }
  });
});

describe('SasRec masking', () => {
  it('gives the same last output with maxLen 10 as with maxLen 3 for a 3-item history (padding is invisible)', () => {
    const long = new SasRec({ ...tiny, maxLen: 10, numBlocks: 2, numHeads: 2 });
    const short = new SasRec({ ...tiny, maxLen: 3, numBlocks: 2, numHeads: 2 });
    try {
      // Same weights; the short model's positions 0..2 are the long model's 7..9 (the last item
      // always sits at position maxLen − 1).
      short.setWeights(
        long
          .weights()
          .map((w) =>
            w.name === 'position_embedding'
              ? { ...w, shape: [3, w.shape[1]], values: w.values.slice(7 * w.shape[1]) }
              : w,
          ),
      );
      const history = [12, 5, 9];
      const candidates = [1, 2, 3, 13, 60];
      const longScores = long.scoreCandidates(history, candidates);
      const shortScores = short.scoreCandidates(history, candidates);
      longScores.forEach((v, i) => expect(v).toBeCloseTo(shortScores[i], 4));
      // And the history does matter (the comparison above is not vacuous).
      const otherScores = long.scoreCandidates([12, 5, 10], candidates);
      expect(Array.from(otherScores)).not.toEqual(Array.from(longScores));
    } finally {
      long.dispose();
      short.dispose();
    }
  });

  it('attention output at a query ignores keys that are padding or in the future', () => {
    tf.tidy(() => {
      const d = 4;
      const w = (seed: number) => tf.randomNormal([d, d], 0, 1, 'float32', seed) as tf.Tensor2D;
      const b = (seed: number) => tf.randomNormal([d], 0, 1, 'float32', seed) as tf.Tensor1D;
      const weights: AttentionWeights = {
        wq: w(1),
        bq: b(2),
        wk: w(3),
        bk: b(4),
        wv: w(5),
        bv: b(6),
        wo: w(7),
        bo: b(8),
      };
      const keys = tf.randomNormal([1, 5, d], 0, 1, 'float32', 9);
      // Change the padding keys (positions 0, 1) and compare the output at query 3; change the
      // future key (position 4) and compare again.
      const changed = tf.concat(
        [tf.randomNormal([1, 2, d], 0, 1, 'float32', 10), tf.slice(keys, [0, 2, 0], [1, 3, d])],
        1,
      );
      const future = tf.concat(
        [tf.slice(keys, [0, 0, 0], [1, 4, d]), tf.randomNormal([1, 1, d], 0, 1, 'float32', 12)],
        1,
      );
      const bias = causalPaddingBias(windowBatch(Int32Array.from([0, 0, 7, 8, 9]), 1, 5));
      const at3 = (k: tf.Tensor) =>
        tf.slice(multiHeadAttention(k, k, bias, weights, 2, 0, false, 0), [0, 3, 0], [1, 1, d]).dataSync();
      const base = at3(keys);
      const withPadding = at3(changed);
      const withFuture = at3(future);
      base.forEach((v, i) => {
        expect(withPadding[i]).toBeCloseTo(v, 5);
        expect(withFuture[i]).toBeCloseTo(v, 5);
      });
      // Query 4 does see key 4.
      const at4 = (k: tf.Tensor) =>
        tf.slice(multiHeadAttention(k, k, bias, weights, 2, 0, false, 0), [0, 4, 0], [1, 1, d]).dataSync();
      expect(Array.from(at4(future))).not.toEqual(Array.from(at4(keys)));
    });
  });
});

describe('SasRec resources', () => {
  it('leaks no tensors around fit, scoreCandidates and topN', async () => {
    const model = new SasRec({ ...tiny, dropout: 0.2, l2Emb: 1e-4 });
    try {
      const before = tf.memory().numTensors;
      await model.fit(trainSequences.slice(0, 40), { epochs: 1 });
      expect(tf.memory().numTensors).toBe(before);
      model.scoreCandidates([1, 2, 3], [4, 5, 6]);
      model.scoreCandidatesBatch([[1], [2, 3]], [[4, 5], [6]]);
      expect(tf.memory().numTensors).toBe(before);
      model.topN([1, 2, 3], 5, [1, 2, 3]);
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      model.dispose();
    }
  });

  it('is reproducible from its seed', async () => {
    const scores = async () => {
      const model = new SasRec({ ...tiny, dropout: 0.2 });
      try {
        await model.fit(trainSequences.slice(0, 40), { epochs: 1 });
        return Array.from(model.scoreCandidates([1, 2, 3], [4, 5, 6]));
      } finally {
        model.dispose();
      }
    };
    expect(await scores()).toEqual(await scores());
  });

  it('stops at the time budget without touching the weights when the budget is already spent', async () => {
    const model = new SasRec(tiny);
    try {
      const before = model.weights();
      const report = await model.fit(trainSequences, { epochs: 3, timeBudgetMs: 0 });
      expect(report.epochs).toHaveLength(0);
      expect(report.sequences).toBe(0);
      expect(model.weights().map((w) => Array.from(w.values))).toEqual(
        before.map((w) => Array.from(w.values)),
      );
    } finally {
      model.dispose();
    }
  });

  it('rejects item indices outside 1..numItems with a clear message', async () => {
    const model = new SasRec(tiny);
    try {
      await expect(model.fit([[1, 2, NUM_ITEMS + 1]])).rejects.toThrow(/not in 1\.\.60/);
      expect(() => model.scoreCandidates([0, 1], [2])).toThrow(/padding/);
    } finally {
      model.dispose();
    }
  });

  it('validates its config', () => {
    expect(() => new SasRec({ numItems: 10, hiddenDim: 10, numHeads: 3 })).toThrow(/divide/);
    expect(() => new SasRec({ numItems: 0 })).toThrow(/numItems/);
  });
});
