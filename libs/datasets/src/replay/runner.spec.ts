import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { InteractionEvent } from '@cprec/contracts';
import { syntheticDataset } from '../synthetic/generator';
import type { ProgressStore, ReplayProgress, ReplayRecord, ReplaySink, ReplaySource } from './model';
import { FileProgressStore, replayProgressPath } from './progress-file';
import { ReplayClock, ReplayRunner } from './runner';
import { datasetReplaySource } from './source';

const DAY = 86_400_000;

/** Records every batch it acknowledges; can fail or trigger an interrupt on a chosen call. */
class RecordingSink implements ReplaySink {
  readonly batches: ReplayRecord[][] = [];
  readonly sendTimes: number[] = [];
  calls = 0;
  constructor(
    private readonly hooks: {
      onCall?: (call: number) => void;
      afterStore?: (call: number) => void;
      clock?: ReplayClock;
    } = {},
  ) {}
  get records(): ReplayRecord[] {
    return this.batches.flat();
  }
  async send(batch: readonly ReplayRecord[]): Promise<void> {
    this.calls++;
    this.hooks.onCall?.(this.calls);
    this.batches.push([...batch]);
    if (this.hooks.clock) this.sendTimes.push(this.hooks.clock.now());
    this.hooks.afterStore?.(this.calls);
  }
}

class MemoryStore implements ProgressStore {
  value: ReplayProgress | null = null;
  saves = 0;
  async load(): Promise<ReplayProgress | null> {
    return this.value;
  }
  async save(progress: ReplayProgress): Promise<void> {
    this.saves++;
    this.value = { ...progress };
  }
}

/** Virtual time: sleeping advances the clock instantly, so pacing is checked without waiting. */
class FakeClock implements ReplayClock {
  time = 0;
  readonly sleeps: number[] = [];
  now(): number {
    return this.time;
  }
  async sleep(ms: number): Promise<void> {
    this.sleeps.push(ms);
    this.time += ms;
  }
}

function interaction(user: string, ts: number, seq: number): InteractionEvent {
  return { event_id: `e${seq}`, user_id: user, item_id: `i${seq}`, domain: 'd', ts, seq };
}

function arraySource(records: ReplayRecord[]): ReplaySource {
  return {
    total: records.length,
    async *records() {
      yield* records;
    },
  };
}

const ids = (records: readonly ReplayRecord[]): string[] =>
  records.map((r) => (r.kind === 'item' ? `item:${r.event.item_id}` : r.event.event_id));

describe('ReplayRunner', () => {
  const synthetic = () =>
    datasetReplaySource([syntheticDataset({ seed: 3, users: 40, itemsPerDomain: 30, eventsPerUser: 10 })]);

  it('sends items first, then interactions in global time order, in bounded batches', async () => {
    const sink = new RecordingSink();
    const store = new MemoryStore();
    const summary = await new ReplayRunner(sink, store).run(synthetic(), { key: 'k', batchSize: 64 });
    const records = sink.records;
    const firstInteraction = records.findIndex((r) => r.kind === 'interaction');
    expect(firstInteraction).toBe(90);
    expect(records.slice(firstInteraction).every((r) => r.kind === 'interaction')).toBe(true);
    const times = records.flatMap((r) => (r.kind === 'interaction' ? [r.event.ts] : []));
    expect(times).toEqual([...times].sort((a, b) => a - b));
    expect(Math.max(...sink.batches.map((b) => b.length))).toBe(64);
    expect(summary).toMatchObject({
      outcome: 'completed',
      sent: records.length,
      skipped: 0,
      total: records.length,
      items: 90,
    });
    expect(store.value).toMatchObject({ key: 'k', acknowledged: records.length, done: true });
  });

  it('resumes after an interrupt without duplicates or gaps', async () => {
    const full = new RecordingSink();
    await new ReplayRunner(full, new MemoryStore()).run(synthetic(), { key: 'k', batchSize: 50 });

    const store = new MemoryStore();
    const controller = new AbortController();
    const first = new RecordingSink({ onCall: (call) => call === 4 && controller.abort() });
    const interrupted = await new ReplayRunner(first, store).run(synthetic(), {
      key: 'k',
      batchSize: 50,
      signal: controller.signal,
    });
    expect(interrupted.outcome).toBe('interrupted');
    expect(interrupted.sent).toBe(200);
    expect(store.value).toMatchObject({ acknowledged: 200, done: false });

    const second = new RecordingSink();
    const resumed = await new ReplayRunner(second, store).run(synthetic(), {
      key: 'k',
      batchSize: 50,
      resume: true,
    });
    expect(resumed).toMatchObject({ outcome: 'completed', skipped: 200 });
    expect([...ids(first.records), ...ids(second.records)]).toEqual(ids(full.records));

    const third = new RecordingSink();
    const again = await new ReplayRunner(third, store).run(synthetic(), { key: 'k', resume: true });
    expect(again.outcome).toBe('already-complete');
    expect(third.calls).toBe(0);
  });

  it('after a crash between broker ack and progress save, re-sends only the last batch (same event ids)', async () => {
    const store = new MemoryStore();
    // The third batch reaches the broker, but the process dies before the ack is recorded.
    const crashing = new RecordingSink({
      afterStore: (call) => {
        if (call === 3) throw new Error('process died');
      },
    });
    await expect(
      new ReplayRunner(crashing, store).run(synthetic(), { key: 'k', batchSize: 40 }),
    ).rejects.toThrow('process died');
    expect(store.value?.acknowledged).toBe(80);
    const rest = new RecordingSink();
    await new ReplayRunner(rest, store).run(synthetic(), { key: 'k', batchSize: 40, resume: true });
    const all = [...ids(crashing.records), ...ids(rest.records)];
    const full = new RecordingSink();
    await new ReplayRunner(full, new MemoryStore()).run(synthetic(), { key: 'k' });
    expect(all).toHaveLength(full.records.length + 40);
    expect(ids(rest.records).slice(0, 40)).toEqual(ids(crashing.batches[2]!));
    expect([...new Set(all)]).toEqual(ids(full.records)); // storage dedup on event_id restores the stream
  });

  it('ignores progress saved under another key and restarts without --resume', async () => {
    const store = new MemoryStore();
    store.value = { key: 'other', acknowledged: 5, done: false, updatedAt: '' };
    const sink = new RecordingSink();
    const records = [1, 2, 3].map((i) => ({ kind: 'interaction' as const, event: interaction('u', i, i) }));
    expect(
      (await new ReplayRunner(sink, store).run(arraySource(records), { key: 'k', resume: true })).skipped,
    ).toBe(0);
    expect(sink.records).toHaveLength(3);
    const again = new RecordingSink();
    await new ReplayRunner(again, store).run(arraySource(records), { key: 'k' });
    expect(again.records).toHaveLength(3);
  });

  it('stops at the limit and a resume with a larger limit continues from there', async () => {
    const store = new MemoryStore();
    const records = Array.from({ length: 10 }, (_, i) => ({
      kind: 'interaction' as const,
      event: interaction('u', i, i),
    }));
    const first = new RecordingSink();
    const limited = await new ReplayRunner(first, store).run(arraySource(records), {
      key: 'k',
      limit: 4,
      batchSize: 3,
    });
    expect(limited).toMatchObject({ sent: 4, total: 4, outcome: 'completed' });
    expect(store.value).toMatchObject({ acknowledged: 4, done: false });
    const second = new RecordingSink();
    await new ReplayRunner(second, store).run(arraySource(records), { key: 'k', limit: 7, resume: true });
    expect(ids(second.records)).toEqual(['e4', 'e5', 'e6']);
  });

  it('paces by event time: one day per second sends each day one second after the previous', async () => {
    const clock = new FakeClock();
    const sink = new RecordingSink({ clock });
    const records = [0, 0, 1, 1, 1, 3].map((day, i) => ({
      kind: 'interaction' as const,
      event: interaction(`u${i}`, 1e12 + day * DAY, i),
    }));
    await new ReplayRunner(sink, new MemoryStore()).run(arraySource(records), {
      key: 'k',
      speedDaysPerSecond: 1,
      clock,
      batchSize: 100,
    });
    expect(sink.batches.map((b) => b.length)).toEqual([2, 3, 1]);
    expect(sink.sendTimes).toEqual([0, 1000, 3000]);
  });

  it('sends the backlog before the live start at once, then paces from the first live event', async () => {
    const clock = new FakeClock();
    const sink = new RecordingSink({ clock });
    const days = [0, 3, 5, 10, 10, 11, 13];
    const records = days.map((day, i) => ({
      kind: 'interaction' as const,
      event: interaction(`u${i}`, 1e12 + day * DAY, i),
    }));
    const seen: Array<[number | null, boolean]> = [];
    const summary = await new ReplayRunner(sink, new MemoryStore()).run(arraySource(records), {
      key: 'k',
      speedDaysPerSecond: 2,
      liveFromMs: 1e12 + 10 * DAY,
      clock,
      batchSize: 100,
      onProgress: (s) => seen.push([s.streamMs, s.live]),
    });
    // Days 0, 3, 5: the backlog, one batch at t = 0; then day 10 at 0 s, 11 at 0.5 s, 13 at 1.5 s.
    expect(sink.batches.map((b) => b.length)).toEqual([3, 2, 1, 1]);
    expect(sink.sendTimes).toEqual([0, 0, 500, 1500]);
    expect(seen[0]).toEqual([1e12 + 5 * DAY, false]);
    expect(summary).toMatchObject({ streamMs: 1e12 + 13 * DAY, live: true, outcome: 'completed' });
  });

  it('honours a rate cap', async () => {
    const clock = new FakeClock();
    const sink = new RecordingSink({ clock });
    const records = Array.from({ length: 100 }, (_, i) => ({
      kind: 'interaction' as const,
      event: interaction('u', i, i),
    }));
    const summary = await new ReplayRunner(sink, new MemoryStore()).run(arraySource(records), {
      key: 'k',
      rateCap: 50,
      clock,
    });
    expect(sink.batches.every((b) => b.length === 5)).toBe(true);
    // Batch n (1-based) may leave no earlier than when its 5n-th record is due at 50/s.
    sink.sendTimes.forEach((t, n) => expect(t).toBeGreaterThanOrEqual(((n + 1) * 5 * 1000) / 50));
    expect(summary.eventsPerSecond).toBeLessThanOrEqual(50);
  });
});

describe('FileProgressStore', () => {
  it('round-trips progress atomically under .cprec/replay/<hash>.json', async () => {
    const root = mkdtempSync(join(tmpdir(), 'cprec-progress-'));
    try {
      const path = replayProgressPath('dataset=a', root);
      expect(path).toMatch(/\.cprec\/replay\/[0-9a-f]{16}\.json$/);
      expect(replayProgressPath('dataset=b', root)).not.toBe(path);
      const store = new FileProgressStore(path);
      expect(await store.load()).toBeNull();
      await store.save({ key: 'dataset=a', acknowledged: 12, done: false, updatedAt: 'now' });
      await store.save({ key: 'dataset=a', acknowledged: 24, done: true, updatedAt: 'later' });
      expect(await store.load()).toEqual({
        key: 'dataset=a',
        acknowledged: 24,
        done: true,
        updatedAt: 'later',
      });
      expect(readdirSync(join(root, '.cprec', 'replay'))).toHaveLength(1); // no temp files left behind
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
