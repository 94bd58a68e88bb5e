import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { LlamaWeights } from '../weights';
import { GgufFile, readGguf, readGgufTensor } from './gguf-file';
import { loadGgufCheckpoint } from './gguf-checkpoint';
import { ggufString, ggufStringArray } from './gguf-metadata';

// Read in place from the shared folder next to the repository (never copied into the project).
const SMOLLM2 = resolve(
  __dirname,
  '../../../../../shared/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf',
);
const available = existsSync(SMOLLM2);
if (!available)
  console.warn(`SmolLM2 GGUF spec skipped: ${SMOLLM2} is absent (see that folder's SOURCE.md to fetch it)`);
const describeIfModel = available ? describe : describe.skip;

/**
 * Values de-quantised by gguf-py 0.19 (`GGUFReader` + `gguf.quants.dequantize`, float32, flattened
 * row-major): element samples, then the float64 sum and sum of |x| of the whole tensor. A full
 * comparison of all 272 tensors (sha256 of the float32 bytes) was bit-identical when this was written.
 */
const REFERENCE: Record<string, { samples: [number, number][]; sum: number; absSum: number }> = {
  'token_embd.weight': {
    samples: [
      [0, -0.10654449462890625],
      [1, 0.032978057861328125],
      [15, 0.020294189453125],
      [16, -0.007610321044921875],
      [31, -0.20040512084960938],
      [32, -0.09348678588867188],
      [12345, 0.031005859375],
      [28311551, -0.0417022705078125],
    ],
    sum: -15353.04449415207,
    absSum: 2802153.619805813,
  },
  'blk.0.attn_q.weight': {
    samples: [
      [0, -0.0963134765625],
      [1, 0.1573486328125],
      [15, 0.537841796875],
      [16, -0.22314453125],
      [31, -0.0963134765625],
      [32, -0.34619140625],
      [12345, 0.12109375],
      [331775, -0.255859375],
    ],
    sum: 59.22322082519531,
    absSum: 63395.39872741699,
  },
  'blk.0.attn_k.weight': {
    samples: [
      [0, -0.1552734375],
      [1, 0.3402099609375],
      [15, 0.175048828125],
      [16, 0.3402099609375],
      [31, 0.175048828125],
      [32, 0.01068115234375],
      [12345, 0.17041015625],
      [110591, 0.3636474609375],
    ],
    sum: 26.937057495117188,
    absSum: 29794.78126525879,
  },
  'blk.29.ffn_down.weight': {
    samples: [
      [0, -0.2733154296875],
      [1, 0.186279296875],
      [15, -0.13543701171875],
      [16, 0.32415771484375],
      [31, -0.2733154296875],
      [32, 0.026611328125],
      [12345, -0.04498291015625],
      [884735, 0.056640625],
    ],
    sum: 49.83570861816406,
    absSum: 126250.91435241699,
  },
  'output_norm.weight': {
    samples: [
      [0, 1.7578125],
      [1, 1.8203125],
      [15, 2.328125],
      [16, 1.71875],
      [31, 1.828125],
      [32, 1.875],
      [249, 1.8046875],
      [575, 1.984375],
    ],
    sum: 1038.33203125,
    absSum: 1045.09765625,
  },
  'blk.7.ffn_norm.weight': {
    samples: [
      [0, 0.09423828125],
      [1, 0.23828125],
      [15, 0.2451171875],
      [16, 0.125],
      [31, 0.193359375],
      [32, 0.2373046875],
      [249, 0.24609375],
      [575, 0.251953125],
    ],
    sum: 119.31790542602539,
    absSum: 119.31790542602539,
  },
};

describeIfModel('SmolLM2-135M-Instruct Q4_1 GGUF (the real file)', () => {
  let file: GgufFile;
  let weights: LlamaWeights;

  beforeAll(() => {
    const t0 = Date.now();
    file = readGguf(SMOLLM2);
    weights = loadGgufCheckpoint(SMOLLM2).weights;
    console.log(`loaded in ${Date.now() - t0} ms`);
  });

  it('has the header, metadata and tensor index SOURCE.md documents', () => {
    expect(file.version).toBe(3);
    expect(file.alignment).toBe(32);
    expect(file.fileSize).toBe(98362432);
    expect(file.tensors.size).toBe(272);
    expect(ggufString(file, 'general.architecture')).toBe('llama');
    expect(ggufString(file, 'tokenizer.ggml.model')).toBe('gpt2');
    expect(ggufString(file, 'tokenizer.ggml.pre')).toBe('smollm');
    expect(ggufStringArray(file, 'tokenizer.ggml.tokens')).toHaveLength(49152);
    expect(ggufStringArray(file, 'tokenizer.ggml.merges')).toHaveLength(48900);
    expect(file.metadata.get('llama.attention.layer_norm_rms_epsilon')).toBe(1e-5);

    const types = new Map<string, string[]>();
    for (const t of file.tensors.values()) types.set(t.typeName, [...(types.get(t.typeName) ?? []), t.name]);
    expect(types.get('Q8_0')).toEqual(['token_embd.weight']);
    expect(types.get('Q4_1')).toHaveLength(30 * 7);
    expect(
      types.get('Q4_1')?.every((n) => /^blk\.\d+\.(attn_(q|k|v|output)|ffn_(gate|down|up))\.weight$/.test(n)),
    ).toBe(true);
    expect(types.get('F32')).toHaveLength(30 * 2 + 1);
    expect(types.get('F32')?.every((n) => n.endsWith('norm.weight'))).toBe(true);
    expect([...types.keys()].sort()).toEqual(['F32', 'Q4_1', 'Q8_0']);
    expect(file.tensors.get('token_embd.weight')).toMatchObject({ dims: [576, 49152], byteLength: 30081024 });
    expect(file.tensors.has('output.weight')).toBe(false);
  });

  it('gives the SmolLM2-135M config', () => {
    expect(weights.config).toEqual({
      dim: 576,
      hiddenDim: 1536,
      nLayers: 30,
      nHeads: 9,
      nKvHeads: 3,
      vocabSize: 49152,
      maxSeqLen: 8192,
      ropeTheta: 100000,
      normEps: 1e-5,
      tiedClassifier: true,
    });
  });

  it('loads finite weights of the right sizes, with the classifier tied', () => {
    expect(weights.classifier).toBeUndefined();
    expect(weights.tokEmbedding.length).toBe(49152 * 576);
    expect(weights.layers).toHaveLength(30);
    const all = [
      weights.tokEmbedding,
      weights.finalNorm,
      ...weights.layers.flatMap((l) => Object.values(l) as Float32Array[]),
    ];
    expect(all).toHaveLength(2 + 30 * 9);
    let count = 0;
    for (const a of all) {
      // x − x is NaN exactly for NaN and ±Infinity; cheaper than Number.isFinite over 134M values.
      let bad = 0;
      for (let i = 0; i < a.length; i++) bad += a[i] - a[i];
      expect(bad).toBe(0);
      count += a.length;
    }
    expect(count).toBe(134515008); // the parameter count SOURCE.md gives
  });

  it('de-quantises Q8_0, Q4_1 and F32 tensors to the values gguf-py gives', () => {
    const loaded: Record<string, Float32Array> = {
      'token_embd.weight': weights.tokEmbedding,
      'blk.0.attn_q.weight': weights.layers[0].wq,
      'blk.0.attn_k.weight': weights.layers[0].wk,
      'blk.29.ffn_down.weight': weights.layers[29].w2,
      'output_norm.weight': weights.finalNorm,
      'blk.7.ffn_norm.weight': weights.layers[7].ffnNorm,
    };
    for (const [name, ref] of Object.entries(REFERENCE)) {
      const x = loaded[name];
      for (const [i, v] of ref.samples) expect([name, i, x[i]]).toEqual([name, i, v]);
      let sum = 0;
      let absSum = 0;
      for (let i = 0; i < x.length; i++) {
        const v = x[i];
        sum += v;
        absSum += v < 0 ? -v : v;
      }
      expect([name, sum / ref.sum, absSum / ref.absSum]).toEqual([
        name,
        expect.closeTo(1, 9),
        expect.closeTo(1, 9),
      ]);
    }
    // The index-then-one-tensor path gives the same data as the whole-checkpoint load.
    expect(
      Buffer.from(readGgufTensor(file, 'blk.0.attn_k.weight').buffer).equals(
        Buffer.from(weights.layers[0].wk.buffer),
      ),
    ).toBe(true);
  });
});
