import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tinyConfig } from '../testing/tiny';
import { LlamaConfig } from '../types';
import { LAYER_TENSORS, LlamaWeights, randomWeights } from '../weights';
import { GgmlType } from './ggml-types';
import { GgufValueType, readGguf } from './gguf-file';
import { llamaConfigFromGguf, loadGgufCheckpoint } from './gguf-checkpoint';
import { GgufWriterSpec, GgufWriterValue, llamaGgufSpec, writeGguf } from './testing/gguf-writer';

function expectSameWeights(a: LlamaWeights, b: LlamaWeights): void {
  expect(a.config).toEqual(b.config);
  expect(Buffer.from(a.tokEmbedding.buffer).equals(Buffer.from(b.tokEmbedding.buffer))).toBe(true);
  expect(Array.from(a.finalNorm)).toEqual(Array.from(b.finalNorm));
  expect(a.classifier === undefined).toBe(b.classifier === undefined);
  if (a.classifier && b.classifier) expect(Array.from(a.classifier)).toEqual(Array.from(b.classifier));
  expect(a.layers.length).toBe(b.layers.length);
  a.layers.forEach((layer, l) => {
    for (const t of LAYER_TENSORS)
      expect([l, t, Array.from(layer[t])]).toEqual([l, t, Array.from(b.layers[l][t])]);
  });
}

describe('loadGgufCheckpoint', () => {
  let dir: string;
  beforeAll(() => (dir = mkdtempSync(join(tmpdir(), 'cprec-gguf-ckpt-'))));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  let n = 0;
  const write = (spec: GgufWriterSpec): string => {
    const p = join(dir, `m${n++}.gguf`);
    writeGguf(p, spec);
    return p;
  };

  /** The spec of a random tiny model with one tweak applied to its metadata or tensors. */
  function tweaked(
    tweak: {
      set?: [string, GgufWriterValue][];
      drop?: string[];
      dropTensor?: string;
      extraTensor?: boolean;
    } = {},
    config: Partial<LlamaConfig> = {},
  ): GgufWriterSpec {
    const spec = llamaGgufSpec(randomWeights(tinyConfig(config), 5));
    const meta = (spec.metadata ?? []).filter(
      ([k]) => !(tweak.drop ?? []).includes(k) && !(tweak.set ?? []).some(([s]) => s === k),
    );
    let tensors = (spec.tensors ?? []).filter((t) => t.name !== tweak.dropTensor);
    if (tweak.extraTensor)
      tensors = [...tensors, { name: 'blk.0.attn_q.bias', dims: [16], values: new Float32Array(16) }];
    return { ...spec, metadata: [...meta, ...(tweak.set ?? [])], tensors };
  }

  it.each([
    ['v3, untied, default alignment', { version: 3 }, {}],
    ['v2, tied classifier, alignment 64', { version: 2, alignment: 64 }, { tiedClassifier: true }],
    [
      'v3, MHA (kv heads = heads), alignment 8',
      { version: 3, alignment: 8 },
      { nKvHeads: 4, ropeTheta: 100000 },
    ],
  ] as const)('round-trips a random tiny llama through F32 exactly (%s)', (_label, opts, overrides) => {
    const w = randomWeights(tinyConfig(overrides), 3);
    const { weights, gguf } = loadGgufCheckpoint(write(llamaGgufSpec(w, opts)));
    expectSameWeights(weights, w);
    expect(gguf.version).toBe(opts.version);
    // Loaded Q/K rows are exactly the stored rows: llama.cpp's order is already our interleaved order.
    expect(Array.from(weights.layers[1].wq.subarray(0, 16))).toEqual(
      Array.from(w.layers[1].wq.subarray(0, 16)),
    );
  });

  it('loads F16 and BF16 weights within their precision', () => {
    const w = randomWeights(tinyConfig(), 4);
    for (const [type, rel] of [
      [GgmlType.F16, 2 ** -11],
      [GgmlType.BF16, 2 ** -7], // the test writer truncates to BF16
    ] as const) {
      const { weights } = loadGgufCheckpoint(write(llamaGgufSpec(w, { type })));
      const a = weights.layers[0].w2;
      const b = w.layers[0].w2;
      for (let i = 0; i < a.length; i++)
        expect(Math.abs(a[i] - b[i])).toBeLessThanOrEqual(Math.abs(b[i]) * rel + 1e-7);
    }
  });

  it('takes the config from metadata, with llama.cpp defaults for optional keys', () => {
    const spec = tweaked({
      drop: ['llama.attention.head_count_kv', 'llama.rope.freq_base', 'llama.rope.dimension_count'],
    });
    const c = llamaConfigFromGguf(readGguf(write(spec)));
    expect(c).toEqual({ ...tinyConfig(), nKvHeads: 4, ropeTheta: 10000 });
    const exact = llamaConfigFromGguf(readGguf(write(tweaked({}, { normEps: 1e-6, ropeTheta: 500000 }))));
    expect([exact.normEps, exact.ropeTheta]).toEqual([1e-6, 500000]);
  });

  describe('refuses, each with its own message', () => {
    const str = (value: string): GgufWriterValue => ({ type: GgufValueType.STRING, value });
    const u32 = (value: number): GgufWriterValue => ({ type: GgufValueType.U32, value });

    it('an unsupported architecture, naming it', () => {
      const p = write(llamaGgufSpec(randomWeights(tinyConfig(), 1), { arch: 'qwen2' }));
      expect(() => loadGgufCheckpoint(p)).toThrow(
        /has architecture "qwen2", which cprec cannot run \(supported: llama\)/,
      );
    });

    it('a missing required key, tensor or token embedding', () => {
      expect(() => loadGgufCheckpoint(write(tweaked({ drop: ['llama.context_length'] })))).toThrow(
        /missing metadata key llama\.context_length/,
      );
      expect(() => loadGgufCheckpoint(write(tweaked({ drop: ['general.architecture'] })))).toThrow(
        /missing metadata key general\.architecture/,
      );
      expect(() => loadGgufCheckpoint(write(tweaked({ dropTensor: 'blk.1.ffn_up.weight' })))).toThrow(
        /has no tensor blk\.1\.ffn_up\.weight \(needed for layers\[1\]\.w3\)/,
      );
      expect(() => loadGgufCheckpoint(write(tweaked({ dropTensor: 'token_embd.weight' })))).toThrow(
        /has no tensor token_embd\.weight \(the token embedding\)/,
      );
    });

    it('a shape that does not match the config', () => {
      const spec = tweaked();
      const tensors = (spec.tensors ?? []).map((t) =>
        t.name === 'blk.0.attn_k.weight' && 'values' in t ? { ...t, dims: [8, 16] } : t,
      );
      expect(() => loadGgufCheckpoint(write({ ...spec, tensors }))).toThrow(
        /tensor blk\.0\.attn_k\.weight has dims \[8, 16\], but the config needs \[16, 8\] \(row-major \[8, 16\]\) for layers\[0\]\.wk/,
      );
      const wrongHeads = tweaked({ set: [['llama.attention.head_count_kv', u32(1)]] });
      expect(() => loadGgufCheckpoint(write(wrongHeads))).toThrow(
        /blk\.0\.attn_k\.weight has dims \[16, 8\], but the config needs \[16, 4\]/,
      );
    });

    it('a weight type it cannot de-quantise, before reading any data', () => {
      // dim 32 so attn_q rows are whole 32-element Q5_0 blocks: 32×32 values, 32 blocks of 22 bytes.
      const spec = tweaked({}, { dim: 32 });
      const tensors = (spec.tensors ?? []).map((t) =>
        t.name === 'blk.1.attn_q.weight'
          ? { name: t.name, dims: [32, 32], type: GgmlType.Q5_0, bytes: new Uint8Array(32 * 22) }
          : t,
      );
      expect(() => loadGgufCheckpoint(write({ ...spec, tensors }))).toThrow(
        'tensor blk.1.attn_q.weight has type Q5_0, which cprec cannot de-quantise (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q6_K)',
      );
    });

    it('features the decoder does not implement: RoPE scaling, other rotary sizes, experts, extra tensors', () => {
      expect(() =>
        loadGgufCheckpoint(write(tweaked({ set: [['llama.rope.scaling.type', str('yarn')]] }))),
      ).toThrow(/uses RoPE scaling "yarn", which cprec does not implement/);
      expect(
        llamaConfigFromGguf(readGguf(write(tweaked({ set: [['llama.rope.scaling.type', str('none')]] }))))
          .dim,
      ).toBe(16);
      expect(() =>
        loadGgufCheckpoint(write(tweaked({ set: [['llama.rope.dimension_count', u32(2)]] }))),
      ).toThrow(/llama\.rope\.dimension_count is 2, but cprec needs it to equal the head size 16\/4 = 4/);
      expect(() => loadGgufCheckpoint(write(tweaked({ set: [['llama.expert_count', u32(8)]] })))).toThrow(
        /mixture-of-experts model \(8 experts\)/,
      );
      expect(() => loadGgufCheckpoint(write(tweaked({ extraTensor: true })))).toThrow(
        /has tensors a llama decoder does not use.*: blk\.0\.attn_q\.bias/,
      );
      expect(() => loadGgufCheckpoint(write(tweaked({ set: [['llama.vocab_size', u32(41)]] })))).toThrow(
        /llama\.vocab_size is 41 but token_embd\.weight has 40 rows/,
      );
    });

    it('an invalid config, saying which field', () => {
      expect(() =>
        loadGgufCheckpoint(write(tweaked({ set: [['llama.attention.head_count_kv', u32(3)]] }))),
      ).toThrow(/nHeads \(4\) must be divisible by nKvHeads \(3\)/);
    });
  });
});
