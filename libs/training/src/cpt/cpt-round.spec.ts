import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { LlamaModel, randomWeights, readSafetensors, type LlamaConfig } from '@cprec/lm';
import { useNativeKernelsLikeProduction } from '@cprec/lm/testing/native-kernels';
import type { SampleItems } from '@cprec/corpus';
import { ArraySampleSource, type SampleSource } from '../data/sample-source';
import { learningRateAt } from '../schedule';
import { WordTokenizer } from '../testing/word-tokenizer';
import { readCheckpointState } from './checkpoint';
import { ADAPTER_DIR, runCptRound, RoundStoppedError, TRUNK_DIR } from './cpt-round';
import { CptConfig, DEFAULT_CPT_CONFIG, StepReport } from './types';

useNativeKernelsLikeProduction();

const words = ['red', 'blue', 'green', 'fast', 'slow', 'game', 'serum', 'shirt', 'toy', 'car'];
function item(domain: string, i: number) {
  return { itemId: `${domain}-${i}`, title: `${words[i % 10]} ${words[(i * 3 + 1) % 10]} ${domain}` };
}
function samples(domain: string, n: number, offset = 0): SampleItems[] {
  return Array.from({ length: n }, (_, k) => {
    const i = k + offset;
    const target = item(domain, i % 7);
    const candidates = [
      target,
      item(domain, (i + 1) % 7 === i % 7 ? 5 : (i + 1) % 7),
      item(domain, (i + 3) % 7),
    ];
    return { history: [item(domain, (i + 2) % 7), item(domain, (i + 4) % 7)], candidates, target };
  });
}

/** Records which samples a round drew, to check that each phase uses only its kind of data. */
class RecordingSource implements SampleSource {
  drawn: string[] = [];
  constructor(
    private readonly inner: ArraySampleSource,
    private readonly tag: string,
  ) {}
  get size() {
    return this.inner.size;
  }
  async *samples(from: number): AsyncIterable<SampleItems> {
    for await (const s of this.inner.samples(from)) {
      this.drawn.push(`${this.tag}:${s.target.itemId}`);
      yield s;
    }
  }
}

const tokenizer = WordTokenizer.forTitles(
  ['beauty', 'games', 'mixed'].flatMap((d) => Array.from({ length: 7 }, (_, i) => item(d, i).title)),
);
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
const config: CptConfig = {
  ...DEFAULT_CPT_CONFIG,
  batchSize: 2,
  budget: { maxTokens: 96, maxTitleTokens: 6 },
  lora: { rank: 2, alpha: 4, dropout: 0 },
  etaLow: 1e-4,
  etaHigh: 1e-2,
  warmupFraction: 0.25,
  annealFraction: 0.5,
  checkpointEvery: 2,
};

let dir: string;
beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'cprec-cpt-'))));
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const newModel = () => new LlamaModel(randomWeights(modelConfig, 3));

function loraTensors(model: LlamaModel): Map<string, Float32Array> {
  return new Map([...model.loraVariables()].map(([k, v]) => [k, (v.dataSync() as Float32Array).slice()]));
}

async function round(
  roundId: string,
  model: LlamaModel,
  domain: SampleSource,
  mixed: SampleSource,
  previousTrunkDir: string | null,
  extra: {
    steps?: StepReport[];
    shouldStop?: () => boolean;
    onPhase?: () => void;
    variant?: CptConfig['variant'];
  } = {},
) {
  return runCptRound({
    roundId,
    model,
    baseModelId: 'tiny',
    baseChecksum: 'c'.repeat(64),
    tokenizer,
    config: { ...config, variant: extra.variant ?? 'cprec' },
    previousTrunkDir,
    roundDir: join(dir, roundId),
    domainSamples: domain,
    mixedSamples: mixed,
    watermark: 1000,
    onStep: (r) => void extra.steps?.push(r),
    onPhase: extra.onPhase,
    shouldStop: extra.shouldStop,
  });
}

describe('runCptRound', () => {
  it('warms up, holds the peak rate, anneals by cosine, and draws each phase only from its data', async () => {
    const domain = new RecordingSource(new ArraySampleSource(samples('beauty', 16)), 'ds');
    const mixed = new RecordingSource(new ArraySampleSource(samples('mixed', 6)), 'mix');
    const steps: StepReport[] = [];
    const model = newModel();
    const before = tf.memory().numTensors;
    const result = await round('r1', model, domain, mixed, null, { steps });
    expect(tf.memory().numTensors).toBe(before + model.loraVariables().size);

    // 16 samples / batch 2 = 8 stable steps; annealing = 50% of 8 = 4 steps; W = 25% of all 12 = 3.
    expect(result.schedule).toMatchObject({ warmupSteps: 3, stableEnd: 8, annealEnd: 12 });
    expect(steps.map((s) => s.phase)).toEqual([
      ...Array(3).fill('warmup'),
      ...Array(5).fill('stable'),
      ...Array(4).fill('annealing'),
    ]);
    for (const s of steps) expect(s.lr).toBeCloseTo(learningRateAt(result.schedule, s.step), 12);
    expect(steps[0]!.lr).toBe(config.etaLow);
    expect(steps[5]!.lr).toBe(config.etaHigh);
    expect(steps[8]!.lr).toBeLessThan(config.etaHigh);
    // The last step of the round (the last annealing step) runs at exactly η_l.
    expect(steps[11]!.lr).toBe(config.etaLow);
    expect(domain.drawn).toHaveLength(16);
    expect(mixed.drawn).toHaveLength(8); // 4 annealing steps × batch 2
    expect(steps.every((s) => Number.isFinite(s.loss) && s.tokens > 0)).toBe(true);
    expect(readCheckpointState(join(dir, 'r1', TRUNK_DIR))).toMatchObject({
      kind: 'trunk',
      globalStep: 8,
      watermark: 1000,
    });
  });

  it('starts round 2 from round 1 trunk (weights and optimizer moments), not from its annealed branch', async () => {
    const model = newModel();
    const r1 = await round(
      'r1',
      model,
      new ArraySampleSource(samples('beauty', 8)),
      new ArraySampleSource(samples('mixed', 4)),
      null,
    );
    const trunkWeights = readSafetensors(join(r1.trunkDir, 'adapter.safetensors')).tensors;
    const branchWeights = readSafetensors(join(dir, 'r1', ADAPTER_DIR, 'adapter.safetensors')).tensors;
    const trunkMoments = readSafetensors(join(r1.trunkDir, 'optimizer.safetensors'));

    let atStart: Map<string, Float32Array> | null = null;
    const steps: StepReport[] = [];
    const r2 = await round(
      'r2',
      model,
      new ArraySampleSource(samples('beauty', 4, 100)),
      new ArraySampleSource(samples('mixed', 4, 50)),
      r1.trunkDir,
      {
        steps,
        onPhase: () => {
          atStart ??= loraTensors(model);
        },
      },
    );
    let differsFromBranch = false;
    for (const [name, t] of trunkWeights) {
      expect(Array.from(atStart!.get(name)!)).toEqual(Array.from(t.data));
      if (Array.from(branchWeights.get(name)!.data).some((x, i) => x !== t.data[i])) differsFromBranch = true;
    }
    expect(differsFromBranch).toBe(true);
    // The stable phase continues the global step count at the peak rate: no second warm-up.
    expect(steps[0]).toMatchObject({ phase: 'stable', step: 4, lr: config.etaHigh });
    const r2Trunk = readCheckpointState(r2.trunkDir);
    // W was fixed by round 1: 25% of its 4 stable + 2 annealing steps = 1.5 → 2.
    expect(r2Trunk).toMatchObject({ globalStep: 6, parentTrunk: r1.trunkDir, warmupSteps: 2 });
    expect(Number(trunkMoments.metadata.step)).toBe(4);
    expect(Number(readSafetensors(join(r2.trunkDir, 'optimizer.safetensors')).metadata.step)).toBe(6);
  });

  it('resumes a stopped round from its checkpoint at the same data position and ends with the same adapter', async () => {
    const data = () => new RecordingSource(new ArraySampleSource(samples('beauty', 12)), 'ds');
    const mix = () => new ArraySampleSource(samples('mixed', 4));

    const straight = await round('straight', newModel(), data(), mix(), null);
    const expected = readSafetensors(join(straight.adapterDir, 'adapter.safetensors')).tensors;

    const model = newModel();
    const first = data();
    let n = 0;
    await expect(
      round('crashy', model, first, mix(), null, { shouldStop: () => n++ >= 4 }),
    ).rejects.toBeInstanceOf(RoundStoppedError);
    expect(first.drawn).toHaveLength(8); // 4 steps × 2, the last checkpoint was after step 4

    const second = data();
    const resumed = await round('crashy', newModel(), second, mix(), null);
    expect(resumed.resumedFrom).toEqual({ phase: 'stable', dataPosition: 8 });
    expect(second.drawn).toEqual(
      first.drawn.length === 8
        ? samples('beauty', 12)
            .slice(8)
            .map((s) => `ds:${s.target.itemId}`)
        : [],
    );
    const got = readSafetensors(join(resumed.adapterDir, 'adapter.safetensors')).tensors;
    for (const [name, t] of expected) {
      const g = got.get(name)!.data;
      t.data.forEach((x, i) => expect(g[i]).toBeCloseTo(x, 6));
    }
  });

  it('checkpoints the steps since the last periodic checkpoint when stopped, and resumes to the same adapter', async () => {
    const data = () => new RecordingSource(new ArraySampleSource(samples('beauty', 12)), 'ds');
    const mix = () => new ArraySampleSource(samples('mixed', 4));
    const straight = await round('straight-odd', newModel(), data(), mix(), null);
    const expected = readSafetensors(join(straight.adapterDir, 'adapter.safetensors')).tensors;

    let n = 0;
    // Stopped after 3 steps; periodic checkpoints come every 2.
    await expect(
      round('stopped-odd', newModel(), data(), mix(), null, { shouldStop: () => n++ >= 3 }),
    ).rejects.toBeInstanceOf(RoundStoppedError);
    const second = data();
    const resumed = await round('stopped-odd', newModel(), second, mix(), null);
    expect(resumed.resumedFrom).toEqual({ phase: 'stable', dataPosition: 6 });
    const got = readSafetensors(join(resumed.adapterDir, 'adapter.safetensors')).tensors;
    for (const [name, t] of expected) {
      const g = got.get(name)!.data;
      t.data.forEach((x, i) => expect(g[i]).toBeCloseTo(x, 6));
    }
  });

  it('sees a stop requested by a timer or signal handler during the round (it yields between steps)', async () => {
    let stop = false;
    const steps: StepReport[] = [];
    // Set from a macrotask, as a SIGINT handler would: seen only if the loop lets timers run.
    setImmediate(() => {
      stop = true;
    });
    await expect(
      round(
        'signalled',
        newModel(),
        new ArraySampleSource(samples('beauty', 12)),
        new ArraySampleSource(samples('mixed', 4)),
        null,
        {
          steps,
          shouldStop: () => stop,
        },
      ),
    ).rejects.toBeInstanceOf(RoundStoppedError);
    expect(steps.length).toBeLessThan(2);
  });

  it('DS+Mix(S) trains mixed data in the stable phase and does not anneal', async () => {
    const domain = new RecordingSource(new ArraySampleSource(samples('beauty', 6)), 'ds');
    const mixed = new RecordingSource(new ArraySampleSource(samples('mixed', 2)), 'mix');
    const steps: StepReport[] = [];
    const result = await round('s', newModel(), domain, mixed, null, { steps, variant: 'ds-mix-s' });
    expect(result.annealSteps).toBe(0);
    expect(steps.some((s) => s.phase === 'annealing')).toBe(false);
    expect(domain.drawn).toHaveLength(6);
    expect(mixed.drawn).toHaveLength(2);
  });
});

describe('runCptRound with an explicit annealing source (ablations with equal steps and data)', () => {
  it('DS+Mix(S): mixed shuffled into the stable phase, annealing on the displaced domain-specific samples', async () => {
    const head = new RecordingSource(new ArraySampleSource(samples('beauty', 10)), 'ds');
    const mixed = new RecordingSource(new ArraySampleSource(samples('mixed', 6)), 'mix');
    const tail = new RecordingSource(new ArraySampleSource(samples('beauty', 6, 100)), 'tail');
    const steps: StepReport[] = [];
    const result = await runCptRound({
      roundId: 'mix-s',
      model: newModel(),
      baseModelId: 'tiny',
      baseChecksum: 'c'.repeat(64),
      tokenizer,
      config: { ...config, variant: 'ds-mix-s', minAnnealSteps: 3, maxAnnealSteps: 3 },
      previousTrunkDir: null,
      roundDir: join(dir, 'mix-s'),
      domainSamples: head,
      mixedSamples: mixed,
      annealSamples: tail,
      watermark: 0,
      onStep: (r) => void steps.push(r),
    });
    // (10 + 6) / 2 = 8 stable steps on both pools, then 3 annealing steps on the tail, ending at η_l.
    expect(result).toMatchObject({ stableSteps: 8, annealSteps: 3 });
    expect(head.drawn).toHaveLength(10);
    expect(mixed.drawn).toHaveLength(6);
    expect(tail.drawn).toHaveLength(6);
    expect(steps[steps.length - 1]!.lr).toBe(config.etaLow);
  });
});

describe('runCptRound with micro-batches', () => {
  it('accumulates the micro-batches of a step into one optimizer update', async () => {
    const steps: StepReport[] = [];
    const result = await runCptRound({
      roundId: 'micro',
      model: newModel(),
      baseModelId: 'tiny',
      baseChecksum: 'c'.repeat(64),
      tokenizer,
      config: { ...config, microBatchSize: 1 },
      previousTrunkDir: null,
      roundDir: join(dir, 'micro'),
      domainSamples: new ArraySampleSource(samples('beauty', 8)),
      mixedSamples: new ArraySampleSource(samples('mixed', 4)),
      watermark: 0,
      onStep: (r) => void steps.push(r),
    });
    // 4 stable + 2 annealing steps of batch 2, each two micro-batches: 6 Adam updates.
    expect(steps).toHaveLength(6);
    expect(Number(readSafetensors(join(result.trunkDir, 'optimizer.safetensors')).metadata.step)).toBe(4);
    expect(steps.every((s) => Number.isFinite(s.loss) && s.tokens > 0)).toBe(true);
  });
});

describe('runCptRound with the plain cosine schedule (ablation)', () => {
  it('warms up as WSA, then decays by one cosine over every remaining step to η_l, data plan unchanged', async () => {
    const domain = new RecordingSource(new ArraySampleSource(samples('beauty', 16)), 'ds');
    const mixed = new RecordingSource(new ArraySampleSource(samples('mixed', 6)), 'mix');
    const steps: StepReport[] = [];
    await runCptRound({
      roundId: 'cos',
      model: newModel(),
      baseModelId: 'tiny',
      baseChecksum: 'c'.repeat(64),
      tokenizer,
      config: { ...config, scheduleKind: 'cosine' },
      previousTrunkDir: null,
      roundDir: join(dir, 'cos'),
      domainSamples: domain,
      mixedSamples: mixed,
      watermark: 0,
      onStep: (r) => void steps.push(r),
    });
    const cos = { kind: 'cosine' as const, etaLow: 1e-4, etaHigh: 1e-2, warmupSteps: 3, totalSteps: 12 };
    expect(steps).toHaveLength(12);
    for (const s of steps) expect(s.lr).toBeCloseTo(learningRateAt(cos, s.step), 12);
    expect(steps[3]!.lr).toBeLessThan(config.etaHigh); // no plateau
    expect(steps[11]!.lr).toBe(config.etaLow);
    expect(domain.drawn).toHaveLength(16);
    expect(mixed.drawn).toHaveLength(8);
  });
});

describe('checkpoint crash safety', () => {
  it('recovers the previous checkpoint when a save was killed between its two renames', async () => {
    const { renameSync } = await import('node:fs');
    const model = newModel();
    const r1 = await round(
      'r1',
      model,
      new ArraySampleSource(samples('beauty', 4)),
      new ArraySampleSource(samples('mixed', 2)),
      null,
    );
    // Simulate the kill: the old checkpoint was moved aside and the new one never moved in.
    renameSync(r1.trunkDir, `${r1.trunkDir}.old-4242`);
    expect(readCheckpointState(r1.trunkDir)).toMatchObject({ kind: 'trunk', roundId: 'r1' });
  });
});
