import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import type { Producer } from 'kafkajs';
import { LocalArtefactStore, type ArtefactRecord } from '@cprec/artefacts';
import { randomBytes } from 'node:crypto';
import {
  ClickHouse,
  ControlPlaneRepository,
  InteractionRepository,
  ItemRepository,
  SequenceStore,
  servingOf,
} from '@cprec/clickhouse';
import type { AdapterEvent, ServingCommand } from '@cprec/contracts';
import { attachLora, LlamaModel, mulberry32, randomWeights, saveLoraAdapter } from '@cprec/lm';
import { WordTokenizer } from '@cprec/training/testing';
import { useNamespace } from '../support/harness';
import { eventually, RunningService } from '../support/service-process';
import { uniqueName } from '../support/infra';

/**
 * The serving actor against real Kafka and ClickHouse with the trainer's tiny-random base model
 * (its artefact written here as the trainer would): explicit and first-stage recommendations,
 * hot swap on AdapterEvent 'promoted', refusal of a corrupted artefact, rollback over HTTP and
 * over Kafka (HTTP rollback only with the token and a JSON body), request validation,
 * serving_events and metrics — and one adapter per domain: X promoted for books and Y for films
 * answer their own domain's requests, a rollback of books leaves films alone, and a restart
 * resumes each domain's adapter. Serving is read-only on ClickHouse: it publishes its events on
 * the serving-events topic and the evaluator (started here as the table's writer) stores them in
 * serving_events; a restart before the evaluator stored the last event resumes it from the topic.
 */

const ns = useNamespace('serving');
const token = randomBytes(12).toString('hex');
const store = new LocalArtefactStore(join(ns.home, 'artefacts'));
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
const DOMAIN = 'books';
const ITEMS = Array.from({ length: 12 }, (_, i) => ({
  item_id: `${DOMAIN}-${i}`,
  title: `${WORDS[i]} ${WORDS[(i * 5 + 1) % 12]} ${DOMAIN}`,
}));
/** A second domain, served by an adapter of its own. */
const OTHER = 'films';
const OTHER_ITEMS = Array.from({ length: 6 }, (_, i) => ({
  item_id: `${OTHER}-${i}`,
  title: `${WORDS[(i * 7 + 3) % 12]} ${WORDS[i + 2]} ${OTHER}`,
}));
const TINY_CONFIG = {
  dim: 16,
  hiddenDim: 32,
  nLayers: 1,
  nHeads: 2,
  nKvHeads: 1,
  maxSeqLen: 192,
  normEps: 1e-5,
  ropeTheta: 10000,
  tiedClassifier: true,
};

let ch: ClickHouse;
let control: ControlPlaneRepository;
let producer: Producer;
let serving: RunningService;
let evaluator: RunningService;
let url: string;
let adapterA: ArtefactRecord;
let adapterBad: ArtefactRecord;
let adapterF: ArtefactRecord;

interface RecommendBody {
  items: Array<{ item_id: string; title: string; score: number; rank: number }>;
  adapter_id: string;
  adapter_version: string;
  first_stage: string;
  latency_ms: number;
}

async function post(
  path: string,
  body: unknown,
  headers: Record<string, string> = { 'content-type': 'application/json' },
): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${url}${path}`, {
    method: 'POST',
    headers,
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

/** POST /v1/rollback as the operator would send it: the token and a JSON body. */
const rollback = (body: unknown) =>
  post('/v1/rollback', body, { 'content-type': 'application/json', authorization: `Bearer ${token}` });

const recommend = async (body: unknown): Promise<RecommendBody> => {
  const { status, json } = await post('/v1/recommend', body);
  if (status !== 200) throw new Error(`recommend: ${status} ${JSON.stringify(json)}`);
  return json as unknown as RecommendBody;
};

const explicit = {
  history: ['books-1', 'books-2'],
  domain: DOMAIN,
  candidate_ids: ['books-5', 'books-6', 'books-7'],
  k: 3,
};

/** The trainer's tiny base: a word tokenizer over the catalogue titles and seeded random weights. */
async function putTinyBase(): Promise<{ sha256: string; model: LlamaModel }> {
  const titles = [...ITEMS, ...OTHER_ITEMS].map((i) => i.title).sort();
  const dir = mkdtempSync(join(tmpdir(), 'cprec-tiny-'));
  writeFileSync(
    join(dir, 'tiny-model.json'),
    JSON.stringify({ format: 'cprec-tiny-random/1', config: TINY_CONFIG, seed: 1, titles }),
  );
  const record = await store.put('base-models/tiny-random', dir);
  rmSync(dir, { recursive: true, force: true });
  const tokenizer = WordTokenizer.forTitles(titles);
  return {
    sha256: record.sha256,
    model: new LlamaModel(randomWeights({ ...TINY_CONFIG, vocabSize: tokenizer.vocabSize }, 1)),
  };
}

/** A LoRA adapter on the tiny base with random non-zero B (so it changes scores), stored as an artefact. */
async function putAdapter(
  model: LlamaModel,
  baseSha256: string,
  key: string,
  seed: number,
): Promise<ArtefactRecord> {
  attachLora(model, { rank: 2, alpha: 4, dropout: 0 }, seed);
  const rand = mulberry32(seed);
  for (const [name, v] of model.loraVariables())
    if (name.endsWith('lora_B'))
      v.assign(
        tf.tensor(
          Float32Array.from({ length: v.size }, () => rand() - 0.5),
          v.shape,
        ),
      );
  const dir = mkdtempSync(join(tmpdir(), 'cprec-adapter-'));
  saveLoraAdapter(model, dir, {
    baseModelId: 'tiny-random',
    baseChecksum: baseSha256,
    lineage: { round_id: key },
  });
  const record = await store.put(key, dir);
  rmSync(dir, { recursive: true, force: true });
  return record;
}

const promote = (id: string, record: ArtefactRecord, domain = DOMAIN) => {
  const event: AdapterEvent = {
    kind: 'promoted',
    adapter_id: id,
    uri: record.uri,
    sha256: record.sha256,
    target_domains: [domain],
    hr1: { [domain]: 0.5 },
    reasons: ['integration test'],
    ts: Date.now(),
  };
  return producer.send({ topic: ns.topics.adapters, messages: [{ key: id, value: JSON.stringify(event) }] });
};

beforeAll(async () => {
  ch = ns.ch;
  control = new ControlPlaneRepository(ch);
  await new ItemRepository(ch).upsertBatch([
    ...ITEMS.map((i) => ({ ...i, domain: DOMAIN, attributes: {}, updated_at_ms: 1_000 })),
    ...OTHER_ITEMS.map((i) => ({ ...i, domain: OTHER, attributes: {}, updated_at_ms: 1_000 })),
  ]);
  const rows = [];
  for (let u = 0; u < 8; u++)
    for (let k = 0; k < 6; k++)
      rows.push({
        event_id: `e-${u}-${k}`,
        user_id: `u${u}`,
        item_id: `${DOMAIN}-${(u + k * 2) % 12}`,
        domain: DOMAIN,
        ts_ms: 1_600_000_000_000 + k * 60_000 + u,
      });
  await new InteractionRepository(ch).insertBatch(rows, 1_000_000);
  await new SequenceStore(ch).rebuild({ safetyMarginMs: 0, nowMs: 4_000_000_000_000 });

  const base = await putTinyBase();
  adapterA = await putAdapter(base.model, base.sha256, 'adapters/it-a1', 3);
  adapterBad = await putAdapter(base.model, base.sha256, 'adapters/it-bad', 5);
  adapterF = await putAdapter(base.model, base.sha256, 'adapters/it-f1', 9);
  base.model.dispose();
  // Corrupt the stored copy after its record was written: the sha256 no longer matches.
  appendFileSync(join(fileURLToPath(adapterBad.uri), 'adapter.safetensors'), Buffer.from([0]));

  producer = await ns.producer();
  await Promise.all([startEvaluator(), startServing()]);
});

/** The writer of serving_events (it stores what serving publishes; nothing here is evaluated). */
const startEvaluator = async () => {
  evaluator = await ns.startService('evaluator', 'EVALUATOR_PORT', {
    EVALUATOR_GROUP_ID: ns.group('evaluator'),
    EVALUATOR_MODEL: 'tiny-random',
    EVALUATOR_BACKEND: 'cpu',
  });
};

const startServing = async () => {
  serving = await ns.startService('serving', 'SERVING_PORT', {
    SERVING_GROUP_ID: ns.group('serving'),
    SERVING_MODEL: 'tiny-random',
    SERVING_BACKEND: 'cpu',
    SERVING_SASREC_MIN_SEQUENCES: '4',
    SERVING_SASREC_FIT_BUDGET_MS: '3000',
    SERVING_TOKEN: token,
  });
  url = `http://127.0.0.1:${serving.port}`;
};

describe('serving actor', () => {
  it('re-ranks explicit candidates with the base model', async () => {
    const body = await recommend(explicit);
    expect(body.adapter_id).toBe('base');
    expect(body.first_stage).toBe('given');
    expect(body.items).toHaveLength(3);
    expect(body.items.map((i) => i.rank)).toEqual([1, 2, 3]);
    for (const item of body.items) {
      expect(explicit.candidate_ids).toContain(item.item_id);
      expect(item.title).toBe(ITEMS.find((i) => i.item_id === item.item_id)!.title);
      expect(Number.isFinite(item.score)).toBe(true);
    }
    expect(body.items[0].score).toBeGreaterThanOrEqual(body.items[2].score);
  });

  it('reads the history of a user id and lets the first stage propose items the user does not have', async () => {
    const [sequence] = (await new SequenceStore(ch).readDomainSequences(DOMAIN)).filter(
      (s) => s.userId === 'u0',
    );
    const body = await recommend({ user_id: 'u0', domain: DOMAIN, k: 3, n_candidates: 5 });
    expect(['sasrec', 'popularity']).toContain(body.first_stage);
    expect(body.items.length).toBeGreaterThan(0);
    expect(body.items.length).toBeLessThanOrEqual(3);
    for (const item of body.items) expect(sequence.itemIds).not.toContain(item.item_id);
    const unknown = await post('/v1/recommend', { user_id: 'nobody', domain: DOMAIN });
    expect(unknown.status).toBe(404);
    expect(String(unknown.json.message)).toMatch(/user "nobody" has no history/);
  });

  it('answers malformed requests with 400 and a message', async () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ history: ['books-1'] }, /domain/],
      [{ ...explicit, k: 0 }, /k: /],
      [{ domain: DOMAIN }, /user_id .* or an explicit history/],
      [{ ...explicit, candidate_ids: ['books-1', 'nope-9'] }, /unknown items .*nope-9/],
      [{ ...explicit, history: ['missing-1'] }, /history: unknown items .*missing-1/],
      ['{"domain": ', /JSON|Unexpected|Expected/i],
    ];
    for (const [body, message] of cases) {
      const { status, json } = await post('/v1/recommend', body);
      expect({ body, status }).toEqual({ body, status: 400 });
      expect(String(json.message)).toMatch(message);
    }
  });

  it('hot-swaps to a promoted adapter, refuses a corrupted one and keeps serving, rolls back over HTTP and Kafka', async () => {
    const before = await recommend(explicit);
    await promote('it-a1', adapterA);
    const swapped = await eventually(
      () => recommend(explicit),
      (b) => b.adapter_id === 'it-a1',
      'switch to it-a1',
    );
    expect(swapped.adapter_version).toBe(adapterA.sha256.slice(0, 12));
    // The adapter changes the model: same request, different scores.
    const scoreOf = (b: RecommendBody, id: string) => b.items.find((i) => i.item_id === id)!.score;
    expect(Math.abs(scoreOf(swapped, 'books-5') - scoreOf(before, 'books-5'))).toBeGreaterThan(1e-4);

    await promote('it-bad', adapterBad);
    const failed = await eventually(
      () => control.listServingEvents(),
      (events) => events.some((e) => e.event === 'load_failed' && e.adapter_id === 'it-bad'),
      'load_failed of it-bad',
    );
    expect(failed.find((e) => e.adapter_id === 'it-bad')!.detail).toMatch(/corrupted|sha256/);
    expect((await recommend(explicit)).adapter_id).toBe('it-a1');

    // Changing what is served needs the token: without it (or with a wrong one) nothing changes.
    const servingBefore = await control.listServingEvents();
    const anonymous = await post('/v1/rollback', {});
    expect(anonymous.status).toBe(401);
    const wrong = await post(
      '/v1/rollback',
      {},
      { 'content-type': 'application/json', authorization: 'Bearer nope' },
    );
    expect(wrong.status).toBe(401);
    // …and a JSON body: a text/plain POST (what a web page can send cross-site) is refused.
    const plain = await post('/v1/rollback', '{}', {
      'content-type': 'text/plain',
      authorization: `Bearer ${token}`,
    });
    expect(plain.status).toBe(415);
    expect(String(plain.json.message)).toMatch(/must be JSON/);
    expect((await recommend(explicit)).adapter_id).toBe('it-a1');
    expect(await control.listServingEvents()).toEqual(servingBefore);

    // A rollback names its domain.
    const noDomain = await rollback({});
    expect(noDomain.status).toBe(400);
    expect(String(noDomain.json.message)).toMatch(/^domain: /);
    const rolled = await rollback({ domain: DOMAIN });
    expect(rolled.status).toBe(200);
    expect(rolled.json).toMatchObject({
      domain: DOMAIN,
      adapter_id: 'base',
      previous_adapter_id: 'it-a1',
      changed: true,
    });
    expect((await recommend(explicit)).adapter_id).toBe('base');
    const nothing = await rollback({ domain: DOMAIN });
    expect(nothing.status).toBe(409);
    expect(String(nothing.json.message)).toMatch(/nothing to roll back to in domain "books"/);

    const command: ServingCommand = {
      kind: 'rollback',
      command_id: uniqueName('cmd'),
      domain: DOMAIN,
      to_adapter_id: 'it-a1',
      requested_by: 'integration-test',
      ts: Date.now(),
    };
    await producer.send({
      topic: ns.topics.servingCommands,
      messages: [{ key: command.command_id, value: JSON.stringify(command) }],
    });
    await eventually(
      () => recommend(explicit),
      (b) => b.adapter_id === 'it-a1',
      'rollback to it-a1 over Kafka',
    );

    // Stored by the evaluator, asynchronously.
    const events = await eventually(
      () => control.listServingEvents(),
      (rows) => rows.some((e) => e.event === 'rollback' && e.adapter_id === 'it-a1'),
      'rollback to it-a1 stored',
    );
    const kinds = events.map((e) => `${e.event}:${e.adapter_id}`);
    expect(kinds).toEqual(
      expect.arrayContaining(['switch:it-a1', 'load_failed:it-bad', 'rollback:base', 'rollback:it-a1']),
    );
    expect(events.every((e) => e.domain === DOMAIN)).toBe(true);
    expect(servingOf(await control.servingByDomain(), DOMAIN)?.adapter_id).toBe('it-a1');
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toMatch(
      /cprec_serving_adapter_info\{domain="books",adapter_id="it-a1",adapter_version="[0-9a-f]{12}"[^}]*\} 1/,
    );
    expect(metrics).toMatch(/cprec_serving_errors_total\{route="recommend",status="400"[^}]*\} [1-9]/);
    expect(metrics).toMatch(/cprec_serving_request_duration_seconds_bucket/);
  });

  it('serves one adapter per domain: X for books, Y for films; a rollback of books leaves films alone; a restart resumes both', async () => {
    const films = {
      history: ['films-0', 'films-1'],
      domain: OTHER,
      candidate_ids: ['films-2', 'films-3', 'films-4'],
      k: 3,
    };
    // films has no adapter yet: the base model answers it while books has it-a1.
    const filmsBefore = await recommend(films);
    expect(filmsBefore.adapter_id).toBe('base');
    expect((await recommend(explicit)).adapter_id).toBe('it-a1');

    // What the trainer records of its adapters (serving resolves them there after a restart).
    for (const [id, record, domain] of [
      ['it-a1', adapterA, DOMAIN],
      ['it-f1', adapterF, OTHER],
    ] as const)
      await control.insertAdapter({
        adapter_id: id,
        adapter_kind: 'sft',
        round_id: 'it',
        target_domains: [domain],
        uri: record.uri,
        sha256: record.sha256,
        lineage: {},
        created_ms: Date.now(),
      });
    await promote('it-f1', adapterF, OTHER);
    await eventually(
      () => recommend(films),
      (b) => b.adapter_id === 'it-f1',
      'films switched to it-f1',
    );
    // Concurrent requests of both domains (batched together) are each ranked by their own adapter.
    const mixed = await Promise.all([
      recommend(explicit),
      recommend(films),
      recommend(explicit),
      recommend(films),
    ]);
    expect(mixed.map((b) => b.adapter_id)).toEqual(['it-a1', 'it-f1', 'it-a1', 'it-f1']);
    expect(mixed[1].adapter_version).toBe(adapterF.sha256.slice(0, 12));
    const filmScore = (b: RecommendBody) => b.items.find((i) => i.item_id === 'films-2')!.score;
    expect(Math.abs(filmScore(mixed[1]) - filmScore(filmsBefore))).toBeGreaterThan(1e-4);

    const adapters = (await (await fetch(`${url}/v1/adapter`)).json()) as {
      domains: Array<{ domain: string; adapter_id: string }>;
    };
    expect(adapters.domains.map((d) => [d.domain, d.adapter_id])).toEqual([
      [DOMAIN, 'it-a1'],
      [OTHER, 'it-f1'],
    ]);

    // Rolling books back to the base model leaves films on it-f1.
    const rolled = await rollback({ domain: DOMAIN, to_adapter_id: 'base' });
    expect(rolled.json).toMatchObject({ domain: DOMAIN, adapter_id: 'base', previous_adapter_id: 'it-a1' });
    expect((await recommend(explicit)).adapter_id).toBe('base');
    expect((await recommend(films)).adapter_id).toBe('it-f1');
    const one = (await (await fetch(`${url}/v1/adapter?domain=${OTHER}`)).json()) as Record<string, unknown>;
    expect(one).toMatchObject({ domain: OTHER, adapter_id: 'it-f1', rollback_history: ['base'] });
    const assignments = await eventually(
      () => control.servingByDomain(),
      (rows) => servingOf(rows, DOMAIN)?.adapter_id === 'base',
      'rollback of books to base stored',
    );
    expect(servingOf(assignments, DOMAIN)?.adapter_id).toBe('base');
    expect(servingOf(assignments, OTHER)?.adapter_id).toBe('it-f1');

    // After a restart each domain gets back what served it: films it-f1, books the base model.
    await serving.stop();
    await startServing();
    expect((await recommend(films)).adapter_id).toBe('it-f1');
    expect((await recommend(explicit)).adapter_id).toBe('base');
  });

  it('resumes a rollback published just before a restart that the evaluator had not stored yet (read back from the topic)', async () => {
    // The window: serving rolls films back and publishes the event, the writer has not stored it
    // (here: it is down), serving restarts. The table still says films → it-f1.
    await evaluator.stop();
    const tap = await ns.tap([ns.topics.servingEvents]);
    const rolled = await rollback({ domain: OTHER, to_adapter_id: 'base' });
    expect(rolled.json).toMatchObject({ domain: OTHER, adapter_id: 'base', previous_adapter_id: 'it-f1' });
    const published = await tap.waitFor<{ event: string; domain: string; adapter_id: string; ts_ms: number }>(
      ns.topics.servingEvents,
      (e) => e.event === 'rollback' && e.domain === OTHER && e.adapter_id === 'base',
      'the rollback of films on the serving-events topic',
    );
    expect(servingOf(await control.servingByDomain(), OTHER)?.adapter_id).toBe('it-f1');

    await serving.stop();
    await startServing();
    const films = { history: ['films-0'], domain: OTHER, candidate_ids: ['films-2', 'films-3'], k: 2 };
    expect((await recommend(films)).adapter_id).toBe('base');
    expect((await recommend(explicit)).adapter_id).toBe('base');
    // Still not in the table: what served came from the topic.
    expect(servingOf(await control.servingByDomain(), OTHER)?.adapter_id).toBe('it-f1');

    // The writer back: it stores the event (it had not committed past it), once.
    await startEvaluator();
    await eventually(
      () => control.servingByDomain(),
      (rows) => servingOf(rows, OTHER)?.adapter_id === 'base',
      'the rollback of films stored',
    );
    const rows = (await control.listServingEvents({ limit: 1000 })).filter(
      (e) => e.event === 'rollback' && e.domain === OTHER && e.ts_ms === published.ts_ms,
    );
    expect(rows).toHaveLength(1);
  });
});
