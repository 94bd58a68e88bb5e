import { compareIds, compareInteractions, type Interaction } from './interaction';

/** The duplicate rule's key within one user's group: (domain, item, timestamp). */
function itemTimeKey(i: Interaction): string {
  return `${i.domain}\u0000${i.itemId}\u0000${i.tsMs}`;
}

/** Items of one user in one domain, in the documented order. */
export interface DomainSequence {
  readonly userId: string;
  readonly domain: string;
  readonly items: readonly Interaction[];
}

/** Items of one user across all domains, merged in the documented order. */
export interface MixedSequence {
  readonly userId: string;
  readonly items: readonly Interaction[];
}

export interface AddResult {
  /** Interactions that changed a sequence (new, or an earlier-ordered copy of a duplicate). */
  readonly added: number;
  /** Interactions dropped as exact duplicates (same user, item, timestamp) of a kept one. */
  readonly duplicates: number;
}

/** Index of the first element of `items` ordered after `x` (upper bound). */
function upperBound(items: readonly Interaction[], x: Interaction): number {
  let lo = 0;
  let hi = items.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareInteractions(items[mid], x) <= 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Keeps ordered, de-duplicated interaction lists per group key, updated one event at a time.
 *
 * Why the result does not depend on arrival order: among exact duplicates the kept copy is always
 * the smallest under `compareInteractions` (if a smaller copy arrives later it replaces the kept
 * one), and each list is kept sorted by that total order. The final state is therefore a function
 * of the *set* of events added, which is what makes an incremental update equal a full rebuild.
 * Events usually arrive in time order, so insertion is an append in the common case and a binary
 * search plus splice for late events.
 */
class OrderedGroups {
  /**
   * Per group: the ordered items and, for the duplicate rule, the kept copy by (domain, item,
   * timestamp). Both builders group by user (and domain), so a duplicate always falls in the same
   * group as its original and the per-group map needs no user in its key — smaller keys and maps
   * than one global map keyed by `duplicateKey`.
   */
  private readonly groups = new Map<string, { items: Interaction[]; kept: Map<string, Interaction> }>();
  private readonly changed = new Set<string>();

  constructor(private readonly groupOf: (i: Interaction) => string) {}

  add(interaction: Interaction): boolean {
    const groupKey = this.groupOf(interaction);
    let group = this.groups.get(groupKey);
    if (group === undefined) {
      group = { items: [], kept: new Map() };
      this.groups.set(groupKey, group);
    }
    const dupKey = itemTimeKey(interaction);
    const previous = group.kept.get(dupKey);
    if (previous !== undefined) {
      if (compareInteractions(interaction, previous) >= 0) return false;
      group.items.splice(group.items.indexOf(previous), 1);
    }
    group.kept.set(dupKey, interaction);
    const items = group.items;
    const last = items[items.length - 1];
    if (last === undefined || compareInteractions(last, interaction) <= 0) items.push(interaction);
    else items.splice(upperBound(items, interaction), 0, interaction);
    this.changed.add(groupKey);
    return true;
  }

  get(group: string): readonly Interaction[] {
    return this.groups.get(group)?.items ?? [];
  }

  /** Group keys in code-unit order, so iteration never depends on arrival order. */
  sortedKeys(): string[] {
    return [...this.groups.keys()].sort(compareIds);
  }

  drainChanged(): string[] {
    const keys = [...this.changed].sort(compareIds);
    this.changed.clear();
    return keys;
  }

  get size(): number {
    return this.groups.size;
  }
}

function addAll(groups: OrderedGroups, interactions: Iterable<Interaction>): AddResult {
  let added = 0;
  let duplicates = 0;
  for (const i of interactions) {
    if (groups.add(i)) added++;
    else duplicates++;
  }
  return { added, duplicates };
}

const SEP = '\u0000';

/** Domain-specific sequences: per (user, domain), the user's items of that domain in order. */
export class DomainSequenceBuilder {
  private readonly groups = new OrderedGroups((i) => i.userId + SEP + i.domain);

  add(interactions: Iterable<Interaction>): AddResult {
    return addAll(this.groups, interactions);
  }

  sequence(userId: string, domain: string): DomainSequence {
    return { userId, domain, items: this.groups.get(userId + SEP + domain) };
  }

  /** All sequences, ordered by user then domain. */
  *sequences(): IterableIterator<DomainSequence> {
    for (const key of this.groups.sortedKeys()) yield this.fromKey(key);
  }

  /** Sequences touched since the previous call (first call: all), ordered by user then domain. */
  drainChanged(): DomainSequence[] {
    return this.groups.drainChanged().map((key) => this.fromKey(key));
  }

  get sequenceCount(): number {
    return this.groups.size;
  }

  private fromKey(key: string): DomainSequence {
    const at = key.indexOf(SEP);
    return { userId: key.slice(0, at), domain: key.slice(at + 1), items: this.groups.get(key) };
  }
}

/** All-domain mixed sequences: per user, the items of every domain merged in the documented order. */
export class MixedSequenceBuilder {
  private readonly groups = new OrderedGroups((i) => i.userId);

  add(interactions: Iterable<Interaction>): AddResult {
    return addAll(this.groups, interactions);
  }

  sequence(userId: string): MixedSequence {
    return { userId, items: this.groups.get(userId) };
  }

  /** All sequences, ordered by user. */
  *sequences(): IterableIterator<MixedSequence> {
    for (const userId of this.groups.sortedKeys()) yield this.sequence(userId);
  }

  /** Sequences touched since the previous call (first call: all), ordered by user. */
  drainChanged(): MixedSequence[] {
    return this.groups.drainChanged().map((userId) => this.sequence(userId));
  }

  get sequenceCount(): number {
    return this.groups.size;
  }
}
