import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { NamedWeight } from './params';

/**
 * A model's weights on disk, safetensors-like but simpler: `manifest.json` (model kind, config,
 * one entry per tensor with its byte range, sha256 of the binary) + `weights.bin` (little-endian
 * float32 tensors back to back). Hand-written because the format is ~60 lines and the one library
 * for safetensors in JS would add a dependency for no gain.
 */
export const WEIGHTS_FORMAT = 'cprec-weights';
export const WEIGHTS_FORMAT_VERSION = 1;
export const MANIFEST_FILE = 'manifest.json';
export const WEIGHTS_FILE = 'weights.bin';

export interface TensorEntry {
  name: string;
  dtype: 'float32';
  shape: number[];
  byteOffset: number;
  byteLength: number;
}

export interface WeightsManifest {
  format: typeof WEIGHTS_FORMAT;
  version: typeof WEIGHTS_FORMAT_VERSION;
  /** Which model class wrote the weights, e.g. `sasrec`. */
  model: string;
  /** The model's full config, so that a loader can rebuild the same architecture. */
  config: Record<string, unknown>;
  tensors: TensorEntry[];
  /** sha256 (hex) of `weights.bin`, verified on read. */
  sha256: string;
}

export interface EncodedWeights {
  manifest: WeightsManifest;
  data: Buffer;
}

export function encodeWeights(
  model: string,
  config: Record<string, unknown>,
  weights: readonly NamedWeight[],
): EncodedWeights {
  const tensors: TensorEntry[] = [];
  let offset = 0;
  for (const weight of weights) {
    const byteLength = weight.values.length * 4;
    tensors.push({
      name: weight.name,
      dtype: 'float32',
      shape: [...weight.shape],
      byteOffset: offset,
      byteLength,
    });
    offset += byteLength;
  }
  const data = Buffer.alloc(offset);
  weights.forEach((weight, i) => {
    const target = new Float32Array(
      data.buffer,
      data.byteOffset + tensors[i].byteOffset,
      weight.values.length,
    );
    target.set(weight.values);
  });
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1)
    throw new Error('weights-io assumes a little-endian host');
  const sha256 = createHash('sha256').update(data).digest('hex');
  return {
    manifest: { format: WEIGHTS_FORMAT, version: WEIGHTS_FORMAT_VERSION, model, config, tensors, sha256 },
    data,
  };
}

export function decodeWeights(encoded: EncodedWeights): NamedWeight[] {
  const { manifest, data } = encoded;
  if (manifest.format !== WEIGHTS_FORMAT || manifest.version !== WEIGHTS_FORMAT_VERSION) {
    throw new Error(
      `not a ${WEIGHTS_FORMAT} v${WEIGHTS_FORMAT_VERSION} manifest (got ${manifest.format} v${manifest.version})`,
    );
  }
  const digest = createHash('sha256').update(data).digest('hex');
  if (digest !== manifest.sha256)
    throw new Error(`weights checksum mismatch: manifest ${manifest.sha256}, data ${digest}`);
  return manifest.tensors.map((entry) => {
    const size = entry.shape.reduce((a, b) => a * b, 1);
    if (
      entry.dtype !== 'float32' ||
      entry.byteLength !== size * 4 ||
      entry.byteOffset + entry.byteLength > data.length
    ) {
      throw new Error(`tensor ${entry.name}: byte range or dtype inconsistent with its shape`);
    }
    // Copy so the result does not alias (or depend on the alignment of) the file buffer.
    const values = new Float32Array(size);
    new Uint8Array(values.buffer).set(data.subarray(entry.byteOffset, entry.byteOffset + entry.byteLength));
    return { name: entry.name, shape: [...entry.shape], values };
  });
}

async function writeAtomically(file: string, contents: string | Buffer): Promise<void> {
  const temp = `${file}.${process.pid}.${Date.now()}.tmp`;
  await fs.writeFile(temp, contents);
  await fs.rename(temp, file);
}

/** Writes `manifest.json` + `weights.bin` into `dir` (created if missing); each file is replaced atomically. */
export async function writeWeightsDir(dir: string, encoded: EncodedWeights): Promise<void> {
  await fs.mkdir(dir, { recursive: true });
  // Binary first: a reader that sees the new manifest always finds the matching binary.
  await writeAtomically(path.join(dir, WEIGHTS_FILE), encoded.data);
  await writeAtomically(path.join(dir, MANIFEST_FILE), JSON.stringify(encoded.manifest, null, 2));
}

export async function readWeightsDir(dir: string): Promise<EncodedWeights> {
  const manifest = JSON.parse(await fs.readFile(path.join(dir, MANIFEST_FILE), 'utf8')) as WeightsManifest;
  const data = await fs.readFile(path.join(dir, WEIGHTS_FILE));
  return { manifest, data };
}
