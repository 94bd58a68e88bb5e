import {
  ANSWER_SEPARATOR,
  ITEM_SEPARATOR,
  phrasingParts,
  type Phrasing,
  type PromptItem,
  type PromptSample,
} from './templates';
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
  /**
   * The answer's token ids exactly as training puts them after the prompt (EOS excluded): equal to
   * `candidateTokenIds[targetIndex]`.
   */
  readonly answerTokenIds: readonly number[];
  /** Candidate titles exactly as shown in the prompt, in prompt order — what generations are matched to. */
  readonly candidateTitles: readonly string[];
  /**
   * Each candidate's token ids as the prompt shows them and as an answer naming it is trained
   * (EOS excluded). Candidate scoring must use these ids: re-encoding the decoded text of a
   * truncated title does not give them back (a tokenizer that adds a leading space would add it
   * again, and BPE may merge the cut differently).
   */
  readonly candidateTokenIds: readonly (readonly number[])[];
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
 * Whether `encode` puts a space in front of its text (SentencePiece's "dummy prefix", e.g. the
 * llama2.c tokenizer): then `encode("Mario")` already reads " Mario". Probed once per tokenizer
 * object by decoding the encoding of a single letter.
 */
const prefixSpaceCache = new WeakMap<Tokenizer, boolean>();
function addsPrefixSpace(tokenizer: Tokenizer): boolean {
  let known = prefixSpaceCache.get(tokenizer);
  if (known === undefined) {
    known = tokenizer.decode(tokenizer.encode('a')).startsWith(' ');
    prefixSpaceCache.set(tokenizer, known);
  }
  return known;
}

/**
 * Token ids of `text` as it reads inside running text, its leading space included: " Super Mario"
 * after "bought" becomes the ids a tokenizer gives " Super Mario" in the middle of a sentence.
 *
 * Why pieces carry their leading space: byte-level BPE (GPT-2, SmolLM2) merges a word with the
 * space before it (" Mario" is one token), so encoding "bought " and "Super Mario" separately would
 * give "bought", " ", "Super" — a segmentation the pre-trained model has hardly ever seen. With the
 * space on the next piece, concatenating the pieces gives the ids of the whole text. A tokenizer
 * with a dummy prefix adds the space itself, so it is given the text without it (and a piece with
 * no leading space loses the prefix token it would otherwise get, when that token is a lone space).
 */
export function encodePiece(tokenizer: Tokenizer, text: string, atStart = false): number[] {
  if (!addsPrefixSpace(tokenizer)) return tokenizer.encode(text);
  if (text.startsWith(' ')) return tokenizer.encode(text.slice(1));
  const ids = tokenizer.encode(text);
  if (!atStart && ids.length > 0 && tokenizer.decode([ids[0]]) === ' ') return ids.slice(1);
  return ids;
}

/** A literal run of the template (whitespace moved onto what follows it) or a list slot. */
export type PhrasingPiece =
  | { readonly kind: 'text'; readonly text: string; readonly atStart: boolean }
  | { readonly kind: 'history' }
  | { readonly kind: 'candidates' };

/**
 * The phrasing as `encodeSample` encodes it: literal pieces and slots, every literal's trailing
 * whitespace moved to the next piece (`encodePiece`). Titles are always encoded with one leading
 * space, so a slot must follow one space (or start the phrasing), and the phrasing must end where
 * the answer follows the answer separator (a space). Word-level test tokenizers build their
 * vocabulary from these pieces.
 */
export function phrasingPieces(phrasing: Phrasing): PhrasingPiece[] {
  const parts = phrasingParts(phrasing);
  const out: PhrasingPiece[] = [];
  let first = true;
  let carried = '';
  parts.forEach((part, i) => {
    if (part.kind !== 'text') {
      if (carried !== ' ' && !(first && carried === ''))
        throw new Error(
          `phrasing "${phrasing.id}": a ${part.kind} slot must follow one space (titles carry their leading space)`,
        );
      out.push({ kind: part.kind });
      first = false;
      carried = '';
      return;
    }
    const body = (carried + part.text).replace(/\s+$/u, '');
    carried = (carried + part.text).slice(body.length);
    if (i === parts.length - 1 && carried !== ANSWER_SEPARATOR)
      throw new Error(`phrasing "${phrasing.id}" must end where the answer follows one space`);
    if (body.length > 0) {
      out.push({ kind: 'text', text: body, atStart: first });
      first = false;
    }
  });
  return out;
}

type Segment = { kind: 'text'; ids: number[] } | { kind: 'history' } | { kind: 'candidates' };

function templateSegments(sample: PromptSample, tokenizer: Tokenizer): Segment[] {
  return phrasingPieces(sample.phrasing).map((p) =>
    p.kind === 'text' ? { kind: 'text', ids: encodePiece(tokenizer, p.text, p.atStart) } : p,
  );
}

/**
 * Encodes a prompt sample into token ids under a hard budget.
 *
 * Policy (documented in docs/corpus.md):
 * 1. Titles are normalised (HTML entities, whitespace) and each is cut to `maxTitleTokens`.
 *    The answer uses the target's candidate rendering, so the trained answer is token-for-token
 *    one of the titles the prompt shows (`candidateTokenIds`).
 * 2. If the sample is still too long, the oldest history items are dropped, down to one.
 * 3. If one history item is still too long (20 long candidate titles), the per-title cap is
 *    lowered step by step — for every title alike — and as much history as fits is then kept.
 * 4. If even one-token titles do not fit, a TokenBudgetError explains the numbers.
 *
 * Pieces (literal text, each title, the separator) are encoded separately and concatenated, so
 * placeholder positions are exact and titles truncate independently; each piece carries its
 * leading space (`encodePiece`), so without truncation the ids are those of the whole text.
 * Training, generation and candidate scoring all use these ids.
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

  const parts = templateSegments(sample, tokenizer);
  const literalTokens = parts.reduce((n, p) => n + (p.kind === 'text' ? p.ids.length : 0), 0);
  // ", " between items: the comma here, its space on the next title.
  const separator = encodePiece(tokenizer, ITEM_SEPARATOR.trimEnd());

  const titleCache = new Map<string, { text: string; ids: number[] }>();
  const titleOf = (item: PromptItem): { text: string; ids: number[] } => {
    let entry = titleCache.get(item.itemId);
    if (entry === undefined) {
      const text = displayTitle(item.itemId, item.title);
      entry = { text, ids: encodePiece(tokenizer, ANSWER_SEPARATOR + text) };
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

  /** The title as shown: whole, or its first `cap` tokens (text decoded from exactly those ids). */
  const shown = (item: PromptItem): { text: string; ids: number[] } => {
    const { text, ids } = titleOf(item);
    if (ids.length <= cap) return { text, ids };
    const cut = ids.slice(0, cap);
    return { text: tokenizer.decode(cut).trim(), ids: cut };
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
  const candidates = sample.candidates.map(shown);
  return {
    inputIds: Int32Array.from(ids),
    lossMask: Uint8Array.from(mask),
    placeholders,
    answerText: answer.text,
    answerTokenIds: answer.ids,
    candidateTitles: candidates.map((c) => c.text),
    candidateTokenIds: candidates.map((c) => c.ids),
    candidateItemIds: sample.candidates.map((c) => c.itemId),
    historyItemIds: history.map((h) => h.itemId),
    promptLength,
    titleTokens: cap,
  };
}
