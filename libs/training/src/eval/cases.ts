import type { EvaluationExample, PromptItem, SampleItems } from '@cprec/corpus';
import { DEFAULT_HISTORY_CAP } from '@cprec/corpus';

/** One frozen test (or validation) example with titles: what `evaluateModel` scores. */
export interface EvaluationCase extends SampleItems {
  readonly domain: string;
  readonly userId: string;
  /** The user's full history length in the domain (sparsity bucket), before any cap. */
  readonly historyLength: number;
}

/**
 * Attaches titles to frozen split examples. The prompt shows the `historyCap` most recent history
 * items (LLaRA: 10); the sparsity bucket uses the full history length.
 */
export function casesFromExamples(
  examples: readonly EvaluationExample[],
  titleOf: (itemId: string) => string | undefined,
  historyCap = DEFAULT_HISTORY_CAP,
): EvaluationCase[] {
  const item = (itemId: string): PromptItem => ({ itemId, title: titleOf(itemId) ?? '' });
  return examples.map((e) => ({
    domain: e.domain,
    userId: e.userId,
    historyLength: e.history.length,
    history: e.history.slice(Math.max(0, e.history.length - historyCap)).map(item),
    candidates: e.candidates.map(item),
    target: item(e.target),
  }));
}
