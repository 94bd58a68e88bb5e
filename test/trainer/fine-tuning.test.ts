import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Producer } from 'kafkajs';
import { digestPath, LocalArtefactStore } from '@cprec/artefacts';
import {
  ClickHouse,
  ControlPlaneRepository,
  EvalSplitRepository,
  InteractionRepository,
  ItemRepository,
  SequenceStore,
} from '@cprec/clickhouse';
import { AdapterEvent, AdapterEventSchema, looSplitId, RoundCommand } from '@cprec/contracts';
import { readLoraManifest } from '@cprec/lm';
import { ITEM_EMBEDDINGS_FILE, PROJECTOR_FILE, SFT_ADAPTER_DIR } from '@cprec/training';
import { roundIdFor } from '../../services/trainer/src/rounds/round-coordinator';
import {
  BUNDLE_FILE,
  SASREC_DIR,
  type SftBundleInfo,
} from '../../services/trainer/src/runner/llara-fine-tuning';
import { useNamespace } from '../support/harness';
import { eventually } from '../support/service-process';
import { uniqueName } from '../support/infra';

/**
 * A round with target domains, end to end on real Kafka and ClickHouse: the real sequencer
 * process rebuilds the sequences and freezes the leave-one-out split the trainer asks for, the
 * trainer (tiny random model) runs CPT, then fine-tunes the target domain on the split's
 * validation side (SASRec item table, hybrid prompts, LoRA from the CPT adapter), and publishes
 * the CPT adapter and the SFT bundle. A target domain with too little data is skipped with a note.
 */

const ns = useNamespace('trainer_sft');
const TOPICS = ns.topics;
const home = ns.home;
const run = uniqueName('sft')
  .replace(/[^A-Za-z0-9]/g, '')
  .slice(-12);
// A split epoch of this run only: the sequencer replays old split requests of the shared broker
// (its group starts from the beginning), and none of them may freeze this run's split early.
const SPLIT_EPOCH = `it${run}`;
const SPLIT_SEED = 20_240_501;
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
const GAMES = 30;
// Domains of this run only: every trainer on the shared broker sees this trigger, and one whose
// database has no such domain skips it at once instead of waiting for a split.
const GAMES_DOMAIN = `games-${run}`;
const TOYS_DOMAIN = `toys-${run}`;
const USERS = 24;

let ch: ClickHouse;
let control: ControlPlaneRepository;
let producer: Producer;
const adapterEvents: AdapterEvent[] = [];

const title = (domain: string, i: number) => `${WORDS[i % 12]} ${WORDS[(i * 5 + 1) % 12]} ${domain} ${i}`;

beforeAll(async () => {
  ch = ns.ch;
  control = new ControlPlaneRepository(ch);
  const catalogue = [
    ...Array.from({ length: GAMES }, (_, i) => ({
      item_id: `${GAMES_DOMAIN}-${i}`,
      domain: GAMES_DOMAIN,
      title: title(GAMES_DOMAIN, i),
    })),
    ...Array.from({ length: 12 }, (_, i) => ({
      item_id: `beauty-${i}`,
      domain: 'beauty',
      title: title('beauty', i),
    })),
    // Enough toys items for the split's 19 negatives: the toys split is frozen, only too small to train on.
    ...Array.from({ length: GAMES }, (_, i) => ({
      item_id: `${TOYS_DOMAIN}-${i}`,
      domain: TOYS_DOMAIN,
      title: title(TOYS_DOMAIN, i),
    })),
  ];
  await new ItemRepository(ch).upsertBatch(
    catalogue.map((c) => ({ ...c, attributes: {}, updated_at_ms: 1_000 })),
  );
  // Each user: 8 games items (a walk of stride 1 from a user-specific start: a learnable signal)
  // interleaved with 4 beauty items; two users also have 3 toys items (too few to fine-tune).
  const rows = [];
  for (let u = 0; u < USERS; u++) {
    for (let k = 0; k < 12; k++) {
      const beauty = k % 3 === 2;
      const item = beauty ? `beauty-${(u + k) % 12}` : `${GAMES_DOMAIN}-${(u * 3 + k) % GAMES}`;
      rows.push({
        event_id: `e-${u}-${k}`,
        user_id: `u${u}`,
        item_id: item,
        domain: beauty ? 'beauty' : GAMES_DOMAIN,
        ts_ms: 1_600_000_000_000 + k * 60_000 + u,
      });
    }
    if (u < 2)
      for (let k = 0; k < 3; k++)
        rows.push({
          event_id: `t-${u}-${k}`,
          user_id: `u${u}`,
          item_id: `${TOYS_DOMAIN}-${u + k}`,
          domain: TOYS_DOMAIN,
          ts_ms: 1_600_000_000_000 + k * 60_000 + 30_000,
        });
  }
  await new InteractionRepository(ch).insertBatch(rows, Date.now() - 60_000);

  producer = await ns.producer();
  await ns.consume([TOPICS.adapters], async ({ message }) => {
    const parsed = AdapterEventSchema.safeParse(JSON.parse(message.value!.toString()));
    if (parsed.success) adapterEvents.push(parsed.data);
  });

  // The real sequencer: rebuilds this database's sequences and is the one writer of its splits.
  await ns.startService('sequencer', 'SEQUENCER_PORT', {
    SEQUENCER_INTERVAL_MS: '300',
    SEQUENCER_SAFETY_MARGIN_MS: '0',
    SEQUENCER_CLIENT_ID: ns.group('sequencer'),
  });
  const store = new SequenceStore(ch);
  await eventually(
    async () => (await store.readDomainSequences(GAMES_DOMAIN)).length,
    (n) => n === USERS,
    'the sequencer rebuilt the games sequences',
    120_000,
  );

  await ns.startService('trainer', 'TRAINER_PORT', {
    TRAINER_GROUP_ID: ns.group('trainer'),
    TRAINER_MODEL: 'tiny-random',
    TRAINER_BACKEND: 'cpu',
    TRAINER_BATCH_SIZE: '2',
    TRAINER_MAX_STEPS_PER_ROUND: '6',
    TRAINER_CHECKPOINT_EVERY: '3',
    TRAINER_MAX_TOKENS: '192',
    TRAINER_NEGATIVES: '3',
    TRAINER_WARMUP_FRACTION: '0.2',
    TRAINER_ANNEAL_FRACTION: '0.3',
    TRAINER_ETA_HIGH: '0.01',
    TRAINER_ETA_LOW: '0.0001',
    TRAINER_COMMAND_MAX_AGE_MS: '60000',
    TRAINER_SPLIT_EPOCH: SPLIT_EPOCH,
    TRAINER_SPLIT_SEED: String(SPLIT_SEED),
    TRAINER_SPLIT_POLL_MS: '200',
    TRAINER_SFT_EPOCHS: '1',
    TRAINER_SFT_BATCH_SIZE: '4',
    TRAINER_SFT_LEARNING_RATES: '0.003,0.01',
    TRAINER_SFT_MAX_SAMPLES: '16',
    TRAINER_SFT_MIN_SAMPLES: '8',
    TRAINER_SFT_MAX_VALIDATION: '6',
    TRAINER_SFT_NEGATIVES: '9',
    TRAINER_SASREC_DIM: '8',
    TRAINER_SASREC_EPOCHS: '3',
    TRAINER_SASREC_TIME_BUDGET_MS: '5000',
  });
}, 240_000);

describe('trainer fine-tuning (LLaRA-style SFT after CPT)', () => {
  it('publishes the CPT adapter and a verified SFT bundle per target domain, trained on the frozen split', async () => {
    const commandId = `it-sft-${run}`;
    const id = roundIdFor(commandId);
    const command: RoundCommand = {
      kind: 'trigger',
      command_id: commandId,
      requested_by: 'test',
      reason: 'fine-tuning integration',
      target_domains: [GAMES_DOMAIN, TOYS_DOMAIN],
      ts: Date.now(),
    };
    await producer.send({
      topic: TOPICS.roundCommands,
      messages: [{ key: commandId, value: JSON.stringify(command) }],
    });

    // Other trainers on the shared broker see the same trigger and publish events under the same
    // round id for their own databases: this trainer's round is read from its own database, and
    // its adapter events are the ones whose artefacts live in its own store.
    const round = await eventually(
      () => control.getRound(id),
      (r) => r !== null && ['published', 'failed', 'cancelled'].includes(r.state),
      'the round to end',
      420_000,
    );
    // With the message, so a failed round says why.
    expect({ state: round?.state, message: round?.message }).toMatchObject({ state: 'published' });
    // The small domain is skipped with a note; the round still publishes.
    expect(round!.message).toContain(
      `-sft-${GAMES_DOMAIN}; ${TOYS_DOMAIN}: no SFT adapter (too little data in loo-${TOYS_DOMAIN}-`,
    );

    // Fine-tuning steps are recorded after the CPT steps, as one curve.
    const steps = await control.listRoundSteps(id);
    const cptSteps = steps.filter((s) => s.phase !== 'fine_tuning');
    const sftSteps = steps.filter((s) => s.phase === 'fine_tuning');
    // 16 samples, batch 4, 1 epoch, 2 learning rates.
    expect(sftSteps).toHaveLength(8);
    expect(sftSteps.every((s) => Number.isFinite(s.loss) && s.loss > 0 && s.lr > 0)).toBe(true);
    expect(Math.min(...sftSteps.map((s) => s.step))).toBe(Math.max(...cptSteps.map((s) => s.step)) + 1);

    const ofRound = await eventually(
      async () =>
        adapterEvents.filter(
          (e) => e.kind === 'published' && e.lineage.round_id === id && fileURLToPath(e.uri).startsWith(home),
        ),
      (events) => events.length >= 2,
      'AdapterPublished events of the round',
    );
    expect(ofRound).toHaveLength(2);
    const cpt = ofRound.find((e) => e.kind === 'published' && e.adapter_kind === 'cpt');
    const sft = ofRound.find((e) => e.kind === 'published' && e.adapter_kind === 'sft');
    if (cpt?.kind !== 'published' || sft?.kind !== 'published') throw new Error('missing CPT or SFT event');
    expect(sft.target_domains).toEqual([GAMES_DOMAIN]);
    expect(sft.lineage).toMatchObject({
      cpt_adapter_id: cpt.adapter_id,
      trunk_id: cpt.lineage.trunk_id,
      base_model: 'tiny-random',
    });
    expect(cpt.lineage.cpt_adapter_id).toBeNull();
    // Both artefacts verify: the digest of the bytes the URI names is the published sha256.
    for (const e of [cpt, sft]) expect((await digestPath(fileURLToPath(e.uri))).sha256).toBe(e.sha256);
    const store = new LocalArtefactStore(join(home, 'artefacts'));
    const bundle = await store.localPath(`adapters/${id}/sft-${GAMES_DOMAIN}`);
    expect(await control.getAdapter(sft.adapter_id)).toMatchObject({
      sha256: sft.sha256,
      adapter_kind: 'sft',
    });

    // The bundle: LoRA (started from the CPT adapter), projector, frozen item table, SASRec, info.
    for (const f of [PROJECTOR_FILE, ITEM_EMBEDDINGS_FILE, join(SASREC_DIR, 'manifest.json')])
      expect(existsSync(join(bundle, f))).toBe(true);
    const manifest = readLoraManifest(join(bundle, SFT_ADAPTER_DIR));
    expect(manifest.lineage).toMatchObject({ kind: 'sft', method: 'cprec', train_samples: 16 });
    expect((manifest.lineage.cpt_lineage as { round_id: string }).round_id).toBe(id);
    const info = JSON.parse(readFileSync(join(bundle, BUNDLE_FILE), 'utf8')) as SftBundleInfo;
    const splitId = looSplitId(GAMES_DOMAIN, SPLIT_EPOCH, SPLIT_SEED);
    expect(info).toMatchObject({ cpt_adapter_id: cpt.adapter_id, split_id: splitId, domain: GAMES_DOMAIN });
    expect(Object.keys(info.validation_hr1)).toEqual(['0.003', '0.01']);

    // The split is the one the sequencer froze (the evaluator's id), and training saw only its
    // validation side: one train sequence per validation example.
    const splits = new EvalSplitRepository(ch);
    expect(await splits.getSplit(splitId)).toMatchObject({
      kind: 'loo',
      domains: [GAMES_DOMAIN],
      seed: SPLIT_SEED,
    });
    const validation = await splits.readExamples(splitId, { domain: GAMES_DOMAIN, kind: 'loo-valid' });
    expect(info.train_users).toBe(validation.length);
    expect(validation).toHaveLength(USERS);
  }, 480_000);
});
