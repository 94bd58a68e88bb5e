/**
 * A bounded set of recently stored event ids. Storage deduplicates anyway (ReplacingMergeTree on
 * event_id); this only spares ClickHouse the obvious re-sends and lets us count them. Insertion
 * order eviction over a Map is O(1) and needs no library.
 */
export class RecentIds {
  private readonly ids = new Map<string, true>();

  constructor(private readonly capacity: number) {}

  has(id: string): boolean {
    return this.ids.has(id);
  }

  add(id: string): void {
    if (this.capacity <= 0) return;
    this.ids.delete(id);
    this.ids.set(id, true);
    if (this.ids.size > this.capacity) {
      const oldest = this.ids.keys().next().value;
      if (oldest !== undefined) this.ids.delete(oldest);
    }
  }

  get size(): number {
    return this.ids.size;
  }
}
