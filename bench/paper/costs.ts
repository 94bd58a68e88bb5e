import { loadavg } from 'node:os';
import { attachLora, detachLora, Trainer } from '@cprec/lm';
import { cptSample, createRng, encodeSample, llaraSample, type EncodedSample } from '@cprec/corpus';
import { fitWithEarlyStopping, Gru4Rec, ItemIndex, SasRec } from '@cprec/sasrec';
import {
  encodePrompt,
  evaluateCase,
  evaluateCases,
  fineTune,
  ItemEmbeddingTable,
  padBatch,
  type PromptSettings,
} from '@cprec/training';
import type { PaperConfig } from './config';
import { buildCptData, buildTargetData } from './data';
import type { LmBase } from './lm';
import { casesToSplits } from './recommenders';

/** Per-unit costs measured on this machine for one base model and protocol (what `plan` multiplies). */
export interface MeasuredCosts {
  date: string;
  baseModelId: string;
  backend: string;
  nativeKernels: boolean;
  protocol: PaperConfig['protocol'];
  load: { start: number; end: number };
  tokens: {
    cpt: Quantiles;
    sft: Quantiles;
    evalPrompt: Quantiles;
    /** Share of samples whose per-title cap the budget had to lower. */
    loweredCap: { cpt: number; sft: number; eval: number };
  };
  /**
   * Wall seconds per optimizer step at the run's batch size and per sample, and CPU seconds (all
   * threads) per sample: on a shared machine wall time follows the load, CPU time much less.
   */
  cptStep: {
    batch: number;
    seconds: number;
    perSample: number;
    tokensPerSecond: number;
    cpuPerSample: number;
  };
  sftStep: { batch: number; seconds: number; perSample: number; cpuPerSample: number };
  /** Wall seconds per test case (one prefill + 20 candidates + one greedy answer), its parts, CPU seconds. */
  evalCase: {
    both: number;
    likelihoodOnly: number;
    generationOnly: number;
    generatedTokens: number;
    cpuBoth: number;
    /** The same per case when `eval.batchCases` cases are evaluated together (what the run does). */
    batched?: number;
    cpuBatched?: number;
  };
  /**
   * Wall seconds per epoch over all of Games' training sequences (measured on a slice, scaled; the
   * validation pass included), and the CPU seconds of the same.
   */
  recommenderEpoch: {
    sasrec: number;
    gru4rec: number;
    users: number;
    cpuSasrec?: number;
    cpuGru4rec?: number;
  };
}

export interface Quantiles {
  mean: number;
  p50: number;
  p90: number;
  max: number;
}

function quantiles(xs: number[]): Quantiles {
  const s = [...xs].sort((a, b) => a - b);
  const at = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? 0;
  return {
    mean: s.reduce((a, b) => a + b, 0) / Math.max(1, s.length),
    p50: at(0.5),
    p90: at(0.9),
    max: s[s.length - 1] ?? 0,
  };
}

/** Wall and CPU seconds (user + system, all threads) of `run`. */
function timed<T>(run: () => T): { value: T; wall: number; cpu: number } {
  const t0 = Date.now();
  const c0 = process.cpuUsage();
  const value = run();
  const d = process.cpuUsage(c0);
  return { value, wall: (Date.now() - t0) / 1000, cpu: (d.user + d.system) / 1e6 };
}

const sum = (xs: readonly number[]) => xs.reduce((a, x) => a + x, 0);
const avg = (xs: readonly number[]) => sum(xs) / Math.max(1, xs.length);
const gb = () => (process.memoryUsage().rss / 2 ** 30).toFixed(1);

/**
 * Measures what the full run is made of, on real prompts from the data: CPT and SFT training
 * steps at the run's batch size and prompt lengths, one evaluation case (likelihood + generation,
 * and each alone), and a recommender epoch. `samples` bounds how many of each are timed; the first
 * step or case of each kind (warm-up: allocation, kernel selection) is not counted.
 */
export async function measureCosts(
  lm: LmBase,
  config: PaperConfig,
  samples: number,
  log: (m: string) => void,
): Promise<MeasuredCosts> {
  const load0 = loadavg()[0]!;
  const small: PaperConfig = {
    ...config,
    cptDomains: config.cptDomains.slice(0, 2),
    cpt: {
      ...config.cpt,
      stableSteps: Math.max(4, Math.ceil((2 * samples) / config.cpt.batchSize)),
      annealSteps: 2,
    },
    sft: { ...config.sft, fewShot: [] },
    testUsers: samples + 1,
    validationUsers: 2000,
  };
  log('costs: building real prompts (2 CPT domains, the linked data, Games)');
  const cpt = await buildCptData(small, log);
  const game = await buildTargetData(small, 'game', log);
  const { tokenizer, model } = lm;
  const budget = config.protocol.budget;
  const cap = budget.maxTitleTokens;
  const cptEncoded = [...cpt.domain.slice(0, 4 * samples), ...cpt.mixed].map((s) =>
    encodeSample(cptSample(s), tokenizer, budget),
  );
  const rng = createRng(1);
  const sftEncoded = game.sft
    .slice(0, 200)
    .map((s) =>
      encodeSample(llaraSample(s, 'hybrid', rng), tokenizer, budget, { placeholderId: lm.placeholderId }),
    );
  const text: PromptSettings = { tokenizer, budget, style: 'text' };
  const evalEncoded = game.test.map((c) => encodePrompt(c, text));
  const lowered = (xs: EncodedSample[]) =>
    xs.filter((e) => e.titleTokens < cap).length / Math.max(1, xs.length);
  const tokens = {
    cpt: quantiles(cptEncoded.map((e) => e.inputIds.length)),
    sft: quantiles(sftEncoded.map((e) => e.inputIds.length)),
    evalPrompt: quantiles(evalEncoded.map((e) => e.inputIds.length)),
    loweredCap: { cpt: lowered(cptEncoded), sft: lowered(sftEncoded), eval: lowered(evalEncoded) },
  };
  log(`costs: prompt tokens ${JSON.stringify(tokens)}`);

  // CPT: optimizer steps of the run's batch (micro-batches accumulated) on real CPT samples.
  detachLora(model);
  attachLora(model, config.cpt.lora, 1);
  const b = config.cpt.batchSize;
  const micro = Math.min(b, config.cpt.microBatchSize);
  const trainer = new Trainer(model, {
    weightDecay: 0,
    maxGradNorm: 1,
    accumulationSteps: Math.ceil(b / micro),
  });
  const cptSteps: Array<{ wall: number; cpu: number; tokens: number }> = [];
  const nSteps = Math.min(Math.floor(cptEncoded.length / b), 1 + Math.ceil(samples / b));
  for (let s = 0; s < nSteps; s++) {
    const step = cptEncoded.slice(s * b, (s + 1) * b);
    const t = timed(() => {
      let n = 0;
      for (let k = 0; k < step.length; k += micro) {
        const batch = padBatch(step.slice(k, k + micro));
        trainer.trainStep(batch, 1e-4);
        n += batch.tokens;
      }
      return n;
    });
    log(
      `costs: CPT step ${s} (${t.value} tokens) ${t.wall.toFixed(1)} s, ${t.cpu.toFixed(1)} CPU s, rss ${gb()} GB`,
    );
    if (s > 0) cptSteps.push({ wall: t.wall, cpu: t.cpu, tokens: t.value });
  }
  trainer.dispose();
  const cptStep = {
    batch: b,
    seconds: avg(cptSteps.map((x) => x.wall)),
    perSample: avg(cptSteps.map((x) => x.wall)) / b,
    tokensPerSecond: sum(cptSteps.map((x) => x.tokens)) / Math.max(1e-9, sum(cptSteps.map((x) => x.wall))),
    cpuPerSample: avg(cptSteps.map((x) => x.cpu)) / b,
  };

  // SFT: fineTune's own loop (hybrid prompts, answer-only loss, projector), first step excluded.
  const index = ItemIndex.fromIds(game.items);
  const table = new ItemEmbeddingTable(
    index.toJSON(),
    Float32Array.from({ length: index.size * 64 }, (_, k) => Math.sin(k)),
    64,
  );
  const sftSteps: Array<{ wall: number; cpu: number }> = [];
  let last = { t: Date.now(), c: process.cpuUsage() };
  await fineTune({
    model,
    tokenizer,
    placeholderId: lm.placeholderId,
    train: game.sft.slice(0, Math.max(2 * config.sft.batchSize, samples + config.sft.batchSize)),
    validation: [],
    embeddings: table,
    initAdapterDir: null,
    baseModelId: lm.baseModelId,
    baseChecksum: lm.baseChecksum,
    config: {
      batchSize: config.sft.batchSize,
      microBatchSize: config.sft.microBatchSize,
      epochs: 1,
      learningRates: [1e-4],
      warmupFraction: 0.05,
      finalLrFraction: 0.1,
      budget,
      lora: config.sft.lora,
      weightDecay: 0,
      maxGradNorm: 1,
      curriculum: false,
      maxValidationExamples: 0,
      seed: 1,
    },
    onStep: (s) => {
      const d = process.cpuUsage(last.c);
      const wall = (Date.now() - last.t) / 1000;
      const cpu = (d.user + d.system) / 1e6;
      log(`costs: SFT step ${s.step} ${wall.toFixed(1)} s, ${cpu.toFixed(1)} CPU s, rss ${gb()} GB`);
      if (s.step > 0) sftSteps.push({ wall, cpu });
      last = { t: Date.now(), c: process.cpuUsage() };
    },
  });
  const sftStep = {
    batch: config.sft.batchSize,
    seconds: avg(sftSteps.map((x) => x.wall)),
    perSample: avg(sftSteps.map((x) => x.wall)) / config.sft.batchSize,
    cpuPerSample: avg(sftSteps.map((x) => x.cpu)) / config.sft.batchSize,
  };

  // Evaluation: the base model on real test prompts (the first case warms up).
  detachLora(model);
  const timeCases = (likelihood: boolean, generation: boolean) => {
    const runs = game.test.slice(0, samples + 1).map((c) =>
      timed(() =>
        evaluateCase(model, c, text, {
          likelihood,
          generation,
          scoreBatchSize: config.eval.scoreBatchSize,
        }),
      ),
    );
    const counted = runs.slice(1);
    return {
      wall: avg(counted.map((r) => r.wall)),
      cpu: avg(counted.map((r) => r.cpu)),
      tokens: avg(runs.map((r) => (r.value.generation ? tokenizer.encode(r.value.generation).length : 0))),
    };
  };
  const both = timeCases(true, true);
  log(
    `costs: evaluation case ${both.wall.toFixed(2)} s, ${both.cpu.toFixed(2)} CPU s (${both.tokens.toFixed(1)} generated tokens)`,
  );
  const nBatch = Math.max(1, Math.min(config.eval.batchCases, samples));
  const batchRun = timed(() =>
    evaluateCases(model, game.test.slice(1, 1 + nBatch), text, {
      likelihood: true,
      generation: true,
      scoreBatchSize: config.eval.scoreBatchSize,
    }),
  );
  const batched = { wall: batchRun.wall / nBatch, cpu: batchRun.cpu / nBatch };
  log(
    `costs: evaluation in batches of ${nBatch}: ${batched.wall.toFixed(2)} s, ${batched.cpu.toFixed(2)} CPU s per case`,
  );
  const likelihoodOnly = timeCases(true, false).wall;
  const generationOnly = timeCases(false, true).wall;

  // Recommenders: a slice of Games' training sequences, scaled to all of them.
  const train = game.trainSequences.map((s) => index.encode(s));
  const slice = train.slice(0, Math.min(train.length, 128 * 20));
  const epochOf = async (make: () => SasRec | Gru4Rec): Promise<{ wall: number; cpu: number }> => {
    const m = make();
    try {
      const c0 = process.cpuUsage();
      const fit = await fitWithEarlyStopping(m, slice, {
        maxEpochs: 1,
        patience: 1,
        validation: casesToSplits(index, game.validation.slice(0, 500)),
      });
      const d = process.cpuUsage(c0);
      const scale = train.length / slice.length;
      return { wall: (fit.elapsedMs / 1000) * scale, cpu: ((d.user + d.system) / 1e6) * scale };
    } finally {
      m.dispose();
    }
  };
  const sasrec = await epochOf(
    () => new SasRec({ ...config.recommenders.sasrec, numItems: index.size, seed: 1 }),
  );
  const gru4rec = await epochOf(
    () => new Gru4Rec({ ...config.recommenders.gru4rec, numItems: index.size, seed: 1 }),
  );
  return {
    date: new Date().toISOString(),
    baseModelId: lm.baseModelId,
    backend: lm.backend ?? 'unknown',
    nativeKernels: lm.nativeKernels,
    protocol: config.protocol,
    load: { start: load0, end: loadavg()[0]! },
    tokens,
    cptStep,
    sftStep,
    evalCase: {
      both: both.wall,
      likelihoodOnly,
      generationOnly,
      generatedTokens: both.tokens,
      cpuBoth: both.cpu,
      batched: batched.wall,
      cpuBatched: batched.cpu,
    },
    recommenderEpoch: {
      sasrec: sasrec.wall,
      gru4rec: gru4rec.wall,
      users: train.length,
      cpuSasrec: sasrec.cpu,
      cpuGru4rec: gru4rec.cpu,
    },
  };
}
