import { matchGeneration, type MatchOptions, type MatchResult } from './matching';
import type { Rank } from './ranking';

/** A candidate still on the list: its index in the original candidate list and its title. */
export interface RemainingCandidate {
  readonly index: number;
  readonly title: string;
}

/** Renders the prompt for the given candidates and returns the model's generation. */
export type GenerateFn = (candidates: readonly RemainingCandidate[]) => Promise<string>;

export interface GenerateAndRemoveInput {
  readonly candidateTitles: readonly string[];
  readonly targetIndex: number;
  readonly generate: GenerateFn;
  /** Number of generation rounds = the largest k reported. Default 5. */
  readonly k?: number;
  readonly match?: MatchOptions;
  /**
   * Greedy decoding returns the same text for the same prompt, so after an invalid generation
   * (nothing removed, same prompt) every later round would be invalid too: stop and count them as
   * misses instead of calling the model again. Set false for sampling decoders. Default true.
   */
  readonly deterministic?: boolean;
}

export interface GenerationAttempt {
  readonly text: string;
  readonly match: MatchResult;
  /** Original index of the matched candidate, when valid. */
  readonly matchedIndex?: number;
}

export interface GenerateAndRemoveResult {
  /** Round (1-based) in which the target was generated, or null within k rounds. */
  readonly rank: Rank;
  readonly attempts: readonly GenerationAttempt[];
  /** Whether the first generation (full candidate list) matched a candidate — feeds Valid Ratio. */
  readonly firstValid: boolean;
}

/**
 * The paper's iterative generate-and-remove ranking: generate, match the text to the remaining
 * candidates, and if it matched a wrong candidate remove it and generate again, up to k times.
 * The target's rank is the round in which it is generated; an invalid generation is a miss for
 * that round (nothing is removed).
 */
export async function generateAndRemove(input: GenerateAndRemoveInput): Promise<GenerateAndRemoveResult> {
  const k = input.k ?? 5;
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`k must be a positive integer, got ${k}`);
  const n = input.candidateTitles.length;
  if (!Number.isInteger(input.targetIndex) || input.targetIndex < 0 || input.targetIndex >= n) {
    throw new RangeError(`targetIndex ${input.targetIndex} is outside the ${n} candidates`);
  }
  const deterministic = input.deterministic ?? true;
  let remaining: RemainingCandidate[] = input.candidateTitles.map((title, index) => ({ index, title }));
  const attempts: GenerationAttempt[] = [];
  for (let round = 1; round <= k && remaining.length > 0; round++) {
    const text = await input.generate(remaining);
    const match = matchGeneration(
      text,
      remaining.map((c) => c.title),
      input.match,
    );
    if (!match.valid) {
      attempts.push({ text, match });
      if (deterministic) break;
      continue;
    }
    const matchedIndex = remaining[match.index].index;
    attempts.push({ text, match, matchedIndex });
    if (matchedIndex === input.targetIndex)
      return { rank: round, attempts, firstValid: attempts[0].match.valid };
    remaining = remaining.filter((c) => c.index !== matchedIndex);
  }
  return { rank: null, attempts, firstValid: attempts.length > 0 && attempts[0].match.valid };
}
