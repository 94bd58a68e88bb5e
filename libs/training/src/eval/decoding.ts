import * as tf from '@tensorflow/tfjs-core';
import { KVCache, scoreJobs, type InjectedEmbeddings, type LlamaModel } from '@cprec/lm';

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
