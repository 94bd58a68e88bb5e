import { compareIds } from './interaction';
import { randomInt, shuffleInPlace, type Rng } from './rng';

/** Default number of negatives: 19, so candidates = the target + 19 = 20 (the paper's setting). */
export const DEFAULT_NEGATIVES = 19;

/**
 * The items of one domain, de-duplicated and sorted by id. Sorting makes draws depend only on the
 * set of items, not on the order they were loaded in; the set gives O(1) membership tests for
 * rejection sampling. Build it once per domain and reuse it for every user.
 */
export class ItemPool {
  readonly items: readonly string[];
  private readonly members: ReadonlySet<string>;

  constructor(
    readonly domain: string,
    itemIds: Iterable<string>,
  ) {
    this.members = new Set(itemIds);
    this.items = [...this.members].sort(compareIds);
  }

  has(itemId: string): boolean {
    return this.members.has(itemId);
  }

  get size(): number {
    return this.items.length;
  }
}

export class NotEnoughItemsError extends Error {
  constructor(domain: string, available: number, needed: number) {
    super(
      `domain "${domain}" has only ${available} item(s) the user never interacted with (excluding the target); ` +
        `${needed} negative(s) are needed — lower the candidate count or evaluate this domain with more items`,
    );
    this.name = 'NotEnoughItemsError';
  }
}

export interface NegativeSamplingInput {
  /** The true next item; never returned. */
  readonly target: string;
  /** Every item of this domain the user interacted with (any time); never returned. */
  readonly userItems: Iterable<string>;
  readonly domainItems: ItemPool;
  /** Default 19. */
  readonly count?: number;
  /** Advanced in place. */
  readonly rng: Rng;
  /**
   * Extra exclusion, e.g. items whose normalised title equals the target's (catalogues reuse
   * titles across item ids, and a negative titled like the target makes a correct answer
   * indistinguishable from a wrong one).
   */
  readonly exclude?: (itemId: string) => boolean;
}

/**
 * `count` distinct items drawn uniformly without replacement from the domain's items the user
 * never interacted with, excluding the target.
 *
 * Two strategies, same distribution: when at least half of the domain is eligible and the
 * eligible set is at least twice `count`, rejection sampling on the sorted item array (each draw
 * succeeds with probability ≥ 1/4, so the expected cost is O(count) whatever the domain size);
 * otherwise the eligible pool is listed explicitly and a partial Fisher–Yates shuffle picks from
 * it (O(domain size), only for small or heavily-consumed domains).
 */
export function sampleNegatives(input: NegativeSamplingInput): string[] {
  const count = input.count ?? DEFAULT_NEGATIVES;
  if (!Number.isInteger(count) || count < 0)
    throw new RangeError(`count must be a non-negative integer, got ${count}`);
  const pool = input.domainItems;
  const excluded = new Set<string>();
  for (const id of input.userItems) if (pool.has(id)) excluded.add(id);
  if (pool.has(input.target)) excluded.add(input.target);
  const available = pool.size - excluded.size;
  if (available < count) throw new NotEnoughItemsError(pool.domain, available, count);

  const eligibleId = (id: string): boolean => !excluded.has(id) && !(input.exclude?.(id) ?? false);

  if (available * 2 >= pool.size && available >= count * 2) {
    const chosen = new Set<string>();
    const out: string[] = [];
    // Bounded so that an `exclude` predicate rejecting most of the domain cannot loop forever:
    // past the bound the explicit pool below decides (and reports a shortage precisely).
    const maxDraws = 64 * count + 1024;
    for (let draws = 0; out.length < count && draws < maxDraws; draws++) {
      const id = pool.items[randomInt(input.rng, 0, pool.size - 1)];
      if (chosen.has(id) || !eligibleId(id)) continue;
      chosen.add(id);
      out.push(id);
    }
    if (out.length === count) return out;
  }

  const eligible = pool.items.filter(eligibleId);
  if (eligible.length < count) throw new NotEnoughItemsError(pool.domain, eligible.length, count);
  for (let i = 0; i < count; i++) {
    const j = randomInt(input.rng, i, eligible.length - 1);
    const tmp = eligible[i];
    eligible[i] = eligible[j];
    eligible[j] = tmp;
  }
  return eligible.slice(0, count);
}

/** The target and its negatives in a seeded random order (the answer's position carries no signal). */
export function shuffleCandidates(target: string, negatives: readonly string[], rng: Rng): string[] {
  return shuffleInPlace([target, ...negatives], rng);
}

/** Negatives then shuffled candidates, both from the same generator. */
export function sampleCandidates(input: NegativeSamplingInput): {
  negatives: string[];
  candidates: string[];
} {
  const negatives = sampleNegatives(input);
  return { negatives, candidates: shuffleCandidates(input.target, negatives, input.rng) };
}
