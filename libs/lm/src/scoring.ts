import { nativeKernelsActive } from './kernels/index';
import { loadNativeAddon } from './kernels/native-addon';
import { KVCache, type InjectedEmbeddings, type LlamaModel } from './model';

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
 * Summed log p(continuation | prompt) for several prompts at once — exact candidate likelihoods
 * for rankings (serving, evaluation, `scoreCandidates`) — in two kinds of forward:
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
 * scored together share that overhead. This costs prompt + Σ|continuation| token-forwards per
 * job instead of N·(prompt + continuation) for one forward per candidate.
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
    const first = logProbabilities(
      lastLogits.dataSync() as Float32Array,
      V,
      Int32Array.from(jobs.flatMap((job, b) => job.continuations.map(() => b * V))),
      Int32Array.from(jobs.flatMap((job) => job.continuations.map((c) => c[0]))),
    );
    let k = 0;
    const scores = jobs.map((job) => job.continuations.map(() => first[k++]));
    lastLogits.dispose();

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
      const logits = model.forward(inputs, { prefix: { cache: prefix, rows: chunk.map((r) => r.job) } });
      const offsets: number[] = [];
      const targets: number[] = [];
      chunk.forEach((r, i) => {
        for (let j = 0; j + 1 < r.tokens.length; j++) {
          offsets.push((i * w + j) * V);
          targets.push(r.tokens[j + 1]);
        }
      });
      const picked = logProbabilities(
        logits.dataSync() as Float32Array,
        V,
        Int32Array.from(offsets),
        Int32Array.from(targets),
      );
      k = 0;
      chunk.forEach((r) => {
        for (let j = 0; j + 1 < r.tokens.length; j++) scores[r.job][r.index] += picked[k++];
      });
      logits.dispose();
    }
    return scores;
  } finally {
    prefix.dispose();
  }
}

/**
 * log softmax(logits[offset, offset + V))[token] (max-shifted, in double). Why not tfjs ops: a
 * ranking reads a few positions per row, and the op chain over [rows, columns, V] (logSoftmax,
 * oneHot, mul, sum) cost more than this loop over the positions that count.
 */
export function logProbability(logits: Float32Array, offset: number, V: number, token: number): number {
  let max = -Infinity;
  for (let v = 0; v < V; v++) if (logits[offset + v] > max) max = logits[offset + v];
  let sum = 0;
  for (let v = 0; v < V; v++) sum += Math.exp(logits[offset + v] - max);
  return logits[offset + token] - max - Math.log(sum);
}

/**
 * `logProbability` at many (offset, token) positions of one logits array: in one native call
 * when the native kernels are active (vectorized exp), else in JS.
 */
export function logProbabilities(
  logits: Float32Array,
  V: number,
  offsets: Int32Array,
  tokens: Int32Array,
): Float32Array {
  if (offsets.length !== tokens.length) throw new Error('offsets and tokens differ in length');
  const addon = nativeKernelsActive() ? loadNativeAddon().addon : null;
  if (addon?.logProbabilities) {
    const out = new Float32Array(offsets.length);
    addon.logProbabilities(logits, V, offsets, tokens, out);
    return out;
  }
  return Float32Array.from(offsets, (offset, i) => logProbability(logits, offset, V, tokens[i]));
}
