import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { readJson } from '../paper/io';
import { wilsonInterval } from '../paper/stats';
import type { CaseOutcome } from './arms';
import type { Arm } from './plan';

/** One arm's outcomes on one evaluation window and domain (a file under results/rows/). */
export interface RowResult {
  id: string;
  arm: Arm;
  /** The round: trained on windows ≤ b. */
  boundary: number;
  /** The evaluated window (b + 1 for "next", 1 for "first"). */
  window: number;
  set: 'next' | 'first';
  domain: string;
  users: CaseOutcome[];
  /** sha256-ish key of the cases (users, candidates): identical for every arm of a window. */
  casesKey: string;
  /** The stage whose model this row scored, when another arm's row is reused (round 0). */
  sharedWith?: string;
}

/** What producing an arm's model at round b cost (its training stages). */
export interface CostRecord {
  arm: Arm;
  boundary: number;
  tokens: number;
  wallSeconds: number;
  cpuSeconds: number;
  /** What it trained on: CPT samples, fine-tuning samples, SASRec interactions. */
  detail: Record<string, number>;
}

export interface WindowEntry {
  window: number;
  label: string;
  arm: Arm;
  boundary: number;
  /** HR@1 over 20 candidates by rank (likelihood for LMs, scores for SASRec), all target domains pooled. */
  hr1: number;
  hr1_ci95: [number, number];
  users: number;
  per_domain: Record<string, { hr1: number; users: number }>;
  /** Generation HR@1 and Valid Ratio (LM arms with eval.generation). */
  generation?: { hr1: number; valid_ratio: number };
  /** Training cost of the model evaluated (0 for a model trained at an earlier window). */
  tokens: number;
  wall_s: number;
  cpu_s: number;
}

export interface Summary {
  windows: WindowEntry[];
  /** HR@1 on window 1's users as the rounds go by (trained on them from round 1 on). */
  forgetting: Array<Omit<WindowEntry, 'tokens' | 'wall_s' | 'cpu_s'>>;
  costs: CostRecord[];
  rows_done: number;
  rows_planned: number;
  complete: boolean;
}

export function readRows(dir: string): RowResult[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => readJson<RowResult>(join(dir, f)));
}

function pooled(
  rows: readonly RowResult[],
): Omit<WindowEntry, 'arm' | 'boundary' | 'window' | 'label' | 'tokens' | 'wall_s' | 'cpu_s'> {
  const all = rows.flatMap((r) => r.users);
  const hits = all.filter((u) => u.rank === 1).length;
  const per_domain: Record<string, { hr1: number; users: number }> = {};
  for (const r of rows)
    per_domain[r.domain] = {
      hr1: r.users.filter((u) => u.rank === 1).length / Math.max(1, r.users.length),
      users: r.users.length,
    };
  const generated = all.filter((u) => u.hit !== undefined);
  return {
    hr1: all.length === 0 ? 0 : hits / all.length,
    hr1_ci95: wilsonInterval(hits, all.length),
    users: all.length,
    per_domain,
    ...(generated.length > 0
      ? {
          generation: {
            hr1: generated.filter((u) => u.hit === 1).length / generated.length,
            valid_ratio: generated.filter((u) => u.valid === 1).length / generated.length,
          },
        }
      : {}),
  };
}

/**
 * The summary (`summary.json`): per evaluation window and arm the pooled HR@1 with its 95% Wilson
 * interval over the window's users, per-domain HR@1, and what the arm's model cost to train at
 * that round; the forgetting series on window 1; every cost record.
 */
export function summarise(
  rows: readonly RowResult[],
  costs: readonly CostRecord[],
  labels: readonly string[],
  rowsPlanned: number,
): Summary {
  const groups = new Map<string, RowResult[]>();
  for (const r of rows) {
    const key = `${r.set}|${r.window}|${r.arm}|${r.boundary}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  const windows: WindowEntry[] = [];
  const forgetting: Summary['forgetting'] = [];
  const order: Arm[] = ['frozen', 'continual', 'retrain', 'sasrec'];
  const sorted = [...groups.entries()].sort(([, a], [, b]) => {
    const x = a[0]!;
    const y = b[0]!;
    return x.boundary - y.boundary || x.window - y.window || order.indexOf(x.arm) - order.indexOf(y.arm);
  });
  for (const [, group] of sorted) {
    const r = group[0]!;
    const base = {
      window: r.window,
      label: labels[r.window] ?? '',
      arm: r.arm,
      boundary: r.boundary,
      ...pooled(group.sort((a, b) => (a.domain < b.domain ? -1 : 1))),
    };
    if (r.set === 'first') {
      forgetting.push(base);
      continue;
    }
    const cost = costs.find((c) => c.arm === r.arm && c.boundary === r.boundary);
    windows.push({
      ...base,
      tokens: cost?.tokens ?? 0,
      wall_s: cost?.wallSeconds ?? 0,
      cpu_s: cost?.cpuSeconds ?? 0,
    });
  }
  return {
    windows,
    forgetting,
    costs: [...costs],
    rows_done: rows.length,
    rows_planned: rowsPlanned,
    complete: rows.length >= rowsPlanned,
  };
}
