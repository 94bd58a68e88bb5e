import { randomInt, type Rng } from './rng';
import { displayTitle } from './titles';

/** An item as shown in a prompt. `title` is raw; it is normalised when rendered/encoded. */
export interface PromptItem {
  readonly itemId: string;
  readonly title: string;
}

/** 'text': titles only. 'hybrid': each title followed by a placeholder for a projected embedding. */
export type PromptStyle = 'text' | 'hybrid';
/** Which tokens train: only the answer (fine-tuning), or the whole text (continual pre-training). */
export type LossScope = 'answer' | 'all';

/**
 * A phrasing: literal text with exactly one `{history}` and one `{candidates}` slot, ending where
 * the answer begins. The answer follows after one space.
 */
export interface Phrasing {
  readonly id: string;
  readonly text: string;
}

export interface PromptSample {
  readonly phrasing: Phrasing;
  readonly style: PromptStyle;
  readonly lossScope: LossScope;
  /** Oldest first. */
  readonly history: readonly PromptItem[];
  /** In display order; contains the target. */
  readonly candidates: readonly PromptItem[];
  readonly target: PromptItem;
}

export const HISTORY_SLOT = '{history}';
export const CANDIDATES_SLOT = '{candidates}';
/** Between items of a list. */
export const ITEM_SEPARATOR = ', ';
/** Between the prompt and the answer. */
export const ANSWER_SEPARATOR = ' ';
/** Text markers of the hybrid placeholders (LLaRA's names); the tokenizer stage maps them to one reserved id. */
export const HISTORY_MARKER = '[HistoryEmb]';
export const CANDIDATE_MARKER = '[CansEmb]';

/**
 * The unified, domain-agnostic CPT template of the paper (Table 1). The word "item" is used for
 * every domain so that behaviour from all domains shares one vocabulary.
 */
export const CPT_PHRASING: Phrasing = {
  id: 'cpt-unified',
  text:
    'This user has bought {history} in the previous. Please predict the next item this user will buy. ' +
    'The item title candidates are {candidates}. Choose only one item from the candidates. The answer is',
};

/**
 * Fine-tuning phrasings, one chosen at random per sample as LLaRA does (LLaRA keeps three per
 * dataset; these are our own wording in the same spirit: history, candidates, one-item answer).
 * The first is the CPT template itself, so fine-tuning also sees the phrasing CPT trained on.
 */
export const LLARA_PHRASINGS: readonly Phrasing[] = [
  { id: 'llara-0', text: CPT_PHRASING.text },
  {
    id: 'llara-1',
    text:
      'The user interacted with {history}, in that order. Which item will they pick next? ' +
      'Candidate item titles: {candidates}. Pick exactly one item from the candidates. The answer is',
  },
  {
    id: 'llara-2',
    text:
      'Here is what this user engaged with before: {history}. From these candidate items, {candidates}, ' +
      'recommend the single item the user is most likely to choose next. The recommended item is',
  },
  {
    id: 'llara-3',
    text:
      'Items this user chose so far, oldest first: {history}. Among the following items, {candidates}, ' +
      'select one item to recommend next. The item you recommend is',
  },
];

export type PhrasingPart = { kind: 'text'; text: string } | { kind: 'history' } | { kind: 'candidates' };

/** Splits a phrasing into literal text and slots; the trailing answer separator is part of the last literal. */
export function phrasingParts(phrasing: Phrasing): PhrasingPart[] {
  const pieces = phrasing.text.split(/(\{history\}|\{candidates\})/u);
  const slots = pieces.filter((p) => p === HISTORY_SLOT || p === CANDIDATES_SLOT);
  if (
    slots.filter((s) => s === HISTORY_SLOT).length !== 1 ||
    slots.filter((s) => s === CANDIDATES_SLOT).length !== 1
  ) {
    throw new Error(
      `phrasing "${phrasing.id}" must contain exactly one ${HISTORY_SLOT} and one ${CANDIDATES_SLOT}`,
    );
  }
  const parts: PhrasingPart[] = [];
  pieces.forEach((piece, i) => {
    const text = i === pieces.length - 1 ? piece + ANSWER_SEPARATOR : piece;
    if (piece === HISTORY_SLOT) parts.push({ kind: 'history' });
    else if (piece === CANDIDATES_SLOT) parts.push({ kind: 'candidates' });
    else if (text.length > 0) parts.push({ kind: 'text', text });
  });
  return parts;
}

function checkTarget(candidates: readonly PromptItem[], target: PromptItem): void {
  if (!candidates.some((c) => c.itemId === target.itemId)) {
    throw new Error(`target item "${target.itemId}" is not among the ${candidates.length} candidates`);
  }
}

export interface SampleItems {
  readonly history: readonly PromptItem[];
  readonly candidates: readonly PromptItem[];
  readonly target: PromptItem;
}

/** A CPT sample in the unified template; by default the whole text is trained on (pre-training). */
export function cptSample(items: SampleItems, lossScope: LossScope = 'all'): PromptSample {
  checkTarget(items.candidates, items.target);
  return { ...items, phrasing: CPT_PHRASING, style: 'text', lossScope };
}

/** A LLaRA fine-tuning sample: phrasing drawn from `rng` (advanced in place), loss on the answer only. */
export function llaraSample(
  items: SampleItems,
  style: PromptStyle,
  rng: Rng,
  phrasings: readonly Phrasing[] = LLARA_PHRASINGS,
): PromptSample {
  if (phrasings.length === 0) throw new Error('at least one phrasing is needed');
  checkTarget(items.candidates, items.target);
  const phrasing = phrasings[randomInt(rng, 0, phrasings.length - 1)];
  return { ...items, phrasing, style, lossScope: 'answer' };
}

/**
 * The sample as text (normalised titles, no token budget applied — see `encodeSample` for what
 * the model actually sees). `prompt + answer` is the full training text; `prompt` ends with the
 * answer separator. In the hybrid style each title is followed by its marker.
 */
export function renderPrompt(sample: PromptSample): { prompt: string; answer: string } {
  const list = (items: readonly PromptItem[], marker: string): string =>
    items
      .map((item) => {
        const title = displayTitle(item.itemId, item.title);
        return sample.style === 'hybrid' ? `${title} ${marker}` : title;
      })
      .join(ITEM_SEPARATOR);
  const prompt = phrasingParts(sample.phrasing)
    .map((part) =>
      part.kind === 'text'
        ? part.text
        : part.kind === 'history'
          ? list(sample.history, HISTORY_MARKER)
          : list(sample.candidates, CANDIDATE_MARKER),
    )
    .join('');
  return { prompt, answer: displayTitle(sample.target.itemId, sample.target.title) };
}
