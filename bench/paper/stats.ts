import { createRng, randomInt } from '@cprec/corpus';

export const mean = (xs: readonly number[]): number =>
  xs.length === 0 ? Number.NaN : xs.reduce((a, b) => a + b, 0) / xs.length;

export function sampleStd(xs: readonly number[]): number {
  if (xs.length < 2) return Number.NaN;
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, x) => a + (x - m) * (x - m), 0) / (xs.length - 1));
}

/** Two-sided 97.5% quantiles of Student's t for 1–30 degrees of freedom (then the normal's 1.96). */
const T975 = [
  12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131,
  2.12, 2.11, 2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042,
];

export function t975(df: number): number {
  return df >= 1 && df <= T975.length ? T975[df - 1]! : 1.96;
}

/** 95% t-interval of the mean of per-seed values (needs ≥ 2 values). */
export function tInterval(values: readonly number[]): [number, number] {
  const m = mean(values);
  const half = (t975(values.length - 1) * sampleStd(values)) / Math.sqrt(values.length);
  return [m - half, m + half];
}

/** 95% Wilson score interval of a proportion `hits / n` (one seed: the users are the only sample). */
export function wilsonInterval(hits: number, n: number): [number, number] {
  if (n === 0) return [0, 1];
  const z = 1.96;
  const p = hits / n;
  const d = 1 + (z * z) / n;
  const c = (p + (z * z) / (2 * n)) / d;
  const h = (z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / d;
  return [Math.max(0, c - h), Math.min(1, c + h)];
}

/**
 * 95% interval of a metric over seeds: the t-interval of the per-seed values with ≥ 2 seeds
 * (seed-to-seed variation, what "mean over seeds with a 95% interval" asks), else the Wilson
 * interval over the users of the single seed.
 */
export function seedInterval(perSeed: readonly number[], usersPerSeed: number): [number, number] {
  if (perSeed.length >= 2) return tInterval(perSeed);
  const p = perSeed[0] ?? 0;
  return wilsonInterval(Math.round(p * usersPerSeed), usersPerSeed);
}

export interface PairedBootstrap {
  /** Mean of the paired differences (a − b). */
  readonly difference: number;
  /** 95% percentile interval of the mean difference. */
  readonly ci95: [number, number];
  /** Two-sided p-value of "no difference" (bootstrap of the differences shifted to mean 0). */
  readonly pValue: number;
  readonly resamples: number;
}

/**
 * Paired bootstrap over users: `a[i]` and `b[i]` are the same user's outcome under two methods
 * (e.g. per-user HR@1 averaged over seeds). Users are resampled with replacement; the p-value is
 * the share of resamples of the centred differences whose mean is at least as far from 0 as the
 * observed one (with the +1 correction, so it is never 0).
 */
export function pairedBootstrap(
  a: readonly number[],
  b: readonly number[],
  resamples = 10_000,
  seed = 1,
): PairedBootstrap {
  if (a.length !== b.length) throw new Error(`paired samples differ in length: ${a.length} vs ${b.length}`);
  const n = a.length;
  if (n === 0)
    return { difference: Number.NaN, ci95: [Number.NaN, Number.NaN], pValue: Number.NaN, resamples: 0 };
  const d = a.map((x, i) => x - b[i]!);
  const observed = mean(d);
  const centred = d.map((x) => x - observed);
  const rng = createRng(seed);
  const means = new Float64Array(resamples);
  let extreme = 0;
  for (let r = 0; r < resamples; r++) {
    let s = 0;
    let c = 0;
    for (let k = 0; k < n; k++) {
      const i = randomInt(rng, 0, n - 1);
      s += d[i]!;
      c += centred[i]!;
    }
    means[r] = s / n;
    if (Math.abs(c / n) >= Math.abs(observed) - 1e-12) extreme++;
  }
  const sorted = Array.from(means).sort((x, y) => x - y);
  const q = (p: number): number =>
    sorted[Math.min(sorted.length - 1, Math.max(0, Math.floor(p * sorted.length)))]!;
  return {
    difference: observed,
    ci95: [q(0.025), q(0.975)],
    pValue: (extreme + 1) / (resamples + 1),
    resamples,
  };
}
