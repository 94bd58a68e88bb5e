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

/** The adapter serving a domain now, as the gate compares with it. */
export interface Incumbent {
  adapterId: string;
  /** Its HR@1 on the candidate's split (or its promotion record when it could not be re-scored). */
  hr1: number;
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

/**
 * The promotion gate: every target domain must pass every check, each against the adapter
 * serving THAT domain (`incumbents`, per domain — serving holds one adapter per domain, so the
 * Games adapter is never compared with the one answering Books). A domain without an incumbent
 * (nothing promoted for it yet, or rolled back to the base model) gets only the absolute checks,
 * as the very first promotion does.
 */
export function decidePromotion(
  candidate: readonly DomainScore[],
  incumbents: ReadonlyMap<string, Incumbent>,
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
    const current = incumbents.get(s.domain);
    if (current === undefined) {
      passes.push(`${s.domain}: HR@1 ${pct(s.hr1)} (no adapter serves ${s.domain} to compare with)`);
    } else if (s.hr1 < current.hr1 - policy.maxHr1Drop) {
      failures.push(
        `${s.domain}: HR@1 ${pct(s.hr1)} is ${pct(current.hr1 - s.hr1)} below ${current.adapterId}'s ${pct(current.hr1)}, the adapter serving ${s.domain} (ε ${pct(policy.maxHr1Drop)})`,
      );
    } else {
      passes.push(
        `${s.domain}: HR@1 ${pct(s.hr1)} vs ${pct(current.hr1)} of ${current.adapterId}, the adapter serving ${s.domain} (ε ${pct(policy.maxHr1Drop)})`,
      );
    }
  }
  return { promote: failures.length === 0, reasons: [...failures, ...passes] };
}
