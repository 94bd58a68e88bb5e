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

/** One prompt of a batched evaluation: its ids, the continuations to score, its answer limit. */
export interface BatchJob {
  readonly promptIds: ArrayLike<number>;
  readonly continuations: readonly (readonly number[])[];
  /** Greedy tokens allowed for this prompt's answer (0 = no generation). */
  readonly maxNewTokens: number;
}

/**
 * `scoreAndGenerate` for several prompts at once: ONE left-padded prefill of every prompt into a
 * batch cache (positions follow the attention mask, so each row computes what it computes alone),
 * the candidates of all prompts as rows reading their prompt's cache row, then greedy decoding of
 * every row in lockstep, each stopping at a stop token, a newline or its own limit.
 *
 * Why: a decoding step reads all the weights to produce one token per row, so decoding B answers
 * together costs little more than one (on SmolLM2, 10 steps took 1.6–1.9 CPU-s for one row and
 * 2.8 for four); the prefill and the candidates cost the same either way.
 * `inject` positions are [job, column] in unpadded prompt coordinates (as `injectionFor` gives).
 */
export function scoreAndGenerateBatch(
  model: LlamaModel,
  jobs: readonly BatchJob[],
  inject: InjectedEmbeddings | null,
  opts: { maxRows?: number; stopTokens: Iterable<number>; decode?: (ids: number[]) => string },
): ScoreAndGenerateResult[] {
  if (jobs.length === 0) return [];
  const V = model.config.vocabSize;
  const B = jobs.length;
  const width = Math.max(...jobs.map((j) => j.promptIds.length));
  if (width === 0) throw new Error('the prompts are empty (they should start with BOS)');
  const pads = jobs.map((j) => width - j.promptIds.length);
  const ids = jobs.map((j, b) => [...new Array<number>(pads[b]!).fill(0), ...Array.from(j.promptIds)]);
  const mask = jobs.map((j, b) => [
    ...new Array<number>(pads[b]!).fill(0),
    ...new Array<number>(j.promptIds.length).fill(1),
  ]);
  const padded = pads.some((p) => p > 0);
  const shifted = inject
    ? {
        positions: inject.positions.map(([b, t]) => [b, t + pads[b]!] as [number, number]),
        vectors: inject.vectors,
      }
    : null;
  const cache = new KVCache(model.config.nLayers, B);
  try {
    const first = model.forward(ids, {
      cache,
      lastOnly: true,
      ...(padded ? { attentionMask: mask } : {}),
      ...(shifted && shifted.positions.length > 0 ? { inject: shifted } : {}),
    });
    const lastLogits = first.dataSync() as Float32Array;
    first.dispose();
    const scores = jobs.map((j, b) => {
      if (j.continuations.length === 0) return [];
      const picked = logProbabilities(
        lastLogits,
        V,
        Int32Array.from(j.continuations.map(() => b * V)),
        Int32Array.from(
          j.continuations.map((c) => {
            if (c.length === 0) throw new Error('a continuation is empty');
            return c[0]!;
          }),
        ),
      );
      return Array.from(picked);
    });
    const rows = jobs.flatMap((j, b) =>
      j.continuations.flatMap((tokens, index) => (tokens.length > 1 ? [{ b, index, tokens }] : [])),
    );
    const maxRows = Math.max(1, opts.maxRows ?? 20);
    for (let start = 0; start < rows.length; start += maxRows) {
      const chunk = rows.slice(start, start + maxRows);
      const w = Math.max(...chunk.map((r) => r.tokens.length)) - 1;
      const inputs = chunk.map((r) =>
        Array.from({ length: w }, (_, j) => (j < r.tokens.length - 1 ? r.tokens[j]! : 0)),
      );
      const logits = model.forward(inputs, { prefix: { cache, rows: chunk.map((r) => r.b) } });
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
      for (const r of chunk)
        for (let j = 0; j + 1 < r.tokens.length; j++) scores[r.b]![r.index]! += picked[k++]!;
    }
    // Greedy decoding in lockstep; a finished row is fed a pad token until every row is done.
    const stops = new Set(opts.stopTokens);
    const limits = jobs.map((j) => Math.max(0, Math.min(j.maxNewTokens, model.config.maxSeqLen - width)));
    const out = jobs.map(() => [] as number[]);
    const done = limits.map((l) => l === 0);
    let logitsRows = lastLogits;
    for (let step = 0; !done.every(Boolean); step++) {
      const next = jobs.map((_, b) => {
        if (done[b]) return 0;
        const token = argmax(logitsRows.subarray(b * V, (b + 1) * V));
        if (stops.has(token)) done[b] = true;
        else {
          out[b]!.push(token);
          if (out[b]!.length >= limits[b]! || (opts.decode && opts.decode(out[b]!).includes('\n')))
            done[b] = true;
        }
        return token;
      });
      if (done.every(Boolean)) break;
      const logits = model.forward(
        next.map((t) => [t]),
        { cache, attentionMask: next.map(() => [1]), lastOnly: true },
      );
      logitsRows = logits.dataSync() as Float32Array;
      logits.dispose();
    }
    return jobs.map((j, b) => ({ scores: scores[b]!, generated: j.maxNewTokens > 0 ? out[b]! : null }));
  } finally {
    cache.dispose();
  }
}
