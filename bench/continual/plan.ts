import type { MeasuredCosts } from '../paper/costs';
import type { ContinualConfig } from './config';

export type Arm = 'frozen' | 'continual' | 'retrain' | 'sasrec';
export const ARMS: readonly Arm[] = ['frozen', 'continual', 'retrain', 'sasrec'];

/**
 * The stages in order. Round b (b = 0..K−1) trains on windows ≤ b and is scored on window b+1
 * ("next") and, from b = 1 on, on window 1 ("first": forgetting). Round 0 is the first round —
 * warm-up from the base on the history — and it is what the frozen arm keeps and where continual
 * and retrain start, so those three share its stages and rows at b = 0.
 */
export type StageDesc =
  | { id: string; kind: 'data' }
  | { id: string; kind: 'sasrec'; b: number; domain: string }
  | { id: string; kind: 'cpt'; arm: 'continual' | 'retrain'; b: number }
  | { id: string; kind: 'sft'; arm: 'continual' | 'retrain'; b: number; domain: string }
  | {
      id: string;
      kind: 'eval';
      arm: 'frozen' | 'continual' | 'retrain';
      b: number;
      domain: string;
      set: 'next' | 'first';
    };

export function planStages(c: ContinualConfig): StageDesc[] {
  const out: StageDesc[] = [{ id: 'data', kind: 'data' }];
  for (let b = 0; b < c.windows; b++) {
    for (const domain of c.targets) out.push({ id: `sasrec/b${b}/${domain}`, kind: 'sasrec', b, domain });
    out.push({ id: `cpt/continual/b${b}`, kind: 'cpt', arm: 'continual', b });
    for (const domain of c.targets)
      out.push({ id: `sft/continual/b${b}/${domain}`, kind: 'sft', arm: 'continual', b, domain });
    for (const domain of c.targets)
      out.push({
        id: `eval/continual/b${b}/${domain}/next`,
        kind: 'eval',
        arm: 'continual',
        b,
        domain,
        set: 'next',
      });
    if (b === 0) continue;
    for (const domain of c.targets)
      out.push({
        id: `eval/frozen/b${b}/${domain}/next`,
        kind: 'eval',
        arm: 'frozen',
        b,
        domain,
        set: 'next',
      });
    out.push({ id: `cpt/retrain/b${b}`, kind: 'cpt', arm: 'retrain', b });
    for (const domain of c.targets)
      out.push({ id: `sft/retrain/b${b}/${domain}`, kind: 'sft', arm: 'retrain', b, domain });
    for (const domain of c.targets)
      out.push({
        id: `eval/retrain/b${b}/${domain}/next`,
        kind: 'eval',
        arm: 'retrain',
        b,
        domain,
        set: 'next',
      });
    for (const arm of ['continual', 'retrain'] as const)
      for (const domain of c.targets)
        out.push({ id: `eval/${arm}/b${b}/${domain}/first`, kind: 'eval', arm, b, domain, set: 'first' });
  }
  return out;
}

/** Samples a CPT stage trains on (stable + annealing). */
export function cptSamples(c: ContinualConfig, arm: 'continual' | 'retrain', b: number): number {
  const window = (w: number) => (w === 0 ? c.cpt.initialSamples : c.cpt.samplesPerWindow);
  const anneal = c.cpt.annealSteps * c.cpt.batchSize;
  if (arm === 'continual')
    return window(b) + (b === 0 ? 0 : Math.round(c.cpt.replayFraction * window(b))) + anneal;
  let stable = 0;
  for (let w = 0; w <= b; w++) stable += window(w);
  return stable + anneal;
}

/** Fallback per-unit costs (seconds) when no measured costs file exists: SmolLM2-135M on 2 loaded cores. */
export const FALLBACK_COSTS = {
  cptStep: { perSample: 16, cpuPerSample: 6 },
  sftStep: { perSample: 14, cpuPerSample: 4.5 },
  evalCase: { likelihoodOnly: 5, both: 11 },
  sasrecFit: 120,
  data: 120,
};

type Costs = Pick<MeasuredCosts, 'cptStep' | 'sftStep' | 'evalCase'>;

/** Predicted wall seconds of a stage from per-sample costs. */
export function estimateSeconds(d: StageDesc, c: ContinualConfig, costs?: Costs): number {
  const cpt = costs?.cptStep.perSample ?? FALLBACK_COSTS.cptStep.perSample;
  const sft = costs?.sftStep.perSample ?? FALLBACK_COSTS.sftStep.perSample;
  const evalCase = c.eval.generation
    ? (costs?.evalCase.both ?? FALLBACK_COSTS.evalCase.both)
    : (costs?.evalCase.likelihoodOnly ?? FALLBACK_COSTS.evalCase.likelihoodOnly);
  switch (d.kind) {
    case 'data':
      return FALLBACK_COSTS.data;
    case 'sasrec':
      return Math.min(c.sasrec.timeBudgetMinutes * 60, FALLBACK_COSTS.sasrecFit);
    case 'cpt':
      return cptSamples(c, d.arm, d.b) * cpt;
    case 'sft':
      return c.sft.samples * c.sft.epochs * sft;
    case 'eval':
      return c.casesPerDomain * evalCase;
  }
}
