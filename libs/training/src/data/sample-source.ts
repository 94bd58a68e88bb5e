import type { SampleItems } from '@cprec/corpus';

/**
 * A corpus slice in a fixed, reproducible order. `samples(from)` starts at the `from`-th sample,
 * which is how a crashed round resumes without training a sample twice: the position is part of
 * every checkpoint. Implementations: in-memory arrays (tests, experiments) and ClickHouse-backed
 * slices served by the sequencer's repositories.
 */
export interface SampleSource {
  /** Number of samples in the slice (one pass). */
  readonly size: number;
  samples(from: number): AsyncIterable<SampleItems>;
}

export class ArraySampleSource implements SampleSource {
  constructor(private readonly items: readonly SampleItems[]) {}

  get size(): number {
    return this.items.length;
  }

  async *samples(from: number): AsyncIterable<SampleItems> {
    for (let i = Math.max(0, from); i < this.items.length; i++) yield this.items[i]!;
  }
}

/** Endless pass over a source starting at `from`, wrapping around (anneal steps may exceed one pass). */
export async function* cycleSamples(source: SampleSource, from: number): AsyncIterable<SampleItems> {
  if (source.size === 0) return;
  let position = from % source.size;
  for (;;) {
    for await (const s of source.samples(position)) yield s;
    position = 0;
  }
}

/**
 * Two sources shuffled together deterministically in proportion to their sizes (the `both`
 * pool of the DS+Mix ablations). Sample k of the merge comes from `a` when
 * floor((k+1)·|a|/(|a|+|b|)) > floor(k·|a|/(|a|+|b|)), so the interleaving is even and a position
 * in the merged stream maps to fixed positions in each source.
 */
export class InterleavedSampleSource implements SampleSource {
  constructor(
    private readonly a: SampleSource,
    private readonly b: SampleSource,
  ) {}

  get size(): number {
    return this.a.size + this.b.size;
  }

  private fromA(k: number): number {
    const total = this.size;
    return Math.floor((k * this.a.size) / total);
  }

  async *samples(from: number): AsyncIterable<SampleItems> {
    const total = this.size;
    if (from >= total) return;
    const ia = this.a.samples(this.fromA(from))[Symbol.asyncIterator]();
    const ib = this.b.samples(from - this.fromA(from))[Symbol.asyncIterator]();
    for (let k = from; k < total; k++) {
      const takeA = this.fromA(k + 1) > this.fromA(k);
      const next = await (takeA ? ia : ib).next();
      if (next.done) return;
      yield next.value;
    }
  }
}
