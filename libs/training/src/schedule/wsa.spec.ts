import { dataPoolAt, dataPoolFor } from './data-plan';
import { learningRateAt, phaseAt, planWsa, validateSchedule, WsaSchedule } from './wsa';

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

  it('anneals by cosine from eta_h at S to eta_l at A', () => {
    expect(learningRateAt(s, 100)).toBeCloseTo(5e-4, 15);
    const mid = 5e-6 + 0.5 * (5e-4 - 5e-6) * (1 + Math.cos(Math.PI * 0.5));
    expect(learningRateAt(s, 110)).toBeCloseTo(mid, 15);
    const quarter = 5e-6 + 0.5 * (5e-4 - 5e-6) * (1 + Math.cos(Math.PI * 0.25));
    expect(learningRateAt(s, 105)).toBeCloseTo(quarter, 15);
    expect(learningRateAt(s, 120)).toBeCloseTo(5e-6, 15);
    expect(learningRateAt(s, 500)).toBe(5e-6);
  });

  it('is monotone within each phase', () => {
    for (let t = 1; t <= 10; t++) expect(learningRateAt(s, t)).toBeGreaterThan(learningRateAt(s, t - 1));
    for (let t = 101; t <= 120; t++) expect(learningRateAt(s, t)).toBeLessThan(learningRateAt(s, t - 1));
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

  it('plans W as 5% of the domain-specific steps and A = S + annealing steps', () => {
    const plan = planWsa({ domainSpecificSteps: 400, annealSteps: 40 });
    expect(plan).toEqual({
      kind: 'wsa',
      etaLow: 5e-6,
      etaHigh: 5e-4,
      warmupSteps: 20,
      stableEnd: 400,
      annealEnd: 440,
    });
  });

  it('rejects inconsistent boundaries', () => {
    expect(() => validateSchedule({ ...s, stableEnd: 5 })).toThrow(/stableEnd/);
    expect(() => validateSchedule({ ...s, etaLow: 1, etaHigh: 0.1 })).toThrow(/etaLow/);
  });

  it('supports plain cosine and constant schedules for comparison', () => {
    const cos = { kind: 'cosine' as const, etaLow: 0, etaHigh: 1, warmupSteps: 0, totalSteps: 10 };
    expect(learningRateAt(cos, 0)).toBe(1);
    expect(learningRateAt(cos, 5)).toBeCloseTo(0.5, 12);
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
