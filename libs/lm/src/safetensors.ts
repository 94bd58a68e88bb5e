import { readFileSync, writeFileSync } from 'node:fs';

/**
 * Minimal safetensors reader/writer (https://github.com/huggingface/safetensors format: u64 LE
 * header length, JSON header {name: {dtype, shape, data_offsets}}, "__metadata__", raw LE data).
 * Hand-written because no maintained npm package reads safetensors without pulling a native or
 * browser runtime; the format is ~50 lines and is covered by round-trip tests.
 */

export type SafetensorsDtype = 'F32' | 'F16' | 'BF16' | 'F64' | 'I32' | 'I64';

export interface SafetensorsTensor {
  dtype: SafetensorsDtype;
  shape: number[];
  /** Values converted to float32 (integers included, as numbers). */
  data: Float32Array;
}

export interface SafetensorsFile {
  tensors: Map<string, SafetensorsTensor>;
  metadata: Record<string, string>;
}

const BYTES: Record<SafetensorsDtype, number> = { F32: 4, F16: 2, BF16: 2, F64: 8, I32: 4, I64: 8 };

/** IEEE half → float32. */
export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * Math.pow(2, -14) * (f / 1024);
  if (e === 31) return f ? NaN : s * Infinity;
  return s * Math.pow(2, e - 15) * (1 + f / 1024);
}

/** float32 → IEEE half, round to nearest even (for writing F16 test files). */
export function floatToHalf(v: number): number {
  const f32 = new Float32Array(1);
  const u32 = new Uint32Array(f32.buffer);
  f32[0] = v;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  return sign | half;
}

export function parseSafetensors(bytes: Uint8Array): SafetensorsFile {
  if (bytes.byteLength < 8) throw new Error('safetensors: file shorter than its 8-byte header length');
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = Number(dv.getBigUint64(0, true));
  if (headerLen > bytes.byteLength - 8)
    throw new Error(`safetensors: header length ${headerLen} exceeds file size ${bytes.byteLength}`);
  const headerText = new TextDecoder().decode(bytes.subarray(8, 8 + headerLen));
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(headerText) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`safetensors: header is not JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  const base = 8 + headerLen;
  const tensors = new Map<string, SafetensorsTensor>();
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = (raw ?? {}) as Record<string, string>;
      continue;
    }
    const info = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const dtype = info.dtype as SafetensorsDtype;
    if (!(dtype in BYTES))
      throw new Error(`safetensors: tensor ${name} has unsupported dtype ${String(info.dtype)}`);
    const shape = info.shape as number[];
    const [begin, end] = info.data_offsets as [number, number];
    const count = shape.reduce((a, b) => a * b, 1);
    if (end - begin !== count * BYTES[dtype])
      throw new Error(
        `safetensors: tensor ${name} byte range ${begin}..${end} does not match shape [${shape.join(', ')}] ${dtype}`,
      );
    if (base + end > bytes.byteLength)
      throw new Error(`safetensors: tensor ${name} extends past the end of the file`);
    const data = new Float32Array(count);
    const o = base + begin;
    switch (dtype) {
      case 'F32':
        for (let i = 0; i < count; i++) data[i] = dv.getFloat32(o + 4 * i, true);
        break;
      case 'F16':
        for (let i = 0; i < count; i++) data[i] = halfToFloat(dv.getUint16(o + 2 * i, true));
        break;
      case 'BF16': {
        // bfloat16 is the top half of a float32.
        const u = new Uint32Array(count);
        for (let i = 0; i < count; i++) u[i] = dv.getUint16(o + 2 * i, true) << 16;
        data.set(new Float32Array(u.buffer));
        break;
      }
      case 'F64':
        for (let i = 0; i < count; i++) data[i] = dv.getFloat64(o + 8 * i, true);
        break;
      case 'I32':
        for (let i = 0; i < count; i++) data[i] = dv.getInt32(o + 4 * i, true);
        break;
      case 'I64':
        for (let i = 0; i < count; i++) data[i] = Number(dv.getBigInt64(o + 8 * i, true));
        break;
    }
    tensors.set(name, { dtype, shape, data });
  }
  return { tensors, metadata };
}

export function readSafetensors(path: string): SafetensorsFile {
  return parseSafetensors(readFileSync(path));
}

export interface TensorToWrite {
  shape: number[];
  data: Float32Array;
  /** Stored dtype; default F32. */
  dtype?: 'F32' | 'F16' | 'BF16';
}

/** Serialises tensors (sorted by name, as the reference implementation does) with optional string metadata. */
export function serializeSafetensors(
  tensors: Map<string, TensorToWrite> | Record<string, TensorToWrite>,
  metadata: Record<string, string> = {},
): Uint8Array {
  const entries = [...(tensors instanceof Map ? tensors.entries() : Object.entries(tensors))].sort(
    ([a], [b]) => (a < b ? -1 : a > b ? 1 : 0),
  );
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of entries) {
    const dtype = t.dtype ?? 'F32';
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length)
      throw new Error(
        `safetensors: tensor ${name} has ${t.data.length} values for shape [${t.shape.join(', ')}]`,
      );
    const size = count * BYTES[dtype];
    header[name] = { dtype, shape: t.shape, data_offsets: [offset, offset + size] };
    offset += size;
  }
  let headerBytes = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(headerBytes.length / 8) * 8; // data section 8-byte aligned, padded with spaces
  if (padded !== headerBytes.length) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(headerBytes);
    headerBytes = p;
  }
  const out = new Uint8Array(8 + headerBytes.length + offset);
  const dv = new DataView(out.buffer);
  dv.setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let o = 8 + headerBytes.length;
  for (const [, t] of entries) {
    const dtype = t.dtype ?? 'F32';
    if (dtype === 'F32') {
      for (let i = 0; i < t.data.length; i++) dv.setFloat32(o + 4 * i, t.data[i], true);
      o += 4 * t.data.length;
    } else if (dtype === 'F16') {
      for (let i = 0; i < t.data.length; i++) dv.setUint16(o + 2 * i, floatToHalf(t.data[i]), true);
      o += 2 * t.data.length;
    } else {
      const u = new Uint32Array(Float32Array.from(t.data).buffer);
      for (let i = 0; i < t.data.length; i++) dv.setUint16(o + 2 * i, u[i] >>> 16, true); // truncating BF16
      o += 2 * t.data.length;
    }
  }
  return out;
}

export function writeSafetensors(
  path: string,
  tensors: Map<string, TensorToWrite> | Record<string, TensorToWrite>,
  metadata: Record<string, string> = {},
): void {
  writeFileSync(path, serializeSafetensors(tensors, metadata));
}
