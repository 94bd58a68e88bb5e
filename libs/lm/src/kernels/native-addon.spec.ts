import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cpuFlags, openBlasCoreTypeFor } from './native-addon';

describe('OpenBLAS core type from CPU flags', () => {
  it('picks the widest kernel family the flags allow', () => {
    expect(openBlasCoreTypeFor(new Set(['fma', 'avx2', 'avx512f', 'avx512bw', 'avx512vl', 'avx512dq']))).toBe(
      'SkylakeX',
    );
    // AVX-512 foundation alone (Knights Landing) lacks the BW/VL/DQ the SkylakeX kernels use.
    expect(openBlasCoreTypeFor(new Set(['fma', 'avx2', 'avx512f']))).toBe('Haswell');
    expect(openBlasCoreTypeFor(new Set(['fma', 'avx2']))).toBe('Haswell');
    expect(openBlasCoreTypeFor(new Set(['avx2']))).toBeNull();
    expect(openBlasCoreTypeFor(new Set())).toBeNull();
  });

  it('reads the flags line of a cpuinfo file, and nothing when there is none', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cprec-cpuinfo-'));
    try {
      const path = join(dir, 'cpuinfo');
      writeFileSync(
        path,
        'processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Processor\nflags\t\t: fpu sse avx2 fma\n\nprocessor\t: 1\nflags\t\t: fpu\n',
      );
      expect([...cpuFlags(path)]).toEqual(['fpu', 'sse', 'avx2', 'fma']);
      expect(cpuFlags(join(dir, 'missing')).size).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
