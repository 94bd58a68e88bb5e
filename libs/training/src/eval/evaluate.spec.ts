import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import {
  Llama2cTokenizer,
  LlamaModel,
  loadCheckpoint,
  randomWeights,
  scoreCandidates,
  type LlamaConfig,
} from '@cprec/lm';
import {
  STORIES260K_CHECKPOINT,
  STORIES260K_TOKENIZER,
  stories260kAvailable,
} from '@cprec/lm/testing/stories260k';
import { encodeSample, llaraSample, createRng, type SampleItems } from '@cprec/corpus';
import { sparsityBucket } from '@cprec/metrics';
import { WordTokenizer } from '../testing/word-tokenizer';
import { ItemEmbeddingTable } from '../sft/item-embeddings';
import { ItemProjector } from '../sft/projector';
import type { EvaluationCase } from './cases';
import { disposeInjection, injectionFor } from '../sft/hybrid';
import { greedyDecode, scoreContinuations } from './decoding';
import {
  candidateContinuations,
  encodePrompt,
  evaluateCase,
  evaluateCases,
  evaluateModel,
  likelihoodRank,
  type PromptSettings,
} from './evaluate';

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
        encoded.candidateTokenIds.map((ids) => [...ids, tokenizer.eosId]),
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
    const conts = candidateContinuations(encoded, tokenizer.eosId);
    const inject = injectionFor([encoded], { embeddings: table, projector });
    const withVectors = scoreContinuations(model, encoded.inputIds, inject, conts);
    disposeInjection(inject);
    const bare = scoreContinuations(model, encoded.inputIds, null, conts);
    expect(withVectors.some((s, i) => Math.abs(s - bare[i]!) > 1e-4)).toBe(true);
    expect(tf.memory().numTensors).toBe(before);
    projector.dispose();
  });
});

describe('evaluateCase (one prefill for likelihoods and the answer)', () => {
  const model = new LlamaModel(randomWeights(config, 5));
  afterAll(() => model.dispose());

  it('scores exactly as scoreContinuations and generates exactly as greedyDecode', () => {
    const settings: PromptSettings = { tokenizer, budget, style: 'text' };
    const before = tf.memory().numTensors;
    for (const c of cases) {
      const one = evaluateCase(model, c, settings, { likelihood: true, generation: true, maxNewTokens: 6 });
      const encoded = encodePrompt(c, settings);
      const separate = scoreContinuations(
        model,
        encoded.inputIds,
        null,
        candidateContinuations(encoded, tokenizer.eosId),
      );
      one.scores!.forEach((s, i) => expect(s).toBeCloseTo(separate[i]!, 4));
      const greedy = greedyDecode(model, encoded.inputIds, null, {
        maxNewTokens: 6,
        stopTokens: [tokenizer.eosId],
      });
      // Stops at a newline too; the word tokenizer has none, so the texts are equal.
      expect(one.generation).toBe(tokenizer.decode(greedy));
      expect(one.scoredTokens).toEqual(encoded.candidateTokenIds.map((ids) => ids.length + 1));
    }
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('evaluateCases (a batch of cases at once)', () => {
  const model = new LlamaModel(randomWeights(config, 5));
  afterAll(() => model.dispose());

  it('gives each case what evaluateCase gives it alone, text and hybrid prompts, without leaks', () => {
    const table = new ItemEmbeddingTable(
      Array.from({ length: 12 }, (_, i) => `g-${i}`),
      Float32Array.from({ length: 12 * 4 }, (_, k) => Math.sin(k)),
      4,
    );
    const projector = new ItemProjector({ inDim: 4, hiddenDim: 16, outDim: 16 }, 3);
    const text: PromptSettings = { tokenizer, budget, style: 'text' };
    const hybrid: PromptSettings = {
      tokenizer,
      budget,
      style: 'hybrid',
      placeholderId: tokenizer.placeholderId,
      hybrid: { embeddings: table, projector },
    };
    // Prompts of different lengths (left padding), different answer limits.
    const varied = cases.map((c, k) => ({ ...c, history: c.history.slice(0, 1 + (k % 2)) }));
    const before = tf.memory().numTensors;
    for (const settings of [text, hybrid]) {
      const batch = evaluateCases(model, varied, settings, { likelihood: true, generation: true });
      varied.forEach((c, i) => {
        const alone = evaluateCase(model, c, settings, { likelihood: true, generation: true });
        expect(batch[i]!.targetIndex).toBe(alone.targetIndex);
        batch[i]!.scores!.forEach((s, k) => expect(s).toBeCloseTo(alone.scores![k]!, 3));
        expect(batch[i]!.generation).toBe(alone.generation);
      });
    }
    expect(tf.memory().numTensors).toBe(before);
    projector.dispose();
  });
});

const describeStories = stories260kAvailable() ? describe : describe.skip;

describeStories('candidate scoring on stories260K tokenises titles exactly as training did', () => {
  const weights = loadCheckpoint(STORIES260K_CHECKPOINT);
  const tok = Llama2cTokenizer.fromFile(STORIES260K_TOKENIZER, weights.config.vocabSize);
  const space = tok.encode(' ')[0]!; // the lone-space piece the dummy prefix adds
  const titled = (i: number, title: string) => ({ itemId: `t${i}`, title });
  const items: SampleItems = {
    history: [titled(0, 'The Little Red Boat'), titled(1, 'A Story About a Cat')],
    candidates: [
      titled(2, 'Super Mario Odyssey - Nintendo Switch'),
      titled(3, 'Dance Party'),
      titled(4, 'Skateboard Deluxe Edition'),
    ],
    target: titled(3, 'Dance Party'),
  };
  // A title cap that cuts every title: the case that used to re-encode the decoded fragment.
  const tight = { maxTokens: 512, maxTitleTokens: 3 };

  it('continuations are the trained answer tokens + EOS for every candidate, with no extra space token', () => {
    // Untruncated, a title's tokens are the tokenizer's own encoding of it (one dummy-prefix space).
    const whole = encodePrompt(items, {
      tokenizer: tok,
      budget: { maxTokens: 512, maxTitleTokens: 64 },
      style: 'text',
    });
    items.candidates.forEach((c, i) => expect(whole.candidateTokenIds[i]).toEqual(tok.encode(c.title)));
    const settings: PromptSettings = { tokenizer: tok, budget: tight, style: 'text' };
    const encoded = encodePrompt(items, settings);
    const continuations = candidateContinuations(encoded, tok.eosId);
    items.candidates.forEach((c, i) => {
      const train = encodeSample(
        llaraSample({ ...items, target: c }, 'text', createRng(0), [
          { id: 'u', text: 'x {history} y {candidates}. z' },
        ]),
        tok,
        tight,
      );
      const trained = [...train.inputIds.slice(train.promptLength)];
      // The evaluation prompt uses another phrasing, but the answer tokens do not depend on it.
      expect(continuations[i]).toEqual(trained);
      // One space before the title, as inside running text (the dummy prefix's, not a second one).
      expect(tok.decode(continuations[i]!.slice(0, -1))).toMatch(/^ \S/);
      // What the old code scored: the decoded fragment re-encoded gains a second space token.
      const reencoded = tok.encode(tok.decode([...encoded.candidateTokenIds[i]!]));
      expect(reencoded[0]).toBe(space);
      expect(tok.decode(reencoded)).toMatch(/^ {2}\S/);
      expect([...reencoded, tok.eosId]).not.toEqual(trained);
    });
  });
});
