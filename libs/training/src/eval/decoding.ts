import * as tf from '@tensorflow/tfjs-core';
import { KVCache, type InjectedEmbeddings, type LlamaModel } from '@cprec/lm';

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
 * Summed log p(continuation | prompt) for every continuation (exact candidate likelihood). The
 * prompt runs once; its cache is tiled over a chunk of continuations that run in one forward
 * (right-padded: causality alone keeps padding out of real tokens' scores).
 */
export function scoreContinuations(
  model: LlamaModel,
  promptIds: ArrayLike<number>,
  inject: InjectedEmbeddings | null,
  continuations: readonly (readonly number[])[],
  batchSize = continuations.length,
): number[] {
  continuations.forEach((c, i) => {
    if (c.length === 0) throw new Error(`continuation ${i} is empty`);
  });
  const V = model.config.vocabSize;
  const { cache: prefix, logProbs } = prefill(model, promptIds, inject);
  try {
    const scores = continuations.map((c) => logProbs[c[0]]);
    const step = Math.max(1, batchSize);
    for (let start = 0; start < continuations.length; start += step) {
      const chunk = continuations.slice(start, start + step);
      const width = Math.max(...chunk.map((c) => c.length)) - 1;
      if (width === 0) continue;
      const inputs = chunk.map((c) => Array.from({ length: width }, (_, j) => (j < c.length - 1 ? c[j] : 0)));
      const targets = chunk.map((c) =>
        Array.from({ length: width }, (_, j) => (j + 1 < c.length ? c[j + 1] : 0)),
      );
      const mask = chunk.map((c) => Array.from({ length: width }, (_, j) => (j + 1 < c.length ? 1 : 0)));
      const cache = prefix.repeatBatch(chunk.length);
      try {
        const logits = model.forward(inputs, { cache });
        const sums = tf.tidy(() => {
          const picked = tf.sum(
            tf.mul(tf.logSoftmax(logits), tf.oneHot(tf.tensor2d(targets, undefined, 'int32'), V)),
            -1,
          );
          return tf.sum(tf.mul(picked, tf.tensor2d(mask)), 1).dataSync() as Float32Array;
        });
        logits.dispose();
        chunk.forEach((_, i) => (scores[start + i] += sums[i]));
      } finally {
        cache.dispose();
      }
    }
    return scores;
  } finally {
    prefix.dispose();
  }
}
