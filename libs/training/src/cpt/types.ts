import type { LoraConfig } from '@cprec/lm';
import type { Phrasing, TokenBudget } from '@cprec/corpus';
import type { DataVariant } from '../schedule';

/** Continual pre-training settings (defaults from the paper where it gives them). */
export interface CptConfig {
  /** Samples per optimizer step. */
  batchSize: number;
  /**
   * Samples per forward/backward pass (default: the whole batch); the gradients of the micro-batches
   * of a step are averaged before the update. Bounds memory for real LLMs at long prompts.
   */
  microBatchSize?: number;
  /** Token budget of one encoded sample (≤ the model's context). */
  budget: TokenBudget;
  /** LoRA on the base model (rank, alpha, dropout, targets). */
  lora: Partial<LoraConfig>;
  /** η_l: floor learning rate (paper 5e-6). */
  etaLow: number;
  /** η_h: peak learning rate (paper 5e-4). */
  etaHigh: number;
  /** W as a fraction of all of the first round's steps, stable + annealing (paper 5%); at least one step. */
  warmupFraction: number;
  /**
   * `wsa` (default): warm-up, stable at η_h, cosine annealing to η_l. `cosine`: the ablation's plain
   * schedule — the same warm-up, then one cosine from η_h to η_l over all remaining steps (the data
   * plan of `variant` is unchanged).
   */
  scheduleKind?: 'wsa' | 'cosine';
  /** Annealing steps as a fraction of this round's stable steps (MiniCPM-style WSD: ~10%). */
  annealFraction: number;
  /** Bounds on the annealing length in steps. */
  minAnnealSteps: number;
  maxAnnealSteps: number;
  /** Upper bound on stable steps per round (absorbing a very large backlog in slices); Infinity for none. */
  maxStableSteps: number;
  /** Write a progress checkpoint every N optimizer steps (and always at phase boundaries). */
  checkpointEvery: number;
  /** Which data each phase uses (paper ablation); `cprec` = DS+Mix(A). */
  variant: DataVariant;
  weightDecay: number;
  maxGradNorm: number;
  /** Seed for LoRA initialisation and dropout. */
  seed: number;
  /**
   * CPT template; omitted = the paper's unified template (`CPT_PHRASING`). Only tiny synthetic
   * experiments set a shorter one (step time grows with prompt length).
   */
  phrasing?: Phrasing;
}

export const DEFAULT_CPT_CONFIG: CptConfig = {
  batchSize: 8,
  budget: { maxTokens: 256, maxTitleTokens: 12 },
  lora: { rank: 8, alpha: 16, dropout: 0.05 },
  etaLow: 5e-6,
  etaHigh: 5e-4,
  warmupFraction: 0.05,
  annealFraction: 0.1,
  minAnnealSteps: 1,
  maxAnnealSteps: 10_000,
  maxStableSteps: Number.POSITIVE_INFINITY,
  checkpointEvery: 50,
  variant: 'cprec',
  weightDecay: 0,
  maxGradNorm: 1,
  seed: 1,
};

/** One optimizer step as reported to observers (round state machine, curves on the dashboard). */
export interface StepReport {
  roundId: string;
  phase: 'warmup' | 'stable' | 'annealing';
  /** Global WSA step t (across rounds). */
  step: number;
  /** Steps done / planned in this round. */
  roundStep: number;
  roundSteps: number;
  loss: number;
  lr: number;
  tokens: number;
}
