import { RandomGenerator, unsafeUniformIntDistribution, xoroshiro128plus } from 'pure-rand';
import type { InteractionEvent, ItemEvent } from '@cprec/contracts';
import { eventId } from '../event-id';
import type { Dataset } from '../model';
import { DOMAIN_VOCABULARIES, THEMES } from './vocabulary';

const MINUTE_MS = 60_000;
const DAY_MS = 86_400_000;

export interface SyntheticConfig {
  seed: number;
  users: number;
  /** Domains from `SYNTHETIC_DOMAINS` (games, beauty, books, toys, sports). */
  domains: readonly string[];
  /** Latent topics K (at most `THEMES.length`); topic k means the same theme in every domain. */
  topics: number;
  itemsPerDomain: number;
  /** Mean interactions per user over all domains (actual: uniform in [max(5, m/2), 3m/2]). */
  eventsPerUser: number;
  /** Probability that a user is active in a given domain (at least one domain always). */
  domainActivity: number;
  /**
   * 0..1: how much a user's per-domain taste follows their shared global taste. 1 = identical
   * topic preferences in every domain; 0 = independent tastes per domain (no cross-domain signal).
   */
  crossDomainStrength: number;
  /** Zipf exponent of item popularity inside a topic (rank r has weight 1/(r+1)^s). */
  zipfExponent: number;
  startMs: number;
  /** Users start within the first half of the span; their sessions spread over the whole span. */
  spanDays: number;
  /** From this time on, every user's tastes rotate by `driftShift` topics; null = no drift. */
  driftAtMs: number | null;
  driftShift: number;
  /** Goes into event ids; default `synthetic-<seed>`. */
  dataset?: string;
}

export const DEFAULT_SYNTHETIC_CONFIG: SyntheticConfig = {
  seed: 42,
  users: 1000,
  domains: ['games', 'beauty', 'books'],
  topics: 6,
  itemsPerDomain: 240,
  eventsPerUser: 20,
  domainActivity: 0.75,
  crossDomainStrength: 0.8,
  zipfExponent: 1,
  startMs: Date.UTC(2023, 0, 1),
  spanDays: 180,
  driftAtMs: null,
  driftShift: 1,
};

/** Where the synthetic behaviour comes from, so tests can check that a model recovers it. */
export interface SyntheticGroundTruth {
  readonly topics: number;
  readonly topicNames: readonly string[];
  readonly driftAtMs: number | null;
  /** Latent topic of an item (`null` for an unknown id). */
  itemTopic(domain: string, itemId: string): number | null;
  /** The user's shared taste over topics (sums to 1). */
  globalTaste(userId: string): number[];
  /** The user's taste in a domain before drift or, with `after`, after drift (sums to 1). */
  domainTaste(userId: string, domain: string, phase?: 'before' | 'after'): number[];
  /** Domains the user is active in. */
  activeDomains(userId: string): string[];
  /** Most preferred topic of the user in a domain and phase. */
  topTopic(userId: string, domain: string, phase?: 'before' | 'after'): number;
}

export interface SyntheticDataset extends Dataset {
  readonly config: SyntheticConfig;
  readonly truth: SyntheticGroundTruth;
  readonly userIds: readonly string[];
  /** One user's events in time order (all domains, mixed). */
  userInteractions(userIndex: number): InteractionEvent[];
}

/** A float in [0, 1) from pure-rand's 31-bit integers (enough resolution for sampling). */
function nextFloat(rng: RandomGenerator): number {
  return unsafeUniformIntDistribution(0, 0x7fffffff, rng) / 0x80000000;
}

function nextInt(rng: RandomGenerator, min: number, max: number): number {
  return unsafeUniformIntDistribution(min, max, rng);
}

/** Independent, order-free streams: the rng of (seed, stream, index) never depends on other users. */
function streamRng(seed: number, stream: number, index: number): RandomGenerator {
  // A 32-bit integer hash (Murmur3 finaliser) keeps nearby indices uncorrelated.
  let h = (seed ^ Math.imul(stream + 1, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b)) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return xoroshiro128plus(h | 0);
}

function sampleIndex(cdf: Float64Array, u: number): number {
  let lo = 0;
  let hi = cdf.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (cdf[mid]! > u) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

function cumulative(weights: readonly number[]): Float64Array {
  const cdf = new Float64Array(weights.length);
  let total = 0;
  for (let i = 0; i < weights.length; i++) {
    total += weights[i]!;
    cdf[i] = total;
  }
  for (let i = 0; i < cdf.length; i++) cdf[i]! /= total;
  return cdf;
}

/** A peaked taste: most weight on one topic, some on a second, a little everywhere. */
function peakedTaste(rng: RandomGenerator, k: number): number[] {
  const taste = new Array<number>(k).fill(0.15 / k);
  const primary = nextInt(rng, 0, k - 1);
  const secondary = k > 1 ? (primary + nextInt(rng, 1, k - 1)) % k : primary;
  taste[primary]! += 0.6;
  taste[secondary]! += 0.25;
  const sum = taste.reduce((a, b) => a + b, 0);
  return taste.map((w) => w / sum);
}

interface DomainCatalogue {
  domain: string;
  itemIds: string[];
  titles: string[];
  topicOf: number[];
  /** Item indices per topic, most popular first, and their Zipf CDF. */
  byTopic: { items: number[]; cdf: Float64Array }[];
}

interface UserProfile {
  global: number[];
  active: string[];
  before: Map<string, number[]>;
}

const STREAM_ITEMS = 1;
const STREAM_USERS = 2;
const STREAM_EVENTS = 3;

/**
 * Seeded multi-domain behaviour (same config → byte-identical events):
 * - K latent topics, each a theme shared by all domains; item j of a domain has topic j mod K and
 *   popularity rank ⌊j/K⌋ inside its topic (Zipf);
 * - each user has a global taste over topics and, per domain, a taste mixing it with a private one
 *   (`crossDomainStrength`), so a user's preferences in one domain predict the others;
 * - behaviour comes in sessions (1-5 items of one domain a few minutes apart, days between
 *   sessions); each item: topic ~ the user's current taste, item ~ Zipf within the topic, avoiding
 *   repeats where possible;
 * - optional drift: from `driftAtMs` on, taste rotates (weight of topic k moves to k + shift).
 */
export function syntheticDataset(overrides: Partial<SyntheticConfig> = {}): SyntheticDataset {
  const config: SyntheticConfig = { ...DEFAULT_SYNTHETIC_CONFIG, ...overrides };
  validate(config);
  const dataset = config.dataset ?? `synthetic-${config.seed}`;
  const k = config.topics;
  const catalogues = new Map(config.domains.map((domain, d) => [domain, buildCatalogue(config, domain, d)]));
  const userIds = Array.from({ length: config.users }, (_, u) => `syn-u${String(u).padStart(6, '0')}`);
  const userIndex = new Map(userIds.map((id, u) => [id, u]));
  const profiles = new Map<number, UserProfile>();

  function profile(u: number): UserProfile {
    const cached = profiles.get(u);
    if (cached) return cached;
    const rng = streamRng(config.seed, STREAM_USERS, u);
    const global = peakedTaste(rng, k);
    const before = new Map<string, number[]>();
    const active: string[] = [];
    for (const domain of config.domains) {
      const own = peakedTaste(rng, k);
      const s = config.crossDomainStrength;
      before.set(
        domain,
        global.map((g, t) => s * g + (1 - s) * own[t]!),
      );
      if (nextFloat(rng) < config.domainActivity) active.push(domain);
    }
    if (active.length === 0) active.push(config.domains[nextInt(rng, 0, config.domains.length - 1)]!);
    const result = { global, active, before };
    if (profiles.size < 100_000) profiles.set(u, result); // cache bounded: profiles are cheap to recompute
    return result;
  }

  const rotate = (taste: readonly number[]): number[] =>
    taste.map((_, t) => taste[(((t - config.driftShift) % k) + k) % k]!);

  function tasteAt(p: UserProfile, domain: string, ts: number): number[] {
    const before = p.before.get(domain)!;
    return config.driftAtMs !== null && ts >= config.driftAtMs ? rotate(before) : before;
  }

  function userInteractions(u: number): InteractionEvent[] {
    const p = profile(u);
    const rng = streamRng(config.seed, STREAM_EVENTS, u);
    const mean = config.eventsPerUser;
    const count = nextInt(rng, Math.max(5, Math.round(mean / 2)), Math.max(5, Math.round((3 * mean) / 2)));
    const expectedSessions = count / 3;
    const meanGapMs = ((config.spanDays * DAY_MS) / 2 / Math.max(1, expectedSessions)) | 0;
    let ts = config.startMs + Math.floor(nextFloat(rng) * (config.spanDays / 2) * DAY_MS);
    const seen = new Set<string>();
    const events: InteractionEvent[] = [];
    const userId = userIds[u]!;
    while (events.length < count) {
      const domain = p.active[nextInt(rng, 0, p.active.length - 1)]!;
      const catalogue = catalogues.get(domain)!;
      const sessionLength = Math.min(nextInt(rng, 1, 5), count - events.length);
      for (let i = 0; i < sessionLength; i++) {
        const topic = sampleIndex(cumulative(tasteAt(p, domain, ts)), nextFloat(rng));
        const { items, cdf } = catalogue.byTopic[topic]!;
        let item = items[sampleIndex(cdf, nextFloat(rng))]!;
        for (let attempt = 0; attempt < 5 && seen.has(`${domain}/${item}`); attempt++) {
          item = items[sampleIndex(cdf, nextFloat(rng))]!;
        }
        seen.add(`${domain}/${item}`);
        const itemId = catalogue.itemIds[item]!;
        events.push({ event_id: '', user_id: userId, item_id: itemId, domain, ts });
        ts += MINUTE_MS / 2 + Math.floor(nextFloat(rng) * 10 * MINUTE_MS);
      }
      // Exponential gap between sessions (memoryless arrivals), at least an hour.
      ts += Math.max(60 * MINUTE_MS, Math.floor(-Math.log(1 - nextFloat(rng)) * meanGapMs));
    }
    return events;
  }

  async function* interactions(): AsyncGenerator<InteractionEvent> {
    let seq = 0;
    for (let u = 0; u < config.users; u++) {
      for (const event of userInteractions(u)) {
        event.seq = seq;
        event.event_id = eventId(dataset, event.user_id, event.item_id, event.ts, seq);
        seq++;
        yield event;
      }
    }
  }

  async function* items(): AsyncGenerator<ItemEvent> {
    for (const catalogue of catalogues.values()) {
      for (let j = 0; j < catalogue.itemIds.length; j++) {
        yield {
          item_id: catalogue.itemIds[j]!,
          domain: catalogue.domain,
          title: catalogue.titles[j]!,
          attributes: { topic: THEMES[catalogue.topicOf[j]!]!.name },
          ts: config.startMs,
        };
      }
    }
  }

  const indexOf = (userId: string): number => {
    const u = userIndex.get(userId);
    if (u === undefined) throw new Error(`unknown synthetic user '${userId}'`);
    return u;
  };
  const argmax = (values: readonly number[]): number =>
    values.reduce((best, v, i) => (v > values[best]! ? i : best), 0);
  const truth: SyntheticGroundTruth = {
    topics: k,
    topicNames: THEMES.slice(0, k).map((t) => t.name),
    driftAtMs: config.driftAtMs,
    itemTopic: (domain, itemId) => {
      const catalogue = catalogues.get(domain);
      const j = catalogue ? catalogue.itemIds.indexOf(itemId) : -1;
      return catalogue && j >= 0 ? catalogue.topicOf[j]! : null;
    },
    globalTaste: (userId) => [...profile(indexOf(userId)).global],
    domainTaste: (userId, domain, phase = 'before') => {
      const before = profile(indexOf(userId)).before.get(domain);
      if (!before) throw new Error(`unknown synthetic domain '${domain}'`);
      return phase === 'after' ? rotate(before) : [...before];
    },
    activeDomains: (userId) => [...profile(indexOf(userId)).active],
    topTopic: (userId, domain, phase = 'before') => argmax(truth.domainTaste(userId, domain, phase)),
  };

  return {
    name: dataset,
    format: 'synthetic',
    config,
    truth,
    userIds,
    userInteractions,
    items,
    interactions,
  };
}

function validate(config: SyntheticConfig): void {
  const problems: string[] = [];
  if (!Number.isInteger(config.seed)) problems.push('seed must be an integer');
  if (!Number.isInteger(config.users) || config.users < 1) problems.push('users must be a positive integer');
  if (!Number.isInteger(config.topics) || config.topics < 1 || config.topics > THEMES.length)
    problems.push(`topics must be 1..${THEMES.length}`);
  if (config.domains.length === 0) problems.push('at least one domain is needed');
  for (const d of config.domains)
    if (!DOMAIN_VOCABULARIES[d])
      problems.push(`unknown domain '${d}' (known: ${Object.keys(DOMAIN_VOCABULARIES).join(', ')})`);
  if (!Number.isInteger(config.itemsPerDomain) || config.itemsPerDomain < config.topics)
    problems.push('itemsPerDomain must be an integer ≥ topics');
  if (!(config.eventsPerUser >= 1)) problems.push('eventsPerUser must be ≥ 1');
  if (!(config.crossDomainStrength >= 0 && config.crossDomainStrength <= 1))
    problems.push('crossDomainStrength must be in [0, 1]');
  if (!(config.domainActivity > 0 && config.domainActivity <= 1))
    problems.push('domainActivity must be in (0, 1]');
  if (!(config.spanDays > 0)) problems.push('spanDays must be > 0');
  if (problems.length > 0) throw new Error(`invalid synthetic config: ${problems.join('; ')}`);
}

function buildCatalogue(config: SyntheticConfig, domain: string, domainIndex: number): DomainCatalogue {
  const vocabulary = DOMAIN_VOCABULARIES[domain]!;
  const rng = streamRng(config.seed, STREAM_ITEMS, domainIndex);
  const k = config.topics;
  const itemIds: string[] = [];
  const titles: string[] = [];
  const topicOf: number[] = [];
  const used = new Set<string>();
  for (let j = 0; j < config.itemsPerDomain; j++) {
    const topic = j % k;
    const theme = THEMES[topic]!;
    const pick = <T>(list: readonly T[]): T => list[nextInt(rng, 0, list.length - 1)]!;
    let title = vocabulary.template(pick(theme.adjectives), pick(theme.nouns), pick(vocabulary.products));
    // 360 combinations per theme and domain; larger catalogues get numbered editions.
    for (let edition = 2; used.has(title); edition++)
      title = `${title.replace(/ \(Edition \d+\)$/u, '')} (Edition ${edition})`;
    used.add(title);
    itemIds.push(`${domain}-${String(j).padStart(5, '0')}`);
    titles.push(title);
    topicOf.push(topic);
  }
  const byTopic = Array.from({ length: k }, (_, t) => {
    const items = topicOf.flatMap((topic, j) => (topic === t ? [j] : []));
    return { items, cdf: cumulative(items.map((_, rank) => 1 / Math.pow(rank + 1, config.zipfExponent))) };
  });
  return { domain, itemIds, titles, topicOf, byTopic };
}
