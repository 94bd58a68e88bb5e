import { ROUND_STATES } from '@cprec/contracts';
import { canTransition, isTerminal } from './round-state';

describe('round state machine', () => {
  it('allows the training path and ending from any non-terminal state', () => {
    const path = ['queued', 'warmup', 'stable', 'annealing', 'fine_tuning', 'published'] as const;
    for (let i = 1; i < path.length; i++) expect(canTransition(path[i - 1], path[i])).toBe(true);
    expect(canTransition('queued', 'stable')).toBe(true); // later rounds skip warm-up
    expect(canTransition('annealing', 'published')).toBe(true); // no SFT
    for (const s of ROUND_STATES.filter((x) => !isTerminal(x))) {
      expect(canTransition(s, 'failed')).toBe(true);
      expect(canTransition(s, 'cancelled')).toBe(true);
    }
  });

  it('refuses going backwards, skipping CPT, and leaving a terminal state', () => {
    expect(canTransition('annealing', 'stable')).toBe(false);
    expect(canTransition('stable', 'warmup')).toBe(false);
    expect(canTransition('queued', 'published')).toBe(false);
    expect(canTransition('queued', 'fine_tuning')).toBe(false);
    for (const t of ['published', 'failed', 'cancelled'] as const)
      for (const s of ROUND_STATES) expect(canTransition(t, s)).toBe(false);
  });
});
