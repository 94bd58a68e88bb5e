import { dequantize, ggmlByteLength } from './dequantize';
import { GgmlType, ggmlTypeName } from './ggml-types';
import { randomGgmlData } from './testing/random-blocks';

/** Little-endian fp16 bits of a few exactly representable values, written out rather than computed. */
const H = { one: 0x3c00, half: 0x3800, quarter: 0x3400, d16th: 0x2c00, d32nd: 0x2800, minus1: 0xbc00 };

function u16(...v: number[]): number[] {
  return v.flatMap((x) => [x & 0xff, x >> 8]);
}

describe('dequantize: float types', () => {
  it('F32 copies the little-endian bytes, even from an unaligned view', () => {
    const values = [1.5, -2, Math.fround(3.25e-20), Infinity];
    const raw = new Uint8Array(1 + 16);
    const dv = new DataView(raw.buffer);
    values.forEach((v, i) => dv.setFloat32(1 + 4 * i, v, true));
    expect(Array.from(dequantize(GgmlType.F32, raw.subarray(1), 4))).toEqual(values);
  });

  it('F16 decodes normals, subnormals, signed zero, infinities and NaN', () => {
    const bits = [0x3c00, 0xc000, 0x7bff, 0x0400, 0x03ff, 0x0001, 0x8000, 0x7c00, 0xfc00, 0x7e00, 0x3555];
    const out = dequantize(GgmlType.F16, Uint8Array.from(u16(...bits)), bits.length);
    expect(out[0]).toBe(1);
    expect(out[1]).toBe(-2);
    expect(out[2]).toBe(65504);
    expect(out[3]).toBe(2 ** -14); // smallest normal
    expect(out[4]).toBe(1023 * 2 ** -24); // largest subnormal
    expect(out[5]).toBe(2 ** -24); // smallest subnormal
    expect(Object.is(out[6], -0)).toBe(true);
    expect(out[7]).toBe(Infinity);
    expect(out[8]).toBe(-Infinity);
    expect(out[9]).toBeNaN();
    expect(out[10]).toBe(0.333251953125); // 2^(13−15) · (1 + 0x155/1024)
  });

  it('BF16 is the top half of a float32', () => {
    const bits = [0x3f80, 0xc040, 0x3fc0, 0x7f80, 0x0001, 0x8000, 0x4049];
    const out = dequantize(GgmlType.BF16, Uint8Array.from(u16(...bits)), bits.length);
    expect(out[0]).toBe(1);
    expect(out[1]).toBe(-3);
    expect(out[2]).toBe(1.5);
    expect(out[3]).toBe(Infinity);
    expect(out[4]).toBe(2 ** -133); // subnormal
    expect(Object.is(out[5], -0)).toBe(true);
    expect(out[6]).toBe(3.140625);
  });
});

describe('dequantize: 32-element blocks', () => {
  it('Q8_0: fp16 d then 32 int8, x = q·d', () => {
    const q = Array.from({ length: 32 }, (_, i) => (i === 0 ? -128 : i === 31 ? 127 : i * 7 - 100));
    const block = Uint8Array.from([...u16(H.half), ...q.map((x) => x & 0xff)]);
    const out = dequantize(GgmlType.Q8_0, block, 32);
    expect(Array.from(out)).toEqual(q.map((x) => x * 0.5));
    expect(out[0]).toBe(-64);
    expect(out[31]).toBe(63.5);
  });

  it('Q4_0: low nibbles are elements 0..15, high nibbles 16..31, x = (q−8)·d', () => {
    // byte j holds q = j in its low nibble and q = 15−j in its high nibble.
    const nibbles = Array.from({ length: 16 }, (_, j) => j | ((15 - j) << 4));
    const out = dequantize(GgmlType.Q4_0, Uint8Array.from([...u16(H.quarter), ...nibbles]), 32);
    const expected = [
      -2, -1.75, -1.5, -1.25, -1, -0.75, -0.5, -0.25, 0, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 1.75, 1.75, 1.5, 1.25,
      1, 0.75, 0.5, 0.25, 0, -0.25, -0.5, -0.75, -1, -1.25, -1.5, -1.75, -2,
    ];
    expect(Array.from(out)).toEqual(expected);
  });

  it('Q4_1: fp16 d, fp16 m, nibbles as in Q4_0, x = q·d + m', () => {
    const nibbles = Array.from({ length: 16 }, (_, j) => j | ((15 - j) << 4));
    const blocks = Uint8Array.from([
      ...u16(H.half, H.minus1),
      ...nibbles,
      ...u16(H.one, 0x4000 /* m = 2 */),
      ...new Array<number>(16).fill(0),
    ]);
    const out = dequantize(GgmlType.Q4_1, blocks, 64);
    const first = [
      -1, -0.5, 0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5, 5.5, 6, 6.5, 6.5, 6, 5.5, 5, 4.5, 4, 3.5, 3, 2.5,
      2, 1.5, 1, 0.5, 0, -0.5, -1,
    ];
    expect(Array.from(out.subarray(0, 32))).toEqual(first);
    expect(Array.from(out.subarray(32))).toEqual(new Array(32).fill(2)); // q = 0 everywhere → m
  });
});

describe('dequantize: K-quant super-blocks of 256', () => {
  /** Packs eight 6-bit scales and mins the way ggml's quantize_row_q4_K does (inverse of get_scale_min_k4). */
  function packScalesMins(sc: number[], mn: number[]): number[] {
    const b = new Array<number>(12).fill(0);
    for (let j = 0; j < 4; j++) {
      b[j] = (sc[j] & 63) | ((sc[j + 4] >> 4) << 6);
      b[j + 4] = (mn[j] & 63) | ((mn[j + 4] >> 4) << 6);
      b[j + 8] = (sc[j + 4] & 15) | ((mn[j + 4] & 15) << 4);
    }
    return b;
  }

  it('Q4_K: one super-block with known 6-bit scales and mins', () => {
    // Values ≥ 16 in slots 4..7 exercise the split high bits of the packed layout.
    const sc = [1, 2, 63, 5, 17, 33, 48, 63];
    const mn = [0, 3, 7, 63, 16, 62, 1, 35];
    const qs = Array.from({ length: 128 }, (_, i) => (i * 37 + 11) & 0xff);
    const block = Uint8Array.from([...u16(H.d16th, H.d32nd), ...packScalesMins(sc, mn), ...qs]);
    const out = dequantize(GgmlType.Q4_K, block, 256);
    // Element e belongs to group g = e/32 (one scale and min per 32 values); groups 2k and 2k+1
    // share 32 bytes of qs, the even group taking the low nibbles, the odd group the high ones.
    for (let e = 0; e < 256; e++) {
      const g = Math.floor(e / 32);
      const byte = qs[Math.floor(g / 2) * 32 + (e % 32)];
      const q = g % 2 === 0 ? byte & 15 : byte >> 4;
      expect(out[e]).toBe((1 / 16) * sc[g] * q - (1 / 32) * mn[g]);
    }
    expect(out[0]).toBe((1 / 16) * 1 * 11); // qs[0] = 11 → low nibble 11, min 0
    expect(out[255]).toBe((1 / 16) * 63 * (qs[127] >> 4) - (1 / 32) * 35);
  });

  it('Q6_K: ql low 4 bits, qh high 2 bits, an int8 scale per 16 values, fp16 d last', () => {
    const ql = Array.from({ length: 128 }, (_, i) => (i * 53 + 7) & 0xff);
    const qh = Array.from({ length: 64 }, (_, i) => (i * 29 + 3) & 0xff);
    const scales = Array.from({ length: 16 }, (_, i) => (i % 2 === 0 ? -128 + i * 9 : 127 - i * 5));
    const block = Uint8Array.from([...ql, ...qh, ...scales.map((s) => s & 0xff), ...u16(H.quarter)]);
    const out = dequantize(GgmlType.Q6_K, block, 256);
    // Element e: half n = e/128 uses ql[64n..], qh[32n..]; within it quarter k = (e%128)/32 and
    // lane l = e%32 take bits 2k..2k+1 of qh[32n+l] as the high part and a nibble of
    // ql[64n + l + 32·(k&1)] (low nibble for k<2) as the low part.
    for (let e = 0; e < 256; e++) {
      const n = Math.floor(e / 128);
      const k = Math.floor((e % 128) / 32);
      const l = e % 32;
      const lowByte = ql[64 * n + l + 32 * (k & 1)];
      const low = k < 2 ? lowByte & 15 : lowByte >> 4;
      const high = (qh[32 * n + l] >> (2 * k)) & 3;
      const q = (low | (high << 4)) - 32;
      expect(out[e]).toBe(0.25 * scales[Math.floor(e / 16)] * q);
    }
  });

  it('matches gguf-py bit for bit on seeded random blocks of every supported type', () => {
    // Reference numbers: the same bytes (randomGgmlData, seeds 11..17, 1024 values each) de-quantised
    // with gguf-py 0.19 `gguf.quants.dequantize`; its output was bit-identical to ours in full.
    const refs: [keyof typeof GgmlType, number, number, number, [number, number][]][] = [
      [
        'F16',
        11,
        -453559.2570616603,
        3082615.4352535605,
        [
          [0, -0.00011456012725830078],
          [17, 0.0206756591796875],
          [300, 1.1826171875],
          [1023, -0.2479248046875],
        ],
      ],
      [
        'BF16',
        12,
        -1.6251115042909844e38,
        1.8243443413949995e39,
        [
          [0, 2.536976671190774e-27],
          [17, -1.4971096052072654e-34],
          [300, 9.431320465698027e32],
          [1023, 143881404416.0],
        ],
      ],
      [
        'Q8_0',
        13,
        -91.79148483276367,
        970.6086235046387,
        [
          [0, 0.2208251953125],
          [17, -1.11639404296875],
          [300, -0.7702255249023438],
          [1023, 0.76251220703125],
        ],
      ],
      [
        'Q4_0',
        14,
        -6.496771812438965,
        54.84829235076904,
        [
          [0, -0.20379638671875],
          [17, -0.101898193359375],
          [300, -0.0213470458984375],
          [1023, 0.01476287841796875],
        ],
      ],
      [
        'Q4_1',
        15,
        103.53438091278076,
        127.89009380340576,
        [
          [0, 0.014892816543579102],
          [17, 0.01467752456665039],
          [300, 0.3451385498046875],
          [1023, 0.1730194091796875],
        ],
      ],
      [
        'Q4_K',
        16,
        -1500.4718952178955,
        1842.5238513946533,
        [
          [0, -0.6122159957885742],
          [17, -0.6908626556396484],
          [300, -3.03558349609375],
          [1023, -2.73215484619140625],
        ],
      ],
      [
        'Q6_K',
        17,
        -606.3161449432373,
        7778.245708465576,
        [
          [0, -28.39374542236328],
          [17, -38.412254333496094],
          [300, -3.82769775390625],
          [1023, -27.5830078125],
        ],
      ],
    ];
    for (const [name, seed, sum, absSum, samples] of refs) {
      const type = GgmlType[name];
      const blockElems = name === 'Q4_K' || name === 'Q6_K' ? 256 : name.startsWith('Q') ? 32 : 1;
      const out = dequantize(type, randomGgmlData(type, 1024 / blockElems, seed), 1024);
      let s = 0;
      let a = 0;
      for (const v of out) {
        s += v;
        a += Math.abs(v);
      }
      expect({ name, sum: s / Math.abs(sum), absSum: a / absSum }).toEqual({
        name,
        sum: expect.closeTo(Math.sign(sum), 12),
        absSum: expect.closeTo(1, 12),
      });
      for (const [i, v] of samples) expect([name, i, out[i]]).toEqual([name, i, v]);
    }
  });
});

describe('dequantize: refusals', () => {
  it('names an unsupported type and lists the supported ones', () => {
    expect(() => dequantize(GgmlType.Q5_K, new Uint8Array(176), 256)).toThrow(
      'ggml type Q5_K cannot be de-quantised by cprec (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q6_K)',
    );
    expect(() => dequantize(GgmlType.IQ2_XS, new Uint8Array(74), 256)).toThrow(
      /IQ2_XS cannot be de-quantised/,
    );
    expect(ggmlTypeName(99)).toBe('unknown type 99');
  });

  it('refuses a byte count that does not match the element count, and partial blocks', () => {
    expect(() => dequantize(GgmlType.Q8_0, new Uint8Array(33), 32)).toThrow(/must be 34 bytes, got 33/);
    expect(() => dequantize(GgmlType.Q4_K, new Uint8Array(144), 128)).toThrow(
      /not a whole number of 256-element blocks/,
    );
    expect(ggmlByteLength(GgmlType.Q6_K, 512)).toBe(420);
  });
});
