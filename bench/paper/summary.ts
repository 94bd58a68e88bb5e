import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { CptVariant, TargetKey } from './config';
import { readJson } from './io';
import type { LmMethod } from './plan';
import type { RecommenderMethod, UserOutcome } from './recommenders';
import { mean, pairedBootstrap, seedInterval } from './stats';

export type Method = RecommenderMethod | LmMethod;

/** One evaluated row (a method on a target with one seed), as written to bench/results/paper/rows/. */
export interface RowResult {
  id: string;
  target: TargetKey;
  method: Method;
  kind: 'recommender' | 'lm';
  seed: number;
  /** Fine-tuning samples (0 for recommenders and zero-shot rows). */
  samples: number;
  variant: CptVariant | null;
  n: number;
  /** Generation HR@1 over all test users (recommenders: rank 1 by their scores). */
  hr1: number;
  validRatio: number;
  /** LLaRA's HR@1 over valid answers only. */
  hr1OverValid: number;
  /** Ranking by exact likelihood (LM) or by the recommender's scores. */
  ranking: { hr1: number; hr5: number; ndcg5: number };
  /** LM rows: ranking by per-token likelihood. */
  rankingPerToken: { hr1: number; hr5: number; ndcg5: number } | null;
  testFingerprint: string;
  users: UserOutcome[];
  seconds: number;
  /** LM rows: seconds per test case, mean prompt tokens, share of prompts with a lowered title cap. */
  secondsPerCase?: number;
  promptTokens?: number;
  loweredCapShare?: number;
  style?: 'text' | 'hybrid';
}

export function rankingMetrics(ranks: readonly number[]): { hr1: number; hr5: number; ndcg5: number } {
  const n = Math.max(1, ranks.length);
  return {
    hr1: ranks.filter((r) => r === 1).length / n,
    hr5: ranks.filter((r) => r <= 5).length / n,
    ndcg5: ranks.reduce((a, r) => a + (r <= 5 ? 1 / Math.log2(r + 1) : 0), 0) / n,
  };
}

/** The metrics of a row from its per-user outcomes. */
export function rowMetrics(
  users: readonly UserOutcome[],
): Pick<RowResult, 'n' | 'hr1' | 'validRatio' | 'hr1OverValid' | 'ranking' | 'rankingPerToken'> {
  const n = users.length;
  const hits = users.filter((u) => u.hit === 1).length;
  const valid = users.filter((u) => u.valid === 1).length;
  const perToken = users.every((u) => u.rankPerToken !== undefined)
    ? rankingMetrics(users.map((u) => u.rankPerToken!))
    : null;
  return {
    n,
    hr1: n === 0 ? 0 : hits / n,
    validRatio: n === 0 ? 0 : valid / n,
    hr1OverValid: valid === 0 ? 0 : hits / valid,
    ranking: rankingMetrics(users.map((u) => u.rank)),
    rankingPerToken: n > 0 ? perToken : null,
  };
}

export interface SummaryRow {
  method: Method;
  target: TargetKey;
  /** Generation HR@1 over all test users, mean over seeds. */
  hr1: number;
  hr1_ci95: [number, number];
  valid_ratio: number;
  seeds: number;
  test_users: number;
  hr1_per_seed: number[];
  hr1_over_valid: number;
  ranking_hr1: number;
  ranking_hr5: number;
  ranking_ndcg5: number;
  ranking_hr1_per_token: number | null;
  /** Fine-tuning samples (LM fine-tuned rows). */
  samples?: number;
}

export interface PairedRow {
  target: TargetKey;
  /** Mean generation HR@1 of CPRec minus LLaRA (per-user hits averaged over the shared seeds). */
  cprec_minus_llara: number;
  /** Two-sided paired bootstrap over users (10,000 resamples). */
  p_value: number;
  ci95: [number, number];
  seeds: number;
  test_users: number;
  /** The same test on likelihood-ranking HR@1. */
  ranking_cprec_minus_llara: number;
  ranking_p_value: number;
}

export interface Summary {
  generated_at: string;
  rows: SummaryRow[];
  paired: PairedRow[];
  ablations: SummaryRow[];
  few_shot: Array<{
    target: TargetKey;
    samples: number;
    llara: SummaryRow | null;
    cprec: SummaryRow | null;
  }>;
  /** Per target: the test cases' fingerprint, identical in every row (checked). */
  test_fingerprints: Record<string, string>;
  /** Rows present / rows planned. */
  rows_done: number;
  rows_planned: number;
}

export const MAIN_METHODS: readonly Method[] = [
  'popularity',
  'title-similarity',
  'gru4rec',
  'sasrec',
  'base-zero-shot',
  'cprec-zero-shot',
  'llara',
  'cprec',
];

function aggregate(rows: readonly RowResult[]): SummaryRow {
  const r0 = rows[0]!;
  const seeds = [...rows].sort((a, b) => a.seed - b.seed);
  const per = seeds.map((r) => r.hr1);
  const perToken = seeds.map((r) => r.rankingPerToken?.hr1);
  return {
    method: r0.method,
    target: r0.target,
    hr1: mean(per),
    hr1_ci95: seedInterval(per, r0.n),
    valid_ratio: mean(seeds.map((r) => r.validRatio)),
    seeds: seeds.length,
    test_users: r0.n,
    hr1_per_seed: per,
    hr1_over_valid: mean(seeds.map((r) => r.hr1OverValid)),
    ranking_hr1: mean(seeds.map((r) => r.ranking.hr1)),
    ranking_hr5: mean(seeds.map((r) => r.ranking.hr5)),
    ranking_ndcg5: mean(seeds.map((r) => r.ranking.ndcg5)),
    ranking_hr1_per_token: perToken.every((x) => x !== undefined) ? mean(perToken as number[]) : null,
    ...(r0.kind === 'lm' && r0.samples > 0 ? { samples: r0.samples } : {}),
  };
}

/** Per-user mean over seeds of `value`, for the users in every row (keyed by user id). */
function perUser(rows: readonly RowResult[], value: (u: UserOutcome) => number): Map<string, number> {
  const sums = new Map<string, { s: number; c: number }>();
  for (const r of rows)
    for (const u of r.users) {
      const e = sums.get(u.u) ?? { s: 0, c: 0 };
      e.s += value(u);
      e.c++;
      sums.set(u.u, e);
    }
  return new Map([...sums].filter(([, e]) => e.c === rows.length).map(([k, e]) => [k, e.s / e.c]));
}

/**
 * The machine-readable summary from the finished rows (any subset: a partial run summarises what
 * it has). Refuses rows of one target evaluated on different test cases.
 */
export function summarise(
  rows: readonly RowResult[],
  opts: { mainSamples: number; rowsPlanned: number; resamples?: number },
): Summary {
  const fingerprints: Record<string, string> = {};
  for (const r of rows) {
    const f = fingerprints[r.target];
    if (f === undefined) fingerprints[r.target] = r.testFingerprint;
    else if (f !== r.testFingerprint)
      throw new Error(`row ${r.id} was evaluated on other test cases than the other ${r.target} rows`);
  }
  const groups = new Map<string, RowResult[]>();
  for (const r of rows) {
    const key = `${r.target}|${r.method}|${r.samples}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  const group = (target: string, method: Method, samples: number): RowResult[] =>
    groups.get(`${target}|${method}|${samples}`) ?? [];
  const targets = [...new Set(rows.map((r) => r.target))];
  const mainSamples = (m: Method): number => (m === 'llara' || m === 'cprec' ? opts.mainSamples : 0);
  const out: SummaryRow[] = [];
  for (const t of targets)
    for (const m of MAIN_METHODS) {
      const g = group(t, m, mainSamples(m));
      if (g.length > 0) out.push(aggregate(g));
    }
  const paired: PairedRow[] = [];
  for (const t of targets) {
    const llara = group(t, 'llara', opts.mainSamples);
    const cprec = group(t, 'cprec', opts.mainSamples);
    const seeds = llara.map((r) => r.seed).filter((s) => cprec.some((c) => c.seed === s));
    if (seeds.length === 0) continue;
    const pick = (rs: RowResult[]) => rs.filter((r) => seeds.includes(r.seed));
    const test = (value: (u: UserOutcome) => number) => {
      const a = perUser(pick(cprec), value);
      const b = perUser(pick(llara), value);
      const users = [...a.keys()].filter((k) => b.has(k)).sort();
      return {
        result: pairedBootstrap(
          users.map((k) => a.get(k)!),
          users.map((k) => b.get(k)!),
          opts.resamples ?? 10_000,
        ),
        users: users.length,
      };
    };
    const gen = test((u) => u.hit);
    const rank = test((u) => (u.rank === 1 ? 1 : 0));
    paired.push({
      target: t,
      cprec_minus_llara: gen.result.difference,
      p_value: gen.result.pValue,
      ci95: gen.result.ci95,
      seeds: seeds.length,
      test_users: gen.users,
      ranking_cprec_minus_llara: rank.result.difference,
      ranking_p_value: rank.result.pValue,
    });
  }
  const ablations: SummaryRow[] = [];
  const ablationMethods: Method[] = ['llara', 'cprec', 'cprec-ds-only', 'cprec-mix-stable', 'cprec-cosine'];
  for (const t of targets) {
    const ablated = ablationMethods.slice(2).some((m) => group(t, m, opts.mainSamples).length > 0);
    if (!ablated) continue;
    // Compare on the seeds every variant has (the ablations usually run one seed).
    const seedSets = ablationMethods
      .map((m) => group(t, m, opts.mainSamples).map((r) => r.seed))
      .filter((s) => s.length > 0);
    const shared = seedSets.reduce((acc, s) => acc.filter((x) => s.includes(x)));
    for (const m of ablationMethods) {
      const g = group(t, m, opts.mainSamples).filter((r) => shared.includes(r.seed));
      if (g.length > 0) ablations.push(aggregate(g));
    }
  }
  const fewShot: Summary['few_shot'] = [];
  for (const t of targets) {
    const sizes = [
      ...new Set(rows.filter((r) => r.target === t && r.samples > 0).map((r) => r.samples)),
    ].sort((a, b) => a - b);
    if (sizes.length < 2) continue;
    // Every point of the curve on the same seeds: those of the smallest size (usually one seed).
    const seedsAt = (n: number) =>
      group(t, 'llara', n)
        .map((r) => r.seed)
        .filter((s) => group(t, 'cprec', n).some((x) => x.seed === s));
    const shared = seedsAt(sizes[0]!);
    for (const n of sizes) {
      const l = group(t, 'llara', n);
      const c = group(t, 'cprec', n);
      const pick = (rs: RowResult[]) => rs.filter((r) => shared.includes(r.seed));
      fewShot.push({
        target: t,
        samples: n,
        llara: pick(l).length > 0 ? aggregate(pick(l)) : null,
        cprec: pick(c).length > 0 ? aggregate(pick(c)) : null,
      });
    }
  }
  return {
    generated_at: new Date().toISOString(),
    rows: out,
    paired,
    ablations,
    few_shot: fewShot,
    test_fingerprints: fingerprints,
    rows_done: rows.length,
    rows_planned: opts.rowsPlanned,
  };
}

export function readRows(dir: string): RowResult[] {
  let files: string[];
  try {
    files = readdirSync(dir).filter((f) => f.endsWith('.json'));
  } catch {
    return [];
  }
  return files.sort().map((f) => readJson<RowResult>(join(dir, f)));
}
