import type { Tokenizer } from '@cprec/corpus';
import type { LlamaModel } from '@cprec/lm';
import type { RoundJob, RunnerStep } from './protocol';

export interface FineTuningInput {
  job: RoundJob;
  model: LlamaModel;
  tokenizer: Tokenizer;
  /** The round's CPT adapter: LoRA starts from it (CPRec). */
  cptAdapterDir: string;
  /** Global step the fine-tuning steps are numbered from (the step after the CPT adapter's last). */
  firstStep: number;
  onStep?: (step: RunnerStep) => void | Promise<void>;
  shouldStop?: () => boolean;
}

export interface FineTuningOutput {
  adapters: Array<{ domain: string; dir: string }>;
  /** Why some or all target domains got no adapter, or null. */
  note: string | null;
}

/**
 * The round's fine-tuning step (LLaRA-style SFT per target domain) behind a port: the round
 * runner calls it after CPT, and a round whose port produces no adapter publishes only its CPT
 * adapter. The runner uses `LlaraFineTuning` (llara-fine-tuning.ts) for jobs planned with SFT
 * settings; `noFineTuning` is for jobs without them (planned before fine-tuning was wired).
 */
export interface FineTuningPort {
  fineTune(input: FineTuningInput): Promise<FineTuningOutput>;
}

export const noFineTuning: FineTuningPort = {
  fineTune: async (input) => ({
    adapters: [],
    note: `the round's job has no fine-tuning settings; target domains ${input.job.targetDomains.join(', ')} got no SFT adapter (the CPT adapter is published)`,
  }),
};
