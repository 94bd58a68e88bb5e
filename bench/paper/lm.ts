import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  detachLora,
  LlamaModel,
  loadBaseModel,
  loadLoraAdapter,
  selectBackend,
  type LlamaWeights,
} from '@cprec/lm';
import { matchGeneration } from '@cprec/metrics';
import { rankByScores } from '@cprec/metrics';
import type { Tokenizer } from '@cprec/corpus';
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
  type PromptSettings,
  type SampleSource,
} from '@cprec/training';
import type { CptVariant, PaperConfig } from './config';
import { candidateKey, type CptData, type TargetData } from './data';
import { appendJsonLine, readJsonLines } from './io';
import type { UserOutcome } from './recommenders';
import type { StageContext } from './runner';

/** The base LM, loaded once per process; adapters come and go on it. */
export interface LmBase {
  readonly model: LlamaModel;
  readonly tokenizer: Tokenizer;
  readonly baseModelId: string;
  readonly baseChecksum: string;
  /** Token id at hybrid placeholders (its embedding is replaced, so any valid id). */
  readonly placeholderId: number;
  readonly contextLength: number;
  readonly nativeKernels: boolean;
  /** The tfjs backend in use (cpu, tensorflow, wasm…). */
  readonly backend?: string;
}

/**
 * Loads the base named by path (`loadBaseModel`: GGUF, llama2.c .bin + tokenizer, HF folder) on the
 * backend `selectBackend` measures fastest for training this model (CPREC_BACKEND overrides).
 */
export async function loadLmBase(path: string): Promise<LmBase> {
  const backend = await selectBackend('auto', { model: path, workload: 'train' });
  const base = await loadBaseModel(path);
  return {
    ...fromWeights(base.weights, base.tokenizer, base.baseModelId, base.baseChecksum, backend.nativeKernels),
    backend: backend.backend,
  };
}

export function fromWeights(
  weights: LlamaWeights,
  tokenizer: Tokenizer & { placeholderId?: number },
  baseModelId: string,
  baseChecksum: string,
  nativeKernels = false,
): LmBase {
  return {
    model: new LlamaModel(weights),
    tokenizer,
    baseModelId,
    baseChecksum,
    placeholderId: typeof tokenizer.placeholderId === 'number' ? tokenizer.placeholderId : 0,
    contextLength: weights.config.maxSeqLen,
    nativeKernels,
  };
}

export interface CurvePoint {
  step: number;
  loss: number;
  lr: number;
  tokens: number;
  phase: string;
}

export interface CptOutput {
  variant: CptVariant;
  adapterDir: string;
  steps: number;
  /** Real (non-padding) tokens trained on. */
  tokens: number;
  stableSteps: number;
  annealSteps: number;
  warmupSteps: number;
  skippedSamples: number;
  curveFile: string;
}

/**
 * The four CPT variants over the same data budget (stable S and annealing A steps of batch b;
 * DS = the domain-specific samples in order, Mix = the mixed samples):
 * - cprec:      stable DS[0, S·b), annealing Mix — WSA;
 * - cosine:     the same data, warm-up + one cosine;
 * - ds-only:    stable DS[0, S·b), annealing DS[S·b, (S+A)·b) — no mixed data at all;
 * - mix-stable: stable = DS[0, (S−A)·b) and Mix shuffled together, annealing DS[(S−A)·b, S·b) —
 *   the same samples as cprec, the mixed ones moved into the stable phase.
 */
export function cptSources(
  variant: CptVariant,
  data: CptData,
  config: PaperConfig,
): {
  domain: SampleSource;
  mixed: SampleSource;
  anneal: SampleSource | undefined;
  libVariant: 'cprec' | 'ds-only' | 'ds-mix-s';
} {
  const { stableSteps: S, annealSteps: A, batchSize: b } = config.cpt;
  const ds = (from: number, to: number) => new ArraySampleSource(data.domain.slice(from, to));
  const mix = new ArraySampleSource(data.mixed);
  switch (variant) {
    case 'cprec':
    case 'cosine':
      return { domain: ds(0, S * b), mixed: mix, anneal: undefined, libVariant: 'cprec' };
    case 'ds-only':
      return {
        domain: ds(0, S * b),
        mixed: new ArraySampleSource([]),
        anneal: ds(S * b, (S + A) * b),
        libVariant: 'ds-only',
      };
    case 'mix-stable':
      return {
        domain: ds(0, (S - A) * b),
        mixed: mix,
        anneal: ds((S - A) * b, S * b),
        libVariant: 'ds-mix-s',
      };
  }
}

export async function runCpt(
  lm: LmBase,
  config: PaperConfig,
  variant: CptVariant,
  data: CptData,
  dir: string,
  ctx: StageContext,
  log: (m: string) => void,
): Promise<CptOutput> {
  const { stableSteps: S, annealSteps: A } = config.cpt;
  const sources = cptSources(variant, data, config);
  const curveFile = join(dir, 'curve.jsonl');
  mkdirSync(dir, { recursive: true });
  const result = await runCptRound({
    roundId: `paper-${variant}`,
    model: lm.model,
    baseModelId: lm.baseModelId,
    baseChecksum: lm.baseChecksum,
    tokenizer: lm.tokenizer,
    config: {
      ...DEFAULT_CPT_CONFIG,
      batchSize: config.cpt.batchSize,
      microBatchSize: config.cpt.microBatchSize,
      budget: config.protocol.budget,
      lora: config.cpt.lora,
      etaLow: config.cpt.etaLow,
      etaHigh: config.cpt.etaHigh,
      warmupFraction: config.cpt.warmupFraction,
      minAnnealSteps: A,
      maxAnnealSteps: A,
      maxStableSteps: S,
      checkpointEvery: config.cpt.checkpointEvery,
      variant: sources.libVariant,
      scheduleKind: variant === 'cosine' ? 'cosine' : 'wsa',
      seed: config.cpt.seed,
    },
    previousTrunkDir: null,
    roundDir: join(dir, 'round'),
    domainSamples: sources.domain,
    mixedSamples: sources.mixed,
    ...(sources.anneal ? { annealSamples: sources.anneal } : {}),
    watermark: 0,
    shouldStop: () => ctx.stopRequested(),
    onStep: (s) => {
      // Appended as it goes (a resumed round re-runs the steps after its last checkpoint; the
      // reader keeps the last record of a step).
      appendJsonLine(curveFile, { step: s.step, loss: s.loss, lr: s.lr, tokens: s.tokens, phase: s.phase });
      ctx.progress(
        s.roundStep / s.roundSteps,
        `step ${s.roundStep}/${s.roundSteps} loss ${s.loss.toFixed(3)}`,
      );
      if (s.roundStep % 10 === 0 || s.roundStep === s.roundSteps)
        log(
          `  cpt ${variant} ${s.phase} ${s.roundStep}/${s.roundSteps} loss ${s.loss.toFixed(4)} lr ${s.lr.toExponential(2)} tokens ${s.tokens}`,
        );
    },
  });
  const curve = readCurve(curveFile);
  return {
    variant,
    adapterDir: result.adapterDir,
    steps: curve.length,
    tokens: curve.reduce((n, p) => n + p.tokens, 0),
    stableSteps: result.stableSteps,
    annealSteps: result.annealSteps,
    warmupSteps: result.schedule.warmupSteps,
    skippedSamples: result.skippedSamples,
    curveFile,
  };
}

/** The CPT curve, one point per step (a step re-run after a resume keeps its last record). */
export function readCurve(file: string): CurvePoint[] {
  const byStep = new Map<number, CurvePoint>();
  for (const p of readJsonLines<CurvePoint>(file)) byStep.set(p.step, p);
  return [...byStep.values()].sort((a, b) => a.step - b.step);
}

export interface SftOutput {
  outDir: string;
  samples: number;
  curve: { step: number; loss: number; lr: number; hybridProbability: number }[];
  skippedSamples: number;
}

/**
 * LLaRA-style fine-tuning of one row: from fresh LoRA (LLaRA) or a CPT adapter (CPRec and the
 * ablations), on the first `samples` fine-tuning samples, hybrid prompts with the seed's SASRec
 * item table and the text→hybrid curriculum, one learning rate (no validation grid: it would
 * multiply the cost), resumable from its progress checkpoints.
 */
export async function runSft(
  lm: LmBase,
  config: PaperConfig,
  target: TargetData,
  opts: {
    initAdapterDir: string | null;
    samples: number;
    seed: number;
    embeddingsFile: string | null;
    outDir: string;
    /** Progress checkpoints (removed when the fine-tuning finishes); default `<outDir>.progress`. */
    checkpointDir?: string;
  },
  ctx: StageContext,
  log: (m: string) => void,
): Promise<SftOutput> {
  const embeddings =
    config.sft.hybrid && opts.embeddingsFile ? ItemEmbeddingTable.load(opts.embeddingsFile) : null;
  const train = target.sft.slice(0, opts.samples);
  const result = await fineTune({
    model: lm.model,
    tokenizer: lm.tokenizer,
    placeholderId: lm.placeholderId,
    train,
    validation: [],
    embeddings,
    initAdapterDir: opts.initAdapterDir,
    baseModelId: lm.baseModelId,
    baseChecksum: lm.baseChecksum,
    outDir: opts.outDir,
    checkpointDir: opts.checkpointDir ?? `${opts.outDir}.progress`,
    checkpointEvery: config.sft.checkpointEvery,
    sasrecRef: opts.embeddingsFile ?? undefined,
    config: {
      ...DEFAULT_SFT_CONFIG,
      batchSize: config.sft.batchSize,
      microBatchSize: config.sft.microBatchSize,
      epochs: config.sft.epochs,
      learningRates: [config.sft.learningRate],
      budget: config.protocol.budget,
      lora: config.sft.lora,
      curriculum: config.sft.hybrid,
      maxValidationExamples: 0,
      seed: opts.seed,
    },
    shouldStop: () => ctx.stopRequested(),
    onStep: (s) => {
      ctx.progress((s.step + 1) / s.steps, `step ${s.step + 1}/${s.steps} loss ${s.loss.toFixed(3)}`);
      if ((s.step + 1) % 10 === 0 || s.step + 1 === s.steps)
        log(
          `  sft ${opts.outDir.split('/').slice(-2).join('/')} ${s.step + 1}/${s.steps} loss ${s.loss.toFixed(4)} p(hybrid) ${s.hybridProbability.toFixed(2)}`,
        );
    },
  });
  result.projector?.dispose();
  return {
    outDir: opts.outDir,
    samples: train.length,
    curve: result.curve.map((c) => ({
      step: c.step,
      loss: c.loss,
      lr: c.lr,
      hybridProbability: c.hybridProbability,
    })),
    skippedSamples: result.skippedSamples,
  };
}

/** Which model state a row evaluates. */
export type RowModel =
  { kind: 'base' } | { kind: 'adapter'; adapterDir: string } | { kind: 'sft'; outDir: string };

export interface LmEvalOutput {
  users: UserOutcome[];
  testFingerprint: string;
  style: 'text' | 'hybrid';
  secondsPerCase: number;
  /** Mean prompt length in tokens (BOS included). */
  promptTokens: number;
  /** Share of prompts whose per-title cap the budget had to lower below the protocol's. */
  loweredCapShare: number;
}

/**
 * One LM row on the fixed test cases: per case one prefill, the exact likelihood of every
 * candidate (HR@k, NDCG@k by likelihood) and one greedy unconstrained answer matched to the
 * candidate titles as shown (generation HR@1, Valid Ratio — the paper's numbers). Every case's
 * outcome is appended to `logFile` as it is computed; a resumed row skips the logged cases.
 */
export async function evaluateLmRow(
  lm: LmBase,
  config: PaperConfig,
  target: TargetData,
  rowModel: RowModel,
  logFile: string,
  ctx: StageContext,
): Promise<LmEvalOutput> {
  const { model, tokenizer } = lm;
  detachLora(model);
  let hybrid: { embeddings: ItemEmbeddingTable; projector: ItemProjector } | null = null;
  if (rowModel.kind === 'adapter')
    loadLoraAdapter(model, rowModel.adapterDir, { expectedBaseChecksum: lm.baseChecksum });
  if (rowModel.kind === 'sft') {
    loadLoraAdapter(model, join(rowModel.outDir, SFT_ADAPTER_DIR), { expectedBaseChecksum: lm.baseChecksum });
    const projectorFile = join(rowModel.outDir, PROJECTOR_FILE);
    if (existsSync(projectorFile))
      hybrid = {
        projector: ItemProjector.load(projectorFile),
        embeddings: ItemEmbeddingTable.load(join(rowModel.outDir, ITEM_EMBEDDINGS_FILE)),
      };
  }
  const settings: PromptSettings = {
    tokenizer,
    budget: config.protocol.budget,
    style: hybrid ? 'hybrid' : 'text',
    placeholderId: lm.placeholderId,
    hybrid,
  };
  interface Logged extends UserOutcome {
    seconds: number;
    promptTokens: number;
    titleTokens: number;
  }
  const done = new Map(readJsonLines<Logged>(logFile).map((r) => [r.u, r]));
  try {
    // Cases in batches (answers decoded together); each batch's outcomes are logged when it ends.
    const todo = target.test.filter((c) => !done.has(c.userId));
    const batch = Math.max(1, config.eval.batchCases);
    for (let start = 0; start < todo.length; start += batch) {
      ctx.checkStop();
      const chunk = todo.slice(start, start + batch);
      const t0 = Date.now();
      const results = evaluateCases(model, chunk, settings, {
        likelihood: true,
        generation: true,
        scoreBatchSize: config.eval.scoreBatchSize,
      });
      const seconds = (Date.now() - t0) / 1000 / chunk.length;
      chunk.forEach((c, k) => {
        const result = results[k]!;
        const answer = result.generation ?? '';
        const match = matchGeneration(answer, result.encoded.candidateTitles);
        const scores = result.scores!;
        const entry: Logged = {
          u: c.userId,
          hit: match.valid && match.index === result.targetIndex ? 1 : 0,
          valid: match.valid ? 1 : 0,
          rank: rankByScores(scores, result.targetIndex),
          rankPerToken: rankByScores(
            scores.map((x, j) => x / result.scoredTokens![j]!),
            result.targetIndex,
          ),
          answer: answer.slice(0, 120),
          // The candidates the encoded prompt actually listed.
          cands: candidateKey(result.encoded.candidateItemIds),
          seconds,
          promptTokens: result.encoded.inputIds.length,
          titleTokens: result.encoded.titleTokens,
        };
        appendJsonLine(logFile, entry);
        done.set(c.userId, entry);
      });
      ctx.progress(done.size / target.test.length, `case ${done.size}/${target.test.length}`);
      // Let signal handlers and timers run between batches.
      await new Promise((resolve) => setImmediate(resolve));
    }
  } finally {
    hybrid?.projector.dispose();
  }
  const logged = target.test.map((c) => done.get(c.userId)!);
  return {
    users: logged.map(({ u, hit, valid, rank, rankPerToken, answer, cands }) => ({
      u,
      hit,
      valid,
      rank,
      cands,
      ...(rankPerToken !== undefined ? { rankPerToken } : {}),
      ...(answer !== undefined ? { answer } : {}),
    })),
    testFingerprint: target.testFingerprint,
    style: settings.style,
    secondsPerCase: logged.reduce((a, r) => a + r.seconds, 0) / Math.max(1, logged.length),
    promptTokens: logged.reduce((a, r) => a + r.promptTokens, 0) / Math.max(1, logged.length),
    loweredCapShare:
      logged.filter((r) => r.titleTokens < config.protocol.budget.maxTitleTokens).length /
      Math.max(1, logged.length),
  };
}

/** Removes an SFT output and its progress (a stage whose output must be recomputed). */
export function clearDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
