import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import type { ArtefactStore } from '@cprec/artefacts';
import { ClickHouse, ClickHouseSettings, SequenceStore } from '@cprec/clickhouse';
import { baseModelChecksum, baseModelContextLength, baseModelFormat } from '@cprec/lm';
import { baseModelSource, promptTokensFor } from '@cprec/service-common';
import { DEFAULT_CPT_CONFIG } from '@cprec/training';
import type { TrainerConfig } from './config';
import type { PlannedRound, RoundPlannerPort } from './rounds/ports';
import { adapterIdOf } from './rounds/round-coordinator';
import type { ModelSpec, RoundJob, TinyModelSpec } from './runner/protocol';
import { TINY_MODEL_FILE } from './runner/round-job';
import { catalogue } from './runner/sample-sources';

const PLAN_FILE = 'plan.json';
const TINY_CONFIG: TinyModelSpec['config'] = {
  dim: 16,
  hiddenDim: 32,
  nLayers: 1,
  nHeads: 2,
  nKvHeads: 1,
  maxSeqLen: 192,
  normEps: 1e-5,
  ropeTheta: 10000,
  tiedClassifier: true,
};

/**
 * Plans rounds: the base model (hashed once; the tiny model stored as an artefact so its
 * vocabulary never changes), the newest trunk from the artefact store (verified) with its
 * watermark, the sequencer's current watermark, and the CPT settings. The plan is saved in the
 * round folder so a resumed round uses the same one.
 */
export class RoundPlanner implements RoundPlannerPort {
  private model: { spec: ModelSpec; name: string; contextLength: number } | null = null;

  constructor(
    private readonly config: TrainerConfig,
    private readonly ch: ClickHouse,
    private readonly chSettings: ClickHouseSettings,
    private readonly artefacts: ArtefactStore,
  ) {}

  roundDir(roundId: string): string {
    return resolve(this.config.CPREC_HOME, 'trainer', 'rounds', roundId);
  }

  async resume(roundId: string): Promise<PlannedRound | null> {
    const file = join(this.roundDir(roundId), PLAN_FILE);
    if (!existsSync(file)) return null;
    const plan = JSON.parse(readFileSync(file, 'utf8')) as PlannedRound;
    // The previous trunk is re-verified: a corrupted trunk must not seed a resumed round.
    if (plan.previousTrunkId)
      plan.job.previousTrunkDir = await this.artefacts.localPath(plan.previousTrunkId);
    return plan;
  }

  async plan(roundId: string, targetDomains: readonly string[]): Promise<PlannedRound> {
    const c = this.config;
    const model = await this.baseModel();
    const trunks = (await this.artefacts.list('trunks/')).sort(
      (a, b) => a.createdMs - b.createdMs || (a.key < b.key ? -1 : 1),
    );
    const trunk = trunks.at(-1) ?? null;
    const sinceWatermark = trunk ? Number(trunk.metadata.watermark ?? 0) : 0;
    const latest = await new SequenceStore(this.ch).latestWatermark();
    const watermark = Math.max(sinceWatermark, latest?.watermarkMs ?? 0);
    const job: RoundJob = {
      roundId,
      roundDir: this.roundDir(roundId),
      previousTrunkDir: trunk ? await this.artefacts.localPath(trunk.key) : null,
      sinceWatermark,
      watermark,
      model: model.spec,
      backend: c.TRAINER_BACKEND,
      cpt: {
        ...DEFAULT_CPT_CONFIG,
        batchSize: c.TRAINER_BATCH_SIZE,
        budget: {
          maxTokens: promptTokensFor(c.TRAINER_MAX_TOKENS, model.contextLength),
          maxTitleTokens: c.TRAINER_MAX_TITLE_TOKENS,
        },
        lora: { rank: c.TRAINER_LORA_RANK, alpha: c.TRAINER_LORA_ALPHA, dropout: 0 },
        etaLow: c.TRAINER_ETA_LOW,
        etaHigh: c.TRAINER_ETA_HIGH,
        warmupFraction: c.TRAINER_WARMUP_FRACTION,
        annealFraction: c.TRAINER_ANNEAL_FRACTION,
        maxStableSteps: c.TRAINER_MAX_STEPS_PER_ROUND > 0 ? c.TRAINER_MAX_STEPS_PER_ROUND : null,
        checkpointEvery: c.TRAINER_CHECKPOINT_EVERY,
        seed: c.TRAINER_SEED,
      },
      data: {
        kind: 'clickhouse',
        settings: this.chSettings,
        domains: [...c.TRAINER_CPT_DOMAINS],
        seed: c.TRAINER_SEED,
        replayFraction: c.TRAINER_REPLAY_FRACTION,
        negatives: c.TRAINER_NEGATIVES,
        historyCap: 10,
        mixedWindow: 20,
      },
      targetDomains: [...targetDomains],
      sft: {
        cptAdapterId: adapterIdOf(roundId, 'cpt'),
        split: {
          epoch: c.TRAINER_SPLIT_EPOCH,
          seed: c.TRAINER_SPLIT_SEED,
          timeoutMs: c.TRAINER_SPLIT_TIMEOUT_MS,
          pollMs: c.TRAINER_SPLIT_POLL_MS,
        },
        kafkaBrokers: c.CPREC_KAFKA_BROKERS,
        historyCap: c.TRAINER_SFT_HISTORY_CAP,
        negatives: c.TRAINER_SFT_NEGATIVES,
        maxSamples: c.TRAINER_SFT_MAX_SAMPLES,
        minSamples: c.TRAINER_SFT_MIN_SAMPLES,
        maxValidationExamples: c.TRAINER_SFT_MAX_VALIDATION,
        batchSize: c.TRAINER_SFT_BATCH_SIZE,
        epochs: c.TRAINER_SFT_EPOCHS,
        learningRates: [...c.TRAINER_SFT_LEARNING_RATES],
        sasrec: {
          hiddenDim: c.TRAINER_SASREC_DIM,
          maxLen: c.TRAINER_SASREC_MAX_LEN,
          epochs: c.TRAINER_SASREC_EPOCHS,
          timeBudgetMs: c.TRAINER_SASREC_TIME_BUDGET_MS,
        },
        seed: c.TRAINER_SEED,
      },
      stepDelayMs: c.TRAINER_STEP_DELAY_MS,
    };
    const plan: PlannedRound = { job, previousTrunkId: trunk?.key ?? null, baseModel: model.name };
    mkdirSync(job.roundDir, { recursive: true });
    writeFileSync(join(job.roundDir, PLAN_FILE), JSON.stringify(plan, null, 2) + '\n');
    return plan;
  }

  private async baseModel(): Promise<{ spec: ModelSpec; name: string; contextLength: number }> {
    if (this.model) {
      // The tiny model's folder is re-verified on every round (it is read by path).
      if (this.model.spec.kind === 'tiny-random') await this.artefacts.verify(TINY_MODEL_KEY);
      return this.model;
    }
    const c = this.config;
    if (c.TRAINER_MODEL !== 'tiny-random') {
      const source = baseModelSource(c, { model: c.TRAINER_BASE_MODEL, tokenizer: c.TRAINER_TOKENIZER });
      const which = c.TRAINER_BASE_MODEL ? 'TRAINER_BASE_MODEL' : 'CPREC_BASE_MODEL';
      if (!existsSync(source.model)) throw new Error(`base model ${source.model} does not exist (${which})`);
      if (source.tokenizer && !existsSync(source.tokenizer))
        throw new Error(
          `tokenizer ${source.tokenizer} does not exist (TRAINER_TOKENIZER / CPREC_BASE_TOKENIZER)`,
        );
      baseModelFormat(source.model);
      const name = basename(source.model.replace(/\/+$/, ''));
      this.model = {
        spec: {
          kind: 'checkpoint',
          path: resolve(source.model),
          ...(source.tokenizer ? { tokenizer: resolve(source.tokenizer) } : {}),
          baseModelId: name,
          sha256: await baseModelChecksum(source),
        },
        name,
        contextLength: baseModelContextLength(source),
      };
      return this.model;
    }
    let record = await this.artefacts.stat(TINY_MODEL_KEY);
    if (!record) {
      const { titles } = await catalogue(this.ch, []);
      const spec: TinyModelSpec = {
        format: 'cprec-tiny-random/1',
        config: TINY_CONFIG,
        seed: c.TRAINER_SEED,
        titles: [...new Set(titles.values())].sort(),
      };
      const tmp = mkdtempSync(join(tmpdir(), 'cprec-tiny-'));
      try {
        writeFileSync(join(tmp, TINY_MODEL_FILE), JSON.stringify(spec));
        record = await this.artefacts.put(TINY_MODEL_KEY, tmp, {
          metadata: { kind: 'tiny-random', titles: spec.titles.length },
        });
      } finally {
        rmSync(tmp, { recursive: true, force: true });
      }
    }
    const dir = await this.artefacts.localPath(TINY_MODEL_KEY);
    this.model = {
      spec: { kind: 'tiny-random', dir, baseModelId: 'tiny-random', sha256: record.sha256 },
      name: 'tiny-random',
      contextLength: TINY_CONFIG.maxSeqLen,
    };
    return this.model;
  }
}

export const TINY_MODEL_KEY = 'base-models/tiny-random';
