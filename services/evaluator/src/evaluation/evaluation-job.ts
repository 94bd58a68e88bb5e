import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  baseModelContextLength,
  defaultPromptTokens,
  randomWeights,
  readBaseModel,
  selectBackend,
  type BackendReport,
  type LlamaConfig,
} from '@cprec/lm';
import { evaluateModel, RecommenderRuntime, type BaseModel } from '@cprec/training';
import { WordTokenizer } from '@cprec/training/testing';
import { methodMetrics } from './metrics';
import {
  TINY_MODEL_FILE,
  type BaseModelSpec,
  type DomainEvaluation,
  type EvaluationJob,
  type EvaluationJobResult,
  type TinyModelFile,
} from './protocol';

/**
 * The trainer's tiny random base rebuilt bit for bit from its spec file (the same seed, config and
 * title vocabulary), so adapters trained on it load against the same weights.
 */
function tinyBase(spec: Extract<BaseModelSpec, { kind: 'tiny-random' }>): BaseModel {
  const tiny = JSON.parse(readFileSync(join(spec.dir, TINY_MODEL_FILE), 'utf8')) as TinyModelFile;
  if (tiny.format !== 'cprec-tiny-random/1') throw new Error(`${spec.dir}: not a tiny-random model spec`);
  const tokenizer = WordTokenizer.forTitles(tiny.titles);
  const weights = randomWeights({ ...tiny.config, vocabSize: tokenizer.vocabSize }, tiny.seed);
  return { weights, tokenizer, baseModelId: spec.baseModelId, baseChecksum: spec.sha256 };
}

/** The model `auto` chooses a backend for: the base's path, or the tiny random base's config. */
function backendModelOf(spec: BaseModelSpec): string | LlamaConfig {
  if (spec.kind === 'checkpoint') return spec.path;
  const tiny = JSON.parse(readFileSync(join(spec.dir, TINY_MODEL_FILE), 'utf8')) as TinyModelFile;
  return { ...tiny.config, vocabSize: WordTokenizer.forTitles(tiny.titles).vocabSize };
}

/**
 * Makes the job's backend active; for `auto`, the one measured fastest for this base model at the
 * job's prompt length when scoring (a decision holds for a model, workload and shape).
 */
export async function selectEvaluationBackend(
  job: Pick<EvaluationJob, 'model' | 'backend' | 'budget'>,
): Promise<BackendReport> {
  const model = backendModelOf(job.model);
  const seq =
    job.budget.maxTokens > 0
      ? job.budget.maxTokens
      : defaultPromptTokens(typeof model === 'string' ? baseModelContextLength(model) : model.maxSeqLen);
  return selectBackend(job.backend, { model, workload: 'infer', shape: { batch: 1, seq } });
}

export async function openRuntime(job: Pick<EvaluationJob, 'model' | 'budget'>): Promise<RecommenderRuntime> {
  const spec = job.model;
  const base: BaseModel =
    spec.kind === 'tiny-random'
      ? tinyBase(spec)
      : {
          ...readBaseModel({ model: spec.path, tokenizer: spec.tokenizer }),
          baseModelId: spec.baseModelId,
          baseChecksum: spec.sha256,
        };
  // A budget of 0 follows the base model's context, as the trainer resolved it for training.
  const maxTokens =
    job.budget.maxTokens > 0 ? job.budget.maxTokens : defaultPromptTokens(base.weights.config.maxSeqLen);
  return RecommenderRuntime.fromBase(base, { budget: { ...job.budget, maxTokens } });
}

/**
 * Runs one job in the calling process: every adapter on every domain's frozen cases, with the
 * prompt settings the adapter's bundle implies (hybrid prompts for SFT bundles with a projector).
 * The evaluation process calls this; tests may call it directly.
 */
export async function runEvaluationJob(
  job: EvaluationJob,
  onProgress: (done: number, total: number) => void = () => undefined,
): Promise<EvaluationJobResult> {
  const started = Date.now();
  await selectEvaluationBackend(job);
  const runtime = await openRuntime(job);
  const domainsOf = (a: EvaluationJob['adapters'][number]) =>
    job.domains.filter((d) => a.domains === undefined || a.domains.includes(d.domain));
  const total = job.adapters.reduce((n, a) => n + domainsOf(a).reduce((m, d) => m + d.cases.length, 0), 0);
  let done = 0;
  const evaluations: DomainEvaluation[] = [];
  try {
    for (const adapter of job.adapters) {
      const recommender = runtime.load(adapter.dir, { adapterId: adapter.adapterId });
      try {
        for (const d of domainsOf(adapter)) {
          const { report } = await evaluateModel({
            ...recommender.settings,
            model: recommender.model,
            examples: d.cases,
            likelihood: job.likelihood,
            generation: job.generation,
            onProgress: (k) => onProgress(done + k, total),
          });
          done += d.cases.length;
          evaluations.push({
            adapterId: adapter.adapterId,
            domain: d.domain,
            splitId: d.splitId,
            metrics: methodMetrics(report, d.domain, job),
            report: report.byDomain[d.domain] ?? null,
          });
        }
      } finally {
        recommender.dispose();
      }
    }
  } finally {
    // The shared base tensors (every adapter of the job was loaded on them).
    runtime.dispose();
  }
  return { jobId: job.jobId, evaluations, elapsedMs: Date.now() - started };
}
