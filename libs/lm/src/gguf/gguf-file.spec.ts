import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GgmlType } from './ggml-types';
import { GgufTensorReader, GgufValueType, readGguf, readGgufTensor } from './gguf-file';
import {
  ggufArray,
  ggufBool,
  ggufHas,
  ggufNumber,
  ggufNumberArray,
  ggufString,
  ggufStringArray,
} from './gguf-metadata';
import { GgufWriterSpec, GgufWriterValue, serializeGguf, writeGguf } from './testing/gguf-writer';

const T = GgufValueType;

/** One metadata entry of every value type, arrays of scalars, of strings, of arrays, and empty. */
const EVERY_TYPE: [string, GgufWriterValue][] = [
  ['t.u8', { type: T.U8, value: 255 }],
  ['t.i8', { type: T.I8, value: -128 }],
  ['t.u16', { type: T.U16, value: 65535 }],
  ['t.i16', { type: T.I16, value: -32768 }],
  ['t.u32', { type: T.U32, value: 4294967295 }],
  ['t.i32', { type: T.I32, value: -2147483648 }],
  ['t.f32', { type: T.F32, value: 1e-5 }],
  ['t.f32b', { type: T.F32, value: 100000 }],
  ['t.bool.true', { type: T.BOOL, value: true }],
  ['t.bool.false', { type: T.BOOL, value: false }],
  ['t.string', { type: T.STRING, value: 'héllo ✓ 世界' }],
  ['t.empty.string', { type: T.STRING, value: '' }],
  ['t.u64.small', { type: T.U64, value: 9007199254740991n }],
  ['t.u64.big', { type: T.U64, value: 18446744073709551615n }],
  ['t.i64', { type: T.I64, value: -5n }],
  ['t.i64.big', { type: T.I64, value: -9223372036854775808n }],
  ['t.f64', { type: T.F64, value: 0.1 }],
  ['t.arr.i32', { type: T.ARRAY, itemType: T.I32, value: [1, -2, 3] }],
  ['t.arr.str', { type: T.ARRAY, itemType: T.STRING, value: ['a', 'Ġb', ''] }],
  ['t.arr.f32', { type: T.ARRAY, itemType: T.F32, value: [0.5, -1e-3] }],
  ['t.arr.bool', { type: T.ARRAY, itemType: T.BOOL, value: [true, false] }],
  ['t.arr.u64', { type: T.ARRAY, itemType: T.U64, value: [1n, 2n ** 60n] }],
  ['t.arr.empty', { type: T.ARRAY, itemType: T.U8, value: [] }],
  [
    't.arr.nested',
    {
      type: T.ARRAY,
      itemType: T.ARRAY,
      value: [
        { type: T.ARRAY, itemType: T.U8, value: [1, 2] },
        { type: T.ARRAY, itemType: T.STRING, value: ['x'] },
      ],
    },
  ],
];

const EXPECTED_METADATA: [string, unknown][] = [
  ['t.u8', 255],
  ['t.i8', -128],
  ['t.u16', 65535],
  ['t.i16', -32768],
  ['t.u32', 4294967295],
  ['t.i32', -2147483648],
  ['t.f32', 1e-5],
  ['t.f32b', 100000],
  ['t.bool.true', true],
  ['t.bool.false', false],
  ['t.string', 'héllo ✓ 世界'],
  ['t.empty.string', ''],
  ['t.u64.small', 9007199254740991],
  ['t.u64.big', 18446744073709551615n],
  ['t.i64', -5],
  ['t.i64.big', -9223372036854775808n],
  ['t.f64', 0.1],
  ['t.arr.i32', [1, -2, 3]],
  ['t.arr.str', ['a', 'Ġb', '']],
  ['t.arr.f32', [0.5, -1e-3]],
  ['t.arr.bool', [true, false]],
  ['t.arr.u64', [1, 2n ** 60n]],
  ['t.arr.empty', []],
  ['t.arr.nested', [[1, 2], ['x']]],
];

function rawFloats(values: number[]): Uint8Array {
  return new Uint8Array(Float32Array.from(values).buffer);
}

/** A small file: an F32 matrix, an F16 vector, a Q8_0 block and a Q5_K super-block (readable index, unreadable data). */
function sampleSpec(version: number, alignment?: number): GgufWriterSpec {
  const q8 = new Uint8Array(34);
  q8.set([0x00, 0x3c], 0); // d = 1
  for (let j = 0; j < 32; j++) q8[2 + j] = (j - 16) & 0xff;
  return {
    version,
    alignment,
    metadata: EVERY_TYPE,
    tensors: [
      { name: 'm.f32', dims: [3, 2], values: Float32Array.from([1, 2, 3, 4, 5, 6]) },
      { name: 'v.f16', dims: [5], values: Float32Array.from([0.5, -1, 2, 65504, 0]), type: 1 },
      { name: 'b.q8', dims: [32], type: GgmlType.Q8_0, bytes: q8 },
      { name: 'k.q5k', dims: [256], type: GgmlType.Q5_K, bytes: new Uint8Array(176) },
    ],
  };
}

describe('readGguf', () => {
  let dir: string;
  beforeAll(() => (dir = mkdtempSync(join(tmpdir(), 'cprec-gguf-'))));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, bytes: Uint8Array): string => {
    const p = join(dir, name);
    writeFileSync(p, bytes);
    return p;
  };

  it.each([
    [2, undefined],
    [3, undefined],
    [3, 64],
    [2, 8],
    [3, 1],
  ])(
    'reads v%i files with alignment %s: every metadata value type and the tensor index',
    (version, alignment) => {
      const path = file(`v${version}-a${alignment}.gguf`, serializeGguf(sampleSpec(version, alignment)));
      const g = readGguf(path);
      expect(g.version).toBe(version);
      expect(g.alignment).toBe(alignment ?? 32);
      expect(g.fileSize).toBe(readFileSync(path).byteLength);
      for (const [k, v] of EXPECTED_METADATA) expect([k, g.metadata.get(k)]).toEqual([k, v]);
      expect([...g.tensors.keys()]).toEqual(['m.f32', 'v.f16', 'b.q8', 'k.q5k']);
      const m = g.tensors.get('m.f32');
      expect(m).toMatchObject({ dims: [3, 2], type: 0, typeName: 'F32', byteLength: 24, elementCount: 6 });
      expect(g.tensors.get('k.q5k')).toMatchObject({ typeName: 'Q5_K', byteLength: 176, elementCount: 256 });
      for (const t of g.tensors.values()) expect(t.dataOffset % g.alignment).toBe(0);

      expect(Array.from(readGgufTensor(g, 'm.f32'))).toEqual([1, 2, 3, 4, 5, 6]);
      expect(Array.from(readGgufTensor(g, 'v.f16'))).toEqual([0.5, -1, 2, 65504, 0]);
      expect(Array.from(readGgufTensor(g, 'b.q8'))).toEqual(Array.from({ length: 32 }, (_, j) => j - 16));
    },
  );

  it('puts the data section at the next multiple of the alignment after the index', () => {
    const bytes = serializeGguf({
      alignment: 256,
      tensors: [{ name: 'x', dims: [1], values: Float32Array.of(7) }],
    });
    const g = readGguf(file('a256.gguf', bytes));
    const x = g.tensors.get('x');
    expect(x?.dataOffset).toBe(256);
    expect(new DataView(bytes.buffer, bytes.byteOffset).getFloat32(256, true)).toBe(7);
    expect(Array.from(readGgufTensor(g, 'x'))).toEqual([7]);
  });

  it('reads metadata larger than its 1 MiB read window: a 2.5 MB string and 200k strings across windows', () => {
    const big = 'ab€'.repeat(500_000); // 2.5 MB of UTF-8
    const many = Array.from({ length: 200_000 }, (_, i) => `tok${i}`);
    const bytes = serializeGguf({
      metadata: [
        ['before', { type: T.U8, value: 7 }],
        ['big', { type: T.STRING, value: big }],
        ['many', { type: T.ARRAY, itemType: T.STRING, value: many }],
        ['after', { type: T.F64, value: -2.5 }],
      ],
      tensors: [{ name: 'x', dims: [2], values: Float32Array.of(3, 4) }],
    });
    const g = readGguf(file('big.gguf', bytes));
    expect(g.metadata.get('before')).toBe(7);
    expect(g.metadata.get('big')).toBe(big);
    expect(ggufStringArray(g, 'many')).toEqual(many);
    expect(g.metadata.get('after')).toBe(-2.5);
    expect(Array.from(readGgufTensor(g, 'x'))).toEqual([3, 4]);
  });

  it('reads many tensors through one reader that reuses its buffer', () => {
    const g = readGguf(file('reader.gguf', serializeGguf(sampleSpec(3))));
    const r = new GgufTensorReader(g);
    try {
      expect(Array.from(r.read('b.q8'))[31]).toBe(15);
      expect(Array.from(r.read('v.f16'))[0]).toBe(0.5);
      expect(Array.from(r.read('b.q8'))[0]).toBe(-16);
    } finally {
      r.close();
    }
  });

  it('typed metadata getters: values, fallbacks, missing keys and wrong types', () => {
    const g = readGguf(file('meta.gguf', serializeGguf(sampleSpec(3))));
    expect(ggufString(g, 't.string')).toBe('héllo ✓ 世界');
    expect(ggufNumber(g, 't.u32')).toBe(4294967295);
    expect(ggufNumber(g, 't.f32')).toBe(1e-5);
    expect(ggufBool(g, 't.bool.true')).toBe(true);
    expect(ggufArray(g, 't.arr.nested')).toEqual([[1, 2], ['x']]);
    expect(ggufStringArray(g, 't.arr.str')).toEqual(['a', 'Ġb', '']);
    expect(ggufNumberArray(g, 't.arr.i32')).toEqual([1, -2, 3]);
    expect(ggufHas(g, 't.u8')).toBe(true);
    expect(ggufHas(g, 'nope')).toBe(false);
    expect(ggufNumber(g, 'nope', 42)).toBe(42);
    expect(ggufString(g, 'nope', 'dflt')).toBe('dflt');
    expect(ggufBool(g, 'nope', false)).toBe(false);
    expect(() => ggufNumber(g, 'llama.block_count')).toThrow(/missing metadata key llama\.block_count/);
    expect(() => ggufNumber(g, 't.string')).toThrow(/t\.string should be a number, but is the string "héllo/);
    expect(() => ggufString(g, 't.u8')).toThrow(/t\.u8 should be a string, but is number 255/);
    expect(() => ggufNumber(g, 't.u64.big')).toThrow(/does not fit a number/);
    expect(() => ggufStringArray(g, 't.arr.i32')).toThrow(/t\.arr\.i32\[0\] should be a string/);
    expect(() => ggufNumberArray(g, 't.arr.u64')).toThrow(/t\.arr\.u64\[1\] should be a number/);
  });

  describe('refuses bad files with an error naming the problem', () => {
    const good = (): Uint8Array => serializeGguf(sampleSpec(3));

    it('wrong magic: says what the first bytes were', () => {
      const zip = Uint8Array.from([0x50, 0x4b, 0x03, 0x04, ...new Array(60).fill(0)]);
      expect(() => readGguf(file('zip.gguf', zip))).toThrow(
        /zip\.gguf is not a GGUF file: it starts with bytes 50 4b 03 04 \("PK\.\."\) instead of "GGUF"/,
      );
      const llama2c = new Uint8Array(readFileSync(file('tmp', good())));
      llama2c.set([0x20, 0x00, 0x00, 0x00]);
      expect(() => readGguf(file('bin.gguf', llama2c))).toThrow(
        /not a GGUF file: it starts with bytes 20 00 00 00/,
      );
    });

    it('unsupported versions: v1 with its reason, future and big-endian ones', () => {
      expect(() => readGguf(file('v1.gguf', serializeGguf({ version: 1 })))).toThrow(
        /GGUF version 1 \(32-bit counts\), which cprec does not read/,
      );
      expect(() => readGguf(file('v4.gguf', serializeGguf({ version: 4 })))).toThrow(
        /has GGUF version 4, which cprec does not read \(supported: 2, 3\)$/,
      );
      expect(() => readGguf(file('be.gguf', serializeGguf({ version: 0x03000000 })))).toThrow(
        /looks like a big-endian GGUF/,
      );
    });

    it('truncated in the header, the metadata, the tensor index or the tensor data', () => {
      const bytes = good();
      const g = readGguf(file('whole.gguf', bytes));
      const cut = (n: number): string => file(`cut-${n}.gguf`, bytes.subarray(0, n));
      expect(() => readGguf(cut(2))).toThrow(
        /truncated GGUF file .*reading header \(magic\) needs bytes 0\.\.4 but the file ends at byte 2/,
      );
      expect(() => readGguf(cut(14))).toThrow(/truncated GGUF file .*reading header \(tensor count\)/);
      // Cut inside the value of t.string, then inside the big string array.
      const at = (s: string): number => Buffer.from(bytes).indexOf(Buffer.from(s));
      expect(() => readGguf(cut(at('héllo') + 3))).toThrow(
        /truncated GGUF file .*reading metadata value of t\.string/,
      );
      expect(() => readGguf(cut(at('Ġb') + 1))).toThrow(
        /truncated GGUF file .*reading metadata value of t\.arr\.str/,
      );
      expect(() => readGguf(cut(at('t.arr.nested') + 5))).toThrow(
        /truncated GGUF file .*reading metadata entry 23 of 24 \(key\)/,
      );
      expect(() => readGguf(cut(at('v.f16') + 10))).toThrow(
        /truncated GGUF file .*reading tensor index entry for v\.f16/,
      );
      expect(() => readGguf(cut(at('k.q5k') - 2))).toThrow(
        /truncated GGUF file .*reading tensor index entry 3 of 4/,
      );
      const q8 = g.tensors.get('b.q8');
      expect(() => readGguf(cut((q8?.dataOffset ?? 0) + 10))).toThrow(
        /truncated GGUF file .*the data of tensor b\.q8 \(bytes \d+\.\.\d+\) extends past the end of the file/,
      );
      // A file that shrinks after its index was read.
      const p = file('shrinks.gguf', bytes);
      const before = readGguf(p);
      writeFileSync(p, bytes.subarray(0, bytes.byteLength - 200));
      expect(() => readGgufTensor(before, 'm.f32')).toThrow(/changed since its index was read/);
    });

    it('tensor type it cannot de-quantise, unknown type ids and missing tensors', () => {
      const g = readGguf(file('types.gguf', good()));
      expect(() => readGgufTensor(g, 'k.q5k')).toThrow(
        'tensor k.q5k has type Q5_K, which cprec cannot de-quantise (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q6_K)',
      );
      expect(() => readGgufTensor(g, 'blk.0.attn_q.weight')).toThrow(/has no tensor blk\.0\.attn_q\.weight/);
      const unknown = serializeGguf({
        tensors: [{ name: 'w', dims: [4], type: 99, bytes: new Uint8Array(4) }],
      });
      expect(() => readGguf(file('unknown.gguf', unknown))).toThrow(
        /tensor w has ggml type unknown type 99 \(id 99\), which has no known layout/,
      );
      const removed = serializeGguf({
        tensors: [{ name: 'w', dims: [32], type: 4, bytes: new Uint8Array(20) }],
      });
      expect(() => readGguf(file('removed.gguf', removed))).toThrow(/tensor w has ggml type Q4_2 \(id 4\)/);
    });

    it('malformed indexes: partial blocks, misaligned offsets, bad alignment, bad bool, duplicate names', () => {
      const partial = serializeGguf({
        tensors: [{ name: 'w', dims: [16, 2], type: GgmlType.Q8_0, bytes: new Uint8Array(34) }],
      });
      expect(() => readGguf(file('partial.gguf', partial))).toThrow(
        /w has 16 values per row, not a multiple of the Q8_0 block size 32/,
      );
      const align = serializeGguf({ alignment: 32, metadata: [] });
      const badAlign = Buffer.from(align);
      badAlign.writeUInt32LE(48, badAlign.indexOf(Buffer.from('general.alignment')) + 17 + 4);
      expect(() => readGguf(file('align.gguf', badAlign))).toThrow(
        /general\.alignment 48 is not a positive power of two/,
      );
      const bool = Buffer.from(serializeGguf({ metadata: [['b', { type: T.BOOL, value: true }]] }));
      bool[24 + 8 + 1 + 4] = 2; // header, key "b", value type, then the value byte
      expect(() => readGguf(file('bool.gguf', bool))).toThrow(/metadata key b has bool byte 2/);
      const dup = serializeGguf({
        tensors: [
          { name: 'w', dims: [1], values: Float32Array.of(1) },
          { name: 'w', dims: [1], values: Float32Array.of(2) },
        ],
      });
      expect(() => readGguf(file('dup.gguf', dup))).toThrow(/tensor w appears twice/);
      const misaligned = Buffer.from(
        serializeGguf({ tensors: [{ name: 'w', dims: [1], values: Float32Array.of(1) }] }),
      );
      misaligned.writeBigUInt64LE(4n, misaligned.indexOf(Buffer.from('w')) + 1 + 4 + 8 + 4);
      expect(() => readGguf(file('misaligned.gguf', misaligned))).toThrow(
        /data offset 4 is not a multiple of the alignment 32/,
      );
      expect(rawFloats([1]).byteLength).toBe(4);
    });
  });

  it('writes through writeGguf to disk the same bytes as serializeGguf', () => {
    const p = join(dir, 'w.gguf');
    writeGguf(p, sampleSpec(2, 16));
    expect(Buffer.compare(readFileSync(p), Buffer.from(serializeGguf(sampleSpec(2, 16))))).toBe(0);
  });
});
