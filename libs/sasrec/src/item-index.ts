/**
 * Maps a domain's external item ids (whatever the dataset uses) to the dense indices 1..numItems
 * the models work on, and back. Index 0 is padding and never assigned.
 */
export class ItemIndex<Id extends string | number = number> {
  private readonly toDense = new Map<Id, number>();
  private readonly toExternal: Id[] = [];

  /** Builds an index over the given ids in first-seen order (duplicates are ignored). */
  static fromIds<Id extends string | number>(ids: Iterable<Id>): ItemIndex<Id> {
    const index = new ItemIndex<Id>();
    for (const id of ids) index.add(id);
    return index;
  }

  /** Builds an index over every id occurring in the given sequences, in first-seen order. */
  static fromSequences<Id extends string | number>(sequences: Iterable<readonly Id[]>): ItemIndex<Id> {
    const index = new ItemIndex<Id>();
    for (const sequence of sequences) for (const id of sequence) index.add(id);
    return index;
  }

  /** Restores an index from `toJSON()` output. */
  static fromJSON<Id extends string | number>(ids: readonly Id[]): ItemIndex<Id> {
    const index = ItemIndex.fromIds(ids);
    if (index.size !== ids.length)
      throw new Error('ItemIndex.fromJSON: duplicate ids in the serialised index');
    return index;
  }

  /** Number of real items (= the models' `numItems`). */
  get size(): number {
    return this.toExternal.length;
  }

  /** Adds an id if new; returns its dense index. */
  add(id: Id): number {
    const existing = this.toDense.get(id);
    if (existing !== undefined) return existing;
    this.toExternal.push(id);
    const dense = this.toExternal.length;
    this.toDense.set(id, dense);
    return dense;
  }

  has(id: Id): boolean {
    return this.toDense.has(id);
  }

  /** Dense index of an id; throws if the id is unknown. */
  indexOf(id: Id): number {
    const dense = this.toDense.get(id);
    if (dense === undefined) throw new Error(`ItemIndex: unknown item id ${String(id)}`);
    return dense;
  }

  /** External id of a dense index; throws for padding (0) and out-of-range indices. */
  idOf(dense: number): Id {
    if (!Number.isInteger(dense) || dense < 1 || dense > this.toExternal.length) {
      throw new Error(`ItemIndex: dense index ${dense} is not in 1..${this.toExternal.length}`);
    }
    return this.toExternal[dense - 1];
  }

  /** Maps a sequence of ids to dense indices; throws on an unknown id. */
  encode(ids: readonly Id[]): number[] {
    return ids.map((id) => this.indexOf(id));
  }

  /** Maps dense indices back to ids. */
  decode(indices: readonly number[]): Id[] {
    return indices.map((dense) => this.idOf(dense));
  }

  /** External ids in dense order (position i holds the id of index i + 1). */
  toJSON(): Id[] {
    return [...this.toExternal];
  }
}
