import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { looSplitId } from '@cprec/contracts';
import { ItemIndex, SasRec, type FitReport } from '@cprec/sasrec';
import {
  DEFAULT_SFT_CONFIG,
  fineTune,
  ItemEmbeddingTable,
  RoundStoppedError,
  type SftConfig,
} from '@cprec/training';
import {
  noFineTuning,
  type FineTuningInput,
  type FineTuningOutput,
  type FineTuningPort,
} from './fine-tuning';
import type { RoundJob, SftJobSpec } from './protocol';
import { buildSftData } from './sft-data';
import { openClickHouseTargetDomains, type TargetDomainSource } from './target-domains';

/** SFT bundles are written to `<roundDir>/sft/<domain>/`. */
export const SFT_DIR = 'sft';
/** Inside a bundle: SASRec's weights (the item table beside the projector comes from them). */
export const SASREC_DIR = 'sasrec';
/** Inside a bundle: what it was trained from and how (read by people and tests, not by loaders). */
export const BUNDLE_FILE = 'bundle.json';

export interface SftBundleInfo {
  format: 'cprec-sft-bundle/1';
  round_id: string;
  domain: string;
  /** The CPT adapter LoRA started from (CPRec), by its published id. */
  cpt_adapter_id: string;
  /** The frozen leave-one-out split whose validation side trained and validated this bundle. */
  split_id: string;
  train_users: number;
  train_samples: number;
  validation_cases: number;
  learning_rate: number;
  validation_hr1: Record<string, number>;
  sasrec: { items: number; hidden_dim: number; epochs: number; sequences: number; elapsed_ms: number };
}

/**
 * LLaRA-style fine-tuning of each target domain after the round's CPT, in the runner process:
 * 1. the evaluator's frozen leave-one-out split of the domain (`looSplitId`, same epoch and seed)
 *    is ensured — requested from the sequencer, its one writer, and polled for;
 * 2. training data is the *validation* side only (sft-data.ts): each user's sequence minus its
 *    last two items gives the SFT samples and SASRec's training sequences, the split's
 *    validation examples choose the learning rate — no test target is ever trained on;
 * 3. SASRec is fitted on those sequences within a time budget and its item table frozen;
 * 4. libs/training `fineTune` trains LoRA from the round's CPT adapter (CPRec) with a projector
 *    and the text → hybrid curriculum over a small learning-rate grid, and writes the bundle
 *    (`adapter/`, projector, item table) which gets SASRec's weights and `bundle.json` beside it.
 * A domain with too little data (or whose split is unavailable) is skipped with a note; the
 * round still publishes its CPT adapter and the other domains' bundles.
 */
export class LlaraFineTuning implements FineTuningPort {
  constructor(
    private readonly spec: SftJobSpec,
    private readonly openSource: () => TargetDomainSource,
    private readonly log: (line: string) => void = (line) => void process.stderr.write(`${line}\n`),
  ) {}

  async fineTune(input: FineTuningInput): Promise<FineTuningOutput> {
    const { job } = input;
    const source = this.openSource();
    const adapters: FineTuningOutput['adapters'] = [];
    const notes: string[] = [];
    let nextStep = input.firstStep;
    try {
      for (const domain of job.targetDomains) {
        if (input.shouldStop?.()) throw new RoundStoppedError(job.roundId);
        const outcome = await this.fineTuneDomain(input, source, domain, nextStep);
        nextStep += outcome.steps;
        if (outcome.kind === 'skipped') {
          notes.push(`${domain}: no SFT adapter (${outcome.reason})`);
          this.log(`fine-tuning ${domain} skipped: ${outcome.reason}`);
        } else {
          adapters.push({ domain, dir: outcome.dir });
        }
      }
    } finally {
      await source.close();
    }
    return { adapters, note: notes.length > 0 ? notes.join('; ') : null };
  }

  private async fineTuneDomain(
    input: FineTuningInput,
    source: TargetDomainSource,
    domain: string,
    firstStep: number,
  ): Promise<
    { kind: 'skipped'; reason: string; steps: number } | { kind: 'done'; dir: string; steps: number }
  > {
    const { job, model, tokenizer } = input;
    const s = this.spec;
    const splitId = looSplitId(domain, s.split.epoch, s.split.seed);
    // Checked before asking for a split: prompts need titles, and a domain unknown here should
    // not wait for a split that may never come.
    const catalogue = await source.catalogue(domain);
    if (catalogue.length === 0)
      return { kind: 'skipped', reason: 'the catalogue has no titled item', steps: 0 };
    try {
      await source.ensureLooSplit(splitId, domain, s.split.seed);
    } catch (err) {
      return {
        kind: 'skipped',
        reason: `frozen split ${splitId} unavailable: ${(err as Error).message}`,
        steps: 0,
      };
    }
    const examples = await source.validationExamples(splitId, domain);
    const data = buildSftData(examples, {
      domain,
      catalogue,
      historyCap: s.historyCap,
      negatives: s.negatives,
      maxSamples: s.maxSamples,
      maxValidationExamples: s.maxValidationExamples,
      seed: s.seed,
    });
    if (data.train.length < s.minSamples || data.validation.length === 0)
      return {
        kind: 'skipped',
        reason: `too little data in ${splitId}: ${data.train.length} training samples from ${data.trainSequences.length} users (minimum ${s.minSamples}), ${data.validation.length} validation cases`,
        steps: 0,
      };

    const outDir = join(job.roundDir, SFT_DIR, domain);
    // A re-run (crash after this point) rewrites the bundle from scratch: no stale files in it.
    rmSync(outDir, { recursive: true, force: true });
    mkdirSync(outDir, { recursive: true });

    // SASRec on exactly the train sequences (item ids absent from them get a zero row: cold).
    const index = ItemIndex.fromSequences(data.trainSequences);
    const sasrec = new SasRec({
      numItems: index.size,
      maxLen: s.sasrec.maxLen,
      hiddenDim: s.sasrec.hiddenDim,
      numBlocks: 1,
      numHeads: 1,
      epochs: s.sasrec.epochs,
      batchSize: 128,
      seed: s.seed,
    });
    let fit: FitReport;
    let embeddings: ItemEmbeddingTable;
    try {
      fit = await sasrec.fit(
        data.trainSequences.map((seq) => index.encode(seq)),
        { timeBudgetMs: s.sasrec.timeBudgetMs },
      );
      const table = sasrec.itemEmbeddings();
      embeddings = ItemEmbeddingTable.fromDenseTable(table, index.toJSON());
      table.dispose();
      await sasrec.save(join(outDir, SASREC_DIR));
    } finally {
      sasrec.dispose();
    }
    this.log(
      `fine-tuning ${domain}: ${data.train.length} samples from ${data.trainSequences.length} users, ${data.validation.length} validation cases; SASRec ${fit.epochs.length} epochs in ${fit.elapsedMs} ms`,
    );

    const config: SftConfig = {
      ...DEFAULT_SFT_CONFIG,
      batchSize: s.batchSize,
      epochs: s.epochs,
      learningRates: s.learningRates,
      budget: job.cpt.budget,
      maxValidationExamples: s.maxValidationExamples,
      seed: s.seed,
    };
    const stepsPerRun = Math.ceil(data.train.length / config.batchSize) * config.epochs;
    const totalSteps = stepsPerRun * config.learningRates.length;
    const own = (tokenizer as Partial<{ placeholderId: number }>).placeholderId;
    const result = await fineTune({
      model,
      tokenizer,
      // The tokenizer's reserved placeholder when it has one, else 0 (as the serving runtime).
      placeholderId: typeof own === 'number' ? own : 0,
      train: data.train,
      validation: data.validation,
      embeddings,
      initAdapterDir: input.cptAdapterDir,
      baseModelId: job.model.baseModelId,
      baseChecksum: job.model.sha256,
      outDir,
      sasrecRef: `${SASREC_DIR}/ (fitted on the train sequences of ${splitId})`,
      config,
      onStep: (r) => {
        // Checked between optimizer steps, as CPT does: the runner then exits as "stopped".
        if (input.shouldStop?.()) throw new RoundStoppedError(job.roundId);
        const roundStep =
          Math.max(0, config.learningRates.indexOf(r.learningRateCandidate)) * stepsPerRun + r.step;
        void input.onStep?.({
          phase: 'fine_tuning',
          step: firstStep + roundStep,
          roundStep,
          roundSteps: totalSteps,
          loss: r.loss,
          lr: r.lr,
          // fineTune does not report token counts per step.
          tokens: 0,
        });
      },
    });
    result.projector?.dispose();
    const info: SftBundleInfo = {
      format: 'cprec-sft-bundle/1',
      round_id: job.roundId,
      domain,
      cpt_adapter_id: s.cptAdapterId,
      split_id: splitId,
      train_users: data.trainSequences.length,
      train_samples: data.train.length,
      validation_cases: data.validation.length,
      learning_rate: result.learningRate,
      validation_hr1: result.validationHr1,
      sasrec: {
        items: index.size,
        hidden_dim: s.sasrec.hiddenDim,
        epochs: fit.epochs.length,
        sequences: fit.sequences,
        elapsed_ms: fit.elapsedMs,
      },
    };
    writeFileSync(join(outDir, BUNDLE_FILE), JSON.stringify(info, null, 2) + '\n');
    this.log(
      `fine-tuned ${domain}: lr ${result.learningRate}, validation HR@1 ${JSON.stringify(result.validationHr1)}`,
    );
    return { kind: 'done', dir: outDir, steps: totalSteps };
  }
}

/** The fine-tuning a runner uses for a job: LLaRA-style on ClickHouse data when the job asks for it. */
export function fineTuningFor(job: RoundJob): FineTuningPort {
  const spec = job.sft;
  if (!spec) return noFineTuning;
  const data = job.data;
  if (data.kind !== 'clickhouse')
    return {
      fineTune: async () => ({
        adapters: [],
        note: 'fine-tuning needs the ClickHouse corpus (frozen splits); synthetic jobs publish only the CPT adapter',
      }),
    };
  return new LlaraFineTuning(spec, () =>
    openClickHouseTargetDomains(data.settings, spec.kafkaBrokers, {
      timeoutMs: spec.split.timeoutMs,
      pollMs: spec.split.pollMs,
    }),
  );
}
