import { dataPoolAt, dataPoolFor } from './data-plan';
import { learningRateAt, phaseAt, planWsa, validateSchedule, warmupStepsFor, WsaSchedule } from './wsa';

const s: WsaSchedule = {
  kind: 'wsa',
  etaLow: 5e-6,
  etaHigh: 5e-4,
  warmupSteps: 10,
  stableEnd: 100,
  annealEnd: 120,
};

describe('WSA schedule (paper Eq. 2-3)', () => {
  it('starts at eta_l and rises linearly to eta_h at W', () => {
    expect(learningRateAt(s, 0)).toBe(5e-6);
    expect(learningRateAt(s, 5)).toBeCloseTo(5e-6 + (5e-4 - 5e-6) * 0.5, 15);
    expect(learningRateAt(s, 10)).toBe(5e-4);
  });

  it('stays at eta_h through the stable phase', () => {
    for (const t of [10, 50, 99]) expect(learningRateAt(s, t)).toBe(5e-4);
  });

  it('anneals by cosine over steps S … A−1, the last annealing step at exactly eta_l', () => {
    // 20 annealing steps (100 … 119): step S has decayed by one step of 20, step A−1 is the floor.
    const at = (k: number): number => 5e-6 + 0.5 * (5e-4 - 5e-6) * (1 + Math.cos((Math.PI * k) / 20));
    expect(learningRateAt(s, 100)).toBeCloseTo(at(1), 15);
    expect(learningRateAt(s, 100)).toBeLessThan(5e-4);
    expect(learningRateAt(s, 109)).toBeCloseTo(at(10), 15);
    expect(learningRateAt(s, 119)).toBe(5e-6);
    expect(learningRateAt(s, 120)).toBe(5e-6);
    expect(learningRateAt(s, 500)).toBe(5e-6);
  });

  it('reaches eta_l on the last step for every annealing length, one step included', () => {
    for (const steps of [1, 2, 3, 7, 50]) {
      const sched: WsaSchedule = { ...s, annealEnd: s.stableEnd + steps };
      expect(learningRateAt(sched, sched.annealEnd - 1)).toBe(sched.etaLow);
      expect(learningRateAt(sched, sched.stableEnd - 1)).toBe(sched.etaHigh);
    }
  });

  it('is monotone within each phase', () => {
    for (let t = 1; t <= 10; t++) expect(learningRateAt(s, t)).toBeGreaterThan(learningRateAt(s, t - 1));
    for (let t = 100; t <= 119; t++) expect(learningRateAt(s, t)).toBeLessThan(learningRateAt(s, t - 1));
  });

  it('names phases by step', () => {
    expect([0, 9, 10, 99, 100, 119, 120].map((t) => phaseAt(s, t))).toEqual([
      'warmup',
      'warmup',
      'stable',
      'stable',
      'annealing',
      'annealing',
      'done',
    ]);
  });

  it('plans W as 5% of all steps and A = S + annealing steps', () => {
    const plan = planWsa({ domainSpecificSteps: 400, annealSteps: 40 });
    expect(plan).toEqual({
      kind: 'wsa',
      etaLow: 5e-6,
      etaHigh: 5e-4,
      warmupSteps: 22,
      stableEnd: 400,
      annealEnd: 440,
    });
  });

  it('warms up for at least one step however small the run, never past the stable phase', () => {
    // 5% of 8 steps rounds to 0: the quick experiment started at eta_h.
    expect(planWsa({ domainSpecificSteps: 6, annealSteps: 2 }).warmupSteps).toBe(1);
    expect(learningRateAt(planWsa({ domainSpecificSteps: 6, annealSteps: 2 }), 0)).toBe(5e-6);
    expect(warmupStepsFor(0.05, 1, 1)).toBe(1);
    expect(warmupStepsFor(0.5, 100, 10)).toBe(10);
    expect(warmupStepsFor(0.05, 5, 0)).toBe(0);
    for (let total = 2; total < 200; total += 7) {
      const plan = planWsa({ domainSpecificSteps: total - 1, annealSteps: 1 });
      expect(plan.warmupSteps).toBeGreaterThanOrEqual(1);
      expect(plan.warmupSteps).toBeLessThanOrEqual(plan.stableEnd);
      expect(learningRateAt(plan, plan.annealEnd - 1)).toBe(plan.etaLow);
    }
  });

  it('rejects inconsistent boundaries', () => {
    expect(() => validateSchedule({ ...s, stableEnd: 5 })).toThrow(/stableEnd/);
    expect(() => validateSchedule({ ...s, etaLow: 1, etaHigh: 0.1 })).toThrow(/etaLow/);
  });

  it('supports plain cosine and constant schedules for comparison', () => {
    const cos = { kind: 'cosine' as const, etaLow: 0, etaHigh: 1, warmupSteps: 0, totalSteps: 10 };
    expect(learningRateAt(cos, 0)).toBeCloseTo(0.5 * (1 + Math.cos(Math.PI / 10)), 12);
    expect(learningRateAt(cos, 4)).toBeCloseTo(0.5, 12);
    expect(learningRateAt(cos, 9)).toBe(0);
    expect(learningRateAt({ kind: 'constant', eta: 3e-4, totalSteps: 9 }, 7)).toBe(3e-4);
  });
});

describe('data by phase', () => {
  it('CPRec trains warm-up and stable on domain-specific data and anneals on mixed data', () => {
    expect(dataPoolAt('cprec', s, 0)).toBe('domain');
    expect(dataPoolAt('cprec', s, 50)).toBe('domain');
    expect(dataPoolAt('cprec', s, 100)).toBe('mixed');
  });

  it('encodes the ablation variants', () => {
    expect(dataPoolFor('ds-only', 'annealing')).toBe('domain');
    expect(dataPoolFor('ds-mix-n', 'warmup')).toBe('both');
    expect(dataPoolFor('ds-mix-s', 'stable')).toBe('both');
    expect(dataPoolFor('ds-mix-s', 'annealing')).toBe('domain');
  });
});
