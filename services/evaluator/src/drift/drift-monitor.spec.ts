import { DriftMonitor, DriftObservation, DriftPolicy } from './drift-monitor';

const policy: DriftPolicy = { relativeDrop: 0.2, minSamples: 30, refreshOnAlert: true, cooldownMs: 60_000 };
const obs = (hr1: number, samples = 100, adapterId = 'a1', end = 0): DriftObservation => ({
  adapterId,
  domain: 'games',
  windowStartMs: end - 10,
  windowEndMs: end,
  hr1,
  samples,
});

describe('DriftMonitor', () => {
  it('takes the first observation after promotion as the baseline and alerts on a relative drop beyond the threshold', () => {
    const m = new DriftMonitor(policy);
    expect(m.observe(obs(0.5), 0)).toBeNull();
    expect(m.baseline('games')).toBe(0.5);
    expect(m.observe(obs(0.42), 1)).toBeNull(); // 16% drop
    const alert = m.observe(obs(0.35), 2); // 30% drop
    expect(alert).toMatchObject({ domain: 'games', baselineHr1: 0.5, hr1: 0.35, refreshRequested: true });
    expect(alert!.relativeDrop).toBeCloseTo(0.3, 10);
  });

  it('never alerts on windows with too few examples, however low', () => {
    const m = new DriftMonitor(policy);
    m.observe(obs(0.5), 0);
    expect(m.observe(obs(0.0, 10), 1)).toBeNull();
  });

  it('does not use a small window as the baseline', () => {
    const m = new DriftMonitor(policy);
    m.observe(obs(0.9, 5), 0);
    expect(m.baseline('games')).toBeNull();
  });

  it('respects the cooldown and restarts the baseline for a newly promoted adapter', () => {
    const m = new DriftMonitor(policy);
    m.observe(obs(0.5), 0);
    expect(m.observe(obs(0.1), 1)).not.toBeNull();
    expect(m.observe(obs(0.1), 2)).toBeNull();
    expect(m.observe(obs(0.1), 70_000)).not.toBeNull();
    expect(m.observe(obs(0.3, 100, 'a2'), 70_001)).toBeNull();
    expect(m.baseline('games')).toBe(0.3);
  });
});
