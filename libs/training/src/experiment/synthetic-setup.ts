import {
  createRng,
  deriveSeed,
  DomainSequenceBuilder,
  domainSamples,
  interactionFromEvent,
  ItemPool,
  leaveOneOut,
  MixedSequenceBuilder,
  mixedSamples,
  sampleCandidates,
  type Interaction,
  type SampleItems,
} from '@cprec/corpus';
import { syntheticDataset, type SyntheticConfig } from '@cprec/datasets';
import { casesFromExamples, type EvaluationCase } from '../eval/cases';

/** Settings of the synthetic CPRec scenario (tests and the demo). */
export interface SyntheticScenarioConfig {
  seed: number;
  users: number;
  sourceDomains: readonly string[];
  targetDomain: string;
  /** Synthetic generator overrides (topics, items, cross-domain strength...). */
  generator: Partial<SyntheticConfig>;
  /** History items shown in a prompt. */
  historyCap: number;
  /** Negatives per sample (19 → 20 candidates). */
  negatives: number;
  /** Cap on CPT samples per source domain and on mixed samples. */
  maxDomainSamples: number;
  maxMixedSamples: number;
  /** Sparse target: fine-tuning sees only this many target-domain samples. */
  targetTrainSamples: number;
  validationExamples: number;
  testExamples: number;
}

export interface SyntheticScenario {
  titles: Map<string, string>;
  /** Source-domain samples for the stable phase (domain-specific). */
  domainSamples: SampleItems[];
  /** Source all-domain mixed samples for annealing. */
  mixedSamples: SampleItems[];
  /** Target-domain training samples (SFT) — few. */
  targetTrain: SampleItems[];
  /** Target-domain training sequences of the users with training samples (SASRec). */
  targetTrainSequences: string[][];
  /** Every item of the target domain (SASRec's index). */
  targetItems: string[];
  validation: EvaluationCase[];
  test: EvaluationCase[];
}

const cap = <T>(items: T[], n: number): T[] => items.slice(0, n);

/**
 * A multi-domain synthetic world with a strong cross-domain signal (users' topic tastes are shared
 * by all domains and titles carry their topic's words in every domain): continual pre-training
 * sees the source domains (domain-specific and mixed sequences), fine-tuning sees only a few
 * target-domain samples, and evaluation uses frozen leave-one-out examples of other target users.
 */
export async function buildSyntheticScenario(config: SyntheticScenarioConfig): Promise<SyntheticScenario> {
  const dataset = syntheticDataset({
    ...config.generator,
    seed: config.seed,
    users: config.users,
    domains: [...config.sourceDomains, config.targetDomain],
  });
  const titles = new Map<string, string>();
  const itemsByDomain = new Map<string, string[]>();
  for await (const item of dataset.items()) {
    titles.set(item.item_id, item.title ?? '');
    const list = itemsByDomain.get(item.domain) ?? [];
    list.push(item.item_id);
    itemsByDomain.set(item.domain, list);
  }
  const pools = new Map([...itemsByDomain].map(([d, ids]) => [d, new ItemPool(d, ids)]));
  const sourceSet = new Set(config.sourceDomains);
  const domains = new DomainSequenceBuilder();
  const mixed = new MixedSequenceBuilder();
  for await (const event of dataset.interactions()) {
    const interaction = interactionFromEvent(event);
    domains.add([interaction]);
    if (sourceSet.has(interaction.domain)) mixed.add([interaction]);
  }
  const rng = createRng(deriveSeed(config.seed, 'synthetic-scenario'));
  const item = (i: Interaction) => ({ itemId: i.itemId, title: titles.get(i.itemId) ?? '' });
  const withCandidates = (
    history: readonly Interaction[],
    target: Interaction,
    userItems: readonly string[],
  ): SampleItems => {
    const { candidates } = sampleCandidates({
      target: target.itemId,
      userItems,
      domainItems: pools.get(target.domain)!,
      count: config.negatives,
      rng,
    });
    return {
      history: history.slice(-config.historyCap).map(item),
      candidates: candidates.map((id) => ({ itemId: id, title: titles.get(id) ?? '' })),
      target: item(target),
    };
  };

  const domainPool: SampleItems[] = [];
  const targetUsers: { userId: string; items: readonly Interaction[] }[] = [];
  for (const seq of domains.sequences()) {
    if (seq.domain === config.targetDomain) {
      targetUsers.push({ userId: seq.userId, items: seq.items });
      continue;
    }
    const userItems = seq.items.map((i) => i.itemId);
    for (const s of domainSamples(seq, { historyCap: config.historyCap }))
      domainPool.push(withCandidates(s.history, s.target, userItems));
  }
  const mixedPool: SampleItems[] = [];
  for (const seq of mixed.sequences()) {
    for (const s of mixedSamples(seq, { windowSize: config.historyCap + 1 })) {
      const userItems = seq.items.filter((i) => i.domain === s.target.domain).map((i) => i.itemId);
      mixedPool.push(withCandidates(s.history, s.target, userItems));
    }
  }
  // Deterministic shuffles so caps take a spread of users, not the first ones.
  const shuffled = <T>(xs: T[]): T[] => {
    for (let i = xs.length - 1; i > 0; i--) {
      const j = Math.floor(((rng.unsafeNext() >>> 0) / 4294967296) * (i + 1));
      [xs[i], xs[j]] = [xs[j]!, xs[i]!];
    }
    return xs;
  };

  // Target users: a few train the SFT (sparse), disjoint others are validated and tested.
  shuffled(targetUsers);
  const pool = pools.get(config.targetDomain)!;
  const splitOptions = {
    splitId: `synthetic-${config.seed}`,
    splitSeed: config.seed,
    domainItems: pool,
    negatives: config.negatives,
  };
  const validation = [];
  const test = [];
  const targetTrain: SampleItems[] = [];
  const targetTrainSequences: string[][] = [];
  for (const user of targetUsers) {
    const split = leaveOneOut(
      { userId: user.userId, domain: config.targetDomain, items: user.items },
      splitOptions,
    );
    if (targetTrain.length < config.targetTrainSamples && user.items.length >= 2) {
      const userItems = user.items.map((i) => i.itemId);
      targetTrainSequences.push(userItems);
      for (const s of domainSamples(
        { userId: user.userId, domain: config.targetDomain, items: user.items },
        { historyCap: config.historyCap },
      ))
        if (targetTrain.length < config.targetTrainSamples)
          targetTrain.push(withCandidates(s.history, s.target, userItems));
      continue;
    }
    if (split.validation && validation.length < config.validationExamples) validation.push(split.validation);
    else if (split.test && test.length < config.testExamples) test.push(split.test);
  }
  const titleOf = (id: string) => titles.get(id);
  return {
    titles,
    domainSamples: cap(shuffled(domainPool), config.maxDomainSamples * config.sourceDomains.length),
    mixedSamples: cap(shuffled(mixedPool), config.maxMixedSamples),
    targetTrain,
    targetTrainSequences,
    targetItems: itemsByDomain.get(config.targetDomain) ?? [],
    validation: casesFromExamples(validation, titleOf, config.historyCap),
    test: casesFromExamples(test, titleOf, config.historyCap),
  };
}
