import type { LlamaModel } from '@cprec/lm';
import {
  encodeSample,
  LLARA_PHRASINGS,
  type EncodedSample,
  type Phrasing,
  type PromptSample,
  type PromptStyle,
  type SampleItems,
  type TokenBudget,
  type Tokenizer,
} from '@cprec/corpus';
import {
  buildReport,
  DEFAULT_KS,
  generateAndRemove,
  rankByScores,
  type EvaluationReport,
  type ExampleOutcome,
} from '@cprec/metrics';
import { disposeInjection, injectionFor, type HybridParts } from '../sft/hybrid';
import type { EvaluationCase } from './cases';
import { greedyDecode, scoreAndGenerate, scoreAndGenerateBatch, scoreContinuations } from './decoding';

/** Everything that decides how a prompt is written and encoded, shared by SFT and evaluation. */
export interface PromptSettings {
  readonly tokenizer: Tokenizer;
  readonly budget: TokenBudget;
  /** text: titles only; hybrid: each title followed by a projected item embedding (needs `hybrid`). */
  readonly style: PromptStyle;
  /** Token id put where an embedding is injected (any valid id: its embedding is replaced). */
  readonly placeholderId?: number;
  /** Frozen item table + projector, for hybrid prompts. */
  readonly hybrid?: HybridParts | null;
  /** Evaluation phrasing; default the first LLaRA phrasing (= the unified CPT template). */
  readonly phrasing?: Phrasing;
}

export interface EvaluateModelOptions extends PromptSettings {
  /** The LM with whatever adapter should be evaluated already loaded (or none: the base model). */
  readonly model: LlamaModel;
  readonly examples: readonly EvaluationCase[];
  /** Cut-offs for HR@k / NDCG@k; default [1, 3, 5]. The largest is the number of generate-and-remove rounds. */
  readonly ks?: readonly number[];
  /** Generated tokens per answer; default the longest candidate as shown + 4 (`answerTokenLimit`). */
  readonly maxNewTokens?: number;
  /** Run greedy generation (HR@1, Valid Ratio, generate-and-remove HR@k). Default true. */
  readonly generation?: boolean;
  /** Rank candidates by exact likelihood. Default true. */
  readonly likelihood?: boolean;
  /** Candidates scored per forward (memory bound). Default 20. */
  readonly scoreBatchSize?: number;
  /**
   * Generate-and-remove rounds (HR@k by generation up to this k); default the largest k. 1 = one
   * greedy answer per case (HR@1 and Valid Ratio), with HR@k from likelihood ranking only.
   */
  readonly generationRounds?: number;
  readonly onProgress?: (done: number, total: number) => void;
}

export interface CaseResult extends ExampleOutcome {
  readonly userId: string;
  /** Texts generated in the generate-and-remove rounds (the first one is the HR@1 answer). */
  readonly generations: readonly string[];
  /** Rank by likelihood per token (summed log-probability / tokens), when scored. */
  readonly likelihoodRankPerToken?: number;
}

export interface EvaluationResult {
  readonly report: EvaluationReport;
  readonly cases: readonly CaseResult[];
}

/** The prompt of `items` as the model sees it at inference time (no answer tokens). */
export function encodePrompt(items: SampleItems, settings: PromptSettings): EncodedSample {
  if (settings.style === 'hybrid' && !settings.hybrid)
    throw new Error('hybrid prompts need the item embedding table and projector');
  const sample: PromptSample = {
    ...items,
    phrasing: settings.phrasing ?? LLARA_PHRASINGS[0],
    style: settings.style,
    lossScope: 'answer',
  };
  return encodeSample(sample, settings.tokenizer, settings.budget, {
    includeAnswer: false,
    ...(settings.placeholderId !== undefined ? { placeholderId: settings.placeholderId } : {}),
  });
}

function withInjection<T>(
  encoded: EncodedSample,
  settings: PromptSettings,
  run: (inject: ReturnType<typeof injectionFor>) => T,
): T {
  const inject = settings.style === 'hybrid' ? injectionFor([encoded], settings.hybrid ?? null) : null;
  try {
    return run(inject);
  } finally {
    disposeInjection(inject);
  }
}

/**
 * The token sequences candidate scoring compares: each candidate's ids exactly as the prompt shows
 * them and as an answer naming it is trained (`candidateTokenIds`), then EOS. Never the decoded
 * title re-encoded: that differs for truncated titles (and, with a dummy-prefix tokenizer, gains
 * a space token training never saw).
 */
export function candidateContinuations(encoded: EncodedSample, eosId: number): number[][] {
  return encoded.candidateTokenIds.map((ids) => [...ids, eosId]);
}

/**
 * 1-based rank of the target by exact candidate likelihood: log p(title + EOS | prompt) summed over
 * tokens (the answer format SFT trains), ties against the target.
 */
export function likelihoodRank(
  model: LlamaModel,
  items: SampleItems,
  settings: PromptSettings,
  batchSize = 20,
): number {
  const encoded = encodePrompt(items, settings);
  const continuations = candidateContinuations(encoded, settings.tokenizer.eosId);
  const scores = withInjection(encoded, settings, (inject) =>
    scoreContinuations(model, encoded.inputIds, inject, continuations, batchSize),
  );
  return rankByScores(scores, encoded.candidateItemIds.indexOf(items.target.itemId));
}

/** Generated tokens allowed for an answer: the longest candidate as shown plus a margin. */
export function answerTokenLimit(encoded: EncodedSample, margin = 4): number {
  return Math.max(1, ...encoded.candidateTokenIds.map((ids) => ids.length)) + margin;
}

export interface CaseEvaluation {
  /** Target index in the prompt's candidate order. */
  readonly targetIndex: number;
  /** Summed log p(candidate + EOS | prompt) per candidate (prompt order), when scored. */
  readonly scores: number[] | null;
  /** Tokens scored per candidate (title + EOS), for per-token normalisation. */
  readonly scoredTokens: number[] | null;
  /** The greedy answer's text, when generated. */
  readonly generation: string | null;
  /** The encoded prompt (candidate titles as shown, token counts). */
  readonly encoded: EncodedSample;
}

/**
 * One test case with one prefill (`scoreAndGenerate`): exact likelihoods of every candidate and/or
 * one greedy, unconstrained answer (stopped at EOS, a newline, or `maxNewTokens`, default
 * `answerTokenLimit`).
 */
export function evaluateCase(
  model: LlamaModel,
  items: SampleItems,
  settings: PromptSettings,
  opts: { likelihood: boolean; generation: boolean; maxNewTokens?: number; scoreBatchSize?: number },
): CaseEvaluation {
  const encoded = encodePrompt(items, settings);
  const { tokenizer } = settings;
  const continuations = opts.likelihood ? candidateContinuations(encoded, tokenizer.eosId) : [];
  const result = withInjection(encoded, settings, (inject) =>
    scoreAndGenerate(model, encoded.inputIds, inject, {
      continuations,
      maxRows: opts.scoreBatchSize ?? 20,
      generate: opts.generation
        ? {
            maxNewTokens: opts.maxNewTokens ?? answerTokenLimit(encoded),
            stopTokens: [tokenizer.eosId],
            decode: (ids) => tokenizer.decode(ids),
          }
        : null,
    }),
  );
  return {
    targetIndex: encoded.candidateItemIds.indexOf(items.target.itemId),
    scores: opts.likelihood ? result.scores : null,
    scoredTokens: opts.likelihood ? continuations.map((c) => c.length) : null,
    generation: result.generated ? tokenizer.decode(result.generated) : null,
    encoded,
  };
}

/**
 * `evaluateCase` for several cases in one batch (`scoreAndGenerateBatch`: one left-padded prefill,
 * all candidates, greedy answers decoded in lockstep). Each result equals the case evaluated alone
 * up to float rounding; decoding several answers together is what makes it cheaper.
 */
export function evaluateCases(
  model: LlamaModel,
  cases: readonly SampleItems[],
  settings: PromptSettings,
  opts: { likelihood: boolean; generation: boolean; maxNewTokens?: number; scoreBatchSize?: number },
): CaseEvaluation[] {
  if (settings.style === 'hybrid' && !settings.hybrid)
    throw new Error('hybrid prompts need the item embedding table and projector');
  const { tokenizer } = settings;
  const encoded = cases.map((c) => encodePrompt(c, settings));
  const continuations = encoded.map((e) =>
    opts.likelihood ? candidateContinuations(e, tokenizer.eosId) : [],
  );
  const inject = settings.style === 'hybrid' ? injectionFor(encoded, settings.hybrid ?? null) : null;
  let results: ReturnType<typeof scoreAndGenerateBatch>;
  try {
    results = scoreAndGenerateBatch(
      model,
      encoded.map((e, i) => ({
        promptIds: e.inputIds,
        continuations: continuations[i]!,
        maxNewTokens: opts.generation ? (opts.maxNewTokens ?? answerTokenLimit(e)) : 0,
      })),
      inject,
      {
        maxRows: opts.scoreBatchSize ?? 20,
        stopTokens: [tokenizer.eosId],
        decode: (ids) => tokenizer.decode(ids),
      },
    );
  } finally {
    disposeInjection(inject);
  }
  return cases.map((c, i) => ({
    targetIndex: encoded[i]!.candidateItemIds.indexOf(c.target.itemId),
    scores: opts.likelihood ? results[i]!.scores : null,
    scoredTokens: opts.likelihood ? continuations[i]!.map((x) => x.length) : null,
    generation: results[i]!.generated ? tokenizer.decode(results[i]!.generated!) : null,
    encoded: encoded[i]!,
  }));
}

/** Greedy, unconstrained answer to the prompt of `items`, as text. */
export function generateAnswer(
  model: LlamaModel,
  items: SampleItems,
  settings: PromptSettings,
  maxNewTokens: number,
): string {
  const encoded = encodePrompt(items, settings);
  const ids = withInjection(encoded, settings, (inject) =>
    greedyDecode(model, encoded.inputIds, inject, { maxNewTokens, stopTokens: [settings.tokenizer.eosId] }),
  );
  return settings.tokenizer.decode(ids);
}

/**
 * Offline evaluation of an LM recommender on frozen examples (the evaluator service and
 * `cprec eval` call this):
 * - HR@1 and Valid Ratio from one unconstrained greedy generation matched to the candidate titles
 *   shown in the prompt (HR@1 both as correct/total and LLaRA's correct/valid);
 * - HR@k / NDCG@k by the paper's iterative generate-and-remove (the prompt is re-rendered without
 *   the wrongly generated candidates) and by exact candidate likelihood ranking;
 * - everything per sparsity bucket of the history length (`EvaluationReport`).
 * Zero-shot evaluation is the same call on a model without SFT (any adapter or none loaded).
 * Examples run one at a time (the memory bound is one prompt's KV cache plus one chunk of
 * candidates); the candidates of an example are scored in batches of `scoreBatchSize`, and the
 * likelihoods and the first answer share one prefill of the prompt (`evaluateCase`).
 */
export async function evaluateModel(options: EvaluateModelOptions): Promise<EvaluationResult> {
  const ks = options.ks ?? DEFAULT_KS;
  const rounds = options.generationRounds ?? Math.max(...ks);
  const generation = options.generation ?? true;
  const likelihood = options.likelihood ?? true;
  const cases: CaseResult[] = [];
  let done = 0;
  for (const example of options.examples) {
    // First (full candidate list): one prefill for the likelihoods and the HR@1 answer.
    const first = evaluateCase(options.model, example, options, {
      likelihood,
      generation,
      ...(options.maxNewTokens !== undefined ? { maxNewTokens: options.maxNewTokens } : {}),
      ...(options.scoreBatchSize !== undefined ? { scoreBatchSize: options.scoreBatchSize } : {}),
    });
    const generations: string[] = [];
    let generatedRank: number | null = null;
    let firstValid = false;
    if (generation) {
      const result = await generateAndRemove({
        candidateTitles: first.encoded.candidateTitles,
        targetIndex: first.targetIndex,
        k: rounds,
        generate: async (remaining) => {
          let text: string;
          if (generations.length === 0) text = first.generation ?? '';
          else {
            const items: SampleItems = {
              history: example.history,
              candidates: remaining.map((r) => example.candidates[r.index]),
              target: example.target,
            };
            text = evaluateCase(options.model, items, options, {
              likelihood: false,
              generation: true,
              ...(options.maxNewTokens !== undefined ? { maxNewTokens: options.maxNewTokens } : {}),
            }).generation!;
          }
          generations.push(text);
          return text;
        },
      });
      generatedRank = result.rank;
      firstValid = result.firstValid;
    }
    const rank = first.scores ? rankByScores(first.scores, first.targetIndex) : undefined;
    const perToken = first.scores
      ? rankByScores(
          first.scores.map((s, i) => s / first.scoredTokens![i]!),
          first.targetIndex,
        )
      : undefined;
    cases.push({
      domain: example.domain,
      userId: example.userId,
      historyLength: example.historyLength,
      firstValid,
      generatedRank,
      ...(rank !== undefined ? { likelihoodRank: rank } : {}),
      ...(perToken !== undefined ? { likelihoodRankPerToken: perToken } : {}),
      generations,
    });
    done++;
    options.onProgress?.(done, options.examples.length);
    // Let timers and I/O run between examples (the evaluator service shares its event loop with Kafka).
    if (done % 8 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
  return { report: buildReport(cases, ks), cases };
}
