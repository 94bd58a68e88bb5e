import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LlamaModel, type LlamaConfig } from '@cprec/lm';
import { tinyBaseWeights } from './tiny-base';
import type { TokenBudget } from '@cprec/corpus';
import { ArraySampleSource } from '../data/sample-source';
import { DEFAULT_CPT_CONFIG, runCptRound, type CptConfig } from '../cpt';
import { DEFAULT_SFT_CONFIG, fineTune, type SftConfig } from '../sft/fine-tune';
import { evaluateModel } from '../eval/evaluate';
import { WordTokenizer } from '../testing/word-tokenizer';
import { buildSyntheticScenario, type SyntheticScenarioConfig } from './synthetic-setup';

export interface CptVsSftConfig {
  scenario: SyntheticScenarioConfig;
  model: Omit<LlamaConfig, 'vocabSize'>;
  budget: TokenBudget;
  cpt: Partial<CptConfig>;
  sft: Partial<SftConfig>;
}

export interface CptVsSftResult {
  seed: number;
  /** HR@1 (greedy generation, correct/total) on the target test split. */
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
  const tokenizer = WordTokenizer.forTitles(scenario.titles.values());
  const model = new LlamaModel(tinyBaseWeights({ ...config.model, vocabSize: tokenizer.vocabSize }, config.scenario.seed));
  const dir = mkdtempSync(join(tmpdir(), 'cprec-cpt-vs-sft-'));
  const base = { baseModelId: 'tiny-synthetic', baseChecksum: 'synthetic'.padEnd(64, '0') };
  const sftConfig: SftConfig = { ...DEFAULT_SFT_CONFIG, budget: config.budget, seed: config.scenario.seed, ...config.sft };
  try {
    let cptSteps = 0;
    const cpt = await runCptRound({
      roundId: 'synthetic-r1',
      model,
      ...base,
      tokenizer,
      config: { ...DEFAULT_CPT_CONFIG, budget: config.budget, seed: config.scenario.seed, ...config.cpt },
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

/** The configuration the unit test uses (small enough for the cpu backend). */
export function quickSyntheticComparison(seed: number): CptVsSftConfig {
  const budget = { maxTokens: 160, maxTitleTokens: 2 };
  return {
    scenario: {
      seed,
      users: 500,
      // Titles are "<Adjective> <Noun> <Product>": two tokens carry the topic in every domain.
      sourceDomains: ['beauty', 'toys', 'sports'],
      targetDomain: 'games',
      generator: { crossDomainStrength: 1, topics: 4, itemsPerDomain: 48, eventsPerUser: 14, domainActivity: 1, zipfExponent: 0.5 },
      historyCap: 4,
      negatives: 9,
      maxDomainSamples: 160,
      maxMixedSamples: 96,
      targetTrainSamples: 24,
      validationExamples: 24,
      testExamples: 80,
    },
    model: { dim: 32, hiddenDim: 64, nLayers: 2, nHeads: 4, nKvHeads: 2, maxSeqLen: 160, normEps: 1e-5, ropeTheta: 10000, tiedClassifier: true },
    budget,
    cpt: { batchSize: 8, lora: { rank: 16, alpha: 32, dropout: 0 }, etaLow: 1e-4, etaHigh: 5e-3, warmupFraction: 0.05, annealFraction: 0.25, checkpointEvery: 1000 },
    sft: { batchSize: 8, epochs: 3, learningRates: [2e-3], lora: { rank: 16, alpha: 32, dropout: 0 }, maxValidationExamples: 24 },
  };
}
