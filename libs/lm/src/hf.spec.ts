import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { loadHfCheckpoint, saveHfCheckpoint } from './hf';
import { HfBpeTokenizer, HfTokenizerJson } from './hf-tokenizer';
import { LlamaModel } from './model';
import { parseSafetensors } from './safetensors';
import { ReferenceLlama } from './testing/reference-forward';
import { maxAbsDiff, tinyConfig } from './testing/tiny';
import { randomWeights } from './weights';

describe('Hugging Face LLaMA checkpoints (config.json + safetensors)', () => {
  let dir: string;
  beforeAll(async () => {
    await tf.setBackend('cpu');
    dir = mkdtempSync(join(tmpdir(), 'cprec-hf-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('a checkpoint written in HF layout loads to the same logits as the native weights', () => {
    const weights = randomWeights(tinyConfig({ tiedClassifier: false }), 31);
    saveHfCheckpoint(weights, join(dir, 'f32'));
    const file = parseSafetensors(readFileSync(join(dir, 'f32', 'model.safetensors')));
    const q = file.tensors.get('model.layers.0.self_attn.q_proj.weight');
    expect(q?.shape).toEqual([16, 16]);
    // HF stores q rows in split-half RoPE order, so the raw tensor differs from llama2.c order.
    expect(maxAbsDiff(q?.data ?? [], weights.layers[0].wq)).toBeGreaterThan(0);
    const loaded = loadHfCheckpoint(join(dir, 'f32'));
    expect(loaded.config).toEqual(weights.config);
    const ids = [[1, 3, 5, 7, 9, 11]];
    const native = new LlamaModel(weights);
    const hf = new LlamaModel(loaded);
    const a = tf.tidy(() => native.forward(ids).dataSync() as Float32Array);
    const b = tf.tidy(() => hf.forward(ids).dataSync() as Float32Array);
    expect(maxAbsDiff(a, b)).toBeLessThan(1e-6);
    native.dispose();
    hf.dispose();
  });

  it('HF q/k rows used with split-half RoPE (independent reference) match the loaded model', () => {
    const weights = randomWeights(tinyConfig({ tiedClassifier: true }), 33);
    // Sharp attention (large q/k) so that the RoPE convention visibly matters.
    weights.tokEmbedding = weights.tokEmbedding.map((v) => v * 30);
    for (const lw of weights.layers) {
      lw.wq = lw.wq.map((v) => v * 25);
      lw.wk = lw.wk.map((v) => v * 25);
    }
    saveHfCheckpoint(weights, join(dir, 'halves'));
    const raw = parseSafetensors(readFileSync(join(dir, 'halves', 'model.safetensors'))).tensors;
    const hfOrder = {
      ...weights,
      layers: weights.layers.map((lw, l) => ({
        ...lw,
        wq: raw.get(`model.layers.${l}.self_attn.q_proj.weight`)?.data ?? new Float32Array(),
        wk: raw.get(`model.layers.${l}.self_attn.k_proj.weight`)?.data ?? new Float32Array(),
      })),
    };
    const ref = new ReferenceLlama(hfOrder, 'halves');
    const model = new LlamaModel(loadHfCheckpoint(join(dir, 'halves')));
    const ids = [1, 4, 9, 16, 25, 36];
    const ours = tf.tidy(() => model.forward([ids]).dataSync() as Float32Array);
    const V = weights.config.vocabSize;
    let diff = 0;
    ids.forEach(
      (id, pos) =>
        (diff = Math.max(diff, maxAbsDiff(ref.forward(id, pos), ours.subarray(pos * V, (pos + 1) * V)))),
    );
    expect(diff).toBeLessThan(1e-4);
    // Sanity: the same HF-order rows with the interleaved convention give different logits.
    const wrong = new ReferenceLlama(hfOrder, 'interleaved');
    let wrongDiff = 0;
    ids.forEach(
      (id, pos) =>
        (wrongDiff = Math.max(
          wrongDiff,
          maxAbsDiff(wrong.forward(id, pos), ours.subarray(pos * V, (pos + 1) * V)),
        )),
    );
    expect(wrongDiff).toBeGreaterThan(1e-3);
    model.dispose();
  });

  it('reads F16 checkpoints and tied embeddings', () => {
    const weights = randomWeights(tinyConfig({ tiedClassifier: true }), 32);
    saveHfCheckpoint(weights, join(dir, 'f16'), { dtype: 'F16' });
    const loaded = loadHfCheckpoint(join(dir, 'f16'));
    expect(loaded.classifier).toBeUndefined();
    expect(maxAbsDiff(loaded.layers[1].wk, weights.layers[1].wk)).toBeLessThan(1e-4);
  });
});

function spTokenizerJson(): HfTokenizerJson {
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = 3 + b;
  let id = 259;
  for (const p of ['▁', 'h', 'e', 'l', 'o', 'w', 'r', 'd', 'é', '▁h', 'el', 'lo', '▁hel', '▁hello', 'or'])
    vocab[p] = id++;
  return {
    model: {
      type: 'BPE',
      vocab,
      merges: ['▁ h', 'e l', 'l o', '▁h el', '▁hel lo', 'o r'],
      byte_fallback: true,
      unk_token: '<unk>',
    },
    added_tokens: [
      { id: 0, content: '<unk>', special: true },
      { id: 1, content: '<s>', special: true },
      { id: 2, content: '</s>', special: true },
    ],
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Prepend', prepend: '▁' },
        { type: 'Replace', pattern: { String: ' ' }, content: '▁' },
      ],
    },
    pre_tokenizer: null,
  };
}

function byteLevelTokenizerJson(): HfTokenizerJson {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const vocab: Record<string, number> = {};
  let n = 0;
  for (let b = 0; b < 256; b++)
    vocab[bs.includes(b) ? String.fromCharCode(b) : String.fromCharCode(256 + n++)] = b;
  let id = 256;
  for (const p of ['Ġt', 'he', 'Ġthe', 'in', 'Ġin']) vocab[p] = id++;
  vocab['<|endoftext|>'] = id;
  return {
    model: {
      type: 'BPE',
      vocab,
      merges: [
        ['Ġ', 't'],
        ['h', 'e'],
        ['Ġt', 'he'],
        ['i', 'n'],
        ['Ġ', 'in'],
      ],
    },
    added_tokens: [{ id, content: '<|endoftext|>', special: true }],
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false },
  };
}

const texts = ['hello world', 'héllo wörld 😀 你好', ' two  spaces ', 'Tom & Jerry\'s "Hits" — Vol. 2\n'];

describe('HF tokenizer.json BPE', () => {
  it('sentencepiece flavour: prefix space, rank-ordered merges, byte fallback, round trip', () => {
    const tok = new HfBpeTokenizer(spTokenizerJson());
    expect(tok.flavour).toBe('sentencepiece');
    expect(tok.bosId).toBe(1);
    const v = spTokenizerJson().model.vocab;
    expect(tok.encode('hello', { bos: true })).toEqual([1, v['▁hello']]);
    expect(tok.encode('world')).toEqual([v['▁'], v.w, v.or, v.l, v.d]);
    expect(tok.encode('你')).toEqual([v['▁'], 3 + 0xe4, 3 + 0xbd, 3 + 0xa0]);
    for (const s of texts) expect(tok.decode(tok.encode(s, { bos: true }))).toBe(s);
  });

  it('byte-level flavour: GPT-2 pre-split and byte mapping, round trip, special tokens kept whole', () => {
    const tok = new HfBpeTokenizer(byteLevelTokenizerJson());
    expect(tok.flavour).toBe('byte-level');
    expect(tok.encode(' the in')).toEqual([258, 260]);
    expect(tok.encode('a<|endoftext|>b')).toEqual([97, tok.eosId, 98]);
    for (const s of texts) expect(tok.decode(tok.encode(s))).toBe(s);
  });

  it('byte-level flavour follows pre_tokenizer: individual digits (SmolLM) split before merging; unknown shapes refused', () => {
    const json = byteLevelTokenizerJson();
    json.model.vocab['12'] = 900;
    (json.model.merges as [string, string][]).push(['1', '2']);
    const plain = new HfBpeTokenizer(json);
    expect(plain.encode('12')).toEqual([900]);
    const digits = new HfBpeTokenizer({
      ...json,
      pre_tokenizer: {
        type: 'Sequence',
        pretokenizers: [
          { type: 'Digits', individual_digits: true },
          { type: 'ByteLevel', add_prefix_space: false, use_regex: true },
        ],
      },
    });
    expect(digits.encode('12')).toEqual([49, 50]);
    expect(
      () =>
        new HfBpeTokenizer({
          ...json,
          pre_tokenizer: {
            type: 'Sequence',
            pretokenizers: [{ type: 'Split' }, { type: 'ByteLevel', use_regex: false }],
          },
        }),
    ).toThrow(/pre_tokenizer .* is not supported/);
  });
});
