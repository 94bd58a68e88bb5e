import { awaitFrozenSplit } from './split-wait';
import type { StoredSplit } from './splits';

/** A fake split table and clock: the split appears (or is refused) after some polls. */
function world(opts: { frozenAfterPolls?: number; refusedAfterPolls?: number }) {
  let clock = 1_000;
  let polls = 0;
  const sent: number[] = [];
  const splits = {
    getSplit: async (): Promise<StoredSplit | undefined> =>
      opts.frozenAfterPolls !== undefined && polls >= opts.frozenAfterPolls
        ? ({ splitId: 's' } as unknown as StoredSplit)
        : undefined,
    refusalSince: async (_id: string, since: number): Promise<string | null> =>
      opts.refusedAfterPolls !== undefined && polls >= opts.refusedAfterPolls && since <= sent[0]
        ? 'domain "x" has no interactions'
        : null,
  };
  const options = {
    timeoutMs: 60_000,
    pollMs: 1_000,
    resendMs: 5_000,
    now: () => clock,
    sleep: async (ms: number) => {
      clock += ms;
      polls++;
    },
  };
  return { splits, options, sent, request: async (ts: number) => void sent.push(ts), polls: () => polls };
}

describe('awaitFrozenSplit', () => {
  it('returns at once, sending nothing, when the split exists', async () => {
    const w = world({ frozenAfterPolls: 0 });
    await awaitFrozenSplit(w.splits, 's', w.request, w.options);
    expect(w.sent).toEqual([]);
  });

  it('asks, polls, resends every resendMs, and returns once the split is frozen', async () => {
    const w = world({ frozenAfterPolls: 12 });
    await awaitFrozenSplit(w.splits, 's', w.request, w.options);
    expect(w.polls()).toBe(12);
    expect(w.sent).toEqual([1_000, 6_000, 11_000]);
  });

  it('stops with the sequencer’s reason when it refuses', async () => {
    const w = world({ refusedAfterPolls: 3 });
    await expect(awaitFrozenSplit(w.splits, 's', w.request, w.options)).rejects.toThrow(
      'the sequencer refused split s: domain "x" has no interactions',
    );
    expect(w.polls()).toBe(3);
  });

  it('gives up after the timeout, naming the split', async () => {
    const w = world({});
    await expect(
      awaitFrozenSplit(w.splits, 's', w.request, { ...w.options, timeoutMs: 4_500 }),
    ).rejects.toThrow(/did not freeze split s within 4500 ms/);
    expect(w.polls()).toBe(5);
  });
});
