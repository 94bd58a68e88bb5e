import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { constrainedGenerate, generate, generateBatch, rankCandidates, scoreCandidates } from './generate';
import { loadLlama2cCheckpoint } from './llama2c';
import { KVCache, LlamaModel } from './model';
import { maxAbsDiff, tinyConfig } from './testing/tiny';
import { STORIES260K_CHECKPOINT, stories260kAvailable } from './testing/stories260k';
import { randomWeights } from './weights';

function logits(model: LlamaModel, ids: number[][], mask?: number[][]): Float32Array {
  return tf.tidy(() => model.forward(ids, mask ? { attentionMask: mask } : {}).dataSync() as Float32Array);
}

/** Reference log p(candidate | prompt) from one full forward over prompt+candidate. */
function naiveScore(model: LlamaModel, prompt: number[], cand: number[]): number {
  const seq = [...prompt, ...cand];
  const V = model.config.vocabSize;
  const lp = tf.tidy(() => tf.logSoftmax(model.forward([seq])).dataSync() as Float32Array);
  let s = 0;
  cand.forEach((id, j) => (s += lp[(prompt.length - 1 + j) * V + id]));
  return s;
}

describe('inference', () => {
  let model: LlamaModel;
  beforeAll(async () => {
    await tf.setBackend('cpu');
    // Larger init scale so a random model's predictions are sharp and not full of near-ties.
    const w = randomWeights(tinyConfig({ vocabSize: 48 }), 11);
    w.tokEmbedding = w.tokEmbedding.map((v) => v * 40);
    w.classifier = w.classifier?.map((v) => v * 40);
    model = new LlamaModel(w);
  });
  afterAll(() => model.dispose());

  it('KV-cache generation equals full recompute token for token (greedy and seeded sampling)', () => {
    const prompt = [1, 7, 3, 22];
    const withCache = generate(model, prompt, { maxNewTokens: 30, temperature: 0 });
    expect(withCache).toHaveLength(30);
    expect(generate(model, prompt, { maxNewTokens: 30, temperature: 0, useCache: false })).toEqual(withCache);
    const sampled = generate(model, prompt, { maxNewTokens: 25, temperature: 0.9, topK: 10, seed: 42 });
    expect(
      generate(model, prompt, { maxNewTokens: 25, temperature: 0.9, topK: 10, seed: 42, useCache: false }),
    ).toEqual(sampled);
  });

  (stories260kAvailable() ? it : it.skip)(
    'stories260K: cached and uncached greedy decoding agree for 20 tokens',
    () => {
      const m = new LlamaModel(loadLlama2cCheckpoint(STORIES260K_CHECKPOINT));
      expect(generate(m, [1, 317], { maxNewTokens: 20, useCache: false })).toEqual(
        generate(m, [1, 317], { maxNewTokens: 20 }),
      );
      m.dispose();
    },
  );

  it('stops on a stop token and does not leak tensors', () => {
    const prompt = [1, 5];
    const free = generate(model, prompt, { maxNewTokens: 10 });
    const before = tf.memory().numTensors;
    const stopped = generate(model, prompt, { maxNewTokens: 10, stopTokens: [free[3]] });
    expect(stopped).toEqual(free.slice(0, free.indexOf(free[3])));
    expect(tf.memory().numTensors).toBe(before);
  });

  it('left- and right-padded batches give each row the logits of its unpadded sequence', () => {
    const a = [1, 4, 9, 16, 25];
    const b = [1, 8, 27];
    const V = model.config.vocabSize;
    const la = logits(model, [a]);
    const lb = logits(model, [b]);
    const left = logits(
      model,
      [a, [0, 0, ...b]],
      [
        [1, 1, 1, 1, 1],
        [0, 0, 1, 1, 1],
      ],
    );
    expect(maxAbsDiff(left.subarray(0, 5 * V), la)).toBeLessThan(1e-5);
    expect(maxAbsDiff(left.subarray(5 * V + 2 * V), lb)).toBeLessThan(1e-5);
    const right = logits(
      model,
      [a, [...b, 0, 0]],
      [
        [1, 1, 1, 1, 1],
        [1, 1, 1, 0, 0],
      ],
    );
    expect(maxAbsDiff(right.subarray(5 * V, 5 * V + 3 * V), lb)).toBeLessThan(1e-5);
  });

  it('incremental decoding over a left-padded batch matches per-row full forwards', () => {
    const cache = new KVCache(model.config.nLayers, 2);
    const V = model.config.vocabSize;
    const first = model.forward(
      [
        [0, 1, 6],
        [1, 2, 3],
      ],
      {
        cache,
        attentionMask: [
          [0, 1, 1],
          [1, 1, 1],
        ],
        lastOnly: true,
      },
    );
    first.dispose();
    const step = tf.tidy(
      () => model.forward([[11], [12]], { cache, lastOnly: true }).dataSync() as Float32Array,
    );
    cache.dispose();
    expect(maxAbsDiff(step.subarray(0, V), logits(model, [[1, 6, 11]]).subarray(2 * V))).toBeLessThan(1e-5);
    expect(maxAbsDiff(step.subarray(V), logits(model, [[1, 2, 3, 12]]).subarray(3 * V))).toBeLessThan(1e-5);
  });

  it('batched generation over left-padded prompts equals per-prompt generation', () => {
    const prompts = [
      [1, 7, 3, 22],
      [1, 5],
      [1, 9, 9, 9, 9, 2],
    ];
    const before = tf.memory().numTensors;
    const batched = generateBatch(model, prompts, { maxNewTokens: 12 });
    expect(tf.memory().numTensors).toBe(before);
    prompts.forEach((p, i) => expect(batched[i]).toEqual(generate(model, p, { maxNewTokens: 12 })));
    const stop = batched[1][4];
    const stopped = generateBatch(model, prompts, { maxNewTokens: 12, stopTokens: [stop] });
    prompts.forEach((p, i) =>
      expect(stopped[i]).toEqual(generate(model, p, { maxNewTokens: 12, stopTokens: [stop] })),
    );
  });

  it('injected vectors replace the embeddings at marked positions', () => {
    const ids = [[1, 5, 6, 7]];
    const emb = model.tokEmbedding.dataSync();
    const d = model.config.dim;
    const plain = logits(model, [[1, 30, 6, 31]]);
    const injected = tf.tidy(() => {
      const vectors = tf.tensor2d([...emb.slice(30 * d, 31 * d), ...emb.slice(31 * d, 32 * d)], [2, d]);
      return model
        .forward(ids, {
          inject: {
            positions: [
              [0, 1],
              [0, 3],
            ],
            vectors,
          },
        })
        .dataSync() as Float32Array;
    });
    expect(maxAbsDiff(injected, plain)).toBeLessThan(1e-6);
    expect(maxAbsDiff(injected, logits(model, ids))).toBeGreaterThan(1e-3);
  });

  it('constrained decoding always returns one of the candidates', () => {
    const candidates = [[5, 6, 7], [5, 6], [9], [12, 13, 14, 15], [5, 8]];
    for (let p = 0; p < 12; p++) {
      const prompt = [1, 2 + p, 3 + ((p * 7) % 40)];
      const greedy = constrainedGenerate(model, prompt, candidates);
      expect(candidates[greedy.candidate]).toEqual(greedy.ids);
      const sampled = constrainedGenerate(model, prompt, candidates, {
        temperature: 1.5,
        seed: p,
        endToken: 2,
      });
      expect(candidates[sampled.candidate]).toEqual(sampled.ids);
    }
  });

  it('scoring = summed log-likelihood after the prompt, equal to per-candidate full forwards, without leaks', () => {
    const prompt = [1, 10, 11, 12];
    const candidates = [[5], [7, 8, 9], [20, 21], [5, 6, 7, 8, 9, 10]];
    const before = tf.memory().numTensors;
    const scores = scoreCandidates(model, prompt, candidates);
    const chunked = scoreCandidates(model, prompt, candidates, { batchSize: 3 });
    expect(tf.memory().numTensors).toBe(before);
    candidates.forEach((c, i) => {
      const ref = naiveScore(model, prompt, c);
      expect(Math.abs(scores[i] - ref)).toBeLessThan(1e-3);
      expect(Math.abs(chunked[i] - ref)).toBeLessThan(1e-3);
    });
    expect(rankCandidates([0.1, -3, 2, 2])).toEqual([2, 3, 0, 1]);
  });

  it('hybrid prompts: injected vectors in scoring and generation act like the tokens whose embeddings they carry', () => {
    const d = model.config.dim;
    const emb = model.tokEmbedding.dataSync();
    const vectors = tf.tensor2d([...emb.slice(30 * d, 31 * d)], [1, d]);
    const promptInject = { positions: [[0, 2]] as [number, number][], vectors };
    const candidates = [[5], [7, 8, 9], [20, 21]];
    const viaVectors = scoreCandidates(model, [1, 10, 0, 12], candidates, { promptInject });
    const viaTokens = scoreCandidates(model, [1, 10, 30, 12], candidates);
    viaVectors.forEach((s, i) => expect(Math.abs(s - viaTokens[i])).toBeLessThan(1e-4));
    expect(generate(model, [1, 10, 0, 12], { maxNewTokens: 6, promptInject })).toEqual(
      generate(model, [1, 10, 30, 12], { maxNewTokens: 6 }),
    );
    expect(generate(model, [1, 10, 0, 12], { maxNewTokens: 6, promptInject, useCache: false })).toEqual(
      generate(model, [1, 10, 30, 12], { maxNewTokens: 6 }),
    );
    expect(constrainedGenerate(model, [1, 10, 0, 12], candidates, { promptInject })).toEqual(
      constrainedGenerate(model, [1, 10, 30, 12], candidates),
    );
    vectors.dispose();
  });
});
