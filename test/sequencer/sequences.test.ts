import {
  ClickHouse,
  clickHouseSettingsFromEnv,
  createClickHouse,
  CorpusSample,
  ident,
  InteractionRecord,
  InteractionRepository,
  ItemRepository,
  runMigrations,
  SequenceRepository,
  SequenceStore,
  sql,
  StoredSequence,
} from '@cprec/clickhouse';
import {
  createRng,
  DomainSequenceBuilder,
  domainSamples,
  hasValidMixedSequence,
  Interaction,
  MixedSequenceBuilder,
  mixedSamples,
  randomInt,
  SequenceSample,
} from '@cprec/corpus';
import { requireInfra, uniqueName } from '../support/infra';

/**
 * Sequences and samples in ClickHouse against the pure libs/corpus builders. Ingest times are
 * given explicitly (insertBatch's ingestedAtMs) and rebuilds run with a zero safety margin, so
 * watermarks are exact and the test needs no waiting.
 */

const database = uniqueName('cprec_it_seq');
const settings = { ...clickHouseSettingsFromEnv(), database };
let ch: ClickHouse;
let interactions: InteractionRepository;
let store: SequenceStore;
let repo: SequenceRepository;

const NOW = 4_000_000_000_000; // "now" for rebuilds: far after every synthetic ingest time
const rebuild = (full = false) => store.rebuild({ safetyMarginMs: 0, nowMs: NOW, full });

beforeAll(async () => {
  await requireInfra({ clickhouse: true });
  await runMigrations(settings);
  ch = createClickHouse(settings);
  interactions = new InteractionRepository(ch);
  store = new SequenceStore(ch);
  repo = new SequenceRepository(ch);
});

afterAll(async () => {
  if (ch) {
    await ch.command(sql`DROP DATABASE IF EXISTS ${ident(database)}`);
    await ch.close();
  }
});

async function reset(): Promise<void> {
  for (const table of [
    'interactions',
    'items',
    'domain_sequences',
    'mixed_sequences',
    'sequencer_watermarks',
  ]) {
    await ch.command(sql`TRUNCATE TABLE ${ident(table)}`);
  }
}

const toInteraction = (r: InteractionRecord): Interaction => ({
  eventId: r.event_id,
  userId: r.user_id,
  itemId: r.item_id,
  domain: r.domain,
  tsMs: r.ts_ms,
  seq: r.seq ?? 0,
});

/** A stored sequence as comparable data (everything but the rebuild version). */
const shape = (s: StoredSequence) => ({
  user: s.userId,
  domain: s.domain ?? null,
  domains: s.domains,
  items: s.itemIds,
  ts: s.tsMs,
  seqs: s.seqs,
  events: s.eventIds,
  ingested: s.ingestedMs,
});

const pureShape = (
  userId: string,
  domain: string | null,
  items: readonly Interaction[],
  ingested: Map<string, number>,
) => ({
  user: userId,
  domain,
  domains: items.map((i) => i.domain),
  items: items.map((i) => i.itemId),
  ts: items.map((i) => i.tsMs),
  seqs: items.map((i) => i.seq),
  events: items.map((i) => i.eventId),
  ingested: items.map((i) => ingested.get(i.eventId) ?? -1),
});

describe('sequences in ClickHouse', () => {
  beforeEach(reset);

  it('orders by timestamp, then seq, then event id, and drops exact duplicates', async () => {
    const e = (
      event_id: string,
      item_id: string,
      ts_ms: number,
      seq: number,
      domain = 'toy',
    ): InteractionRecord => ({
      event_id,
      user_id: 'alice',
      item_id,
      domain,
      ts_ms,
      seq,
    });
    await interactions.insertBatch(
      [
        e('e5', 'late', 3000, 0),
        e('e2', 'b', 2000, 7),
        e('e1', 'a', 2000, 3), // same ts: lower seq first
        e('e4', 'd', 2000, 7), // same ts and seq as e2: event id decides (e2 < e4)
        e('e0', 'first', 1000, 99),
        e('e9', 'a', 2000, 8), // same user, item, ts as e1: exact duplicate, e1 is smaller and kept
        e('e3', 'a', 2500, 0), // same item at another time: a repeat, kept
      ],
      1000,
    );
    // A redelivery of e2 (same event id) collapses; it carries its latest ingest time (what a
    // merge of the ReplacingMergeTree keeps), before and after the merge.
    await interactions.insertBatch([e('e2', 'b', 2000, 7)], 5000);
    await rebuild();
    const [seq] = await store.readDomainSequences('toy');
    expect(seq.itemIds).toEqual(['first', 'a', 'b', 'd', 'a', 'late']);
    expect(seq.eventIds).toEqual(['e0', 'e1', 'e2', 'e4', 'e3', 'e5']);
    expect(seq.ingestedMs).toEqual([1000, 1000, 5000, 1000, 1000, 1000]);
    await ch.command(sql`OPTIMIZE TABLE interactions FINAL`);
    await rebuild(true);
    expect((await store.readDomainSequences('toy'))[0].ingestedMs).toEqual(seq.ingestedMs);

    // A smaller copy of a duplicate arriving later replaces the kept one (libs/corpus rule).
    await interactions.insertBatch([e('e0a', 'a', 2000, 1)], 6000);
    await rebuild();
    const [after] = await store.readDomainSequences('toy');
    expect(after.eventIds).toEqual(['e0', 'e0a', 'e2', 'e4', 'e3', 'e5']);
    expect(after.ingestedMs[1]).toBe(6000);
  });

  it('interleaves domains in the mixed sequence exactly by time', async () => {
    const e = (
      event_id: string,
      domain: string,
      item_id: string,
      ts_ms: number,
      seq = 0,
    ): InteractionRecord => ({
      event_id,
      user_id: 'bob',
      item_id,
      domain,
      ts_ms,
      seq,
    });
    await interactions.insertBatch(
      [
        e('x1', 'beauty', 'lipstick', 100),
        e('x2', 'toy', 'lego', 200),
        e('x3', 'beauty', 'mascara', 300),
        e('x4', 'sport', 'ball', 300, 1), // same ms as x3: seq 0 < 1
        e('x5', 'toy', 'lego', 400), // the same id in another domain would be another item
        e('x6', 'sport', 'lego', 50),
      ],
      1000,
    );
    await rebuild();
    const [mixed] = await store.readMixedSequences();
    expect(mixed.itemIds).toEqual(['lego', 'lipstick', 'lego', 'mascara', 'ball', 'lego']);
    expect(mixed.domains).toEqual(['sport', 'beauty', 'toy', 'beauty', 'sport', 'toy']);
    const domains = await store.readDomainSequences();
    expect(domains.map((s) => [s.domain, s.itemIds])).toEqual([
      ['beauty', ['lipstick', 'mascara']],
      ['sport', ['lego', 'ball']],
      ['toy', ['lego', 'lego']],
    ]);
  });

  it('incremental rebuilds equal a full rebuild and the pure builders on a seeded random stream', async () => {
    const rng = createRng(20240607);
    const domains = ['beauty', 'toy', 'sport'];
    const batches: InteractionRecord[][] = [];
    const all: InteractionRecord[] = [];
    let id = 0;
    for (let b = 0; b < 5; b++) {
      const batch: InteractionRecord[] = [];
      for (let k = 0; k < 300; k++) {
        const r = randomInt(rng, 0, 99);
        if (r < 8 && all.length > 0) {
          // redelivery of an earlier event (same id), or an exact duplicate under a new id
          const old = all[randomInt(rng, 0, all.length - 1)];
          batch.push(r < 4 ? old : { ...old, event_id: `ev${id++}`, seq: randomInt(rng, 0, 3) });
          continue;
        }
        batch.push({
          event_id: `ev${id++}`,
          user_id: `u${randomInt(rng, 0, 39)}`,
          item_id: `i${randomInt(rng, 0, 29)}`,
          domain: domains[randomInt(rng, 0, 2)],
          // day-resolution timestamps (ties) and later batches reaching back in time (late events)
          ts_ms: 86_400_000 * randomInt(rng, 0, 10 + b * 5),
          seq: randomInt(rng, 0, 3),
        });
      }
      batches.push(batch);
      all.push(...batch);
    }
    const lastIngest = new Map<string, number>();
    for (let b = 0; b < batches.length; b++) {
      const ingestedAt = 10_000 * (b + 1);
      for (const r of batches[b]) lastIngest.set(r.event_id, ingestedAt);
      // Two inserts per batch: parts that are not merged yet, as in production.
      const half = Math.floor(batches[b].length / 2);
      await interactions.insertBatch(batches[b].slice(0, half), ingestedAt);
      await interactions.insertBatch(batches[b].slice(half), ingestedAt);
      const result = await rebuild();
      expect(result.fullRebuild).toBe(b === 0);
      expect(result.watermarkMs).toBe(ingestedAt);
      if (b > 0)
        expect(result.usersRebuilt).toBeLessThanOrEqual(new Set(batches[b].map((r) => r.user_id)).size);
    }
    const incrementalDomain = (await store.readDomainSequences()).map(shape);
    const incrementalMixed = (await store.readMixedSequences()).map(shape);
    const full = await rebuild(true);
    expect(full.fullRebuild).toBe(true);
    expect((await store.readDomainSequences()).map(shape)).toEqual(incrementalDomain);
    expect((await store.readMixedSequences()).map(shape)).toEqual(incrementalMixed);

    const domainBuilder = new DomainSequenceBuilder();
    const mixedBuilder = new MixedSequenceBuilder();
    domainBuilder.add(all.map(toInteraction));
    mixedBuilder.add(all.map(toInteraction));
    const pureDomain = [...domainBuilder.sequences()]
      .map((s) => pureShape(s.userId, s.domain, s.items, lastIngest))
      .sort((a, b) => (a.domain! + '\u0000' + a.user < b.domain! + '\u0000' + b.user ? -1 : 1));
    const pureMixed = [...mixedBuilder.sequences()].map((s) =>
      pureShape(s.userId, null, s.items, lastIngest),
    );
    expect(incrementalDomain).toEqual(pureDomain);
    expect(incrementalMixed).toEqual(pureMixed);

    // Samples: SQL equals libs/corpus on the same sequences, for all and for "since watermark".
    const key = (userId: string, s: { history: ReadonlyArray<{ itemId: string }>; targetEvent: string }) =>
      `${userId}|${s.targetEvent}|${s.history.map((h) => h.itemId).join(',')}`;
    const fromSql = (samples: CorpusSample[]) =>
      samples.map((s) => key(s.userId, { history: s.history, targetEvent: s.target.eventId })).sort();
    const fromPure = (samples: SequenceSample[]) =>
      samples.map((s) => key(s.userId, { history: s.history, targetEvent: s.target.eventId })).sort();
    const collect = async (it: AsyncIterable<CorpusSample>) => {
      const out: CorpusSample[] = [];
      for await (const s of it) out.push(s);
      return out;
    };
    const watermark = 30_000;
    const newSince = (i: Interaction) => (lastIngest.get(i.eventId) ?? 0) > watermark;
    for (const historyCap of [3, 10]) {
      const pure = [...domainBuilder.sequences()].flatMap((s) => [...domainSamples(s, { historyCap })]);
      const sqlSamples = await collect(repo.streamDomainSamples({ historyCap, withTitles: false }));
      expect(sqlSamples.length).toBeGreaterThan(100);
      expect(fromSql(sqlSamples)).toEqual(fromPure(pure));
      expect(await repo.countDomainSamples({ historyCap })).toBe(pure.length);
    }
    const pureNewDomain = [...domainBuilder.sequences()].flatMap((s) => [
      ...domainSamples(s, { targetFilter: newSince }),
    ]);
    const sqlNewDomain = await collect(
      repo.streamDomainSamples({ sinceWatermark: watermark, withTitles: false }),
    );
    expect(sqlNewDomain.length).toBeGreaterThan(0);
    expect(fromSql(sqlNewDomain)).toEqual(fromPure(pureNewDomain));
    expect(sqlNewDomain.every((s) => s.target.ingestedMs > watermark && !s.replay)).toBe(true);

    for (const windowSize of [4, 20]) {
      const pure = [...mixedBuilder.sequences()].flatMap((s) => [...mixedSamples(s, { windowSize })]);
      const sqlSamples = await collect(repo.streamMixedSamples({ windowSize, withTitles: false }));
      expect(sqlSamples.length).toBeGreaterThan(50);
      expect(fromSql(sqlSamples)).toEqual(fromPure(pure));
      const validUsers = [...mixedBuilder.sequences()].filter((s) =>
        hasValidMixedSequence(s, windowSize),
      ).length;
      expect(await repo.countUsersWithValidMixedSequence({ windowSize })).toBe(validUsers);
    }
    // Mixed sequences restricted to two domains: the third domain's items are removed first.
    const twoDomains = new MixedSequenceBuilder();
    twoDomains.add(all.map(toInteraction).filter((i) => i.domain !== 'sport'));
    const pureTwo = [...twoDomains.sequences()].flatMap((s) => [
      ...mixedSamples(s, { targetFilter: newSince }),
    ]);
    const sqlTwo = await collect(
      repo.streamMixedSamples({ domains: ['beauty', 'toy'], sinceWatermark: watermark, withTitles: false }),
    );
    expect(sqlTwo.length).toBeGreaterThan(0);
    expect(fromSql(sqlTwo)).toEqual(fromPure(pureTwo));
  });

  it('streams samples in a seeded, resumable order with titles and a deterministic replay subset', async () => {
    const records: InteractionRecord[] = [];
    for (let u = 0; u < 30; u++) {
      for (let k = 0; k < 6; k++) {
        records.push({
          event_id: `s${u}-${k}`,
          user_id: `user${u}`,
          item_id: `it${(u + k) % 12}`,
          domain: k % 2 === 0 ? 'beauty' : 'toy',
          ts_ms: 1_000 * (k + 1),
          seq: k,
        });
      }
    }
    await interactions.insertBatch(
      records.filter((r) => !r.event_id.endsWith('-5')),
      100,
    );
    await interactions.insertBatch(
      records.filter((r) => r.event_id.endsWith('-5')),
      200,
    );
    const items = new ItemRepository(ch);
    await items.upsertBatch(
      ['beauty', 'toy'].flatMap((domain) =>
        Array.from({ length: 12 }, (_, i) => ({
          item_id: `it${i}`,
          domain,
          title: `${domain} title ${i}`,
          updated_at_ms: 1,
        })),
      ),
    );
    await rebuild();
    const collect = async (it: AsyncIterable<CorpusSample>) => {
      const out: CorpusSample[] = [];
      for await (const s of it) out.push(s);
      return out;
    };
    const order = (samples: CorpusSample[]) => samples.map((s) => s.target.eventId);
    const a = await collect(repo.streamDomainSamples({ seed: 7, batchSize: 7 }));
    const b = await collect(repo.streamDomainSamples({ seed: 7 }));
    const c = await collect(repo.streamDomainSamples({ seed: 8 }));
    expect(a.length).toBe(30 * 4); // per (user, domain) 3 items: 2 targets each
    expect(order(b)).toEqual(order(a));
    expect(order(c)).not.toEqual(order(a));
    expect(order(c).slice().sort()).toEqual(order(a).slice().sort());
    expect(a.map((s) => s.position)).toEqual(a.map((_, i) => i));
    const resumed = await collect(repo.streamDomainSamples({ seed: 7, from: 50, limit: 20 }));
    expect(order(resumed)).toEqual(order(a).slice(50, 70));
    expect(resumed[0].position).toBe(50);
    for (const s of a) {
      expect(s.target.title).toBe(`${s.domain} title ${s.target.itemId.slice(2)}`);
      for (const h of s.history) expect(h.title).toBe(`${h.domain} title ${h.itemId.slice(2)}`);
    }

    // New since watermark 100: only the targets of the second insert.
    const fresh = await collect(repo.streamDomainSamples({ seed: 7, sinceWatermark: 100 }));
    expect(fresh.map((s) => s.target.eventId).sort()).toEqual(
      records
        .filter((r) => r.event_id.endsWith('-5'))
        .map((r) => r.event_id)
        .sort(),
    );
    const withReplay = await collect(
      repo.streamDomainSamples({ seed: 7, sinceWatermark: 100, replayFraction: 0.5 }),
    );
    const replayed = withReplay.filter((s) => s.replay);
    expect(replayed.length).toBeGreaterThan(10);
    expect(replayed.length).toBeLessThan(80);
    expect(replayed.every((s) => s.target.ingestedMs <= 100)).toBe(true);
    expect(withReplay.filter((s) => !s.replay).length).toBe(fresh.length);
    const again = await collect(
      repo.streamDomainSamples({ seed: 7, sinceWatermark: 100, replayFraction: 0.5 }),
    );
    expect(order(again)).toEqual(order(withReplay));
    expect(await repo.countDomainSamples({ seed: 7, sinceWatermark: 100, replayFraction: 0.5 })).toBe(
      withReplay.length,
    );
    const all = await collect(repo.streamDomainSamples({ seed: 7, sinceWatermark: 100, replayFraction: 1 }));
    expect(all.length).toBe(a.length);

    // Leaving a stream early aborts the query; the repository stays usable.
    let seen = 0;
    for await (const s of repo.streamMixedSamples({ seed: 1 })) {
      expect(s.history.length).toBeGreaterThan(0);
      if (++seen === 3) break;
    }
    expect(await repo.countMixedSamples()).toBeGreaterThan(3);
  });

  it('publishes per-domain deltas between watermarks', async () => {
    const r = (event_id: string, user_id: string, domain: string, ts_ms: number): InteractionRecord => ({
      event_id,
      user_id,
      item_id: `item-${event_id}`,
      domain,
      ts_ms,
    });
    await interactions.insertBatch(
      [r('a1', 'u1', 'toy', 1), r('a2', 'u1', 'toy', 2), r('a3', 'u2', 'beauty', 1)],
      100,
    );
    const first = await rebuild();
    await interactions.insertBatch(
      [r('b1', 'u1', 'toy', 3), r('b2', 'u3', 'toy', 1), r('a3', 'u2', 'beauty', 1)],
      200,
    );
    const second = await rebuild();
    expect(second.previousWatermarkMs).toBe(first.watermarkMs);
    expect(second.usersRebuilt).toBe(3); // u1, u3 and u2 (a redelivery touches its user)
    const deltas = await store.domainDeltas(second.previousWatermarkMs, second.watermarkMs);
    expect(deltas).toEqual([
      { domain: 'beauty', newInteractions: 1, newUsers: 1, totalInteractions: 1 }, // the redelivery
      { domain: 'toy', newInteractions: 2, newUsers: 2, totalInteractions: 4 },
    ]);
    const latest = await store.latestWatermark();
    expect(latest?.watermarkMs).toBe(200);
    expect(latest?.version).toBe(second.version);
  });
});
