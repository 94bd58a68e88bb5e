import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { LlamaModel, randomWeights, scoreCandidates, type LlamaConfig } from '@cprec/lm';
import { sparsityBucket } from '@cprec/metrics';
import { WordTokenizer } from '../testing/word-tokenizer';
import { ItemEmbeddingTable } from '../sft/item-embeddings';
import { ItemProjector } from '../sft/projector';
import type { EvaluationCase } from './cases';
import { disposeInjection, injectionFor } from '../sft/hybrid';
import { scoreContinuations } from './decoding';
import { encodePrompt, evaluateModel, likelihoodRank, type PromptSettings } from './evaluate';

jest.setTimeout(600_000);

const words = ['red', 'blue', 'green', 'fast', 'slow', 'game'];
const item = (i: number) => ({ itemId: `g-${i}`, title: `${words[i % 6]} ${words[(i * 5 + 2) % 6]}` });
const cases: EvaluationCase[] = Array.from({ length: 6 }, (_, k) => ({
  domain: k % 2 === 0 ? 'games' : 'toys',
  userId: `u${k}`,
  historyLength: [2, 6, 12, 3, 9, 4][k]!,
  history: [item(k), item(k + 1)],
  candidates: [item(k + 2), item(k + 3), item(k + 4)],
  target: item(k + 2 + (k % 3)),
}));
const tokenizer = WordTokenizer.forTitles(Array.from({ length: 12 }, (_, i) => item(i).title));
const config: LlamaConfig = {
  dim: 16,
  hiddenDim: 32,
  nLayers: 1,
  nHeads: 2,
  nKvHeads: 1,
  vocabSize: tokenizer.vocabSize,
  maxSeqLen: 128,
  normEps: 1e-5,
  ropeTheta: 10000,
  tiedClassifier: true,
};
const budget = { maxTokens: 128, maxTitleTokens: 3 };

describe('evaluateModel', () => {
  const model = new LlamaModel(randomWeights(config, 11));
  afterAll(() => model.dispose());

  it('ranks by exact likelihood like lm scoreCandidates on text prompts (title + EOS), ties against the target', () => {
    const settings: PromptSettings = { tokenizer, budget, style: 'text' };
    for (const c of cases) {
      const encoded = encodePrompt(c, settings);
      const scores = scoreCandidates(
        model,
        Array.from(encoded.inputIds),
        encoded.candidateTitles.map((t) => [...tokenizer.encode(t), tokenizer.eosId]),
      );
      const target = encoded.candidateItemIds.indexOf(c.target.itemId);
      const expected = 1 + scores.filter((s, i) => i !== target && s >= scores[target]!).length;
      expect(likelihoodRank(model, c, settings)).toBe(expected);
    }
  });

  it('builds the report from per-example outcomes (hand-checked) without leaking tensors', async () => {
    const before = tf.memory().numTensors;
    const { report, cases: results } = await evaluateModel({
      model,
      tokenizer,
      budget,
      style: 'text',
      examples: cases,
    });
    expect(tf.memory().numTensors).toBe(before);
    expect(results).toHaveLength(6);
    for (const r of results) {
      // Rank 1 by generation ⇔ the first generation was valid and named the target.
      if (r.generatedRank === 1) expect(r.firstValid).toBe(true);
      expect(r.generations.length).toBeGreaterThanOrEqual(1);
      expect(r.likelihoodRank).toBeGreaterThanOrEqual(1);
      expect(r.likelihoodRank).toBeLessThanOrEqual(3);
    }
    const n = results.length;
    expect(report.overall.count).toBe(n);
    expect(report.overall.validRatio).toBeCloseTo(results.filter((r) => r.firstValid).length / n, 12);
    expect(report.overall.hr1).toBeCloseTo(results.filter((r) => r.generatedRank === 1).length / n, 12);
    const lik1 = results.filter((r) => r.likelihoodRank === 1).length / n;
    expect(report.overall.likelihood!.hr[1]).toBeCloseTo(lik1, 12);
    const ndcg3 =
      results.reduce((a, r) => a + (r.likelihoodRank! <= 3 ? 1 / Math.log2(r.likelihoodRank! + 1) : 0), 0) /
      n;
    expect(report.overall.likelihood!.ndcg[3]).toBeCloseTo(ndcg3, 12);
    // 3 candidates: the likelihood rank is always within 3, so HR@3 = HR@5 = 1.
    expect(report.overall.likelihood!.hr[3]).toBe(1);
    // Per domain and sparsity bucket.
    expect(report.byDomain.games!.all.count).toBe(3);
    expect(report.byDomain.toys!.buckets['5-8'].count).toBe(
      cases.filter((c) => c.domain === 'toys' && sparsityBucket(c.historyLength) === '5-8').length,
    );
  });

  it('evaluates hybrid prompts: placeholders carry projected item embeddings that change the scores', async () => {
    const table = new ItemEmbeddingTable(
      Array.from({ length: 12 }, (_, i) => `g-${i}`),
      Float32Array.from({ length: 12 * 4 }, (_, k) => Math.cos(k)),
      4,
    );
    const projector = new ItemProjector({ inDim: 4, hiddenDim: 16, outDim: 16 }, 2);
    const before = tf.memory().numTensors;
    const hybrid: PromptSettings = {
      tokenizer,
      budget,
      style: 'hybrid',
      placeholderId: tokenizer.placeholderId,
      hybrid: { embeddings: table, projector },
    };
    const encoded = encodePrompt(cases[0]!, hybrid);
    expect(encoded.placeholders).toHaveLength(5);
    const { report } = await evaluateModel({ model, examples: cases, ...hybrid });
    expect(report.overall.count).toBe(6);
    expect(tf.memory().numTensors).toBe(before);
    // The injected vectors reach the model: scores differ from the same prompt with bare placeholder tokens.
    const conts = encoded.candidateTitles.map((t) => [...tokenizer.encode(t), tokenizer.eosId]);
    const inject = injectionFor([encoded], { embeddings: table, projector });
    const withVectors = scoreContinuations(model, encoded.inputIds, inject, conts);
    disposeInjection(inject);
    const bare = scoreContinuations(model, encoded.inputIds, null, conts);
    expect(withVectors.some((s, i) => Math.abs(s - bare[i]!) > 1e-4)).toBe(true);
    expect(tf.memory().numTensors).toBe(before);
    projector.dispose();
  });
});
