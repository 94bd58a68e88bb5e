import type { InteractionEvent } from '@cprec/contracts';
import { compareInteractions, mergeByTime, timeOrderedInteractions } from './order';

const ev = (user: string, ts: number, seq: number): InteractionEvent => ({
  event_id: `e-${user}-${seq}`,
  user_id: user,
  item_id: `i${seq}`,
  domain: 'd',
  ts,
  seq,
});

async function* from<T>(items: readonly T[]): AsyncGenerator<T> {
  yield* items;
}
async function collect<T>(stream: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const v of stream) out.push(v);
  return out;
}

/** A deterministic pseudo-random per-user-grouped stream like the dataset files. */
function perUserStream(users: number, perUser: number): InteractionEvent[] {
  const out: InteractionEvent[] = [];
  let state = 12345;
  let seq = 0;
  for (let u = 0; u < users; u++) {
    let ts = 0;
    for (let k = 0; k < perUser; k++) {
      state = (state * 1103515245 + 12345) % 2147483648;
      ts += (state % 5) * 1000; // many ties, like day-resolution data
      out.push(ev(`u${u}`, ts, seq++));
    }
  }
  return out;
}

describe('global event-time order', () => {
  it('orders ties by user then seq', () => {
    const events = [ev('b', 5, 0), ev('a', 5, 2), ev('a', 5, 1), ev('a', 1, 9)];
    expect([...events].sort(compareInteractions).map((e) => e.event_id)).toEqual([
      'e-a-9',
      'e-a-1',
      'e-a-2',
      'e-b-0',
    ]);
  });

  it('k-way merges ordered streams', async () => {
    const merged = await collect(
      mergeByTime([from([ev('a', 1, 0), ev('a', 4, 1)]), from([]), from([ev('b', 2, 0), ev('b', 4, 1)])]),
    );
    expect(merged.map((e) => e.event_id)).toEqual(['e-a-0', 'e-b-0', 'e-a-1', 'e-b-1']);
  });

  it('external sort through temporary runs equals an in-memory sort and reports the count', async () => {
    const input = perUserStream(37, 23);
    let counted = -1;
    const sorted = await collect(
      timeOrderedInteractions(from(input), { chunkSize: 50, onCounted: (n) => (counted = n) }),
    );
    expect(counted).toBe(input.length);
    expect(sorted).toEqual([...input].sort(compareInteractions));
    const inMemory = await collect(timeOrderedInteractions(from(input), { chunkSize: 10_000 }));
    expect(inMemory).toEqual(sorted);
  });

  it('keeps every user in its own order', async () => {
    const sorted = await collect(timeOrderedInteractions(from(perUserStream(10, 30)), { chunkSize: 17 }));
    const lastSeq = new Map<string, number>();
    for (const e of sorted) {
      expect(e.seq!).toBeGreaterThan(lastSeq.get(e.user_id) ?? -1);
      lastSeq.set(e.user_id, e.seq!);
    }
  });
});
