import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LlamaModel, type LlamaConfig } from '@cprec/lm';
import { tinyBaseWeights, type TinyBaseProfile } from './tiny-base';
import { ANSWER_SEPARATOR, type Phrasing, type TokenBudget } from '@cprec/corpus';
import { ArraySampleSource } from '../data/sample-source';
import { DEFAULT_CPT_CONFIG, runCptRound, type CptConfig } from '../cpt';
import { DEFAULT_SFT_CONFIG, fineTune, type SftConfig } from '../sft/fine-tune';
import { evaluateModel } from '../eval/evaluate';
import { templateVocabulary, WordTokenizer } from '../testing/word-tokenizer';
import { buildSyntheticScenario, type SyntheticScenarioConfig } from './synthetic-setup';

export interface CptVsSftConfig {
  scenario: SyntheticScenarioConfig;
  model: Omit<LlamaConfig, 'vocabSize'>;
  budget: TokenBudget;
  cpt: Partial<CptConfig>;
  sft: Partial<SftConfig>;
  /**
   * CPT template; omitted = the paper's unified template. Fine-tuning always uses LLaRA's
   * phrasings and evaluation the first of them (= the unified template), for both arms.
   */
  phrasing?: Phrasing;
  /** How the random base is scaled (`tinyBaseWeights`); default `unit`. */
  base?: TinyBaseProfile;
}

export interface CptVsSftResult {
  seed: number;
  /** hr1: greedy-generation HR@1 (correct/total); likelihoodHr1: exact candidate-likelihood HR@1. */
  sftOnly: { hr1: number; validRatio: number; likelihoodHr1: number };
  cptThenSft: { hr1: number; validRatio: number; likelihoodHr1: number };
  cptSteps: number;
  testExamples: number;
}

/**
 * One seed of the synthetic CPRec comparison: a tiny LM (random base, word tokenizer) is
 * continually pre-trained on the source domains (domain-specific samples, then annealed on mixed
 * ones), then fine-tuned on a few target samples; the same base fine-tuned from fresh LoRA is the
 * LLaRA-style baseline. Both are evaluated with text prompts on the same frozen target test split.
 */
export async function runCptVsSft(config: CptVsSftConfig): Promise<CptVsSftResult> {
  const scenario = await buildSyntheticScenario(config.scenario);
  const tokenizer = shownTextTokenizer(
    scenario.titles.values(),
    config.budget.maxTitleTokens,
    config.phrasing,
  );
  const model = new LlamaModel(
    tinyBaseWeights(
      { ...config.model, vocabSize: tokenizer.vocabSize },
      config.scenario.seed,
      config.base ?? 'unit',
    ),
  );
  const dir = mkdtempSync(join(tmpdir(), 'cprec-cpt-vs-sft-'));
  const base = { baseModelId: 'tiny-synthetic', baseChecksum: 'synthetic'.padEnd(64, '0') };
  const sftConfig: SftConfig = {
    ...DEFAULT_SFT_CONFIG,
    budget: config.budget,
    seed: config.scenario.seed,
    ...config.sft,
  };
  try {
    let cptSteps = 0;
    const cpt = await runCptRound({
      roundId: 'synthetic-r1',
      model,
      ...base,
      tokenizer,
      config: {
        ...DEFAULT_CPT_CONFIG,
        budget: config.budget,
        seed: config.scenario.seed,
        ...config.cpt,
        ...(config.phrasing ? { phrasing: config.phrasing } : {}),
      },
      previousTrunkDir: null,
      roundDir: join(dir, 'cpt'),
      domainSamples: new ArraySampleSource(scenario.domainSamples),
      mixedSamples: new ArraySampleSource(scenario.mixedSamples),
      watermark: 0,
      onStep: () => void cptSteps++,
    });
    const evaluate = async () => {
      const { report } = await evaluateModel({
        model,
        tokenizer,
        budget: config.budget,
        style: 'text',
        examples: scenario.test,
        ks: [1],
      });
      return {
        hr1: report.overall.hr1,
        validRatio: report.overall.validRatio,
        likelihoodHr1: report.overall.likelihood?.hr[1] ?? 0,
      };
    };
    const sft = (initAdapterDir: string | null) =>
      fineTune({
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
    await sft(cpt.adapterDir);
    const cptThenSft = await evaluate();
    await sft(null);
    const sftOnly = await evaluate();
    return { seed: config.scenario.seed, sftOnly, cptThenSft, cptSteps, testExamples: scenario.test.length };
  } finally {
    model.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The configuration the unit test uses (tuned with tune.ts): one-token titles (the adjective,
 * which carries the topic), 4 candidates, 8 history items, 8 topics so a topic says a lot about
 * the next title, a one-layer `quiet` base with one direction per token (vocabulary ≤ dim; a second
 * frozen random layer slows learning through LoRA several-fold), ≈ 1,900 small CPT steps with
 * enough mixed samples that annealing does not cycle a few of them, and 400 test examples so
 * 3 standard errors stay near 0.1.
 */
export function quickSyntheticComparison(seed: number): CptVsSftConfig {
  const budget = { maxTokens: 128, maxTitleTokens: 1 };
  return {
    scenario: {
      seed,
      users: 2000,
      sourceDomains: ['beauty', 'toys', 'sports'],
      targetDomain: 'games',
      generator: {
        crossDomainStrength: 1,
        topics: 8,
        itemsPerDomain: 48,
        eventsPerUser: 14,
        domainActivity: 1,
        zipfExponent: 0.5,
      },
      historyCap: 8,
      negatives: 3,
      maxDomainSamples: 4000,
      maxMixedSamples: 4000,
      targetTrainSamples: 24,
      validationExamples: 100,
      testExamples: 400,
    },
    model: {
      dim: 128,
      hiddenDim: 256,
      nLayers: 1,
      nHeads: 4,
      nKvHeads: 2,
      maxSeqLen: 128,
      normEps: 1e-5,
      ropeTheta: 10000,
      tiedClassifier: true,
    },
    budget,
    // CPT in the paper's unified template (= the evaluation phrasing): a skill learned in a
    // shorter template did not carry over to it (tune.ts's notes).
    base: 'quiet',
    cpt: {
      batchSize: 8,
      lora: { rank: 16, alpha: 32, dropout: 0 },
      etaLow: 1e-4,
      etaHigh: 2e-3,
      warmupFraction: 0.05,
      annealFraction: 0.2,
      checkpointEvery: 1000,
    },
    // Same grid for both arms, chosen on the validation split.
    sft: {
      batchSize: 8,
      epochs: 3,
      learningRates: [5e-4, 2e-3],
      lora: { rank: 16, alpha: 32, dropout: 0 },
      maxValidationExamples: 100,
    },
  };
}

/**
 * A word tokenizer over exactly what prompts can show: the template words (the unified CPT
 * template, LLaRA's fine-tuning phrasings and `phrasing` if given) and every title cut to
 * `maxTitleTokens` words. Words a prompt never shows (the rest of long titles) would only add
 * rows the frozen tied classifier has to keep down; a vocabulary no larger than the model's dim
 * lets the tiny base give every token its own direction (see `tinyBaseWeights`).
 */
export function shownTextTokenizer(
  titles: Iterable<string>,
  maxTitleTokens: number,
  phrasing?: Phrasing,
): WordTokenizer {
  // Titles as prompts show them: with their leading space (`encodePiece`), cut to the cap.
  const all = [...titles].map((t) => ANSWER_SEPARATOR + t);
  const full = new WordTokenizer(all);
  const shown = all.map((title) => full.decode(full.encode(title).slice(0, maxTitleTokens)));
  return new WordTokenizer([...templateVocabulary(phrasing ? [phrasing] : []), ...shown]);
}
