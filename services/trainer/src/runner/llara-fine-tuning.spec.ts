import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { looSplitId } from '@cprec/contracts';
import { ItemPool, leaveOneOut, type DomainSequence } from '@cprec/corpus';
import {
  attachLora,
  LlamaModel,
  randomWeights,
  readLoraManifest,
  saveLoraAdapter,
  selectBackend,
} from '@cprec/lm';
import { ITEM_EMBEDDINGS_FILE, PROJECTOR_FILE, RoundStoppedError, SFT_ADAPTER_DIR } from '@cprec/training';
import { WordTokenizer } from '@cprec/training/testing';
import { BUNDLE_FILE, LlaraFineTuning, SASREC_DIR, type SftBundleInfo } from './llara-fine-tuning';
import type { RoundJob, RunnerStep, SftJobSpec } from './protocol';
import type { ValidationExample } from './sft-data';
import type { TargetDomainSource } from './target-domains';

/**
 * The fine-tuning port without servers: an in-memory split source (frozen with libs/corpus's
 * leaveOneOut, as the sequencer does), a tiny random LLaMA and a CPT adapter saved from it.
 */

const SEED = 7;
const EPOCH = 'spec';
const titles = (domain: string, n: number) =>
  Array.from({ length: n }, (_, i) => ({
    itemId: `${domain}-${i}`,
    title: `${['red', 'blue', 'green', 'fast'][i % 4]} ${domain} ${i}`,
  }));
const catalogues: Record<string, Array<{ itemId: string; title: string }>> = {
  games: titles('games', 40),
  toys: titles('toys', 40),
};

function sequence(domain: string, u: number, length: number): DomainSequence {
  return {
    userId: `u${u}`,
    domain,
    items: Array.from({ length }, (_, k) => ({
      eventId: `${domain}-${u}-${k}`,
      userId: `u${u}`,
      itemId: `${domain}-${(u * 5 + k) % 40}`,
      domain,
      tsMs: k,
      seq: k,
    })),
  };
}

/** Plays the sequencer (freezes on request) and ClickHouse reads. */
class MemorySource implements TargetDomainSource {
  readonly requested: string[] = [];
  closed = false;
  private readonly frozen = new Map<string, ValidationExample[]>();

  constructor(
    private readonly users: Record<string, DomainSequence[]>,
    private readonly unavailable: string[] = [],
  ) {}

  async ensureLooSplit(splitId: string, domain: string, seed: number): Promise<void> {
    this.requested.push(splitId);
    if (this.unavailable.includes(domain)) throw new Error(`the sequencer did not freeze split ${splitId}`);
    const pool = new ItemPool(
      domain,
      catalogues[domain]!.map((c) => c.itemId),
    );
    const examples = (this.users[domain] ?? []).map(
      (s) => leaveOneOut(s, { splitId, splitSeed: seed, domainItems: pool }).validation,
    );
    this.frozen.set(
      splitId,
      examples.filter((e): e is NonNullable<typeof e> => e !== undefined),
    );
  }

  async validationExamples(splitId: string): Promise<ValidationExample[]> {
    return this.frozen.get(splitId) ?? [];
  }

  async catalogue(domain: string) {
    return catalogues[domain] ?? [];
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

const spec: SftJobSpec = {
  cptAdapterId: 'r1-cpt',
  split: { epoch: EPOCH, seed: SEED, timeoutMs: 1_000, pollMs: 10 },
  kafkaBrokers: 'unused:9092',
  historyCap: 4,
  negatives: 5,
  maxSamples: 8,
  minSamples: 4,
  maxValidationExamples: 4,
  batchSize: 4,
  epochs: 1,
  learningRates: [0.01, 0.003],
  sasrec: { hiddenDim: 8, maxLen: 8, epochs: 2, timeBudgetMs: 5_000 },
  seed: SEED,
};

let dir: string;
let model: LlamaModel;
let tokenizer: WordTokenizer;
let cptAdapterDir: string;

beforeAll(async () => {
  await selectBackend('cpu');
  dir = mkdtempSync(join(tmpdir(), 'cprec-llara-spec-'));
  tokenizer = WordTokenizer.forTitles(Object.values(catalogues).flatMap((c) => c.map((i) => i.title)));
  model = new LlamaModel(
    randomWeights(
      {
        dim: 16,
        hiddenDim: 32,
        nLayers: 1,
        nHeads: 2,
        nKvHeads: 1,
        maxSeqLen: 160,
        normEps: 1e-5,
        ropeTheta: 10000,
        tiedClassifier: true,
        vocabSize: tokenizer.vocabSize,
      },
      SEED,
    ),
  );
  attachLora(model, { rank: 2, alpha: 4, dropout: 0 }, SEED);
  cptAdapterDir = join(dir, 'cpt-adapter');
  saveLoraAdapter(model, cptAdapterDir, {
    baseModelId: 'tiny',
    baseChecksum: 'c'.repeat(64),
    lineage: { round_id: 'r1', kind: 'cpt' },
  });
});

afterAll(() => {
  model?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

const job = (targetDomains: string[]): RoundJob =>
  ({
    roundId: 'r1',
    roundDir: join(dir, 'round'),
    targetDomains,
    model: { kind: 'tiny-random', dir, baseModelId: 'tiny', sha256: 'c'.repeat(64) },
    cpt: { budget: { maxTokens: 160, maxTitleTokens: 4 } },
    sft: spec,
  }) as unknown as RoundJob;

describe('LlaraFineTuning', () => {
  it('fine-tunes a domain from the CPT adapter into a bundle, skips a domain with too little data, and reports steps', async () => {
    const source = new MemorySource({
      games: Array.from({ length: 10 }, (_, u) => sequence('games', u, 6)),
      toys: [sequence('toys', 0, 3)],
    });
    const steps: RunnerStep[] = [];
    const port = new LlaraFineTuning(
      spec,
      () => source,
      () => undefined,
    );
    const out = await port.fineTune({
      job: job(['games', 'toys']),
      model,
      tokenizer,
      cptAdapterDir,
      firstStep: 100,
      onStep: (s) => void steps.push(s),
    });

    expect(source.requested).toEqual([looSplitId('games', EPOCH, SEED), looSplitId('toys', EPOCH, SEED)]);
    expect(source.closed).toBe(true);
    expect(out.adapters).toEqual([{ domain: 'games', dir: join(dir, 'round', 'sft', 'games') }]);
    expect(out.note).toMatch(
      /^toys: no SFT adapter \(too little data in loo-toys-espec-s7: 0 training samples from 1 users/,
    );

    // 8 samples, batch 4, one epoch, two learning rates: 4 steps numbered on from the CPT's.
    expect(steps.map((s) => s.step)).toEqual([100, 101, 102, 103]);
    expect(steps.map((s) => s.roundStep)).toEqual([0, 1, 2, 3]);
    expect(
      steps.every(
        (s) => s.phase === 'fine_tuning' && s.roundSteps === 4 && Number.isFinite(s.loss) && s.lr > 0,
      ),
    ).toBe(true);

    const bundle = out.adapters[0]!.dir;
    for (const f of [PROJECTOR_FILE, ITEM_EMBEDDINGS_FILE, join(SASREC_DIR, 'manifest.json')])
      expect(existsSync(join(bundle, f))).toBe(true);
    const manifest = readLoraManifest(join(bundle, SFT_ADAPTER_DIR));
    expect(manifest.lineage).toMatchObject({
      kind: 'sft',
      method: 'cprec',
      cpt_lineage: { round_id: 'r1', kind: 'cpt' },
      train_samples: 8,
    });
    const info = JSON.parse(readFileSync(join(bundle, BUNDLE_FILE), 'utf8')) as SftBundleInfo;
    expect(info).toMatchObject({
      cpt_adapter_id: 'r1-cpt',
      split_id: 'loo-games-espec-s7',
      train_users: 10,
      train_samples: 8,
      validation_cases: 4,
    });
    expect(Object.keys(info.validation_hr1)).toEqual(['0.01', '0.003']);
    expect(spec.learningRates).toContain(info.learning_rate);
  }, 120_000);

  it('skips a domain whose split the sequencer does not freeze, with the reason', async () => {
    const source = new MemorySource({ games: [] }, ['games']);
    const out = await new LlaraFineTuning(
      spec,
      () => source,
      () => undefined,
    ).fineTune({
      job: job(['games']),
      model,
      tokenizer,
      cptAdapterDir,
      firstStep: 0,
    });
    expect(out.adapters).toEqual([]);
    expect(out.note).toBe(
      'games: no SFT adapter (frozen split loo-games-espec-s7 unavailable: the sequencer did not freeze split loo-games-espec-s7)',
    );
    expect(source.closed).toBe(true);
  });

  it('stops between steps when asked, as a stopped round', async () => {
    const source = new MemorySource({ games: Array.from({ length: 10 }, (_, u) => sequence('games', u, 6)) });
    let seen = 0;
    const run = new LlaraFineTuning(
      spec,
      () => source,
      () => undefined,
    ).fineTune({
      job: job(['games']),
      model,
      tokenizer,
      cptAdapterDir,
      firstStep: 0,
      onStep: () => void seen++,
      shouldStop: () => seen >= 1,
    });
    await expect(run).rejects.toBeInstanceOf(RoundStoppedError);
    expect(seen).toBe(1);
    expect(source.closed).toBe(true);
  }, 60_000);
});
