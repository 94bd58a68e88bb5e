import {
  createRng,
  deriveSeed,
  ItemPool,
  normaliseTitle,
  sampleCandidates,
  shuffleInPlace,
  type EvaluationExample,
  type PromptItem,
  type SampleItems,
} from '@cprec/corpus';
import { casesFromExamples, type EvaluationCase } from '@cprec/training';

/** The fields of a stored leave-one-out validation example that fine-tuning reads. */
export type ValidationExample = Pick<
  EvaluationExample,
  | 'splitId'
  | 'userId'
  | 'domain'
  | 'history'
  | 'target'
  | 'targetEventId'
  | 'targetTsMs'
  | 'candidates'
  | 'seed'
>;

export interface SftDataOptions {
  domain: string;
  /** Titled catalogue items of the domain: the negative pool and the prompts' titles. */
  catalogue: ReadonlyArray<{ itemId: string; title: string }>;
  historyCap: number;
  negatives: number;
  maxSamples: number;
  maxValidationExamples: number;
  seed: number;
}

export interface SftData {
  /**
   * Per user, the sequence minus its last two items (= the validation example's history): what
   * SASRec is fitted on and where every training sample comes from.
   */
  trainSequences: string[][];
  /** Training samples (history → target among target + negatives). */
  train: SampleItems[];
  /** The split's own validation examples with titles (the learning-rate grid's yardstick). */
  validation: EvaluationCase[];
}

/**
 * Fine-tuning data of one target domain, built only from the validation side of the frozen
 * leave-one-out split: a user's validation example has the history "sequence minus its last two
 * items", so samples drawn from that history never contain the validation target nor the test
 * target the evaluator scores on the same split. Every position j ≥ 1 of a train sequence is a
 * possible sample (history = the `historyCap` items before it); `maxSamples` of them are drawn
 * with a seeded shuffle (so caps spread over users), and each sample's negatives come from a
 * generator seeded by (seed, domain, user, position) — the same data on every run and resume.
 */
export function buildSftData(examples: readonly ValidationExample[], options: SftDataOptions): SftData {
  const { domain } = options;
  const titles = new Map(options.catalogue.map((i) => [i.itemId, i.title]));
  const pool = new ItemPool(domain, titles.keys());
  const ofDomain = examples.filter((e) => e.domain === domain);
  const trainSequences = ofDomain.map((e) => [...e.history]);

  const positions: Array<{ user: number; at: number }> = [];
  trainSequences.forEach((seq, user) => {
    for (let at = 1; at < seq.length; at++) positions.push({ user, at });
  });
  shuffleInPlace(positions, createRng(deriveSeed(options.seed, 'sft-order', domain)));

  const item = (itemId: string): PromptItem => ({ itemId, title: titles.get(itemId) ?? '' });
  const byTitle = new Map<string, string[]>();
  for (const id of pool.items) {
    const key = normaliseTitle(titles.get(id) ?? '').toLowerCase();
    const ids = byTitle.get(key);
    if (ids) ids.push(id);
    else byTitle.set(key, [id]);
  }
  const train: SampleItems[] = [];
  for (const { user, at } of positions) {
    if (train.length >= options.maxSamples) break;
    const seq = trainSequences[user]!;
    const target = seq[at]!;
    // A target without a title cannot be written as an answer.
    if (!titles.get(target)) continue;
    const example = ofDomain[user]!;
    // Every item the user is known to have (train sequence + validation target) is excluded, and
    // so are items titled like the target (an answer must identify one candidate).
    const userItems = new Set([...seq, example.target]);
    const sameTitle = byTitle.get(normaliseTitle(titles.get(target) ?? '').toLowerCase()) ?? [];
    const excluded = new Set(sameTitle.filter((id) => id !== target && !userItems.has(id)));
    const available =
      pool.size - new Set([...userItems, target].filter((id) => pool.has(id))).size - excluded.size;
    const count = Math.max(0, Math.min(options.negatives, available));
    const rng = createRng(deriveSeed(options.seed, 'sft-candidates', domain, example.userId, at));
    const { candidates } = sampleCandidates({
      target,
      userItems,
      domainItems: pool,
      count,
      rng,
      exclude: (id) => excluded.has(id),
    });
    train.push({
      history: seq.slice(Math.max(0, at - options.historyCap), at).map(item),
      candidates: candidates.map(item),
      target: item(target),
    });
  }

  const validation = casesFromExamples(
    ofDomain.slice(0, options.maxValidationExamples).map((e) => ({ ...e, kind: 'validation' as const })),
    (id) => titles.get(id),
    options.historyCap,
  );
  return { trainSequences, train, validation };
}
