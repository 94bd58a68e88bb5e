import { readFileSync } from 'node:fs';
import { LlamaConfig, validateConfig } from './types';
import { LayerWeights, LlamaWeights, weightShapes } from './weights';

const HEADER_INTS = 7;
const HEADER_BYTES = HEADER_INTS * 4;
const VERSIONED_MAGIC = 0x616b3432; // "ak42": llama2.c export.py v1/v2, a different layout

/**
 * Copies a Node Buffer into a fresh ArrayBuffer: Buffers from readFileSync can sit at an unaligned
 * byteOffset inside a pooled ArrayBuffer, and Float32Array views need 4-byte alignment.
 */
export function toAlignedArrayBuffer(buf: Uint8Array): ArrayBuffer {
  const out = new ArrayBuffer(buf.byteLength);
  new Uint8Array(out).set(buf);
  return out;
}

/**
 * Reads a llama2.c "legacy v0" checkpoint (run.c `read_checkpoint`): 7 int32 header, then float32
 * tensors each stacked over all layers, then the legacy RoPE tables (skipped), then `wcls` when the
 * header's vocab_size is negative (untied classifier).
 */
export function parseLlama2cCheckpoint(
  bytes: Uint8Array,
  opts: { normEps?: number; ropeTheta?: number } = {},
): LlamaWeights {
  if (bytes.byteLength < HEADER_BYTES)
    throw new Error(`llama2.c checkpoint too small: ${bytes.byteLength} bytes`);
  const ab = toAlignedArrayBuffer(bytes);
  const hdr = new Int32Array(ab, 0, HEADER_INTS);
  if (hdr[0] === VERSIONED_MAGIC)
    throw new Error('llama2.c checkpoint uses the versioned "ak42" format; only legacy v0 is supported');
  const [dim, hiddenDim, nLayers, nHeads, nKvHeads, rawVocab, seqLen] = Array.from(hdr);
  const config: LlamaConfig = {
    dim,
    hiddenDim,
    nLayers,
    nHeads,
    nKvHeads,
    vocabSize: Math.abs(rawVocab),
    maxSeqLen: seqLen,
    normEps: opts.normEps ?? 1e-5,
    ropeTheta: opts.ropeTheta ?? 10000,
    tiedClassifier: rawVocab > 0,
  };
  validateConfig(config);
  const sh = weightShapes(config);
  const hs = dim / nHeads;
  const floats = (bytes.byteLength - HEADER_BYTES) / 4;
  let off = 0;
  const take = (n: number, what: string): Float32Array => {
    if (off + n > floats)
      throw new Error(
        `llama2.c checkpoint truncated while reading ${what} (need ${off + n} floats, file has ${floats})`,
      );
    // slice() copies, so the model owns compact arrays independent of the file buffer.
    const a = new Float32Array(ab, HEADER_BYTES + off * 4, n).slice();
    off += n;
    return a;
  };
  const prod = (s: number[]): number => s.reduce((a, b) => a * b, 1);
  const tokEmbedding = take(prod(sh.tokEmbedding), 'token_embedding_table');
  const stacked = (key: keyof LayerWeights): Float32Array[] => {
    const per = prod(sh[key]);
    const all = take(per * nLayers, key);
    return Array.from({ length: nLayers }, (_, l) => all.slice(l * per, (l + 1) * per));
  };
  const attnNorm = stacked('attnNorm');
  const wq = stacked('wq');
  const wk = stacked('wk');
  const wv = stacked('wv');
  const wo = stacked('wo');
  const ffnNorm = stacked('ffnNorm');
  const w1 = stacked('w1');
  const w2 = stacked('w2');
  const w3 = stacked('w3');
  const finalNorm = take(dim, 'rms_final_weight');
  off += seqLen * hs; // freq_cis_real + freq_cis_imag, each seq_len*hs/2 (unused: RoPE is recomputed)
  const classifier = config.tiedClassifier ? undefined : take(prod(sh.classifier), 'wcls');
  const layers: LayerWeights[] = [];
  for (let l = 0; l < nLayers; l++) {
    layers.push({
      attnNorm: attnNorm[l],
      wq: wq[l],
      wk: wk[l],
      wv: wv[l],
      wo: wo[l],
      ffnNorm: ffnNorm[l],
      w1: w1[l],
      w2: w2[l],
      w3: w3[l],
    });
  }
  return { config, tokEmbedding, layers, finalNorm, classifier };
}

export function loadLlama2cCheckpoint(
  path: string,
  opts: { normEps?: number; ropeTheta?: number } = {},
): LlamaWeights {
  return parseLlama2cCheckpoint(readFileSync(path), opts);
}

/** Writes the legacy v0 layout (inverse of the parser; RoPE tables written as run.c's export does). */
export function serializeLlama2cCheckpoint(w: LlamaWeights): Uint8Array {
  const c = w.config;
  const hs = c.dim / c.nHeads;
  const parts: Float32Array[] = [w.tokEmbedding];
  const keys: (keyof LayerWeights)[] = ['attnNorm', 'wq', 'wk', 'wv', 'wo', 'ffnNorm', 'w1', 'w2', 'w3'];
  for (const k of keys) for (const layer of w.layers) parts.push(layer[k]);
  parts.push(w.finalNorm);
  const cosT = new Float32Array((c.maxSeqLen * hs) / 2);
  const sinT = new Float32Array((c.maxSeqLen * hs) / 2);
  for (let p = 0; p < c.maxSeqLen; p++) {
    for (let i = 0; i < hs / 2; i++) {
      const ang = p / Math.pow(c.ropeTheta, (2 * i) / hs);
      cosT[(p * hs) / 2 + i] = Math.cos(ang);
      sinT[(p * hs) / 2 + i] = Math.sin(ang);
    }
  }
  parts.push(cosT, sinT);
  if (!c.tiedClassifier) {
    if (!w.classifier) throw new Error('untied config but no classifier weights');
    parts.push(w.classifier);
  }
  const total = parts.reduce((a, p) => a + p.length, 0);
  const out = new Uint8Array(HEADER_BYTES + total * 4);
  const hdr = new Int32Array(out.buffer, 0, HEADER_INTS);
  hdr.set([
    c.dim,
    c.hiddenDim,
    c.nLayers,
    c.nHeads,
    c.nKvHeads,
    c.tiedClassifier ? c.vocabSize : -c.vocabSize,
    c.maxSeqLen,
  ]);
  const body = new Float32Array(out.buffer, HEADER_BYTES, total);
  let o = 0;
  for (const p of parts) {
    body.set(p, o);
    o += p.length;
  }
  return out;
}
