import { ITEM_SEPARATOR, phrasingParts, type PromptItem, type PromptSample } from './templates';
import { displayTitle } from './titles';

/** What the corpus needs from a tokenizer; the LM library's tokenizer satisfies it. */
export interface Tokenizer {
  encode(text: string, opts?: { bos?: boolean; eos?: boolean }): number[];
  decode(ids: number[]): string;
  readonly bosId: number;
  readonly eosId: number;
}

export interface TokenBudget {
  /** Hard cap on the encoded sample: BOS + prompt + answer + EOS (what must fit the model context). */
  readonly maxTokens: number;
  /** Each title (history, candidates, answer) is cut to at most this many tokens. */
  readonly maxTitleTokens: number;
}

export interface EncodeOptions {
  /** Reserved token id put where a projected item embedding goes; required for hybrid samples. */
  readonly placeholderId?: number;
  /**
   * false: stop after the prompt (generation). The prompt is the same as in training either way,
   * because the budget always reserves room for the answer.
   */
  readonly includeAnswer?: boolean;
}

export interface Placeholder {
  /** Index in `inputIds`. */
  readonly position: number;
  readonly itemId: string;
  readonly kind: 'history' | 'candidate';
}

export interface EncodedSample {
  readonly inputIds: Int32Array;
  /** 1 where `inputIds[i]` is a training target (predicted from positions < i). */
  readonly lossMask: Uint8Array;
  readonly placeholders: readonly Placeholder[];
  /** The answer as the model is trained to write it (the target's title after truncation). */
  readonly answerText: string;
  /** Candidate titles exactly as shown in the prompt, in prompt order — what generations are matched to. */
  readonly candidateTitles: readonly string[];
  readonly candidateItemIds: readonly string[];
  /** History items that survived the budget, oldest first. */
  readonly historyItemIds: readonly string[];
  /** Number of tokens before the answer (BOS included). */
  readonly promptLength: number;
  /** Per-title token cap actually used (≤ budget.maxTitleTokens). */
  readonly titleTokens: number;
}

export class TokenBudgetError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TokenBudgetError';
  }
}

/**
 * Encodes a prompt sample into token ids under a hard budget.
 *
 * Policy (documented in docs/corpus.md):
 * 1. Titles are normalised (HTML entities, whitespace) and each is cut to `maxTitleTokens`.
 *    The answer uses the target's candidate rendering, so the trained answer is character-for-
 *    character one of the titles the prompt shows.
 * 2. If the sample is still too long, the oldest history items are dropped, down to one.
 * 3. If one history item is still too long (20 long candidate titles), the per-title cap is
 *    lowered step by step — for every title alike — and as much history as fits is then kept.
 * 4. If even one-token titles do not fit, a TokenBudgetError explains the numbers.
 *
 * Pieces (literal text, each title, the separator) are encoded separately and concatenated, so
 * placeholder positions are exact and titles truncate independently. Training and generation
 * encode the same way, so the model always sees this segmentation.
 */
export function encodeSample(
  sample: PromptSample,
  tokenizer: Tokenizer,
  budget: TokenBudget,
  options: EncodeOptions = {},
): EncodedSample {
  if (!Number.isInteger(budget.maxTokens) || budget.maxTokens < 1)
    throw new RangeError('maxTokens must be a positive integer');
  if (!Number.isInteger(budget.maxTitleTokens) || budget.maxTitleTokens < 1)
    throw new RangeError('maxTitleTokens must be a positive integer');
  const hybrid = sample.style === 'hybrid';
  if (hybrid && options.placeholderId === undefined)
    throw new Error('hybrid samples need options.placeholderId');
  const includeAnswer = options.includeAnswer ?? true;

  const parts = phrasingParts(sample.phrasing).map((part) =>
    part.kind === 'text' ? { kind: part.kind, ids: tokenizer.encode(part.text) } : part,
  );
  const literalTokens = parts.reduce((n, p) => n + (p.kind === 'text' ? p.ids.length : 0), 0);
  const separator = tokenizer.encode(ITEM_SEPARATOR);

  const titleCache = new Map<string, { text: string; ids: number[] }>();
  const titleOf = (item: PromptItem): { text: string; ids: number[] } => {
    let entry = titleCache.get(item.itemId);
    if (entry === undefined) {
      const text = displayTitle(item.itemId, item.title);
      entry = { text, ids: tokenizer.encode(text) };
      titleCache.set(item.itemId, entry);
    }
    return entry;
  };
  const perItem = hybrid ? 1 : 0;
  const listCost = (items: readonly PromptItem[], cap: number): number =>
    items.reduce((n, item) => n + Math.min(titleOf(item).ids.length, cap) + perItem, 0) +
    Math.max(0, items.length - 1) * separator.length;
  const costWith = (historyCount: number, cap: number): number =>
    1 + // BOS
    literalTokens +
    listCost(sample.history.slice(sample.history.length - historyCount), cap) +
    listCost(sample.candidates, cap) +
    Math.min(titleOf(sample.target).ids.length, cap) +
    1; // EOS

  const minHistory = Math.min(1, sample.history.length);
  let cap = budget.maxTitleTokens;
  while (costWith(minHistory, cap) > budget.maxTokens) {
    if (cap === 1) {
      throw new TokenBudgetError(
        `sample needs ${costWith(minHistory, 1)} tokens with one-token titles and ${minHistory} history item(s), ` +
          `over the budget of ${budget.maxTokens}: the template and ${sample.candidates.length} candidates do not fit`,
      );
    }
    cap = Math.max(1, Math.floor(cap * 0.75));
  }
  let historyCount = sample.history.length;
  while (historyCount > minHistory && costWith(historyCount, cap) > budget.maxTokens) historyCount--;
  const history = sample.history.slice(sample.history.length - historyCount);

  const shown = (item: PromptItem): { text: string; ids: number[] } => {
    const { text, ids } = titleOf(item);
    return ids.length <= cap
      ? { text, ids }
      : { text: tokenizer.decode(ids.slice(0, cap)), ids: ids.slice(0, cap) };
  };

  const ids: number[] = [tokenizer.bosId];
  const mask: number[] = [0];
  const placeholders: Placeholder[] = [];
  const promptMask = sample.lossScope === 'all' ? 1 : 0;
  const push = (piece: readonly number[], m: number): void => {
    for (const id of piece) {
      ids.push(id);
      mask.push(m);
    }
  };
  const pushList = (items: readonly PromptItem[], kind: Placeholder['kind']): void => {
    items.forEach((item, k) => {
      if (k > 0) push(separator, promptMask);
      push(shown(item).ids, promptMask);
      if (hybrid && options.placeholderId !== undefined) {
        placeholders.push({ position: ids.length, itemId: item.itemId, kind });
        push([options.placeholderId], 0); // an injected embedding is never a prediction target
      }
    });
  };
  for (const part of parts) {
    if (part.kind === 'text') push(part.ids, promptMask);
    else if (part.kind === 'history') pushList(history, 'history');
    else pushList(sample.candidates, 'candidate');
  }
  const promptLength = ids.length;
  const answer = shown(sample.target);
  if (includeAnswer) {
    push(answer.ids, 1);
    push([tokenizer.eosId], 1);
  }
  return {
    inputIds: Int32Array.from(ids),
    lossMask: Uint8Array.from(mask),
    placeholders,
    answerText: answer.text,
    candidateTitles: sample.candidates.map((c) => shown(c).text),
    candidateItemIds: sample.candidates.map((c) => c.itemId),
    historyItemIds: history.map((h) => h.itemId),
    promptLength,
    titleTokens: cap,
  };
}
