/** Metrics of one adapter on one domain's frozen test split. */
export interface DomainScore {
  domain: string;
  /** HR@1 over all examples (correct / total). */
  hr1: number;
  /** Share of generations that matched a candidate. */
  validRatio: number;
  samples: number;
}

export interface GatePolicy {
  /** ε: the candidate may be at most this much (absolute HR@1) below the serving adapter. */
  maxHr1Drop: number;
  /** Valid Ratio must be at least this. */
  minValidRatio: number;
  /** Fewer evaluated examples than this on a domain rejects (the numbers would be noise). */
  minSamples: number;
}

export interface GateDecision {
  promote: boolean;
  /** One readable line per check, failing ones first. */
  reasons: string[];
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

/**
 * The promotion gate: every target domain must pass every check. With no serving adapter yet,
 * only the absolute checks apply (the first adapter that is sane gets promoted).
 */
export function decidePromotion(
  candidate: readonly DomainScore[],
  serving: ReadonlyMap<string, number> | null,
  policy: GatePolicy,
): GateDecision {
  const failures: string[] = [];
  const passes: string[] = [];
  if (candidate.length === 0) failures.push('no domain was evaluated');
  for (const s of candidate) {
    if (s.samples < policy.minSamples) {
      failures.push(`${s.domain}: only ${s.samples} examples evaluated, fewer than ${policy.minSamples}`);
      continue;
    }
    if (s.validRatio < policy.minValidRatio) {
      failures.push(
        `${s.domain}: Valid Ratio ${pct(s.validRatio)} below the floor ${pct(policy.minValidRatio)}`,
      );
    } else {
      passes.push(`${s.domain}: Valid Ratio ${pct(s.validRatio)} ≥ ${pct(policy.minValidRatio)}`);
    }
    const current = serving?.get(s.domain);
    if (current === undefined) {
      passes.push(`${s.domain}: HR@1 ${pct(s.hr1)} (no serving adapter to compare with)`);
    } else if (s.hr1 < current - policy.maxHr1Drop) {
      failures.push(
        `${s.domain}: HR@1 ${pct(s.hr1)} is ${pct(current - s.hr1)} below the serving adapter's ${pct(current)} (ε ${pct(policy.maxHr1Drop)})`,
      );
    } else {
      passes.push(`${s.domain}: HR@1 ${pct(s.hr1)} vs serving ${pct(current)} (ε ${pct(policy.maxHr1Drop)})`);
    }
  }
  return { promote: failures.length === 0, reasons: [...failures, ...passes] };
}
