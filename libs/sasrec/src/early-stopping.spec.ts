import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { useNativeKernelsLikeProduction } from '@cprec/lm/testing/native-kernels';
import { fitWithEarlyStopping, type EarlyStoppingState } from './early-stopping';
import { evaluateOnSplits, leaveOneOutSplits } from './evaluation';
import { Gru4Rec } from './gru4rec';
import { SasRec } from './sasrec';
import { transitionPatternSequences } from './synthetic';

useNativeKernelsLikeProduction();
jest.setTimeout(600_000);

const NUM_ITEMS = 60;
const sequences = transitionPatternSequences({
  numUsers: 200,
  length: 20,
  numItems: NUM_ITEMS,
  noise: 0.1,
  seed: 1,
});
// Validation = second-to-last item, test = last item; training sees neither.
const train = sequences.map((s) => s.slice(0, -2));
const validation = leaveOneOutSplits(
  sequences.map((s) => s.slice(0, -1)),
  NUM_ITEMS,
  19,
  3,
);
const gru = () =>
  new Gru4Rec({
    numItems: NUM_ITEMS,
    maxLen: 10,
    embeddingDim: 32,
    hiddenDim: 32,
    dropout: 0,
    learningRate: 1e-2,
    batchSize: 50,
    seed: 5,
  });

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('fitWithEarlyStopping', () => {
  it('stops after `patience` epochs without improvement and keeps the best epoch weights', async () => {
    const model = gru();
    try {
      const result = await fitWithEarlyStopping(model, train, {
        maxEpochs: 60,
        patience: 2,
        validation,
        score: (ranks) => ranks.filter((r) => r === 1).length / ranks.length,
      });
      const last = result.epochs[result.epochs.length - 1]!;
      expect(result.stoppedBy).toBe('patience');
      expect(last.epoch - result.bestEpoch).toBe(2);
      expect(result.bestScore).toBe(Math.max(...result.epochs.map((e) => e.score)));
      // The model holds the best epoch's weights: its validation HR@1 is the best score.
      expect(evaluateOnSplits(model, validation).hitRate[1]).toBeCloseTo(result.bestScore, 10);
      expect(result.bestScore).toBeGreaterThan(0.5); // learnt the transitions (chance 0.05)
    } finally {
      model.dispose();
    }
  });

  it('runs to maxEpochs while the score keeps improving, and refuses to run without validation', async () => {
    const model = gru();
    try {
      const result = await fitWithEarlyStopping(model, train, { maxEpochs: 2, patience: 5, validation });
      expect(result.stoppedBy).toBe('max-epochs');
      expect(result.epochs).toHaveLength(2);
      await expect(
        fitWithEarlyStopping(model, train, { maxEpochs: 2, patience: 1, validation: [] }),
      ).rejects.toThrow(/validation/);
    } finally {
      model.dispose();
    }
  });

  it('continues from a checkpoint to exactly what an uninterrupted fit gives (SASRec with dropout, GRU4Rec)', async () => {
    const makers = [
      gru,
      () =>
        new SasRec({
          numItems: NUM_ITEMS,
          maxLen: 10,
          hiddenDim: 16,
          numBlocks: 1,
          numHeads: 1,
          // Dropout draws from the random stream: the resumed fit must continue the same stream.
          dropout: 0.3,
          learningRate: 1e-2,
          batchSize: 50,
          seed: 9,
        }),
    ];
    for (const make of makers) {
      const options = { maxEpochs: 6, patience: 10, validation };
      const straight = make();
      const checkpoints: EarlyStoppingState[] = [];
      const whole = await fitWithEarlyStopping(straight, train, {
        ...options,
        onCheckpoint: async (state) => {
          checkpoints.push(state);
        },
      });
      // One checkpoint per epoch training went on after (not after the last).
      expect(checkpoints.map((c) => c.training.epochsDone)).toEqual([1, 2, 3, 4, 5]);

      // A new process: a fresh model (same seed), stopped after epoch 3, continued.
      const resumed = make();
      let stopAt = 3;
      const stopped = await fitWithEarlyStopping(resumed, train, {
        ...options,
        onCheckpoint: async (state) => {
          if (state.training.epochsDone === stopAt) throw new Error('killed');
        },
      }).catch((e: Error) => e);
      expect(stopped).toBeInstanceOf(Error);
      stopAt = -1;
      const fresh = make();
      const rest = await fitWithEarlyStopping(fresh, train, { ...options, resumeFrom: checkpoints[2]! });
      expect(rest.epochs.map((e) => [e.epoch, e.loss, e.score])).toEqual(
        whole.epochs.map((e) => [e.epoch, e.loss, e.score]),
      );
      expect(rest.bestEpoch).toBe(whole.bestEpoch);
      const a = straight.weights();
      const b = fresh.weights();
      expect(b.map((w) => w.name)).toEqual(a.map((w) => w.name));
      a.forEach((w, i) => expect(Array.from(b[i]!.values)).toEqual(Array.from(w.values)));
      for (const m of [straight, resumed, fresh]) m.dispose();
    }
  });
});
