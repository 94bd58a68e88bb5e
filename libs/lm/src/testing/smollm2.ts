import { existsSync } from 'node:fs';
import { resolve } from 'node:path';

/** ../shared/models/smollm2-135m-instruct next to the repository (read by path, never copied). */
export const SMOLLM2_DIR = resolve(__dirname, '../../../../../shared/models/smollm2-135m-instruct');
export const SMOLLM2_GGUF = resolve(SMOLLM2_DIR, 'SmolLM2-135M-Instruct.Q4_1.gguf');
/** Hugging Face transformers' outputs for two prompts (SOURCE.md: how they were made). */
export const SMOLLM2_REFERENCE_DECODE = resolve(SMOLLM2_DIR, 'reference-decode.json');
/** 2,112 texts with the reference tokenizer's ids. */
export const SMOLLM2_TOKENIZER_GOLDEN = resolve(SMOLLM2_DIR, 'tokenizer-golden.jsonl');

export function smollm2Available(): boolean {
  return (
    existsSync(SMOLLM2_GGUF) && existsSync(SMOLLM2_REFERENCE_DECODE) && existsSync(SMOLLM2_TOKENIZER_GOLDEN)
  );
}

/**
 * In CI the shared models are laid beside the clone, so a missing file is a broken set-up, not a
 * reason to skip; elsewhere the specs skip with this message.
 */
export function requireSmollm2OrSkip(): boolean {
  if (smollm2Available()) return true;
  if (process.env.CI === 'true')
    throw new Error(`SmolLM2-135M not found at ${SMOLLM2_DIR} (CI needs ../shared)`);
  console.warn(
    `SmolLM2-135M not found at ${SMOLLM2_DIR}: its specs are skipped (never copied into the repo)`,
  );
  return false;
}

export interface ReferenceDecode {
  prompt: string;
  ids: number[];
  last_top5_ids: number[];
  last_top5_logits: number[];
  greedy_ids: number[];
  greedy_text: string;
}
