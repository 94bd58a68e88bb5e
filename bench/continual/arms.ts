import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createRng, encodeSample, llaraSample, TokenBudgetError, type SampleItems } from '@cprec/corpus';
import { detachLora, loadLoraAdapter } from '@cprec/lm';
import { matchGeneration, rankByScores } from '@cprec/metrics';
import { ItemIndex, rankSplits, SasRec } from '@cprec/sasrec';
import {
  ArraySampleSource,
  DEFAULT_CPT_CONFIG,
  DEFAULT_SFT_CONFIG,
  evaluateCases,
  fineTune,
  ItemEmbeddingTable,
  ItemProjector,
  ITEM_EMBEDDINGS_FILE,
  PROJECTOR_FILE,
  runCptRound,
  SFT_ADAPTER_DIR,
  type EvaluationCase,
  type PromptSettings,
} from '@cprec/training';
import { candidateKey } from '../paper/data';
import { appendJsonLine, readJsonLines } from '../paper/io';
import { readCurve, type LmBase } from '../paper/lm';
import { casesToSplits } from '../paper/recommenders';
import type { StageContext } from '../paper/runner';
import type { ContinualConfig } from './config';
import { sequencesUntil, type TimedSequence } from './windows';

/** One user's outcome on one evaluation case. */
export interface CaseOutcome {
  u: string;
  /** Rank of the target among the 20 candidates (likelihood for LMs, scores for SASRec); 1 = hit. */
  rank: number;
  /** Generation (LMs with eval.generation): the greedy answer named the target / some candidate. */
  hit?: 0 | 1;
  valid?: 0 | 1;
  /** `candidateKey` of the candidates as ranked (the same for every arm). */
  cands: string;
}

export interface RoundOutput {
  adapterDir: string;
  trunkDir: string;
  steps: number;
  /** Real (non-padding) tokens trained on. */
  tokens: number;
  stableSteps: number;
  annealSteps: number;
  warmupSteps: number;
  stableSamples: number;
  resumedTrunk: boolean;
  curveFile: string;
}

/**
 * One CPT round as the trainer's runner does it (libs/training `runCptRound`): resume the trunk
 * of the previous round (or warm up from the base), the stable phase at η_h over `stable`, the
 * trunk saved, a branch annealed to η_l on `mixed` — this round's CPT adapter.
 */
export async function runRound(
  lm: LmBase,
  config: ContinualConfig,
  opts: {
    roundId: string;
    dir: string;
    previousTrunkDir: string | null;
    stable: readonly SampleItems[];
    mixed: readonly SampleItems[];
  },
  ctx: StageContext,
  log: (m: string) => void,
): Promise<RoundOutput> {
  const c = config.cpt;
  mkdirSync(opts.dir, { recursive: true });
  const curveFile = join(opts.dir, 'curve.jsonl');
  const result = await runCptRound({
    roundId: opts.roundId,
    model: lm.model,
    baseModelId: lm.baseModelId,
    baseChecksum: lm.baseChecksum,
    tokenizer: lm.tokenizer,
    config: {
      ...DEFAULT_CPT_CONFIG,
      batchSize: c.batchSize,
      microBatchSize: c.microBatchSize,
      budget: config.protocol.budget,
      lora: c.lora,
      etaLow: c.etaLow,
      etaHigh: c.etaHigh,
      warmupFraction: c.warmupFraction,
      minAnnealSteps: c.annealSteps,
      maxAnnealSteps: c.annealSteps,
      checkpointEvery: c.checkpointEvery,
      seed: c.seed,
    },
    previousTrunkDir: opts.previousTrunkDir,
    roundDir: join(opts.dir, 'round'),
    domainSamples: new ArraySampleSource(opts.stable),
    mixedSamples: new ArraySampleSource(opts.mixed),
    watermark: 0,
    shouldStop: () => ctx.stopRequested(),
    onStep: (s) => {
      appendJsonLine(curveFile, { step: s.step, loss: s.loss, lr: s.lr, tokens: s.tokens, phase: s.phase });
      ctx.progress(
        s.roundStep / s.roundSteps,
        `step ${s.roundStep}/${s.roundSteps} loss ${s.loss.toFixed(3)}`,
      );
      if (s.roundStep % 10 === 0 || s.roundStep === s.roundSteps)
        log(
          `  ${opts.roundId} ${s.phase} ${s.roundStep}/${s.roundSteps} loss ${s.loss.toFixed(4)} lr ${s.lr.toExponential(2)}`,
        );
    },
  });
  // This round's steps only: a resumed trunk's global step numbers continue the previous round's.
  const curve = readCurve(curveFile);
  return {
    adapterDir: result.adapterDir,
    trunkDir: result.trunkDir,
    steps: curve.length,
    tokens: curve.reduce((n, p) => n + p.tokens, 0),
    stableSteps: result.stableSteps,
    annealSteps: result.annealSteps,
    warmupSteps: result.schedule.warmupSteps,
    stableSamples: opts.stable.length,
    resumedTrunk: opts.previousTrunkDir !== null,
    curveFile,
  };
}

export interface SasrecOutput {
  /** Outcomes on the next window's cases and on the first evaluation window's (forgetting). */
  next: CaseOutcome[];
  first: CaseOutcome[];
  embeddingsFile: string;
  trainSequences: number;
  trainInteractions: number;
  epochs: number;
}

/** SASRec trained from scratch on every user's items before the end of window b (one domain). */
export async function runSasrec(
  config: ContinualConfig,
  opts: {
    items: readonly string[];
    sequences: readonly TimedSequence[];
    endMs: number;
    next: readonly EvaluationCase[];
    first: readonly EvaluationCase[];
    dir: string;
  },
  ctx: StageContext,
): Promise<SasrecOutput> {
  const index = ItemIndex.fromIds([...opts.items]);
  const train = sequencesUntil(opts.sequences, opts.endMs).map((s) => index.encode(s));
  const { epochs, timeBudgetMinutes, ...settings } = config.sasrec;
  const model = new SasRec({ ...settings, numItems: index.size, seed: config.dataSeed });
  try {
    const report = await model.fit(train, {
      epochs,
      timeBudgetMs: timeBudgetMinutes * 60_000,
      onEpochEnd: (e) => {
        ctx.progress(Math.min(0.99, (e.epoch + 1) / epochs), `epoch ${e.epoch} loss ${e.loss.toFixed(4)}`);
        ctx.checkStop();
      },
    });
    const outcomes = (cases: readonly EvaluationCase[]): CaseOutcome[] => {
      const splits = casesToSplits(index, cases);
      const ranks = rankSplits(model, splits);
      return cases.map((c, i) => ({
        u: c.userId,
        rank: ranks[i]!,
        cands: candidateKey(index.decode(splits[i]!.candidates)),
      }));
    };
    mkdirSync(opts.dir, { recursive: true });
    const embeddingsFile = join(opts.dir, 'sasrec-items.safetensors');
    const table = model.itemEmbeddings();
    ItemEmbeddingTable.fromDenseTable(table, index.toJSON()).save(embeddingsFile, {
      sasrec: `continual:${opts.endMs}`,
    });
    table.dispose();
    return {
      next: outcomes(opts.next),
      first: outcomes(opts.first),
      embeddingsFile,
      trainSequences: train.length,
      trainInteractions: train.reduce((n, s) => n + s.length, 0),
      epochs: report.epochs.length,
    };
  } finally {
    model.dispose();
  }
}

export interface SftOutput {
  outDir: string;
  samples: number;
  /** Prompt tokens of the training samples (text style), times the epochs. */
  tokens: number;
  steps: number;
  skippedSamples: number;
}

/** Text-prompt tokens of fine-tuning samples (what one epoch reads; hybrid prompts are a little shorter). */
export function sftTokens(lm: LmBase, config: ContinualConfig, samples: readonly SampleItems[]): number {
  const rng = createRng(config.dataSeed);
  let tokens = 0;
  for (const s of samples) {
    try {
      tokens += encodeSample(llaraSample(s, 'text', rng), lm.tokenizer, config.protocol.budget, {
        placeholderId: lm.placeholderId,
      }).inputIds.length;
    } catch (err) {
      if (!(err instanceof TokenBudgetError)) throw err;
    }
  }
  return tokens * config.sft.epochs;
}

/**
 * LLaRA-style fine-tuning of one target domain as the trainer's rounds do it: LoRA from the
 * round's CPT adapter, a projector with the text → hybrid curriculum over the round's SASRec item
 * table, loss on the answer only — one learning rate (resumable from progress checkpoints).
 */
export async function runSft(
  lm: LmBase,
  config: ContinualConfig,
  opts: {
    initAdapterDir: string;
    train: readonly SampleItems[];
    embeddingsFile: string | null;
    outDir: string;
  },
  ctx: StageContext,
  log: (m: string) => void,
): Promise<SftOutput> {
  const s = config.sft;
  const embeddings = s.hybrid && opts.embeddingsFile ? ItemEmbeddingTable.load(opts.embeddingsFile) : null;
  const result = await fineTune({
    model: lm.model,
    tokenizer: lm.tokenizer,
    placeholderId: lm.placeholderId,
    train: opts.train,
    validation: [],
    embeddings,
    initAdapterDir: opts.initAdapterDir,
    baseModelId: lm.baseModelId,
    baseChecksum: lm.baseChecksum,
    outDir: opts.outDir,
    checkpointDir: `${opts.outDir}.progress`,
    checkpointEvery: s.checkpointEvery,
    ...(opts.embeddingsFile ? { sasrecRef: opts.embeddingsFile } : {}),
    config: {
      ...DEFAULT_SFT_CONFIG,
      batchSize: s.batchSize,
      microBatchSize: s.microBatchSize,
      epochs: s.epochs,
      learningRates: [s.learningRate],
      budget: config.protocol.budget,
      lora: s.lora,
      curriculum: s.hybrid,
      maxValidationExamples: 0,
      seed: config.cpt.seed,
    },
    shouldStop: () => ctx.stopRequested(),
    onStep: (r) => {
      ctx.progress((r.step + 1) / r.steps, `step ${r.step + 1}/${r.steps} loss ${r.loss.toFixed(3)}`);
      if ((r.step + 1) % 10 === 0 || r.step + 1 === r.steps)
        log(
          `  sft ${opts.outDir.split('/').slice(-3).join('/')} ${r.step + 1}/${r.steps} loss ${r.loss.toFixed(4)}`,
        );
    },
  });
  result.projector?.dispose();
  return {
    outDir: opts.outDir,
    samples: opts.train.length,
    tokens: sftTokens(lm, config, opts.train),
    steps: result.curve.length,
    skippedSamples: result.skippedSamples,
  };
}

/**
 * An SFT bundle on frozen cases: per case the exact likelihood of every candidate (the rank of the
 * target: HR@1 = rank 1, what the services' gate and drift use) and, with `eval.generation`, one
 * greedy answer matched to the candidate titles (generation HR@1, Valid Ratio). Every case's
 * outcome is appended to `logFile` as it is computed; a resumed evaluation skips logged cases.
 */
export async function evaluateBundle(
  lm: LmBase,
  config: ContinualConfig,
  bundleDir: string,
  cases: readonly EvaluationCase[],
  logFile: string,
  ctx: StageContext,
): Promise<CaseOutcome[]> {
  const { model, tokenizer } = lm;
  detachLora(model);
  loadLoraAdapter(model, join(bundleDir, SFT_ADAPTER_DIR), { expectedBaseChecksum: lm.baseChecksum });
  const projectorFile = join(bundleDir, PROJECTOR_FILE);
  const hybrid = existsSync(projectorFile)
    ? {
        projector: ItemProjector.load(projectorFile),
        embeddings: ItemEmbeddingTable.load(join(bundleDir, ITEM_EMBEDDINGS_FILE)),
      }
    : null;
  const settings: PromptSettings = {
    tokenizer,
    budget: config.protocol.budget,
    style: hybrid ? 'hybrid' : 'text',
    placeholderId: lm.placeholderId,
    hybrid,
  };
  const done = new Map(readJsonLines<CaseOutcome>(logFile).map((r) => [r.u, r]));
  try {
    const todo = cases.filter((c) => !done.has(c.userId));
    const batch = Math.max(1, config.eval.batchCases);
    for (let start = 0; start < todo.length; start += batch) {
      ctx.checkStop();
      const chunk = todo.slice(start, start + batch);
      const results = evaluateCases(model, chunk, settings, {
        likelihood: true,
        generation: config.eval.generation,
        scoreBatchSize: config.eval.scoreBatchSize,
      });
      chunk.forEach((c, k) => {
        const r = results[k]!;
        const entry: CaseOutcome = {
          u: c.userId,
          rank: rankByScores(r.scores!, r.targetIndex),
          cands: candidateKey(r.encoded.candidateItemIds),
        };
        if (config.eval.generation) {
          const match = matchGeneration(r.generation ?? '', r.encoded.candidateTitles);
          entry.hit = match.valid && match.index === r.targetIndex ? 1 : 0;
          entry.valid = match.valid ? 1 : 0;
        }
        appendJsonLine(logFile, entry);
        done.set(c.userId, entry);
      });
      ctx.progress(done.size / cases.length, `case ${done.size}/${cases.length}`);
      await new Promise((resolve) => setImmediate(resolve));
    }
  } finally {
    hybrid?.projector.dispose();
    detachLora(model);
  }
  return cases.map((c) => done.get(c.userId)!);
}
