import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { attachLora, LlamaModel, mulberry32, randomWeights, saveLoraAdapter } from '@cprec/lm';
import { buildReport } from '@cprec/metrics';
import { WordTokenizer } from '@cprec/training/testing';
import { runEvaluationJob, selectEvaluationBackend } from './evaluation-job';
import { methodMetrics } from './metrics';
import { TINY_MODEL_FILE, type EvaluationJob, type TinyModelFile } from './protocol';

const words = ['red', 'blue', 'green', 'fast', 'slow', 'bright', 'soft', 'loud'];
const title = (i: number) => `${words[i % 8]} ${words[(i * 3 + 1) % 8]} game`;
const tiny: TinyModelFile = {
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
  titles: Array.from({ length: 8 }, (_, i) => title(i)),
};
const SHA = 'c'.repeat(64);
const item = (i: number) => ({ itemId: `g${i}`, title: title(i) });
const cases = Array.from({ length: 6 }, (_, u) => ({
  domain: 'games',
  userId: `u${u}`,
  historyLength: 2,
  history: [item(u), item(u + 1)],
  candidates: [item(u + 2), item(u + 3), item(u + 4)],
  target: item(u + 2),
}));

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'cprec-evaluator-job-'));
  writeFileSync(join(dir, TINY_MODEL_FILE), JSON.stringify(tiny));
  // A LoRA adapter trained (here: randomised) on exactly this base, as the trainer would save it.
  const tokenizer = WordTokenizer.forTitles(tiny.titles);
  const model = new LlamaModel(randomWeights({ ...tiny.config, vocabSize: tokenizer.vocabSize }, tiny.seed));
  attachLora(model, { rank: 2, alpha: 4, dropout: 0 }, 3);
  const rand = mulberry32(9);
  for (const [name, v] of model.loraVariables())
    if (name.endsWith('lora_B'))
      v.assign(
        tf.tensor(
          Float32Array.from({ length: v.size }, () => (rand() - 0.5) * 0.5),
          v.shape,
        ),
      );
  saveLoraAdapter(model, join(dir, 'adapter'), {
    baseModelId: 'tiny-random',
    baseChecksum: SHA,
    lineage: {},
  });
  model.dispose();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const job = (over: Partial<EvaluationJob> = {}): EvaluationJob => ({
  jobId: 'j1',
  model: { kind: 'tiny-random', dir, baseModelId: 'tiny-random', sha256: SHA },
  backend: 'cpu',
  budget: { maxTokens: 96, maxTitleTokens: 6 },
  adapters: [{ adapterId: 'a1', dir: join(dir, 'adapter') }],
  domains: [{ domain: 'games', splitId: 's1', cases }],
  likelihood: true,
  generation: false,
  ...over,
});

describe('runEvaluationJob', () => {
  it('scores an adapter on the tiny base rebuilt from its spec, with both methods when asked', async () => {
    const progress: number[] = [];
    const result = await runEvaluationJob(job({ generation: true }), (done) => progress.push(done));
    expect(result.evaluations).toHaveLength(1);
    const [e] = result.evaluations;
    expect(e).toMatchObject({ adapterId: 'a1', domain: 'games', splitId: 's1' });
    expect(e.metrics.map((m) => [m.method, m.samples])).toEqual([
      ['likelihood', 6],
      ['generation', 6],
    ]);
    const likelihood = e.metrics[0];
    expect(likelihood.validRatio).toBe(1);
    // 3 candidates: HR@3 is 1 whatever the model, HR@1 a multiple of 1/6.
    expect(likelihood.hr3).toBe(1);
    expect(Number.isInteger(likelihood.hr1 * 6)).toBe(true);
    expect(likelihood.hr1).toBeLessThanOrEqual(likelihood.hr3);
    expect(progress.at(-1)).toBe(6);
  });

  it('refuses an adapter trained on another base', async () => {
    await expect(
      runEvaluationJob(
        job({ model: { kind: 'tiny-random', dir, baseModelId: 'tiny-random', sha256: 'd'.repeat(64) } }),
      ),
    ).rejects.toThrow(/trained on base/);
  });
});

describe('methodMetrics', () => {
  it('maps a report to the headline numbers per method', () => {
    const report = buildReport([
      { domain: 'games', historyLength: 3, firstValid: true, generatedRank: 1, likelihoodRank: 2 },
      { domain: 'games', historyLength: 3, firstValid: false, generatedRank: null, likelihoodRank: 1 },
      { domain: 'games', historyLength: 3, firstValid: true, generatedRank: 3, likelihoodRank: 6 },
      { domain: 'games', historyLength: 3, firstValid: true, generatedRank: 2, likelihoodRank: 1 },
    ]);
    const [likelihood, generation] = methodMetrics(report, 'games', { likelihood: true, generation: true });
    expect(likelihood).toMatchObject({
      method: 'likelihood',
      samples: 4,
      hr1: 0.5,
      hr1Valid: 0.5,
      validRatio: 1,
      hr3: 0.75,
      hr5: 0.75,
    });
    expect(generation).toMatchObject({
      method: 'generation',
      samples: 4,
      hr1: 0.25,
      validRatio: 0.75,
      hr3: 0.75,
    });
    expect(generation.hr1Valid).toBeCloseTo(1 / 3, 10);
    expect(methodMetrics(report, 'books', { likelihood: true, generation: true })).toEqual([]);
  });
});

describe('selectEvaluationBackend', () => {
  const stories = join(__dirname, '../../../../../shared/models/stories260K/stories260K.bin');
  const saved = process.env.CPREC_BACKEND;
  afterEach(() => {
    if (saved === undefined) delete process.env.CPREC_BACKEND;
    else process.env.CPREC_BACKEND = saved;
  });

  it("asks `auto` for the job's base model and the scoring workload", async () => {
    // CPREC_BACKEND short-cuts the measurement but still records what the decision was for.
    process.env.CPREC_BACKEND = 'cpu';
    const report = await selectEvaluationBackend({
      model: { kind: 'checkpoint', path: stories, baseModelId: 'stories260K', sha256: SHA },
      backend: 'auto',
      budget: { maxTokens: 0, maxTitleTokens: 12 },
    });
    expect(report.backend).toBe('cpu');
    expect(report.auto).toMatchObject({ from: 'env', model: stories, workload: 'infer' });
  });
});
