import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { ggmlBlock, ggmlTypeName } from './ggml-types';
import { dequantize, isSupportedGgmlType, supportedGgmlTypeNames } from './dequantize';

/**
 * GGUF reader (llama.cpp's model format, ggml docs/gguf.md). Only the header, metadata and tensor
 * index are read up front, through a small window over the file descriptor; tensor data is read
 * one tensor at a time on request, so a model is never held in memory both as file bytes and as
 * float32 weights.
 */

/** Type tags of metadata values. */
export const GgufValueType = {
  U8: 0,
  I8: 1,
  U16: 2,
  I16: 3,
  U32: 4,
  I32: 5,
  F32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  U64: 10,
  I64: 11,
  F64: 12,
} as const;
export type GgufValueType = (typeof GgufValueType)[keyof typeof GgufValueType];

/**
 * A metadata value. Integers of every width are numbers, except u64/i64 values beyond
 * ±Number.MAX_SAFE_INTEGER, which are bigints (so exact values are never silently rounded).
 * f32 values are the shortest decimal that rounds to the same float32, so a stored 1e-5 reads as
 * 1e-5 rather than 9.999999747378752e-6. Strings are decoded as UTF-8 (invalid bytes become U+FFFD).
 */
export type GgufValue = number | bigint | boolean | string | GgufValue[];

export interface GgufTensorInfo {
  name: string;
  /** ggml order: dims[0] (ne[0]) is the innermost, contiguous axis — the reverse of a row-major shape. */
  dims: number[];
  /** ggml type id (see `GgmlType`). */
  type: number;
  /** Name of `type`, e.g. "Q4_1". */
  typeName: string;
  /** Absolute file offset of the tensor's first byte. */
  dataOffset: number;
  byteLength: number;
  elementCount: number;
}

export interface GgufFile {
  path: string;
  version: number;
  alignment: number;
  metadata: Map<string, GgufValue>;
  /** In file order. */
  tensors: Map<string, GgufTensorInfo>;
  fileSize: number;
}

const MAGIC = 0x46554747; // "GGUF" read as a little-endian uint32
const DEFAULT_ALIGNMENT = 32;
const WINDOW = 1 << 20;

/** Sequential little-endian reads through a window over a file, with truncation errors that say what was being read. */
class FileCursor {
  private buf: Buffer = Buffer.allocUnsafe(WINDOW);
  private bufStart = 0;
  private bufLen = 0;
  pos = 0;
  /** What is being read, for the truncation message (set by the caller; cheap, never formatted per value). */
  context = 'header';

  constructor(
    private readonly fd: number,
    readonly fileSize: number,
    readonly path: string,
  ) {}

  truncated(n: number): Error {
    return new Error(
      `truncated GGUF file ${this.path}: reading ${this.context} needs bytes ${this.pos}..${this.pos + n} ` +
        `but the file ends at byte ${this.fileSize}`,
    );
  }

  /** Buffer offset of `n` bytes at `pos`, reading them in if needed; advances `pos`. */
  private take(n: number): number {
    if (this.pos + n > this.fileSize) throw this.truncated(n);
    if (this.pos < this.bufStart || this.pos + n > this.bufStart + this.bufLen) {
      if (n > this.buf.length) this.buf = Buffer.allocUnsafe(n);
      const len = Math.min(this.buf.length, this.fileSize - this.pos);
      readFully(this.fd, this.buf, len, this.pos, this.path, this.context);
      this.bufStart = this.pos;
      this.bufLen = len;
    }
    const at = this.pos - this.bufStart;
    this.pos += n;
    return at;
  }

  remaining(): number {
    return this.fileSize - this.pos;
  }

  // Each reader takes its bytes before touching `buf`: `take` may replace the window.
  u8(): number {
    const at = this.take(1);
    return this.buf[at];
  }
  i8(): number {
    const at = this.take(1);
    return this.buf.readInt8(at);
  }
  u16(): number {
    const at = this.take(2);
    return this.buf.readUInt16LE(at);
  }
  i16(): number {
    const at = this.take(2);
    return this.buf.readInt16LE(at);
  }
  u32(): number {
    const at = this.take(4);
    return this.buf.readUInt32LE(at);
  }
  i32(): number {
    const at = this.take(4);
    return this.buf.readInt32LE(at);
  }
  f32(): number {
    const at = this.take(4);
    return this.buf.readFloatLE(at);
  }
  f64(): number {
    const at = this.take(8);
    return this.buf.readDoubleLE(at);
  }
  u64(): bigint {
    const at = this.take(8);
    return this.buf.readBigUInt64LE(at);
  }
  i64(): bigint {
    const at = this.take(8);
    return this.buf.readBigInt64LE(at);
  }
  /** A view into the window, valid only until the next read. */
  bytes(n: number): Buffer {
    const at = this.take(n);
    return this.buf.subarray(at, at + n);
  }

  /** A uint64 count or size that must fit in a double exactly to be usable at all. */
  count(what: string): number {
    const v = this.u64();
    if (v > BigInt(Number.MAX_SAFE_INTEGER))
      throw new Error(`GGUF file ${this.path}: ${what} ${v} in ${this.context} is not a plausible size`);
    return Number(v);
  }

  string(): string {
    const n = this.count('string length');
    if (n > this.remaining()) throw this.truncated(n);
    return this.bytes(n).toString('utf8');
  }
}

function readFully(
  fd: number,
  buf: Uint8Array,
  len: number,
  position: number,
  path: string,
  what: string,
): void {
  let done = 0;
  while (done < len) {
    const n = readSync(fd, buf, done, len - done, position + done);
    if (n === 0)
      throw new Error(
        `truncated GGUF file ${path}: reading ${what} needs bytes ${position}..${position + len} ` +
          `but the file ended at byte ${position + done}`,
      );
    done += n;
  }
}

function safeInt(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

/** Shortest decimal that is the same float32, so metadata such as 1e-5 does not read as 9.999999747e-6. */
function shortestF32(v: number): number {
  if (v === 0 || !Number.isFinite(v)) return v;
  for (let p = 1; p < 9; p++) {
    const s = Number(v.toPrecision(p));
    if (Math.fround(s) === v) return s;
  }
  return v;
}

/** Fewest bytes one value of each type can occupy, to refuse impossible array counts before allocating. */
const MIN_VALUE_BYTES: Record<number, number> = {
  0: 1,
  1: 1,
  2: 2,
  3: 2,
  4: 4,
  5: 4,
  6: 4,
  7: 1,
  8: 8,
  9: 12,
  10: 8,
  11: 8,
  12: 8,
};

function readValue(c: FileCursor, type: number, key: string): GgufValue {
  switch (type) {
    case GgufValueType.U8:
      return c.u8();
    case GgufValueType.I8:
      return c.i8();
    case GgufValueType.U16:
      return c.u16();
    case GgufValueType.I16:
      return c.i16();
    case GgufValueType.U32:
      return c.u32();
    case GgufValueType.I32:
      return c.i32();
    case GgufValueType.F32:
      return shortestF32(c.f32());
    case GgufValueType.BOOL: {
      const b = c.u8();
      if (b > 1)
        throw new Error(`GGUF file ${c.path}: metadata key ${key} has bool byte ${b} (must be 0 or 1)`);
      return b === 1;
    }
    case GgufValueType.STRING:
      return c.string();
    case GgufValueType.ARRAY: {
      const itemType = c.u32();
      if (!(itemType in MIN_VALUE_BYTES))
        throw new Error(
          `GGUF file ${c.path}: metadata key ${key} is an array of unknown value type ${itemType}`,
        );
      const n = c.count('array length');
      if (n * MIN_VALUE_BYTES[itemType] > c.remaining()) throw c.truncated(n * MIN_VALUE_BYTES[itemType]);
      const out: GgufValue[] = new Array<GgufValue>(n);
      for (let i = 0; i < n; i++) out[i] = readValue(c, itemType, key);
      return out;
    }
    case GgufValueType.U64:
      return safeInt(c.u64());
    case GgufValueType.I64:
      return safeInt(c.i64());
    case GgufValueType.F64:
      return c.f64();
    default:
      throw new Error(`GGUF file ${c.path}: metadata key ${key} has unknown value type ${type}`);
  }
}

function describeMagic(b: Buffer): string {
  const hex = [...b].map((x) => x.toString(16).padStart(2, '0')).join(' ');
  const text = [...b].map((x) => (x >= 0x20 && x < 0x7f ? String.fromCharCode(x) : '.')).join('');
  return `${hex} ("${text}")`;
}

/** Reads the header, metadata and tensor index of a GGUF file (no tensor data). */
export function readGguf(path: string): GgufFile {
  const fd = openSync(path, 'r');
  try {
    const fileSize = fstatSync(fd).size;
    const c = new FileCursor(fd, fileSize, path);

    c.context = 'header (magic)';
    if (fileSize >= 4) {
      const head = Buffer.from(c.bytes(4));
      if (head.readUInt32LE(0) !== MAGIC)
        throw new Error(
          `${path} is not a GGUF file: it starts with bytes ${describeMagic(head)} instead of "GGUF"`,
        );
    } else c.bytes(4);

    c.context = 'header (version)';
    const version = c.u32();
    if (version === 1)
      throw new Error(
        `${path} is GGUF version 1 (32-bit counts), which cprec does not read; re-convert it with a current llama.cpp (versions 2 and 3 are supported)`,
      );
    if (version !== 2 && version !== 3) {
      // A big-endian file keeps the "GGUF" bytes but stores 2 or 3 byte-swapped.
      const hint =
        version === 0x02000000 || version === 0x03000000
          ? ' (this looks like a big-endian GGUF file; only little-endian files are supported)'
          : '';
      throw new Error(
        `${path} has GGUF version ${version}, which cprec does not read (supported: 2, 3)${hint}`,
      );
    }

    c.context = 'header (tensor count)';
    const tensorCount = c.count('tensor count');
    c.context = 'header (metadata count)';
    const kvCount = c.count('metadata count');

    const metadata = new Map<string, GgufValue>();
    for (let i = 0; i < kvCount; i++) {
      c.context = `metadata entry ${i} of ${kvCount} (key)`;
      const key = c.string();
      c.context = `metadata value of ${key}`;
      const type = c.u32();
      if (metadata.has(key)) throw new Error(`GGUF file ${path}: metadata key ${key} appears twice`);
      metadata.set(key, readValue(c, type, key));
    }

    const alignmentValue = metadata.get('general.alignment') ?? DEFAULT_ALIGNMENT;
    const alignment = typeof alignmentValue === 'number' ? alignmentValue : NaN;
    if (!Number.isInteger(alignment) || alignment <= 0 || (alignment & (alignment - 1)) !== 0)
      throw new Error(
        `GGUF file ${path}: general.alignment ${String(alignmentValue)} is not a positive power of two`,
      );

    const raw: { name: string; dims: number[]; type: number; offset: number }[] = [];
    for (let i = 0; i < tensorCount; i++) {
      c.context = `tensor index entry ${i} of ${tensorCount} (name)`;
      const name = c.string();
      c.context = `tensor index entry for ${name}`;
      const nDims = c.u32();
      if (nDims > 4)
        throw new Error(`GGUF file ${path}: tensor ${name} has ${nDims} dimensions (ggml allows at most 4)`);
      const dims: number[] = [];
      for (let d = 0; d < nDims; d++) dims.push(c.count('dimension'));
      const type = c.u32();
      const offset = c.count('data offset');
      raw.push({ name, dims, type, offset });
    }
    const dataStart = Math.ceil(c.pos / alignment) * alignment;

    const tensors = new Map<string, GgufTensorInfo>();
    for (const { name, dims, type, offset } of raw) {
      if (tensors.has(name)) throw new Error(`GGUF file ${path}: tensor ${name} appears twice in the index`);
      const typeName = ggmlTypeName(type);
      const block = ggmlBlock(type);
      if (!block)
        throw new Error(
          `GGUF file ${path}: tensor ${name} has ggml type ${typeName} (id ${type}), which has no known layout`,
        );
      const elementCount = dims.reduce((a, b) => a * b, 1);
      if (!Number.isSafeInteger(elementCount))
        throw new Error(
          `GGUF file ${path}: tensor ${name} dims [${dims.join(', ')}] are not a plausible size`,
        );
      if ((dims.length > 0 ? dims[0] : 1) % block.blockSize !== 0)
        throw new Error(
          `GGUF file ${path}: tensor ${name} has ${dims[0]} values per row, not a multiple of the ${typeName} block size ${block.blockSize}`,
        );
      if (offset % alignment !== 0)
        throw new Error(
          `GGUF file ${path}: tensor ${name} data offset ${offset} is not a multiple of the alignment ${alignment}`,
        );
      const byteLength = (elementCount / block.blockSize) * block.bytesPerBlock;
      const dataOffset = dataStart + offset;
      if (dataOffset + byteLength > fileSize)
        throw new Error(
          `truncated GGUF file ${path}: the data of tensor ${name} (bytes ${dataOffset}..${dataOffset + byteLength}) ` +
            `extends past the end of the file at byte ${fileSize}`,
        );
      tensors.set(name, { name, dims, type, typeName, dataOffset, byteLength, elementCount });
    }
    return { path, version, alignment, metadata, tensors, fileSize };
  } finally {
    closeSync(fd);
  }
}

function unsupportedTypeError(info: GgufTensorInfo): Error {
  return new Error(
    `tensor ${info.name} has type ${info.typeName}, which cprec cannot de-quantise (supported: ${supportedGgmlTypeNames()})`,
  );
}

export function ggufTensorInfo(file: GgufFile, name: string): GgufTensorInfo {
  const info = file.tensors.get(name);
  if (!info)
    throw new Error(`GGUF file ${file.path} has no tensor ${name} (it has ${file.tensors.size} tensors)`);
  return info;
}

/**
 * Reads tensors of one GGUF file through one descriptor, reusing one byte buffer sized for the
 * largest quantised tensor requested so far; float32 tensors are read straight into their result.
 * Call `close()` when done.
 */
export class GgufTensorReader {
  private fd: number;
  private scratch: Uint8Array = new Uint8Array(0);

  constructor(readonly file: GgufFile) {
    this.fd = openSync(file.path, 'r');
    const size = fstatSync(this.fd).size;
    if (size !== file.fileSize) {
      closeSync(this.fd);
      throw new Error(
        `GGUF file ${file.path} changed since its index was read (${file.fileSize} bytes then, ${size} now)`,
      );
    }
  }

  read(name: string): Float32Array {
    const info = ggufTensorInfo(this.file, name);
    if (!isSupportedGgmlType(info.type)) throw unsupportedTypeError(info);
    const what = `the data of tensor ${name}`;
    if (info.typeName === 'F32') {
      const out = new Float32Array(info.elementCount);
      readFully(this.fd, new Uint8Array(out.buffer), info.byteLength, info.dataOffset, this.file.path, what);
      return out;
    }
    if (this.scratch.byteLength < info.byteLength) this.scratch = new Uint8Array(info.byteLength);
    const bytes = this.scratch.subarray(0, info.byteLength);
    readFully(this.fd, bytes, info.byteLength, info.dataOffset, this.file.path, what);
    return dequantize(info.type, bytes, info.elementCount);
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
    this.scratch = new Uint8Array(0);
  }
}

/** Reads one tensor's bytes and de-quantises them to float32 (row-major, dims reversed). */
export function readGgufTensor(file: GgufFile, name: string): Float32Array {
  const info = ggufTensorInfo(file, name);
  if (!isSupportedGgmlType(info.type)) throw unsupportedTypeError(info);
  const reader = new GgufTensorReader(file);
  try {
    return reader.read(name);
  } finally {
    reader.close();
  }
}
