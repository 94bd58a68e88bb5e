import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  decodeWeights,
  encodeWeights,
  MANIFEST_FILE,
  readWeightsDir,
  WEIGHTS_FILE,
  writeWeightsDir,
} from './weights-io';

const weights = [
  { name: 'a', shape: [2, 3], values: Float32Array.from([1, 2, 3, 4, 5, 6.5]) },
  { name: 'b', shape: [1], values: Float32Array.from([-0.25]) },
];

describe('weights-io', () => {
  it('round-trips tensors through manifest + binary on disk', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weights-'));
    try {
      await writeWeightsDir(dir, encodeWeights('test', { numItems: 3 }, weights));
      const encoded = await readWeightsDir(dir);
      expect(encoded.manifest.model).toBe('test');
      expect(encoded.manifest.config).toEqual({ numItems: 3 });
      expect(encoded.data.length).toBe(28);
      const decoded = decodeWeights(encoded);
      expect(decoded.map((w) => [w.name, w.shape, Array.from(w.values)])).toEqual(
        weights.map((w) => [w.name, w.shape, Array.from(w.values)]),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('detects a corrupted binary by its checksum', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weights-'));
    try {
      await writeWeightsDir(dir, encodeWeights('test', {}, weights));
      const bin = readFileSync(join(dir, WEIGHTS_FILE));
      bin[0] ^= 0xff;
      writeFileSync(join(dir, WEIGHTS_FILE), bin);
      expect(() => decodeWeights(readWeightsDirSync(dir))).toThrow(/checksum/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

function readWeightsDirSync(dir: string) {
  return {
    manifest: JSON.parse(readFileSync(join(dir, MANIFEST_FILE), 'utf8')),
    data: readFileSync(join(dir, WEIGHTS_FILE)),
  };
}
