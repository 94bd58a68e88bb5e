/**
 * `npm run experiment:quick`: the paper's comparison at a small scale on the real data in
 * ../shared/data with stories260K as the base LM. Writes docs/results.md,
 * bench/results/experiment-quick.json and docs/figures/experiment-quick-curves.svg.
 * Scale knobs (environment): SEEDS, TEST_USERS, REC_USERS, SFT_SAMPLES, CPT_DS, CPT_MIX, MAX_TITLE_TOKENS.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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
import { Gru4Rec, ItemIndex, Popularity, rankOfTarget, SasRec, type SequentialRecommender } from '@cprec/sasrec';
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
const SEEDS = Array.from({ length: env('SEEDS', 2) }, (_, i) => i + 1);
const TEST_USERS = env('TEST_USERS', 20);
const REC_USERS = env('REC_USERS', 2000);
const SFT_SAMPLES = env('SFT_SAMPLES', 32);
const CPT_DS = env('CPT_DS', 48);
const CPT_MIX = env('CPT_MIX', 24);
const HISTORY = 5;
const budget: TokenBudget = { maxTokens: 512, maxTitleTokens: env('MAX_TITLE_TOKENS', 8) };
const TARGETS = [
  { name: 'amazon2018-game', domain: 'game' },
  { name: 'steam_100000', domain: 'steam' },
];
const log = (msg: string): void => void process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

interface Row {
  method: string;
  target: string;
  seed: number;
  hr1: number;
  validRatio: number;
  hr1OverValid: number;
  likelihoodHr1: number | null;
  n: number;
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
  const linked = openDataset({ path: join(DATA, 'amazon2014-linked'), domains: ['beauty', 'clothing', 'toy'] });
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

function cptSamples(src: Awaited<ReturnType<typeof loadSources>>, seed: number): { ds: SampleItems[]; mix: SampleItems[] } {
  const rng = createRng(deriveSeed(seed, 'quick-cpt'));
  const title = (i: Interaction): string => src.titles.get(`${i.domain}/${i.itemId}`) ?? '';
  const make = (history: readonly Interaction[], target: Interaction, userItems: string[]): SampleItems | null => {
    if (!title(target)) return null;
    const { candidates } = sampleCandidates({ target: target.itemId, userItems, domainItems: src.pools.get(target.domain)!, rng });
    return {
      history: history.slice(-HISTORY).map((h) => ({ itemId: h.itemId, title: title(h) })),
      candidates: candidates.map((id) => ({ itemId: id, title: src.titles.get(`${target.domain}/${id}`) ?? '' })),
      target: { itemId: target.itemId, title: title(target) },
    };
  };
  const perDomain = new Map<string, SampleItems[]>();
  for (const seq of shuffleInPlace([...src.domainSeqs], rng).slice(0, 4000)) {
    const all = [...domainSamples({ userId: '', domain: seq.items[0]!.domain, items: seq.items }, { historyCap: HISTORY })];
    const s = all[all.length - 1];
    const list = perDomain.get(seq.items[0]!.domain) ?? [];
    if (s && list.length < CPT_DS) {
      const made = make(s.history, s.target, seq.items.map((i) => i.itemId));
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
    const made = make(s.history, s.target, seq.items.filter((i) => i.domain === s.target.domain).map((i) => i.itemId));
    if (made) mix.push(made);
  }
  return { ds: shuffleInPlace([...perDomain.values()].flat(), rng), mix };
}

function sftSamples(split: DomainSplit, seed: number): SampleItems[] {
  const rng = createRng(deriveSeed(seed, 'quick-sft', split.domain));
  const pool = new ItemPool(split.domain, split.items);
  const out: SampleItems[] = [];
  const item = (id: string) => ({ itemId: id, title: split.titles.get(id) ?? '' });
  for (const seq of split.trainSequences) {
    if (out.length >= SFT_SAMPLES) break;
    if (seq.items.length < 2) continue;
    const target = seq.items[seq.items.length - 1]!;
    const { candidates } = sampleCandidates({ target, userItems: seq.items, domainItems: pool, rng });
    out.push({ history: seq.items.slice(-HISTORY - 1, -1).map(item), candidates: candidates.map(item), target: item(target) });
  }
  return out;
}

async function main(): Promise<void> {
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
  const sources = await loadSources();
  log(`sources: ${sources.domainSeqs.length} domain sequences, ${sources.mixedSeqs.length} mixed`);
  const rows: Row[] = [];
  const curves: { seed: number; cpt: { step: number; loss: number; lr: number }[]; sft: Record<string, { step: number; loss: number; lr: number }[]> }[] = [];
  const lmRow = (method: string, target: string, seed: number, r: Awaited<ReturnType<typeof evaluateModel>>): Row => ({
    method,
    target,
    seed,
    hr1: r.report.overall.hr1,
    validRatio: r.report.overall.validRatio,
    hr1OverValid: r.report.overall.hr1OverValid,
    likelihoodHr1: r.report.overall.likelihood?.hr[1] ?? null,
    n: r.report.overall.count,
  });
  try {
    for (const seed of SEEDS) {
      const curve = { seed, cpt: [] as { step: number; loss: number; lr: number }[], sft: {} as Record<string, { step: number; loss: number; lr: number }[]> };
      curves.push(curve);
      const { ds, mix } = cptSamples(sources, seed);
      log(`seed ${seed}: CPT on ${ds.length} domain-specific + ${mix.length} mixed samples`);
      const cpt = await runCptRound({
        roundId: `quick-${seed}`,
        model,
        baseModelId: 'stories260K',
        baseChecksum,
        tokenizer,
        config: { ...DEFAULT_CPT_CONFIG, batchSize: 4, budget: lmBudget, lora: { rank: 8, alpha: 16, dropout: 0.05 }, etaLow: 5e-6, etaHigh: 5e-4, annealFraction: 0.25, checkpointEvery: 1000, seed },
        previousTrunkDir: null,
        roundDir: join(work, `cpt-${seed}`),
        domainSamples: new ArraySampleSource(ds),
        mixedSamples: new ArraySampleSource(mix),
        watermark: 0,
        onStep: (s) => {
          curve.cpt.push({ step: s.step, loss: s.loss, lr: s.lr });
          if (s.roundStep % 5 === 0) log(`  cpt ${s.phase} ${s.roundStep}/${s.roundSteps} loss ${s.loss.toFixed(3)}`);
        },
      });
      for (const t of TARGETS) {
        const split = await loadDomainSplit(openDataset({ path: join(DATA, t.name) }), { seed, limitUsers: REC_USERS, historyCap: HISTORY });
        const test = split.test.slice(0, TEST_USERS);
        const validation = split.validation.slice(0, Math.max(8, Math.floor(TEST_USERS / 2)));
        const index = ItemIndex.fromIds(split.items);
        // Recommender baselines on the same frozen candidates.
        const train = split.trainSequences.map((s) => index.encode(s.items));
        const recs: SequentialRecommender[] = [
          new Popularity({ numItems: index.size }),
          new Gru4Rec({ numItems: index.size, maxLen: 20, embeddingDim: 32, hiddenDim: 32, epochs: 8, batchSize: 128, seed }),
        ];
        const sasrec = new SasRec({ numItems: index.size, maxLen: 20, hiddenDim: 32, numBlocks: 1, numHeads: 1, epochs: 8, batchSize: 128, seed });
        recs.push(sasrec);
        for (const rec of recs) {
          await rec.fit(train);
          const scores = rec.scoreCandidatesBatch(
            test.map((c) => index.encode(c.history.map((h) => h.itemId))),
            test.map((c) => index.encode(c.candidates.map((x) => x.itemId))),
          );
          const hits = test.filter((c, i) => rankOfTarget(scores[i]!, c.candidates.findIndex((x) => x.itemId === c.target.itemId)) === 1).length;
          rows.push({ method: rec.name, target: t.domain, seed, hr1: hits / test.length, validRatio: 1, hr1OverValid: hits / test.length, likelihoodHr1: null, n: test.length });
          log(`  ${t.domain} ${rec.name} HR@1 ${(hits / test.length).toFixed(3)}`);
        }
        const table = sasrec.itemEmbeddings();
        const embeddings = ItemEmbeddingTable.fromDenseTable(table, index.toJSON());
        table.dispose();
        const evalText = () => evaluateModel({ model, tokenizer, budget: lmBudget, style: 'text', examples: test, ks: [1] });
        detachLora(model);
        rows.push(lmRow('base LM zero-shot', t.domain, seed, await evalText()));
        loadLoraAdapter(model, cpt.adapterDir, { expectedBaseChecksum: baseChecksum });
        rows.push(lmRow('CPRec w/o SFT', t.domain, seed, await evalText()));
        for (const [method, init] of [['LLaRA (SFT only)', null], ['CPRec (CPT+SFT)', cpt.adapterDir]] as const) {
          const res = await fineTune({
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
            config: { ...DEFAULT_SFT_CONFIG, batchSize: 4, epochs: 2, learningRates: [3e-4, 1e-3], budget: lmBudget, lora: { rank: 8, alpha: 16, dropout: 0.05 }, maxValidationExamples: validation.length, seed },
          });
          curve.sft[`${t.domain} ${method}`] = res.curve.map((c) => ({ step: c.step, loss: c.loss, lr: c.lr }));
          const r = await evaluateModel({ model, tokenizer, budget: lmBudget, style: 'hybrid', placeholderId: 0, hybrid: { embeddings, projector: res.projector! }, examples: test, ks: [1] });
          rows.push(lmRow(method, t.domain, seed, r));
          res.projector?.dispose();
          log(`  ${t.domain} ${method} lr ${res.learningRate} HR@1 ${r.report.overall.hr1.toFixed(3)} valid ${r.report.overall.validRatio.toFixed(3)}`);
        }
        for (const rec of recs) rec.dispose();
      }
    }
  } finally {
    model.dispose();
    rmSync(work, { recursive: true, force: true });
  }
  const wallSeconds = (Date.now() - started) / 1000;
  writeOutputs(rows, curves, wallSeconds, backend.nativeKernels);
}

function writeOutputs(rows: Row[], curves: { seed: number; cpt: { step: number; loss: number; lr: number }[]; sft: Record<string, { step: number; loss: number; lr: number }[]> }[], wallSeconds: number, native: boolean): void {
  const root = resolve(__dirname, '../..');
  const methods = ['popularity', 'gru4rec', 'sasrec', 'base LM zero-shot', 'CPRec w/o SFT', 'LLaRA (SFT only)', 'CPRec (CPT+SFT)'];
  const targets = TARGETS.map((t) => t.domain);
  const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  const cell = (m: string, t: string, f: (r: Row) => number | null): string => {
    const vals = rows.filter((r) => r.method === m && r.target === t).map(f).filter((v): v is number => v !== null);
    if (vals.length === 0) return '–';
    const sd = Math.sqrt(mean(vals.map((v) => (v - mean(vals)) ** 2)));
    return `${mean(vals).toFixed(3)} ± ${sd.toFixed(3)}`;
  };
  const scale = { seeds: SEEDS, testUsersPerTarget: TEST_USERS, recommenderUsers: REC_USERS, sftSamples: SFT_SAMPLES, cptDomainSamplesPerDomain: CPT_DS, cptMixedSamples: CPT_MIX, historyCap: HISTORY, budget, candidates: 20 };
  mkdirSync(join(root, 'bench/results'), { recursive: true });
  writeFileSync(join(root, 'bench/results/experiment-quick.json'), JSON.stringify({ date: new Date().toISOString(), wallSeconds, nativeKernels: native, scale, rows, curves }, null, 1) + '\n');
  const lines = [
    '| method | ' + targets.flatMap((t) => [`${t} HR@1`, `${t} Valid`, `${t} HR@1 (likelihood)`]).join(' | ') + ' |',
    '| --- | ' + targets.flatMap(() => ['---:', '---:', '---:']).join(' | ') + ' |',
    ...methods.map((m) => `| ${m} | ` + targets.flatMap((t) => [cell(m, t, (r) => r.hr1), cell(m, t, (r) => r.validRatio), cell(m, t, (r) => r.likelihoodHr1)]).join(' | ') + ' |'),
  ];
  const c = curves[0];
  if (c) {
    const series: Series[] = [
      { name: 'CPT loss', points: c.cpt.map((p) => [p.step, p.loss]), color: '#1f77b4', axis: 'left' },
      { name: 'CPT lr (WSA)', points: c.cpt.map((p) => [p.step, p.lr]), color: '#ff7f0e', axis: 'right' },
    ];
    const colors = ['#2ca02c', '#d62728', '#9467bd', '#8c564b'];
    Object.entries(c.sft).forEach(([name, pts], i) => series.push({ name: `SFT loss ${name}`, points: pts.map((p) => [p.step, p.loss]), color: colors[i % 4]!, axis: 'left' }));
    mkdirSync(join(root, 'docs/figures'), { recursive: true });
    writeFileSync(join(root, 'docs/figures/experiment-quick-curves.svg'), lineChartSvg(`Quick experiment, seed ${c.seed}: per-step loss and learning rate`, 'optimizer step', series, 900, 420));
  }
  writeFileSync(join(root, 'bench/results/experiment-quick-table.md'), lines.join('\n') + '\n');
  log(`\n${lines.join('\n')}\nwall ${wallSeconds.toFixed(0)} s; scale ${JSON.stringify(scale)}`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
