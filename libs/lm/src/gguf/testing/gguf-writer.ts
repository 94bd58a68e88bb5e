import { writeFileSync } from 'node:fs';
import { floatToHalf } from '../../safetensors';
import { LlamaWeights, LAYER_TENSORS } from '../../weights';
import { GgmlType } from '../ggml-types';
import { GgufValueType } from '../gguf-file';

/**
 * Test-only GGUF writer: explicit value types (so every metadata type can be exercised) and tensors
 * either as raw bytes of any ggml type (hand-built quantised blocks) or as float32 values stored as
 * F32, F16 or BF16. Writes v2 and v3 files, which share one layout.
 */

type ScalarType = Exclude<GgufValueType, typeof GgufValueType.ARRAY>;
export type GgufWriterValue =
  | { type: ScalarType; value: number | bigint | boolean | string }
  | { type: typeof GgufValueType.ARRAY; itemType: ScalarType; value: (number | bigint | boolean | string)[] }
  | { type: typeof GgufValueType.ARRAY; itemType: typeof GgufValueType.ARRAY; value: GgufWriterValue[] };

export type GgufWriterTensor =
  | { name: string; dims: number[]; type: number; bytes: Uint8Array }
  | { name: string; dims: number[]; values: Float32Array; type?: 0 | 1 | 30 };

export interface GgufWriterSpec {
  version?: number;
  /** Written as general.alignment (uint32) unless undefined; the data section and offsets follow it. */
  alignment?: number;
  metadata?: [string, GgufWriterValue][];
  tensors?: GgufWriterTensor[];
}

class ByteSink {
  private chunks: Uint8Array[] = [];
  length = 0;
  push(b: Uint8Array): void {
    this.chunks.push(b);
    this.length += b.byteLength;
  }
  num(kind: 'u8' | 'i8' | 'u16' | 'i16' | 'u32' | 'i32' | 'f32' | 'f64', v: number): void {
    const size = { u8: 1, i8: 1, u16: 2, i16: 2, u32: 4, i32: 4, f32: 4, f64: 8 }[kind];
    const b = Buffer.alloc(size);
    if (kind === 'u8') b.writeUInt8(v);
    else if (kind === 'i8') b.writeInt8(v);
    else if (kind === 'u16') b.writeUInt16LE(v);
    else if (kind === 'i16') b.writeInt16LE(v);
    else if (kind === 'u32') b.writeUInt32LE(v);
    else if (kind === 'i32') b.writeInt32LE(v);
    else if (kind === 'f32') b.writeFloatLE(v);
    else b.writeDoubleLE(v);
    this.push(b);
  }
  u64(v: number | bigint): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    this.push(b);
  }
  i64(v: number | bigint): void {
    const b = Buffer.alloc(8);
    b.writeBigInt64LE(BigInt(v));
    this.push(b);
  }
  str(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.u64(b.byteLength);
    this.push(b);
  }
  pad(to: number): void {
    const n = (to - (this.length % to)) % to;
    if (n) this.push(new Uint8Array(n));
  }
  concat(): Uint8Array {
    return Buffer.concat(this.chunks);
  }
}

function writeScalar(s: ByteSink, type: ScalarType, v: number | bigint | boolean | string): void {
  switch (type) {
    case GgufValueType.U8:
      return s.num('u8', Number(v));
    case GgufValueType.I8:
      return s.num('i8', Number(v));
    case GgufValueType.U16:
      return s.num('u16', Number(v));
    case GgufValueType.I16:
      return s.num('i16', Number(v));
    case GgufValueType.U32:
      return s.num('u32', Number(v));
    case GgufValueType.I32:
      return s.num('i32', Number(v));
    case GgufValueType.F32:
      return s.num('f32', Number(v));
    case GgufValueType.BOOL:
      return s.num('u8', v ? 1 : 0);
    case GgufValueType.STRING:
      return s.str(String(v));
    case GgufValueType.U64:
      return s.u64(v as number | bigint);
    case GgufValueType.I64:
      return s.i64(v as number | bigint);
    case GgufValueType.F64:
      return s.num('f64', Number(v));
  }
}

function writeValue(s: ByteSink, v: GgufWriterValue, withType: boolean): void {
  if (withType) s.num('u32', v.type);
  if (v.type !== GgufValueType.ARRAY) return writeScalar(s, v.type, v.value);
  s.num('u32', v.itemType);
  s.u64(v.value.length);
  if (v.itemType === GgufValueType.ARRAY)
    for (const x of v.value as GgufWriterValue[]) writeValue(s, x, false);
  else for (const x of v.value as (number | bigint | boolean | string)[]) writeScalar(s, v.itemType, x);
}

/** Encodes float32 values as F32, F16 (round to nearest even) or BF16 (truncated) bytes. */
export function encodeFloats(values: Float32Array, type: 0 | 1 | 30): Uint8Array {
  if (type === GgmlType.F32) return new Uint8Array(Float32Array.from(values).buffer);
  const out = Buffer.alloc(2 * values.length);
  const bits = new Uint32Array(Float32Array.from(values).buffer);
  for (let i = 0; i < values.length; i++)
    out.writeUInt16LE(type === GgmlType.F16 ? floatToHalf(values[i]) : bits[i] >>> 16, 2 * i);
  return out;
}

export function serializeGguf(spec: GgufWriterSpec): Uint8Array {
  const alignment = spec.alignment ?? 32;
  const metadata: [string, GgufWriterValue][] = [...(spec.metadata ?? [])];
  if (spec.alignment !== undefined)
    metadata.push(['general.alignment', { type: GgufValueType.U32, value: alignment }]);
  const tensors = (spec.tensors ?? []).map((t) =>
    'bytes' in t
      ? t
      : { name: t.name, dims: t.dims, type: t.type ?? 0, bytes: encodeFloats(t.values, t.type ?? 0) },
  );

  const s = new ByteSink();
  s.push(Buffer.from('GGUF', 'latin1'));
  s.num('u32', spec.version ?? 3);
  s.u64(tensors.length);
  s.u64(metadata.length);
  for (const [k, v] of metadata) {
    s.str(k);
    writeValue(s, v, true);
  }
  let offset = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    offsets.push(offset);
    offset += Math.ceil(t.bytes.byteLength / alignment) * alignment;
  }
  tensors.forEach((t, i) => {
    s.str(t.name);
    s.num('u32', t.dims.length);
    for (const d of t.dims) s.u64(d);
    s.num('u32', t.type);
    s.u64(offsets[i]);
  });
  s.pad(alignment);
  for (const t of tensors) {
    s.push(t.bytes);
    s.pad(alignment);
  }
  return s.concat();
}

export function writeGguf(path: string, spec: GgufWriterSpec): void {
  writeFileSync(path, serializeGguf(spec));
}

/** llama.cpp's tensor names for each per-layer weight. */
const LAYER_NAMES = {
  attnNorm: 'attn_norm',
  wq: 'attn_q',
  wk: 'attn_k',
  wv: 'attn_v',
  wo: 'attn_output',
  ffnNorm: 'ffn_norm',
  w1: 'ffn_gate',
  w2: 'ffn_down',
  w3: 'ffn_up',
} as const;

/** The metadata and tensors llama.cpp's converter would write for these weights (float types only). */
export function llamaGgufSpec(
  w: LlamaWeights,
  opts: { type?: 0 | 1 | 30; version?: number; alignment?: number; arch?: string } = {},
): GgufWriterSpec {
  const c = w.config;
  const arch = opts.arch ?? 'llama';
  const u32 = (value: number): GgufWriterValue => ({ type: GgufValueType.U32, value });
  const f32 = (value: number): GgufWriterValue => ({ type: GgufValueType.F32, value });
  const type = opts.type ?? 0;
  const tensors: GgufWriterTensor[] = [
    { name: 'token_embd.weight', dims: [c.dim, c.vocabSize], values: w.tokEmbedding, type },
  ];
  const shape2 = (n: number): number[] => [c.dim, n / c.dim];
  w.layers.forEach((layer, l) => {
    for (const t of LAYER_TENSORS) {
      const values = layer[t];
      const dims =
        t === 'attnNorm' || t === 'ffnNorm'
          ? [c.dim]
          : t === 'w2'
            ? [c.hiddenDim, c.dim]
            : shape2(values.length);
      // Norms stay F32 as llama.cpp keeps them.
      tensors.push({
        name: `blk.${l}.${LAYER_NAMES[t]}.weight`,
        dims,
        values,
        type: dims.length === 1 ? 0 : type,
      });
    }
  });
  tensors.push({ name: 'output_norm.weight', dims: [c.dim], values: w.finalNorm, type: 0 });
  if (w.classifier)
    tensors.push({ name: 'output.weight', dims: [c.dim, c.vocabSize], values: w.classifier, type });
  return {
    version: opts.version,
    alignment: opts.alignment,
    metadata: [
      ['general.architecture', { type: GgufValueType.STRING, value: arch }],
      [`${arch}.block_count`, u32(c.nLayers)],
      [`${arch}.context_length`, u32(c.maxSeqLen)],
      [`${arch}.embedding_length`, u32(c.dim)],
      [`${arch}.feed_forward_length`, u32(c.hiddenDim)],
      [`${arch}.attention.head_count`, u32(c.nHeads)],
      [`${arch}.attention.head_count_kv`, u32(c.nKvHeads)],
      [`${arch}.rope.freq_base`, f32(c.ropeTheta)],
      [`${arch}.attention.layer_norm_rms_epsilon`, f32(c.normEps)],
      [`${arch}.rope.dimension_count`, u32(c.dim / c.nHeads)],
    ],
    tensors,
  };
}
