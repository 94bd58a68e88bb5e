import { LrSchedule, phaseAt, SchedulePhase } from './wsa';

/**
 * Which data each phase trains on — the ablation variants of the paper:
 * - `ds-only`: domain-specific sequences in every phase, no mixed data;
 * - `ds-mix-n`: mixed sequences shuffled into every phase (no special treatment);
 * - `ds-mix-s`: mixed sequences in the stable phase, no annealing on them;
 * - `cprec` (DS+Mix(A)): warm-up and stable on domain-specific, annealing on mixed.
 */
export type DataVariant = 'ds-only' | 'ds-mix-n' | 'ds-mix-s' | 'cprec';
export const DATA_VARIANTS: readonly DataVariant[] = ['ds-only', 'ds-mix-n', 'ds-mix-s', 'cprec'];

/** The pool a step draws from: `both` means the two pools shuffled together. */
export type DataPool = 'domain' | 'mixed' | 'both';

export function dataPoolFor(variant: DataVariant, phase: SchedulePhase): DataPool {
  switch (variant) {
    case 'ds-only':
      return 'domain';
    case 'ds-mix-n':
      return 'both';
    case 'ds-mix-s':
      return phase === 'stable' ? 'both' : 'domain';
    case 'cprec':
      return phase === 'annealing' ? 'mixed' : 'domain';
  }
}

export function dataPoolAt(variant: DataVariant, schedule: LrSchedule, step: number): DataPool {
  return dataPoolFor(variant, phaseAt(schedule, step));
}
