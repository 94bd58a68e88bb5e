import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSafetensors } from '@cprec/lm';
import { DEFAULT_CPT_CONFIG } from '@cprec/training';
import type { RoundJob, RunnerStep, TinyModelSpec } from '../../services/trainer/src/runner/protocol';
import { TINY_MODEL_FILE } from '../../services/trainer/src/runner/round-job';
import { syntheticTitles } from '../../services/trainer/src/runner/sample-sources';
import { RoundSupervisor, type RoundListener } from '../../services/trainer/src/runner/supervisor';

/**
 * The round runner as a real child process (ts-node, IPC), without Kafka or ClickHouse: synthetic
 * data and a tiny random model. The required crash test lives here: SIGKILL mid-phase, the
 * supervisor re-spawns, the runner continues from the checkpoint at the same data position and
 * ends with the adapter an uninterrupted run produces.
 */

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'cprec-runner-'));
  const tiny: TinyModelSpec = {
    format: 'cprec-tiny-random/1',
    config: {
      dim: 16,
      hiddenDim: 32,
      nLayers: 1,
      nHeads: 2,
      nKvHeads: 1,
      maxSeqLen: 96,
      normEps: 1e-5,
      ropeTheta: 10000,
      tiedClassifier: true,
    },
    seed: 3,
    titles: syntheticTitles(),
  };
  mkdirSync(join(dir, 'model'));
  writeFileSync(join(dir, 'model', TINY_MODEL_FILE), JSON.stringify(tiny));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function job(roundId: string, stepDelayMs: number): RoundJob {
  return {
    roundId,
    roundDir: join(dir, 'rounds', roundId),
    previousTrunkDir: null,
    sinceWatermark: 0,
    watermark: 1000,
    model: {
      kind: 'tiny-random',
      dir: join(dir, 'model'),
      baseModelId: 'tiny-random',
      sha256: 'a'.repeat(64),
    },
    backend: 'cpu',
    cpt: {
      ...DEFAULT_CPT_CONFIG,
      batchSize: 2,
      budget: { maxTokens: 96, maxTitleTokens: 6 },
      lora: { rank: 2, alpha: 4, dropout: 0 },
      etaLow: 1e-4,
      etaHigh: 1e-2,
      warmupFraction: 0.2,
      annealFraction: 0.3,
      checkpointEvery: 4,
      maxStableSteps: null,
    },
    data: { kind: 'synthetic', domainSamples: 24, mixedSamples: 8, seed: 5, stepDelayMs },
    targetDomains: [],
  };
}

interface Recorded {
  steps: RunnerStep[];
  attempts: Array<{ attempt: number; resumedFrom: { phase: string; dataPosition: number } | null }>;
  crashes: string[];
}

function recorder(onStep?: (s: RunnerStep) => void): RoundListener & { rec: Recorded } {
  const rec: Recorded = { steps: [], attempts: [], crashes: [] };
  return {
    rec,
    onPhase: () => undefined,
    onStep: (s) => {
      rec.steps.push(s);
      onStep?.(s);
    },
    onAttempt: (attempt, resumedFrom) => rec.attempts.push({ attempt, resumedFrom }),
    onCrash: (_attempt, reason) => rec.crashes.push(reason),
  };
}

const supervisor = (maxRestarts: number) =>
  new RoundSupervisor({
    maxRestarts,
    stopGraceMs: 5_000,
    logFile: (id, a) => join(dir, 'logs', `${id}-${a}.log`),
  });

const adapterOf = (adapterDir: string) => readSafetensors(join(adapterDir, 'adapter.safetensors')).tensors;

describe('round runner process', () => {
  it('killed mid-phase, is re-spawned and continues from its checkpoint with the same data position', async () => {
    const straight = await supervisor(0).start(job('straight', 0), recorder()).outcome;
    if (straight.kind !== 'done') throw new Error(`straight run: ${JSON.stringify(straight)}`);
    // 24 samples / batch 2 = 12 stable steps, 4 annealing steps (30%).
    expect(straight.result).toMatchObject({ stableSteps: 12, annealSteps: 4, resumedFrom: null });

    let killed = false;
    const sup = supervisor(2);
    const listener = recorder((s) => {
      // Past the checkpoint after step 4, before the one after step 8: kill the process.
      if (!killed && s.roundStep === 6) {
        killed = true;
        process.kill(running.pid!, 'SIGKILL');
      }
    });
    const running = sup.start(job('crashy', 150), listener);
    const outcome = await running.outcome;
    if (outcome.kind !== 'done') throw new Error(`crashy run: ${JSON.stringify(outcome)}`);

    expect(listener.rec.crashes).toEqual(['killed by SIGKILL']);
    expect(listener.rec.attempts).toEqual([
      { attempt: 1, resumedFrom: null },
      { attempt: 2, resumedFrom: { phase: 'stable', dataPosition: 8 } },
    ]);
    expect(outcome.result.resumedFrom).toEqual({ phase: 'stable', dataPosition: 8 });
    // The second process started at the step after the checkpoint: steps 5.. again, never 1..4.
    const secondRun = listener.rec.steps.slice(
      listener.rec.steps.findIndex((s, i) => i > 0 && s.roundStep < listener.rec.steps[i - 1]!.roundStep),
    );
    expect(secondRun[0]).toMatchObject({ roundStep: 5, step: 4 });
    expect(secondRun.map((s) => s.roundStep)).toEqual(Array.from({ length: 12 }, (_, i) => i + 5));

    const expected = adapterOf(straight.result.adapters[0]!.dir);
    const got = adapterOf(outcome.result.adapters[0]!.dir);
    for (const [name, t] of expected) {
      const g = got.get(name)!.data;
      t.data.forEach((x, i) => expect(g[i]).toBeCloseTo(x, 6));
    }
  });

  it('stops on request after the current step, and fails after too many crashes', async () => {
    const sup = supervisor(0);
    let stopAsked = false;
    const stoppable = sup.start(
      job('stoppable', 100),
      recorder((s) => {
        if (s.roundStep === 2 && !stopAsked) {
          stopAsked = true;
          stoppable.stop();
        }
      }),
    );
    expect(await stoppable.outcome).toEqual({ kind: 'stopped' });

    let killed = false;
    const fragile = sup.start(
      job('fragile', 100),
      recorder((s) => {
        if (s.roundStep === 2 && !killed) {
          killed = true;
          process.kill(fragile.pid!, 'SIGKILL');
        }
      }),
    );
    const outcome = await fragile.outcome;
    expect(outcome).toEqual({ kind: 'failed', reason: 'runner crashed 1 times; last: killed by SIGKILL' });
  });
});
