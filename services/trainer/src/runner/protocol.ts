import type { ClickHouseSettings } from '@cprec/clickhouse';
import type { BackendPreference, LlamaConfig } from '@cprec/lm';
import type { CptConfig } from '@cprec/training';

/**
 * What a round runner process is asked to do. Everything is plain JSON: the actor writes it to
 * `<roundDir>/job.json` before the first spawn, so a re-spawned runner (after a crash, or after
 * the actor itself restarted) trains on exactly the same base, data slice and settings and can
 * continue from the round's checkpoint.
 */
export interface RoundJob {
  roundId: string;
  /** Progress checkpoints, the new trunk and the annealed adapter are written here. */
  roundDir: string;
  /** Local, verified path of the previous round's trunk; null on the first round (warm-up). */
  previousTrunkDir: string | null;
  /** The trunk's watermark: domain samples ingested after it are new for this round. */
  sinceWatermark: number;
  /** Data up to this watermark is absorbed by the new trunk. */
  watermark: number;
  model: ModelSpec;
  backend: BackendPreference;
  /** CPT settings; `maxStableSteps` null means unbounded (JSON has no Infinity). */
  cpt: Omit<CptConfig, 'maxStableSteps'> & { maxStableSteps: number | null };
  data: DataSpec;
  /** Domains to fine-tune an SFT adapter for after the CPT adapter. */
  targetDomains: string[];
  /** LLaRA-style fine-tuning settings; absent in jobs planned before fine-tuning was wired. */
  sft?: SftJobSpec;
  /** Pause after each step (ms): a throttle for demos and for tests that interrupt a phase. */
  stepDelayMs?: number;
}

export type ModelSpec =
  | {
      /** A base model by path: a `.gguf` file, a llama2.c `.bin`, or a Hugging Face folder. */
      kind: 'checkpoint';
      path: string;
      /** llama2.c only; absent = the `tok*.bin` beside the checkpoint. */
      tokenizer?: string;
      baseModelId: string;
      sha256: string;
    }
  | {
      /** Plans written before bases other than llama2.c were supported (read as `checkpoint`). */
      kind: 'llama2c';
      checkpoint: string;
      tokenizer: string;
      baseModelId: string;
      sha256: string;
    }
  | {
      /** A tiny random LLaMA with a word tokenizer over catalogue titles (tests, demos). */
      kind: 'tiny-random';
      /** Directory holding `tiny-model.json` (a TinyModelSpec): a verified artefact. */
      dir: string;
      baseModelId: string;
      sha256: string;
    };

/** Contents of `tiny-model.json`: enough to rebuild the same base model bit for bit. */
export interface TinyModelSpec {
  format: 'cprec-tiny-random/1';
  config: Omit<LlamaConfig, 'vocabSize'>;
  seed: number;
  /** Titles the word tokenizer is built over (its vocabulary is fixed once the base exists). */
  titles: string[];
}

export type DataSpec =
  | {
      kind: 'clickhouse';
      settings: ClickHouseSettings;
      /** Domains whose domain-specific samples the stable phase trains on (empty = all). */
      domains: string[];
      seed: number;
      replayFraction: number;
      /** Negatives per CPT prompt (candidates = target + negatives, fewer if a domain is small). */
      negatives: number;
      historyCap: number;
      mixedWindow: number;
    }
  | {
      /** Deterministic in-memory samples (runner tests without servers). */
      kind: 'synthetic';
      domainSamples: number;
      mixedSamples: number;
      seed: number;
      /** Milliseconds to sleep after each step, so tests can interrupt a phase. */
      stepDelayMs?: number;
    };

/**
 * How the runner fine-tunes each target domain (runner/llara-fine-tuning.ts). Training data is
 * the validation side of the evaluator's frozen leave-one-out split, so it is named the same way
 * (`looSplitId(domain, split.epoch, split.seed)`).
 */
export interface SftJobSpec {
  /** Id the CPT adapter is published under: recorded in each SFT bundle's lineage. */
  cptAdapterId: string;
  split: {
    epoch: string;
    seed: number;
    /** How long to wait for the sequencer to freeze a requested split. */
    timeoutMs: number;
    pollMs: number;
  };
  /** Brokers for split requests to the sequencer's mailbox (comma-separated). */
  kafkaBrokers: string;
  /** History items shown in a prompt. */
  historyCap: number;
  /** Negatives per training prompt (validation cases keep the split's own candidates). */
  negatives: number;
  /** Cap on training samples per domain (a seeded draw over the users' train sequences). */
  maxSamples: number;
  /** A domain with fewer training samples (or no validation case) is skipped with a note. */
  minSamples: number;
  maxValidationExamples: number;
  batchSize: number;
  epochs: number;
  /** Grid searched on the validation cases. */
  learningRates: number[];
  sasrec: { hiddenDim: number; maxLen: number; epochs: number; timeBudgetMs: number };
  seed: number;
}

export type RunnerPhase = 'warmup' | 'stable' | 'annealing' | 'fine_tuning';

export interface RunnerStep {
  phase: RunnerPhase;
  /** Global WSA step (continues across rounds). */
  step: number;
  roundStep: number;
  roundSteps: number;
  loss: number;
  lr: number;
  tokens: number;
}

export interface RunnerAdapter {
  kind: 'cpt' | 'sft';
  dir: string;
  targetDomains: string[];
}

export interface RunnerResult {
  trunkDir: string;
  trunkGlobalStep: number;
  adapters: RunnerAdapter[];
  stableSteps: number;
  annealSteps: number;
  skippedSamples: number;
  resumedFrom: { phase: string; dataPosition: number } | null;
  /** Why fine-tuning produced no adapter (e.g. not available), or null. */
  fineTuningNote: string | null;
}

/**
 * Parent → runner. With `leaseUntil` the runner is fenced: it trains only while the parent's
 * lease is valid (renewed by `lease` messages) and exits at the first step boundary after it
 * expires, before that step's checkpoint — so the runner of a paused or partitioned trainer stops
 * before a standby can take the round over (runner/fence.ts).
 */
export type ToRunner =
  | { type: 'start'; job: RoundJob; leaseUntil?: number }
  | { type: 'stop' }
  | { type: 'lease'; validUntil: number };

/** Exit code of a runner that stopped because its parent's lease expired. */
export const FENCED_EXIT_CODE = 4;

/** Runner → parent. */
export type FromRunner =
  | { type: 'ready'; pid: number }
  | { type: 'started'; resumedFrom: { phase: string; dataPosition: number } | null }
  | { type: 'phase'; phase: RunnerPhase; steps: number }
  | { type: 'step'; step: RunnerStep }
  | { type: 'result'; result: RunnerResult }
  | {
      type: 'error';
      message: string;
      stopped: boolean;
      /**
       * The round failed because a dependency (ClickHouse) could not be reached: the parent waits
       * for it and re-spawns the runner, which resumes from the round's checkpoint.
       */
      unavailable?: boolean;
    };
