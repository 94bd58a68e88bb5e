import * as tf from '@tensorflow/tfjs-core';
import { KVCache, type InjectedEmbeddings, type LlamaModel } from '@cprec/lm';

/** One prompt and the continuations to score after it. */
export interface ScoringJob {
  /** Prompt token ids (starting with BOS). */
  readonly promptIds: ArrayLike<number>;
  /** Each continuation's token ids (title + EOS); all non-empty. */
  readonly continuations: readonly (readonly number[])[];
}

export interface BatchedScoringOptions {
  /**
   * Injected embeddings for the prompts, positions [job, column] in UNPADDED prompt coordinates
   * (as `injectionFor` computes them); shifted here by each prompt's left padding.
   */
  readonly inject?: InjectedEmbeddings | null;
  /** Continuation rows per forward (memory bound: rows × prompt length × layers of KV). Default 64. */
  readonly maxRows?: number;
}

/**
 * Summed log p(continuation | prompt) for several prompts at once — the candidate likelihood of
 * `scoreContinuations` (eval/decoding.ts) for many requests in two kinds of forward:
 *
 * 1. every prompt in ONE prefill forward, LEFT-padded to the longest, so each prompt's last real
 *    token sits in the last column (positions are the running count of real tokens, padded keys
 *    are masked, so a padded prompt computes what it computes alone);
 * 2. the continuations of every prompt as rows of one (or a few, `maxRows`) forwards that read
 *    their prompt's row of the prefill cache (`forward`'s `prefix`; right-padded continuations:
 *    causality keeps the padding out of real tokens' scores).
 *
 * Why: on a small model each tfjs op costs far more in dispatch than in arithmetic, so one forward
 * over B prompts costs little more than one over a single prompt — concurrent serving requests
 * scored together share that overhead. A single job is exactly `scoreContinuations`' computation.
 */
export function scoreJobs(
  model: LlamaModel,
  jobs: readonly ScoringJob[],
  opts: BatchedScoringOptions = {},
): number[][] {
  if (jobs.length === 0) return [];
  jobs.forEach((job, j) => {
    if (job.promptIds.length === 0) throw new Error(`prompt ${j} is empty (it should start with BOS)`);
    job.continuations.forEach((c, i) => {
      if (c.length === 0) throw new Error(`prompt ${j}: continuation ${i} is empty`);
    });
  });
  const V = model.config.vocabSize;
  const N = jobs.length;
  const width = Math.max(...jobs.map((j) => j.promptIds.length));
  const pads = jobs.map((j) => width - j.promptIds.length);
  const ids = jobs.map((j, b) => [...new Array<number>(pads[b]).fill(0), ...Array.from(j.promptIds)]);
  const padded = pads.some((p) => p > 0);
  const mask = padded
    ? jobs.map((_, b) => Array.from({ length: width }, (__, t) => (t < pads[b] ? 0 : 1)))
    : null;
  const inject = opts.inject
    ? {
        positions: opts.inject.positions.map(([b, t]) => [b, t + pads[b]] as const),
        vectors: opts.inject.vectors,
      }
    : null;

  const prefix = new KVCache(model.config.nLayers, N);
  try {
    const lastLogits = model.forward(ids, {
      cache: prefix,
      lastOnly: true,
      ...(mask ? { attentionMask: mask } : {}),
      ...(inject && inject.positions.length > 0 ? { inject } : {}),
    });
    const first = tf.tidy(() => tf.logSoftmax(tf.reshape(lastLogits, [N, V])).dataSync() as Float32Array);
    lastLogits.dispose();
    const scores = jobs.map((job, b) => job.continuations.map((c) => first[b * V + c[0]]));

    // Rows of the continuation forwards: (job, continuation) pairs with more than one token.
    const rows: Array<{ job: number; index: number; tokens: readonly number[] }> = [];
    jobs.forEach((job, b) =>
      job.continuations.forEach((tokens, index) => {
        if (tokens.length > 1) rows.push({ job: b, index, tokens });
      }),
    );
    const maxRows = Math.max(1, opts.maxRows ?? 64);
    for (let start = 0; start < rows.length; start += maxRows) {
      const chunk = rows.slice(start, start + maxRows);
      const w = Math.max(...chunk.map((r) => r.tokens.length)) - 1;
      const inputs = chunk.map((r) =>
        Array.from({ length: w }, (_, j) => (j < r.tokens.length - 1 ? r.tokens[j] : 0)),
      );
      const targets = chunk.map((r) =>
        Array.from({ length: w }, (_, j) => (j + 1 < r.tokens.length ? r.tokens[j + 1] : 0)),
      );
      const weights = chunk.map((r) =>
        Array.from({ length: w }, (_, j) => (j + 1 < r.tokens.length ? 1 : 0)),
      );
      const logits = model.forward(inputs, { prefix: { cache: prefix, rows: chunk.map((r) => r.job) } });
      const sums = tf.tidy(() => {
        const picked = tf.sum(
          tf.mul(tf.logSoftmax(logits), tf.oneHot(tf.tensor2d(targets, undefined, 'int32'), V)),
          -1,
        );
        return tf.sum(tf.mul(picked, tf.tensor2d(weights)), 1).dataSync() as Float32Array;
      });
      logits.dispose();
      chunk.forEach((r, i) => (scores[r.job][r.index] += sums[i]));
    }
    return scores;
  } finally {
    prefix.dispose();
  }
}
