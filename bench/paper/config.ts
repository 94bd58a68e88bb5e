import { resolve } from 'node:path';
import { validateProtocol, type PromptProtocol } from '@cprec/corpus';
import type { Gru4RecConfig, SasRecConfig } from '@cprec/sasrec';

export const REPO_ROOT = resolve(__dirname, '../..');
export const SHARED = resolve(REPO_ROOT, '../shared');

export type TargetKey = 'game' | 'steam' | 'food';
/** Target domains: never in CPT. Folder names under the data directory. */
export const TARGET_FOLDERS: Record<TargetKey, string> = {
  game: 'amazon2018-game',
  steam: 'steam_100000',
  food: 'food',
};

/**
 * CPT variants (paper Fig. 4): `cprec` = WSA, stable on domain-specific, annealing on mixed;
 * `ds-only` = domain-specific data in both phases; `mix-stable` = the same mixed samples shuffled
 * into the stable phase, annealing on the domain-specific samples they displaced; `cosine` = the
 * `cprec` data under a plain warm-up + cosine schedule. Every variant trains the same number of
 * steps on the same number of samples.
 */
export type CptVariant = 'cprec' | 'ds-only' | 'mix-stable' | 'cosine';
export const ABLATION_VARIANTS: readonly CptVariant[] = ['ds-only', 'mix-stable', 'cosine'];

/**
 * Fine-tuning samples prepared per target (one per user, in a fixed random order); a row uses the
 * first `sft.samples` (few-shot: fewer). Fixed so that changing the SFT size does not change the
 * data stage (and with it every recommender already trained).
 */
export const SFT_POOL = 4096;

export interface LoraSettings {
  rank: number;
  alpha: number;
  dropout: number;
}

export interface PaperConfig {
  /** Run name: state under `.cprec/paper/<name>/`, results under `bench/results/paper/` (full) or `.cprec/paper/<name>/results/`. */
  name: string;
  /** Where finished results go; default bench/results/paper for the full run. */
  resultsDir: string;
  /** Where the resumable state goes. */
  stateDir: string;
  dataDir: string;
  /** Base model: a .gguf file, a llama2.c .bin (tokenizer beside it) or a Hugging Face folder. */
  base: string;
  /** One prompt protocol for CPT, SFT and evaluation. */
  protocol: PromptProtocol;
  /** Seeds of the main rows (SFT and evaluation per seed; one CPT run shared by all seeds). */
  seeds: number[];
  /** Seeds of the ablations and the few-shot points (the first cut when time is short: to one seed). */
  ablationSeeds: number[];
  targets: TargetKey[];
  ablationTargets: TargetKey[];
  fewShotTargets: TargetKey[];
  /** Data seed: which users are the fixed test subset, which samples CPT and SFT see. */
  dataSeed: number;
  /** Test users per target: a fixed subset shared by every method. */
  testUsers: number;
  /** Validation users per target for the recommenders' early stopping. */
  validationUsers: number;
  /** Domain-specific CPT sources (folders, titled Amazon 2014 domains). */
  cptDomains: string[];
  /** The linked folder and its titled domains: real cross-domain users → mixed sequences. */
  mixedSource: { folder: string; domains: string[] };
  cpt: {
    batchSize: number;
    /** Samples per forward/backward (gradients accumulated to the batch): memory of a real LLM. */
    microBatchSize: number;
    /** Stable (warm-up included) steps on domain-specific samples. */
    stableSteps: number;
    /** Annealing steps on mixed samples. */
    annealSteps: number;
    etaLow: number;
    etaHigh: number;
    warmupFraction: number;
    lora: LoraSettings;
    checkpointEvery: number;
    seed: number;
  };
  sft: {
    /** Fine-tuning samples of the main rows (one per training user). */
    samples: number;
    /**
     * Further points of the data curve besides `samples` (nested prefixes of the same samples, each
     * at most the prepared pool): fewer for the few-shot end, the whole pool for "all available".
     */
    fewShot: number[];
    epochs: number;
    batchSize: number;
    microBatchSize: number;
    learningRate: number;
    lora: LoraSettings;
    /** Hybrid prompts with SASRec embeddings and the text→hybrid curriculum (LLaRA). */
    hybrid: boolean;
    checkpointEvery: number;
  };
  recommenders: {
    seeds: number[];
    sasrec: Partial<SasRecConfig>;
    gru4rec: Partial<Gru4RecConfig>;
    maxEpochs: number;
    patience: number;
    /** Wall-clock cap per model fit (the best epoch so far is kept). */
    timeBudgetMinutes: number;
  };
  eval: {
    /** Candidate rows per scoring forward. */
    scoreBatchSize: number;
    /** Test cases evaluated together (answers decoded in lockstep: cheaper per case). */
    batchCases: number;
  };
}

function defaults(name: string): Pick<PaperConfig, 'name' | 'resultsDir' | 'stateDir' | 'dataDir'> {
  return {
    name,
    resultsDir: resolve(REPO_ROOT, 'bench/results/paper'),
    stateDir: resolve(REPO_ROOT, '.cprec/paper', name),
    dataDir: resolve(SHARED, 'data'),
  };
}

/**
 * The full run (see docs/results.md for the cost model behind these numbers): SmolLM2-135M,
 * 20 candidates, 10 history items, titles up to 24 tokens, 3 seeds, 500 test users per target.
 */
export function fullConfig(): PaperConfig {
  return {
    ...defaults('full'),
    base: resolve(SHARED, 'models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf'),
    protocol: { candidates: 20, historyLength: 10, budget: { maxTokens: 1024, maxTitleTokens: 24 } },
    seeds: [1, 2, 3],
    ablationSeeds: [1],
    targets: ['game', 'steam', 'food'],
    ablationTargets: ['game'],
    fewShotTargets: ['game'],
    dataSeed: 2025,
    testUsers: 500,
    validationUsers: 3000,
    cptDomains: [
      'amazon2014-beauty',
      'amazon2014-book_1000000',
      'amazon2014-clothing',
      'amazon2014-electronic_1000000',
      'amazon2014-health',
      'amazon2014-toy',
    ],
    mixedSource: { folder: 'amazon2014-linked', domains: ['beauty', 'clothing', 'toy'] },
    cpt: {
      batchSize: 8,
      // SmolLM2 at ~500 tokens needs ~2.5 GB per sample in training (a batch of 8 took 20 GB).
      microBatchSize: 1,
      // 300 steps × 8 ≈ 2,400 samples ≈ 1.1M tokens (≈ 4.4 CPU-hours at the measured cost); the
      // report shows whether the loss curve has flattened by then.
      stableSteps: 270,
      annealSteps: 30,
      etaLow: 5e-6,
      etaHigh: 5e-4,
      warmupFraction: 0.05,
      lora: { rank: 8, alpha: 16, dropout: 0.05 },
      checkpointEvery: 10,
      seed: 1,
    },
    sft: {
      samples: 1024,
      // 4,096 = the whole prepared pool, the "all available samples": whether more
      // fine-tuning data closes the gap the 1,024-sample rows leave (LLaRA Games 0.114 vs SASRec 0.500).
      fewShot: [128, 512, 4096],
      epochs: 1,
      batchSize: 8,
      microBatchSize: 1,
      // LLaRA's published runs (train_steam.sh, train_lastfm.sh) peak at 7e-4 with LoRA r=8; the
      // earlier 3e-4 was our own guess, and the 256-sample pilot at 3e-4 learnt the answer format
      // but no preference. Not tuned on the test users: no LM row had run at this scale.
      learningRate: 7e-4,
      lora: { rank: 8, alpha: 16, dropout: 0.05 },
      hybrid: true,
      checkpointEvery: 8,
    },
    recommenders: {
      seeds: [1, 2, 3],
      // maxLen = the protocol's 10 history items: every method sees the same history.
      sasrec: {
        maxLen: 10,
        hiddenDim: 64,
        numBlocks: 2,
        numHeads: 1,
        dropout: 0.5,
        learningRate: 1e-3,
        batchSize: 128,
      },
      gru4rec: {
        maxLen: 10,
        embeddingDim: 64,
        hiddenDim: 64,
        dropout: 0.3,
        learningRate: 1e-3,
        batchSize: 128,
      },
      maxEpochs: 100,
      patience: 5,
      // A safety net, not the stopping rule (maxEpochs and patience are): under a load of 7–17 a
      // Games SASRec epoch took 1–4 minutes and the former 60-minute cap stopped seed 1 at epoch 37
      // (recorded as stoppedBy: 'time-budget'). Not a stage input: raising it keeps finished stages.
      timeBudgetMinutes: 240,
    },
    eval: { scoreBatchSize: 20, batchCases: 8 },
  };
}

/**
 * Minutes on stories260K (context 512): the whole pipeline — every stage kind, one target — on a
 * handful of users, to show it runs end to end and resumes; its numbers mean nothing.
 */
export function smokeConfig(): PaperConfig {
  const full = fullConfig();
  return {
    ...full,
    ...defaults('smoke'),
    resultsDir: resolve(REPO_ROOT, '.cprec/paper/smoke/results'),
    base: resolve(SHARED, 'models/stories260K/stories260K.bin'),
    protocol: { candidates: 20, historyLength: 10, budget: { maxTokens: 512, maxTitleTokens: 6 } },
    seeds: [1, 2],
    ablationSeeds: [1],
    targets: ['steam'],
    ablationTargets: ['steam'],
    fewShotTargets: ['steam'],
    testUsers: 12,
    validationUsers: 200,
    cptDomains: ['amazon2014-beauty', 'amazon2014-toy'],
    cpt: { ...full.cpt, batchSize: 2, microBatchSize: 2, stableSteps: 6, annealSteps: 2, checkpointEvery: 2 },
    sft: {
      ...full.sft,
      samples: 12,
      fewShot: [4],
      batchSize: 2,
      microBatchSize: 2,
      learningRate: 1e-3,
      checkpointEvery: 2,
    },
    recommenders: {
      ...full.recommenders,
      seeds: [1],
      sasrec: { ...full.recommenders.sasrec, hiddenDim: 16, numBlocks: 1 },
      gru4rec: { ...full.recommenders.gru4rec, embeddingDim: 16, hiddenDim: 16 },
      maxEpochs: 2,
      patience: 1,
      timeBudgetMinutes: 2,
    },
  };
}

export const PRESETS: Record<string, () => PaperConfig> = { full: fullConfig, smoke: smokeConfig };

/**
 * Sets `path` (dot-separated) in a copy of `config` to a JSON value (or the raw string): the
 * experiments' `--set key.path=JSON`. Unknown keys are refused, so a typo never runs silently.
 */
export function withOverride<T extends object>(config: T, path: string, raw: string): T {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    value = raw;
  }
  const copy = JSON.parse(JSON.stringify(config)) as Record<string, unknown>;
  const keys = path.split('.');
  let at: Record<string, unknown> = copy;
  for (const k of keys.slice(0, -1)) {
    if (typeof at[k] !== 'object' || at[k] === null) throw new Error(`--set ${path}: ${k} is not a section`);
    at = at[k] as Record<string, unknown>;
  }
  const last = keys[keys.length - 1]!;
  if (!(last in at)) throw new Error(`--set ${path}: unknown setting ${last}`);
  at[last] = value;
  return copy as unknown as T;
}

export function validateConfig(c: PaperConfig): PaperConfig {
  validateProtocol(c.protocol);
  const positive = (name: string, v: number): void => {
    if (!Number.isInteger(v) || v < 1) throw new Error(`${name} must be a positive integer, got ${v}`);
  };
  positive('testUsers', c.testUsers);
  positive('cpt.batchSize', c.cpt.batchSize);
  positive('cpt.stableSteps', c.cpt.stableSteps);
  positive('cpt.annealSteps', c.cpt.annealSteps);
  positive('sft.samples', c.sft.samples);
  if (c.seeds.length === 0) throw new Error('at least one seed is needed');
  if (c.cpt.annealSteps > c.cpt.stableSteps)
    throw new Error(
      'cpt.annealSteps must not exceed cpt.stableSteps (mix-stable moves them into the stable phase)',
    );
  if (c.sft.samples > SFT_POOL)
    throw new Error(`sft.samples must be at most ${SFT_POOL} (the prepared pool)`);
  for (const n of c.sft.fewShot) {
    positive('sft.fewShot', n);
    if (n === c.sft.samples)
      throw new Error(`few-shot size ${n} is sft.samples, the main rows' point of the curve already`);
    if (n > SFT_POOL) throw new Error(`few-shot size ${n} must be at most ${SFT_POOL} (the prepared pool)`);
  }
  for (const t of [...c.ablationTargets, ...c.fewShotTargets])
    if (!c.targets.includes(t)) throw new Error(`${t} is an ablation/few-shot target but not a target`);
  return c;
}

/**
 * The settings that decide results: a resumed run must use the same ones (a stage's output from
 * another configuration would silently mix two experiments).
 */
export function resultDefiningConfig(c: PaperConfig): unknown {
  const { name: _n, resultsDir: _r, stateDir: _s, dataDir: _d, ...rest } = c;
  void _n;
  void _r;
  void _s;
  void _d;
  return rest;
}
