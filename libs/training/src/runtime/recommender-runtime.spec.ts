import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import {
  attachLora,
  LlamaModel,
  mulberry32,
  randomWeights,
  saveLoraAdapter,
  type LlamaConfig,
} from '@cprec/lm';
import { WordTokenizer } from '../testing/word-tokenizer';
import { candidateContinuations, encodePrompt } from '../eval/evaluate';
import { scoreContinuations } from '../eval/decoding';
import { injectionFor, disposeInjection } from '../sft/hybrid';
import { ITEM_EMBEDDINGS_FILE, ItemEmbeddingTable } from '../sft/item-embeddings';
import { ItemProjector } from '../sft/projector';
import { PROJECTOR_FILE, SFT_ADAPTER_DIR } from '../sft/fine-tune';
import { inspectAdapterBundle, RecommenderRuntime, type RankRequest } from './recommender-runtime';

const words = ['red', 'blue', 'green', 'fast', 'slow', 'game', 'serum', 'shirt', 'big', 'small'];
const item = (i: number) => ({ itemId: `g-${i}`, title: `${words[i % 10]} ${words[(i * 3 + 1) % 10]}` });
const tokenizer = WordTokenizer.forTitles(Array.from({ length: 10 }, (_, i) => item(i).title));
const config: LlamaConfig = {
  dim: 16,
  hiddenDim: 32,
  nLayers: 2,
  nHeads: 2,
  nKvHeads: 1,
  vocabSize: tokenizer.vocabSize,
  maxSeqLen: 128,
  normEps: 1e-5,
  ropeTheta: 10000,
  tiedClassifier: true,
};
const weights = randomWeights(config, 7);
const budget = { maxTokens: 128, maxTitleTokens: 4 };
const runtime = RecommenderRuntime.fromBase(
  { weights, tokenizer, baseModelId: 'tiny', baseChecksum: 'a'.repeat(64) },
  { budget },
);

const requests: RankRequest[] = [
  { domain: 'games', history: [item(1), item(2), item(3)], candidates: [item(4), item(5), item(6), item(7)] },
  { domain: 'games', history: [item(8)], candidates: [item(0), item(9)] },
  { domain: 'games', history: [], candidates: [item(2), item(3), item(1)] },
];

let dir: string;
beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'cprec-runtime-'))));
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A LoRA adapter with random (non-zero) B, so it changes the model's scores. */
function saveAdapter(out: string, baseChecksum = 'a'.repeat(64)): void {
  const model = new LlamaModel(weights);
  attachLora(model, { rank: 2, alpha: 4, dropout: 0 }, 3);
  const rand = mulberry32(11);
  for (const [name, v] of model.loraVariables())
    if (name.endsWith('lora_B'))
      v.assign(
        tf.tensor(
          Float32Array.from({ length: v.size }, () => (rand() - 0.5) * 0.5),
          v.shape,
        ),
      );
  saveLoraAdapter(model, out, { baseModelId: 'tiny', baseChecksum, lineage: { round_id: 'r1' } });
  model.dispose();
}

function expectClose(a: readonly number[], b: readonly number[], tol = 1e-4): void {
  expect(a.length).toBe(b.length);
  a.forEach((x, i) => expect(Math.abs(x - b[i])).toBeLessThan(tol));
}

const scoresInRequestOrder = (r: RankRequest, ranked: { itemId: string; score: number }[]) =>
  r.candidates.map((c) => ranked.find((x) => x.itemId === c.itemId)!.score);

describe('RecommenderRuntime', () => {
  it('ranks the base model by the candidate likelihood evaluation computes, best first', () => {
    const rec = runtime.loadBase();
    try {
      expect(rec.adapterId).toBe('base');
      const r = requests[0];
      const ranked = rec.rank(r);
      expect(ranked.map((c) => c.rank)).toEqual([1, 2, 3, 4]);
      for (let i = 1; i < ranked.length; i++)
        expect(ranked[i - 1].score).toBeGreaterThanOrEqual(ranked[i].score);
      const longest = r.candidates.reduce((a, b) => (b.title.length > a.title.length ? b : a));
      const encoded = encodePrompt({ ...r, target: longest }, rec.settings);
      const reference = scoreContinuations(
        rec.model,
        encoded.inputIds,
        null,
        candidateContinuations(encoded, tokenizer.eosId),
      );
      expectClose(scoresInRequestOrder(r, ranked), reference);
    } finally {
      rec.dispose();
    }
  });

  it('scores a batch of requests of different prompt lengths as it scores each alone', () => {
    const rec = runtime.loadBase();
    try {
      const batched = rec.rankBatch(requests);
      requests.forEach((r, i) => {
        const alone = rec.rank(r);
        expectClose(scoresInRequestOrder(r, batched[i]), scoresInRequestOrder(r, alone));
      });
    } finally {
      rec.dispose();
    }
  });

  it('loads a LoRA adapter (merged or not, same scores) that changes the ranking scores', () => {
    saveAdapter(join(dir, 'lora'));
    expect(inspectAdapterBundle(join(dir, 'lora')).kind).toBe('lora');
    const base = runtime.loadBase();
    const merged = runtime.load(join(dir, 'lora'), { adapterId: 'adapter-1' });
    const unmergedRuntime = RecommenderRuntime.fromBase(runtime.base, { budget, mergeLora: false });
    const unmerged = unmergedRuntime.load(join(dir, 'lora'));
    try {
      expect(merged.adapterId).toBe('adapter-1');
      expect(merged.model.lora?.merged).toBe(true);
      expect(unmerged.model.lora?.merged).toBe(false);
      expect(merged.manifest?.lineage).toEqual({ round_id: 'r1' });
      const r = requests[0];
      const a = scoresInRequestOrder(r, merged.rank(r));
      expectClose(a, scoresInRequestOrder(r, unmerged.rank(r)));
      const b = scoresInRequestOrder(r, base.rank(r));
      expect(Math.max(...a.map((x, i) => Math.abs(x - b[i])))).toBeGreaterThan(1e-3);
      expect(merged.smokeTest().every((c) => Number.isFinite(c.score))).toBe(true);
    } finally {
      base.dispose();
      merged.dispose();
      unmerged.dispose();
    }
  });

  it('refuses an adapter trained on another base checkpoint, and a directory that is no adapter', () => {
    saveAdapter(join(dir, 'other'), 'b'.repeat(64));
    expect(() => runtime.load(join(dir, 'other'))).toThrow(/trained on base tiny/);
    mkdirSync(join(dir, 'empty'));
    expect(() => runtime.load(join(dir, 'empty'))).toThrow(/not an adapter bundle/);
  });

  it('serves an SFT bundle with hybrid prompts (projected item embeddings), batched like alone', () => {
    const bundle = join(dir, 'sft');
    saveAdapter(join(bundle, SFT_ADAPTER_DIR));
    const projector = new ItemProjector({ inDim: 6, hiddenDim: 16, outDim: 16 }, 5);
    projector.save(join(bundle, PROJECTOR_FILE));
    projector.dispose();
    const table = new ItemEmbeddingTable(
      Array.from({ length: 10 }, (_, i) => `g-${i}`),
      Float32Array.from({ length: 60 }, (_, k) => Math.sin(k * 1.3)),
      6,
    );
    table.save(join(bundle, ITEM_EMBEDDINGS_FILE));
    const rec = runtime.load(bundle, { adapterId: 'sft-1' });
    try {
      expect(rec.settings.style).toBe('hybrid');
      const r = requests[0];
      const ranked = rec.rank(r);
      // Same as evaluation's path: hybrid prompt, injected projections, candidate likelihood.
      const longest = r.candidates.reduce((a, b) => (b.title.length > a.title.length ? b : a));
      const encoded = encodePrompt({ ...r, target: longest }, rec.settings);
      expect(encoded.placeholders.length).toBe(r.history.length + r.candidates.length);
      const inject = injectionFor([encoded], rec.hybrid);
      const reference = scoreContinuations(
        rec.model,
        encoded.inputIds,
        inject,
        candidateContinuations(encoded, tokenizer.eosId),
      );
      disposeInjection(inject);
      expectClose(scoresInRequestOrder(r, ranked), reference);
      const batched = rec.rankBatch(requests);
      requests.forEach((q, i) =>
        expectClose(scoresInRequestOrder(q, batched[i]), scoresInRequestOrder(q, rec.rank(q))),
      );
    } finally {
      rec.dispose();
    }
  });

  it('shares one upload of the base between recommenders: a second adapter adds only its own tensors', () => {
    saveAdapter(join(dir, 'lora'));
    const shared = RecommenderRuntime.fromBase(runtime.base, { budget, mergeLora: false });
    const start = tf.memory().numTensors;
    const base = shared.loadBase();
    const withBase = tf.memory().numTensors;
    const a = shared.load(join(dir, 'lora'), { adapterId: 'a' });
    const perAdapter = tf.memory().numTensors - withBase;
    const b = shared.load(join(dir, 'lora'), { adapterId: 'b' });
    // Unmerged: each adapter holds only its A/B pairs, the base tensors are there once.
    expect(perAdapter).toBe(a.model.loraVariables().size);
    expect(tf.memory().numTensors - withBase).toBe(2 * perAdapter);
    expect(a.model.tokEmbedding).toBe(base.model.tokEmbedding);
    const r = requests[0];
    expectClose(scoresInRequestOrder(r, a.rank(r)), scoresInRequestOrder(r, b.rank(r)));
    // Merged (the default) in another runtime: the same scores; disposing one adapter leaves the others serving.
    const merged = runtime.load(join(dir, 'lora'));
    expectClose(scoresInRequestOrder(r, merged.rank(r)), scoresInRequestOrder(r, a.rank(r)));
    merged.dispose();
    a.dispose();
    expect(b.rank(r)).toHaveLength(r.candidates.length);
    b.dispose();
    base.dispose();
    shared.dispose();
    expect(tf.memory().numTensors).toBe(start);
  });

  it('leaks no tensors: load, rank, smoke test and dispose return to the starting count', () => {
    saveAdapter(join(dir, 'lora'));
    // The shared base tensors are uploaded once, on first use: counted from after that.
    runtime.loadBase().dispose();
    const before = tf.memory().numTensors;
    const rec = runtime.load(join(dir, 'lora'));
    rec.rankBatch(requests);
    rec.smokeTest();
    rec.dispose();
    const base = runtime.loadBase();
    base.rank(requests[1]);
    base.dispose();
    expect(() => runtime.load(join(dir, 'missing'))).toThrow();
    expect(tf.memory().numTensors).toBe(before);
  });
});
