import type { BackendPreference, LlamaConfig } from '@cprec/lm';
import type { TokenBudget } from '@cprec/corpus';
import type { DomainReport } from '@cprec/metrics';
import type { EvaluationCase } from '@cprec/training';

/**
 * One evaluation job, plain JSON: the parent (the actor) prepares everything that needs
 * ClickHouse or the artefact store — verified local paths, frozen examples with titles — and a
 * forked process does the synchronous tfjs work and answers with the metrics.
 */
export interface EvaluationJob {
  jobId: string;
  model: BaseModelSpec;
  backend: BackendPreference;
  budget: TokenBudget;
  /**
   * Adapters to evaluate (verified local directories), each on the listed domains of `domains`
   * (all of them when `domains` is omitted).
   */
  adapters: Array<{ adapterId: string; dir: string; domains?: string[] }>;
  domains: Array<{ domain: string; splitId: string; cases: EvaluationCase[] }>;
  /** Rank candidates by exact likelihood (fast, always valid). */
  likelihood: boolean;
  /** Greedy generation matched to titles (Valid Ratio, LLaRA HR@1; slow). */
  generation: boolean;
}

/** The base model the adapters were trained on (as the trainer's runner ModelSpec). */
export type BaseModelSpec =
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
      /** The trainer's tiny random LLaMA: a verified artefact directory holding `tiny-model.json`. */
      kind: 'tiny-random';
      dir: string;
      baseModelId: string;
      sha256: string;
    };

/** Contents of the trainer's `tiny-model.json` (format `cprec-tiny-random/1`). */
export interface TinyModelFile {
  format: 'cprec-tiny-random/1';
  config: Omit<LlamaConfig, 'vocabSize'>;
  seed: number;
  titles: string[];
}
export const TINY_MODEL_FILE = 'tiny-model.json';

export type EvaluationMethod = 'likelihood' | 'generation';

/** Headline metrics of one method on one domain. */
export interface MethodMetrics {
  method: EvaluationMethod;
  samples: number;
  /** correct / total */
  hr1: number;
  /** correct / valid (LLaRA); equals hr1 for likelihood ranking (every ranking is valid). */
  hr1Valid: number;
  /** Share of answers naming a candidate; 1 for likelihood ranking. */
  validRatio: number;
  hr3: number;
  hr5: number;
  ndcg3: number;
  ndcg5: number;
}

export interface DomainEvaluation {
  adapterId: string;
  domain: string;
  splitId: string;
  metrics: MethodMetrics[];
  /** Per-bucket details (kept as the evaluations row's report). */
  report: DomainReport | null;
}

export interface EvaluationJobResult {
  jobId: string;
  evaluations: DomainEvaluation[];
  elapsedMs: number;
}

/** Parent → evaluation process. */
export type ToEvaluationProcess = { type: 'start'; job: EvaluationJob };

/** Evaluation process → parent. */
export type FromEvaluationProcess =
  | { type: 'ready'; pid: number }
  | { type: 'progress'; done: number; total: number }
  | { type: 'result'; result: EvaluationJobResult }
  | { type: 'error'; message: string };
