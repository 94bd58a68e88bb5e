import type { Interaction } from './interaction';
import { sampleCandidates, DEFAULT_NEGATIVES, type ItemPool } from './negatives';
import { createRng, deriveSeed } from './rng';
import type { DomainSequence } from './sequences';
import { normaliseTitle } from './titles';

export type EvaluationKind = 'validation' | 'test' | 'window';

/**
 * One frozen evaluation example. Everything needed to score it again is recorded: the history
 * (item ids, oldest first), the target, the shuffled candidates (target included) and the seed
 * they were drawn with. The ClickHouse split table stores exactly these fields.
 */
export interface EvaluationExample {
  readonly splitId: string;
  readonly kind: EvaluationKind;
  readonly userId: string;
  readonly domain: string;
  readonly history: readonly string[];
  readonly target: string;
  readonly targetEventId: string;
  readonly targetTsMs: number;
  readonly candidates: readonly string[];
  /** Seed of the candidate draw, derived from (split seed, kind, domain, user[, window]). */
  readonly seed: number;
}

export interface SplitOptions {
  /** Name of the split (recorded on every example). */
  readonly splitId: string;
  /** The split's recorded seed; per-example seeds are derived from it. */
  readonly splitSeed: number;
  readonly domainItems: ItemPool;
  /** Default 19. */
  readonly negatives?: number;
  /**
   * Item titles, when known: negatives whose normalised, lower-cased title equals the target's
   * are excluded, so a correct generation can always be told apart from a wrong one.
   */
  readonly titleOf?: (itemId: string) => string | undefined;
}

/** Users need at least this many items in a domain to be evaluated by leave-one-out. */
export const MIN_ITEMS_FOR_EVALUATION = 3;

/**
 * The seed of one example depends only on the split seed and the example's identity, never on
 * which examples were computed before it: two computations in different orders (or on different
 * machines) draw the same candidates.
 */
export function exampleSeed(
  splitSeed: number,
  kind: EvaluationKind,
  domain: string,
  userId: string,
  ...extra: number[]
): number {
  return deriveSeed(splitSeed, kind, domain, userId, ...extra);
}

/**
 * The negatives' exclusion for `target`: items whose normalised, lower-cased title equals the
 * target's (undefined when titles are unknown or the target has none).
 */
export function sameTitleExclusion(
  target: string,
  titleOf: SplitOptions['titleOf'],
): ((itemId: string) => boolean) | undefined {
  if (titleOf === undefined) return undefined;
  const key = (id: string): string | undefined => {
    const t = titleOf(id);
    return t === undefined ? undefined : normaliseTitle(t).toLowerCase();
  };
  const targetKey = key(target);
  if (targetKey === undefined || targetKey.length === 0) return undefined;
  return (id) => key(id) === targetKey;
}

function example(
  options: SplitOptions,
  kind: EvaluationKind,
  sequence: DomainSequence,
  targetIndex: number,
  seed: number,
): EvaluationExample {
  if (options.domainItems.domain !== sequence.domain) {
    throw new Error(
      `item pool is for domain "${options.domainItems.domain}", sequence is "${sequence.domain}"`,
    );
  }
  const target: Interaction = sequence.items[targetIndex];
  const { candidates } = sampleCandidates({
    target: target.itemId,
    // All of the user's items in the domain, including later ones: a negative the user actually
    // bought would be a false negative whichever side of the target it falls.
    userItems: sequence.items.map((i) => i.itemId),
    domainItems: options.domainItems,
    count: options.negatives ?? DEFAULT_NEGATIVES,
    rng: createRng(seed),
    exclude: sameTitleExclusion(target.itemId, options.titleOf),
  });
  return {
    splitId: options.splitId,
    kind,
    userId: sequence.userId,
    domain: sequence.domain,
    history: sequence.items.slice(0, targetIndex).map((i) => i.itemId),
    target: target.itemId,
    targetEventId: target.eventId,
    targetTsMs: target.tsMs,
    candidates,
    seed,
  };
}

export interface LeaveOneOutSplit {
  /** Items usable for training: all but the last two, or all of them for users not evaluated. */
  readonly train: readonly Interaction[];
  readonly validation?: EvaluationExample;
  readonly test?: EvaluationExample;
}

/**
 * Leave-one-out on one (user, domain) sequence: test = last item, validation = second to last,
 * training = the rest. Users with fewer than 3 items are not evaluated (all their items train).
 * The test history includes the validation item, as in SASRec/LLaRA. The caller freezes the split
 * by passing the sequence as of the split's cut-off; later events never change stored examples.
 */
export function leaveOneOut(sequence: DomainSequence, options: SplitOptions): LeaveOneOutSplit {
  const n = sequence.items.length;
  if (n < MIN_ITEMS_FOR_EVALUATION) return { train: sequence.items };
  return {
    train: sequence.items.slice(0, n - 2),
    validation: example(
      options,
      'validation',
      sequence,
      n - 2,
      exampleSeed(options.splitSeed, 'validation', sequence.domain, sequence.userId),
    ),
    test: example(
      options,
      'test',
      sequence,
      n - 1,
      exampleSeed(options.splitSeed, 'test', sequence.domain, sequence.userId),
    ),
  };
}

export interface TimeWindowOptions extends SplitOptions {
  /** Window start, inclusive (epoch ms). */
  readonly t0: number;
  /** Window end, exclusive (epoch ms). */
  readonly t1: number;
  /** The target needs at least this many earlier items. Default 1. */
  readonly minHistory?: number;
}

/**
 * Time-window split for drift monitoring on one (user, domain) sequence: the user's first
 * interaction with t0 ≤ ts < t1 is the target ("the next interaction in the window"), everything
 * before it is the history. Undefined when the user is not active in the window or has too short
 * a history.
 */
export function timeWindowExample(
  sequence: DomainSequence,
  options: TimeWindowOptions,
): EvaluationExample | undefined {
  if (!(options.t0 < options.t1))
    throw new RangeError(`time window needs t0 < t1, got [${options.t0}, ${options.t1})`);
  const minHistory = options.minHistory ?? 1;
  const index = sequence.items.findIndex((i) => i.tsMs >= options.t0 && i.tsMs < options.t1);
  if (index < 0 || index < minHistory) return undefined;
  const seed = exampleSeed(
    options.splitSeed,
    'window',
    sequence.domain,
    sequence.userId,
    options.t0,
    options.t1,
  );
  return example(options, 'window', sequence, index, seed);
}
