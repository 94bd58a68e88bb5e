/**
 * A bounded map of recently received event ids to a fingerprint of their content. Storage
 * deduplicates anyway (ReplacingMergeTree on event_id); this spares ClickHouse the obvious
 * re-sends, counts them, and tells a re-send (same content) from a reused id (different content,
 * dead-lettered as a conflict).
 *
 * Eviction is first-in-first-out through a ring buffer next to a Map. (Evicting the oldest key of
 * an insertion-ordered Map looked simpler, but V8 leaves deleted entries as holes at the front
 * of the table, so finding the first live key turns quadratic once the set is full:
 * bench/ingest/recent-ids.micro.ts.)
 */
export class RecentIds {
  private readonly ids = new Map<string, number>();
  private readonly ring: (string | undefined)[];
  private next = 0;

  constructor(private readonly capacity: number) {
    this.ring = new Array<string | undefined>(Math.max(0, capacity));
  }

  has(id: string): boolean {
    return this.ids.has(id);
  }

  /** The fingerprint remembered for `id`, or undefined. */
  get(id: string): number | undefined {
    return this.ids.get(id);
  }

  add(id: string, fingerprint = 0): void {
    if (this.capacity <= 0 || this.ids.has(id)) return;
    const evicted = this.ring[this.next];
    if (evicted !== undefined) this.ids.delete(evicted);
    this.ring[this.next] = id;
    this.ids.set(id, fingerprint);
    this.next = (this.next + 1) % this.capacity;
  }

  /** Forgets `id` (its row was refused by storage: a later re-send must be tried again). */
  forget(id: string): void {
    this.ids.delete(id);
  }

  get size(): number {
    return this.ids.size;
  }
}
