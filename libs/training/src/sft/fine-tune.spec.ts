import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import {
  attachLora,
  Llama2cTokenizer,
  LlamaModel,
  loadCheckpoint,
  readLoraManifest,
  readSafetensors,
  saveLoraAdapter,
  type LlamaConfig,
} from '@cprec/lm';
import { useNativeKernelsLikeProduction } from '@cprec/lm/testing/native-kernels';
import {
  STORIES260K_CHECKPOINT,
  STORIES260K_TOKENIZER,
  stories260kAvailable,
} from '@cprec/lm/testing/stories260k';
import type { SampleItems } from '@cprec/corpus';
import { WordTokenizer } from '../testing/word-tokenizer';
import { tinyBaseWeights } from '../experiment/tiny-base';
import type { EvaluationCase } from '../eval/cases';
import { evaluateModel } from '../eval/evaluate';
import {
  DEFAULT_SFT_CONFIG,
  fineTune,
  PROJECTOR_FILE,
  SFT_ADAPTER_DIR,
  SftStoppedError,
  type SftConfig,
  type SftStepReport,
} from './fine-tune';
import { ItemEmbeddingTable } from './item-embeddings';
import { ItemProjector } from './projector';

useNativeKernelsLikeProduction();

const words = ['red', 'blue', 'green', 'fast', 'slow', 'game', 'serum', 'shirt'];
const item = (i: number) => ({ itemId: `g-${i}`, title: `${words[i % 8]} ${words[(i * 3 + 1) % 8]}` });
/** Next item = history's last + 1 (mod 8): learnable from ids (embeddings) and from text. */
function samples(n: number, offset = 0): EvaluationCase[] {
  return Array.from({ length: n }, (_, k) => {
    const i = (k + offset) % 8;
    const target = item((i + 1) % 8);
    const candidates = [item((i + 4) % 8), target, item((i + 6) % 8)];
    return {
      domain: 'games',
      userId: `u${k}`,
      historyLength: 2,
      history: [item((i + 7) % 8), item(i)],
      candidates,
      target,
    };
  });
}

const tokenizer = WordTokenizer.forTitles(Array.from({ length: 8 }, (_, i) => item(i).title));
const modelConfig: LlamaConfig = {
  dim: 16,
  hiddenDim: 32,
  nLayers: 1,
  nHeads: 2,
  nKvHeads: 1,
  vocabSize: tokenizer.vocabSize,
  maxSeqLen: 96,
  normEps: 1e-5,
  ropeTheta: 10000,
  tiedClassifier: true,
};
const config: SftConfig = {
  ...DEFAULT_SFT_CONFIG,
  batchSize: 4,
  epochs: 3,
  learningRates: [1e-2, 1e-4],
  budget: { maxTokens: 96, maxTitleTokens: 4 },
  lora: { rank: 2, alpha: 4, dropout: 0 },
  maxValidationExamples: 8,
};
// A fixed random "SASRec" table: 8 items × 6 dims.
const table = new ItemEmbeddingTable(
  Array.from({ length: 8 }, (_, i) => `g-${i}`),
  Float32Array.from({ length: 48 }, (_, k) => Math.sin(k * 1.7)),
  6,
);

let dir: string;
beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'cprec-sft-'))));
afterEach(() => rmSync(dir, { recursive: true, force: true }));

jest.setTimeout(900_000);

describe('fineTune (LLaRA-style)', () => {
  it('follows the text→hybrid curriculum, trains LoRA and projector on the answer, picks the lr by validation and saves with lineage', async () => {
    const model = new LlamaModel(tinyBaseWeights(modelConfig, 3));
    // A "CPT adapter" to start from.
    attachLora(model, { rank: 2, alpha: 4, dropout: 0 }, 9);
    const cptDir = join(dir, 'cpt');
    saveLoraAdapter(model, cptDir, {
      baseModelId: 'tiny',
      baseChecksum: 'c'.repeat(64),
      lineage: { round_id: 'r7', kind: 'cpt' },
    });
    const cptA = (model.loraVariables().values().next().value as tf.Variable).dataSync().slice();

    const before = tf.memory().numTensors;
    const steps: SftStepReport[] = [];
    const result = await fineTune({
      model,
      tokenizer,
      placeholderId: tokenizer.placeholderId,
      train: samples(16) as SampleItems[],
      validation: samples(8, 3),
      embeddings: table,
      initAdapterDir: cptDir,
      baseModelId: 'tiny',
      baseChecksum: 'c'.repeat(64),
      outDir: join(dir, 'sft'),
      sasrecRef: 'sasrec/games@1',
      config,
      onStep: (s) => steps.push(s),
    });

    // 16 samples / batch 4 × 3 epochs = 12 steps per grid point, 2 grid points.
    expect(steps).toHaveLength(24);
    const first = steps.filter((s) => s.learningRateCandidate === 1e-2);
    expect(first[0]).toMatchObject({ hybridProbability: 0, hybridSamples: 0 });
    expect(first[11]!.hybridProbability).toBe(1);
    expect(first[11]!.hybridSamples).toBe(4);
    for (let i = 1; i < 12; i++)
      expect(first[i]!.hybridProbability).toBeGreaterThan(first[i - 1]!.hybridProbability);
    expect(first.every((s) => Number.isFinite(s.loss))).toBe(true);

    expect(Object.keys(result.validationHr1).sort()).toEqual(['0.0001', '0.01']);
    const bestHr = Math.max(...Object.values(result.validationHr1));
    expect(result.validationHr1[String(result.learningRate)]).toBe(bestHr);

    // Saved: adapter with lineage naming the CPT adapter, and a loadable projector.
    const manifest = readLoraManifest(join(dir, 'sft', SFT_ADAPTER_DIR));
    expect(manifest.lineage).toMatchObject({
      kind: 'sft',
      method: 'cprec',
      cpt_adapter: cptDir,
      cpt_lineage: { round_id: 'r7' },
      learning_rate: result.learningRate,
      sasrec: 'sasrec/games@1',
    });
    const projector = ItemProjector.load(join(dir, 'sft', PROJECTOR_FILE));
    expect(Array.from(projector.w1.dataSync())).toEqual(Array.from(result.projector!.w1.dataSync()));
    // Both the projector and the LoRA weights moved away from their starting points.
    const fresh = new ItemProjector(projector.config, config.seed);
    expect(Array.from(projector.w2.dataSync())).not.toEqual(Array.from(fresh.w2.dataSync()));
    const sftA = (model.loraVariables().values().next().value as tf.Variable).dataSync();
    expect(Array.from(sftA)).not.toEqual(Array.from(cptA));
    fresh.dispose();
    projector.dispose();
    result.projector!.dispose();
    // Nothing leaked besides the adapters that stay on the model (same count as before).
    expect(tf.memory().numTensors).toBe(before);
    expect(existsSync(join(dir, 'sft', SFT_ADAPTER_DIR, 'adapter.safetensors'))).toBe(true);
    expect(
      JSON.parse(readFileSync(join(dir, 'sft', SFT_ADAPTER_DIR, 'adapter.json'), 'utf8')).lineage.projector,
    ).toBe(PROJECTOR_FILE);
  });

  it('lowers the answer loss on a learnable task and trains text-only without embeddings', async () => {
    const model = new LlamaModel(tinyBaseWeights(modelConfig, 5));
    const steps: SftStepReport[] = [];
    const result = await fineTune({
      model,
      tokenizer,
      placeholderId: tokenizer.placeholderId,
      train: samples(32) as SampleItems[],
      validation: samples(8, 1),
      embeddings: null,
      initAdapterDir: null,
      baseModelId: 'tiny',
      baseChecksum: 'c'.repeat(64),
      config: { ...config, learningRates: [2e-2], epochs: 6 },
      onStep: (s) => steps.push(s),
    });
    expect(result.projector).toBeNull();
    expect(steps.every((s) => s.hybridSamples === 0)).toBe(true);
    const mean = (xs: SftStepReport[]) => xs.reduce((a, s) => a + s.loss, 0) / xs.length;
    expect(mean(steps.slice(-8))).toBeLessThan(mean(steps.slice(0, 8)) * 0.6);
  });

  it('resumes a stopped run from its progress checkpoint and ends with the weights of an uninterrupted run', async () => {
    const run = (
      out: string,
      extra: { shouldStop?: () => boolean; onStep?: (r: SftStepReport) => void } = {},
    ): ReturnType<typeof fineTune> =>
      fineTune({
        model: new LlamaModel(tinyBaseWeights(modelConfig, 3)),
        tokenizer,
        placeholderId: tokenizer.placeholderId,
        train: samples(16) as SampleItems[],
        validation: [],
        embeddings: table,
        initAdapterDir: null,
        baseModelId: 'tiny',
        baseChecksum: 'c'.repeat(64),
        outDir: join(dir, out),
        checkpointDir: join(dir, `${out}-progress`),
        checkpointEvery: 2,
        config: { ...config, learningRates: [1e-2], maxValidationExamples: 0 },
        ...extra,
      });
    const straight = await run('straight');
    const expected = [
      ...readSafetensors(join(dir, 'straight', SFT_ADAPTER_DIR, 'adapter.safetensors')).tensors,
    ];
    expect(existsSync(join(dir, 'straight-progress'))).toBe(false); // removed once the run is saved

    let polls = 0;
    await expect(run('killed', { shouldStop: () => ++polls > 5 })).rejects.toBeInstanceOf(SftStoppedError);
    expect(existsSync(join(dir, 'killed-progress', 'state.json'))).toBe(true);
    const resumedSteps: number[] = [];
    const resumed = await run('killed', { onStep: (r) => resumedSteps.push(r.step) });
    // Five steps ran before the stop; the checkpoint written at the stop resumes at step 5.
    expect(resumedSteps[0]).toBe(5);
    expect(resumed.curve.map((c) => c.step)).toEqual(straight.curve.map((c) => c.step));
    const got = readSafetensors(join(dir, 'killed', SFT_ADAPTER_DIR, 'adapter.safetensors')).tensors;
    for (const [name, t] of expected) {
      const g = got.get(name)!.data;
      t.data.forEach((x, i) => expect(g[i]).toBeCloseTo(x, 5));
    }
    straight.projector?.dispose();
    resumed.projector?.dispose();
  });

  it('refuses a resumable run over a learning-rate grid', async () => {
    await expect(
      fineTune({
        model: new LlamaModel(tinyBaseWeights(modelConfig, 3)),
        tokenizer,
        placeholderId: tokenizer.placeholderId,
        train: samples(4) as SampleItems[],
        validation: [],
        embeddings: null,
        initAdapterDir: null,
        baseModelId: 'tiny',
        baseChecksum: 'c'.repeat(64),
        checkpointDir: join(dir, 'p'),
        config,
      }),
    ).rejects.toThrow(/single learning rate/);
  });

  it('micro-batches give the update of the whole batch (gradients weighted by answer tokens)', async () => {
    const run = async (microBatchSize: number | undefined, out: string) => {
      const result = await fineTune({
        model: new LlamaModel(tinyBaseWeights(modelConfig, 3)),
        tokenizer,
        placeholderId: tokenizer.placeholderId,
        train: samples(8) as SampleItems[],
        validation: [],
        embeddings: table,
        initAdapterDir: null,
        baseModelId: 'tiny',
        baseChecksum: 'c'.repeat(64),
        outDir: join(dir, out),
        config: {
          ...config,
          learningRates: [1e-2],
          maxValidationExamples: 0,
          epochs: 1,
          ...(microBatchSize ? { microBatchSize } : {}),
        },
      });
      result.projector?.dispose();
      return {
        curve: result.curve,
        weights: readSafetensors(join(dir, out, SFT_ADAPTER_DIR, 'adapter.safetensors')).tensors,
      };
    };
    const whole = await run(undefined, 'whole');
    const micro = await run(1, 'micro');
    micro.curve.forEach((c, i) => expect(c.loss).toBeCloseTo(whole.curve[i]!.loss, 4));
    for (const [name, t] of whole.weights) {
      const g = micro.weights.get(name)!.data;
      t.data.forEach((x, i) => expect(g[i]).toBeCloseTo(x, 4));
    }
  });
});

const describeStories = stories260kAvailable() ? describe : describe.skip;

describeStories('fine-tuning and evaluation agree (stories260K, its own tokenizer)', () => {
  it('what fine-tuning trains, the evaluation measures: the learnt next item is ranked first and its title generated', async () => {
    // End to end through the production paths: fineTune's prompts and answer tokens, then
    // evaluateModel's likelihood ranking and greedy generation on the same task (next item = the
    // last history item's successor). A mismatch between the two (an extra token, another template,
    // a shifted answer) leaves HR@1 near chance (1/3) however low the training loss gets.
    const weights = loadCheckpoint(STORIES260K_CHECKPOINT);
    const tok = Llama2cTokenizer.fromFile(STORIES260K_TOKENIZER, weights.config.vocabSize);
    const model = new LlamaModel(weights);
    const titles = ['The Red Ball', 'A Big Dog', 'Happy Sun', 'The Little Boat', 'Blue Bird', 'A Tall Tree'];
    const titled = (i: number) => ({ itemId: `s${i % 6}`, title: titles[i % 6]! });
    const cases = (n: number): EvaluationCase[] =>
      Array.from({ length: n }, (_, k) => ({
        domain: 'stories',
        userId: `u${k}`,
        historyLength: 2,
        history: [titled(k + 5), titled(k)],
        candidates:
          k % 2
            ? [titled(k + 1), titled(k + 3), titled(k + 4)]
            : [titled(k + 3), titled(k + 1), titled(k + 4)],
        target: titled(k + 1),
      }));
    const settings = {
      tokenizer: tok,
      budget: { maxTokens: 256, maxTitleTokens: 8 },
      style: 'text' as const,
    };
    const examples = cases(12);
    const evaluate = async () => {
      const { cases: out } = await evaluateModel({ ...settings, model, examples, ks: [1] });
      return {
        likelihood: out.filter((c) => c.likelihoodRank === 1).length / out.length,
        generations: out.map((c) => c.generations[0] ?? ''),
      };
    };
    const before = await evaluate();
    await fineTune({
      model,
      tokenizer: tok,
      placeholderId: 0,
      train: cases(24) as SampleItems[],
      validation: cases(6),
      embeddings: null,
      initAdapterDir: null,
      baseModelId: 'stories260K',
      baseChecksum: 'c'.repeat(64),
      config: {
        ...DEFAULT_SFT_CONFIG,
        batchSize: 4,
        epochs: 8,
        learningRates: [1e-2],
        budget: settings.budget,
        lora: { rank: 8, alpha: 16, dropout: 0 },
        maxValidationExamples: 6,
      },
    });
    const after = await evaluate();
    expect(before.likelihood).toBeLessThan(0.9);
    expect(after.likelihood).toBe(1);
    // Greedy answers begin with the target's title. (stories260K never saw its EOS token in
    // pre-training and 8 epochs do not teach it to stop there: what follows the title varies —
    // the generation matcher needs a word boundary after a title for that reason.)
    after.generations.forEach((g, i) =>
      expect(g.trimStart().startsWith(examples[i]!.target.title)).toBe(true),
    );
    model.dispose();
  });
});
