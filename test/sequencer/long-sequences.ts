import { InteractionRecord } from '@cprec/clickhouse';
import { createRng, randomInt, shuffleInPlace } from '@cprec/corpus';

/**
 * Generated behaviour with very long sequences, for the corpus-slice tests and the memory
 * measurement in docs/sequencer.md (test/sequencer/slice-memory.ts). Nothing here is real data.
 */

/** One user: how many items of each domain; the domains are interleaved at random in time. */
export interface UserSpec {
  userId: string;
  perDomain: Readonly<Record<string, number>>;
}

/**
 * One interaction per item of every user: event ids `<user>-<i>`, strictly increasing
 * timestamps per user (1 s apart), items drawn from `itemsPerDomain` ids per domain (repeats
 * happen, as in real histories). Deterministic for a seed.
 */
export function generateInteractions(
  users: readonly UserSpec[],
  seed: number,
  itemsPerDomain = 500,
): InteractionRecord[] {
  const rng = createRng(seed);
  const out: InteractionRecord[] = [];
  for (const user of users) {
    const domains: string[] = [];
    for (const [domain, n] of Object.entries(user.perDomain))
      for (let i = 0; i < n; i++) domains.push(domain);
    shuffleInPlace(domains, rng);
    domains.forEach((domain, i) =>
      out.push({
        event_id: `${user.userId}-${i}`,
        user_id: user.userId,
        item_id: `i${randomInt(rng, 0, itemsPerDomain - 1)}`,
        domain,
        ts_ms: 1_000_000 + 1000 * i,
        seq: 0,
      }),
    );
  }
  return out;
}

/** `count` users with minLength..maxLength items spread at random over `domains`. */
export function randomUsers(
  prefix: string,
  count: number,
  lengths: { min: number; max: number },
  domains: readonly string[],
  seed: number,
): UserSpec[] {
  const rng = createRng(seed);
  return Array.from({ length: count }, (_, u) => {
    const perDomain: Record<string, number> = {};
    const n = randomInt(rng, lengths.min, lengths.max);
    for (let i = 0; i < n; i++) {
      const d = domains[randomInt(rng, 0, domains.length - 1)];
      perDomain[d] = (perDomain[d] ?? 0) + 1;
    }
    return { userId: `${prefix}${u}`, perDomain };
  });
}
