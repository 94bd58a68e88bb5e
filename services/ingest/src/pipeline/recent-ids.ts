/**
 * A bounded set of recently stored event ids. Storage deduplicates anyway (ReplacingMergeTree on
 * event_id); this only spares ClickHouse the obvious re-sends and lets us count them.
 *
 * Eviction is first-in-first-out through a ring buffer next to a Set. (Evicting the oldest key of
 * an insertion-ordered Map looked simpler, but V8 leaves deleted entries as holes at the front
 * of the table, so finding the first live key turns quadratic once the set is full:
 * bench/ingest/recent-ids.micro.ts.)
 */
export class RecentIds {
  private readonly ids = new Set<string>();
  private readonly ring: (string | undefined)[];
  private next = 0;

  constructor(private readonly capacity: number) {
    this.ring = new Array<string | undefined>(Math.max(0, capacity));
  }

  has(id: string): boolean {
    return this.ids.has(id);
  }

  add(id: string): void {
    if (this.capacity <= 0 || this.ids.has(id)) return;
    const evicted = this.ring[this.next];
    if (evicted !== undefined) this.ids.delete(evicted);
    this.ring[this.next] = id;
    this.ids.add(id);
    this.next = (this.next + 1) % this.capacity;
  }

  get size(): number {
    return this.ids.size;
  }
}
