import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import {
  AdamW,
  attachLora,
  clipByGlobalNorm,
  ensureGradientsRegistered,
  loadLoraAdapter,
  modelCausalLmLoss,
  parseSafetensors,
  readLoraManifest,
  saveLoraAdapter,
  serializeSafetensors,
  type LlamaModel,
  type LoraConfig,
  type LoraManifest,
} from '@cprec/lm';
import {
  createRng,
  encodeSample,
  llaraSample,
  randomUnit,
  shuffleInPlace,
  TokenBudgetError,
  type EncodedSample,
  type SampleItems,
  type TokenBudget,
  type Tokenizer,
} from '@cprec/corpus';
import { padBatch } from '../data/batching';
import { learningRateAt, type CosineSchedule } from '../schedule';
import type { EvaluationCase } from '../eval/cases';
import { likelihoodRank, type PromptSettings } from '../eval/evaluate';
import { injectionFor, type HybridParts } from './hybrid';
import { ITEM_EMBEDDINGS_FILE, type ItemEmbeddingTable } from './item-embeddings';
import { ItemProjector } from './projector';

/** LLaRA-style fine-tuning settings. */
export interface SftConfig {
  batchSize: number;
  /**
   * Samples per forward/backward pass (default: the whole batch); micro-batch gradients are
   * weighted by their answer tokens and summed into one update. Bounds memory for real LLMs.
   */
  microBatchSize?: number;
  epochs: number;
  /** Grid searched on the validation split (peak learning rate of a cosine schedule with warm-up). */
  learningRates: readonly number[];
  /** Warm-up steps as a fraction of all steps. */
  warmupFraction: number;
  /** The cosine ends at this fraction of the peak rate. */
  finalLrFraction: number;
  budget: TokenBudget;
  /** LoRA for a fresh start (LLaRA baseline); a CPT adapter brings its own config. */
  lora: Partial<LoraConfig>;
  weightDecay: number;
  maxGradNorm: number;
  /** Curriculum: the probability of a hybrid prompt rises linearly 0 → 1 over training. */
  curriculum: boolean;
  /** Validation examples scored per learning rate (a prefix of the split). */
  maxValidationExamples: number;
  seed: number;
}

export const DEFAULT_SFT_CONFIG: SftConfig = {
  batchSize: 8,
  epochs: 3,
  learningRates: [1e-4, 3e-4, 1e-3],
  warmupFraction: 0.05,
  finalLrFraction: 0.1,
  budget: { maxTokens: 256, maxTitleTokens: 12 },
  lora: { rank: 8, alpha: 16, dropout: 0.05 },
  weightDecay: 0,
  maxGradNorm: 1,
  curriculum: true,
  maxValidationExamples: 200,
  seed: 1,
};

export interface SftStepReport {
  learningRateCandidate: number;
  step: number;
  steps: number;
  loss: number;
  lr: number;
  /** Probability of a hybrid prompt at this step (the curriculum). */
  hybridProbability: number;
  hybridSamples: number;
}

export interface SftInput {
  /** Base model with weights loaded; LoRA adapters are attached/replaced. */
  model: LlamaModel;
  tokenizer: Tokenizer;
  /** Token id at placeholder positions (its embedding is replaced by the projected item). */
  placeholderId: number;
  /** Target-domain training samples (history, candidates, target). */
  train: readonly SampleItems[];
  validation: readonly EvaluationCase[];
  /**
   * SASRec's frozen item table of the target domain; null = text-only fine-tuning (no projector,
   * no curriculum).
   */
  embeddings: ItemEmbeddingTable | null;
  /** CPT adapter directory to start from (CPRec), or null for fresh LoRA (LLaRA baseline). */
  initAdapterDir: string | null;
  baseModelId: string;
  baseChecksum: string;
  /** Where the chosen adapter and projector are written; nothing is written when omitted. */
  outDir?: string;
  /** Reference to the SASRec weights the item table came from (recorded in the lineage). */
  sasrecRef?: string;
  config: SftConfig;
  onStep?: (report: SftStepReport) => void;
  /**
   * Progress checkpoints (trainable weights, optimizer moments, step, curve) are written here
   * every `checkpointEvery` steps, atomically; a run restarted with the same inputs continues from
   * the last one instead of from step 0 (long fine-tunings of a real LLM take hours). Needs a
   * single learning rate (no grid search). Removed when the run completes.
   */
  checkpointDir?: string;
  /** Optimizer steps between progress checkpoints; default 25. */
  checkpointEvery?: number;
  /** Polled before every step; true stops the run with `SftStoppedError` (after a checkpoint is written). */
  shouldStop?: () => boolean;
}

export class SftStoppedError extends Error {
  constructor(step: number) {
    super(`fine-tuning was stopped before step ${step}`);
    this.name = 'SftStoppedError';
  }
}

const PROGRESS_STATE = 'state.json';
const PROGRESS_WEIGHTS = 'weights.safetensors';
const PROGRESS_OPTIMIZER = 'optimizer.safetensors';

interface SftProgress {
  format: 'cprec-sft-progress/1';
  learningRate: number;
  /** Optimizer steps done. */
  step: number;
  curve: SftStepReport[];
  skipped: number;
}

/** Writes the progress checkpoint into a temp sibling and renames it over `dir` (never half-written). */
function saveProgress(
  dir: string,
  vars: Map<string, tf.Variable>,
  optimizer: AdamW,
  progress: SftProgress,
): void {
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  const weights = new Map(
    [...vars].map(([k, v]) => [k, { shape: [...v.shape], data: v.dataSync() as Float32Array }]),
  );
  writeFileSync(join(tmp, PROGRESS_WEIGHTS), serializeSafetensors(weights));
  const { step, tensors } = optimizer.stateTensors();
  writeFileSync(join(tmp, PROGRESS_OPTIMIZER), serializeSafetensors(tensors, { step: String(step) }));
  writeFileSync(join(tmp, PROGRESS_STATE), JSON.stringify(progress) + '\n');
  const old = `${dir}.old-${process.pid}`;
  if (existsSync(dir)) renameSync(dir, old);
  renameSync(tmp, dir);
  rmSync(old, { recursive: true, force: true });
}

/** Restores a progress checkpoint into `vars` and `optimizer`; null when there is none for `lr`. */
function loadProgress(
  dir: string,
  lr: number,
  vars: Map<string, tf.Variable>,
  optimizer: AdamW,
): SftProgress | null {
  if (!existsSync(join(dir, PROGRESS_STATE))) return null;
  const progress = JSON.parse(readFileSync(join(dir, PROGRESS_STATE), 'utf8')) as SftProgress;
  if (progress.format !== 'cprec-sft-progress/1' || progress.learningRate !== lr) return null;
  const weights = parseSafetensors(readFileSync(join(dir, PROGRESS_WEIGHTS)));
  for (const [name, v] of vars) {
    const t = weights.tensors.get(name);
    if (!t) throw new Error(`${dir}: progress checkpoint has no ${name}`);
    tf.tidy(() => v.assign(tf.tensor(t.data, v.shape)));
  }
  const opt = parseSafetensors(readFileSync(join(dir, PROGRESS_OPTIMIZER)));
  optimizer.loadStateTensors(
    Number(opt.metadata?.step ?? '0'),
    new Map([...opt.tensors].map(([k, t]) => [k, { shape: [...t.shape], data: t.data }])),
  );
  return progress;
}

export interface SftResult {
  learningRate: number;
  /** Validation HR@1 (likelihood ranking) per learning rate of the grid. */
  validationHr1: Record<string, number>;
  projector: ItemProjector | null;
  /** Loss/LR curve of the chosen learning rate. */
  curve: SftStepReport[];
  adapterDir?: string;
  projectorFile?: string;
  manifest?: LoraManifest;
  skippedSamples: number;
}

export const SFT_ADAPTER_DIR = 'adapter';
export const PROJECTOR_FILE = 'projector.safetensors';

function snapshot(vars: Map<string, tf.Variable>): Map<string, Float32Array> {
  return new Map([...vars].map(([k, v]) => [k, (v.dataSync() as Float32Array).slice()]));
}

function restore(vars: Map<string, tf.Variable>, saved: Map<string, Float32Array>): void {
  for (const [k, v] of vars) {
    const data = saved.get(k);
    if (!data) throw new Error(`no saved value for ${k}`);
    tf.tidy(() => v.assign(tf.tensor(data, v.shape)));
  }
}

/**
 * LLaRA-style fine-tuning on one target domain, with the learning rate chosen from a grid by
 * validation HR@1 (exact candidate likelihood on hybrid prompts — what the final model serves):
 * for every rate, LoRA starts from the CPT adapter (CPRec) or fresh (LLaRA), a new projector is
 * initialised, and training runs `epochs` passes with loss on the answer only, the probability
 * of a hybrid prompt rising linearly from 0 to 1 (text-only prompts before). The best run's
 * adapter and projector are left on the model / returned and, with `outDir`, saved with lineage.
 *
 * Gradients are taken here rather than with lm's `Trainer` because the injected vectors must be
 * computed inside the gradient closure for the projector to learn (Trainer takes them
 * precomputed).
 */
export async function fineTune(input: SftInput): Promise<SftResult> {
  const { model, config } = input;
  if (config.learningRates.length === 0) throw new Error('the learning-rate grid is empty');
  if (input.checkpointDir && config.learningRates.length !== 1)
    throw new Error('resumable fine-tuning (checkpointDir) needs a single learning rate, not a grid');
  ensureGradientsRegistered();
  const validationHr1: Record<string, number> = {};
  let best: {
    lr: number;
    hr1: number;
    lora: Map<string, Float32Array>;
    projector: ItemProjector | null;
    curve: SftStepReport[];
  } | null = null;
  let skipped = 0;

  const initLora = (): void => {
    if (input.initAdapterDir)
      loadLoraAdapter(model, input.initAdapterDir, { expectedBaseChecksum: input.baseChecksum });
    else attachLora(model, config.lora, config.seed);
  };

  for (const lr of config.learningRates) {
    initLora();
    const projector = input.embeddings
      ? new ItemProjector(
          { inDim: input.embeddings.dim, hiddenDim: model.config.dim, outDim: model.config.dim },
          config.seed,
        )
      : null;
    const hybrid: HybridParts | null =
      input.embeddings && projector ? { embeddings: input.embeddings, projector } : null;
    const run = await trainOnce(input, lr, hybrid);
    skipped += run.skipped;
    const settings: PromptSettings = {
      tokenizer: input.tokenizer,
      budget: config.budget,
      style: hybrid ? 'hybrid' : 'text',
      placeholderId: input.placeholderId,
      hybrid,
    };
    const validation = input.validation.slice(0, config.maxValidationExamples);
    // An example whose prompt cannot fit the budget is left out (the same ones for every rate),
    // as training leaves such samples out, instead of failing the round.
    let hits = 0;
    let scored = 0;
    for (const example of validation) {
      let rank: number;
      try {
        rank = likelihoodRank(model, example, settings);
      } catch (err) {
        if (err instanceof TokenBudgetError) continue;
        throw err;
      }
      scored++;
      if (rank === 1) hits++;
    }
    const hr1 = scored === 0 ? 0 : hits / scored;
    validationHr1[String(lr)] = hr1;
    if (!best || hr1 > best.hr1) {
      best?.projector?.dispose();
      best = { lr, hr1, lora: snapshot(model.loraVariables()), projector, curve: run.curve };
    } else {
      projector?.dispose();
    }
  }
  // Leave the chosen run's weights on the model.
  initLora();
  restore(model.loraVariables(), best!.lora);

  const result: SftResult = {
    learningRate: best!.lr,
    validationHr1,
    projector: best!.projector,
    curve: best!.curve,
    skippedSamples: skipped,
  };
  if (!input.outDir) {
    if (input.checkpointDir) rmSync(input.checkpointDir, { recursive: true, force: true });
    return result;
  }
  mkdirSync(input.outDir, { recursive: true });
  const adapterDir = join(input.outDir, SFT_ADAPTER_DIR);
  const cptLineage = input.initAdapterDir ? readLoraManifest(input.initAdapterDir) : null;
  const manifest = saveLoraAdapter(model, adapterDir, {
    baseModelId: input.baseModelId,
    baseChecksum: input.baseChecksum,
    lineage: {
      kind: 'sft',
      method: input.initAdapterDir ? 'cprec' : 'llara',
      cpt_adapter: input.initAdapterDir,
      cpt_lineage: cptLineage?.lineage ?? null,
      learning_rate: best!.lr,
      validation_hr1: validationHr1,
      epochs: config.epochs,
      train_samples: input.train.length,
      projector: best!.projector ? PROJECTOR_FILE : null,
      sasrec: input.sasrecRef ?? null,
    },
  });
  const projectorFile = best!.projector ? join(input.outDir, PROJECTOR_FILE) : undefined;
  if (best!.projector && projectorFile)
    best!.projector.save(projectorFile, { sasrec: input.sasrecRef ?? '', base_model: input.baseModelId });
  // The frozen table travels with the projector, so evaluation needs no SASRec rebuild.
  input.embeddings?.save(join(input.outDir, ITEM_EMBEDDINGS_FILE), { sasrec: input.sasrecRef ?? '' });
  if (input.checkpointDir) rmSync(input.checkpointDir, { recursive: true, force: true });
  return { ...result, adapterDir, manifest, ...(projectorFile ? { projectorFile } : {}) };
}

/** One training run at peak rate `lr` from the current adapters. */
async function trainOnce(
  input: SftInput,
  lr: number,
  hybrid: HybridParts | null,
): Promise<{ curve: SftStepReport[]; skipped: number }> {
  const { model, config } = input;
  const rng = createRng(config.seed);
  const optimizer = new AdamW({ weightDecay: config.weightDecay });
  const vars = model.trainableVariables();
  if (hybrid) for (const [k, v] of hybrid.projector.variables()) vars.set(k, v);
  const names = [...vars.keys()];
  const list = names.map((n) => vars.get(n)!);
  const stepsPerEpoch = Math.ceil(input.train.length / config.batchSize);
  const total = stepsPerEpoch * config.epochs;
  const schedule: CosineSchedule = {
    kind: 'cosine',
    etaLow: lr * config.finalLrFraction,
    etaHigh: lr,
    warmupSteps: Math.round(config.warmupFraction * total),
    totalSteps: total,
  };
  let curve: SftStepReport[] = [];
  let skipped = 0;
  let step = 0;
  // Resuming: weights and moments from the checkpoint; the loop below replays the random draws
  // (shuffles, phrasings, curriculum) of the steps already done without training them, so the
  // remaining steps see exactly the batches an uninterrupted run would.
  const resumed = input.checkpointDir ? loadProgress(input.checkpointDir, lr, vars, optimizer) : null;
  const resumeAt = resumed?.step ?? 0;
  if (resumed) curve = resumed.curve.slice();
  const every = Math.max(1, input.checkpointEvery ?? 25);
  const checkpoint = (): void => {
    if (input.checkpointDir)
      saveProgress(input.checkpointDir, vars, optimizer, {
        format: 'cprec-sft-progress/1',
        learningRate: lr,
        step,
        curve,
        skipped,
      });
  };
  try {
    for (let epoch = 0; epoch < config.epochs; epoch++) {
      const order = shuffleInPlace(
        input.train.map((_, i) => i),
        rng,
      );
      for (let start = 0; start < order.length; start += config.batchSize) {
        // Linear curriculum: text-only prompts first, hybrid ones with probability step/total.
        const pHybrid = hybrid ? (config.curriculum ? step / Math.max(1, total - 1) : 1) : 0;
        const batch: EncodedSample[] = [];
        let hybridSamples = 0;
        for (const i of order.slice(start, start + config.batchSize)) {
          const style = randomUnit(rng) < pHybrid ? 'hybrid' : 'text';
          try {
            batch.push(
              encodeSample(llaraSample(input.train[i], style, rng), input.tokenizer, config.budget, {
                placeholderId: input.placeholderId,
              }),
            );
            if (style === 'hybrid') hybridSamples++;
          } catch (err) {
            if (!(err instanceof TokenBudgetError)) throw err;
            skipped++;
          }
        }
        if (batch.length === 0) continue;
        if (step < resumeAt) {
          step++;
          continue;
        }
        if (input.shouldStop?.()) {
          checkpoint();
          throw new SftStoppedError(step);
        }
        const rate = learningRateAt(schedule, step);
        // Micro-batches (memory: a real LLM's logits over long prompts), gradients averaged by
        // answer tokens, so the update equals one pass over the whole batch.
        const micro = Math.max(1, config.microBatchSize ?? batch.length);
        const answerTokens = (chunk: EncodedSample[]) =>
          chunk.reduce((n, e) => n + e.lossMask.reduce((a, m) => a + m, 0), 0);
        const totalTokens = Math.max(1, answerTokens(batch));
        const summed = new Map<string, tf.Tensor>();
        let loss = 0;
        for (let k = 0; k < batch.length; k += micro) {
          const chunk = batch.slice(k, k + micro);
          const weight = answerTokens(chunk) / totalTokens;
          const padded = padBatch(chunk);
          const { value, grads } = tf.variableGrads(() => {
            const inject = injectionFor(chunk, hybrid);
            // Classifier logits only at the answer rows (the loss ignores the rest): the same
            // value and gradients as the full [B, T, vocabulary] logits, at a fraction of the cost.
            return modelCausalLmLoss(model, padded.inputIds, padded.lossMask, {
              attentionMask: padded.attentionMask,
              training: true,
              ...(inject ? { inject } : {}),
            });
          }, list);
          loss += value.dataSync()[0]! * weight;
          value.dispose();
          names.forEach((n, i) => {
            const g = grads[list[i]!.name];
            if (!g) return;
            const prev = summed.get(n);
            summed.set(
              n,
              tf.tidy(() => (prev ? tf.add(prev, tf.mul(g, weight)) : tf.mul(g, weight))),
            );
            prev?.dispose();
          });
          tf.dispose(grads);
        }
        const clipped = clipByGlobalNorm(summed, config.maxGradNorm);
        optimizer.apply(vars, clipped.grads, rate);
        if (clipped.grads !== summed) for (const g of clipped.grads.values()) g.dispose();
        for (const g of summed.values()) g.dispose();
        const report: SftStepReport = {
          learningRateCandidate: lr,
          step,
          steps: total,
          loss,
          lr: rate,
          hybridProbability: pHybrid,
          hybridSamples,
        };
        curve.push(report);
        input.onStep?.(report);
        step++;
        if (step % every === 0) checkpoint();
        // Every step: a real LLM's step takes seconds to minutes, and a stop requested by a
        // signal handler is only seen once timers and signals get a turn.
        await new Promise((resolve) => setImmediate(resolve));
      }
    }
    // The finished weights too: a kill during validation or saving does not train again.
    if (step > resumeAt && step % every !== 0) checkpoint();
  } finally {
    optimizer.dispose();
  }
  return { curve, skipped };
}
