import * as tf from '@tensorflow/tfjs-core';
import { InjectedEmbeddings, KVCache, LlamaModel } from './model';
import { scoreJobs } from './scoring';
import { SampleOptions, TokenSampler } from './sampling';
import { Tokenizer } from './tokenizer';

/** Hybrid prompts (LLaRA): vectors replacing prompt embeddings at positions [0, t] of the prompt. */
export interface PromptInjection {
  promptInject?: InjectedEmbeddings;
}

export interface GenerateOptions extends SampleOptions, PromptInjection {
  /** Upper bound on generated tokens (the prompt is not counted). */
  maxNewTokens: number;
  /** Generation stops (without emitting it) when one of these ids is produced. */
  stopTokens?: Iterable<number>;
  /** true (default): incremental decoding with a KV cache; false: recompute the whole prefix every step. */
  useCache?: boolean;
}

/** Ids whose text contains a newline — used to stop at the end of a generated line/title. */
export function newlineTokenIds(tok: Tokenizer): number[] {
  const out: number[] = [];
  for (let id = 0; id < tok.vocabSize; id++) {
    if (id === tok.bosId || id === tok.eosId) continue;
    if (tok.pieceBytes(-1, id).includes(0x0a)) out.push(id);
  }
  return out;
}

/** Logits of the last column as a host array, disposing the tensor. */
function lastRow(logits: tf.Tensor3D): Float32Array {
  const [, t, v] = logits.shape;
  const data = logits.dataSync() as Float32Array;
  const row = data.slice((t - 1) * v, t * v);
  logits.dispose();
  return row;
}

/**
 * Autoregressive generation for one prompt (batch 1). Returns only the new ids. With the cache the
 * prompt is prefilled in one forward and each further token costs one single-column forward.
 */
export function generate(model: LlamaModel, promptIds: readonly number[], opts: GenerateOptions): number[] {
  if (promptIds.length === 0) throw new Error('generate needs a non-empty prompt (start with BOS)');
  const sampler = new TokenSampler(opts);
  const stops = new Set(opts.stopTokens ?? []);
  const limit = Math.min(opts.maxNewTokens, model.config.maxSeqLen - promptIds.length);
  const out: number[] = [];
  if (opts.useCache === false) {
    const seq = [...promptIds];
    for (let i = 0; i < limit; i++) {
      const next = sampler.sample(
        lastRow(model.forward([seq], { lastOnly: true, inject: opts.promptInject })),
      );
      if (stops.has(next)) break;
      out.push(next);
      seq.push(next);
    }
    return out;
  }
  const cache = new KVCache(model.config.nLayers, 1);
  try {
    let row = lastRow(model.forward([[...promptIds]], { cache, lastOnly: true, inject: opts.promptInject }));
    for (let i = 0; i < limit; i++) {
      const next = sampler.sample(row);
      if (stops.has(next)) break;
      out.push(next);
      if (i + 1 < limit) row = lastRow(model.forward([[next]], { cache, lastOnly: true }));
    }
  } finally {
    cache.dispose();
  }
  return out;
}

/** C `isprint || isspace` for one byte (run.c `safe_printf` drops other lone bytes). */
function printableByte(b: number): boolean {
  return (b >= 0x20 && b <= 0x7e) || b === 0x09 || b === 0x0a || b === 0x0b || b === 0x0c || b === 0x0d;
}

export interface RunOptions extends SampleOptions {
  prompt?: string;
  /** run.c `-n`: forward steps counted from BOS at position 0 (0 = maxSeqLen). */
  steps: number;
}

/**
 * llama2.c `run` generate(): BOS + prompt, `steps` forward passes from position 0, prompt tokens
 * forced, stop when BOS is sampled; returns exactly the bytes run.c prints (without its final "\n").
 */
export function runLikeLlama2c(model: LlamaModel, tok: Tokenizer, opts: RunOptions): Uint8Array {
  let steps = opts.steps;
  if (steps <= 0 || steps > model.config.maxSeqLen) steps = model.config.maxSeqLen;
  const prompt = tok.encode(opts.prompt ?? '', { bos: true });
  const sampler = new TokenSampler(opts);
  const pieces: Uint8Array[] = [];
  const emit = (prev: number, next: number): void => {
    const b = tok.pieceBytes(prev, next);
    if (b.length === 1 && !printableByte(b[0])) return;
    pieces.push(b);
  };
  const forced = Math.min(prompt.length - 1, steps);
  for (let i = 0; i < forced; i++) emit(prompt[i], prompt[i + 1]);
  if (steps > prompt.length - 1) {
    const cache = new KVCache(model.config.nLayers, 1);
    try {
      let row = lastRow(model.forward([prompt], { cache, lastOnly: true }));
      let token = prompt[prompt.length - 1];
      for (let pos = prompt.length - 1; pos < steps; pos++) {
        const next = sampler.sample(row);
        if (next === tok.bosId) break;
        emit(token, next);
        token = next;
        if (pos + 1 < steps) row = lastRow(model.forward([[next]], { cache, lastOnly: true }));
      }
    } finally {
      cache.dispose();
    }
  }
  const total = pieces.reduce((a, p) => a + p.length, 0);
  const out = new Uint8Array(total);
  let o = 0;
  for (const p of pieces) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Prefix trie over candidate token-id sequences (constrained decoding). */
export class TokenTrie {
  readonly children = new Map<number, TokenTrie>();
  /** Index of the candidate ending here, or −1. */
  candidate = -1;

  static build(candidates: readonly (readonly number[])[]): TokenTrie {
    const root = new TokenTrie();
    candidates.forEach((ids, i) => {
      if (ids.length === 0) throw new Error(`candidate ${i} has no tokens`);
      let node = root;
      for (const id of ids) {
        let next = node.children.get(id);
        if (!next) node.children.set(id, (next = new TokenTrie()));
        node = next;
      }
      if (node.candidate < 0) node.candidate = i;
    });
    return root;
  }
}

export interface ConstrainedOptions extends SampleOptions, PromptInjection {
  /**
   * Token that ends a candidate (e.g. the newline or EOS id). When a complete candidate is also a
   * prefix of a longer one, the model chooses between continuing and this token; without it the
   * shorter candidate wins.
   */
  endToken?: number;
}

/**
 * Decodes only continuations allowed by the candidates' prefix trie, so the result is always one of
 * the candidates (Valid Ratio 1). Returns the candidate index and its ids.
 */
export function constrainedGenerate(
  model: LlamaModel,
  promptIds: readonly number[],
  candidates: readonly (readonly number[])[],
  opts: ConstrainedOptions = {},
): { candidate: number; ids: number[] } {
  if (candidates.length === 0) throw new Error('constrained decoding needs at least one candidate');
  const root = TokenTrie.build(candidates);
  const sampler = new TokenSampler(opts);
  const cache = new KVCache(model.config.nLayers, 1);
  try {
    let row = lastRow(model.forward([[...promptIds]], { cache, lastOnly: true, inject: opts.promptInject }));
    let node = root;
    for (;;) {
      const terminal = node.candidate >= 0;
      if (terminal && (node.children.size === 0 || opts.endToken === undefined)) break;
      const allowed = [...node.children.keys()];
      if (terminal && opts.endToken !== undefined && !node.children.has(opts.endToken))
        allowed.push(opts.endToken);
      const next = sampler.sample(row, allowed);
      if (terminal && next === opts.endToken && !node.children.has(next)) break;
      node = node.children.get(next) as TokenTrie;
      const needMore = node.candidate < 0 || (node.children.size > 0 && opts.endToken !== undefined);
      if (needMore) row = lastRow(model.forward([[next]], { cache, lastOnly: true }));
    }
    return { candidate: node.candidate, ids: [...candidates[node.candidate]] };
  } finally {
    cache.dispose();
  }
}

/**
 * Summed log-likelihood log p(candidate | prompt) for every candidate, for exact rankings: one
 * prompt's `scoreJobs` (prefill once, candidates as rows over the prompt's cache, `batchSize`
 * rows per forward).
 */
export function scoreCandidates(
  model: LlamaModel,
  promptIds: readonly number[],
  candidates: readonly (readonly number[])[],
  opts: { batchSize?: number } & PromptInjection = {},
): number[] {
  if (promptIds.length === 0) throw new Error('scoring needs a non-empty prompt (start with BOS)');
  candidates.forEach((c, i) => {
    if (c.length === 0) throw new Error(`candidate ${i} has no tokens`);
  });
  return scoreJobs(model, [{ promptIds, continuations: candidates }], {
    inject: opts.promptInject ?? null,
    ...(opts.batchSize ? { maxRows: opts.batchSize } : {}),
  })[0];
}

/** Candidate indices sorted by descending score (ties by index), for HR@k / NDCG@k. */
export function rankCandidates(scores: readonly number[]): number[] {
  return scores.map((_, i) => i).sort((a, b) => scores[b] - scores[a] || a - b);
}

/** Stop set for "one line" generation: EOS, BOS and every id whose text contains a newline. */
export function lineStopTokens(tok: Tokenizer): number[] {
  return [tok.eosId, tok.bosId, ...newlineTokenIds(tok)].filter((id) => id >= 0);
}

/**
 * Generation for several prompts at once. Prompts are LEFT-padded so every row's next token lands
 * in the same column; positions come from the attention mask, so each row decodes exactly as it
 * would alone. Rows that hit a stop token keep being fed (their output is frozen) until all stop.
 */
export function generateBatch(
  model: LlamaModel,
  prompts: readonly (readonly number[])[],
  opts: GenerateOptions,
): number[][] {
  if (prompts.length === 0) return [];
  if (prompts.some((p) => p.length === 0))
    throw new Error('generateBatch needs non-empty prompts (start with BOS)');
  const width = Math.max(...prompts.map((p) => p.length));
  const limit = Math.min(opts.maxNewTokens, model.config.maxSeqLen - width);
  const stops = new Set(opts.stopTokens ?? []);
  const samplers = prompts.map(
    (_, i) => new TokenSampler({ ...opts, seed: opts.seed === undefined ? undefined : opts.seed + i }),
  );
  const ids = prompts.map((p) => [...new Array<number>(width - p.length).fill(0), ...p]);
  const mask = prompts.map((p) => [
    ...new Array<number>(width - p.length).fill(0),
    ...new Array<number>(p.length).fill(1),
  ]);
  const out = prompts.map(() => [] as number[]);
  const done = prompts.map(() => false);
  const V = model.config.vocabSize;
  const cache = new KVCache(model.config.nLayers, prompts.length);
  try {
    let logits = model.forward(ids, { cache, attentionMask: mask, lastOnly: true });
    for (let step = 0; step < limit; step++) {
      const rows = logits.dataSync() as Float32Array;
      logits.dispose();
      const next = prompts.map((_, i) => {
        if (done[i]) return 0;
        const tokId = samplers[i].sample(rows.subarray(i * V, (i + 1) * V));
        if (stops.has(tokId)) done[i] = true;
        else out[i].push(tokId);
        return tokId;
      });
      if (done.every(Boolean) || step + 1 >= limit) return out;
      logits = model.forward(
        next.map((t) => [t]),
        { cache, attentionMask: next.map(() => [1]), lastOnly: true },
      );
    }
    if (limit <= 0) logits.dispose();
    return out;
  } finally {
    cache.dispose();
  }
}
