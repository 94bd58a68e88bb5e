import { baseModelContextLength, defaultPromptTokens, type BaseModelSource } from '@cprec/lm';
import type { CommonEnv } from './config';

/**
 * The base model a service runs: its own `*_BASE_MODEL` / `*_TOKENIZER` when set, else the
 * installation's CPREC_BASE_MODEL / CPREC_BASE_TOKENIZER. A service-specific model never
 * inherits the common tokenizer (that belongs to the common model).
 */
export function baseModelSource(
  common: Pick<CommonEnv, 'CPREC_BASE_MODEL' | 'CPREC_BASE_TOKENIZER'>,
  own: { model?: string; tokenizer?: string },
): BaseModelSource {
  if (own.model) return { model: own.model, tokenizer: own.tokenizer };
  return { model: common.CPREC_BASE_MODEL, tokenizer: own.tokenizer ?? common.CPREC_BASE_TOKENIZER };
}

/**
 * A prompt budget of 0 means "follow the base model": its context, capped (defaultPromptTokens).
 * Trainer, evaluator and serving resolve it from the same base, so their prompts agree.
 */
export function promptTokensFor(configured: number, base: BaseModelSource | number): number {
  if (configured > 0) return configured;
  return defaultPromptTokens(typeof base === 'number' ? base : baseModelContextLength(base));
}
