import { MicroBatcher } from './micro-batcher';

describe('MicroBatcher', () => {
  it('scores requests submitted in the same turn together, in order, up to maxBatch', async () => {
    const batches: number[][] = [];
    const batcher = new MicroBatcher<number, number>(
      (xs) => {
        batches.push([...xs]);
        return xs.map((x) => x * 10);
      },
      { maxBatch: 3 },
    );
    const results = await Promise.all([1, 2, 3, 4, 5].map((x) => batcher.submit(x)));
    expect(results).toEqual([10, 20, 30, 40, 50]);
    expect(batches).toEqual([
      [1, 2, 3],
      [4, 5],
    ]);
  });

  it('collects requests arriving within the window, and starts a new batch after it', async () => {
    // Fake clock: with real timers a loaded machine can delay the 2 ms step past the 20 ms window.
    jest.useFakeTimers({ doNotFake: ['performance', 'setImmediate', 'nextTick', 'queueMicrotask'] });
    try {
      const sizes: number[] = [];
      const batcher = new MicroBatcher<string, string>((xs) => xs.map((x) => x.toUpperCase()), {
        maxBatch: 8,
        windowMs: 20,
        onBatch: (n) => sizes.push(n),
      });
      const first = batcher.submit('a');
      await jest.advanceTimersByTimeAsync(2);
      const second = batcher.submit('b');
      await jest.advanceTimersByTimeAsync(19);
      expect(await Promise.all([first, second])).toEqual(['A', 'B']);
      expect(sizes).toEqual([2]);
      const third = batcher.submit('c');
      await jest.advanceTimersByTimeAsync(19);
      expect(sizes).toEqual([2]);
      await jest.advanceTimersByTimeAsync(1);
      expect(await third).toBe('C');
      expect(sizes).toEqual([2, 1]);
    } finally {
      jest.useRealTimers();
    }
  });

  it('a batch that fails is retried one by one, so only the bad request fails', async () => {
    const calls: number[][] = [];
    const batcher = new MicroBatcher<number, number>(
      (xs) => {
        calls.push([...xs]);
        if (xs.includes(-1)) throw new Error('negative input');
        return xs.map((x) => x + 1);
      },
      { maxBatch: 4 },
    );
    const outcomes = await Promise.allSettled([1, -1, 2].map((x) => batcher.submit(x)));
    expect(outcomes[0]).toEqual({ status: 'fulfilled', value: 2 });
    expect(outcomes[1]).toMatchObject({ status: 'rejected', reason: new Error('negative input') });
    expect(outcomes[2]).toEqual({ status: 'fulfilled', value: 3 });
    expect(calls).toEqual([[1, -1, 2], [1], [-1], [2]]);
  });

  it('sheds requests that waited longer than maxQueueMs instead of scoring them', async () => {
    // Only the clock is fake, so a loaded machine cannot make request 1 late on its own.
    jest.useFakeTimers({ doNotFake: ['setImmediate', 'setTimeout', 'nextTick', 'queueMicrotask'] });
    try {
      const scored: number[] = [];
      const batcher = new MicroBatcher<number, number>(
        (xs) => {
          // A slow synchronous batch: everything queued behind it waits past the deadline.
          jest.advanceTimersByTime(30);
          scored.push(...xs);
          return [...xs];
        },
        { maxBatch: 1, maxQueueMs: 10, shed: (ms) => new Error(`shed after ${Math.round(ms)} ms`) },
      );
      const outcomes = await Promise.allSettled([1, 2, 3].map((x) => batcher.submit(x)));
      expect(outcomes[0]).toEqual({ status: 'fulfilled', value: 1 });
      expect(outcomes.slice(1).every((o) => o.status === 'rejected')).toBe(true);
      expect(String((outcomes[1] as PromiseRejectedResult).reason)).toMatch(/shed after 30 ms/);
      expect(scored).toEqual([1]);
    } finally {
      jest.useRealTimers();
    }
  });

  it('with async processing, keeps at most maxConcurrent batches in flight and lets the queue grow the next', async () => {
    const started: number[][] = [];
    let inFlight = 0;
    let peak = 0;
    const release: Array<() => void> = [];
    const batcher = new MicroBatcher<number, number>(
      async (xs) => {
        started.push([...xs]);
        inFlight++;
        peak = Math.max(peak, inFlight);
        await new Promise<void>((r) => release.push(r));
        inFlight--;
        return xs.map((x) => -x);
      },
      { maxBatch: 8, maxConcurrent: 2 },
    );
    const first = [1, 2].map((x) => batcher.submit(x));
    await new Promise((r) => setImmediate(r));
    const second = [3].map((x) => batcher.submit(x));
    await new Promise((r) => setImmediate(r));
    // Two batches are running; these wait for a free slot and then go together.
    const third = [4, 5, 6].map((x) => batcher.submit(x));
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    expect(started).toEqual([[1, 2], [3]]);
    release.shift()!();
    await Promise.all(first);
    await new Promise((r) => setImmediate(r));
    expect(started).toEqual([[1, 2], [3], [4, 5, 6]]);
    while (release.length > 0) release.shift()!();
    await new Promise((r) => setImmediate(r));
    while (release.length > 0) release.shift()!();
    expect(await Promise.all([...first, ...second, ...third])).toEqual([-1, -2, -3, -4, -5, -6]);
    expect(peak).toBe(2);
  });

  it('refuses a non-positive batch size or concurrency', () => {
    expect(() => new MicroBatcher<number, number>((xs) => [...xs], { maxBatch: 0 })).toThrow(/maxBatch/);
    expect(
      () => new MicroBatcher<number, number>((xs) => [...xs], { maxBatch: 1, maxConcurrent: 0 }),
    ).toThrow(/maxConcurrent/);
  });
});
