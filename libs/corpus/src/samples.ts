import type { Interaction } from './interaction';
import type { DomainSequence, MixedSequence } from './sequences';

/** A next-item prediction example: the history (oldest first) and the item that followed it. */
export interface SequenceSample {
  readonly userId: string;
  readonly history: readonly Interaction[];
  readonly target: Interaction;
}

/** Default window of the mixed-sequence guideline: history plus target, at most 20 items. */
export const DEFAULT_MIXED_WINDOW = 20;
/** Default history cap of domain-specific samples, as LLaRA. */
export const DEFAULT_HISTORY_CAP = 10;

export interface MixedSampleOptions {
  /** N: the window (history + target) is cut to the last N items. Default 20. */
  readonly windowSize?: number;
  /** Only targets accepted by this filter yield samples (e.g. "arrived since a watermark"). */
  readonly targetFilter?: (target: Interaction) => boolean;
}

export interface DomainSampleOptions {
  /** At most this many history items (the most recent ones). Default 10. */
  readonly historyCap?: number;
  /** Targets need at least this many earlier items. Default 1. */
  readonly minHistory?: number;
  readonly targetFilter?: (target: Interaction) => boolean;
}

function positiveInt(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1)
    throw new RangeError(`${name} must be a positive integer, got ${value}`);
  return value;
}

/**
 * The mixed-sequence guideline on one window (oldest first, the last item is the target):
 * kept only if the window spans at least 2 domains and the target's domain appears earlier in it.
 * The second rule guarantees the model has in-domain evidence for the target while still seeing
 * cross-domain context; the first is what makes the sample "mixed" at all.
 */
export function isValidMixedWindow(window: readonly Interaction[]): boolean {
  if (window.length < 2) return false;
  const targetDomain = window[window.length - 1].domain;
  let targetDomainEarlier = false;
  let otherDomain = false;
  for (let i = 0; i < window.length - 1; i++) {
    if (window[i].domain === targetDomain) targetDomainEarlier = true;
    else otherDomain = true;
    if (targetDomainEarlier && otherDomain) return true;
  }
  return false;
}

/**
 * Mixed training samples with sliding targets: every position t (1-based, t ≥ 2) whose window —
 * item t and up to N-1 items before it — satisfies `isValidMixedWindow` yields
 * {history: the window without its last item, target: item t}.
 *
 * Why sliding targets rather than one sample per user: a user's mixed sequence holds many
 * cross-domain transitions, and the last one alone would discard most of them (and bias CPT
 * towards each user's most recent domain). Sliding windows are the standard next-item
 * augmentation (SASRec, LLaRA's training split) and every window obeys the same guideline.
 */
export function* mixedSamples(
  sequence: MixedSequence,
  options: MixedSampleOptions = {},
): Generator<SequenceSample> {
  const windowSize = positiveInt('windowSize', options.windowSize ?? DEFAULT_MIXED_WINDOW);
  const items = sequence.items;
  for (let t = 1; t < items.length; t++) {
    const target = items[t];
    if (options.targetFilter !== undefined && !options.targetFilter(target)) continue;
    const window = items.slice(Math.max(0, t - windowSize + 1), t + 1);
    if (!isValidMixedWindow(window)) continue;
    yield { userId: sequence.userId, history: window.slice(0, -1), target };
  }
}

/**
 * The single last window of a user's mixed sequence (target = the user's latest item), or
 * undefined when it breaks the guideline. This is the "one mixed sequence per user" view.
 */
export function lastMixedSample(
  sequence: MixedSequence,
  windowSize = DEFAULT_MIXED_WINDOW,
): SequenceSample | undefined {
  positiveInt('windowSize', windowSize);
  const window = sequence.items.slice(Math.max(0, sequence.items.length - windowSize));
  if (!isValidMixedWindow(window)) return undefined;
  return { userId: sequence.userId, history: window.slice(0, -1), target: window[window.length - 1] };
}

/**
 * Definition used for "users with a valid mixed sequence" (the corpus statistic and the
 * real-data test): at least one sliding window of the user's mixed sequence is kept.
 */
export function hasValidMixedSequence(sequence: MixedSequence, windowSize = DEFAULT_MIXED_WINDOW): boolean {
  return !mixedSamples(sequence, { windowSize }).next().done;
}

/**
 * Domain-specific samples with sliding targets: every item with at least `minHistory` earlier
 * items in the same (user, domain) sequence is a target; the history is the `historyCap` most
 * recent earlier items.
 */
export function* domainSamples(
  sequence: DomainSequence,
  options: DomainSampleOptions = {},
): Generator<SequenceSample> {
  const historyCap = positiveInt('historyCap', options.historyCap ?? DEFAULT_HISTORY_CAP);
  const minHistory = positiveInt('minHistory', options.minHistory ?? 1);
  const items = sequence.items;
  for (let t = minHistory; t < items.length; t++) {
    const target = items[t];
    if (options.targetFilter !== undefined && !options.targetFilter(target)) continue;
    yield { userId: sequence.userId, history: items.slice(Math.max(0, t - historyCap), t), target };
  }
}
