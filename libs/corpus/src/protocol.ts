import type { TokenBudget } from './encode';
import { sampleCandidates, type ItemPool } from './negatives';
import type { Rng } from './rng';
import { sameTitleExclusion } from './splits';
import type { PromptItem, SampleItems } from './templates';

/**
 * How a next-item prompt is built: how many candidates it lists, how much history it shows and
 * the token budget it is encoded under. CPT samples, fine-tuning samples and evaluation cases are
 * all made with one protocol, so the model is trained on exactly the kind of prompt it is
 * evaluated on (the quick experiment's CPT prompts had 10 candidates, 8-token titles and 3
 * history items while evaluation had 20, 3–4 and 1 — a model can learn the wrong task that way).
 */
export interface PromptProtocol {
  /** Candidates listed: the target and `candidates − 1` random negatives (paper, LLaRA: 20). */
  readonly candidates: number;
  /** History items shown, the most recent ones (LLaRA: 10). */
  readonly historyLength: number;
  /** Encoding budget: titles whole up to `maxTitleTokens`; the whole sample within `maxTokens`. */
  readonly budget: TokenBudget;
}

/**
 * The paper's protocol for a model with a long context (SmolLM2: 8,192): 20 candidates, 10 history
 * items, titles up to 32 tokens (most titles whole), 1,024 tokens per sample.
 */
export const PAPER_PROMPT_PROTOCOL: PromptProtocol = {
  candidates: 20,
  historyLength: 10,
  budget: { maxTokens: 1024, maxTitleTokens: 32 },
};

export function validateProtocol(protocol: PromptProtocol): PromptProtocol {
  const positive = (name: string, v: number): void => {
    if (!Number.isInteger(v) || v < 1)
      throw new RangeError(`protocol.${name} must be a positive integer, got ${v}`);
  };
  positive('candidates', protocol.candidates);
  positive('historyLength', protocol.historyLength);
  positive('budget.maxTokens', protocol.budget.maxTokens);
  positive('budget.maxTitleTokens', protocol.budget.maxTitleTokens);
  if (protocol.candidates < 2)
    throw new RangeError('protocol.candidates must be at least 2 (target + a negative)');
  return protocol;
}

export interface ProtocolSampleInput {
  /** The items before the target, oldest first (any length: the protocol keeps the last ones). */
  readonly history: readonly string[];
  readonly target: string;
  /** Every item of the target's domain the user interacted with (never drawn as a negative). */
  readonly userItems: Iterable<string>;
  /** The target domain's items (the negatives' pool). */
  readonly pool: ItemPool;
  readonly titleOf: (itemId: string) => string | undefined;
  /** Advanced in place. */
  readonly rng: Rng;
}

/**
 * One sample's items under the protocol: the last `historyLength` history items, the target and
 * `candidates − 1` negatives drawn uniformly from the domain's items the user never touched and
 * not titled like the target, shuffled. The same function makes CPT and fine-tuning samples;
 * evaluation cases come from frozen leave-one-out splits drawn the same way (`leaveOneOut`).
 */
export function protocolSample(protocol: PromptProtocol, input: ProtocolSampleInput): SampleItems {
  const item = (itemId: string): PromptItem => ({ itemId, title: input.titleOf(itemId) ?? '' });
  const { candidates } = sampleCandidates({
    target: input.target,
    userItems: input.userItems,
    domainItems: input.pool,
    count: protocol.candidates - 1,
    rng: input.rng,
    exclude: sameTitleExclusion(input.target, input.titleOf),
  });
  return {
    history: input.history.slice(Math.max(0, input.history.length - protocol.historyLength)).map(item),
    candidates: candidates.map(item),
    target: item(input.target),
  };
}
