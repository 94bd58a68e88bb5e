import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { InteractionEvent } from '@cprec/contracts';
import { readJsonLines } from './lines';

/**
 * Global event-time order: (ts, user_id, seq), as ../shared/data/README.md prescribes for
 * day-resolution timestamps, then event_id so the order is total and every replay is identical.
 */
export function compareInteractions(a: InteractionEvent, b: InteractionEvent): number {
  if (a.ts !== b.ts) return a.ts - b.ts;
  if (a.user_id !== b.user_id) return a.user_id < b.user_id ? -1 : 1;
  const seqA = a.seq ?? 0;
  const seqB = b.seq ?? 0;
  if (seqA !== seqB) return seqA - seqB;
  return a.event_id < b.event_id ? -1 : a.event_id > b.event_id ? 1 : 0;
}

/** Binary min-heap; hand-written (30 lines) because no heap package is among the dependencies. */
class MinHeap<T> {
  private readonly items: T[] = [];
  constructor(private readonly less: (a: T, b: T) => boolean) {}
  get size(): number {
    return this.items.length;
  }
  push(item: T): void {
    const items = this.items;
    items.push(item);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(items[i]!, items[parent]!)) break;
      [items[i], items[parent]] = [items[parent]!, items[i]!];
      i = parent;
    }
  }
  pop(): T | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (items.length > 0 && last !== undefined) {
      items[0] = last;
      let i = 0;
      for (;;) {
        const left = 2 * i + 1;
        const right = left + 1;
        let smallest = i;
        if (left < items.length && this.less(items[left]!, items[smallest]!)) smallest = left;
        if (right < items.length && this.less(items[right]!, items[smallest]!)) smallest = right;
        if (smallest === i) break;
        [items[i], items[smallest]] = [items[smallest]!, items[i]!];
        i = smallest;
      }
    }
    return top;
  }
}

/**
 * k-way merge of streams that are each already in event-time order into one ordered stream.
 * Holds one pending event per stream. Equal events keep stream order (earlier stream first).
 */
export async function* mergeByTime(
  streams: readonly AsyncIterable<InteractionEvent>[],
): AsyncGenerator<InteractionEvent> {
  interface Head {
    event: InteractionEvent;
    source: number;
    iterator: AsyncIterator<InteractionEvent>;
  }
  const heap = new MinHeap<Head>((a, b) => {
    const c = compareInteractions(a.event, b.event);
    return c < 0 || (c === 0 && a.source < b.source);
  });
  const iterators = streams.map((s) => s[Symbol.asyncIterator]());
  try {
    for (let source = 0; source < iterators.length; source++) {
      const iterator = iterators[source]!;
      const first = await iterator.next();
      if (!first.done) heap.push({ event: first.value, source, iterator });
    }
    while (heap.size > 0) {
      const head = heap.pop()!;
      yield head.event;
      const next = await head.iterator.next();
      if (!next.done) heap.push({ event: next.value, source: head.source, iterator: head.iterator });
    }
  } finally {
    await Promise.all(iterators.map((it) => it.return?.()));
  }
}

export interface TimeOrderOptions {
  /** Events sorted in memory at a time; each full chunk becomes one sorted run on disk. */
  chunkSize?: number;
  /** Parent folder for the temporary runs (default: the OS temp dir). */
  tmpDir?: string;
  /** Called once the input is fully read, with the number of events (useful for an ETA). */
  onCounted?: (count: number) => void;
}

/**
 * Puts a stream that is not in time order (dataset files are grouped per user) into global
 * event-time order with bounded memory — an external merge sort: the input is cut into chunks of
 * `chunkSize` events, each sorted in memory and written to a temporary JSON Lines run, then the
 * runs are k-way merged while streaming. Memory is one chunk during the first pass and one event
 * per run during the merge (1M events at the default 100k chunk = 10 runs, ~40 MB peak). Inputs
 * that fit in a single chunk never touch the disk. Temporary files are removed when the
 * generator finishes or is abandoned.
 */
export async function* timeOrderedInteractions(
  source: AsyncIterable<InteractionEvent>,
  options: TimeOrderOptions = {},
): AsyncGenerator<InteractionEvent> {
  const chunkSize = Math.max(1, options.chunkSize ?? 100_000);
  let chunk: InteractionEvent[] = [];
  const runs: string[] = [];
  let dir: string | null = null;
  let count = 0;
  try {
    for await (const event of source) {
      chunk.push(event);
      count++;
      if (chunk.length >= chunkSize) {
        dir ??= await mkdtemp(join(options.tmpDir ?? tmpdir(), 'cprec-sort-'));
        chunk.sort(compareInteractions);
        const run = join(dir, `run-${runs.length}.jsonl`);
        await writeFile(run, chunk.map((e) => JSON.stringify(e)).join('\n') + '\n');
        runs.push(run);
        chunk = [];
      }
    }
    chunk.sort(compareInteractions);
    options.onCounted?.(count);
    if (runs.length === 0) {
      yield* chunk;
      return;
    }
    const tail = chunk;
    chunk = [];
    const fromRun = async function* (path: string): AsyncGenerator<InteractionEvent> {
      for await (const value of readJsonLines(path)) yield value as InteractionEvent;
    };
    yield* mergeByTime([...runs.map(fromRun), fromArray(tail)]);
  } finally {
    if (dir) await rm(dir, { recursive: true, force: true });
  }
}

async function* fromArray<T>(items: readonly T[]): AsyncGenerator<T> {
  yield* items;
}
