import { resolve } from 'node:path';
import { validateProtocol, type PromptProtocol } from '@cprec/corpus';
import type { SasRecConfig } from '@cprec/sasrec';

export const REPO_ROOT = resolve(__dirname, '../..');
export const SHARED = resolve(REPO_ROOT, '../shared');

export interface LoraSettings {
  rank: number;
  alpha: number;
  dropout: number;
}

/**
 * The continual experiment (issue 17): the stream of users linked across domains cut into
 * consecutive event-time windows; after each window four arms are compared on the next window's
 * users, every arm on the same frozen cases (see docs/continual.md).
 */
export interface ContinualConfig {
  /** Run name: state under `.cprec/continual/<name>/`. */
  name: string;
  stateDir: string;
  /** Finished results: bench/results/continual for the full run, the state folder otherwise. */
  resultsDir: string;
  dataDir: string;
  /** The linked folder and its titled domains (the stream), as `npm start` streams it. */
  source: { folder: string; domains: string[] };
  /** Users active in at least this many of those domains (the cross-domain users). */
  minDomains: number;
  /** At most this many users (a deterministic sample; null = all). */
  maxUsers: number | null;
  /** Domains fine-tuned and evaluated (a subset of the source domains). */
  targets: string[];
  base: string;
  protocol: PromptProtocol;
  /**
   * Windows: window 0 is everything before `startDate` (the platform's history, what the first
   * round trains on); windows 1..`windows` follow, `windowDays` long each. Round b (b = 0 ..
   * windows − 1) trains on windows ≤ b and is evaluated on window b + 1.
   */
  startDate: string;
  windowDays: number;
  windows: number;
  dataSeed: number;
  /** Evaluation users per window and target domain (a fixed random subset, the same for every arm). */
  casesPerDomain: number;
  cpt: {
    batchSize: number;
    microBatchSize: number;
    /** Domain-specific samples drawn from window 0 (the history) for the first round. */
    initialSamples: number;
    /** Domain-specific samples drawn from each later window: what a round's stable phase absorbs. */
    samplesPerWindow: number;
    /** Older samples replayed in a continual round's stable phase, as a fraction of the window's (services: TRAINER_REPLAY_FRACTION). */
    replayFraction: number;
    /** Annealing steps of every round (mixed samples drawn from the windows so far). */
    annealSteps: number;
    etaLow: number;
    etaHigh: number;
    warmupFraction: number;
    lora: LoraSettings;
    checkpointEvery: number;
    seed: number;
  };
  sft: {
    /** Fine-tuning samples per target domain and round, drawn from the windows so far. */
    samples: number;
    epochs: number;
    batchSize: number;
    microBatchSize: number;
    learningRate: number;
    lora: LoraSettings;
    /** Hybrid prompts with the round's SASRec item table and the text → hybrid curriculum (as the services). */
    hybrid: boolean;
    checkpointEvery: number;
  };
  sasrec: Partial<SasRecConfig> & { epochs: number; timeBudgetMinutes: number };
  eval: {
    /** Also decode a greedy answer per case (generation HR@1 and Valid Ratio beside the ranking HR@1). */
    generation: boolean;
    scoreBatchSize: number;
    batchCases: number;
  };
}

function paths(
  name: string,
  full: boolean,
): Pick<ContinualConfig, 'name' | 'stateDir' | 'resultsDir' | 'dataDir'> {
  const stateDir = resolve(REPO_ROOT, '.cprec/continual', name);
  return {
    name,
    stateDir,
    resultsDir: full ? resolve(REPO_ROOT, 'bench/results/continual') : resolve(stateDir, 'results'),
    dataDir: resolve(SHARED, 'data'),
  };
}

/**
 * The full run: SmolLM2-135M on Amazon 2014 users active in 2+ of Beauty, Clothing and Toys;
 * history up to 2013-01-01, then six quarters (2013-01 → 2014-07), 100 evaluation users per
 * domain and quarter. See `npm run experiment:continual -- plan` for what it costs.
 */
export function fullConfig(): ContinualConfig {
  return {
    ...paths('full', true),
    source: { folder: 'amazon2014-linked', domains: ['beauty', 'clothing', 'toy'] },
    minDomains: 2,
    maxUsers: null,
    targets: ['beauty', 'clothing', 'toy'],
    base: resolve(SHARED, 'models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf'),
    protocol: { candidates: 20, historyLength: 10, budget: { maxTokens: 1024, maxTitleTokens: 24 } },
    startDate: '2013-01-01',
    windowDays: 91,
    windows: 6,
    dataSeed: 2025,
    casesPerDomain: 100,
    cpt: {
      batchSize: 8,
      microBatchSize: 1,
      initialSamples: 256,
      samplesPerWindow: 128,
      replayFraction: 0.03,
      annealSteps: 8,
      etaLow: 5e-6,
      etaHigh: 5e-4,
      warmupFraction: 0.05,
      lora: { rank: 8, alpha: 16, dropout: 0.05 },
      checkpointEvery: 8,
      seed: 1,
    },
    sft: {
      samples: 128,
      epochs: 1,
      batchSize: 8,
      microBatchSize: 1,
      learningRate: 3e-4,
      lora: { rank: 8, alpha: 16, dropout: 0.05 },
      hybrid: true,
      checkpointEvery: 8,
    },
    sasrec: {
      maxLen: 10,
      hiddenDim: 64,
      numBlocks: 2,
      numHeads: 1,
      dropout: 0.5,
      learningRate: 1e-3,
      batchSize: 128,
      epochs: 30,
      timeBudgetMinutes: 10,
    },
    eval: { generation: false, scoreBatchSize: 20, batchCases: 8 },
  };
}

/**
 * Minutes on stories260K: every stage kind on a few hundred users and three short windows — it
 * shows the machinery runs and resumes; its numbers mean nothing.
 */
export function smokeConfig(): ContinualConfig {
  const full = fullConfig();
  return {
    ...full,
    ...paths('smoke', false),
    maxUsers: 400,
    base: resolve(SHARED, 'models/stories260K/stories260K.bin'),
    protocol: { candidates: 20, historyLength: 10, budget: { maxTokens: 512, maxTitleTokens: 6 } },
    windowDays: 91,
    windows: 3,
    casesPerDomain: 8,
    targets: ['beauty', 'toy'],
    cpt: {
      ...full.cpt,
      batchSize: 2,
      microBatchSize: 2,
      initialSamples: 8,
      samplesPerWindow: 4,
      annealSteps: 2,
      checkpointEvery: 2,
    },
    sft: { ...full.sft, samples: 4, batchSize: 2, microBatchSize: 2, learningRate: 1e-3, checkpointEvery: 2 },
    sasrec: { ...full.sasrec, hiddenDim: 16, numBlocks: 1, epochs: 2, timeBudgetMinutes: 1 },
    eval: { ...full.eval, batchCases: 4 },
  };
}

export const PRESETS: Record<string, () => ContinualConfig> = { full: fullConfig, smoke: smokeConfig };

/** `--set key.path=JSON`, as the paper harness does it. */
export { withOverride } from '../paper/config';

export function validateConfig(c: ContinualConfig): ContinualConfig {
  validateProtocol(c.protocol);
  const positive = (name: string, v: number): void => {
    if (!Number.isInteger(v) || v < 1) throw new Error(`${name} must be a positive integer, got ${v}`);
  };
  positive('windows', c.windows);
  positive('windowDays', c.windowDays);
  positive('casesPerDomain', c.casesPerDomain);
  positive('cpt.batchSize', c.cpt.batchSize);
  positive('cpt.initialSamples', c.cpt.initialSamples);
  positive('cpt.samplesPerWindow', c.cpt.samplesPerWindow);
  positive('cpt.annealSteps', c.cpt.annealSteps);
  positive('sft.samples', c.sft.samples);
  if (!Number.isFinite(Date.parse(`${c.startDate}T00:00:00Z`)))
    throw new Error(`startDate must be a date (YYYY-MM-DD), got ${c.startDate}`);
  if (!(c.cpt.replayFraction >= 0 && c.cpt.replayFraction <= 1))
    throw new Error('cpt.replayFraction must be in [0, 1]');
  if (c.targets.length === 0) throw new Error('at least one target domain is needed');
  for (const t of c.targets)
    if (!c.source.domains.includes(t)) throw new Error(`target ${t} is not a domain of the source`);
  return c;
}

/** The settings that decide results (a resumed run must use the same ones). */
export function resultDefiningConfig(c: ContinualConfig): unknown {
  const { name: _n, resultsDir: _r, stateDir: _s, dataDir: _d, ...rest } = c;
  void _n;
  void _r;
  void _s;
  void _d;
  return rest;
}
