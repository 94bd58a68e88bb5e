import { metricsFromRanks, rankSplits } from './evaluation';
import type { NeuralSequenceModel } from './sequence-model';
import type { NamedWeight } from './params';
import type { CandidateSplit, EpochReport, TrainingState } from './types';

export interface EarlyStoppingOptions {
  /** Upper bound on epochs. */
  maxEpochs: number;
  /** Stop after this many epochs without a better validation score. */
  patience: number;
  /** Frozen validation cases (history, candidates, target) scored after every epoch. */
  validation: readonly CandidateSplit[];
  /**
   * The validation score from the cases' 1-based ranks, higher is better. Default NDCG@10: smoother
   * than HR@1 on a few thousand cases, and what SASRec's authors select on.
   */
  score?: (ranks: readonly number[]) => number;
  /** Wall-clock budget for the whole fit (the best epoch so far is kept when it runs out). */
  timeBudgetMs?: number;
  onEpoch?: (report: EarlyStoppingEpoch) => void;
  /**
   * After every epoch training continues past: the whole state to continue from (written by the
   * caller wherever it keeps checkpoints); awaited before the next epoch.
   */
  onCheckpoint?: (state: EarlyStoppingState) => Promise<void>;
  /** Continues the fit a checkpoint was taken of: same epochs, best so far, and budget spent. */
  resumeFrom?: EarlyStoppingState;
}

/** A fit with early stopping, stopped between two epochs. */
export interface EarlyStoppingState {
  training: TrainingState;
  /** The model's weights after the last finished epoch. */
  weights: NamedWeight[];
  best: { score: number; epoch: number; weights: NamedWeight[] };
  epochs: EarlyStoppingEpoch[];
  /** Training time spent before the checkpoint (counts against `timeBudgetMs`). */
  elapsedMs: number;
}

export interface EarlyStoppingEpoch extends EpochReport {
  /** Validation score after this epoch. */
  score: number;
  bestScore: number;
  bestEpoch: number;
}

export interface EarlyStoppingResult {
  epochs: EarlyStoppingEpoch[];
  /** 0-based epoch whose weights the model holds at the end. */
  bestEpoch: number;
  bestScore: number;
  /** Why training ended. */
  stoppedBy: 'patience' | 'max-epochs' | 'time-budget';
  elapsedMs: number;
}

const ndcgAt10 = (ranks: readonly number[]): number => metricsFromRanks(ranks, [10]).ndcg[10] ?? 0;

/**
 * Trains until the validation score has not improved for `patience` epochs (or `maxEpochs`), in one
 * `fit` call so Adam keeps its moments, and leaves the model with the weights of its best epoch —
 * the standard protocol for SASRec/GRU4Rec baselines (a fixed epoch count either stops short, as
 * the quick experiment's 8 epochs on 300 users did, or overfits).
 */
export async function fitWithEarlyStopping(
  model: NeuralSequenceModel,
  trainSequences: readonly (readonly number[])[],
  options: EarlyStoppingOptions,
): Promise<EarlyStoppingResult> {
  if (!Number.isInteger(options.patience) || options.patience < 1)
    throw new RangeError(`patience must be a positive integer, got ${options.patience}`);
  if (options.validation.length === 0) throw new Error('early stopping needs validation cases');
  const score = options.score ?? ndcgAt10;
  const resume = options.resumeFrom;
  if (resume) model.setWeights(resume.weights);
  const epochs: EarlyStoppingEpoch[] = resume ? [...resume.epochs] : [];
  let best = resume ? { ...resume.best } : { score: -Infinity, epoch: -1, weights: model.weights() };
  let stoppedBy: EarlyStoppingResult['stoppedBy'] = 'max-epochs';
  const spentBefore = resume?.elapsedMs ?? 0;
  const started = Date.now();
  const onCheckpoint = options.onCheckpoint;
  await model.fit(trainSequences, {
    epochs: options.maxEpochs,
    ...(options.timeBudgetMs !== undefined
      ? { timeBudgetMs: Math.max(0, options.timeBudgetMs - spentBefore) }
      : {}),
    ...(resume ? { resumeFrom: resume.training } : {}),
    ...(onCheckpoint
      ? {
          afterEpoch: async (_: EpochReport, capture: () => Promise<TrainingState>) =>
            onCheckpoint({
              training: await capture(),
              weights: model.weights(),
              best,
              epochs: [...epochs],
              elapsedMs: spentBefore + Date.now() - started,
            }),
        }
      : {}),
    onEpochEnd: (epoch) => {
      const value = score(rankSplits(model, options.validation));
      if (value > best.score) best = { score: value, epoch: epoch.epoch, weights: model.weights() };
      const entry = { ...epoch, score: value, bestScore: best.score, bestEpoch: best.epoch };
      epochs.push(entry);
      options.onEpoch?.(entry);
      if (epoch.epoch - best.epoch >= options.patience) {
        stoppedBy = 'patience';
        return 'stop';
      }
      return undefined;
    },
  });
  if (stoppedBy === 'max-epochs' && epochs.length < options.maxEpochs) stoppedBy = 'time-budget';
  if (best.epoch >= 0) model.setWeights(best.weights);
  return {
    epochs,
    bestEpoch: best.epoch,
    bestScore: best.score,
    stoppedBy,
    elapsedMs: spentBefore + Date.now() - started,
  };
}
