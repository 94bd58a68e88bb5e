import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { LocalArtefactStore } from '@cprec/artefacts';
import { attachLora, LlamaModel, mulberry32, saveLoraAdapter } from '@cprec/lm';
import { RecommenderRuntime, type RankRequest } from '@cprec/training';
import { loadServingBase, TINY_MODEL_FILE, TINY_MODEL_KEY } from '../base-model';
import { loadServingConfig, type ServingConfig } from '../config';
import { ScoringPool } from './scoring-pool';
import { servingRuntime } from './serving-runtime';

// Real worker threads (TypeScript through ts-node, as the service runs in development) on the
// trainer's tiny-random base, compared with ranking on this thread.
jest.setTimeout(120_000);

const words = ['red', 'blue', 'green', 'fast', 'slow', 'bright', 'soft', 'loud'];
const title = (i: number) => `${words[i % 8]} ${words[(i * 3 + 1) % 8]} game`;
const item = (i: number) => ({ itemId: `g${i}`, title: title(i) });
const request = (u: number): RankRequest => ({
  domain: 'games',
  history: [item(u), item(u + 1)],
  candidates: [item(u + 2), item(u + 3), item(u + 4), item(u + 5)],
});

describe('ScoringPool', () => {
  let home: string;
  let config: ServingConfig;
  let pool: ScoringPool;
  let runtime: RecommenderRuntime;
  let adapterDir: string;

  beforeAll(async () => {
    home = mkdtempSync(join(tmpdir(), 'cprec-scoring-pool-'));
    const spec = join(home, 'spec');
    mkdirSync(spec);
    writeFileSync(
      join(spec, TINY_MODEL_FILE),
      JSON.stringify({
        format: 'cprec-tiny-random/1',
        config: {
          dim: 16,
          hiddenDim: 32,
          nLayers: 1,
          nHeads: 2,
          nKvHeads: 1,
          maxSeqLen: 128,
          normEps: 1e-5,
          ropeTheta: 10000,
          tiedClassifier: true,
        },
        seed: 5,
        titles: Array.from({ length: 12 }, (_, i) => title(i)),
      }),
    );
    const store = new LocalArtefactStore(resolve(home, 'artefacts'));
    await store.put(TINY_MODEL_KEY, spec);
    config = loadServingConfig({ CPREC_HOME: home, SERVING_MODEL: 'tiny-random', SERVING_BACKEND: 'cpu' });
    const base = await loadServingBase(config, store);
    // The runtime the workers build, so this thread ranks with the same (model-derived) budget.
    runtime = servingRuntime(base, config);
    // An adapter that changes the scores (random non-zero B).
    const model = new LlamaModel(base.weights);
    attachLora(model, { rank: 2, alpha: 4, dropout: 0 });
    const rng = mulberry32(3);
    for (const [name, v] of model.loraVariables())
      if (name.endsWith('.lora_B'))
        v.assign(
          tf.tensor(
            Array.from({ length: v.size }, () => rng() - 0.5),
            v.shape,
          ),
        );
    adapterDir = join(home, 'adapter');
    saveLoraAdapter(model, adapterDir, { baseModelId: base.baseModelId, baseChecksum: base.baseChecksum });
    model.dispose();
    pool = await ScoringPool.start(config, 2);
  });

  afterAll(async () => {
    await pool?.close();
    rmSync(home, { recursive: true, force: true });
  });

  it('ranks exactly as the model on this thread does, concurrently on both workers', async () => {
    const scorer = await pool.load('a1', adapterDir);
    const local = runtime.load(adapterDir, { adapterId: 'a1' });
    try {
      const batches = [[request(0), request(1)], [request(2)], [request(3), request(4), request(5)]];
      const pooled = await Promise.all(batches.map((b) => scorer.rankBatch(b)));
      pooled.forEach((ranked, i) => {
        const expected = local.rankBatch(batches[i]);
        expect(ranked.map((r) => r.map((c) => c.itemId))).toEqual(
          expected.map((r) => r.map((c) => c.itemId)),
        );
        ranked.forEach((r, j) => r.forEach((c, k) => expect(c.score).toBeCloseTo(expected[j][k].score, 4)));
      });
      expect(pool.alive).toBe(2);
      expect(pool.problem).toBeNull();
    } finally {
      local.dispose();
      scorer.dispose();
    }
  });

  it('keeps adapters apart: the base and an adapter loaded side by side score differently', async () => {
    const base = await pool.load('base', null);
    const adapter = await pool.load('a1', adapterDir);
    const [fromBase] = await base.rankBatch([request(7)]);
    const [fromAdapter] = await adapter.rankBatch([request(7)]);
    expect(fromBase.map((c) => c.score)).not.toEqual(fromAdapter.map((c) => c.score));
    base.dispose();
    // The adapter still serves after the base was released.
    await expect(adapter.rankBatch([request(7)])).resolves.toHaveLength(1);
    adapter.dispose();
    await expect(adapter.rankBatch([request(7)])).rejects.toThrow(/disposed/);
  });

  it('refuses an adapter that cannot be loaded, with the reason, and keeps working', async () => {
    await expect(pool.load('missing', join(home, 'no-such-adapter'))).rejects.toThrow(
      /no-such-adapter|ENOENT/,
    );
    const scorer = await pool.load('base', null);
    await expect(scorer.rankBatch([request(1)])).resolves.toHaveLength(1);
    scorer.dispose();
  });

  it('reports a bad request as that batch failing, not the worker', async () => {
    const scorer = await pool.load('base', null);
    await expect(scorer.rankBatch([{ domain: 'games', history: [item(1)], candidates: [] }])).rejects.toThrow(
      /no candidates/,
    );
    await expect(scorer.rankBatch([request(2)])).resolves.toHaveLength(1);
    expect(pool.alive).toBe(2);
    scorer.dispose();
  });
});
