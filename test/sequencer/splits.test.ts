import {
  ClickHouse,
  clickHouseSettingsFromEnv,
  createClickHouse,
  EvalSplitRepository,
  ident,
  InteractionRecord,
  InteractionRepository,
  ItemRepository,
  runMigrations,
  SequenceStore,
  EmptySplitError,
  SplitMismatchError,
  sql,
} from '@cprec/clickhouse';
import { createRng, randomInt } from '@cprec/corpus';
import { handleSplitRequest } from '../../services/sequencer/src/split-requests.service';
import { requireInfra, uniqueName } from '../support/infra';

const database = uniqueName('cprec_it_splits');
const settings = { ...clickHouseSettingsFromEnv(), database };
let ch: ClickHouse;
let splits: EvalSplitRepository;
const records: InteractionRecord[] = [];
const DOMAINS = ['beauty', 'toy'];
const DAY = 86_400_000;

beforeAll(async () => {
  await requireInfra({ clickhouse: true });
  await runMigrations(settings);
  ch = createClickHouse(settings);
  splits = new EvalSplitRepository(ch);
  const rng = createRng(99);
  for (let u = 0; u < 120; u++) {
    const n = randomInt(rng, 1, 8);
    for (let k = 0; k < n; k++) {
      records.push({
        event_id: `e${u}-${k}`,
        user_id: `user${String(u).padStart(3, '0')}`,
        item_id: `item${randomInt(rng, 0, 59)}`,
        domain: DOMAINS[randomInt(rng, 0, 1)],
        ts_ms: DAY * randomInt(rng, 1, 30),
        seq: k,
      });
    }
  }
  await new InteractionRepository(ch).insertBatch(records, 1000);
  // Titles for beauty only; two items share the title of item0 (negatives must avoid it).
  await new ItemRepository(ch).upsertBatch(
    Array.from({ length: 60 }, (_, i) => ({
      item_id: `item${i}`,
      domain: 'beauty',
      title: i === 7 || i === 8 ? 'Title 0' : `Title ${i}`,
      updated_at_ms: 1,
    })),
  );
  await new SequenceStore(ch).rebuild({ safetyMarginMs: 0 });
}, 120_000);

afterAll(async () => {
  if (ch) {
    await ch.command(sql`DROP DATABASE IF EXISTS ${ident(database)}`);
    await ch.close();
  }
});

function userItems(userId: string, domain: string): Set<string> {
  return new Set(records.filter((r) => r.user_id === userId && r.domain === domain).map((r) => r.item_id));
}

describe('frozen evaluation splits', () => {
  it('does not freeze a leave-one-out split without examples (its domain has no sequences yet)', async () => {
    await expect(
      splits.createIfAbsent({ splitId: 'loo-empty', kind: 'loo', domains: ['no-such-domain'], seed: 1 }),
    ).rejects.toThrow(EmptySplitError);
    expect(await splits.getSplit('loo-empty')).toBeUndefined();
  });

  it('answers a request it refuses with a recorded reason, visible only to requests sent since', async () => {
    // A split id reused with another definition can never be created: the sequencer's handler
    // records why, against the request's own timestamp, for the requester polling the split.
    await splits.createIfAbsent({ splitId: 'loo-refused', kind: 'loo', domains: ['beauty'], seed: 5 });
    const conflicting = {
      kind: 'create_split',
      split_id: 'loo-refused',
      split_kind: 'loo',
      domains: ['beauty'],
      seed: 6,
      requested_by: 'evaluator',
      ts: 1_000,
    };
    const outcome = await handleSplitRequest(
      Buffer.from(JSON.stringify(conflicting)),
      splits,
      () => undefined,
    );
    expect(outcome).toBe('rejected');
    expect(await splits.refusalSince('loo-refused', 1_000)).toMatch(/seed/);
    // A requester that started waiting later does not see that old refusal.
    expect(await splits.refusalSince('loo-refused', 1_001)).toBeNull();
    expect(await splits.refusalSince('loo-other', 0)).toBeNull();
  });

  it('stores leave-one-out examples once and returns identical examples on every read', async () => {
    // chunkUsers small so creation pages through users several times
    const request = { splitId: 'loo-a', kind: 'loo' as const, domains: DOMAINS, seed: 1234, chunkUsers: 17 };
    const first = await splits.createIfAbsent(request);
    expect(first.created).toBe(true);
    expect(first.split.examples).toBeGreaterThan(50);
    const readA = await splits.readExamples('loo-a');
    const readB = await splits.readExamples('loo-a');
    expect(readA.length).toBe(first.split.examples);
    expect(readB).toEqual(readA);

    // A later event does not change a stored split; asking again returns the stored one.
    await new InteractionRepository(ch).insertBatch(
      [{ event_id: 'late', user_id: 'user000', item_id: 'item1', domain: 'beauty', ts_ms: DAY * 40 }],
      2000,
    );
    await new SequenceStore(ch).rebuild({ safetyMarginMs: 0 });
    const second = await splits.createIfAbsent(request);
    expect(second.created).toBe(false);
    expect(second.split).toEqual(first.split);
    expect(await splits.readExamples('loo-a')).toEqual(readA);
    await expect(splits.createIfAbsent({ ...request, seed: 1 })).rejects.toThrow(SplitMismatchError);

    for (const e of readA) {
      expect(['loo-test', 'loo-valid']).toContain(e.kind);
      expect(e.candidates).toHaveLength(20);
      expect(new Set(e.candidates).size).toBe(20);
      expect(e.candidates).toContain(e.target);
      const negatives = e.candidates.filter((c) => c !== e.target);
      const bought = userItems(e.userId, e.domain);
      for (const n of negatives) expect(bought.has(n)).toBe(false);
      if (e.domain === 'beauty' && e.target === 'item0') {
        for (const n of negatives) expect(['item7', 'item8']).not.toContain(n);
      }
      // leave-one-out: the test target is the last item, the validation one the second to last
      const seq = records
        .filter((r) => r.user_id === e.userId && r.domain === e.domain)
        .sort(
          (a, b) => a.ts_ms - b.ts_ms || (a.seq ?? 0) - (b.seq ?? 0) || (a.event_id < b.event_id ? -1 : 1),
        );
      const offset = e.kind === 'loo-test' ? 1 : 2;
      expect(e.target).toBe(seq[seq.length - offset].item_id);
      expect(e.history).toEqual(seq.slice(0, seq.length - offset).map((r) => r.item_id));
    }
    // Users with fewer than 3 items in a domain are not evaluated.
    const evaluated = new Set(readA.map((e) => `${e.userId}/${e.domain}`));
    for (const key of evaluated) {
      const [user, domain] = key.split('/');
      expect(records.filter((r) => r.user_id === user && r.domain === domain).length).toBeGreaterThanOrEqual(
        3,
      );
    }
    const beautyTests = await splits.readExamples('loo-a', { domain: 'beauty', kind: 'loo-test' });
    expect(beautyTests).toEqual(readA.filter((e) => e.domain === 'beauty' && e.kind === 'loo-test'));
  });

  it('creates a time-window split: the first interaction in [t0, t1) of each active user', async () => {
    const t0 = DAY * 10;
    const t1 = DAY * 15;
    const { split } = await splits.createIfAbsent({
      splitId: 'win-1',
      kind: 'window',
      domains: ['toy'],
      seed: 5,
      windowStartMs: t0,
      windowEndMs: t1,
    });
    const examples = await splits.readExamples('win-1');
    expect(examples.length).toBe(split.examples);
    expect(examples.length).toBeGreaterThan(5);
    for (const e of examples) {
      expect(e.kind).toBe('window');
      expect(e.targetTsMs).toBeGreaterThanOrEqual(t0);
      expect(e.targetTsMs).toBeLessThan(t1);
      expect(e.history.length).toBeGreaterThanOrEqual(1);
      expect([e.windowStartMs, e.windowEndMs]).toEqual([t0, t1]);
      const bought = userItems(e.userId, 'toy');
      for (const c of e.candidates) if (c !== e.target) expect(bought.has(c)).toBe(false);
    }
    expect(await splits.readExamples('win-1')).toEqual(examples);
  });
});
