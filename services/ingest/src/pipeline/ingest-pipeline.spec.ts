import { DEFAULT_LIMITS, DeadLetter, InteractionEvent, ItemEvent, TOPICS } from '@cprec/contracts';
import { IngestPipeline, IngestPipelineOptions, reasonKind } from './ingest-pipeline';
import { IngestMetrics, PartitionOffset, RawMessage } from './ports';

class FakeStore {
  interactions: InteractionEvent[] = [];
  items: ItemEvent[] = [];
  failuresLeft = 0;
  log: string[];
  constructor(log: string[]) {
    this.log = log;
  }
  /** While set, inserts wait on it (a slow ClickHouse). */
  gate: Promise<void> | null = null;
  /** The event ids of every insert attempt, in order. */
  attempts: string[] = [];
  async insertInteractions(rows: readonly InteractionEvent[]) {
    this.attempts.push(rows.map((r) => r.event_id).join(','));
    if (this.gate) await this.gate;
    if (this.failuresLeft > 0) {
      this.failuresLeft--;
      this.log.push('store-failed');
      throw new Error('connection refused');
    }
    this.log.push(`store:${rows.length}`);
    this.interactions.push(...rows);
  }
  async insertItems(rows: readonly ItemEvent[]) {
    this.items.push(...rows);
  }
}

function setup(
  overrides: Partial<IngestPipelineOptions> = {},
  makeStore: (log: string[]) => FakeStore = (log) => new FakeStore(log),
) {
  const log: string[] = [];
  const store = makeStore(log);
  const dead: DeadLetter[] = [];
  const commits: PartitionOffset[][] = [];
  const counts: Record<string, number> = {};
  const bump = (k: string, n: number) => (counts[k] = (counts[k] ?? 0) + n);
  const metrics: IngestMetrics = {
    consumed: (_t, n) => bump('consumed', n),
    inserted: (k, n) => bump(`inserted_${k}`, n),
    deduplicated: (n) => bump('dedup', n),
    deadLettered: (_r, n) => bump('dead', n),
    batchSeconds: () => undefined,
    storeRetry: () => bump('retry', 1),
  };
  const pipeline = new IngestPipeline(
    store,
    {
      send: async (r) => {
        log.push(`dlq:${r.length}`);
        dead.push(...r);
      },
    },
    {
      commit: async (o) => {
        log.push('commit');
        commits.push([...o]);
      },
    },
    metrics,
    {
      maxBatchRows: 3,
      flushIntervalMs: 60_000,
      retryInitialMs: 1,
      retryMaxMs: 4,
      retryAttempts: 3,
      recentIdsCapacity: 100,
      limits: { ...DEFAULT_LIMITS, now: () => 2_000_000_000_000 },
      itemsTopic: TOPICS.items,
      // The fake store's failures are "connection refused": ClickHouse unavailable.
      classify: () => 'unavailable',
      dependencies: async () => null,
      ...overrides,
    },
  );
  created.push(pipeline);
  return { pipeline, store, dead, commits, counts, log };
}

/** Every pipeline a test made; stopped afterwards so a failed test leaves no retry loop running. */
const created: IngestPipeline[] = [];
afterEach(() => {
  for (const p of created.splice(0)) p.stop();
});

let offset = 0;
function msg(value: unknown, partition = 0, topic: string = TOPICS.interactions): RawMessage {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return { topic, partition, offset: String(offset++), key: null, value: Buffer.from(text) };
}
const event = (id: string): InteractionEvent => ({
  event_id: id,
  user_id: 'u',
  item_id: 'i',
  domain: 'games',
  ts: 1_000,
});

beforeEach(() => (offset = 0));

describe('IngestPipeline', () => {
  it('signals a flush when the size threshold is reached', () => {
    const { pipeline } = setup();
    expect(pipeline.accept([msg(event('a')), msg(event('b'))])).toBe(false);
    expect(pipeline.accept([msg(event('c'))])).toBe(true);
  });

  it('commits offsets only after the store succeeded, past the last message of each partition', async () => {
    const { pipeline, store, commits, log } = setup();
    pipeline.accept([msg(event('a'), 0), msg(event('b'), 1), msg(event('c'), 0)]);
    await pipeline.flush();
    expect(store.interactions.map((e) => e.event_id)).toEqual(['a', 'b', 'c']);
    expect(log).toEqual(['store:3', 'commit']);
    expect(commits[0]).toEqual(
      expect.arrayContaining([
        { topic: TOPICS.interactions, partition: 0, offset: '3' },
        { topic: TOPICS.interactions, partition: 1, offset: '2' },
      ]),
    );
  });

  it('retries a failing store with backoff and commits nothing until it succeeds', async () => {
    const { pipeline, store, log, counts } = setup();
    store.failuresLeft = 3;
    pipeline.accept([msg(event('a'))]);
    let keepAlives = 0;
    await pipeline.flush(async () => {
      keepAlives++;
    });
    expect(log).toEqual(['store-failed', 'store-failed', 'store-failed', 'store:1', 'commit']);
    expect(counts.retry).toBe(3);
    expect(keepAlives).toBeGreaterThan(0);
  });

  it('abandons the batch without committing when stopped while the store is down', async () => {
    const { pipeline, store, commits } = setup();
    store.failuresLeft = 1_000_000;
    pipeline.accept([msg(event('a'))]);
    const flushing = pipeline.flush();
    setTimeout(() => pipeline.stop(), 20);
    await expect(flushing).rejects.toThrow(/stopped while the store was failing/);
    expect(commits).toEqual([]);
  });

  it('sends each bad message to the dead-letter sink with its reason and original bytes, keeping good ones', async () => {
    const { pipeline, store, dead, counts } = setup({ maxBatchRows: 100 });
    const bad = [
      msg('{not json'),
      msg({ ...event('x'), ts: 'yesterday' }),
      msg({ ...event('y'), title: 'z'.repeat(5000) }),
      msg({ ...event('w'), ts: 9_000_000_000_000 }),
    ];
    pipeline.accept([msg(event('a')), ...bad, msg(event('b'))]);
    await pipeline.flush();
    expect(store.interactions.map((e) => e.event_id)).toEqual(['a', 'b']);
    expect(dead.map((d) => reasonKind(d))).toEqual(['malformed', 'invalid', 'policy', 'invalid']);
    expect(dead.map((d) => d.reason.split(':')[0])).toEqual(['malformed JSON', 'ts', 'title', 'ts']);
    expect(Buffer.from(dead[0]!.original_base64, 'base64').toString()).toBe('{not json');
    expect(dead[1]).toMatchObject({ source_topic: TOPICS.interactions, partition: 0, offset: '1' });
    expect(counts.dead).toBe(4);
  });

  it('drops re-sent events already seen and counts them as deduplicated', async () => {
    const { pipeline, store, counts } = setup({ maxBatchRows: 100 });
    pipeline.accept([msg(event('a')), msg(event('a')), msg(event('b'))]);
    await pipeline.flush();
    pipeline.accept([msg(event('b'))]);
    await pipeline.flush();
    expect(store.interactions.map((e) => e.event_id)).toEqual(['a', 'b']);
    expect(counts.dedup).toBe(2);
  });

  it('keeps messages accepted while a flush waits on the store, and commits them only once stored', async () => {
    const { pipeline, store, commits } = setup({ maxBatchRows: 100 });
    store.failuresLeft = 2;
    pipeline.accept([msg(event('a'))]);
    const first = pipeline.flush(async () => {
      // a fetch arriving while the store is down
      if (pipeline.buffered === 0) pipeline.accept([msg(event('b'))]);
    });
    await first;
    expect(commits).toEqual([[{ topic: TOPICS.interactions, partition: 0, offset: '1' }]]);
    await pipeline.flush();
    expect(store.interactions.map((e) => e.event_id)).toEqual(['a', 'b']);
    expect(commits[1]).toEqual([{ topic: TOPICS.interactions, partition: 0, offset: '2' }]);
  });

  it('routes item catalogue messages to the item table', async () => {
    const { pipeline, store } = setup();
    pipeline.accept([msg({ item_id: 'i1', domain: 'games', title: 'Doom &amp; Quake' }, 0, TOPICS.items)]);
    await pipeline.flush();
    expect(store.items).toEqual([{ item_id: 'i1', domain: 'games', title: 'Doom &amp; Quake' }]);
  });

  it('serialises concurrent flushes so no batch is committed twice or lost', async () => {
    const { pipeline, store, commits } = setup({ maxBatchRows: 100 });
    pipeline.accept([msg(event('a'))]);
    const first = pipeline.flush();
    pipeline.accept([msg(event('b'))]);
    const second = pipeline.flush();
    await Promise.all([first, second]);
    expect(store.interactions.map((e) => e.event_id).sort()).toEqual(['a', 'b']);
    expect(commits.flat().map((c) => c.offset)).toEqual(['2']);
  });
});

/** A promise with its resolve function, to hold a fake store until the test releases it. */
function deferred(): { promise: Promise<void>; release: () => void } {
  let release: () => void = () => undefined;
  const promise = new Promise<void>((r) => (release = r));
  return { promise, release };
}
/** Lets every pending promise callback and timer of 0 ms run. */
const settle = () => new Promise<void>((r) => setTimeout(r, 5));
const committedOffsets = (commits: PartitionOffset[][]) =>
  commits.map((c) => c.map((o) => o.offset).join(','));

describe('IngestPipeline double buffering (flushBehind)', () => {
  it('returns while the store is busy, so the next batch is parsed during the insert', async () => {
    const { pipeline, store, commits } = setup({ maxBatchRows: 2 });
    const gate = deferred();
    store.gate = gate.promise;
    pipeline.accept([msg(event('a')), msg(event('b'))]);
    await pipeline.flushBehind(undefined, (e) => {
      throw e;
    });
    await settle();
    expect(pipeline.flushInFlight).toBe(true);
    expect(pipeline.buffered).toBe(0);
    // the consumer goes on accepting while the first batch is being stored
    expect(pipeline.accept([msg(event('c')), msg(event('d'))])).toBe(true);
    expect(commits).toEqual([]);
    gate.release();
    await pipeline.whenIdle();
    expect(committedOffsets(commits)).toEqual(['2']);
    expect(pipeline.buffered).toBe(2);
  });

  it('holds the caller until the previous flush has stored and committed (a later flush never commits first)', async () => {
    const { pipeline, store, commits, log } = setup({ maxBatchRows: 2 });
    const gate = deferred();
    store.gate = gate.promise;
    const onError = jest.fn();
    pipeline.accept([msg(event('a')), msg(event('b'))]);
    await pipeline.flushBehind(undefined, onError);
    pipeline.accept([msg(event('c')), msg(event('d'))]);
    let secondStarted = false;
    const second = pipeline.flushBehind(undefined, onError).then(() => (secondStarted = true));
    // a timer flush arriving now is chained too
    const timerFlush = pipeline.flush();
    await settle();
    expect(secondStarted).toBe(false);
    expect(commits).toEqual([]);
    expect(store.attempts).toEqual(['a,b']);
    expect(log).toEqual([]);
    store.gate = null;
    gate.release();
    await second;
    await timerFlush;
    await pipeline.whenIdle();
    expect(onError).not.toHaveBeenCalled();
    // batch 1 stored → committed, and only then batch 2 taken, stored, committed
    expect(store.attempts).toEqual(['a,b', 'c,d']);
    expect(log).toEqual(['store:2', 'commit', 'store:2', 'commit']);
    expect(committedOffsets(commits)).toEqual(['2', '4']);
    expect(store.interactions.map((e) => e.event_id)).toEqual(['a', 'b', 'c', 'd']);
  });

  it('keeps at most two batches in memory while the store is down, and commits nothing', async () => {
    const { pipeline, store, commits } = setup({ maxBatchRows: 2, retryInitialMs: 1, retryMaxMs: 2 });
    store.failuresLeft = 1_000_000;
    const onError = jest.fn();
    pipeline.accept([msg(event('a')), msg(event('b'))]);
    await pipeline.flushBehind(undefined, onError);
    expect(pipeline.accept([msg(event('c')), msg(event('d'))])).toBe(true);
    let heldUntilStored = true;
    const third = pipeline.flushBehind(undefined, onError).then(() => (heldUntilStored = false));
    await new Promise((r) => setTimeout(r, 30));
    // the consumer loop is parked (no further fetches): one batch retrying, one waiting
    expect(heldUntilStored).toBe(true);
    expect(pipeline.buffered).toBe(2);
    expect(commits).toEqual([]);
    store.failuresLeft = 0;
    await third;
    await pipeline.whenIdle();
    expect(committedOffsets(commits)).toEqual(['2', '4']);
    expect(onError).not.toHaveBeenCalled();
  });

  it('a failed first flush blocks the second one from committing; both batches stay buffered', async () => {
    const { pipeline, store, commits } = setup({ maxBatchRows: 2 });
    store.failuresLeft = 1_000_000;
    const errors: string[] = [];
    pipeline.accept([msg(event('a')), msg(event('b'))]);
    await pipeline.flushBehind(undefined, (e) => errors.push(e.message));
    pipeline.accept([msg(event('c')), msg(event('d'))]);
    const secondStarted = pipeline.flushBehind(undefined, (e) => errors.push(e.message));
    await settle();
    pipeline.stop(); // shutdown while ClickHouse is down: the first flush gives up
    await secondStarted;
    await pipeline.whenIdle();
    expect(errors).toHaveLength(2);
    expect(errors[0]).toMatch(/stopped while the store was failing/);
    expect(commits).toEqual([]);
    expect(store.interactions).toEqual([]);
    // nothing was dropped: the first batch was put back in front of the second
    expect(pipeline.buffered).toBe(4);
  });

  it('a later flush that starts after a failed one stores the failed rows too before committing past them', async () => {
    const { pipeline, store, commits } = setup({ maxBatchRows: 2 });
    const gate = deferred();
    store.gate = gate.promise;
    // first attempt fails once stop() is called, so the batch is put back
    store.failuresLeft = 1;
    pipeline.accept([msg(event('a')), msg(event('b'))]);
    const first = pipeline.flush();
    pipeline.stop();
    gate.release();
    await expect(first).rejects.toThrow(/stopped/);
    store.gate = null;
    pipeline.accept([msg(event('c'))]);
    await pipeline.flush();
    expect(store.attempts).toEqual(['a,b', 'a,b,c']);
    expect(committedOffsets(commits)).toEqual(['3']);
  });
});

/** A store that refuses, like ClickHouse, every batch holding a row whose title starts with "BAD". */
class RefusingStore extends FakeStore {
  override async insertInteractions(rows: readonly InteractionEvent[]) {
    this.attempts.push(rows.map((r) => r.event_id).join(','));
    if (rows.some((r) => r.title?.startsWith('BAD')))
      throw new Error('Code: 25, e.displayText() = DB::Exception: Cannot parse escape sequence');
    this.interactions.push(...rows);
  }
}

describe('IngestPipeline: one message can never stop it', () => {
  const dataError = (err: unknown) =>
    /Code: 25/.test((err as Error).message) ? ('permanent' as const) : ('unavailable' as const);

  it('dead-letters an event whose title is a lone surrogate at validation, and stores the clean one after it', async () => {
    const { pipeline, store, dead, commits } = setup({ maxBatchRows: 100 });
    const raw = '{"event_id":"bad","user_id":"u","item_id":"i","domain":"games","ts":1000,"title":"\\ud800"}';
    pipeline.accept([msg(raw), msg(event('clean'))]);
    await pipeline.flush();
    expect(store.interactions.map((e) => e.event_id)).toEqual(['clean']);
    expect(dead).toHaveLength(1);
    expect(dead[0]!.reason).toMatch(/^title: contains an unpaired UTF-16 surrogate \(\\ud800\) at index 0/);
    expect(dead[0]!.reason_kind).toBe('unstorable');
    expect(Buffer.from(dead[0]!.original_base64, 'base64').toString()).toBe(raw);
    expect(committedOffsets(commits)).toEqual(['2']);
  });

  it('bisects a batch ClickHouse refuses: the refused row is dead-lettered with the refusal, the rest stored', async () => {
    const { pipeline, store, dead, commits } = setup(
      { maxBatchRows: 100, classify: dataError },
      (log) => new RefusingStore(log),
    );
    const events = ['a', 'b', 'c', 'd', 'e', 'f', 'g'].map((id) => ({
      ...event(id),
      title: id === 'e' ? 'BAD' : id,
    }));
    pipeline.accept(events.map((e) => msg(e)));
    await pipeline.flush();
    expect(store.interactions.map((e) => e.event_id).sort()).toEqual(['a', 'b', 'c', 'd', 'f', 'g']);
    expect(dead).toHaveLength(1);
    expect(dead[0]).toMatchObject({ offset: '4', reason_kind: 'storage_refused' });
    expect(dead[0]!.reason).toMatch(/^storage refused the row: Code: 25/);
    expect(JSON.parse(Buffer.from(dead[0]!.original_base64, 'base64').toString())).toEqual(events[4]);
    expect(committedOffsets(commits)).toEqual(['7']);
    // Bisection, not one insert per row.
    expect(store.attempts.length).toBeLessThan(events.length + 2);
  });

  it('an unknown failure is retried a bounded number of times; with ClickHouse up the rows are dead-lettered', async () => {
    const { pipeline, store, dead, commits } = setup({
      classify: () => 'transient',
      dependencies: async () => null,
      retryAttempts: 2,
    });
    store.failuresLeft = 1_000_000;
    pipeline.accept([msg(event('a'))]);
    await pipeline.flush();
    expect(dead).toHaveLength(1);
    expect(dead[0]).toMatchObject({ reason_kind: 'retries_exhausted' });
    expect(committedOffsets(commits)).toEqual(['1']);
  });

  it('keeps retrying while ClickHouse is down, says so in `problem`, and stores once it is back', async () => {
    let down = true;
    const { pipeline, store, dead, commits } = setup({
      classify: () => 'transient',
      dependencies: async () => (down ? 'ClickHouse (ECONNREFUSED)' : null),
      retryAttempts: 2,
    });
    store.failuresLeft = 1_000_000;
    pipeline.accept([msg(event('a'))]);
    const flushing = pipeline.flush();
    await new Promise((r) => setTimeout(r, 60));
    expect(pipeline.problem).toMatch(/^waiting for ClickHouse \(ECONNREFUSED\): inserts failing/);
    expect(commits).toEqual([]);
    down = false;
    store.failuresLeft = 0;
    await flushing;
    expect(pipeline.problem).toBeNull();
    expect(store.interactions.map((e) => e.event_id)).toEqual(['a']);
    expect(dead).toEqual([]);
  });

  it('dead-letters a reused event_id with different content as a conflict, and keeps counting re-sends as duplicates', async () => {
    const { pipeline, store, dead, counts } = setup({ maxBatchRows: 100 });
    pipeline.accept([msg(event('a')), msg({ ...event('a'), item_id: 'other' }), msg(event('a'))]);
    await pipeline.flush();
    expect(store.interactions.map((e) => e.item_id)).toEqual(['i']);
    expect(dead).toHaveLength(1);
    expect(dead[0]).toMatchObject({ reason_kind: 'conflict', offset: '1' });
    expect(dead[0]!.reason).toMatch(/^event_id: a was already received with different content/);
    expect(counts.dedup).toBe(1);
  });
});
