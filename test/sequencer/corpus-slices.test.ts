import { createClient } from '@clickhouse/client';
import {
  ClickHouse,
  clickHouseSettingsFromEnv,
  createClickHouse,
  CorpusSample,
  ident,
  InteractionRecord,
  InteractionRepository,
  runMigrations,
  SAMPLE_CHUNK_TARGETS,
  SequenceRepository,
  SequenceStore,
  sql,
} from '@cprec/clickhouse';
import {
  DomainSequenceBuilder,
  domainSamples,
  hasValidMixedSequence,
  Interaction,
  MixedSequenceBuilder,
  mixedSamples,
  SequenceSample,
} from '@cprec/corpus';
import { requireInfra, uniqueName } from '../support/infra';
import { generateInteractions, randomUsers, UserSpec } from './long-sequences';

/**
 * Sample slices on very long sequences. The queries cut each sequence into chunks of
 * SAMPLE_CHUNK_TARGETS targets (plus the history window before them) before joining positions,
 * so their memory no longer grows with the square of the longest sequence. Checked here: the
 * samples still equal the pure libs/corpus functions — every field, for sequence lengths on both
 * sides of chunk multiples and for history windows shorter than, equal to and longer than a
 * chunk — the stream order is the documented seeded hash order, and one query of each kind
 * passes under a per-query memory limit that the former quadratic queries exceeded several times
 * over.
 */

const C = SAMPLE_CHUNK_TARGETS;
const DOMAINS = ['beauty', 'toy', 'sport', 'book'];
/** Watermark between the two ingest batches. */
const SINCE = 10_000;
const NOW = 4_000_000_000_000;

/**
 * Long users (mixed sequences of 1,500–1,700 items) whose mixed and per-domain lengths sit on,
 * just below and just above multiples of the chunk size, plus many short users.
 */
const USERS: UserSpec[] = [
  // mixed 24C + 3; domains 13C, 6C + 1, 5C - 1, 3
  { userId: 'long-a', perDomain: { beauty: 13 * C, toy: 6 * C + 1, sport: 5 * C - 1, book: 3 } },
  // mixed exactly 25C; every domain a multiple of C
  { userId: 'long-b', perDomain: { beauty: 12 * C, toy: 8 * C, sport: 5 * C } },
  // mixed 25C - 1; domains C + 1, C - 1, 20C - 1, 3C
  { userId: 'long-c', perDomain: { beauty: C + 1, toy: C - 1, sport: 20 * C - 1, book: 3 * C } },
  // one domain dominates: 1,700 beauty items (26C + 36) with two others among them
  { userId: 'long-d', perDomain: { beauty: 1700, book: 2 } },
  // exactly one chunk, and one item more
  { userId: 'mid-e', perDomain: { beauty: C / 2, toy: C / 2 } },
  { userId: 'mid-f', perDomain: { beauty: C / 2, toy: C / 2, sport: 1 } },
  ...randomUsers('short-', 60, { min: 1, max: 40 }, DOMAINS, 99),
];

const settings = { ...clickHouseSettingsFromEnv(), database: uniqueName('cprec_it_slices') };
let ch: ClickHouse;
let repo: SequenceRepository;
let all: Interaction[];
/** Ingest time of each event (two batches: SINCE and 2 * SINCE). */
const ingested = new Map<string, number>();

beforeAll(async () => {
  await requireInfra({ clickhouse: true });
  await runMigrations(settings);
  ch = createClickHouse(settings);
  repo = new SequenceRepository(ch);
  const records = generateInteractions(USERS, 20240611);
  // Every third event arrives in the second batch (after the watermark).
  const batches: InteractionRecord[][] = [[], []];
  records.forEach((r, i) => batches[i % 3 === 2 ? 1 : 0].push(r));
  const interactions = new InteractionRepository(ch);
  for (let b = 0; b < 2; b++) {
    await interactions.insertBatch(batches[b], SINCE * (b + 1));
    for (const r of batches[b]) ingested.set(r.event_id, SINCE * (b + 1));
  }
  await new SequenceStore(ch).rebuild({ safetyMarginMs: 0, nowMs: NOW });
  all = records.map((r) => ({
    eventId: r.event_id,
    userId: r.user_id,
    itemId: r.item_id,
    domain: r.domain,
    tsMs: r.ts_ms,
    seq: r.seq ?? 0,
  }));
}, 120_000);

afterAll(async () => {
  if (ch) {
    await ch.command(sql`DROP DATABASE IF EXISTS ${ident(settings.database)}`);
    await ch.close();
  }
});

const collect = async (it: AsyncIterable<CorpusSample>): Promise<CorpusSample[]> => {
  const out: CorpusSample[] = [];
  for await (const s of it) out.push(s);
  return out;
};

/** Everything a sample carries (titles aside: they are looked up after the query). */
const fromSql = (s: CorpusSample): string =>
  JSON.stringify([
    s.userId,
    s.domain,
    s.history.map((h) => [h.itemId, h.domain, h.tsMs]),
    [s.target.eventId, s.target.itemId, s.target.domain, s.target.tsMs, s.target.seq, s.target.ingestedMs],
    s.replay,
  ]);

/** The same for a pure sample, `since` being the query's watermark (replay = ingested ≤ since). */
const fromPure = (s: SequenceSample, since: number): string => {
  const ingestedMs = ingested.get(s.target.eventId)!;
  return JSON.stringify([
    s.userId,
    s.target.domain,
    s.history.map((h) => [h.itemId, h.domain, h.tsMs]),
    [s.target.eventId, s.target.itemId, s.target.domain, s.target.tsMs, s.target.seq, ingestedMs],
    since > 0 && ingestedMs <= since,
  ]);
};

const sorted = (xs: string[]): string[] => xs.slice().sort();

/** The equality checks below are about long sequences: make sure they are in the result. */
function expectLongUsers(samples: readonly CorpusSample[]): void {
  expect(samples.length).toBeGreaterThan(1000);
  const perUser = new Map<string, number>();
  for (const s of samples) perUser.set(s.userId, (perUser.get(s.userId) ?? 0) + 1);
  for (const user of ['long-a', 'long-b', 'long-c']) expect(perUser.get(user) ?? 0).toBeGreaterThan(100);
}

function domainSequences(domains?: readonly string[]) {
  const b = new DomainSequenceBuilder();
  b.add(domains === undefined ? all : all.filter((i) => domains.includes(i.domain)));
  return [...b.sequences()];
}

function mixedSequences(domains?: readonly string[]) {
  const b = new MixedSequenceBuilder();
  b.add(domains === undefined ? all : all.filter((i) => domains.includes(i.domain)));
  return [...b.sequences()];
}

const isNew = (i: Interaction) => ingested.get(i.eventId)! > SINCE;

/** Seeded hashes the documented order and replay subset are defined by, computed by the server. */
async function serverHashes(seed: number): Promise<Map<string, { order: bigint; replay: number }>> {
  const rows = await ch.query<{ user_id: string; event_id: string; h: string; r: string }>(
    sql`SELECT user_id, event_id,
  toString(cityHash64(toUInt64(${seed}), user_id, event_id)) AS h,
  toString(cityHash64(toUInt64(${seed}), 'replay', user_id, event_id) % 1000000) AS r
FROM ${ident('interactions')}`,
  );
  return new Map(
    rows.map((r) => [`${r.user_id}\u0000${r.event_id}`, { order: BigInt(r.h), replay: Number(r.r) }]),
  );
}

describe('corpus slices on long sequences', () => {
  it('generated the intended long sequences', async () => {
    const lengths = mixedSequences().map((s) => s.items.length);
    expect(Math.max(...lengths)).toBeGreaterThanOrEqual(1500);
    expect(lengths).toEqual(expect.arrayContaining([24 * C + 3, 25 * C, 25 * C - 1, C, C + 1]));
    const stored = await ch.query<{ n: string }>(
      sql`SELECT toString(max(length(item_ids))) AS n FROM ${ident('mixed_sequences')} FINAL`,
    );
    expect(Number(stored[0].n)).toBe(1702);
  });

  // History caps below, at and above a chunk; minHistory reaching into the second chunk.
  it.each([
    { historyCap: 10, minHistory: 1 },
    { historyCap: 1, minHistory: 1 },
    { historyCap: C - 1, minHistory: 1 },
    { historyCap: C, minHistory: C + 2 },
    { historyCap: C + 1, minHistory: 3 },
    { historyCap: 2 * C + 5, minHistory: 1 },
  ])('domain samples equal domainSamples (%j)', async (q) => {
    const pure = domainSequences().flatMap((s) => [...domainSamples(s, q)]);
    const got = await collect(repo.streamDomainSamples({ ...q, withTitles: false }));
    expectLongUsers(got);
    expect(sorted(got.map(fromSql))).toEqual(sorted(pure.map((s) => fromPure(s, 0))));
    expect(await repo.countDomainSamples(q)).toBe(pure.length);
  });

  it('domain samples since a watermark, for some domains, equal domainSamples', async () => {
    const domains = ['beauty', 'sport'];
    const pure = domainSequences(domains).flatMap((s) => [
      ...domainSamples(s, { historyCap: C, targetFilter: isNew }),
    ]);
    const got = await collect(
      repo.streamDomainSamples({ domains, historyCap: C, sinceWatermark: SINCE, withTitles: false }),
    );
    expectLongUsers(got);
    expect(sorted(got.map(fromSql))).toEqual(sorted(pure.map((s) => fromPure(s, SINCE))));
  });

  // Windows shorter than, equal to and longer than a chunk (window = N - 1 earlier items), and a
  // history cap inside the window.
  it.each([
    { windowSize: 20 },
    { windowSize: 3 },
    { windowSize: C },
    { windowSize: C + 1 },
    { windowSize: C + 2 },
    { windowSize: 2 * C + 7, historyCap: 30 },
  ])('mixed samples equal mixedSamples (%j)', async (q) => {
    const cap = q.historyCap ?? q.windowSize - 1;
    const pure = mixedSequences()
      .flatMap((s) => [...mixedSamples(s, { windowSize: q.windowSize })])
      .map((s) => ({ ...s, history: s.history.slice(Math.max(0, s.history.length - cap)) }));
    const got = await collect(repo.streamMixedSamples({ ...q, withTitles: false }));
    expectLongUsers(got);
    expect(sorted(got.map(fromSql))).toEqual(sorted(pure.map((s) => fromPure(s, 0))));
    expect(await repo.countMixedSamples(q)).toBe(pure.length);
    const validUsers = mixedSequences().filter((s) => hasValidMixedSequence(s, q.windowSize)).length;
    expect(await repo.countUsersWithValidMixedSequence(q)).toBe(validUsers);
  });

  it('domain-filtered mixed samples since a watermark, with replay, equal mixedSamples', async () => {
    const domains = ['beauty', 'toy'];
    const seed = 11;
    const hashes = await serverHashes(seed);
    const replayed = (i: Interaction) => hashes.get(`${i.userId}\u0000${i.eventId}`)!.replay < 400_000;
    const pure = mixedSequences(domains).flatMap((s) => [
      ...mixedSamples(s, { windowSize: C + 1, targetFilter: (i) => isNew(i) || replayed(i) }),
    ]);
    const q = { domains, windowSize: C + 1, sinceWatermark: SINCE, replayFraction: 0.4, seed };
    const got = await collect(repo.streamMixedSamples({ ...q, withTitles: false }));
    expect(got.filter((s) => s.replay).length).toBeGreaterThan(300);
    expect(got.filter((s) => !s.replay).length).toBeGreaterThan(300);
    expect(sorted(got.map(fromSql))).toEqual(sorted(pure.map((s) => fromPure(s, SINCE))));
    expect(await repo.countMixedSamples(q)).toBe(pure.length);
  });

  it('streams in the seeded hash order and resumes at any position', async () => {
    const seed = 7;
    const hashes = await serverHashes(seed);
    const key = (userId: string, eventId: string) => `${userId}\u0000${eventId}`;
    // ORDER BY cityHash64(seed, user, event), user, event (ids are ASCII: byte order = JS order).
    const byOrder = (a: SequenceSample, b: SequenceSample): number => {
      const ha = hashes.get(key(a.userId, a.target.eventId))!.order;
      const hb = hashes.get(key(b.userId, b.target.eventId))!.order;
      if (ha !== hb) return ha < hb ? -1 : 1;
      const ka = key(a.userId, a.target.eventId);
      const kb = key(b.userId, b.target.eventId);
      return ka < kb ? -1 : ka > kb ? 1 : 0;
    };
    const pureMixed = mixedSequences()
      .flatMap((s) => [...mixedSamples(s)])
      .sort(byOrder);
    const mixed = await collect(repo.streamMixedSamples({ seed, withTitles: false, batchSize: 500 }));
    expect(mixed.map(fromSql)).toEqual(pureMixed.map((s) => fromPure(s, 0)));
    expect(mixed.map((s) => s.position)).toEqual(mixed.map((_, i) => i));

    const pureDomain = domainSequences()
      .flatMap((s) => [...domainSamples(s, { historyCap: C + 1 })])
      .sort(byOrder);
    const domain = await collect(repo.streamDomainSamples({ seed, historyCap: C + 1, withTitles: false }));
    expect(domain.map(fromSql)).toEqual(pureDomain.map((s) => fromPure(s, 0)));

    for (const from of [0, 1, 4321, pureDomain.length - 3]) {
      const resumed = await collect(
        repo.streamDomainSamples({ seed, historyCap: C + 1, from, limit: 50, withTitles: false }),
      );
      expect(resumed.map(fromSql)).toEqual(domain.slice(from, from + 50).map(fromSql));
      expect(resumed.map((s) => s.position)).toEqual(domain.slice(from, from + 50).map((s) => s.position));
    }
  });

  describe('under a per-query memory limit', () => {
    /**
     * On this data the chunked queries peak at ~42 MB (mixed) and ~26 MB (domain samples); the
     * former whole-sequence ARRAY JOIN needed ~1,280 MB and ~320 MB (measured with
     * test/sequencer/slice-memory.ts --long 4 --length 1600 --short 60), and fails under it.
     */
    const LIMIT = 150_000_000;
    let limited: ClickHouse;

    beforeAll(() => {
      const s = settings;
      limited = new ClickHouse(
        createClient({
          url: s.url,
          database: s.database,
          username: s.username,
          password: s.password,
          request_timeout: s.requestTimeoutMs,
          application: 'cprec-it-slices',
          // The production client's settings plus the limit.
          clickhouse_settings: {
            send_progress_in_http_headers: 1,
            http_headers_progress_interval_ms: '10000',
            max_memory_usage: String(LIMIT),
          },
        }),
        s,
      );
    });

    afterAll(async () => {
      await limited?.close();
    });

    it('the limit is in force for this client', async () => {
      // A query that needs more than the limit fails: the checks below are not vacuous.
      await expect(
        limited.query(sql`SELECT length(groupArray(number)) AS n FROM numbers(${LIMIT / 4})`),
      ).rejects.toThrow(/Memory limit \(for query\) exceeded/);
    });

    it('mixed and domain samples of 1,500+-item users stream within it', async () => {
      const limitedRepo = new SequenceRepository(limited);
      const mixed = await collect(limitedRepo.streamMixedSamples({ seed: 3, withTitles: false }));
      const pureMixed = mixedSequences().flatMap((s) => [...mixedSamples(s)]);
      expect(sorted(mixed.map(fromSql))).toEqual(sorted(pureMixed.map((s) => fromPure(s, 0))));

      const domain = await collect(limitedRepo.streamDomainSamples({ seed: 3, withTitles: false }));
      const pureDomain = domainSequences().flatMap((s) => [...domainSamples(s)]);
      expect(sorted(domain.map(fromSql))).toEqual(sorted(pureDomain.map((s) => fromPure(s, 0))));
    });
  });
});
