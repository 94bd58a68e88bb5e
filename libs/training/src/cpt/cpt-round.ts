import { join } from 'node:path';
import { attachLora, LlamaModel, saveLoraAdapter, Trainer, type LoraManifest } from '@cprec/lm';
import {
  cptSample,
  encodeSample,
  TokenBudgetError,
  type EncodedSample,
  type SampleItems,
  type Tokenizer,
} from '@cprec/corpus';
import { padBatch } from '../data/batching';
import { cycleSamples, InterleavedSampleSource, type SampleSource } from '../data/sample-source';
import { dataPoolFor, learningRateAt, warmupStepsFor, type DataPool, type WsaSchedule } from '../schedule';
import {
  hasCheckpoint,
  loadCheckpoint,
  readCheckpointState,
  saveCheckpoint,
  type CheckpointState,
} from './checkpoint';
import { CptConfig, StepReport } from './types';

export interface CptRoundInput {
  roundId: string;
  /** Base model with its weights loaded; LoRA adapters are attached/replaced by the round. */
  model: LlamaModel;
  baseModelId: string;
  baseChecksum: string;
  tokenizer: Tokenizer;
  config: CptConfig;
  /** Trunk checkpoint of the previous round, or null on the first round (warm-up happens then). */
  previousTrunkDir: string | null;
  /** This round's folder: progress checkpoints, the new trunk and the annealed adapter. */
  roundDir: string;
  /** Domain-specific samples that arrived since the previous trunk's watermark (plus replay). */
  domainSamples: SampleSource;
  /** All-domain mixed samples for annealing. */
  mixedSamples: SampleSource;
  /**
   * What annealing trains on, overriding the variant's pool: lets an ablation keep the step count
   * and the data of CPRec and change only where the data goes — e.g. DS+Mix(S) with the mixed
   * samples shuffled into the stable phase and the annealing on the domain-specific samples they
   * displaced, or DS-only annealing on further domain-specific samples instead of mixed ones.
   */
  annealSamples?: SampleSource;
  /** Watermark the new trunk will have absorbed. */
  watermark: number;
  onStep?: (report: StepReport) => void | Promise<void>;
  onPhase?: (phase: 'warmup' | 'stable' | 'annealing', info: { steps: number }) => void | Promise<void>;
  /** Polled between steps; a true answer stops the round (CancelledError) after the current step. */
  shouldStop?: () => boolean;
}

export interface CptRoundResult {
  trunkDir: string;
  adapterDir: string;
  adapterManifest: LoraManifest;
  schedule: WsaSchedule;
  stableSteps: number;
  annealSteps: number;
  skippedSamples: number;
  resumedFrom: { phase: string; dataPosition: number } | null;
}

export class RoundStoppedError extends Error {
  constructor(roundId: string) {
    super(`round ${roundId} was stopped`);
    this.name = 'RoundStoppedError';
  }
}

export const TRUNK_DIR = 'trunk';
export const PROGRESS_DIR = 'progress';
export const ADAPTER_DIR = 'adapter';

function poolSource(pool: DataPool, domain: SampleSource, mixed: SampleSource): SampleSource {
  if (pool === 'domain') return domain;
  if (pool === 'mixed') return mixed.size > 0 ? mixed : domain;
  return new InterleavedSampleSource(domain, mixed);
}

/**
 * One continual pre-training round (docs/training.md):
 * 1. resume the stable trunk of the previous round (LoRA + AdamW moments + step + watermark), or
 *    attach fresh adapters and warm up on the first round;
 * 2. stable phase at η_h over the domain-specific samples that arrived since the trunk's
 *    watermark; save the new trunk;
 * 3. anneal a branch of the trunk from η_h to η_l (cosine) on mixed samples → this round's CPT
 *    adapter. The next round resumes the trunk, never the annealed branch.
 * Progress checkpoints (every N steps and at phase boundaries) hold the data position, so a
 * crashed round continues where its last checkpoint was without training a sample twice.
 */
export async function runCptRound(input: CptRoundInput): Promise<CptRoundResult> {
  const { config, model, roundId } = input;
  // A batch is trained as micro-batches whose gradients are accumulated before one update: a real
  // LLM's activations for 8 × 500 tokens (logits alone are [8, 500, 49152]) do not fit in memory.
  const micro = Math.max(1, Math.min(config.batchSize, config.microBatchSize ?? config.batchSize));
  const microSteps = Math.ceil(config.batchSize / micro);
  const trainer = new Trainer(model, {
    weightDecay: config.weightDecay,
    maxGradNorm: config.maxGradNorm,
    accumulationSteps: microSteps,
  });
  const progressDir = join(input.roundDir, PROGRESS_DIR);
  const trunkDir = join(input.roundDir, TRUNK_DIR);
  let skipped = 0;

  try {
    // ---- where do we start? ----
    let state: CheckpointState;
    let resumedFrom: CptRoundResult['resumedFrom'] = null;
    if (hasCheckpoint(progressDir)) {
      state = loadCheckpoint(progressDir, model, trainer);
      resumedFrom = { phase: state.phase, dataPosition: state.dataPosition };
    } else {
      let startStep = 0;
      let warmupSteps: number;
      let parentTrunk: string | null = null;
      const stableStepsPlanned = Math.min(
        config.maxStableSteps,
        Math.ceil(
          poolSource(dataPoolFor(config.variant, 'stable'), input.domainSamples, input.mixedSamples).size /
            config.batchSize,
        ),
      );
      const annealSteps =
        config.variant === 'ds-mix-s' && !input.annealSamples
          ? 0
          : Math.min(
              config.maxAnnealSteps,
              Math.max(config.minAnnealSteps, Math.round(config.annealFraction * stableStepsPlanned)),
            );
      if (input.previousTrunkDir) {
        const trunk = loadCheckpoint(input.previousTrunkDir, model, trainer);
        if (trunk.kind !== 'trunk')
          throw new Error(`${input.previousTrunkDir} is a ${trunk.kind} checkpoint, not a trunk`);
        startStep = trunk.globalStep;
        warmupSteps = trunk.warmupSteps;
        parentTrunk = input.previousTrunkDir;
      } else {
        attachLora(model, config.lora, config.seed);
        // W = 5% of all of the first round's steps, at least one (paper: W = 5% of the CPT steps).
        warmupSteps = warmupStepsFor(
          config.warmupFraction,
          stableStepsPlanned + annealSteps,
          stableStepsPlanned,
        );
      }
      const stableEnd = startStep + stableStepsPlanned;
      state = {
        format: 'cprec-training-checkpoint/1',
        kind: 'progress',
        roundId,
        phase: 'stable',
        globalStep: startStep,
        phaseStep: 0,
        dataPosition: 0,
        warmupSteps,
        stableEnd,
        annealEnd: stableEnd + annealSteps,
        watermark: input.watermark,
        variant: config.variant,
        lora: { ...model.lora!.config },
        baseModelId: input.baseModelId,
        baseChecksum: input.baseChecksum,
        createdAt: new Date().toISOString(),
        parentTrunk,
      };
    }

    const schedule: WsaSchedule = {
      kind: 'wsa',
      etaLow: config.etaLow,
      etaHigh: config.etaHigh,
      warmupSteps: state.warmupSteps,
      stableEnd: state.stableEnd,
      annealEnd: state.annealEnd,
    };
    // The ablation's plain cosine: same warm-up, then one cosine from η_h to η_l over every step
    // left (stable and annealing data alike), instead of WSA's plateau and short annealing.
    const lrAt = (t: number): number =>
      (config.scheduleKind ?? 'wsa') === 'cosine'
        ? learningRateAt(
            {
              kind: 'cosine',
              etaLow: schedule.etaLow,
              etaHigh: schedule.etaHigh,
              warmupSteps: schedule.warmupSteps,
              totalSteps: schedule.annealEnd,
            },
            t,
          )
        : learningRateAt(schedule, t);
    const stableStepsTotal =
      state.stableEnd - (state.phase === 'stable' ? state.globalStep - state.phaseStep : state.stableEnd);
    const annealStepsTotal = state.annealEnd - state.stableEnd;
    const roundSteps = stableStepsTotal + annealStepsTotal;
    const checkpoint = (kind: 'trunk' | 'progress', dir: string) =>
      saveCheckpoint(dir, model, trainer, { ...state, kind, createdAt: new Date().toISOString() });

    const encode = (items: SampleItems): EncodedSample | null => {
      try {
        const sample = cptSample(items, 'all');
        return encodeSample(
          config.phrasing ? { ...sample, phrasing: config.phrasing } : sample,
          input.tokenizer,
          config.budget,
        );
      } catch (err) {
        if (err instanceof TokenBudgetError) {
          skipped++;
          return null;
        }
        throw err;
      }
    };

    /** Trains `steps` optimizer steps from `iterator`, checkpointing as it goes. */
    const trainPhase = async (
      phase: 'stable' | 'annealing',
      source: AsyncIterable<SampleItems>,
      lastStep: number,
    ): Promise<void> => {
      const it = source[Symbol.asyncIterator]();
      let exhausted = false;
      while (state.globalStep < lastStep && !exhausted) {
        // One macrotask turn per step: a step is synchronous tensor work and in-memory sources
        // resolve as microtasks, so without it a signal handler (Ctrl-C → stop flag) or a timer
        // would never run until the round ended and `shouldStop` would never turn true.
        await new Promise((resolve) => setImmediate(resolve));
        if (input.shouldStop?.()) {
          // Keep the steps since the last periodic checkpoint: on a real LLM they are minutes.
          if (state.phaseStep > 0 && state.phaseStep % config.checkpointEvery !== 0)
            checkpoint('progress', progressDir);
          throw new RoundStoppedError(roundId);
        }
        const batch: EncodedSample[] = [];
        let consumed = 0;
        while (batch.length < config.batchSize) {
          const next = await it.next();
          if (next.done) {
            exhausted = true;
            break;
          }
          consumed++;
          const encoded = encode(next.value);
          if (encoded) batch.push(encoded);
        }
        if (batch.length === 0) break;
        const t = state.globalStep;
        const lr = lrAt(t);
        let loss = 0;
        let tokens = 0;
        const chunks = Math.ceil(batch.length / micro);
        for (let k = 0; k < chunks; k++) {
          const padded = padBatch(batch.slice(k * micro, (k + 1) * micro));
          loss += trainer.trainStep(padded, lr) / chunks;
          tokens += padded.tokens;
        }
        // A short last batch has fewer micro-batches than an update waits for.
        if (chunks < microSteps) trainer.flush(lr);
        state.globalStep++;
        state.phaseStep++;
        state.dataPosition += consumed;
        const reportedPhase = phase === 'stable' && t < schedule.warmupSteps ? 'warmup' : phase;
        await input.onStep?.({
          roundId,
          phase: reportedPhase,
          step: t,
          roundStep: phase === 'stable' ? state.phaseStep : stableStepsTotal + state.phaseStep,
          roundSteps,
          loss,
          lr,
          tokens,
        });
        if (state.phaseStep % config.checkpointEvery === 0) checkpoint('progress', progressDir);
      }
      // A short source ends the phase early; the schedule's boundaries move with it.
      if (phase === 'stable' && state.globalStep < schedule.stableEnd) {
        const shortBy = schedule.stableEnd - state.globalStep;
        schedule.stableEnd -= shortBy;
        schedule.annealEnd -= shortBy;
        state.stableEnd = schedule.stableEnd;
        state.annealEnd = schedule.annealEnd;
      }
    };

    // ---- stable phase (with warm-up on the first round) ----
    if (state.phase === 'stable') {
      const stablePool = poolSource(
        dataPoolFor(config.variant, 'stable'),
        input.domainSamples,
        input.mixedSamples,
      );
      await input.onPhase?.(state.globalStep < state.warmupSteps ? 'warmup' : 'stable', {
        steps: stableStepsTotal,
      });
      await trainPhase('stable', stablePool.samples(state.dataPosition), state.stableEnd);
      checkpoint('trunk', trunkDir);
      state = { ...state, phase: 'annealing', phaseStep: 0, dataPosition: 0 };
      checkpoint('progress', progressDir);
    }

    // ---- annealing a branch of the trunk ----
    if (state.annealEnd > state.stableEnd) {
      const annealPool =
        input.annealSamples ??
        poolSource(dataPoolFor(config.variant, 'annealing'), input.domainSamples, input.mixedSamples);
      await input.onPhase?.('annealing', { steps: state.annealEnd - state.stableEnd });
      await trainPhase('annealing', cycleSamples(annealPool, state.dataPosition), state.annealEnd);
    }

    const adapterDir = join(input.roundDir, ADAPTER_DIR);
    const trunkState = readCheckpointState(trunkDir);
    const adapterManifest = saveLoraAdapter(model, adapterDir, {
      baseModelId: input.baseModelId,
      baseChecksum: input.baseChecksum,
      lineage: {
        round_id: roundId,
        kind: 'cpt',
        variant: config.variant,
        trunk: trunkDir,
        parent_trunk: trunkState.parentTrunk,
        watermark: input.watermark,
        global_step: state.globalStep,
      },
    });
    return {
      trunkDir,
      adapterDir,
      adapterManifest,
      schedule,
      stableSteps: stableStepsTotal,
      annealSteps: annealStepsTotal,
      skippedSamples: skipped,
      resumedFrom,
    };
  } finally {
    trainer.dispose();
  }
}
