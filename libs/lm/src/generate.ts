import * as tf from '@tensorflow/tfjs-core';
import { KVCache, LlamaModel } from './model';
import { SampleOptions, TokenSampler } from './sampling';
import { Tokenizer } from './tokenizer';

export interface GenerateOptions extends SampleOptions {
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
      const next = sampler.sample(lastRow(model.forward([seq], { lastOnly: true })));
      if (stops.has(next)) break;
      out.push(next);
      seq.push(next);
    }
    return out;
  }
  const cache = new KVCache(model.config.nLayers, 1);
  try {
    let row = lastRow(model.forward([[...promptIds]], { cache, lastOnly: true }));
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
