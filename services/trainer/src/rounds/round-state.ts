import { ROUND_STATES, type RoundState } from '@cprec/contracts';

export const TERMINAL_STATES: readonly RoundState[] = ['published', 'failed', 'cancelled'];
export const TRAINING_STATES: readonly RoundState[] = ['warmup', 'stable', 'annealing', 'fine_tuning'];

/**
 * Allowed transitions of a round:
 *   queued → warmup | stable        (first round warms up, later ones resume the trunk at η_h)
 *   warmup → stable → annealing → fine_tuning → published
 *   annealing → published           (no target domain to fine-tune)
 *   any non-terminal → failed | cancelled
 * A state may be re-entered (a re-spawned runner reports its phase again).
 */
const NEXT: Record<RoundState, readonly RoundState[]> = {
  queued: ['warmup', 'stable', 'annealing'],
  warmup: ['stable'],
  stable: ['annealing', 'published'],
  annealing: ['fine_tuning', 'published'],
  fine_tuning: ['published'],
  published: [],
  failed: [],
  cancelled: [],
};

export function isTerminal(state: RoundState): boolean {
  return TERMINAL_STATES.includes(state);
}

export function canTransition(from: RoundState, to: RoundState): boolean {
  if (isTerminal(from)) return false;
  if (from === to) return true;
  if (to === 'failed' || to === 'cancelled') return true;
  return NEXT[from].includes(to);
}

export class IllegalTransitionError extends Error {
  constructor(roundId: string, from: RoundState, to: RoundState) {
    super(`round ${roundId}: ${from} → ${to} is not a valid transition`);
    this.name = 'IllegalTransitionError';
  }
}

export function isRoundState(value: string): value is RoundState {
  return (ROUND_STATES as readonly string[]).includes(value);
}
