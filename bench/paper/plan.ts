import { ABLATION_VARIANTS, type CptVariant, type PaperConfig, type TargetKey } from './config';
import type { MeasuredCosts } from './costs';
import { RECOMMENDERS, type RecommenderMethod } from './recommenders';

/** LM rows: zero-shot, fine-tuned from fresh LoRA (LLaRA), from the CPT adapter (CPRec), from an ablation's. */
export type LmMethod =
  'base-zero-shot' | 'cprec-zero-shot' | 'llara' | 'cprec' | `cprec-${Exclude<CptVariant, 'cprec'>}`;

export type StageDesc =
  | { kind: 'data-cpt'; id: string }
  | { kind: 'data-target'; id: string; target: TargetKey }
  | { kind: 'recommender'; id: string; target: TargetKey; method: RecommenderMethod; seed: number }
  | { kind: 'cpt'; id: string; variant: CptVariant }
  | {
      kind: 'sft';
      id: string;
      target: TargetKey;
      method: LmMethod;
      /** CPT adapter to start from; null = fresh LoRA (LLaRA). */
      variant: CptVariant | null;
      samples: number;
      seed: number;
    }
  | {
      kind: 'eval';
      id: string;
      target: TargetKey;
      method: LmMethod;
      /** The SFT stage evaluated, or the CPT variant / base for zero-shot rows. */
      sft: string | null;
      variant: CptVariant | null;
      samples: number;
      seed: number;
    };

export const sftMethod = (variant: CptVariant | null): LmMethod =>
  variant === null ? 'llara' : variant === 'cprec' ? 'cprec' : (`cprec-${variant}` as LmMethod);

/**
 * The stages in the order they run — the order of what to keep when time is short (issue 14):
 * data and recommenders; the CPRec CPT run and the zero-shot rows; the main rows (LLaRA and CPRec,
 * every seed) on every target but Food.com; the ablations and few-shot points (their first seed);
 * the main rows on Food.com; the ablations' and few-shot points' further seeds. A run stopped
 * early has therefore always finished the most important results.
 */
export function planStages(config: PaperConfig): StageDesc[] {
  const out: StageDesc[] = [{ kind: 'data-cpt', id: 'data/cpt' }];
  for (const t of config.targets) out.push({ kind: 'data-target', id: `data/${t}`, target: t });
  for (const t of config.targets)
    for (const method of RECOMMENDERS)
      for (const seed of method === 'popularity'
        ? [config.recommenders.seeds[0]!]
        : config.recommenders.seeds)
        out.push({ kind: 'recommender', id: `rec/${t}/${method}/seed${seed}`, target: t, method, seed });
  out.push({ kind: 'cpt', id: 'cpt/cprec', variant: 'cprec' });
  for (const t of config.targets) {
    out.push(evalDesc(t, 'base-zero-shot', null, null, 0, 0));
    out.push(evalDesc(t, 'cprec-zero-shot', null, 'cprec', 0, 0));
  }
  const n = config.sft.samples;
  const sftAndEval = (t: TargetKey, variant: CptVariant | null, samples: number, seed: number): void => {
    const method = sftMethod(variant);
    const id = `sft/${t}/${method}/n${samples}/seed${seed}`;
    out.push({ kind: 'sft', id, target: t, method, variant, samples, seed });
    out.push(evalDesc(t, method, id, variant, samples, seed));
  };
  const main = (targets: TargetKey[]): void => {
    for (const t of targets)
      for (const seed of config.seeds) {
        sftAndEval(t, null, n, seed);
        sftAndEval(t, 'cprec', n, seed);
      }
  };
  const extras = (seeds: number[]): void => {
    for (const variant of ABLATION_VARIANTS) {
      if (config.ablationTargets.length === 0 || seeds.length === 0) continue;
      if (!out.some((s) => s.id === `cpt/${variant}`))
        out.push({ kind: 'cpt', id: `cpt/${variant}`, variant });
      for (const t of config.ablationTargets) for (const seed of seeds) sftAndEval(t, variant, n, seed);
    }
    for (const t of config.fewShotTargets)
      for (const seed of seeds)
        for (const k of config.sft.fewShot) {
          sftAndEval(t, null, k, seed);
          sftAndEval(t, 'cprec', k, seed);
        }
  };
  const [firstSeed, ...moreSeeds] = config.ablationSeeds;
  main(config.targets.filter((t) => t !== 'food'));
  extras(firstSeed === undefined ? [] : [firstSeed]);
  main(config.targets.filter((t) => t === 'food'));
  extras(moreSeeds);
  return out;
}

function evalDesc(
  target: TargetKey,
  method: LmMethod,
  sft: string | null,
  variant: CptVariant | null,
  samples: number,
  seed: number,
): StageDesc {
  const id = sft ? `eval/${sft.slice('sft/'.length)}` : `eval/${target}/${method}`;
  return { kind: 'eval', id, target, method, sft, variant, samples, seed };
}

/** Users per target (../shared/data/README.md): what a recommender epoch scales with. */
const TARGET_USERS: Record<TargetKey, number> = { game: 50_597, steam: 10_369, food: 17_813 };

/** Rough costs used when nothing was measured yet (stories260K-like speed): the ETA still calibrates. */
export const FALLBACK_COSTS: Pick<MeasuredCosts, 'cptStep' | 'sftStep' | 'evalCase' | 'recommenderEpoch'> = {
  cptStep: { batch: 8, seconds: 2, perSample: 0.25, tokensPerSecond: 1000, cpuPerSample: 0.4 },
  sftStep: { batch: 8, seconds: 2, perSample: 0.25, cpuPerSample: 0.4 },
  evalCase: { both: 0.5, likelihoodOnly: 0.2, generationOnly: 0.3, generatedTokens: 10, cpuBoth: 0.8 },
  recommenderEpoch: { sasrec: 60, gru4rec: 90, users: TARGET_USERS.game },
};

/** Expected epochs before early stopping (patience included), from runs on these data. */
const EXPECTED_EPOCHS = 30;

/**
 * Predicted seconds of a stage from measured per-unit costs. The CPT and SFT per-sample costs
 * were measured at the run's batch size and prompt lengths; a trained model's answers are about
 * as long as the base model's capped ones, so one evaluation case costs `evalCase.both`.
 */
export function estimateSeconds(
  desc: StageDesc,
  config: PaperConfig,
  costs: Pick<MeasuredCosts, 'cptStep' | 'sftStep' | 'evalCase' | 'recommenderEpoch'>,
): number {
  switch (desc.kind) {
    case 'data-cpt':
      return 180;
    case 'data-target':
      return 60;
    case 'recommender': {
      if (desc.method === 'popularity') return 5;
      const perEpoch =
        (desc.method === 'sasrec' ? costs.recommenderEpoch.sasrec : costs.recommenderEpoch.gru4rec) *
        (TARGET_USERS[desc.target] / costs.recommenderEpoch.users);
      return Math.min(
        config.recommenders.timeBudgetMinutes * 60,
        perEpoch * Math.min(EXPECTED_EPOCHS, config.recommenders.maxEpochs),
      );
    }
    case 'cpt':
      return (
        (config.cpt.stableSteps + config.cpt.annealSteps) * config.cpt.batchSize * costs.cptStep.perSample
      );
    case 'sft':
      return desc.samples * config.sft.epochs * costs.sftStep.perSample;
    case 'eval':
      return config.testUsers * (costs.evalCase.batched ?? costs.evalCase.both);
  }
}

export interface PlanLine {
  id: string;
  kind: string;
  seconds: number;
}

/** The plan with its arithmetic: per-kind totals and the cumulative time at which each group ends. */
export function planReport(
  config: PaperConfig,
  costs: Pick<MeasuredCosts, 'cptStep' | 'sftStep' | 'evalCase' | 'recommenderEpoch'>,
): { lines: PlanLine[]; byKind: Record<string, { stages: number; seconds: number }>; totalSeconds: number } {
  const lines = planStages(config).map((d) => ({
    id: d.id,
    kind: d.kind,
    seconds: estimateSeconds(d, config, costs),
  }));
  const byKind: Record<string, { stages: number; seconds: number }> = {};
  for (const l of lines) {
    const k = (byKind[l.kind] ??= { stages: 0, seconds: 0 });
    k.stages++;
    k.seconds += l.seconds;
  }
  return { lines, byKind, totalSeconds: lines.reduce((a, l) => a + l.seconds, 0) };
}
