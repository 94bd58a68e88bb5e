import type { EvaluationReport, MetricGroup } from '@cprec/metrics';
import type { EvaluationMethod, MethodMetrics } from './protocol';

const at = (values: Readonly<Record<number, number>>, k: number): number => values[k] ?? 0;

/**
 * The headline numbers of one domain of a report, per method that ran. Likelihood ranking
 * always names a candidate, so its Valid Ratio is 1 and both HR@1 definitions coincide.
 */
export function methodMetrics(
  report: EvaluationReport,
  domain: string,
  methods: { likelihood: boolean; generation: boolean },
): MethodMetrics[] {
  const group: MetricGroup | undefined = report.byDomain[domain]?.all;
  if (!group) return [];
  const out: MethodMetrics[] = [];
  if (methods.likelihood && group.likelihood) {
    const { hr, ndcg } = group.likelihood;
    out.push({
      method: 'likelihood',
      samples: group.count,
      hr1: at(hr, 1),
      hr1Valid: at(hr, 1),
      validRatio: group.count === 0 ? 0 : 1,
      hr3: at(hr, 3),
      hr5: at(hr, 5),
      ndcg3: at(ndcg, 3),
      ndcg5: at(ndcg, 5),
    });
  }
  if (methods.generation) {
    const { hr, ndcg } = group.generated;
    out.push({
      method: 'generation',
      samples: group.count,
      hr1: group.hr1,
      hr1Valid: group.hr1OverValid,
      validRatio: group.validRatio,
      hr3: at(hr, 3),
      hr5: at(hr, 5),
      ndcg3: at(ndcg, 3),
      ndcg5: at(ndcg, 5),
    });
  }
  return out;
}

export function metricOf(
  metrics: readonly MethodMetrics[],
  method: EvaluationMethod,
): MethodMetrics | undefined {
  return metrics.find((m) => m.method === method);
}
