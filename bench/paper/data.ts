import { createHash } from 'node:crypto';
import { join } from 'node:path';
import {
  createRng,
  deriveSeed,
  DomainSequenceBuilder,
  interactionFromEvent,
  ItemPool,
  mixedSamples,
  MixedSequenceBuilder,
  protocolSample,
  randomInt,
  shuffleInPlace,
  type DomainSequence,
  type Rng,
  type SampleItems,
} from '@cprec/corpus';
import { openDataset } from '@cprec/datasets';
import { loadDomainSplit, type EvaluationCase } from '@cprec/training';
import { SFT_POOL, TARGET_FOLDERS, type PaperConfig, type TargetKey } from './config';

/** What CPT trains on, in training order. */
export interface CptData {
  /**
   * Domain-specific samples, all source domains shuffled together: (stable + annealing steps) ×
   * batch of them, so that the ablations that replace the mixed samples by domain-specific ones
   * (`ds-only`) or move them (`mix-stable`) see as many samples as CPRec.
   */
  domain: SampleItems[];
  /** Mixed (all-domain) samples: annealing steps × batch. */
  mixed: SampleItems[];
  stats: CptDataStats;
}

export interface CptDataStats {
  perDomain: Record<string, { users: number; items: number; interactions: number; samples: number }>;
  mixed: { users: number; validWindows: number; samples: number; domains: string[] };
}

/** One target domain's frozen evaluation data and training material. */
export interface TargetData {
  key: TargetKey;
  folder: string;
  domain: string;
  /** Every item of the domain: the negatives' pool and the recommenders' index. */
  items: string[];
  /** The training part of every user's sequence (all but the last two items), for the recommenders. */
  trainSequences: string[][];
  /** Validation cases (second-to-last item) of the first `validationUsers` users: early stopping. */
  validation: EvaluationCase[];
  /** The fixed test subset (last item, 20 frozen candidates) shared by every method. */
  test: EvaluationCase[];
  /** Fine-tuning samples, one per user (the last item of the training part); few-shot = prefixes. */
  sft: SampleItems[];
  /** sha256 of the test cases' users, histories, candidates and targets. */
  testFingerprint: string;
  stats: { users: number; items: number; interactions: number; testUsers: number; sftSamples: number };
}

/** A short hash of a candidate list in its order: what every row records per user (same list ⇔ same key). */
export function candidateKey(itemIds: readonly string[]): string {
  return createHash('sha256').update(itemIds.join('\u0000')).digest('hex').slice(0, 16);
}

/** sha256 over exactly what makes two test sets the same for every method. */
export function testFingerprint(cases: readonly EvaluationCase[]): string {
  const h = createHash('sha256');
  for (const c of cases)
    h.update(
      JSON.stringify([
        c.userId,
        c.history.map((x) => x.itemId),
        c.candidates.map((x) => x.itemId),
        c.target.itemId,
      ]) + '\n',
    );
  return h.digest('hex');
}

/**
 * Picks `count` distinct (sequence, position ≥ 1) pairs uniformly over all positions of all
 * sequences whose target has a title: every next-item event of the domain is equally likely to be
 * a CPT sample, whoever the user is.
 */
function samplePositions(
  sequences: readonly DomainSequence[],
  count: number,
  titled: (itemId: string) => boolean,
  rng: Rng,
): Array<{ seq: number; pos: number }> {
  const cumulative: number[] = [];
  let total = 0;
  for (const s of sequences) {
    total += Math.max(0, s.items.length - 1);
    cumulative.push(total);
  }
  const chosen = new Set<string>();
  const out: Array<{ seq: number; pos: number }> = [];
  const maxDraws = 50 * count + 1000;
  for (let draws = 0; out.length < count && draws < maxDraws && total > 0; draws++) {
    const k = randomInt(rng, 0, total - 1);
    let lo = 0;
    let hi = cumulative.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cumulative[mid]! > k) hi = mid;
      else lo = mid + 1;
    }
    const before = lo === 0 ? 0 : cumulative[lo - 1]!;
    const pos = 1 + (k - before);
    const key = `${lo}:${pos}`;
    if (chosen.has(key) || !titled(sequences[lo]!.items[pos]!.itemId)) continue;
    chosen.add(key);
    out.push({ seq: lo, pos });
  }
  return out;
}

async function loadTitledDomain(path: string): Promise<{
  domain: string;
  titles: Map<string, string>;
  sequences: DomainSequence[];
  interactions: number;
}> {
  const dataset = openDataset({ path });
  const titles = new Map<string, string>();
  let domain = '';
  for await (const item of dataset.items()) {
    titles.set(item.item_id, item.title);
    domain = item.domain;
  }
  const builder = new DomainSequenceBuilder();
  let interactions = 0;
  for await (const e of dataset.interactions()) {
    builder.add([interactionFromEvent(e)]);
    domain = e.domain;
    interactions++;
  }
  return { domain, titles, sequences: [...builder.sequences()], interactions };
}

/**
 * The CPT corpus: domain-specific samples drawn uniformly over each source domain's next-item
 * events (equal numbers per domain), and mixed samples drawn uniformly over the valid windows of
 * the real cross-domain users' all-domain sequences — every sample in the one prompt protocol
 * (history, 20 candidates from the target's own domain, titles).
 */
export async function buildCptData(config: PaperConfig, log: (m: string) => void): Promise<CptData> {
  const { protocol } = config;
  const b = config.cpt.batchSize;
  const domainCount = (config.cpt.stableSteps + config.cpt.annealSteps) * b;
  const mixedCount = config.cpt.annealSteps * b;
  const perDomainCount = Math.ceil(domainCount / config.cptDomains.length);
  const rng = createRng(deriveSeed(config.dataSeed, 'cpt-data'));
  const domainSamples: SampleItems[] = [];
  const perDomain: CptDataStats['perDomain'] = {};
  for (const folder of config.cptDomains) {
    const d = await loadTitledDomain(join(config.dataDir, folder));
    const items = new Set<string>(d.titles.keys());
    for (const s of d.sequences) for (const i of s.items) items.add(i.itemId);
    const pool = new ItemPool(d.domain, items);
    const picks = samplePositions(d.sequences, perDomainCount, (id) => d.titles.has(id), rng);
    for (const { seq, pos } of picks) {
      const s = d.sequences[seq]!;
      domainSamples.push(
        protocolSample(protocol, {
          history: s.items.slice(0, pos).map((i) => i.itemId),
          target: s.items[pos]!.itemId,
          userItems: s.items.map((i) => i.itemId),
          pool,
          titleOf: (id) => d.titles.get(id),
          rng,
        }),
      );
    }
    perDomain[folder] = {
      users: new Set(d.sequences.map((s) => s.userId)).size,
      items: pool.size,
      interactions: d.interactions,
      samples: picks.length,
    };
    log(`  CPT source ${folder}: ${picks.length} samples from ${d.sequences.length} sequences`);
  }
  shuffleInPlace(domainSamples, rng);
  domainSamples.length = Math.min(domainSamples.length, domainCount);

  const linked = openDataset({
    path: join(config.dataDir, config.mixedSource.folder),
    domains: config.mixedSource.domains,
  });
  const titles = new Map<string, string>();
  const poolIds = new Map<string, Set<string>>();
  for await (const item of linked.items()) {
    titles.set(`${item.domain}/${item.item_id}`, item.title);
    let set = poolIds.get(item.domain);
    if (!set) poolIds.set(item.domain, (set = new Set()));
    set.add(item.item_id);
  }
  const mixedBuilder = new MixedSequenceBuilder();
  for await (const e of linked.interactions()) mixedBuilder.add([interactionFromEvent(e)]);
  const pools = new Map([...poolIds].map(([d, s]) => [d, new ItemPool(d, s)]));
  // Every valid window (the paper's guideline: ≥ 2 domains, the target's domain earlier in it).
  const windows: Array<{ history: string[]; target: string; domain: string; userItems: string[] }> = [];
  let users = 0;
  for (const seq of mixedBuilder.sequences()) {
    let any = false;
    for (const w of mixedSamples(seq, { windowSize: protocol.historyLength + 1 })) {
      if (!titles.has(`${w.target.domain}/${w.target.itemId}`)) continue;
      any = true;
      windows.push({
        // History items keep their own domain's title: the prompt mixes domains in time order.
        history: w.history.map((i) => `${i.domain}/${i.itemId}`),
        target: w.target.itemId,
        domain: w.target.domain,
        userItems: seq.items.filter((i) => i.domain === w.target.domain).map((i) => i.itemId),
      });
    }
    if (any) users++;
  }
  shuffleInPlace(windows, rng);
  const mixed: SampleItems[] = windows.slice(0, mixedCount).map((w) => {
    const pool = pools.get(w.domain)!;
    const sample = protocolSample(protocol, {
      history: [],
      target: w.target,
      userItems: w.userItems,
      pool,
      titleOf: (id) => titles.get(`${w.domain}/${id}`),
      rng,
    });
    const history = w.history.slice(Math.max(0, w.history.length - protocol.historyLength));
    return {
      ...sample,
      history: history.map((key) => ({ itemId: key, title: titles.get(key) ?? '' })),
    };
  });
  log(`  mixed: ${windows.length} valid windows from ${users} users, ${mixed.length} samples`);
  if (mixed.length < mixedCount)
    throw new Error(
      `only ${mixed.length} mixed samples available, ${mixedCount} needed (annealing steps × batch)`,
    );
  if (domainSamples.length < domainCount)
    throw new Error(`only ${domainSamples.length} domain-specific samples available, ${domainCount} needed`);
  return {
    domain: domainSamples,
    mixed,
    stats: {
      perDomain,
      mixed: {
        users,
        validWindows: windows.length,
        samples: mixed.length,
        domains: config.mixedSource.domains,
      },
    },
  };
}

/**
 * A target domain: leave-one-out over ALL its users (the recommenders train on every user's
 * training part), the frozen 20-candidate test cases of a fixed random subset of users, validation
 * cases for early stopping, and one fine-tuning sample per user drawn from the training part only.
 */
export async function buildTargetData(
  config: PaperConfig,
  key: TargetKey,
  log: (m: string) => void,
): Promise<TargetData> {
  const { protocol } = config;
  const folder = TARGET_FOLDERS[key];
  const dataset = openDataset({ path: join(config.dataDir, folder) });
  const split = await loadDomainSplit(dataset, {
    seed: config.dataSeed,
    negatives: protocol.candidates - 1,
    historyCap: protocol.historyLength,
  });
  // The full sequence of every evaluated user: the test example's history plus its target.
  const fullItems = new Map<string, string[]>();
  for (const e of split.testExamples) fullItems.set(e.userId, [...e.history, e.target]);
  const pool = new ItemPool(split.domain, split.items);
  const sft: SampleItems[] = [];
  for (const seq of split.trainSequences) {
    if (sft.length >= SFT_POOL) break;
    if (seq.items.length < 2) continue;
    const rng = createRng(deriveSeed(config.dataSeed, 'sft', key, seq.userId));
    sft.push(
      protocolSample(protocol, {
        history: seq.items.slice(0, -1),
        target: seq.items[seq.items.length - 1]!,
        userItems: fullItems.get(seq.userId) ?? seq.items,
        pool,
        titleOf: (id) => split.titles.get(id),
        rng,
      }),
    );
  }
  const test = split.test.slice(0, config.testUsers);
  const interactions = split.trainSequences.reduce((n, s) => n + s.items.length, 0) + 2 * split.test.length;
  log(
    `  target ${key}: ${split.totalUsers} users, ${split.items.length} items, ${test.length} test users, ${sft.length} SFT samples`,
  );
  if (test.length < config.testUsers)
    throw new Error(`${folder}: only ${test.length} test users, ${config.testUsers} asked for`);
  return {
    key,
    folder,
    domain: split.domain,
    items: split.items,
    trainSequences: split.trainSequences.map((s) => s.items),
    validation: split.validation.slice(0, config.validationUsers),
    test,
    sft,
    testFingerprint: testFingerprint(test),
    stats: {
      users: split.totalUsers,
      items: split.items.length,
      interactions,
      testUsers: test.length,
      sftSamples: sft.length,
    },
  };
}
