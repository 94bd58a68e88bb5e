import { createHash } from 'node:crypto';
import type { InteractionEvent } from '@cprec/contracts';
import type { Dataset } from '../model';

/**
 * What a live stream needs to know about its datasets before it starts, from one pass over their
 * interactions: which users to keep (active in enough domains, optionally a deterministic sample
 * of them) and where the backlog ends (the event time before which the given share of the kept
 * interactions happened).
 */
export interface LiveStreamPlan {
  /** Users whose interactions are streamed (null = everyone). */
  users: ReadonlySet<string> | null;
  /** Kept interactions per domain. */
  interactions: Record<string, number>;
  /** Kept users and interactions in all. */
  userCount: number;
  interactionCount: number;
  /** Event-time span of the kept interactions (null when there are none). */
  firstMs: number | null;
  lastMs: number | null;
  /** Interactions before this event time are the backlog (null when no backlog was asked for). */
  liveFromMs: number | null;
}

export interface LiveStreamOptions {
  /** Keep only users with interactions in at least this many domains (1 = everyone). */
  minDomains?: number;
  /**
   * Keep at most this many of those users: the ones with the smallest sha256(user id), so the
   * choice is deterministic and independent of the order of the files.
   */
  maxUsers?: number | null;
  /** Share of the kept interactions (in event-time order) replayed as the backlog, 0 ≤ f < 1. */
  backlogFraction?: number;
}

const userRank = (userId: string): string => createHash('sha256').update(userId).digest('hex');

/**
 * One pass over the datasets' interactions (two when users are filtered) — bounded memory: per
 * user a domain set, per interaction one event time (8 bytes).
 */
export async function planLiveStream(
  datasets: readonly Dataset[],
  options: LiveStreamOptions = {},
): Promise<LiveStreamPlan> {
  const minDomains = options.minDomains ?? 1;
  const maxUsers = options.maxUsers ?? null;
  const backlog = options.backlogFraction ?? 0;
  if (!Number.isInteger(minDomains) || minDomains < 1) throw new Error('minDomains must be an integer ≥ 1');
  if (maxUsers !== null && (!Number.isInteger(maxUsers) || maxUsers < 1))
    throw new Error('maxUsers must be a positive integer');
  if (!(backlog >= 0 && backlog < 1)) throw new Error('backlogFraction must be in [0, 1)');

  let users: Set<string> | null = null;
  if (minDomains > 1 || maxUsers !== null) {
    const domainsOf = new Map<string, Set<string>>();
    for (const ds of datasets)
      for await (const e of ds.interactions()) {
        let set = domainsOf.get(e.user_id);
        if (!set) domainsOf.set(e.user_id, (set = new Set()));
        set.add(e.domain);
      }
    let kept = [...domainsOf].filter(([, d]) => d.size >= minDomains).map(([u]) => u);
    if (maxUsers !== null && kept.length > maxUsers)
      kept = kept
        .map((u) => [userRank(u), u] as const)
        .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
        .slice(0, maxUsers)
        .map(([, u]) => u);
    users = new Set(kept);
  }

  const perDomain: Record<string, number> = {};
  let times = new Float64Array(1 << 16);
  let n = 0;
  const seen = new Set<string>();
  for (const ds of datasets)
    for await (const e of ds.interactions()) {
      if (users !== null && !users.has(e.user_id)) continue;
      if (users === null) seen.add(e.user_id);
      perDomain[e.domain] = (perDomain[e.domain] ?? 0) + 1;
      if (n === times.length) {
        const grown = new Float64Array(times.length * 2);
        grown.set(times);
        times = grown;
      }
      times[n++] = e.ts;
    }
  const sorted = times.subarray(0, n).sort();
  const liveFromMs = backlog > 0 && n > 0 ? sorted[Math.min(n - 1, Math.floor(backlog * n))]! : null;
  return {
    users,
    interactions: perDomain,
    userCount: users?.size ?? seen.size,
    interactionCount: n,
    firstMs: n > 0 ? sorted[0]! : null,
    lastMs: n > 0 ? sorted[n - 1]! : null,
    liveFromMs,
  };
}

/**
 * The dataset with only the given users' interactions (items unchanged: the catalogue is the
 * platform's, whoever buys). Event ids are the original ones, so a filtered replay stores the
 * very events an unfiltered one would.
 */
export function onlyUsers(dataset: Dataset, users: ReadonlySet<string> | null): Dataset {
  if (users === null) return dataset;
  return {
    name: dataset.name,
    format: dataset.format,
    items: () => dataset.items(),
    async *interactions(): AsyncGenerator<InteractionEvent> {
      for await (const e of dataset.interactions()) if (users.has(e.user_id)) yield e;
    },
  };
}
