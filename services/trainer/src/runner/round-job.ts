import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createClickHouse, SequenceRepository } from '@cprec/clickhouse';
import type { Tokenizer } from '@cprec/corpus';
import {
  baseModelContextLength,
  defaultPromptTokens,
  LlamaModel,
  randomWeights,
  readBaseModel,
  selectBackend,
  type BackendReport,
  type LlamaConfig,
} from '@cprec/lm';
import {
  ArraySampleSource,
  hasCheckpoint,
  PROGRESS_DIR,
  readCheckpointState,
  runCptRound,
  type CptConfig,
  type SampleSource,
} from '@cprec/training';
import { WordTokenizer } from '@cprec/training/testing';
import { FineTuningPort, noFineTuning } from './fine-tuning';
import type { ModelSpec, RoundJob, RunnerPhase, RunnerResult, RunnerStep, TinyModelSpec } from './protocol';
import { CandidateMaker, catalogue, ClickHouseSampleSource, syntheticSamples } from './sample-sources';

export const TINY_MODEL_FILE = 'tiny-model.json';
/** Written once every output of the round is on disk: a re-run returns it instead of training. */
export const RESULT_FILE = 'result.json';
const RESULT_FORMAT = 'cprec-round-result/1';

/**
 * The finished round's result, or null when the round has not finished (or its record is unusable:
 * a missing output directory means training must run again).
 */
export function readFinishedRound(roundDir: string): RunnerResult | null {
  const file = join(roundDir, RESULT_FILE);
  if (!existsSync(file)) return null;
  let record: { format?: string; result?: RunnerResult };
  try {
    record = JSON.parse(readFileSync(file, 'utf8')) as typeof record;
  } catch {
    return null;
  }
  const result = record.result;
  if (record.format !== RESULT_FORMAT || !result) return null;
  const dirs = [result.trunkDir, ...result.adapters.map((a) => a.dir)];
  return dirs.every((d) => existsSync(d)) ? result : null;
}

function recordFinishedRound(roundDir: string, result: RunnerResult): void {
  const file = join(roundDir, RESULT_FILE);
  writeFileSync(`${file}.tmp`, JSON.stringify({ format: RESULT_FORMAT, result }, null, 2) + '\n');
  renameSync(`${file}.tmp`, file);
}

export interface RoundJobHooks {
  onStarted?(resumedFrom: { phase: string; dataPosition: number } | null): void;
  onPhase?(phase: RunnerPhase, steps: number): void;
  onStep?(step: RunnerStep): void | Promise<void>;
  shouldStop?(): boolean;
}

export function loadRoundModel(spec: ModelSpec): { model: LlamaModel; tokenizer: Tokenizer } {
  if (spec.kind === 'checkpoint' || spec.kind === 'llama2c') {
    const base = readBaseModel(
      spec.kind === 'checkpoint'
        ? { model: spec.path, tokenizer: spec.tokenizer }
        : { model: spec.checkpoint, tokenizer: spec.tokenizer },
    );
    return { model: new LlamaModel(base.weights), tokenizer: base.tokenizer };
  }
  const tiny = JSON.parse(readFileSync(join(spec.dir, TINY_MODEL_FILE), 'utf8')) as TinyModelSpec;
  if (tiny.format !== 'cprec-tiny-random/1') throw new Error(`${spec.dir}: not a tiny-random model spec`);
  const tokenizer = WordTokenizer.forTitles(tiny.titles);
  const model = new LlamaModel(randomWeights({ ...tiny.config, vocabSize: tokenizer.vocabSize }, tiny.seed));
  return { model, tokenizer };
}

/** The model `auto` chooses a backend for: the base's path, or the tiny random base's config. */
export function backendModelOf(spec: ModelSpec): string | LlamaConfig {
  if (spec.kind === 'checkpoint') return spec.path;
  if (spec.kind === 'llama2c') return spec.checkpoint;
  const tiny = JSON.parse(readFileSync(join(spec.dir, TINY_MODEL_FILE), 'utf8')) as TinyModelSpec;
  return { ...tiny.config, vocabSize: WordTokenizer.forTitles(tiny.titles).vocabSize };
}

/**
 * Makes the job's backend active. For `auto` the decision is made for the round's base model and
 * its training shape (one micro-batch at the prompt budget): a decision measured on another model
 * or shape picked TensorFlow for a SmolLM2 round once (13.8 GB resident, docs/backends.md).
 */
export async function selectRoundBackend(job: RoundJob): Promise<BackendReport> {
  const model = backendModelOf(job.model);
  const budget = job.cpt.budget.maxTokens;
  const seq =
    budget > 0
      ? budget
      : defaultPromptTokens(typeof model === 'string' ? baseModelContextLength(model) : model.maxSeqLen);
  const batch = Math.max(1, Math.min(job.cpt.batchSize, job.cpt.microBatchSize ?? job.cpt.batchSize));
  return selectBackend(job.backend, { model, workload: 'train', shape: { batch, seq } });
}

function cptConfigOf(job: RoundJob): CptConfig {
  return { ...job.cpt, maxStableSteps: job.cpt.maxStableSteps ?? Number.POSITIVE_INFINITY };
}

async function openSources(
  job: RoundJob,
): Promise<{ domain: SampleSource; mixed: SampleSource; close: () => Promise<void> }> {
  const data = job.data;
  if (data.kind === 'synthetic') {
    return {
      domain: new ArraySampleSource(syntheticSamples(data.domainSamples, data.seed, false)),
      mixed: new ArraySampleSource(syntheticSamples(data.mixedSamples, data.seed + 1, true)),
      close: async () => undefined,
    };
  }
  const ch = createClickHouse(data.settings);
  try {
    const repo = new SequenceRepository(ch);
    const { pools, titles } = await catalogue(ch, []);
    const maker = new CandidateMaker(pools, titles, data.negatives, data.seed);
    const domains = data.domains.length > 0 ? data.domains : undefined;
    const domain = await ClickHouseSampleSource.domain(
      repo,
      {
        domains,
        sinceWatermark: job.sinceWatermark,
        untilWatermark: job.watermark,
        seed: data.seed,
        replayFraction: data.replayFraction,
        historyCap: data.historyCap,
      },
      maker,
    );
    // Annealing draws from every mixed sample absorbed so far (it cycles when it needs more).
    const mixed = await ClickHouseSampleSource.mixed(
      repo,
      {
        untilWatermark: job.watermark,
        seed: data.seed,
        windowSize: data.mixedWindow,
        historyCap: data.historyCap,
      },
      maker,
    );
    return { domain, mixed, close: () => ch.close() };
  } catch (err) {
    await ch.close();
    throw err;
  }
}

/**
 * One round, in whatever process calls it (the runner process in production; directly in
 * tests): CPT (libs/training runCptRound) then fine-tuning per target domain when available.
 * A re-run with the same job continues from the round's progress checkpoint.
 */
export async function runRoundJob(
  job: RoundJob,
  hooks: RoundJobHooks = {},
  fineTuning: FineTuningPort = noFineTuning,
): Promise<RunnerResult> {
  // Publishing puts the outputs into the immutable artefact store. A runner re-spawned after that
  // began (the trainer died or lost its lease mid-publish) must hand back the same bytes — training
  // again would write new adapters (new timestamps; fine-tuning from scratch) under the same keys
  // and the round would fail on the store's conflict check.
  const finished = readFinishedRound(job.roundDir);
  if (finished) {
    hooks.onStarted?.({ phase: 'done', dataPosition: 0 });
    return { ...finished, resumedFrom: { phase: 'done', dataPosition: 0 } };
  }
  await selectRoundBackend(job);
  const { model, tokenizer } = loadRoundModel(job.model);
  const sources = await openSources(job);
  try {
    const progressDir = join(job.roundDir, PROGRESS_DIR);
    const resumedFrom = hasCheckpoint(progressDir)
      ? (({ phase, dataPosition }) => ({ phase, dataPosition }))(readCheckpointState(progressDir))
      : null;
    hooks.onStarted?.(resumedFrom);
    const cpt = await runCptRound({
      roundId: job.roundId,
      model,
      baseModelId: job.model.baseModelId,
      baseChecksum: job.model.sha256,
      tokenizer,
      config: cptConfigOf(job),
      previousTrunkDir: job.previousTrunkDir,
      roundDir: job.roundDir,
      domainSamples: sources.domain,
      mixedSamples: sources.mixed,
      watermark: job.watermark,
      onPhase: (phase, info) => hooks.onPhase?.(phase, info.steps),
      onStep: (r) =>
        hooks.onStep?.({
          phase: r.phase,
          step: r.step,
          roundStep: r.roundStep,
          roundSteps: r.roundSteps,
          loss: r.loss,
          lr: r.lr,
          tokens: r.tokens,
        }),
      shouldStop: hooks.shouldStop,
    });
    const adapters: RunnerResult['adapters'] = [{ kind: 'cpt', dir: cpt.adapterDir, targetDomains: [] }];
    let fineTuningNote: string | null = null;
    if (job.targetDomains.length > 0) {
      hooks.onPhase?.('fine_tuning', 0);
      const sft = await fineTuning.fineTune({
        job,
        model,
        tokenizer,
        cptAdapterDir: cpt.adapterDir,
        // The adapter's global step counts the steps done: the next step's number.
        firstStep: Number(cpt.adapterManifest.lineage.global_step ?? 0),
        onStep: hooks.onStep,
        shouldStop: hooks.shouldStop,
      });
      fineTuningNote = sft.note;
      for (const a of sft.adapters) adapters.push({ kind: 'sft', dir: a.dir, targetDomains: [a.domain] });
    }
    const result: RunnerResult = {
      trunkDir: cpt.trunkDir,
      trunkGlobalStep: readCheckpointState(cpt.trunkDir).globalStep,
      adapters,
      stableSteps: cpt.stableSteps,
      annealSteps: cpt.annealSteps,
      skippedSamples: cpt.skippedSamples,
      resumedFrom: cpt.resumedFrom,
      fineTuningNote,
    };
    recordFinishedRound(job.roundDir, result);
    return result;
  } finally {
    await sources.close();
  }
}
