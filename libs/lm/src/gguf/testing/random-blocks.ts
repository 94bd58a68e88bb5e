import { floatToHalf } from '../../safetensors';
import { mulberry32 } from '../../weights';
import { GgmlType, ggmlBlock } from '../ggml-types';

/** Byte offsets of the fp16 scale fields inside one block of each quantised type. */
const SCALE_FIELDS: Partial<Record<number, number[]>> = {
  [GgmlType.Q8_0]: [0],
  [GgmlType.Q4_0]: [0],
  [GgmlType.Q4_1]: [0, 2],
  [GgmlType.Q4_K]: [0, 2],
  [GgmlType.Q6_K]: [208],
};

/**
 * Seeded random data for `nBlocks` blocks of a supported type: random quant bytes with finite fp16
 * scales (random bytes would give NaN/Inf scales), or for F16/BF16 random finite values. The same
 * bytes were de-quantised with gguf-py to get the reference checksums in dequantize.spec.ts.
 */
export function randomGgmlData(type: number, nBlocks: number, seed: number): Uint8Array {
  const block = ggmlBlock(type);
  if (!block) throw new Error(`no block layout for type ${type}`);
  const rand = mulberry32(seed);
  const bytes = new Uint8Array(nBlocks * block.bytesPerBlock);
  for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(rand() * 256);
  const setHalf = (at: number, v: number): void => {
    const h = floatToHalf(v);
    bytes[at] = h & 0xff;
    bytes[at + 1] = h >> 8;
  };
  if (type === GgmlType.F16 || type === GgmlType.BF16) {
    // Clear one exponent bit where the exponent is all ones, so no value is Inf or NaN.
    const expMask = type === GgmlType.F16 ? 0x7c : 0x7f;
    for (let i = 1; i < bytes.length; i += 2) {
      if (type === GgmlType.F16 && (bytes[i] & 0x7c) === expMask) bytes[i] &= ~0x40;
      if (type === GgmlType.BF16 && (bytes[i] & 0x7f) === expMask && bytes[i - 1] & 0x80) bytes[i] &= ~0x40;
    }
    return bytes;
  }
  const fields = SCALE_FIELDS[type] ?? [];
  for (let b = 0; b < nBlocks; b++)
    for (const f of fields) setHalf(b * block.bytesPerBlock + f, (rand() - 0.3) * 0.05);
  return bytes;
}
