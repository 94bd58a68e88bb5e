import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_CPT_CONFIG } from '@cprec/training';
import { WordTokenizer } from '@cprec/training/testing';
import type { RoundJob, TinyModelSpec } from './protocol';
import { backendModelOf, selectRoundBackend, TINY_MODEL_FILE } from './round-job';

const STORIES = join(__dirname, '../../../../../shared/models/stories260K/stories260K.bin');
const SHA = 'd'.repeat(64);

function job(model: RoundJob['model']): RoundJob {
  return {
    roundId: 'r1',
    roundDir: '/unused',
    previousTrunkDir: null,
    sinceWatermark: 0,
    watermark: 0,
    model,
    backend: 'auto',
    cpt: { ...DEFAULT_CPT_CONFIG, maxStableSteps: null },
    data: { kind: 'synthetic', domainSamples: 1, mixedSamples: 1, seed: 1 },
    targetDomains: [],
  };
}

describe('the round chooses its backend for its own base model', () => {
  const saved = process.env.CPREC_BACKEND;
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'cprec-round-backend-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
    if (saved === undefined) delete process.env.CPREC_BACKEND;
    else process.env.CPREC_BACKEND = saved;
  });

  it("asks `auto` for the checkpoint's path and the training workload", async () => {
    process.env.CPREC_BACKEND = 'cpu';
    const report = await selectRoundBackend(
      job({ kind: 'checkpoint', path: STORIES, baseModelId: 'stories260K', sha256: SHA }),
    );
    expect(report.backend).toBe('cpu');
    expect(report.auto).toMatchObject({ from: 'env', model: STORIES, workload: 'train' });
  });

  it("gives `auto` the tiny random base's config, vocabulary included", () => {
    const titles = ['red fast game', 'blue slow game'];
    const tiny: TinyModelSpec = {
      format: 'cprec-tiny-random/1',
      config: {
        dim: 16,
        hiddenDim: 32,
        nLayers: 1,
        nHeads: 2,
        nKvHeads: 1,
        maxSeqLen: 64,
        normEps: 1e-5,
        ropeTheta: 10000,
        tiedClassifier: true,
      },
      seed: 3,
      titles,
    };
    writeFileSync(join(dir, TINY_MODEL_FILE), JSON.stringify(tiny));
    const model = backendModelOf({ kind: 'tiny-random', dir, baseModelId: 'tiny', sha256: SHA });
    expect(model).toEqual({ ...tiny.config, vocabSize: WordTokenizer.forTitles(titles).vocabSize });
    expect(
      backendModelOf({
        kind: 'llama2c',
        checkpoint: STORIES,
        tokenizer: 'tok.bin',
        baseModelId: 'x',
        sha256: SHA,
      }),
    ).toBe(STORIES);
  });
});
