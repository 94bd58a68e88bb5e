import { InteractionEventSchema, ItemEventSchema } from '@cprec/contracts';
import type { InteractionEvent } from '@cprec/contracts';
import { syntheticDataset, SyntheticConfig, SyntheticDataset } from './generator';
import { THEMES } from './vocabulary';

async function collect<T>(stream: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const v of stream) out.push(v);
  return out;
}

const small: Partial<SyntheticConfig> = {
  seed: 7,
  users: 300,
  itemsPerDomain: 120,
  eventsPerUser: 30,
  domainActivity: 1,
};

/** Empirical most frequent topic of each (user, domain) among events passing `keep`. */
function empiricalTopTopics(
  ds: SyntheticDataset,
  events: InteractionEvent[],
  keep: (e: InteractionEvent) => boolean = () => true,
): Map<string, number> {
  const counts = new Map<string, number[]>();
  for (const e of events) {
    if (!keep(e)) continue;
    const key = `${e.user_id}|${e.domain}`;
    const row = counts.get(key) ?? new Array<number>(ds.truth.topics).fill(0);
    row[ds.truth.itemTopic(e.domain, e.item_id)!]!++;
    counts.set(key, row);
  }
  const top = new Map<string, number>();
  for (const [key, row] of counts)
    if (row.reduce((a, b) => a + b, 0) >= 6) top.set(key, row.indexOf(Math.max(...row)));
  return top;
}

function crossDomainAgreement(ds: SyntheticDataset, top: Map<string, number>): number {
  let agree = 0;
  let pairs = 0;
  for (const user of ds.userIds) {
    const a = top.get(`${user}|games`);
    const b = top.get(`${user}|beauty`);
    if (a === undefined || b === undefined) continue;
    pairs++;
    if (a === b) agree++;
  }
  expect(pairs).toBeGreaterThan(100);
  return agree / pairs;
}

describe('synthetic generator', () => {
  it('is deterministic for a seed and differs across seeds', async () => {
    const a = await collect(syntheticDataset(small).interactions());
    const b = await collect(syntheticDataset(small).interactions());
    const c = await collect(syntheticDataset({ ...small, seed: 8 }).interactions());
    expect(b).toEqual(a);
    expect(c.map((e) => e.item_id)).not.toEqual(a.map((e) => e.item_id));
    expect(new Set(a.map((e) => e.event_id)).size).toBe(a.length);
  });

  it('emits valid events in per-user time order with readable, topic-bearing titles', async () => {
    const ds = syntheticDataset(small);
    const events = await collect(ds.interactions());
    const items = await collect(ds.items());
    expect(items).toHaveLength(3 * 120);
    for (const item of items) {
      expect(ItemEventSchema.safeParse(item).success).toBe(true);
      const theme = THEMES[ds.truth.itemTopic(item.domain, item.item_id)!]!;
      expect(item.title.split(' ').some((w) => theme.adjectives.includes(w) || theme.nouns.includes(w))).toBe(
        true,
      );
      expect(item.attributes?.['topic']).toBe(theme.name);
    }
    expect(new Set(items.map((i) => `${i.domain}|${i.title}`)).size).toBe(items.length);
    const last = new Map<string, number>();
    for (const e of events) {
      expect(InteractionEventSchema.safeParse(e).success).toBe(true);
      expect(e.ts).toBeGreaterThan(last.get(e.user_id) ?? -1);
      last.set(e.user_id, e.ts);
    }
    expect(events.length / ds.config.users).toBeGreaterThan(20);
    expect(events.length / ds.config.users).toBeLessThan(40);
  });

  it('follows its ground truth: the empirical top topic of a user in a domain is the true one', async () => {
    const ds = syntheticDataset(small);
    const top = empiricalTopTopics(ds, await collect(ds.interactions()));
    let hits = 0;
    for (const [key, topic] of top) {
      const [user, domain] = key.split('|') as [string, string];
      if (ds.truth.topTopic(user, domain) === topic) hits++;
    }
    expect(top.size).toBeGreaterThan(300);
    expect(hits / top.size).toBeGreaterThan(0.8); // chance is 1/6
  });

  it('has popular items: within a topic the most popular item is chosen far more than the median one', async () => {
    const ds = syntheticDataset(small);
    const counts = new Map<string, number>();
    for (const e of await collect(ds.interactions())) counts.set(e.item_id, (counts.get(e.item_id) ?? 0) + 1);
    // Item j has topic j mod 6 and popularity rank ⌊j/6⌋: games-00000 is the head of topic 0.
    expect(counts.get('games-00000') ?? 0).toBeGreaterThan(5 * (counts.get('games-00060') ?? 0));
  });

  it('carries cross-domain signal that grows with crossDomainStrength', async () => {
    const strong = syntheticDataset({ ...small, crossDomainStrength: 0.9 });
    const none = syntheticDataset({ ...small, crossDomainStrength: 0 });
    const strongAgreement = crossDomainAgreement(
      strong,
      empiricalTopTopics(strong, await collect(strong.interactions())),
    );
    const noneAgreement = crossDomainAgreement(
      none,
      empiricalTopTopics(none, await collect(none.interactions())),
    );
    expect(strongAgreement).toBeGreaterThan(0.6); // chance is 1/6
    expect(noneAgreement).toBeLessThan(0.35);
  });

  it('drifts: after driftAtMs each user prefers the rotated topic', async () => {
    const start = Date.UTC(2023, 0, 1);
    const driftAtMs = start + 90 * 86_400_000;
    const ds = syntheticDataset({
      ...small,
      users: 200,
      eventsPerUser: 60,
      startMs: start,
      spanDays: 180,
      driftAtMs,
      driftShift: 2,
    });
    const events = await collect(ds.interactions());
    const before = empiricalTopTopics(ds, events, (e) => e.ts < driftAtMs);
    const after = empiricalTopTopics(ds, events, (e) => e.ts >= driftAtMs);
    let rotated = 0;
    let both = 0;
    for (const [key, topic] of after) {
      const earlier = before.get(key);
      if (earlier === undefined) continue;
      both++;
      if (topic === (earlier + 2) % ds.truth.topics) rotated++;
      const [user, domain] = key.split('|') as [string, string];
      expect(ds.truth.topTopic(user, domain, 'after')).toBe(
        (ds.truth.topTopic(user, domain, 'before') + 2) % ds.truth.topics,
      );
    }
    expect(both).toBeGreaterThan(100);
    expect(rotated / both).toBeGreaterThan(0.6);
  });

  it('rejects an impossible config with every problem named', () => {
    expect(() => syntheticDataset({ topics: 99, domains: ['cars'] })).toThrow(
      /topics must be 1\.\.8.*unknown domain 'cars'/,
    );
  });
});
