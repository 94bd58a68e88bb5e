import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { floatToHalf, halfToFloat, parseSafetensors, readSafetensors, writeSafetensors } from './safetensors';

describe('safetensors', () => {
  let dir: string;
  beforeAll(() => (dir = mkdtempSync(join(tmpdir(), 'cprec-st-'))));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('round-trips F32 exactly, F16/BF16 within their precision, with metadata and an aligned data section', () => {
    const a = Float32Array.from({ length: 12 }, (_, i) => Math.sin(i) * 3.7);
    const b = Float32Array.from([0, -1.5, 65504, 1e-5, -2.25, 3.140625]);
    const path = join(dir, 'x.safetensors');
    writeSafetensors(
      path,
      {
        'model.a': { shape: [3, 4], data: a },
        'b.half': { shape: [6], data: b, dtype: 'F16' },
        'c.bf': { shape: [2, 3], data: b, dtype: 'BF16' },
      },
      { note: 'hello' },
    );
    const raw = readFileSync(path);
    const headerLen = Number(raw.readBigUInt64LE(0));
    expect(headerLen % 8).toBe(0);
    expect(JSON.parse(raw.subarray(8, 8 + headerLen).toString('utf8'))).toMatchObject({
      __metadata__: { note: 'hello' },
      'model.a': { dtype: 'F32', shape: [3, 4] },
    });
    const f = readSafetensors(path);
    expect(f.metadata).toEqual({ note: 'hello' });
    expect([...f.tensors.keys()].sort()).toEqual(['b.half', 'c.bf', 'model.a']);
    expect(Array.from(f.tensors.get('model.a')?.data ?? [])).toEqual(Array.from(a));
    const half = f.tensors.get('b.half')?.data ?? new Float32Array();
    b.forEach((v, i) => expect(Math.abs(half[i] - v)).toBeLessThanOrEqual(Math.abs(v) * 1e-3 + 1e-7));
    const bf = f.tensors.get('c.bf');
    expect(bf?.shape).toEqual([2, 3]);
    b.forEach((v, i) => expect(Math.abs((bf?.data[i] ?? NaN) - v)).toBeLessThanOrEqual(Math.abs(v) / 128));
  });

  it('converts half precision special values', () => {
    expect(halfToFloat(0x3c00)).toBe(1);
    expect(halfToFloat(0xc000)).toBe(-2);
    expect(halfToFloat(0x7c00)).toBe(Infinity);
    expect(halfToFloat(0x0001)).toBeCloseTo(5.960464477539063e-8, 15);
    for (const v of [1, -2, 0.5, 65504, 6.103515625e-5, 5.960464477539063e-8])
      expect(halfToFloat(floatToHalf(v))).toBe(v);
  });

  it('rejects corrupt files with a reason', () => {
    const bad = new Uint8Array(16);
    new DataView(bad.buffer).setBigUint64(0, 100n, true);
    expect(() => parseSafetensors(bad)).toThrow(/exceeds file size/);
  });
});
