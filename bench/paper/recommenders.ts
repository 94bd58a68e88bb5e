import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  decodeWeights,
  encodeWeights,
  fitWithEarlyStopping,
  readWeightsDir,
  writeWeightsDir,
  type EarlyStoppingState,
  type NamedWeight,
  Gru4Rec,
  ItemIndex,
  Popularity,
  rankSplits,
  SasRec,
  TitleSimilarity,
  type CandidateSplit,
  type EarlyStoppingEpoch,
} from '@cprec/sasrec';
import { ItemEmbeddingTable } from '@cprec/training';
import type { EvaluationCase } from '@cprec/training';
import type { PaperConfig } from './config';
import { candidateKey, type TargetData } from './data';
import { atomicWriteJson, readJson } from './io';
import type { StageContext } from './runner';

export type RecommenderMethod = 'popularity' | 'title-similarity' | 'gru4rec' | 'sasrec';
export const RECOMMENDERS: readonly RecommenderMethod[] = [
  'popularity',
  'title-similarity',
  'gru4rec',
  'sasrec',
];
/** Recommenders that learn nothing random: one run stands for every seed. */
export const DETERMINISTIC_RECOMMENDERS: readonly RecommenderMethod[] = ['popularity', 'title-similarity'];

/**
 * The title of every dense index, from the items the target's cases show (histories and
 * candidates of the fine-tuning, validation and test cases: the catalogue's metadata, not which
 * item was the answer). Items no case shows have no title.
 */
export function titlesByIndex(index: ItemIndex<string>, target: TargetData): (string | undefined)[] {
  const titles: (string | undefined)[] = new Array<string | undefined>(index.size + 1).fill(undefined);
  for (const c of [...target.sft, ...target.validation, ...target.test])
    for (const item of [...c.history, ...c.candidates]) {
      const i = index.has(item.itemId) ? index.encode([item.itemId])[0]! : 0;
      if (i > 0) titles[i] = item.title;
    }
  return titles;
}

/** `state.json` of a fit checkpoint: everything but the tensors (in the three weight folders). */
interface FitCheckpointMeta {
  epochsDone: number;
  rng: number[];
  best: { score: number; epoch: number };
  epochs: EarlyStoppingEpoch[];
  elapsedMs: number;
}

const CHECKPOINT_PARTS = ['weights', 'best', 'optimizer'] as const;

/**
 * Writes a fit's state after an epoch: into `<dir>.next`, then swapped in, so a kill at any
 * moment leaves a whole checkpoint (the old one or the new one; `loadFitCheckpoint` takes the
 * `.next` one when the swap did not finish). A Games SASRec fit is 30–60 epochs of 0.5–4 minutes:
 * without this, a stop redid the whole stage (the third sitting lost one at epoch 33).
 */
async function saveFitCheckpoint(dir: string, state: EarlyStoppingState): Promise<void> {
  const next = `${dir}.next`;
  rmSync(next, { recursive: true, force: true });
  const parts: Record<(typeof CHECKPOINT_PARTS)[number], readonly NamedWeight[]> = {
    weights: state.weights,
    best: state.best.weights,
    optimizer: state.training.optimizer,
  };
  for (const part of CHECKPOINT_PARTS)
    await writeWeightsDir(join(next, part), encodeWeights(part, {}, parts[part]));
  const meta: FitCheckpointMeta = {
    epochsDone: state.training.epochsDone,
    rng: state.training.rng,
    best: { score: state.best.score, epoch: state.best.epoch },
    epochs: state.epochs,
    elapsedMs: state.elapsedMs,
  };
  // Last: a `.next` folder with state.json is complete.
  atomicWriteJson(join(next, 'state.json'), meta);
  rmSync(dir, { recursive: true, force: true });
  renameSync(next, dir);
}

async function loadFitCheckpoint(dir: string): Promise<EarlyStoppingState | null> {
  const from = existsSync(join(dir, 'state.json'))
    ? dir
    : existsSync(join(`${dir}.next`, 'state.json'))
      ? `${dir}.next`
      : null;
  if (from === null) return null;
  const meta = readJson<FitCheckpointMeta>(join(from, 'state.json'));
  const part = async (name: (typeof CHECKPOINT_PARTS)[number]) =>
    decodeWeights(await readWeightsDir(join(from, name)));
  return {
    training: { epochsDone: meta.epochsDone, rng: meta.rng, optimizer: await part('optimizer') },
    weights: await part('weights'),
    best: { ...meta.best, weights: await part('best') },
    epochs: meta.epochs,
    elapsedMs: meta.elapsedMs,
  };
}

/** One user's outcome in a row: the rank of the target among the 20 candidates, 1 = hit. */
export interface UserOutcome {
  u: string;
  /** Generation: the answer named the target (LM rows); for recommenders: rank 1. */
  hit: 0 | 1;
  /** The answer matched some candidate (recommenders rank the candidates: always 1). */
  valid: 0 | 1;
  /** Rank by likelihood (LM) or by the recommender's scores, ties against the target. */
  rank: number;
  /** LM rows: rank by per-token (length-normalised) likelihood. */
  rankPerToken?: number;
  /** LM rows: the greedy answer (first 120 characters). */
  answer?: string;
  /** `candidateKey` of the candidate ids this row ranked for the user, in order. */
  cands: string;
}

export interface RecommenderOutput {
  method: RecommenderMethod;
  seed: number;
  users: UserOutcome[];
  testFingerprint: string;
  trainSequences: number;
  epochs: EarlyStoppingEpoch[];
  bestEpoch: number;
  stoppedBy: string;
  /** SASRec: where its item table for the hybrid prompts is saved. */
  embeddingsFile: string | null;
  fitSeconds: number;
}

export function casesToSplits(index: ItemIndex<string>, cases: readonly EvaluationCase[]): CandidateSplit[] {
  return cases.map((c) => ({
    // The same last-10 history the prompts show (the protocol's history for every method).
    history: index.encode(c.history.map((h) => h.itemId)),
    candidates: index.encode(c.candidates.map((x) => x.itemId)),
    target: index.encode([c.target.itemId])[0]!,
  }));
}

/**
 * Popularity, GRU4Rec or SASRec trained on ALL of the target's training sequences (every user's
 * items but the last two), with early stopping on the validation cases (NDCG@10), and ranked on the
 * frozen test cases — the same 20 candidates the language models see.
 */
export async function runRecommender(
  config: PaperConfig,
  target: TargetData,
  method: RecommenderMethod,
  seed: number,
  outDir: string,
  ctx: StageContext,
  log: (m: string) => void,
): Promise<RecommenderOutput> {
  const index = ItemIndex.fromIds(target.items);
  const train = target.trainSequences.map((s) => index.encode(s));
  const validation = casesToSplits(index, target.validation);
  const test = casesToSplits(index, target.test);
  const started = Date.now();
  let epochs: EarlyStoppingEpoch[] = [];
  let bestEpoch = 0;
  let stoppedBy = 'n/a';
  let embeddingsFile: string | null = null;
  let ranks: number[];
  if (method === 'popularity') {
    const model = new Popularity({ numItems: index.size });
    await model.fit(train);
    ranks = rankSplits(model, test);
    model.dispose();
  } else if (method === 'title-similarity') {
    const model = new TitleSimilarity({ numItems: index.size, titles: titlesByIndex(index, target) });
    ranks = rankSplits(model, test);
    model.dispose();
  } else {
    const { maxEpochs, patience, timeBudgetMinutes } = config.recommenders;
    const checkpointDir = join(outDir, `${method}-seed${seed}.progress`);
    mkdirSync(outDir, { recursive: true });
    const resumeFrom = await loadFitCheckpoint(checkpointDir);
    if (resumeFrom)
      log(
        `  ${target.key} ${method} seed ${seed}: resuming after epoch ${resumeFrom.training.epochsDone - 1}`,
      );
    const model =
      method === 'sasrec'
        ? new SasRec({ ...config.recommenders.sasrec, numItems: index.size, seed })
        : new Gru4Rec({ ...config.recommenders.gru4rec, numItems: index.size, seed });
    try {
      const fit = await fitWithEarlyStopping(model, train, {
        maxEpochs,
        patience,
        validation,
        timeBudgetMs: timeBudgetMinutes * 60_000,
        ...(resumeFrom ? { resumeFrom } : {}),
        onCheckpoint: async (state) => {
          await saveFitCheckpoint(checkpointDir, state);
          // After the checkpoint: a stop here loses no finished epoch.
          ctx.checkStop();
        },
        onEpoch: (e) => {
          ctx.progress(
            Math.min(0.99, (e.epoch + 1) / maxEpochs),
            `epoch ${e.epoch} NDCG@10 ${e.score.toFixed(4)}`,
          );
          log(
            `  ${target.key} ${method} seed ${seed}: epoch ${e.epoch} loss ${e.loss.toFixed(4)} validation NDCG@10 ${e.score.toFixed(4)} (best ${e.bestScore.toFixed(4)} @ ${e.bestEpoch}) ${(e.elapsedMs / 1000).toFixed(0)} s`,
          );
        },
      });
      epochs = fit.epochs;
      bestEpoch = fit.bestEpoch;
      stoppedBy = fit.stoppedBy;
      ranks = rankSplits(model, test);
      if (method === 'sasrec') {
        const table = model.itemEmbeddings();
        embeddingsFile = join(outDir, `sasrec-seed${seed}.safetensors`);
        ItemEmbeddingTable.fromDenseTable(table, index.toJSON()).save(embeddingsFile, {
          sasrec: `${target.folder}:seed${seed}:epoch${bestEpoch}`,
        });
        table.dispose();
      }
      rmSync(checkpointDir, { recursive: true, force: true });
    } finally {
      model.dispose();
    }
  }
  return {
    method,
    seed,
    users: target.test.map((c, i) => ({
      u: c.userId,
      hit: ranks[i] === 1 ? 1 : 0,
      valid: 1,
      rank: ranks[i]!,
      // What the model actually scored: the split's dense candidates mapped back to item ids.
      cands: candidateKey(index.decode(test[i]!.candidates)),
    })),
    testFingerprint: target.testFingerprint,
    trainSequences: train.filter((s) => s.length >= 2).length,
    epochs,
    bestEpoch,
    stoppedBy,
    embeddingsFile,
    fitSeconds: (Date.now() - started) / 1000,
  };
}
