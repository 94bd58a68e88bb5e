import * as tf from '@tensorflow/tfjs-core';
import { KVCache, logProbabilities, scoreJobs, type InjectedEmbeddings, type LlamaModel } from '@cprec/lm';

/**
 * Decoding and scoring with injected prompt embeddings. `@cprec/lm`'s `generate` and
 * `scoreCandidates` take token ids only; LLaRA's hybrid prompts replace placeholder tokens by
 * projected item embeddings, so the prompt's prefill here passes `inject` (null for text prompts,
 * where this is the same computation as lm's).
 */

/** log-softmax of the last column of a [1, T, V] logits tensor, as a host array. */
function lastLogProbs(logits: tf.Tensor3D): Float32Array {
  const [, t, v] = logits.shape;
  const out = tf.tidy(() =>
    tf.logSoftmax(tf.reshape(tf.slice(logits, [0, t - 1, 0], [1, 1, v]), [v])).dataSync(),
  );
  logits.dispose();
  return out as Float32Array;
}

function argmax(row: Float32Array): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

/** Runs the prompt once (batch 1) into a fresh KV cache; returns the cache and the next-token log-probs. */
export function prefill(
  model: LlamaModel,
  promptIds: ArrayLike<number>,
  inject: InjectedEmbeddings | null,
): { cache: KVCache; logProbs: Float32Array } {
  if (promptIds.length === 0) throw new Error('the prompt is empty (it should start with BOS)');
  const cache = new KVCache(model.config.nLayers, 1);
  try {
    const logits = model.forward([Array.from(promptIds)], {
      cache,
      lastOnly: true,
      ...(inject ? { inject } : {}),
    });
    return { cache, logProbs: lastLogProbs(logits) };
  } catch (err) {
    cache.dispose();
    throw err;
  }
}

/** Greedy decoding after a (possibly hybrid) prompt; stops before a stop token or after `maxNewTokens`. */
export function greedyDecode(
  model: LlamaModel,
  promptIds: ArrayLike<number>,
  inject: InjectedEmbeddings | null,
  opts: { maxNewTokens: number; stopTokens: Iterable<number> },
): number[] {
  const stops = new Set(opts.stopTokens);
  const limit = Math.min(opts.maxNewTokens, model.config.maxSeqLen - promptIds.length);
  const { cache, logProbs } = prefill(model, promptIds, inject);
  const out: number[] = [];
  try {
    let row = logProbs;
    for (let i = 0; i < limit; i++) {
      const next = argmax(row);
      if (stops.has(next)) break;
      out.push(next);
      if (i + 1 < limit) row = lastLogProbs(model.forward([[next]], { cache, lastOnly: true }));
    }
  } finally {
    cache.dispose();
  }
  return out;
}

/**
 * Summed log p(continuation | prompt) for every continuation (exact candidate likelihood): the
 * one-prompt case of `scoreJobs`, so evaluation scores exactly as serving ranks.
 */
export function scoreContinuations(
  model: LlamaModel,
  promptIds: ArrayLike<number>,
  inject: InjectedEmbeddings | null,
  continuations: readonly (readonly number[])[],
  batchSize = continuations.length,
): number[] {
  if (promptIds.length === 0) throw new Error('the prompt is empty (it should start with BOS)');
  return scoreJobs(model, [{ promptIds, continuations }], { inject, maxRows: Math.max(1, batchSize) })[0];
}

export interface ScoreAndGenerateOptions {
  /** Continuations to score (each a candidate's tokens + EOS); empty = no scoring. */
  readonly continuations: readonly (readonly number[])[];
  /** Continuation rows per forward (memory bound: rows × longest × vocabulary logits). */
  readonly maxRows?: number;
  /** Greedy generation after the prompt, or null for none. */
  readonly generate: {
    readonly maxNewTokens: number;
    readonly stopTokens: Iterable<number>;
    /** Also stop once the decoded text holds a newline (only the first line is ever matched). */
    readonly decode?: (ids: number[]) => string;
  } | null;
}

export interface ScoreAndGenerateResult {
  /** Summed log p(continuation | prompt), parallel to `continuations`. */
  readonly scores: number[];
  /** Greedy tokens (stop token excluded), or null when generation was not asked for. */
  readonly generated: number[] | null;
}

/**
 * One evaluation case with ONE prefill of the prompt: the candidates are scored as rows reading
 * the prompt's cache (`forward`'s `prefix`, which leaves the cache as it is), then greedy decoding
 * extends that same cache. Scores equal `scoreContinuations` and the generation equals
 * `greedyDecode`; the prompt — hundreds of tokens with real titles, the dominant cost — is run
 * once instead of twice.
 */
export function scoreAndGenerate(
  model: LlamaModel,
  promptIds: ArrayLike<number>,
  inject: InjectedEmbeddings | null,
  options: ScoreAndGenerateOptions,
): ScoreAndGenerateResult {
  const V = model.config.vocabSize;
  const { cache, logProbs } = prefill(model, promptIds, inject);
  try {
    const scores = options.continuations.map((c) => {
      if (c.length === 0) throw new Error('a continuation is empty');
      return logProbs[c[0]!]!;
    });
    const rows = options.continuations.flatMap((tokens, index) =>
      tokens.length > 1 ? [{ index, tokens }] : [],
    );
    const maxRows = Math.max(1, options.maxRows ?? 20);
    for (let start = 0; start < rows.length; start += maxRows) {
      const chunk = rows.slice(start, start + maxRows);
      const w = Math.max(...chunk.map((r) => r.tokens.length)) - 1;
      const inputs = chunk.map((r) =>
        Array.from({ length: w }, (_, j) => (j < r.tokens.length - 1 ? r.tokens[j]! : 0)),
      );
      const logits = model.forward(inputs, { prefix: { cache, rows: chunk.map(() => 0) } });
      const offsets: number[] = [];
      const targets: number[] = [];
      chunk.forEach((r, i) => {
        for (let j = 0; j + 1 < r.tokens.length; j++) {
          offsets.push((i * w + j) * V);
          targets.push(r.tokens[j + 1]!);
        }
      });
      const picked = logProbabilities(
        logits.dataSync() as Float32Array,
        V,
        Int32Array.from(offsets),
        Int32Array.from(targets),
      );
      logits.dispose();
      let k = 0;
      for (const r of chunk) for (let j = 0; j + 1 < r.tokens.length; j++) scores[r.index]! += picked[k++]!;
    }
    if (!options.generate) return { scores, generated: null };
    const { maxNewTokens, decode } = options.generate;
    const stops = new Set(options.generate.stopTokens);
    const limit = Math.min(maxNewTokens, model.config.maxSeqLen - promptIds.length);
    const out: number[] = [];
    let row = logProbs;
    for (let i = 0; i < limit; i++) {
      const next = argmax(row);
      if (stops.has(next)) break;
      out.push(next);
      if (decode && decode(out).includes('\n')) break;
      if (i + 1 < limit) row = lastLogProbs(model.forward([[next]], { cache, lastOnly: true }));
    }
    return { scores, generated: out };
  } finally {
    cache.dispose();
  }
}
