import { ABLATION_VARIANTS, type CptVariant, type PaperConfig, type TargetKey } from './config';
import type { MeasuredCosts } from './costs';
import { DETERMINISTIC_RECOMMENDERS, RECOMMENDERS, type RecommenderMethod } from './recommenders';

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
 * the headline comparison on the first target and seed (`headlineFirst`); then data and recommenders; the CPRec CPT run and the zero-shot rows; the main rows (LLaRA and CPRec,
 * every seed) on every target but Food.com; the ablations and few-shot points (their first seed);
 * the main rows on Food.com; the ablations' and few-shot points' further seeds. A run stopped
 * early has therefore always finished the most important results.
 */
export function planStages(config: PaperConfig): StageDesc[] {
  const out: StageDesc[] = [{ kind: 'data-cpt', id: 'data/cpt' }];
  for (const t of config.targets) out.push({ kind: 'data-target', id: `data/${t}`, target: t });
  for (const t of config.targets)
    for (const method of RECOMMENDERS)
      for (const seed of DETERMINISTIC_RECOMMENDERS.includes(method)
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
  return headlineFirst(out, config);
}

/**
 * Moves the stages of the headline comparison to the front, keeping every other stage's relative
 * order: the data, popularity on every target, then on the first target with the first seed
 * SASRec, LLaRA fine-tuned and evaluated, the CPRec CPT run, both zero-shot rows, CPRec fine-tuned
 * and evaluated. LLaRA comes before CPT because it needs no CPT and says soonest whether
 * fine-tuning alone lifts the LM above chance at this scale (the pilot's 256-sample LLaRA did
 * not: it picked candidates by list position). Why the headline first:
 * the whole plan is ~46 CPU-hours and a session can stop at any time; the question the experiment
 * exists for (does CPT + SFT beat SFT alone and SASRec?) is answered for one seed after ~6 hours
 * instead of after the other recommenders' seeds. Dependencies stay satisfied: every moved stage's
 * inputs (data, CPT, its SFT) are moved before it.
 */
function headlineFirst(stages: StageDesc[], config: PaperConfig): StageDesc[] {
  const target = config.targets[0];
  const seed = config.seeds[0];
  const recSeed = config.recommenders.seeds[0];
  if (target === undefined || seed === undefined) return stages;
  const n = config.sft.samples;
  const headline = [
    'data/cpt',
    ...config.targets.map((t) => `data/${t}`),
    ...config.targets.map((t) => `rec/${t}/popularity/seed${recSeed}`),
    ...config.targets.map((t) => `rec/${t}/title-similarity/seed${recSeed}`),
    `rec/${target}/sasrec/seed${recSeed}`,
    `sft/${target}/llara/n${n}/seed${seed}`,
    `eval/${target}/llara/n${n}/seed${seed}`,
    'cpt/cprec',
    `eval/${target}/base-zero-shot`,
    `eval/${target}/cprec-zero-shot`,
    `sft/${target}/cprec/n${n}/seed${seed}`,
    `eval/${target}/cprec/n${n}/seed${seed}`,
  ];
  const byId = new Map(stages.map((s) => [s.id, s]));
  const first = headline.flatMap((id) => byId.get(id) ?? []);
  const moved = new Set(first.map((s) => s.id));
  return [...first, ...stages.filter((s) => !moved.has(s.id))];
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
 * Cores the run effectively gets on an otherwise idle 2-core machine: the BLAS-heavy steps use both
 * threads, with some serial work between them. An assumption (CPREC_PAPER_CORES overrides); the
 * progress line's ETA replaces it by the measured speed as soon as a stage has finished.
 */
export const IDLE_EFFECTIVE_CORES = Number(process.env.CPREC_PAPER_CORES ?? 1.6);

type Costs = Pick<MeasuredCosts, 'cptStep' | 'sftStep' | 'evalCase' | 'recommenderEpoch'>;

/** What a stage consists of: how many units of which measured cost. */
export function stageUnits(
  desc: StageDesc,
  config: PaperConfig,
  costs: Costs,
): { units: number; unit: string; cpuPerUnit: number | null; wallPerUnit: number } {
  switch (desc.kind) {
    case 'data-cpt':
      return { units: 1, unit: 'stage', cpuPerUnit: null, wallPerUnit: 180 };
    case 'data-target':
      return { units: 1, unit: 'stage', cpuPerUnit: null, wallPerUnit: 60 };
    case 'recommender': {
      if (DETERMINISTIC_RECOMMENDERS.includes(desc.method))
        return { units: 1, unit: 'stage', cpuPerUnit: null, wallPerUnit: 5 };
      const scale = TARGET_USERS[desc.target] / costs.recommenderEpoch.users;
      const r = costs.recommenderEpoch;
      const perEpoch = (desc.method === 'sasrec' ? r.sasrec : r.gru4rec) * scale;
      const cpuPerEpoch = desc.method === 'sasrec' ? r.cpuSasrec : r.cpuGru4rec;
      const epochs = Math.min(
        Math.min(EXPECTED_EPOCHS, config.recommenders.maxEpochs),
        (config.recommenders.timeBudgetMinutes * 60) / Math.max(1e-9, perEpoch),
      );
      return {
        units: epochs,
        unit: 'epochs',
        cpuPerUnit: cpuPerEpoch !== undefined ? cpuPerEpoch * scale : null,
        wallPerUnit: perEpoch,
      };
    }
    case 'cpt':
      return {
        units: (config.cpt.stableSteps + config.cpt.annealSteps) * config.cpt.batchSize,
        unit: 'CPT samples',
        cpuPerUnit: costs.cptStep.cpuPerSample ?? null,
        wallPerUnit: costs.cptStep.perSample,
      };
    case 'sft':
      return {
        units: desc.samples * config.sft.epochs,
        unit: 'SFT samples',
        cpuPerUnit: costs.sftStep.cpuPerSample ?? null,
        wallPerUnit: costs.sftStep.perSample,
      };
    case 'eval':
      return {
        units: config.testUsers,
        unit: 'test cases',
        cpuPerUnit: costs.evalCase.cpuBatched ?? costs.evalCase.cpuBoth ?? null,
        wallPerUnit: costs.evalCase.batched ?? costs.evalCase.both,
      };
  }
}

/**
 * Predicted seconds of a stage: its units × the measured CPU seconds per unit / the cores an idle
 * machine gives (wall seconds measured under the load of the day would mostly measure the load);
 * stages measured in wall time only (data, recommenders) use that.
 */
export function estimateSeconds(desc: StageDesc, config: PaperConfig, costs: Costs): number {
  const u = stageUnits(desc, config, costs);
  return u.units * (u.cpuPerUnit !== null ? u.cpuPerUnit / IDLE_EFFECTIVE_CORES : u.wallPerUnit);
}

export interface PlanLine {
  id: string;
  kind: string;
  seconds: number;
}

/** The plan with its arithmetic: per-kind totals and the cumulative time at which each group ends. */
export function planReport(
  config: PaperConfig,
  costs: Costs,
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

/**
 * The plan's arithmetic as markdown: per group of stages (the order of the cuts), units × CPU
 * seconds per unit / effective cores, and the running total — what docs/results.md shows.
 */
export function planMarkdown(config: PaperConfig, costs: Costs): string[] {
  const stages = planStages(config);
  const groupOf = (d: StageDesc): string => {
    if (d.kind === 'data-cpt' || d.kind === 'data-target') return '1. data';
    if (d.kind === 'recommender') return '2. recommenders (all seeds, all targets)';
    if (d.kind === 'cpt') return d.variant === 'cprec' ? '3. CPT (CPRec)' : '5. ablations: CPT variants';
    if (d.kind === 'eval' && d.samples === 0) return '4a. zero-shot rows';
    const isMain = (d.method === 'llara' || d.method === 'cprec') && d.samples === config.sft.samples;
    if (isMain)
      return d.target === 'food'
        ? `7. main rows, Food.com (${config.seeds.length} seeds)`
        : `4b. main rows, LLaRA and CPRec (${config.seeds.length} seeds)`;
    if (d.method === 'llara' || d.method === 'cprec') return '6. few-shot points';
    return '5. ablations: SFT + evaluation';
  };
  const groups = new Map<
    string,
    { units: Map<string, number>; cpu: number; seconds: number; stages: number }
  >();
  for (const d of stages) {
    const u = stageUnits(d, config, costs);
    const key = groupOf(d);
    const g = groups.get(key) ?? { units: new Map(), cpu: 0, seconds: 0, stages: 0 };
    g.units.set(u.unit, (g.units.get(u.unit) ?? 0) + u.units);
    g.cpu += u.cpuPerUnit !== null ? u.units * u.cpuPerUnit : 0;
    g.seconds += estimateSeconds(d, config, costs);
    g.stages++;
    groups.set(key, g);
  }
  const h = (s: number) => (s / 3600).toFixed(1);
  const lines = [
    `Unit costs (CPU seconds, all threads): CPT ${costs.cptStep.cpuPerSample?.toFixed(2) ?? '?'} per sample, ` +
      `SFT ${costs.sftStep.cpuPerSample?.toFixed(2) ?? '?'} per sample, evaluation ` +
      `${(costs.evalCase.cpuBatched ?? costs.evalCase.cpuBoth)?.toFixed(2) ?? '?'} per test case; ` +
      `wall = CPU / ${IDLE_EFFECTIVE_CORES} effective cores (idle 2-core machine, assumed).`,
    '',
    '| group (run order) | stages | work | CPU hours | wall hours | cumulative wall hours |',
    '| --- | ---: | --- | ---: | ---: | ---: |',
  ];
  let cumulative = 0;
  for (const [key, g] of [...groups].sort(([a], [b]) => a.localeCompare(b))) {
    cumulative += g.seconds;
    const work = [...g.units]
      .map(([unit, n]) => `${Math.round(n).toLocaleString('en-US')} ${unit}`)
      .join(', ');
    lines.push(`| ${key} | ${g.stages} | ${work} | ${h(g.cpu)} | ${h(g.seconds)} | ${h(cumulative)} |`);
  }
  const afterMain = [...groups].filter(([k]) => k < '5').reduce((a, [, g]) => a + g.seconds, 0);
  // The run starts with the headline comparison (headlineFirst): when is it answered for one seed?
  const [target, seed] = [config.targets[0], config.seeds[0]];
  const last = stages.findIndex((d) => d.id === `eval/${target}/cprec/n${config.sft.samples}/seed${seed}`);
  const headline = stages.slice(0, last + 1).reduce((a, d) => a + estimateSeconds(d, config, costs), 0);
  if (last >= 0)
    lines.push(
      '',
      `The groups are the order of the issue's cuts; the run itself starts with the headline comparison on ` +
        `${target} with seed ${seed} (data, popularity, SASRec, the CPRec CPT run, both zero-shot rows, LLaRA and ` +
        `CPRec fine-tuned and evaluated: ${last + 1} stages, ${h(headline)} h of wall time), then follows the groups.`,
    );
  lines.push(
    '',
    `Everything up to the main rows on ${config.targets.filter((t) => t !== 'food').join(' and ')} (groups 1–4) takes ` +
      `${h(afterMain)} h of wall time, the whole plan ${h(cumulative)} h: ` +
      (cumulative <= 12 * 3600
        ? 'within the ~12 hours the issue plans for.'
        : afterMain <= 12 * 3600
          ? 'the main rows fit in ~12 hours, the ablations, few-shot points and Food.com do not.'
          : 'more than the ~12 hours the issue plans for, even without ablations, few-shot points and Food.com (the cuts it allows).'),
  );
  return lines;
}
