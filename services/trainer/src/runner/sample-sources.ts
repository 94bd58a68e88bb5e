import {
  ClickHouse,
  CorpusSample,
  DomainSampleQuery,
  ident,
  ITEMS_TABLE,
  MixedSampleQuery,
  SequenceRepository,
  sql,
} from '@cprec/clickhouse';
import {
  createRng,
  deriveSeed,
  ItemPool,
  sampleCandidates,
  type PromptItem,
  type SampleItems,
} from '@cprec/corpus';
import type { SampleSource } from '@cprec/training';

/**
 * Turns a corpus sample (history + target) into CPT prompt items: candidates are the target
 * plus negatives drawn from the target's domain with a seed derived from the sample's identity,
 * so the same sample gets the same candidates in every run — a resumed round sees exactly the
 * prompts it would have seen.
 */
export class CandidateMaker {
  constructor(
    private readonly pools: ReadonlyMap<string, ItemPool>,
    private readonly titles: ReadonlyMap<string, string>,
    private readonly negatives: number,
    private readonly seed: number,
  ) {}

  private item(domain: string, itemId: string, title: string): PromptItem {
    return { itemId, title: title || this.titles.get(`${domain}\u0000${itemId}`) || itemId };
  }

  toItems(sample: CorpusSample): SampleItems {
    const { target } = sample;
    const pool = this.pools.get(target.domain);
    const userItems = sample.history.filter((h) => h.domain === target.domain).map((h) => h.itemId);
    const available = pool
      ? pool.size - new Set([...userItems, target.itemId].filter((id) => pool.has(id))).size
      : 0;
    const count = Math.max(0, Math.min(this.negatives, available));
    const rng = createRng(deriveSeed(this.seed, sample.userId, target.eventId));
    const candidateIds =
      pool && count > 0
        ? sampleCandidates({ target: target.itemId, userItems, domainItems: pool, count, rng }).candidates
        : [target.itemId];
    const targetItem = this.item(target.domain, target.itemId, target.title);
    return {
      history: sample.history.map((h) => this.item(h.domain, h.itemId, h.title)),
      candidates: candidateIds.map((id) =>
        id === target.itemId ? targetItem : this.item(target.domain, id, ''),
      ),
      target: targetItem,
    };
  }
}

/**
 * A ClickHouse sample slice behind libs/training's SampleSource: the size is counted once when
 * the source is opened (the slice is fixed by its watermarks), `samples(from)` streams from the
 * `from`-th sample of the seeded order — the data position stored in checkpoints.
 */
export class ClickHouseSampleSource implements SampleSource {
  private constructor(
    private readonly stream: (from: number) => AsyncIterable<CorpusSample>,
    readonly size: number,
    private readonly maker: CandidateMaker,
  ) {}

  static async domain(
    repo: SequenceRepository,
    query: DomainSampleQuery,
    maker: CandidateMaker,
  ): Promise<ClickHouseSampleSource> {
    const size = await repo.countDomainSamples(query);
    return new ClickHouseSampleSource((from) => repo.streamDomainSamples({ ...query, from }), size, maker);
  }

  static async mixed(
    repo: SequenceRepository,
    query: MixedSampleQuery,
    maker: CandidateMaker,
  ): Promise<ClickHouseSampleSource> {
    const size = await repo.countMixedSamples(query);
    return new ClickHouseSampleSource((from) => repo.streamMixedSamples({ ...query, from }), size, maker);
  }

  async *samples(from: number): AsyncIterable<SampleItems> {
    if (from >= this.size) return;
    for await (const s of this.stream(from)) yield this.maker.toItems(s);
  }
}

/** Titled catalogue items per domain (for candidate pools and the tiny model's vocabulary). */
export async function catalogue(
  ch: ClickHouse,
  domains: readonly string[],
): Promise<{ pools: Map<string, ItemPool>; titles: Map<string, string> }> {
  const repo = new SequenceRepository(ch);
  const all =
    domains.length > 0
      ? [...domains]
      : (
          await ch.query<{ domain: string }>(
            sql`SELECT DISTINCT domain FROM ${ident(ITEMS_TABLE)} ORDER BY domain`,
          )
        ).map((r) => r.domain);
  const pools = new Map<string, ItemPool>();
  const titles = new Map<string, string>();
  for (const domain of all) {
    const items = await repo.domainItems(domain);
    pools.set(
      domain,
      new ItemPool(
        domain,
        items.map((i) => i.itemId),
      ),
    );
    for (const i of items) titles.set(`${domain}\u0000${i.itemId}`, i.title);
  }
  return { pools, titles };
}

const WORDS = [
  'red',
  'blue',
  'green',
  'fast',
  'slow',
  'game',
  'serum',
  'shirt',
  'toy',
  'car',
  'lamp',
  'book',
];

/** Titles of the synthetic corpus (also the tiny model's vocabulary in runner tests). */
export function syntheticTitles(): string[] {
  const out: string[] = [];
  for (const domain of ['beauty', 'games'])
    for (let i = 0; i < 12; i++) out.push(syntheticItem(domain, i).title);
  return out;
}

function syntheticItem(domain: string, i: number): PromptItem {
  return { itemId: `${domain}-${i}`, title: `${WORDS[i % 12]} ${WORDS[(i * 5 + 3) % 12]} ${domain}` };
}

/** Deterministic samples for runner tests: item k of a domain follows k-1 and k-2. */
export function syntheticSamples(count: number, seed: number, mixed: boolean): SampleItems[] {
  return Array.from({ length: count }, (_, n) => {
    const k = (n * 7 + seed) % 12;
    const domain = mixed ? (n % 2 === 0 ? 'beauty' : 'games') : 'beauty';
    const other = mixed ? (domain === 'beauty' ? 'games' : 'beauty') : domain;
    const target = syntheticItem(domain, k);
    return {
      history: [syntheticItem(other, (k + 10) % 12), syntheticItem(domain, (k + 11) % 12)],
      candidates: [syntheticItem(domain, (k + 4) % 12), target, syntheticItem(domain, (k + 7) % 12)],
      target,
    };
  });
}
