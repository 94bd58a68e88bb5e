/**
 * Tuning tool for the synthetic CPT-vs-SFT comparison (not part of the test suite): runs the
 * same pipeline as `runCptVsSft` step by step and prints timings, the CPT loss curve and both
 * arms' HR@1 (likelihood ranking, and generation when GEN=1), with the zero-shot HR@1 of the CPT
 * adapter at a few points of training.
 *
 *   OVERRIDES='{"cpt":{"etaHigh":0.01}}' SEED=1 \
 *     npx ts-node -r tsconfig-paths/register --transpile-only libs/training/src/experiment/tune.ts
 *
 * OVERRIDES is a JSON object deep-merged into `quickSyntheticComparison(SEED)`; BASE=unit|quiet
 * overrides the base profile; DIAG=1 prints the CPT loss by token kind; EVAL_EVERY=N evaluates
 * the CPT adapter zero-shot every N steps.
 *
 * Findings so far (seed 1, load average 10-20 on 2 cores):
 * - cost: ≈ 0.1-0.3 s per CPT step of 8 short prompts (dim 128, native kernels), ≈ 0.01-0.05 s
 *   per evaluated example; the earlier 700 s runs were dominated by the long unified template.
 * - the `unit` base never gets title tokens below their unigram loss: with a frozen tied
 *   classifier, random embeddings at small dim cannot express "one of these 24 words" sharply,
 *   and its loud random layers drown the context. `quiet` + a vocabulary ≤ dim fixes expressivity.
 * - a clean topic task (4 same-topic tokens → a 5th of that topic) is learned through LoRA in
 *   ~300 steps; 45 filler tokens in front slow it down a lot (attention dilution), and copying a
 *   candidate is not learned at all in 400 steps (rank 16 or 64).
 * - on the real scenario with a 2-layer base, the history-title loss drops only ≈ 0.2 of the
 *   ≈ 0.9 nats available in 560 steps; CPT+SFT likelihood HR@1 0.28-0.29 vs SFT-only 0.23.
 * - one layer (a second frozen random layer slows LoRA learning several-fold), ~1,900 steps of 8
 *   short prompts (≈ 0.04 s/step on a quiet machine) and enough mixed samples for annealing
 *   (96 cycled for 500 steps destroyed the skill): the CPT adapter reaches zero-shot likelihood
 *   HR@1 0.46-0.48 (seeds 1, 2; chance 0.25) *in its own short phrasing*, but only 0.23-0.27 in
 *   the unified template that SFT and evaluation use, and SFT does not bridge the gap
 *   (CPT+SFT 0.215 / 0.283 vs SFT-only 0.253 / 0.238). The skill is tied to the phrasing; the
 *   next step is CPT in the unified template itself (prompts ≈ 2× longer).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { LlamaModel, selectBackend } from '@cprec/lm';
import { cptSample, encodeSample, type SampleItems } from '@cprec/corpus';
import { ArraySampleSource } from '../data/sample-source';
import { DEFAULT_CPT_CONFIG, runCptRound } from '../cpt';
import { DEFAULT_SFT_CONFIG, fineTune, type SftConfig } from '../sft/fine-tune';
import { evaluateModel } from '../eval/evaluate';
import { WordTokenizer } from '../testing/word-tokenizer';
import { quickSyntheticComparison, shownTextTokenizer, type CptVsSftConfig } from './cpt-vs-sft';
import { buildSyntheticScenario } from './synthetic-setup';
import { tinyBaseWeights, type TinyBaseProfile } from './tiny-base';

type Json = { [k: string]: unknown };
function merge<T>(base: T, over: Json): T {
  const out = { ...(base as Json) };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] =
      v && typeof v === 'object' && !Array.isArray(v) && b && typeof b === 'object' && !Array.isArray(b)
        ? merge(b, v as Json)
        : v;
  }
  return out as T;
}

/** Mean CPT loss by token kind (template / history title / candidate title / answer) on source samples. */
function diagnose(
  model: LlamaModel,
  tokenizer: WordTokenizer,
  samples: readonly SampleItems[],
  config: CptVsSftConfig,
  log: (...a: unknown[]) => void,
): void {
  const sums: Record<string, [number, number]> = {};
  const titleIds = new Set<number>();
  for (const s of samples)
    for (const it of [...s.history, ...s.candidates])
      for (const id of tokenizer.encode(it.title)) titleIds.add(id);
  const marker = tokenizer.encode(' are')[0];
  for (const items of samples) {
    const sample = cptSample(items, 'all');
    const enc = encodeSample(
      config.phrasing ? { ...sample, phrasing: config.phrasing } : sample,
      tokenizer,
      config.budget,
    );
    const ids = Array.from(enc.inputIds);
    const lp = tf.tidy(() => tf.logSoftmax(model.forward([ids])).arraySync() as number[][][])[0]!;
    let candidatesStart = ids.lastIndexOf(marker!, enc.promptLength);
    if (candidatesStart < 0) candidatesStart = Math.floor(enc.promptLength / 2);
    for (let i = 1; i < ids.length; i++) {
      const kind =
        i >= enc.promptLength
          ? ids[i] === tokenizer.eosId
            ? 'eos'
            : 'answer'
          : !titleIds.has(ids[i]!)
            ? 'template'
            : i < candidatesStart
              ? 'history'
              : 'candidate';
      const e = (sums[kind] ??= [0, 0]);
      e[0] -= lp[i - 1]![ids[i]!]!;
      e[1]++;
    }
  }
  log(
    'loss by token kind',
    Object.fromEntries(Object.entries(sums).map(([k, [a, n]]) => [k, +(a / n).toFixed(3)])),
  );
}

async function main(): Promise<void> {
  const backend = await selectBackend('auto');
  const seed = Number(process.env.SEED ?? 1);
  const config: CptVsSftConfig = merge(
    quickSyntheticComparison(seed),
    JSON.parse(process.env.OVERRIDES ?? '{}') as Json,
  );
  const generation = process.env.GEN === '1';
  const evalEvery = Number(process.env.EVAL_EVERY ?? 0);
  const log = (...a: unknown[]) =>
    console.log(
      `[${(performance.now() / 1000).toFixed(1)}s]`,
      ...a.map((x) => (typeof x === 'object' ? JSON.stringify(x) : x)),
    );
  log('backend', backend.source);
  if (config.phrasing) config.cpt = { ...config.cpt, phrasing: config.phrasing };
  const scenario = await buildSyntheticScenario(config.scenario);
  const tokenizer = shownTextTokenizer(
    scenario.titles.values(),
    config.budget.maxTitleTokens,
    config.phrasing,
  );
  log('scenario', {
    domainSamples: scenario.domainSamples.length,
    mixed: scenario.mixedSamples.length,
    targetTrain: scenario.targetTrain.length,
    validation: scenario.validation.length,
    test: scenario.test.length,
    vocab: tokenizer.vocabSize,
  });
  const model = new LlamaModel(
    tinyBaseWeights(
      { ...config.model, vocabSize: tokenizer.vocabSize },
      seed,
      (process.env.BASE ?? config.base ?? 'quiet') as TinyBaseProfile,
    ),
  );
  const dir = mkdtempSync(join(tmpdir(), 'cprec-tune-'));
  const base = { baseModelId: 'tiny-synthetic', baseChecksum: 'synthetic'.padEnd(64, '0') };
  const evaluate = async (label: string, cptFormat = false) => {
    const t0 = performance.now();
    const { report } = await evaluateModel({
      model,
      tokenizer,
      budget: config.budget,
      style: 'text',
      examples: scenario.test,
      ks: [1],
      generation,
      ...(cptFormat && config.phrasing ? { phrasing: config.phrasing } : {}),
    });
    const s = (performance.now() - t0) / 1000;
    log(label, {
      likelihoodHr1: report.overall.likelihood?.hr[1],
      hr1: generation ? report.overall.hr1 : undefined,
      valid: generation ? report.overall.validRatio : undefined,
      secondsPerExample: +(s / scenario.test.length).toFixed(3),
    });
    return report.overall.likelihood?.hr[1] ?? 0;
  };
  try {
    const losses: number[] = [];
    let t = performance.now();
    const cpt = await runCptRound({
      roundId: 'tune',
      model,
      ...base,
      tokenizer,
      config: { ...DEFAULT_CPT_CONFIG, budget: config.budget, seed, ...config.cpt },
      previousTrunkDir: null,
      roundDir: join(dir, 'cpt'),
      domainSamples: new ArraySampleSource(scenario.domainSamples),
      mixedSamples: new ArraySampleSource(scenario.mixedSamples),
      watermark: 0,
      onStep: async (r) => {
        losses.push(r.loss);
        if (evalEvery > 0 && r.roundStep % evalEvery === 0)
          await evaluate(`cpt step ${r.roundStep} zero-shot`, true);
        if (r.roundStep % 25 === 0 || r.roundStep === r.roundSteps) {
          const s = (performance.now() - t) / 1000;
          log(
            `cpt ${r.roundStep}/${r.roundSteps} ${r.phase} lr=${r.lr.toExponential(2)} loss(avg25)=${(losses.slice(-25).reduce((a, b) => a + b, 0) / Math.min(25, losses.length)).toFixed(3)} tokens=${r.tokens} s/step=${(s / 25).toFixed(3)}`,
          );
          t = performance.now();
        }
      },
    });
    await evaluate('cpt zero-shot');
    if (config.phrasing) await evaluate('cpt zero-shot (cpt phrasing)', true);
    if (process.env.DIAG === '1')
      diagnose(model, tokenizer, scenario.domainSamples.slice(0, 64), config, log);
    const sftConfig: SftConfig = { ...DEFAULT_SFT_CONFIG, budget: config.budget, seed, ...config.sft };
    const sft = async (label: string, initAdapterDir: string | null) => {
      const t0 = performance.now();
      const r = await fineTune({
        model,
        tokenizer,
        placeholderId: tokenizer.placeholderId,
        train: scenario.targetTrain,
        validation: scenario.validation,
        embeddings: null,
        initAdapterDir,
        ...base,
        config: sftConfig,
      });
      log(label, 'sft', {
        lr: r.learningRate,
        validationHr1: r.validationHr1,
        seconds: ((performance.now() - t0) / 1000).toFixed(1),
        lossFirst: r.curve[0]?.loss,
        lossLast: r.curve.at(-1)?.loss,
      });
      return evaluate(label);
    };
    const withCpt = await sft('cpt+sft', cpt.adapterDir);
    const alone = await sft('sft only', null);
    log('RESULT', { seed, cptThenSft: withCpt, sftOnly: alone, margin: withCpt - alone });
  } finally {
    model.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
