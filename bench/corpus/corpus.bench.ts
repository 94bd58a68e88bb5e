/**
 * Corpus benchmark on the real linked Amazon data (≈0.94M interactions, 4 domains):
 *   npx ts-node -r tsconfig-paths/register --transpile-only bench/corpus/corpus.bench.ts [--prompts N] [--repeat N] [--keep]
 *
 * 1. loads everything but the newest 10k events into a bench database (`cprec_bench_corpus`);
 * 2. times a full build of the sequence tables (median of --repeat runs);
 * 3. inserts the 10k newest events and times the incremental update; later repeats re-send the
 *    same 10k (redeliveries touch the same users, so each repeat redoes the same work);
 * 4. streams encoded prompts (unified CPT template, target + 19 negatives, stories260K tokenizer)
 *    from SequenceRepository to a consumer and reports prompts/s.
 * Writes bench/results/corpus.json. The database is dropped at the end unless --keep.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, resolve } from 'node:path';
import {
  clickHouseSettingsFromEnv,
  createClickHouse,
  ident,
  InteractionRecord,
  InteractionRepository,
  ItemRepository,
  runMigrations,
  SequenceRepository,
  SequenceStore,
  sql,
  type CorpusSample,
} from '@cprec/clickhouse';
import {
  cptSample,
  createRng,
  deriveSeed,
  encodeSample,
  ItemPool,
  sampleCandidates,
  type PromptItem,
  type Tokenizer,
} from '@cprec/corpus';
import { openDataset } from '@cprec/datasets';
import { Llama2cTokenizer } from '@cprec/lm';

const DATA = resolve(__dirname, '../../../shared/data/amazon2014-linked');
const TOKENIZER = resolve(__dirname, '../../../shared/models/stories260K/tok512.bin');
const OUT = resolve(__dirname, '../results/corpus.json');
const DATABASE = 'cprec_bench_corpus';
const NEW_EVENTS = 10_000;
const TITLED = ['beauty', 'clothing', 'toy'];

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? Number(process.argv[i + 1]) : fallback;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

const seconds = (ms: number): number => Math.round(ms) / 1000;
const log = (line: string): void => void process.stdout.write(`${line}\n`);

/**
 * A byte-level stand-in when the stories260K tokenizer is absent: the benchmark then still
 * measures the corpus path (the tokenizer is not what it is about).
 */
class ByteTokenizer implements Tokenizer {
  readonly bosId = 1;
  readonly eosId = 2;
  encode(text: string, opts: { bos?: boolean; eos?: boolean } = {}): number[] {
    const ids = [...Buffer.from(text, 'utf8')].map((b) => b + 3);
    return [...(opts.bos ? [this.bosId] : []), ...ids, ...(opts.eos ? [this.eosId] : [])];
  }
  decode(ids: number[]): string {
    return Buffer.from(ids.filter((i) => i >= 3).map((i) => i - 3)).toString('utf8');
  }
}

/**
 * Memoises `encode` of plain text pieces: titles and template pieces repeat across prompts (the
 * same candidates and histories recur), and BPE encoding is the dominant cost per prompt. Bounded
 * so a long stream cannot grow it without limit.
 */
class CachingTokenizer implements Tokenizer {
  private readonly cache = new Map<string, number[]>();
  constructor(
    private readonly inner: Tokenizer,
    private readonly limit = 200_000,
  ) {}
  get bosId(): number {
    return this.inner.bosId;
  }
  get eosId(): number {
    return this.inner.eosId;
  }
  encode(text: string, opts?: { bos?: boolean; eos?: boolean }): number[] {
    if (opts?.bos || opts?.eos) return this.inner.encode(text, opts);
    let ids = this.cache.get(text);
    if (ids === undefined) {
      if (this.cache.size >= this.limit) this.cache.clear();
      ids = this.inner.encode(text);
      this.cache.set(text, ids);
    }
    return [...ids];
  }
  decode(ids: number[]): string {
    return this.inner.decode(ids);
  }
}

async function main(): Promise<void> {
  if (!existsSync(resolve(DATA, 'derived', 'interactions.jsonl.gz'))) {
    throw new Error(`${DATA} is absent: the corpus benchmark needs the linked Amazon data`);
  }
  const repeat = arg('repeat', 3);
  const promptTarget = arg('prompts', 20_000);
  const settings = { ...clickHouseSettingsFromEnv(), database: DATABASE };
  const bootstrap = createClickHouse({ ...settings, database: 'default' });
  await bootstrap.command(sql`DROP DATABASE IF EXISTS ${ident(DATABASE)}`);
  await bootstrap.close();
  await runMigrations(settings);
  const ch = createClickHouse(settings);
  const interactions = new InteractionRepository(ch);
  const store = new SequenceStore(ch);
  const repo = new SequenceRepository(ch);
  const dataset = openDataset({ path: DATA });

  // Pass 1: the cut (ts, seq) of the newest 10k events. Pass 2: load the rest, keep those aside.
  const keys: number[] = [];
  for await (const e of dataset.interactions()) keys.push(e.ts);
  const sortedTs = Float64Array.from(keys).sort();
  const cutTs = sortedTs[sortedTs.length - NEW_EVENTS];
  const strictlyNewer = keys.filter((t) => t > cutTs).length;
  let tiesToTake = NEW_EVENTS - strictlyNewer;
  const fresh: InteractionRecord[] = [];
  let total = 0;
  const loadStart = Date.now();
  let batch: InteractionRecord[] = [];
  const baseIngest = Date.now() - 3_600_000;
  for await (const e of dataset.interactions()) {
    total++;
    const record: InteractionRecord = { ...e, ts_ms: e.ts };
    if (e.ts > cutTs || (e.ts === cutTs && tiesToTake-- > 0)) fresh.push(record);
    else batch.push(record);
    if (batch.length === 100_000) {
      await interactions.insertBatch(batch, baseIngest);
      batch = [];
    }
  }
  await interactions.insertBatch(batch, baseIngest);
  const items = new ItemRepository(ch);
  let itemBatch: Array<{ item_id: string; domain: string; title: string; updated_at_ms: number }> = [];
  for await (const item of dataset.items()) {
    itemBatch.push({ item_id: item.item_id, domain: item.domain, title: item.title ?? '', updated_at_ms: 1 });
    if (itemBatch.length === 50_000) {
      await items.upsertBatch(itemBatch);
      itemBatch = [];
    }
  }
  await items.upsertBatch(itemBatch);
  const loadS = seconds(Date.now() - loadStart);
  log(`loaded ${total - fresh.length} interactions (+ ${fresh.length} held back) in ${loadS} s`);

  const fullRuns: number[] = [];
  for (let i = 0; i < repeat; i++) {
    const t = Date.now();
    const r = await store.rebuild({ full: true, safetyMarginMs: 0 });
    fullRuns.push(Date.now() - t);
    log(`full build ${i + 1}/${repeat}: ${seconds(fullRuns[i])} s (${r.usersRebuilt} users)`);
  }

  const incrementalRuns: number[] = [];
  let touched = 0;
  for (let i = 0; i < repeat; i++) {
    await interactions.insertBatch(fresh, Date.now() - 1000 + i);
    const t = Date.now();
    const r = await store.rebuild({ safetyMarginMs: 0 });
    incrementalRuns.push(Date.now() - t);
    touched = r.usersRebuilt;
    log(`incremental update ${i + 1}/${repeat}: ${seconds(incrementalRuns[i])} s (${r.usersRebuilt} users)`);
  }

  // Prompts: pools and titles once per domain, then the stream → candidates → encodeSample.
  const baseTokenizer: Tokenizer = existsSync(TOKENIZER)
    ? Llama2cTokenizer.fromFile(TOKENIZER, 512)
    : new ByteTokenizer();
  const tokenizer = new CachingTokenizer(baseTokenizer);
  const pools = new Map<string, ItemPool>();
  const titles = new Map<string, Map<string, string>>();
  for (const domain of TITLED) {
    const list = await repo.domainItems(domain);
    pools.set(
      domain,
      new ItemPool(
        domain,
        list.map((i) => i.itemId),
      ),
    );
    titles.set(domain, new Map(list.map((i) => [i.itemId, i.title])));
  }
  const budget = { maxTokens: 512, maxTitleTokens: 32 };
  const toItem = (domain: string, itemId: string, title: string): PromptItem => ({ itemId, title });
  let tokens = 0;
  const encode = (s: CorpusSample): void => {
    const pool = pools.get(s.domain)!;
    const domainTitles = titles.get(s.domain)!;
    const { candidates } = sampleCandidates({
      target: s.target.itemId,
      userItems: s.history.filter((h) => h.domain === s.domain).map((h) => h.itemId),
      domainItems: pool,
      rng: createRng(deriveSeed(7, s.userId, s.target.eventId)),
    });
    const sample = cptSample({
      history: s.history.map((h) => toItem(h.domain, h.itemId, h.title)),
      candidates: candidates.map((id) => toItem(s.domain, id, domainTitles.get(id) ?? '')),
      target: toItem(s.domain, s.target.itemId, s.target.title),
    });
    tokens += encodeSample(sample, tokenizer, budget).inputIds.length;
  };
  const streams: Array<[string, AsyncIterable<CorpusSample>]> = [
    ['domain', repo.streamDomainSamples({ domains: TITLED, seed: 1, limit: promptTarget })],
    ['mixed', repo.streamMixedSamples({ domains: TITLED, seed: 1, limit: promptTarget })],
  ];
  // The corpus side alone: the same streams without encoding (query, sort, transfer, titles).
  const streamRates: Record<string, number> = {};
  for (const [name, stream] of [
    ['domain', repo.streamDomainSamples({ domains: TITLED, seed: 2, limit: promptTarget })],
    ['mixed', repo.streamMixedSamples({ domains: TITLED, seed: 2, limit: promptTarget })],
  ] as Array<[string, AsyncIterable<CorpusSample>]>) {
    const t = Date.now();
    let n = 0;
    for await (const s of stream) if (s.history.length >= 0) n++;
    streamRates[name] = Math.round((n / (Date.now() - t)) * 1000);
    log(`${name} samples streamed without encoding: ${n} (${streamRates[name]}/s)`);
  }
  const promptRates: Record<string, number> = {};
  let prompts = 0;
  let promptMs = 0;
  for (const [name, stream] of streams) {
    const t = Date.now();
    let n = 0;
    for await (const s of stream) {
      encode(s);
      n++;
    }
    const ms = Date.now() - t;
    promptRates[name] = Math.round((n / ms) * 1000);
    prompts += n;
    promptMs += ms;
    log(`${name} prompts: ${n} in ${seconds(ms)} s (${promptRates[name]}/s)`);
  }
  const [counts] = await ch.query<{ d: string; m: string }>(
    sql`SELECT (SELECT count() FROM domain_sequences FINAL) AS d, (SELECT count() FROM mixed_sequences FINAL) AS m`,
  );
  const result = {
    interactions: total,
    full_build_s: seconds(median(fullRuns)),
    incremental_update_s: seconds(median(incrementalRuns)),
    prompts_per_s: Math.round((prompts / promptMs) * 1000),
    incremental_over_full: Math.round((median(incrementalRuns) / median(fullRuns)) * 1000) / 1000,
    new_events: fresh.length,
    users_touched_by_update: touched,
    full_build_runs_s: fullRuns.map(seconds),
    incremental_update_runs_s: incrementalRuns.map(seconds),
    load_s: loadS,
    domain_sequences: Number(counts.d),
    mixed_sequences: Number(counts.m),
    prompts_streamed: prompts,
    prompts_per_s_by_kind: promptRates,
    samples_per_s_without_encoding: streamRates,
    mean_prompt_tokens: Math.round(tokens / Math.max(1, prompts)),
    tokenizer:
      baseTokenizer instanceof ByteTokenizer ? 'bytes' : 'stories260K tok512 (memoised per text piece)',
    machine: { cpus: cpus().length, loadavg_1m: Math.round(loadavg()[0] * 10) / 10, node: process.version },
    clickhouse: (await ch.serverVersion()).text,
    date: new Date().toISOString(),
  };
  if (!process.argv.includes('--keep')) await ch.command(sql`DROP DATABASE IF EXISTS ${ident(DATABASE)}`);
  await ch.close();
  mkdirSync(dirname(OUT), { recursive: true });
  writeFileSync(OUT, JSON.stringify(result, null, 2) + '\n');
  log(JSON.stringify(result, null, 2));
}

void main().catch((err: unknown) => {
  process.stderr.write(`corpus bench: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
