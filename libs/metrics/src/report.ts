import { DEFAULT_KS, summariseRanks, type Rank } from './ranking';

/** Sparsity buckets by history length, as in the paper's analysis. */
export type SparsityBucket = '<5' | '5-8' | '>=9';
export const SPARSITY_BUCKETS: readonly SparsityBucket[] = ['<5', '5-8', '>=9'];

export function sparsityBucket(historyLength: number): SparsityBucket {
  if (!Number.isInteger(historyLength) || historyLength < 0)
    throw new RangeError(`history length must be a non-negative integer, got ${historyLength}`);
  return historyLength < 5 ? '<5' : historyLength <= 8 ? '5-8' : '>=9';
}

/** What the evaluator records per example. */
export interface ExampleOutcome {
  readonly domain: string;
  readonly historyLength: number;
  /** The first (full-candidate-list) generation matched some candidate. */
  readonly firstValid: boolean;
  /** Rank by iterative generate-and-remove; rank 1 ⇔ the first generation was correct. */
  readonly generatedRank: Rank;
  /** Rank by exact candidate likelihood, when that procedure was run. */
  readonly likelihoodRank?: number;
}

export interface RankMetrics {
  readonly hr: Readonly<Record<number, number>>;
  readonly ndcg: Readonly<Record<number, number>>;
}

export interface MetricGroup {
  readonly count: number;
  readonly valid: number;
  readonly correct: number;
  readonly validRatio: number;
  /** correct / total. */
  readonly hr1: number;
  /** correct / valid (LLaRA). */
  readonly hr1OverValid: number;
  readonly generated: RankMetrics;
  /** Present when every example of the group has a likelihood rank. */
  readonly likelihood?: RankMetrics;
}

export interface DomainReport {
  readonly all: MetricGroup;
  readonly buckets: Readonly<Record<SparsityBucket, MetricGroup>>;
}

export interface EvaluationReport {
  readonly ks: readonly number[];
  readonly overall: MetricGroup;
  readonly byDomain: Readonly<Record<string, DomainReport>>;
}

export function metricGroup(
  outcomes: readonly ExampleOutcome[],
  ks: readonly number[] = DEFAULT_KS,
): MetricGroup {
  const count = outcomes.length;
  const valid = outcomes.filter((o) => o.firstValid).length;
  const correct = outcomes.filter((o) => o.generatedRank === 1).length;
  const generated = summariseRanks(
    outcomes.map((o) => o.generatedRank),
    ks,
  );
  const likelihoodRanks = outcomes.map((o) => o.likelihoodRank).filter((r): r is number => r !== undefined);
  const likelihood =
    count > 0 && likelihoodRanks.length === count ? summariseRanks(likelihoodRanks, ks) : undefined;
  return {
    count,
    valid,
    correct,
    validRatio: count === 0 ? 0 : valid / count,
    hr1: count === 0 ? 0 : correct / count,
    hr1OverValid: valid === 0 ? 0 : correct / valid,
    generated: { hr: generated.hr, ndcg: generated.ndcg },
    ...(likelihood ? { likelihood: { hr: likelihood.hr, ndcg: likelihood.ndcg } } : {}),
  };
}

export function buildReport(
  outcomes: readonly ExampleOutcome[],
  ks: readonly number[] = DEFAULT_KS,
): EvaluationReport {
  for (const o of outcomes) {
    if (o.generatedRank === 1 && !o.firstValid)
      throw new Error('an example with generated rank 1 must have a valid first generation');
  }
  const domains = [...new Set(outcomes.map((o) => o.domain))].sort();
  const byDomain: Record<string, DomainReport> = {};
  for (const domain of domains) {
    const mine = outcomes.filter((o) => o.domain === domain);
    const buckets = {} as Record<SparsityBucket, MetricGroup>;
    for (const b of SPARSITY_BUCKETS)
      buckets[b] = metricGroup(
        mine.filter((o) => sparsityBucket(o.historyLength) === b),
        ks,
      );
    byDomain[domain] = { all: metricGroup(mine, ks), buckets };
  }
  return { ks, overall: metricGroup(outcomes, ks), byDomain };
}

const fmt = (x: number): string => x.toFixed(4);

/** A fixed-width text table: one row per domain × bucket, an "all" row per domain and overall. */
export function formatReport(report: EvaluationReport): string {
  const ks = report.ks;
  const withLikelihood = report.overall.likelihood !== undefined;
  const header = [
    'domain',
    'bucket',
    'n',
    'valid',
    'HR@1',
    'HR@1/valid',
    ...ks.flatMap((k) => [`HR@${k} gen`, `NDCG@${k} gen`]),
    ...(withLikelihood ? ks.flatMap((k) => [`HR@${k} lik`, `NDCG@${k} lik`]) : []),
  ];
  const row = (domain: string, bucket: string, g: MetricGroup): string[] => [
    domain,
    bucket,
    String(g.count),
    fmt(g.validRatio),
    fmt(g.hr1),
    fmt(g.hr1OverValid),
    ...ks.flatMap((k) => [fmt(g.generated.hr[k]), fmt(g.generated.ndcg[k])]),
    ...(withLikelihood
      ? ks.flatMap((k) => (g.likelihood ? [fmt(g.likelihood.hr[k]), fmt(g.likelihood.ndcg[k])] : ['-', '-']))
      : []),
  ];
  const rows: string[][] = [];
  for (const [domain, d] of Object.entries(report.byDomain)) {
    for (const b of SPARSITY_BUCKETS) rows.push(row(domain, b, d.buckets[b]));
    rows.push(row(domain, 'all', d.all));
  }
  rows.push(row('ALL', 'all', report.overall));
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
  const line = (cells: string[]): string =>
    cells.map((cell, c) => (c < 2 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}
