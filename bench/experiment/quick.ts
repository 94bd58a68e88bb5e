/**
 * Superseded by `npm run experiment:paper` (bench/paper/: the faithful, resumable reproduction of
 * issue 14, which also writes docs/results.md); kept for its small, minutes-long smoke value.
 *
 * `npm run experiment:quick`: the paper's comparison at a small scale on the real data in
 * ../shared/data with stories260K as the base LM. Writes docs/results.md,
 * bench/results/experiment-quick.json and docs/figures/experiment-quick-curves.svg.
 * Scale knobs (environment): SEEDS, TEST_USERS, GEN_USERS, REC_USERS, SFT_SAMPLES, SFT_EPOCHS,
 * CPT_DS, CPT_MIX, CPT_CANDIDATES, MAX_TOKENS, MAX_TITLE_TOKENS, TARGET_NAMES.
 *
 * Cost model (why the knobs look like this): on the shared 2-core machine one LM forward+backward
 * over a batch of ~500-token prompts took ~12 s and greedy generation > 40 s per example, so the
 * prompt budget is ~256 tokens, CPT prompts may show fewer candidates than the evaluation's 20,
 * HR@1 by exact candidate likelihood (one prefill + batched scoring) covers every test user, and
 * generation-based HR@1 / Valid Ratio runs on the first GEN_USERS test users only.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  detachLora,
  loadCheckpoint,
  loadLoraAdapter,
  loadTokenizer,
  LlamaModel,
  selectBackend,
  sha256File,
} from '@cprec/lm';
import {
  createRng,
  deriveSeed,
  DomainSequenceBuilder,
  domainSamples,
  interactionFromEvent,
  ItemPool,
  MixedSequenceBuilder,
  mixedSamples,
  sampleCandidates,
  shuffleInPlace,
  type Interaction,
  type SampleItems,
  type TokenBudget,
} from '@cprec/corpus';
import { openDataset } from '@cprec/datasets';
import {
  Gru4Rec,
  ItemIndex,
  Popularity,
  rankOfTarget,
  SasRec,
  type SequentialRecommender,
} from '@cprec/sasrec';
import {
  ArraySampleSource,
  DEFAULT_CPT_CONFIG,
  DEFAULT_SFT_CONFIG,
  evaluateModel,
  fineTune,
  ItemEmbeddingTable,
  loadDomainSplit,
  runCptRound,
  type DomainSplit,
  type EvaluationCase,
} from '@cprec/training';
import { lineChartSvg, type Series } from './svg';

const DATA = resolve(__dirname, '../../../shared/data');
const MODEL_DIR = resolve(__dirname, '../../../shared/models/stories260K');
const env = (k: string, d: number): number => Number(process.env[k] ?? d);
/** SEED_LIST=2 runs only seed 2 (one process per seed, merged afterwards with MERGE_INPUTS). */
const SEEDS = process.env.SEED_LIST
  ? process.env.SEED_LIST.split(',').map(Number)
  : Array.from({ length: env('SEEDS', 2) }, (_, i) => i + 1);
/** Where a per-seed process writes its rows (instead of the committed outputs). */
const PARTIAL_OUT = process.env.PARTIAL_OUT;
/** Comma-separated PARTIAL_OUT files: merge them into the committed outputs and exit. */
const MERGE_INPUTS = process.env.MERGE_INPUTS;
/** Peak SFT learning rates searched on validation (one value = no search). */
const SFT_LRS = (process.env.SFT_LRS ?? '3e-4,1e-3').split(',').map(Number);
const TEST_USERS = env('TEST_USERS', 60);
/** Test users (a prefix of the TEST_USERS) that also get greedy generation (HR@1, Valid Ratio). */
const GEN_USERS = env('GEN_USERS', 20);
const REC_USERS = env('REC_USERS', 2000);
const SFT_SAMPLES = env('SFT_SAMPLES', 32);
const SFT_EPOCHS = env('SFT_EPOCHS', 2);
const CPT_DS = env('CPT_DS', 48);
const CPT_MIX = env('CPT_MIX', 24);
/** Candidates shown in CPT prompts (target + negatives); evaluation always uses 20. */
const CPT_CANDIDATES = env('CPT_CANDIDATES', 10);
const HISTORY = 5;
const budget: TokenBudget = { maxTokens: env('MAX_TOKENS', 256), maxTitleTokens: env('MAX_TITLE_TOKENS', 8) };
const ALL_TARGETS = [
  { name: 'amazon2018-game', domain: 'game' },
  { name: 'steam_100000', domain: 'steam' },
];
const TARGETS = process.env.TARGET_NAMES
  ? ALL_TARGETS.filter((t) => process.env.TARGET_NAMES!.split(',').includes(t.domain))
  : ALL_TARGETS;
const log = (msg: string): void =>
  void process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

interface Row {
  method: string;
  target: string;
  seed: number;
  hr1: number;
  validRatio: number;
  hr1OverValid: number;
  likelihoodHr1: number | null;
  /** Test users behind likelihoodHr1 (and the recommenders' HR@1). */
  n: number;
  /** Test users behind hr1 / validRatio for LM rows (greedy generation subset). */
  nGeneration: number;
  seconds: number;
}

type Curve = { step: number; loss: number; lr: number }[];
interface SeedCurves {
  seed: number;
  cpt: Curve;
  sft: Record<string, Curve>;
}

/** Source corpus: linked Amazon 2014 (real mixed sequences) plus Health as domain-specific only. */
async function loadSources(): Promise<{
  domainSeqs: { items: readonly Interaction[] }[];
  mixedSeqs: { items: readonly Interaction[] }[];
  titles: Map<string, string>;
  pools: Map<string, ItemPool>;
}> {
  const titles = new Map<string, string>();
  const poolIds = new Map<string, Set<string>>();
  const domains = new DomainSequenceBuilder();
  const mixed = new MixedSequenceBuilder();
  const add = (i: Interaction): void => {
    let s = poolIds.get(i.domain);
    if (!s) poolIds.set(i.domain, (s = new Set()));
    s.add(i.itemId);
  };
  const linked = openDataset({
    path: join(DATA, 'amazon2014-linked'),
    domains: ['beauty', 'clothing', 'toy'],
  });
  for await (const item of linked.items()) titles.set(`${item.domain}/${item.item_id}`, item.title);
  for await (const e of linked.interactions()) {
    const i = interactionFromEvent(e);
    domains.add([i]);
    mixed.add([i]);
    add(i);
  }
  const health = openDataset({ path: join(DATA, 'amazon2014-health') });
  for await (const item of health.items()) titles.set(`${item.domain}/${item.item_id}`, item.title);
  let n = 0;
  for await (const e of health.interactions()) {
    if (n++ > 60_000) break; // a slice of the domain is plenty at this scale
    const i = interactionFromEvent(e);
    domains.add([i]);
    add(i);
  }
  const pools = new Map([...poolIds].map(([d, s]) => [d, new ItemPool(d, s)]));
  return { domainSeqs: [...domains.sequences()], mixedSeqs: [...mixed.sequences()], titles, pools };
}

function cptSamples(
  src: Awaited<ReturnType<typeof loadSources>>,
  seed: number,
): { ds: SampleItems[]; mix: SampleItems[] } {
  const rng = createRng(deriveSeed(seed, 'quick-cpt'));
  const title = (i: Interaction): string => src.titles.get(`${i.domain}/${i.itemId}`) ?? '';
  const make = (
    history: readonly Interaction[],
    target: Interaction,
    userItems: string[],
  ): SampleItems | null => {
    if (!title(target)) return null;
    const { candidates } = sampleCandidates({
      target: target.itemId,
      userItems,
      domainItems: src.pools.get(target.domain)!,
      rng,
      count: CPT_CANDIDATES - 1,
    });
    return {
      history: history.slice(-HISTORY).map((h) => ({ itemId: h.itemId, title: title(h) })),
      candidates: candidates.map((id) => ({
        itemId: id,
        title: src.titles.get(`${target.domain}/${id}`) ?? '',
      })),
      target: { itemId: target.itemId, title: title(target) },
    };
  };
  const perDomain = new Map<string, SampleItems[]>();
  for (const seq of shuffleInPlace([...src.domainSeqs], rng).slice(0, 4000)) {
    const all = [
      ...domainSamples(
        { userId: '', domain: seq.items[0]!.domain, items: seq.items },
        { historyCap: HISTORY },
      ),
    ];
    const s = all[all.length - 1];
    const list = perDomain.get(seq.items[0]!.domain) ?? [];
    if (s && list.length < CPT_DS) {
      const made = make(
        s.history,
        s.target,
        seq.items.map((i) => i.itemId),
      );
      if (made) list.push(made);
    }
    perDomain.set(seq.items[0]!.domain, list);
  }
  const mix: SampleItems[] = [];
  for (const seq of shuffleInPlace([...src.mixedSeqs], rng)) {
    if (mix.length >= CPT_MIX) break;
    const all = [...mixedSamples({ userId: '', items: seq.items }, { windowSize: HISTORY + 1 })];
    const s = all[all.length - 1];
    if (!s) continue;
    const made = make(
      s.history,
      s.target,
      seq.items.filter((i) => i.domain === s.target.domain).map((i) => i.itemId),
    );
    if (made) mix.push(made);
  }
  return { ds: shuffleInPlace([...perDomain.values()].flat(), rng), mix };
}

function sftSamples(split: DomainSplit, seed: number): SampleItems[] {
  const rng = createRng(deriveSeed(seed, 'quick-sft', split.domain));
  const pool = new ItemPool(split.domain, split.items);
  const out: SampleItems[] = [];
  const item = (id: string) => ({ itemId: id, title: split.titles.get(id) ?? '' });
  for (const seq of shuffleInPlace([...split.trainSequences], rng)) {
    if (out.length >= SFT_SAMPLES) break;
    if (seq.items.length < 2) continue;
    const target = seq.items[seq.items.length - 1]!;
    const { candidates } = sampleCandidates({ target, userItems: seq.items, domainItems: pool, rng });
    out.push({
      history: seq.items.slice(-HISTORY - 1, -1).map(item),
      candidates: candidates.map(item),
      target: item(target),
    });
  }
  return out;
}

interface PartialResult {
  complete: boolean;
  wallSeconds: number;
  nativeKernels: boolean;
  stageSeconds: Record<string, number>;
  rows: Row[];
  curves: SeedCurves[];
  /** The knobs the per-seed process ran with (the merge step's own environment may differ). */
  scale: Record<string, unknown>;
}

/** Per-seed processes ran concurrently: the run's wall time is the longest of them. */
function mergePartials(files: readonly string[]): void {
  const parts = files.map((f) => JSON.parse(readFileSync(f, 'utf8')) as PartialResult);
  const stageSeconds: Record<string, number> = {};
  for (const p of parts) Object.assign(stageSeconds, p.stageSeconds);
  writeOutputs(
    parts.flatMap((p) => p.rows),
    parts.flatMap((p) => p.curves).sort((a, b) => a.seed - b.seed),
    Math.max(...parts.map((p) => p.wallSeconds)),
    parts.every((p) => p.nativeKernels),
    stageSeconds,
    parts.every((p) => p.complete),
    { ...parts[0]!.scale, seeds: parts.flatMap((p) => p.curves.map((c) => c.seed)) },
  );
}

async function main(): Promise<void> {
  if (MERGE_INPUTS) return mergePartials(MERGE_INPUTS.split(','));
  const started = Date.now();
  const backend = await selectBackend('auto');
  log(`backend ${backend.backend}, native kernels ${backend.nativeKernels}`);
  const checkpoint = join(MODEL_DIR, 'stories260K.bin');
  if (!existsSync(checkpoint)) {
    log(`${checkpoint} is absent: nothing to run`);
    return;
  }
  const baseChecksum = await sha256File(checkpoint);
  const weights = loadCheckpoint(checkpoint);
  const tokenizer = loadTokenizer(join(MODEL_DIR, 'tok512.bin'), weights.config.vocabSize);
  const model = new LlamaModel(weights);
  const lmBudget = { ...budget, maxTokens: Math.min(budget.maxTokens, model.config.maxSeqLen) };
  const work = mkdtempSync(join(tmpdir(), 'cprec-quick-'));
  const stageSeconds: Record<string, number> = {};
  const timed = async <T>(stage: string, run: () => Promise<T>): Promise<T> => {
    const t0 = Date.now();
    try {
      return await run();
    } finally {
      const sec = (Date.now() - t0) / 1000;
      stageSeconds[stage] = sec;
      log(`  [${stage}] ${sec.toFixed(1)} s`);
    }
  };
  const sources = await timed('load sources', loadSources);
  log(`sources: ${sources.domainSeqs.length} domain sequences, ${sources.mixedSeqs.length} mixed`);
  const rows: Row[] = [];
  const curves: SeedCurves[] = [];
  const flush = (complete: boolean): void =>
    writeOutputs(rows, curves, (Date.now() - started) / 1000, backend.nativeKernels, stageSeconds, complete);
  /**
   * One LM row: exact likelihood ranking over all test users (one prefill + batched candidate
   * scoring per user: the cheap, exact HR@1), greedy generation (HR@1, Valid Ratio) on the first
   * GEN_USERS users only (one decode per user: the expensive part).
   */
  const evaluateLm = async (
    method: string,
    target: string,
    seed: number,
    test: readonly EvaluationCase[],
    settings: Omit<Parameters<typeof evaluateModel>[0], 'model' | 'examples'>,
  ): Promise<Row> => {
    const t0 = Date.now();
    const lik = await evaluateModel({
      ...settings,
      model,
      examples: test,
      ks: [1],
      generation: false,
      likelihood: true,
    });
    const genCases = test.slice(0, GEN_USERS);
    const gen = await evaluateModel({
      ...settings,
      model,
      examples: genCases,
      ks: [1],
      generation: true,
      likelihood: false,
    });
    const row: Row = {
      method,
      target,
      seed,
      hr1: gen.report.overall.hr1,
      validRatio: gen.report.overall.validRatio,
      hr1OverValid: gen.report.overall.hr1OverValid,
      likelihoodHr1: lik.report.overall.likelihood?.hr[1] ?? null,
      n: test.length,
      nGeneration: genCases.length,
      seconds: (Date.now() - t0) / 1000,
    };
    const sample = gen.cases
      .slice(0, 3)
      .map((c) => JSON.stringify(c.generations[0] ?? ''))
      .join(', ');
    log(
      `  ${target} ${method}: HR@1 (likelihood, n=${row.n}) ${row.likelihoodHr1?.toFixed(3)}; ` +
        `HR@1 (generation, n=${row.nGeneration}) ${row.hr1.toFixed(3)}, valid ${row.validRatio.toFixed(3)}; ` +
        `${row.seconds.toFixed(0)} s; e.g. ${sample}`,
    );
    return row;
  };
  try {
    for (const seed of SEEDS) {
      const curve: SeedCurves = { seed, cpt: [], sft: {} };
      curves.push(curve);
      const { ds, mix } = cptSamples(sources, seed);
      log(`seed ${seed}: CPT on ${ds.length} domain-specific + ${mix.length} mixed samples`);
      const cpt = await timed(`seed ${seed} CPT`, () =>
        runCptRound({
          roundId: `quick-${seed}`,
          model,
          baseModelId: 'stories260K',
          baseChecksum,
          tokenizer,
          config: {
            ...DEFAULT_CPT_CONFIG,
            batchSize: 4,
            budget: lmBudget,
            lora: { rank: 8, alpha: 16, dropout: 0.05 },
            etaLow: 5e-6,
            etaHigh: 5e-4,
            annealFraction: 0.25,
            checkpointEvery: 1000,
            seed,
          },
          previousTrunkDir: null,
          roundDir: join(work, `cpt-${seed}`),
          domainSamples: new ArraySampleSource(ds),
          mixedSamples: new ArraySampleSource(mix),
          watermark: 0,
          onStep: (s) => {
            curve.cpt.push({ step: s.step, loss: s.loss, lr: s.lr });
            if (s.roundStep % 5 === 0)
              log(
                `  cpt ${s.phase} ${s.roundStep}/${s.roundSteps} loss ${s.loss.toFixed(3)} lr ${s.lr.toExponential(2)}`,
              );
          },
        }),
      );
      for (const t of TARGETS) {
        const tag = `seed ${seed} ${t.domain}`;
        const split = await timed(`${tag} split`, () =>
          loadDomainSplit(openDataset({ path: join(DATA, t.name) }), {
            seed,
            limitUsers: REC_USERS,
            historyCap: HISTORY,
          }),
        );
        const test = split.test.slice(0, TEST_USERS);
        const validation = split.validation.slice(0, Math.max(8, Math.floor(GEN_USERS / 2)));
        const index = ItemIndex.fromIds(split.items);
        // Recommender baselines on the same frozen candidates.
        const train = split.trainSequences.map((s) => index.encode(s.items));
        const recs: SequentialRecommender[] = [
          new Popularity({ numItems: index.size }),
          new Gru4Rec({
            numItems: index.size,
            maxLen: 20,
            embeddingDim: 32,
            hiddenDim: 32,
            epochs: 8,
            batchSize: 128,
            seed,
          }),
        ];
        const sasrec = new SasRec({
          numItems: index.size,
          maxLen: 20,
          hiddenDim: 32,
          numBlocks: 1,
          numHeads: 1,
          epochs: 8,
          batchSize: 128,
          seed,
        });
        recs.push(sasrec);
        for (const rec of recs) {
          const t0 = Date.now();
          await rec.fit(train);
          const scores = rec.scoreCandidatesBatch(
            test.map((c) => index.encode(c.history.map((h) => h.itemId))),
            test.map((c) => index.encode(c.candidates.map((x) => x.itemId))),
          );
          const hits = test.filter(
            (c, i) =>
              rankOfTarget(
                scores[i]!,
                c.candidates.findIndex((x) => x.itemId === c.target.itemId),
              ) === 1,
          ).length;
          const seconds = (Date.now() - t0) / 1000;
          // A recommender ranks the candidate set: it never answers outside it (Valid Ratio 1 by construction).
          rows.push({
            method: rec.name,
            target: t.domain,
            seed,
            hr1: hits / test.length,
            validRatio: 1,
            hr1OverValid: hits / test.length,
            likelihoodHr1: null,
            n: test.length,
            nGeneration: 0,
            seconds,
          });
          log(
            `  ${t.domain} ${rec.name} HR@1 ${(hits / test.length).toFixed(3)} (${train.length} training users, ${seconds.toFixed(0)} s)`,
          );
        }
        const table = sasrec.itemEmbeddings();
        const embeddings = ItemEmbeddingTable.fromDenseTable(table, index.toJSON());
        table.dispose();
        const text = { tokenizer, budget: lmBudget, style: 'text' } as const;
        detachLora(model);
        rows.push(await evaluateLm('base LM zero-shot', t.domain, seed, test, text));
        loadLoraAdapter(model, cpt.adapterDir, { expectedBaseChecksum: baseChecksum });
        rows.push(await evaluateLm('CPRec w/o SFT', t.domain, seed, test, text));
        flush(false);
        for (const [method, init] of [
          ['LLaRA (SFT only)', null],
          ['CPRec (CPT+SFT)', cpt.adapterDir],
        ] as const) {
          const res = await timed(`${tag} ${method} SFT`, () =>
            fineTune({
              model,
              tokenizer,
              placeholderId: 0,
              train: sftSamples(split, seed),
              validation,
              embeddings,
              initAdapterDir: init,
              baseModelId: 'stories260K',
              baseChecksum,
              outDir: join(work, `sft-${seed}-${t.domain}-${init ? 'cprec' : 'llara'}`),
              sasrecRef: `sasrec:${t.name}:seed${seed}`,
              config: {
                ...DEFAULT_SFT_CONFIG,
                batchSize: 4,
                epochs: SFT_EPOCHS,
                learningRates: SFT_LRS,
                budget: lmBudget,
                lora: { rank: 8, alpha: 16, dropout: 0.05 },
                maxValidationExamples: validation.length,
                seed,
              },
              onStep: (s) => {
                if (s.step % 4 === 0)
                  log(
                    `  sft ${method} lr ${s.learningRateCandidate} ${s.step}/${s.steps} loss ${s.loss.toFixed(3)}`,
                  );
              },
            }),
          );
          curve.sft[`${t.domain} ${method}`] = res.curve.map((c) => ({
            step: c.step,
            loss: c.loss,
            lr: c.lr,
          }));
          log(
            `  ${t.domain} ${method}: lr ${res.learningRate} chosen from validation HR@1 ${JSON.stringify(res.validationHr1)}`,
          );
          const hybrid = {
            tokenizer,
            budget: lmBudget,
            style: 'hybrid',
            placeholderId: 0,
            hybrid: { embeddings, projector: res.projector! },
          } as const;
          rows.push(await evaluateLm(method, t.domain, seed, test, hybrid));
          res.projector?.dispose();
          flush(false);
        }
        for (const rec of recs) rec.dispose();
      }
    }
  } finally {
    model.dispose();
    rmSync(work, { recursive: true, force: true });
  }
  flush(true);
}

function writeOutputs(
  rows: Row[],
  curves: SeedCurves[],
  wallSeconds: number,
  native: boolean,
  stageSeconds: Record<string, number>,
  complete: boolean,
  scaleOverride?: Record<string, unknown>,
): void {
  const root = resolve(__dirname, '../..');
  const methods = [
    'popularity',
    'gru4rec',
    'sasrec',
    'base LM zero-shot',
    'CPRec w/o SFT',
    'LLaRA (SFT only)',
    'CPRec (CPT+SFT)',
  ];
  const targets = TARGETS.map((t) => t.domain);
  const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  const cell = (m: string, t: string, f: (r: Row) => number | null): string => {
    const vals = rows
      .filter((r) => r.method === m && r.target === t)
      .map(f)
      .filter((v): v is number => v !== null);
    if (vals.length === 0) return '–';
    // Spread = half the range over seeds (with 2 seeds: |a − b| / 2, i.e. mean ± this covers both).
    const spread = (Math.max(...vals) - Math.min(...vals)) / 2;
    return `${mean(vals).toFixed(3)} ± ${spread.toFixed(3)}`;
  };
  const isLm = (m: string): boolean => !['popularity', 'gru4rec', 'sasrec'].includes(m);
  const scale = scaleOverride ?? {
    seeds: [...new Set(rows.map((r) => r.seed))],
    sftLearningRates: SFT_LRS,
    testUsersPerTarget: TEST_USERS,
    generationUsersPerTarget: GEN_USERS,
    recommenderUsers: REC_USERS,
    sftSamples: SFT_SAMPLES,
    sftEpochs: SFT_EPOCHS,
    cptDomainSamplesPerDomain: CPT_DS,
    cptMixedSamples: CPT_MIX,
    cptCandidates: CPT_CANDIDATES,
    historyCap: HISTORY,
    budget,
    evaluationCandidates: 20,
  };
  const json =
    JSON.stringify(
      {
        date: new Date().toISOString(),
        complete,
        wallSeconds,
        nativeKernels: native,
        scale,
        stageSeconds,
        rows,
        curves,
      },
      null,
      1,
    ) + '\n';
  if (PARTIAL_OUT) {
    writeFileSync(PARTIAL_OUT, json);
    return;
  }
  mkdirSync(join(root, 'bench/results'), { recursive: true });
  writeFileSync(join(root, 'bench/results/experiment-quick.json'), json);
  // Ranking HR@1: a recommender's own scores, an LM's exact candidate likelihood; both over all test users.
  const lines = [
    '| method | ' +
      targets
        .flatMap((t) => [
          `${t} HR@1 (ranking, all test users)`,
          `${t} HR@1 (generation, subset)`,
          `${t} Valid Ratio (subset)`,
        ])
        .join(' | ') +
      ' |',
    '| --- | ' + targets.flatMap(() => ['---:', '---:', '---:']).join(' | ') + ' |',
    ...methods.map(
      (m) =>
        `| ${m} | ` +
        targets
          .flatMap((t) =>
            isLm(m)
              ? [
                  cell(m, t, (r) => r.likelihoodHr1),
                  cell(m, t, (r) => r.hr1),
                  cell(m, t, (r) => r.validRatio),
                ]
              : [cell(m, t, (r) => r.hr1), '(ranks candidates)', '1 (by construction)'],
          )
          .join(' | ') +
        ' |',
    ),
  ];
  // Two figures: CPT's WSA steps and SFT's steps are different optimizer runs (separate x axes).
  const colors = ['#1f77b4', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#bcbd22'];
  mkdirSync(join(root, 'docs/figures'), { recursive: true });
  const cptCurves = curves.filter((c) => c.cpt.length > 0);
  if (cptCurves.length > 0) {
    const series: Series[] = cptCurves.map((c, i) => ({
      name: `CPT loss, seed ${c.seed}`,
      points: c.cpt.map((p) => [p.step, p.loss]),
      color: colors[i % colors.length]!,
      axis: 'left',
    }));
    series.push({
      name: 'CPT lr (WSA)',
      points: cptCurves[0]!.cpt.map((p) => [p.step, p.lr]),
      color: '#ff7f0e',
      axis: 'right',
    });
    writeFileSync(
      join(root, 'docs/figures/experiment-quick-cpt.svg'),
      lineChartSvg(
        'Quick experiment: CPT loss per step and the WSA learning rate',
        'CPT optimizer step',
        series,
        900,
        440,
      ),
    );
  }
  const sftCurve = curves.find((c) => Object.keys(c.sft).length > 0);
  if (sftCurve) {
    const entries = Object.entries(sftCurve.sft);
    const series: Series[] = entries.map(([name, pts], i) => ({
      name: `SFT loss ${name}`,
      points: pts.map((p) => [p.step + 1, p.loss]),
      color: colors[i % colors.length]!,
      axis: 'left',
    }));
    series.push({
      name: 'SFT lr',
      points: entries[0]![1].map((p) => [p.step + 1, p.lr]),
      color: '#ff7f0e',
      axis: 'right',
    });
    writeFileSync(
      join(root, 'docs/figures/experiment-quick-sft.svg'),
      lineChartSvg(
        `Quick experiment, seed ${sftCurve.seed}: SFT loss per step and learning rate`,
        'SFT optimizer step',
        series,
        900,
        460,
      ),
    );
  }
  writeFileSync(join(root, 'bench/results/experiment-quick-table.md'), lines.join('\n') + '\n');
  if (complete)
    log(`\n${lines.join('\n')}\nwall ${wallSeconds.toFixed(0)} s; scale ${JSON.stringify(scale)}`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
