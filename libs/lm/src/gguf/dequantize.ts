import { halfToFloat } from '../safetensors';
import { GgmlType, ggmlBlock, ggmlTypeName } from './ggml-types';

/**
 * De-quantisation of ggml tensor data to float32, following ggml-quants.c's `dequantize_row_*`.
 * Every product below is exact in float32 (fp16 scale × small integers), and the one addition per
 * value is rounded once from a double, which equals float32 arithmetic; so the results are
 * bit-identical to llama.cpp's reference C, not merely close.
 */

export const SUPPORTED_GGML_TYPES: readonly number[] = [
  GgmlType.F32,
  GgmlType.F16,
  GgmlType.BF16,
  GgmlType.Q8_0,
  GgmlType.Q4_0,
  GgmlType.Q4_1,
  GgmlType.Q4_K,
  GgmlType.Q6_K,
];

export function isSupportedGgmlType(type: number): boolean {
  return SUPPORTED_GGML_TYPES.includes(type);
}

export function supportedGgmlTypeNames(): string {
  return SUPPORTED_GGML_TYPES.map(ggmlTypeName).join(', ');
}

/** Bytes that `elementCount` values of `type` occupy; throws for unknown types or partial blocks. */
export function ggmlByteLength(type: number, elementCount: number): number {
  const block = ggmlBlock(type);
  if (!block) throw new Error(`ggml type ${ggmlTypeName(type)} has no known block size`);
  if (elementCount % block.blockSize !== 0)
    throw new Error(
      `${elementCount} elements of ${ggmlTypeName(type)} are not a whole number of ${block.blockSize}-element blocks`,
    );
  return (elementCount / block.blockSize) * block.bytesPerBlock;
}

let halfTable: Float32Array | undefined;
/** All 65536 fp16 values decoded once (256 KB): ~10x faster than decoding each scale's bits. */
function halves(): Float32Array {
  if (!halfTable) {
    halfTable = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) halfTable[h] = halfToFloat(h);
  }
  return halfTable;
}

export function dequantize(type: number, bytes: Uint8Array, elementCount: number): Float32Array {
  if (!isSupportedGgmlType(type))
    throw new Error(
      `ggml type ${ggmlTypeName(type)} cannot be de-quantised by cprec (supported: ${supportedGgmlTypeNames()})`,
    );
  const expected = ggmlByteLength(type, elementCount);
  if (bytes.byteLength !== expected)
    throw new Error(
      `${ggmlTypeName(type)} data for ${elementCount} elements must be ${expected} bytes, got ${bytes.byteLength}`,
    );
  const out = new Float32Array(elementCount);
  switch (type) {
    case GgmlType.F32:
      // Copy through bytes: the input may not be 4-byte aligned in its buffer. GGUF is
      // little-endian, as is every platform Node runs tfjs on.
      new Uint8Array(out.buffer).set(bytes);
      break;
    case GgmlType.F16: {
      const t = halves();
      for (let i = 0; i < elementCount; i++) out[i] = t[bytes[2 * i] | (bytes[2 * i + 1] << 8)];
      break;
    }
    case GgmlType.BF16: {
      // bfloat16 is the upper half of a float32.
      const u = new Uint32Array(out.buffer);
      for (let i = 0; i < elementCount; i++) u[i] = ((bytes[2 * i] << 16) | (bytes[2 * i + 1] << 24)) >>> 0;
      break;
    }
    case GgmlType.Q8_0:
      dequantQ8_0(bytes, out);
      break;
    case GgmlType.Q4_0:
      dequantQ4_0(bytes, out);
      break;
    case GgmlType.Q4_1:
      dequantQ4_1(bytes, out);
      break;
    case GgmlType.Q4_K:
      dequantQ4K(bytes, out);
      break;
    case GgmlType.Q6_K:
      dequantQ6K(bytes, out);
      break;
  }
  return out;
}

/** block_q8_0: fp16 d, int8 qs[32]; x = q·d. */
function dequantQ8_0(b: Uint8Array, out: Float32Array): void {
  const t = halves();
  for (let o = 0, y = 0; y < out.length; o += 34, y += 32) {
    const d = t[b[o] | (b[o + 1] << 8)];
    for (let j = 0; j < 32; j++) out[y + j] = ((b[o + 2 + j] << 24) >> 24) * d;
  }
}

/** block_q4_0: fp16 d, 16 bytes; low nibbles are elements 0..15, high nibbles 16..31; x = (q−8)·d. */
function dequantQ4_0(b: Uint8Array, out: Float32Array): void {
  const t = halves();
  for (let o = 0, y = 0; y < out.length; o += 18, y += 32) {
    const d = t[b[o] | (b[o + 1] << 8)];
    for (let j = 0; j < 16; j++) {
      const q = b[o + 2 + j];
      out[y + j] = ((q & 0x0f) - 8) * d;
      out[y + j + 16] = ((q >> 4) - 8) * d;
    }
  }
}

/** block_q4_1: fp16 d, fp16 m, 16 bytes of nibbles laid out as in Q4_0; x = q·d + m. */
function dequantQ4_1(b: Uint8Array, out: Float32Array): void {
  const t = halves();
  for (let o = 0, y = 0; y < out.length; o += 20, y += 32) {
    const d = t[b[o] | (b[o + 1] << 8)];
    const m = t[b[o + 2] | (b[o + 3] << 8)];
    for (let j = 0; j < 16; j++) {
      const q = b[o + 4 + j];
      out[y + j] = (q & 0x0f) * d + m;
      out[y + j + 16] = (q >> 4) * d + m;
    }
  }
}

/**
 * block_q4_K (144 bytes, 256 values): fp16 d, fp16 dmin, 12 bytes packing eight 6-bit scales and
 * eight 6-bit mins (`get_scale_min_k4`), 128 bytes of nibbles. Each 64 values use 32 bytes: low
 * nibbles with scale/min 2k, high nibbles with 2k+1; x = d·sc·q − dmin·m.
 */
function dequantQ4K(b: Uint8Array, out: Float32Array): void {
  const t = halves();
  for (let o = 0, y = 0; y < out.length; o += 144) {
    const d = t[b[o] | (b[o + 1] << 8)];
    const dmin = t[b[o + 2] | (b[o + 3] << 8)];
    const s = o + 4;
    let q = o + 16;
    for (let is = 0; is < 8; is += 2) {
      const d1 = d * scaleK4(b, s, is);
      const m1 = dmin * minK4(b, s, is);
      const d2 = d * scaleK4(b, s, is + 1);
      const m2 = dmin * minK4(b, s, is + 1);
      for (let l = 0; l < 32; l++) out[y + l] = d1 * (b[q + l] & 0x0f) - m1;
      for (let l = 0; l < 32; l++) out[y + 32 + l] = d2 * (b[q + l] >> 4) - m2;
      q += 32;
      y += 64;
    }
  }
}

/** Scale j of a Q4_K super-block: j<4 the low 6 bits of byte j, else 4 bits of byte j+4 and the top 2 of byte j−4. */
function scaleK4(b: Uint8Array, s: number, j: number): number {
  return j < 4 ? b[s + j] & 63 : (b[s + j + 4] & 0x0f) | ((b[s + j - 4] >> 6) << 4);
}

/** Min j of a Q4_K super-block: j<4 the low 6 bits of byte j+4, else the high nibble of byte j+4 and the top 2 of byte j. */
function minK4(b: Uint8Array, s: number, j: number): number {
  return j < 4 ? b[s + j + 4] & 63 : (b[s + j + 4] >> 4) | ((b[s + j] >> 6) << 4);
}

/**
 * block_q6_K (210 bytes, 256 values): ql[128] low 4 bits, qh[64] high 2 bits, int8 scales[16]
 * (one per 16 values), fp16 d last. Each half of 128 values uses 64 ql, 32 qh and 8 scales;
 * x = d·scale·(q−32), multiplied in that order as ggml does.
 */
function dequantQ6K(b: Uint8Array, out: Float32Array): void {
  const t = halves();
  for (let o = 0, y = 0; y < out.length; o += 210) {
    const d = t[b[o + 208] | (b[o + 209] << 8)];
    let ql = o;
    let qh = o + 128;
    let sc = o + 192;
    for (let n = 0; n < 256; n += 128) {
      for (let l = 0; l < 32; l++) {
        const is = l >> 4;
        const h = b[qh + l];
        const q1 = ((b[ql + l] & 0x0f) | ((h & 3) << 4)) - 32;
        const q2 = ((b[ql + l + 32] & 0x0f) | (((h >> 2) & 3) << 4)) - 32;
        const q3 = ((b[ql + l] >> 4) | (((h >> 4) & 3) << 4)) - 32;
        const q4 = ((b[ql + l + 32] >> 4) | (((h >> 6) & 3) << 4)) - 32;
        out[y + l] = d * ((b[sc + is] << 24) >> 24) * q1;
        out[y + l + 32] = d * ((b[sc + is + 2] << 24) >> 24) * q2;
        out[y + l + 64] = d * ((b[sc + is + 4] << 24) >> 24) * q3;
        out[y + l + 96] = d * ((b[sc + is + 6] << 24) >> 24) * q4;
      }
      y += 128;
      ql += 64;
      qh += 32;
      sc += 8;
    }
  }
}
