import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_CPT_CONFIG } from '@cprec/training';
import { WordTokenizer } from '@cprec/training/testing';
import type { RoundJob, TinyModelSpec } from './protocol';
import {
  backendModelOf,
  readFinishedRound,
  RESULT_FILE,
  runRoundJob,
  selectRoundBackend,
  TINY_MODEL_FILE,
} from './round-job';

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

/** A one-layer random LLaMA over a word vocabulary of `titles`. */
function tinySpec(titles: string[], maxSeqLen: number): TinyModelSpec {
  return {
    format: 'cprec-tiny-random/1',
    config: {
      dim: 16,
      hiddenDim: 32,
      nLayers: 1,
      nHeads: 2,
      nKvHeads: 1,
      maxSeqLen,
      normEps: 1e-5,
      ropeTheta: 10000,
      tiedClassifier: true,
    },
    seed: 3,
    titles,
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
    const tiny = tinySpec(titles, 64);
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

describe('a finished round hands back the same outputs when its runner runs again', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'cprec-round-finished-'));
    writeFileSync(join(dir, TINY_MODEL_FILE), JSON.stringify(tinySpec(['beauty item', 'games item'], 128)));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const smallJob = (): RoundJob => ({
    ...job({ kind: 'tiny-random', dir, baseModelId: 'tiny', sha256: SHA }),
    roundDir: join(dir, 'round'),
    backend: 'cpu',
    cpt: {
      ...DEFAULT_CPT_CONFIG,
      batchSize: 2,
      maxStableSteps: 2,
      budget: { maxTokens: 96, maxTitleTokens: 4 },
    },
    data: { kind: 'synthetic', domainSamples: 4, mixedSamples: 4, seed: 1 },
  });

  /** sha256 of every file under `d`, by relative path. */
  function digest(d: string): Record<string, string> {
    const out: Record<string, string> = {};
    for (const name of readdirSync(d, { recursive: true, withFileTypes: true })) {
      if (!name.isFile()) continue;
      const path = join(name.parentPath, name.name);
      out[path.slice(d.length)] = createHash('sha256').update(readFileSync(path)).digest('hex');
    }
    return out;
  }

  it('without training again (publishing may have begun: the artefact store refuses new bytes under its keys)', async () => {
    const steps: number[] = [];
    const first = await runRoundJob(smallJob(), { onStep: (s) => void steps.push(s.roundStep) });
    expect(steps.length).toBeGreaterThan(0);
    expect(existsSync(join(dir, 'round', RESULT_FILE))).toBe(true);
    const before = first.adapters.map((a) => digest(a.dir));

    const started: Array<{ phase: string } | null> = [];
    const again = await runRoundJob(smallJob(), {
      onStarted: (from) => started.push(from),
      onStep: () => {
        throw new Error('trained again');
      },
    });
    expect(started).toEqual([{ phase: 'done', dataPosition: 0 }]);
    expect({ ...again, resumedFrom: first.resumedFrom }).toEqual(first);
    expect(again.adapters.map((a) => digest(a.dir))).toEqual(before);
  });

  it('trains again when an output it recorded is gone', async () => {
    const first = await runRoundJob(smallJob());
    rmSync(first.adapters[0].dir, { recursive: true });
    expect(readFinishedRound(join(dir, 'round'))).toBeNull();
    const steps: number[] = [];
    const again = await runRoundJob(smallJob(), { onStep: (s) => void steps.push(s.roundStep) });
    expect(existsSync(again.adapters[0].dir)).toBe(true);
    // From its last checkpoint (the start of annealing), not as a finished round.
    expect(again.resumedFrom?.phase).toBe('annealing');
    expect(steps.length).toBeGreaterThan(0);
  });
});
