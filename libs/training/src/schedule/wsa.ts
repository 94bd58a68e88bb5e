/**
 * Learning-rate schedules for continual pre-training.
 *
 * WSA (Warmup-Stable-Annealing), paper Eq. 2–3, for the optimizer step t counted from 0:
 *   t < W        : η(t) = η_l + (η_h − η_l) · t / W                              (linear warm-up)
 *   W ≤ t < S    : η(t) = η_h                                                    (stable)
 *   S ≤ t < A    : η(t) = η_l + ½ (η_h − η_l) (1 + cos(π (t − S + 1) / (A − S)))  (cosine annealing)
 * and η(t) = η_l from A on. Steps S … A−1 are the A − S annealing steps; the last of them, A − 1,
 * runs at exactly η_l (with `(t − S) / (A − S)` the cosine would reach η_l one step after the last
 * step, which then ran at ≈ η_l + (η_h − η_l)·π²/(4(A−S)²), e.g. 2.5e-4 with one annealing step).
 * `cosine` (warm-up then the same cosine over the rest, last step at η_l) and `constant` are the
 * comparison schedules of the ablation.
 */
export type SchedulePhase = 'warmup' | 'stable' | 'annealing' | 'done';

export interface WsaSchedule {
  kind: 'wsa';
  /** Floor learning rate η_l (start of warm-up, end of annealing). */
  etaLow: number;
  /** Peak learning rate η_h (stable phase). */
  etaHigh: number;
  /** W: the step where warm-up ends and the stable phase starts. */
  warmupSteps: number;
  /** S: the step where the stable phase ends and annealing starts (S ≥ W). */
  stableEnd: number;
  /** A: the step where annealing reaches η_l (A ≥ S). */
  annealEnd: number;
}

export interface CosineSchedule {
  kind: 'cosine';
  etaLow: number;
  etaHigh: number;
  warmupSteps: number;
  /** Last step; cosine decay runs from `warmupSteps` to here. */
  totalSteps: number;
}

export interface ConstantSchedule {
  kind: 'constant';
  eta: number;
  totalSteps: number;
}

export type LrSchedule = WsaSchedule | CosineSchedule | ConstantSchedule;

/** Paper defaults: η_l = 5e-6, η_h = 5e-4. */
export const PAPER_ETA_LOW = 5e-6;
export const PAPER_ETA_HIGH = 5e-4;

/**
 * Cosine from `high` to `low` over the steps start … end−1: step start has already decayed by one
 * step, step end−1 is exactly `low` (cos π = −1 exactly in IEEE doubles).
 */
function cosineBetween(low: number, high: number, t: number, start: number, end: number): number {
  if (end <= start) return low;
  const progress = Math.min(1, Math.max(0, (t - start + 1) / (end - start)));
  return low + 0.5 * (high - low) * (1 + Math.cos(Math.PI * progress));
}

function linearWarmup(low: number, high: number, t: number, warmup: number): number {
  return low + ((high - low) * t) / warmup;
}

export function validateSchedule(s: LrSchedule): void {
  const bad = (msg: string): never => {
    throw new Error(`invalid ${s.kind} schedule: ${msg}`);
  };
  if (s.kind === 'constant') {
    if (!(s.eta > 0)) bad('eta must be positive');
    return;
  }
  if (!(s.etaLow >= 0) || !(s.etaHigh > 0) || s.etaLow > s.etaHigh)
    bad('need 0 ≤ etaLow ≤ etaHigh, etaHigh > 0');
  if (!Number.isInteger(s.warmupSteps) || s.warmupSteps < 0)
    bad('warmupSteps must be a non-negative integer');
  if (s.kind === 'wsa') {
    if (s.stableEnd < s.warmupSteps) bad('stableEnd (S) must be ≥ warmupSteps (W)');
    if (s.annealEnd < s.stableEnd) bad('annealEnd (A) must be ≥ stableEnd (S)');
  } else if (s.totalSteps < s.warmupSteps) {
    bad('totalSteps must be ≥ warmupSteps');
  }
}

/** η(t) for step t (0-based). */
export function learningRateAt(s: LrSchedule, t: number): number {
  switch (s.kind) {
    case 'constant':
      return s.eta;
    case 'cosine':
      if (t < s.warmupSteps) return linearWarmup(s.etaLow, s.etaHigh, t, s.warmupSteps);
      return cosineBetween(s.etaLow, s.etaHigh, t, s.warmupSteps, s.totalSteps);
    case 'wsa':
      if (t < s.warmupSteps) return linearWarmup(s.etaLow, s.etaHigh, t, s.warmupSteps);
      if (t < s.stableEnd) return s.etaHigh;
      if (t < s.annealEnd) return cosineBetween(s.etaLow, s.etaHigh, t, s.stableEnd, s.annealEnd);
      return s.etaLow;
  }
}

/** Which WSA phase step t belongs to; for other schedules, warm-up then stable until the end. */
export function phaseAt(s: LrSchedule, t: number): SchedulePhase {
  if (s.kind === 'constant') return t < s.totalSteps ? 'stable' : 'done';
  if (t < s.warmupSteps) return 'warmup';
  if (s.kind === 'cosine') return t < s.totalSteps ? 'annealing' : 'done';
  if (t < s.stableEnd) return 'stable';
  if (t < s.annealEnd) return 'annealing';
  return 'done';
}

export interface WsaPlanInput {
  /** Number of domain-specific samples (one step per batch of them). */
  domainSpecificSteps: number;
  /** Number of annealing steps (mixed data). MiniCPM-style WSD finds ~10% of all steps enough. */
  annealSteps: number;
  /** Warm-up as a fraction of all steps, stable + annealing (paper: 5%). */
  warmupFraction?: number;
  etaLow?: number;
  etaHigh?: number;
}

/**
 * W for a run of `totalSteps` steps of which the first `stableSteps` are warm-up + stable: the
 * fraction of all steps, rounded, but at least one step whenever there is a stable phase (a small
 * run would otherwise round it to 0 and start at η_h), and never past the stable phase.
 */
export function warmupStepsFor(fraction: number, totalSteps: number, stableSteps: number): number {
  if (!(fraction >= 0 && fraction <= 1))
    throw new RangeError(`warm-up fraction must be in [0, 1], got ${fraction}`);
  if (stableSteps <= 0) return 0;
  return Math.min(stableSteps, Math.max(1, Math.round(fraction * totalSteps)));
}

/**
 * Lays out a WSA schedule over a corpus: warm-up and stable phases consume the domain-specific
 * steps, annealing consumes `annealSteps` of mixed data; W is a fraction of all steps.
 */
export function planWsa(input: WsaPlanInput): WsaSchedule {
  const stableEnd = input.domainSpecificSteps;
  const warmupSteps = warmupStepsFor(
    input.warmupFraction ?? 0.05,
    input.domainSpecificSteps + input.annealSteps,
    input.domainSpecificSteps,
  );
  const schedule: WsaSchedule = {
    kind: 'wsa',
    etaLow: input.etaLow ?? PAPER_ETA_LOW,
    etaHigh: input.etaHigh ?? PAPER_ETA_HIGH,
    warmupSteps,
    stableEnd,
    annealEnd: stableEnd + input.annealSteps,
  };
  validateSchedule(schedule);
  return schedule;
}
