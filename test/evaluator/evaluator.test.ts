import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import type { Producer } from 'kafkajs';
import { LocalArtefactStore } from '@cprec/artefacts';
import {
  ClickHouse,
  ControlPlaneRepository,
  InteractionRepository,
  ItemRepository,
  SequenceStore,
} from '@cprec/clickhouse';
import type { SampleItems } from '@cprec/corpus';
import { AdapterEvent, AdapterEventSchema, EvaluatorCommand } from '@cprec/contracts';
import { attachLora, LlamaModel, mulberry32, randomWeights, saveLoraAdapter, selectBackend } from '@cprec/lm';
import { DEFAULT_SFT_CONFIG, fineTune, type EvaluationCase } from '@cprec/training';
import { WordTokenizer } from '@cprec/training/testing';
import { TINY_MODEL_KEY } from '../../services/evaluator/src/infra/artefact-gateway';
import { TINY_MODEL_FILE, type TinyModelFile } from '../../services/evaluator/src/evaluation/protocol';
import { useNamespace } from '../support/harness';
import { eventually } from '../support/service-process';
import { uniqueName } from '../support/infra';
import { TestSplitSequencer } from './split-sequencer';

/**
 * The evaluator actor against real Kafka and ClickHouse with the tiny-random base: an adapter
 * fine-tuned in this test (it learns that every user's next item is the "star" item) is
 * evaluated on the frozen leave-one-out split and promoted; a worse adapter (random LoRA) is
 * rejected by the gate while the good one serves; a corrupted artefact is refused; a redelivered
 * event is not evaluated twice; a manual promotion bypasses the gate and says so. Per domain: a
 * books adapter is not held against the games incumbent, and a games candidate is gated against
 * the adapter serving games (serving_events), not the newest promotion nor books' adapter.
 */

const ns = useNamespace('evaluator');
const TOPICS = ns.topics;
const home = ns.home;
const run = uniqueName('ev');
const WORDS = [
  'red',
  'blue',
  'green',
  'fast',
  'slow',
  'bright',
  'soft',
  'loud',
  'tiny',
  'grand',
  'old',
  'new',
];
const ITEMS = 40;
const USERS = 30;
const title = (i: number) => `${WORDS[i % 12]} ${WORDS[Math.floor(i / 12)]} games`;
const TINY: TinyModelFile = {
  format: 'cprec-tiny-random/1',
  config: {
    dim: 16,
    hiddenDim: 32,
    nLayers: 1,
    nHeads: 2,
    nKvHeads: 1,
    maxSeqLen: 192,
    normEps: 1e-5,
    ropeTheta: 10000,
    tiedClassifier: true,
  },
  seed: 1,
  titles: Array.from({ length: ITEMS }, (_, i) => title(i)).sort(),
};
const BUDGET = { maxTokens: 192, maxTitleTokens: 6 };

let ch: ClickHouse;
let control: ControlPlaneRepository;
let store: LocalArtefactStore;
let baseSha: string;
let producer: Producer;
let sequencer: TestSplitSequencer;
const decisions: AdapterEvent[] = [];

const idOf = (name: string) => `${run}-${name}`;
const decisionOf = (name: string) =>
  decisions.find((e) => e.kind !== 'published' && e.adapter_id === idOf(name));

/**
 * Every user's items in time order: five ordinary items, then the star item — in games and, the
 * same catalogue under other ids, in books (a second target domain with a split of its own).
 */
async function seed(): Promise<void> {
  await new ItemRepository(ch).upsertBatch(
    ['games', 'books'].flatMap((domain) =>
      Array.from({ length: ITEMS }, (_, i) => ({
        item_id: `${domain}-${i}`,
        domain,
        title: title(i),
        attributes: {},
        updated_at_ms: 1_000,
      })),
    ),
  );
  const rows = [];
  for (const domain of ['games', 'books'])
    for (let u = 0; u < USERS; u++)
      for (let k = 0; k < 6; k++)
        rows.push({
          event_id: `e-${domain}-${u}-${k}`,
          user_id: `u${String(u).padStart(3, '0')}`,
          item_id: k === 5 ? `${domain}-0` /* the star */ : `${domain}-${1 + ((u + k * 3) % (ITEMS - 1))}`,
          domain,
          ts_ms: 1_600_000_000_000 + k * 60_000 + u,
        });
  await new InteractionRepository(ch).insertBatch(rows, 1_000_000);
  await new SequenceStore(ch).rebuild({ safetyMarginMs: 0, nowMs: 4_000_000_000_000 });
}

function tinyModel(): { model: LlamaModel; tokenizer: WordTokenizer } {
  const tokenizer = WordTokenizer.forTitles(TINY.titles);
  return {
    model: new LlamaModel(randomWeights({ ...TINY.config, vocabSize: tokenizer.vocabSize }, TINY.seed)),
    tokenizer,
  };
}

const item = (i: number) => ({ itemId: `games-${i}`, title: title(i) });

/** Fine-tunes a text-only SFT bundle on "the next item is the star" (what the LOO test split asks). */
async function trainGoodAdapter(out: string): Promise<void> {
  const { model, tokenizer } = tinyModel();
  const rand = mulberry32(3);
  const sample = (): SampleItems => {
    // As the frozen split: 20 candidates (the star + 19 others), a few history items.
    const others = Array.from({ length: ITEMS - 1 }, (_, i) => item(i + 1)).sort(() => rand() - 0.5);
    const candidates = [...others.slice(0, 19), item(0)].sort(() => rand() - 0.5);
    return { history: others.slice(19, 24), candidates, target: item(0) };
  };
  const validation: EvaluationCase[] = Array.from({ length: 6 }, (_, u) => ({
    ...sample(),
    domain: 'games',
    userId: `v${u}`,
    historyLength: 5,
  }));
  await fineTune({
    model,
    tokenizer,
    placeholderId: tokenizer.placeholderId,
    train: Array.from({ length: 24 }, sample),
    validation,
    embeddings: null,
    initAdapterDir: null,
    baseModelId: 'tiny-random',
    baseChecksum: baseSha,
    outDir: out,
    config: {
      ...DEFAULT_SFT_CONFIG,
      batchSize: 8,
      epochs: 2,
      learningRates: [1e-2],
      budget: BUDGET,
      lora: { rank: 4, alpha: 8, dropout: 0 },
      curriculum: false,
      maxValidationExamples: 6,
    },
  });
  model.dispose();
}

/** A LoRA adapter with random B: a model that ranks candidates arbitrarily. */
function saveRandomAdapter(out: string): void {
  const { model } = tinyModel();
  attachLora(model, { rank: 4, alpha: 8, dropout: 0 }, 5);
  const rand = mulberry32(17);
  for (const [name, v] of model.loraVariables())
    if (name.endsWith('lora_B'))
      v.assign(
        tf.tensor(
          Float32Array.from({ length: v.size }, () => (rand() - 0.5) * 2),
          v.shape,
        ),
      );
  saveLoraAdapter(model, join(out, 'adapter'), {
    baseModelId: 'tiny-random',
    baseChecksum: baseSha,
    lineage: {},
  });
  model.dispose();
}

type Published = Extract<AdapterEvent, { kind: 'published' }>;

async function publishAdapter(name: string, dir: string, domain = 'games'): Promise<Published> {
  const record = await store.put(`adapters/${idOf(name)}`, dir);
  const event: Published = {
    kind: 'published',
    adapter_id: idOf(name),
    adapter_kind: 'sft',
    target_domains: [domain],
    uri: record.uri,
    sha256: record.sha256,
    lineage: {
      base_model: 'tiny-random',
      base_model_sha256: baseSha,
      round_id: `${run}-round`,
      trunk_id: null,
      cpt_adapter_id: null,
      data_watermark: 0,
    },
    ts: Date.now(),
  };
  // What the trainer records when it publishes (the evaluator reads adapters from here).
  await control.insertAdapter({
    adapter_id: event.adapter_id,
    adapter_kind: 'sft',
    round_id: event.lineage.round_id,
    target_domains: event.target_domains,
    uri: event.uri,
    sha256: event.sha256,
    lineage: { ...event.lineage },
    created_ms: event.ts,
  });
  return event;
}

/** One key for every message: one partition, so the evaluator sees them in this order. */
const send = (topic: string, value: object) =>
  producer.send({ topic, messages: [{ key: run, value: JSON.stringify(value) }] });

beforeAll(async () => {
  // The fastest cpu kernels for the in-test fine-tuning (the evaluator's processes pick their own).
  await selectBackend('cpu');
  ch = ns.ch;
  control = new ControlPlaneRepository(ch);
  store = new LocalArtefactStore(join(home, 'artefacts'));
  await seed();
  const baseDir = mkdtempSync(join(tmpdir(), 'cprec-evaluator-base-'));
  writeFileSync(join(baseDir, TINY_MODEL_FILE), JSON.stringify(TINY));
  baseSha = (await store.put(TINY_MODEL_KEY, baseDir)).sha256;
  rmSync(baseDir, { recursive: true, force: true });

  producer = await ns.producer();
  sequencer = new TestSplitSequencer(ns.kafka(), ch, ['games', 'books'], TOPICS, ns.group('split-sequencer'));
  ns.onTearDown(() => sequencer.stop());
  await sequencer.start();
  await ns.consume([TOPICS.adapters], async ({ message }) => {
    const parsed = AdapterEventSchema.safeParse(JSON.parse(message.value?.toString() ?? 'null'));
    if (parsed.success && parsed.data.adapter_id.startsWith(run)) decisions.push(parsed.data);
  });

  await ns.startService('evaluator', 'EVALUATOR_PORT', {
    EVALUATOR_GROUP_ID: ns.group('evaluator'),
    EVALUATOR_FROM_BEGINNING: 'true',
    EVALUATOR_MODEL: 'tiny-random',
    EVALUATOR_BACKEND: 'cpu',
    EVALUATOR_MAX_EXAMPLES: '30',
    EVALUATOR_GATE_MIN_SAMPLES: '10',
    EVALUATOR_MAX_TOKENS: String(BUDGET.maxTokens),
    EVALUATOR_MAX_TITLE_TOKENS: String(BUDGET.maxTitleTokens),
    EVALUATOR_SPLIT_POLL_MS: '200',
    EVALUATOR_SPLIT_TIMEOUT_MS: '60000',
  });
}, 180_000);

describe('evaluator actor', () => {
  const work = mkdtempSync(join(tmpdir(), 'cprec-evaluator-adapters-'));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('evaluates a published adapter on the frozen test split and promotes it when nothing serves yet', async () => {
    await trainGoodAdapter(join(work, 'good'));
    const good = await publishAdapter('good', join(work, 'good'));
    let sentAt = 0;
    // Re-sent until decided: covers the moment between the evaluator's group join and its first
    // fetch (a new group starts at the end of the topic); a re-delivery is skipped by design.
    await eventually(
      async () => {
        if (Date.now() - sentAt > 15_000) {
          await send(TOPICS.adapters, good);
          sentAt = Date.now();
        }
        return decisionOf('good');
      },
      (d) => d !== undefined,
      'decision on the good adapter',
      180_000,
    );
    const decision = decisionOf('good')!;
    expect(decision).toMatchObject({
      kind: 'promoted',
      uri: good.uri,
      sha256: good.sha256,
      target_domains: ['games'],
    });
    if (decision.kind !== 'promoted') return;
    const evaluations = await control.listEvaluations({ adapterIds: [idOf('good')] });
    expect(evaluations).toHaveLength(1);
    const [row] = evaluations;
    expect(row).toMatchObject({ domain: 'games', method: 'likelihood', samples: USERS, valid_ratio: 1 });
    expect(row.split_id).toMatch(/^loo-games-/);
    // The fine-tuned adapter learnt the pattern: far above chance (1 / candidates ≤ 1/11).
    expect(row.hr1).toBeGreaterThan(0.5);
    expect(decision.hr1).toEqual({ games: row.hr1 });
    expect(row.hr3).toBeGreaterThanOrEqual(row.hr1);
    expect(sequencer.handled).toContain(row.split_id);
    expect(await control.listPromotions({ adapterIds: [idOf('good')] })).toMatchObject([
      { decision: 'promoted' },
    ]);
  }, 240_000);

  it('rejects a worse adapter and a corrupted artefact while the good one serves, never deciding twice', async () => {
    saveRandomAdapter(join(work, 'worse'));
    const worse = await publishAdapter('worse', join(work, 'worse'));
    saveRandomAdapter(join(work, 'corrupt'));
    const corrupt = await publishAdapter('corrupt', join(work, 'corrupt'));
    // Flip the stored weights after publication: the store's checksum no longer matches.
    const stored = join(fileURLToPath(corrupt.uri), 'adapter');
    const weights = readdirSync(stored).find((f) => f.endsWith('.safetensors'))!;
    writeFileSync(join(stored, weights), Buffer.alloc(64, 7), { flag: 'r+' });

    // The good adapter's event again (a redelivery), then the two new ones.
    await send(TOPICS.adapters, await publishedAgain('good'));
    await send(TOPICS.adapters, worse);
    await send(TOPICS.adapters, corrupt);
    await eventually(
      async () => [decisionOf('worse'), decisionOf('corrupt')],
      (ds) => ds.every((d) => d !== undefined),
      'decisions on the worse and corrupted adapters',
      180_000,
    );
    const rejected = decisionOf('worse')!;
    expect(rejected.kind).toBe('rejected');
    if (rejected.kind === 'rejected')
      expect(rejected.reasons[0]).toMatch(
        new RegExp(`^games: HR@1 .* below ${idOf('good')}'s .*, the adapter serving games`),
      );
    const [worseRow] = await control.listEvaluations({ adapterIds: [idOf('worse')] });
    const [goodRow] = await control.listEvaluations({ adapterIds: [idOf('good')] });
    expect(worseRow.split_id).toBe(goodRow.split_id);
    expect(worseRow.hr1).toBeLessThan(goodRow.hr1 - 0.02);

    const refused = decisionOf('corrupt')!;
    expect(refused.kind).toBe('rejected');
    if (refused.kind === 'rejected') expect(refused.reasons[0]).toMatch(/^artefact refused: .*corrupted/);
    expect(await control.listEvaluations({ adapterIds: [idOf('corrupt')] })).toEqual([]);

    // The redelivered good event came first on the same partition: skipped, not re-decided.
    expect(await control.listPromotions({ adapterIds: [idOf('good')] })).toHaveLength(1);
    expect(decisions.filter((d) => d.adapter_id === idOf('good') && d.kind !== 'published')).toHaveLength(1);
  }, 240_000);

  it('promotes on the operator’s command, bypassing the gate and recording it', async () => {
    const command: EvaluatorCommand = {
      kind: 'promote',
      command_id: `${run}-promote`,
      adapter_id: idOf('worse'),
      requested_by: 'operator:test',
      reason: 'integration test',
      ts: Date.now(),
    };
    await producer.send({
      topic: TOPICS.evaluatorCommands,
      messages: [{ key: command.command_id, value: JSON.stringify(command) }],
    });
    const promoted = await eventually(
      async () => decisions.find((d) => d.adapter_id === idOf('worse') && d.kind === 'promoted'),
      (d) => d !== undefined,
      'manual promotion of the worse adapter',
    );
    if (promoted?.kind !== 'promoted') throw new Error('not promoted');
    expect(promoted.reasons[0]).toBe('manual promotion by operator:test, gate bypassed: integration test');
    expect(promoted.reasons[1]).toBe('the gate had rejected it:');
    const decisionsOfWorse = await control.listPromotions({ adapterIds: [idOf('worse')] });
    expect(decisionsOfWorse.map((p) => p.decision).sort()).toEqual(['promoted', 'rejected']);
  }, 120_000);

  it('gates each domain against the adapter serving that domain: books has none yet, games has good (rolled back to)', async () => {
    // What serving records (it publishes, the evaluator stores; here the test writes the rows): games
    // got worse (the manual promotion), then an operator rolled games back to good.
    const servingEvent = (event: 'switch' | 'rollback', domain: string, adapterId: string, ts_ms: number) =>
      control.insertServingEvent({
        event,
        domain,
        adapter_id: adapterId,
        previous_adapter_id: '',
        detail: 'test',
        ts_ms,
      });
    const t = Date.now();
    await servingEvent('switch', 'games', idOf('worse'), t);
    await servingEvent('rollback', 'games', idOf('good'), t + 1);

    // A books adapter (the good bundle, published for books): nothing serves books, so it is not
    // held against games' good adapter — only the absolute checks apply.
    const booksGood = await publishAdapter('books-good', join(work, 'good'), 'books');
    await send(TOPICS.adapters, booksGood);
    const books = await eventually(
      async () => decisionOf('books-good'),
      (d) => d !== undefined,
      'decision on the books adapter',
      180_000,
    );
    expect(books).toMatchObject({ kind: 'promoted', target_domains: ['books'] });
    if (books?.kind === 'promoted') {
      expect(books.reasons.join('\n')).toMatch(/books: HR@1 .* \(no adapter serves books to compare with\)/);
      expect(books.reasons.join('\n')).not.toContain(`${idOf('good')}'s`);
    }
    const [booksRow] = await control.listEvaluations({ adapterIds: [idOf('books-good')] });
    expect(booksRow.split_id).toMatch(/^loo-books-/);
    await servingEvent('switch', 'books', idOf('books-good'), t + 2);

    // A games candidate identical to worse: the newest promotion for games is worse (it would pass
    // against itself), books is served by books-good, but games is served by good — the incumbent.
    saveRandomAdapter(join(work, 'next'));
    const next = await publishAdapter('next', join(work, 'next'));
    await send(TOPICS.adapters, next);
    const decided = await eventually(
      async () => decisionOf('next'),
      (d) => d !== undefined,
      'decision on the next games adapter',
      180_000,
    );
    expect(decided?.kind).toBe('rejected');
    if (decided?.kind === 'rejected') {
      expect(decided.reasons[0]).toMatch(
        new RegExp(`^games: HR@1 .* below ${idOf('good')}'s .*, the adapter serving games`),
      );
      expect(decided.reasons.join('\n')).not.toContain(idOf('books-good'));
    }
  }, 300_000);
});

/** The AdapterPublished of an adapter already in the `adapters` table (as the trainer sent it). */
async function publishedAgain(name: string): Promise<AdapterEvent> {
  const a = (await control.getAdapter(idOf(name)))!;
  return {
    kind: 'published',
    adapter_id: a.adapter_id,
    adapter_kind: 'sft',
    target_domains: a.target_domains,
    uri: a.uri,
    sha256: a.sha256,
    lineage: {
      base_model: 'tiny-random',
      base_model_sha256: baseSha,
      round_id: a.round_id,
      trunk_id: null,
      cpt_adapter_id: null,
      data_watermark: 0,
    },
    ts: a.created_ms,
  };
}
