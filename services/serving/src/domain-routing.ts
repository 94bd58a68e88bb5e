import type { RankRequest, ScoredCandidate } from '@cprec/training';
import type { AdapterRef, Serving } from './adapter-manager';

/** Something that ranks a batch (a scorer in the workers or on this thread). */
export interface BatchRanker {
  rankBatch(requests: readonly RankRequest[]): Promise<ScoredCandidate[][]>;
}

/** One request's ranking and the adapter that produced it. */
export interface Routed {
  ranked: ScoredCandidate[];
  ref: AdapterRef;
}

/**
 * Ranks a batch whose requests may belong to different domains: each request goes to what serves
 * its domain (`servingOf`: the domain's adapter, or the shared base model), one rankBatch per
 * distinct model with that model's requests in batch order, and the results come back in the
 * batch's order with the adapter that answered each.
 *
 * Every rankBatch is called before this function first awaits: a scorer handed a batch has
 * posted it to its worker in this same turn, before any adapter switch can dispose it, and a
 * worker handles its messages in order — so a replaced adapter still answers the requests it was
 * given. A failing group rejects the whole batch (the micro-batcher then retries request by
 * request, so only the bad request fails).
 */
export async function rankByDomain<T extends BatchRanker>(
  requests: readonly RankRequest[],
  servingOf: (domain: string) => Serving<T>,
): Promise<Routed[]> {
  const groups = new Map<Serving<T>, number[]>();
  requests.forEach((r, i) => {
    const serving = servingOf(r.domain);
    const group = groups.get(serving);
    if (group) group.push(i);
    else groups.set(serving, [i]);
  });
  const pending = [...groups].map(([serving, indices]) => ({
    serving,
    indices,
    ranked: serving.value.rankBatch(indices.map((i) => requests[i])),
  }));
  const results = await Promise.all(pending.map((p) => p.ranked));
  const out = new Array<Routed>(requests.length);
  pending.forEach(({ serving, indices }, g) => {
    indices.forEach((i, k) => (out[i] = { ranked: results[g][k], ref: serving.ref }));
  });
  return out;
}
