import {
  createRng,
  deriveSeed,
  DomainSequenceBuilder,
  interactionFromEvent,
  ItemPool,
  leaveOneOut,
  shuffleInPlace,
  type EvaluationExample,
} from '@cprec/corpus';
import type { Dataset } from '@cprec/datasets';
import { casesFromExamples, type EvaluationCase } from './cases';

export interface DomainSplitOptions {
  /** Domain to evaluate (events of other domains are ignored). Default: the dataset's only domain. */
  domain?: string;
  /** Evaluate at most this many users, drawn with `seed` (all users still feed the item pool). */
  limitUsers?: number;
  /** Seeds both the user sample and the frozen candidates. */
  seed: number;
  /** Default 19 (20 candidates). */
  negatives?: number;
  /** History items shown in a prompt (LLaRA: 10). */
  historyCap?: number;
}

export interface DomainSplit {
  domain: string;
  titles: Map<string, string>;
  /** Every item of the domain (the negatives' pool and a recommender's index). */
  items: string[];
  /** Training part of every sampled user's sequence (leave-one-out: all but the last two). */
  trainSequences: { userId: string; items: string[] }[];
  validation: EvaluationCase[];
  test: EvaluationCase[];
  validationExamples: EvaluationExample[];
  testExamples: EvaluationExample[];
  /** Users in the domain before sampling. */
  totalUsers: number;
}

/**
 * Frozen leave-one-out validation/test examples of one domain of a dataset (titles attached):
 * what `cprec eval` and the quick experiment evaluate on. Negatives exclude the user's items and
 * items titled like the target.
 */
export async function loadDomainSplit(dataset: Dataset, options: DomainSplitOptions): Promise<DomainSplit> {
  const titles = new Map<string, string>();
  const itemsByDomain = new Map<string, Set<string>>();
  for await (const item of dataset.items()) {
    titles.set(item.item_id, item.title ?? '');
    let set = itemsByDomain.get(item.domain);
    if (!set) itemsByDomain.set(item.domain, (set = new Set()));
    set.add(item.item_id);
  }
  const domains = new DomainSequenceBuilder();
  for await (const event of dataset.interactions()) {
    if (options.domain !== undefined && event.domain !== options.domain) continue;
    domains.add([interactionFromEvent(event)]);
    if (event.title && !titles.has(event.item_id)) titles.set(event.item_id, event.title);
    let set = itemsByDomain.get(event.domain);
    if (!set) itemsByDomain.set(event.domain, (set = new Set()));
    set.add(event.item_id);
  }
  const sequences = [...domains.sequences()];
  const seen = [...new Set(sequences.map((s) => s.domain))];
  const domain = options.domain ?? seen[0];
  if (domain === undefined)
    throw new Error(
      `${dataset.name}: no interactions${options.domain ? ` in domain ${options.domain}` : ''}`,
    );
  if (options.domain === undefined && seen.length > 1)
    throw new Error(`${dataset.name} has several domains (${seen.join(', ')}): choose one`);
  const pool = new ItemPool(domain, itemsByDomain.get(domain) ?? []);
  const mine = sequences.filter((s) => s.domain === domain);
  shuffleInPlace(mine, createRng(deriveSeed(options.seed, 'users', domain)));
  const sampled = mine.slice(0, options.limitUsers ?? mine.length);
  const splitOptions = {
    splitId: `${dataset.name}/${domain}/loo-${options.seed}`,
    splitSeed: options.seed,
    domainItems: pool,
    negatives: options.negatives ?? 19,
    titleOf: (id: string) => titles.get(id),
  };
  const validationExamples: EvaluationExample[] = [];
  const testExamples: EvaluationExample[] = [];
  const trainSequences: DomainSplit['trainSequences'] = [];
  for (const seq of sampled) {
    const split = leaveOneOut(seq, splitOptions);
    trainSequences.push({ userId: seq.userId, items: split.train.map((i) => i.itemId) });
    if (split.validation) validationExamples.push(split.validation);
    if (split.test) testExamples.push(split.test);
  }
  const titleOf = (id: string) => titles.get(id);
  return {
    domain,
    titles,
    items: pool.items.slice(),
    trainSequences,
    validation: casesFromExamples(validationExamples, titleOf, options.historyCap),
    test: casesFromExamples(testExamples, titleOf, options.historyCap),
    validationExamples,
    testExamples,
    totalUsers: mine.length,
  };
}
