import type { AdapterEvent } from '@cprec/contracts';
import {
  casesFor,
  ManualClock,
  MemoryArtefacts,
  MemoryControlPlane,
  MemorySplits,
  RecordedEvents,
  ScriptedRunner,
} from '../testing/in-memory';
import {
  AdapterEvaluator,
  looSplitId,
  type AdapterEvaluatorSettings,
  type AdapterPublished,
} from './adapter-evaluator';

const settings: AdapterEvaluatorSettings = {
  defaultTargetDomains: ['games'],
  splitSeed: 7,
  splitEpoch: '1',
  maxExamples: 50,
  gate: { maxHr1Drop: 0.02, minValidRatio: 0, minSamples: 10 },
  gateMethod: 'likelihood',
  generation: false,
  promoteCpt: false,
  job: { backend: 'cpu', budget: { maxTokens: 128, maxTitleTokens: 8 } },
};

const published = (id: string, kind: 'cpt' | 'sft' = 'sft', domains = ['games']): AdapterPublished => ({
  kind: 'published',
  adapter_id: id,
  adapter_kind: kind,
  target_domains: domains,
  uri: `file:///store/${id}`,
  sha256: 'a'.repeat(64),
  lineage: {
    base_model: 'tiny-random',
    base_model_sha256: 'b'.repeat(64),
    round_id: 'r1',
    trunk_id: null,
    cpt_adapter_id: null,
    data_watermark: 0,
  },
  ts: 1,
});

function setup(hr1: Record<string, number>, over: Partial<AdapterEvaluatorSettings> = {}) {
  const store = new MemoryControlPlane();
  const splits = new MemorySplits((_, domain) => casesFor(domain, 80));
  const artefacts = new MemoryArtefacts();
  const runner = new ScriptedRunner((adapterId) => hr1[adapterId] ?? 0);
  const events = new RecordedEvents();
  const evaluator = new AdapterEvaluator(store, splits, artefacts, runner, events, new ManualClock(), {
    ...settings,
    ...over,
  });
  /** What the trainer records when it publishes (the gate reads references from here). */
  const register = (e: AdapterPublished) =>
    store.adapters.set(e.adapter_id, {
      adapter_id: e.adapter_id,
      adapter_kind: e.adapter_kind,
      round_id: 'r1',
      target_domains: e.target_domains,
      uri: e.uri,
      sha256: e.sha256,
      lineage: { ...e.lineage },
      created_ms: 1,
    });
  return { store, splits, artefacts, runner, events, evaluator, register };
}

const kinds = (events: AdapterEvent[]) => events.map((e) => `${e.kind}:${e.adapter_id}`);

describe('AdapterEvaluator', () => {
  it('promotes the first sane SFT adapter: frozen split requested, evaluations and decision recorded, event published', async () => {
    const { store, splits, runner, events, evaluator } = setup({ a1: 0.4 });
    const outcome = await evaluator.handlePublished(published('a1'));
    expect(outcome.kind).toBe('promoted');
    expect(splits.requested).toEqual([
      { splitId: looSplitId('games', '1', 7), kind: 'loo', domains: ['games'], seed: 7 },
    ]);
    expect(runner.jobs).toHaveLength(1);
    expect(runner.jobs[0].domains[0].cases).toHaveLength(50); // capped at maxExamples
    expect(runner.jobs[0].generation).toBe(false);
    expect(store.evaluations.map((e) => [e.adapter_id, e.domain, e.method, e.hr1, e.samples])).toEqual([
      ['a1', 'games', 'likelihood', 0.4, 50],
    ]);
    expect(store.promotions).toMatchObject([{ adapter_id: 'a1', decision: 'promoted', hr1: { games: 0.4 } }]);
    expect(events.adapters).toMatchObject([
      {
        kind: 'promoted',
        adapter_id: 'a1',
        uri: 'file:///store/a1',
        hr1: { games: 0.4 },
        target_domains: ['games'],
      },
    ]);
  });

  it('is idempotent per adapter: a redelivered event is skipped without evaluating again', async () => {
    const { runner, events, evaluator } = setup({ a1: 0.4 });
    await evaluator.handlePublished(published('a1'));
    const again = await evaluator.handlePublished(published('a1'));
    expect(again).toEqual({ kind: 'skipped', reason: 'a1 was already promoted' });
    expect(runner.jobs).toHaveLength(1);
    expect(events.adapters).toHaveLength(1);
  });

  it('rejects an adapter whose HR@1 falls more than ε below the serving one, compared on the same split', async () => {
    const { store, runner, events, evaluator, register } = setup({ good: 0.5, worse: 0.3, close: 0.49 });
    register(published('good'));
    await evaluator.handlePublished(published('good'));
    const worse = await evaluator.handlePublished(published('worse'));
    expect(worse.kind).toBe('rejected');
    if (worse.kind !== 'rejected') return;
    expect(worse.reasons[0]).toMatch(
      /games: HR@1 30\.0% is 20\.0% below good's 50\.0%, the adapter serving games/,
    );
    // The serving adapter's HR@1 came from its stored evaluation on the same split: no re-run.
    expect(runner.jobs[1].adapters.map((a) => a.adapterId)).toEqual(['worse']);
    const close = await evaluator.handlePublished(published('close'));
    expect(close.kind).toBe('promoted'); // within ε = 0.02
    expect(kinds(events.adapters)).toEqual(['promoted:good', 'rejected:worse', 'promoted:close']);
    expect(store.promotions.map((p) => p.decision)).toEqual(['promoted', 'rejected', 'promoted']);
  });

  it("gates each domain against the adapter serving THAT domain (serving_events), not the newest promotion nor another domain's", async () => {
    const { store, evaluator, register } = setup({ x: 0.5, y: 0.9, g2: 0.49, g3: 0.475, b2: 0.1 });
    const publishFor = (id: string, domain: string) => {
      const e = published(id, 'sft', [domain]);
      register(e);
      return evaluator.handlePublished(e);
    };
    expect((await publishFor('x', 'games')).kind).toBe('promoted');
    // Books' first adapter: nothing serves books yet, so games' x is not its yardstick.
    const y = await publishFor('y', 'books');
    expect(y.kind).toBe('promoted');
    if (y.kind === 'promoted')
      expect(y.reasons.join('\n')).toMatch(/no adapter serves books to compare with/);
    store.serve('games', 'x', 10);
    store.serve('books', 'y', 11);
    // A games candidate is held against x (games), never against y (books, 0.9).
    const g2 = await publishFor('g2', 'games');
    expect(g2.kind).toBe('promoted');
    if (g2.kind === 'promoted') {
      expect(g2.reasons.join('\n')).toMatch(/vs 50\.0% of x, the adapter serving games/);
      expect(g2.reasons.join('\n')).not.toMatch(/\by\b/);
    }
    // Serving switched games to g2, then an operator rolled games back to x: x is the incumbent
    // again (g3 0.475 would pass against g2's 0.49 but not against x's 0.5).
    store.serve('games', 'g2', 12);
    store.servingEvents.push({
      event: 'rollback',
      domain: 'games',
      adapter_id: 'x',
      previous_adapter_id: 'g2',
      detail: '',
      ts_ms: 13,
    });
    const g3 = await publishFor('g3', 'games');
    expect(g3.kind).toBe('rejected');
    if (g3.kind === 'rejected') expect(g3.reasons[0]).toMatch(/below x's 50\.0%, the adapter serving games/);
    // Books rolled back to the base model: no incumbent, only the absolute checks.
    store.servingEvents.push({
      event: 'rollback',
      domain: 'books',
      adapter_id: 'base',
      previous_adapter_id: 'y',
      detail: '',
      ts_ms: 14,
    });
    expect((await publishFor('b2', 'books')).kind).toBe('promoted');
  });

  it("reads a legacy all-domains serving row (domain '') as the incumbent of the domains its adapter was promoted for", async () => {
    const { store, evaluator, register } = setup({ old: 0.5, newer: 0.49, next: 0.475 });
    for (const id of ['old', 'newer']) {
      register(published(id));
      await evaluator.handlePublished(published(id));
    }
    store.serve('', 'old', 10);
    const next = await evaluator.handlePublished(published('next'));
    expect(next.kind).toBe('rejected');
    if (next.kind === 'rejected') expect(next.reasons[0]).toMatch(/below old's 50\.0%/);
  });

  it('re-evaluates the serving adapter in the same job when it was scored on another split', async () => {
    const { store, runner, evaluator, register } = setup({ old: 0.6, next: 0.45 });
    register(published('old'));
    store.promotions.push({
      adapter_id: 'old',
      decision: 'promoted',
      reasons: [],
      hr1: { games: 0.2 },
      ts_ms: 5,
    });
    const outcome = await evaluator.handlePublished(published('next'));
    expect(runner.jobs[0].adapters).toEqual([
      { adapterId: 'next', dir: '/verified/file:///store/next' },
      { adapterId: 'old', dir: '/verified/file:///store/old', domains: ['games'] },
    ]);
    // Against the re-measured 0.6, not the stale 0.2 of the promotion record.
    expect(outcome.kind).toBe('rejected');
    expect(store.evaluations.map((e) => e.adapter_id).sort()).toEqual(['next', 'old']);
  });

  it('falls back to the promotion record when the serving adapter cannot be re-evaluated', async () => {
    const { store, artefacts, evaluator, register } = setup({ old: 0.9, next: 0.45 });
    register(published('old'));
    artefacts.corrupted.add('file:///store/old');
    store.promotions.push({
      adapter_id: 'old',
      decision: 'promoted',
      reasons: [],
      hr1: { games: 0.44 },
      ts_ms: 5,
    });
    const outcome = await evaluator.handlePublished(published('next'));
    expect(outcome.kind).toBe('promoted');
    if (outcome.kind === 'promoted') expect(outcome.reasons.join('\n')).toMatch(/promotion record/);
  });

  it('rejects a corrupted artefact with the reason, without evaluating it', async () => {
    const { artefacts, runner, events, evaluator } = setup({ bad: 0.9 });
    artefacts.corrupted.add('file:///store/bad');
    const outcome = await evaluator.handlePublished(published('bad'));
    expect(outcome.kind).toBe('rejected');
    expect(runner.jobs).toHaveLength(0);
    expect(events.adapters[0]).toMatchObject({ kind: 'rejected', adapter_id: 'bad' });
    if (events.adapters[0].kind === 'rejected')
      expect(events.adapters[0].reasons[0]).toMatch(/^artefact refused: .*corrupted/);
  });

  it('rejects with the reason when the evaluation process fails, and on too few examples', async () => {
    const { runner, evaluator } = setup({ a: 0.5 });
    runner.failWith = new Error('evaluation process killed by SIGKILL');
    expect(await evaluator.handlePublished(published('a'))).toMatchObject({
      kind: 'rejected',
      reasons: ['evaluation failed: evaluation process killed by SIGKILL'],
    });
    const few = setup({ b: 0.5 }, { maxExamples: 5 });
    const outcome = await few.evaluator.handlePublished(published('b'));
    expect(outcome.kind).toBe('rejected');
    if (outcome.kind === 'rejected')
      expect(outcome.reasons[0]).toMatch(/only 5 examples evaluated, fewer than 10/);
  });

  it('evaluates a CPT adapter zero-shot on the default domains and records it without promoting (unless configured)', async () => {
    const { store, events, evaluator } = setup({ cpt: 0.3 });
    const outcome = await evaluator.handlePublished(published('cpt', 'cpt', []));
    expect(outcome.kind).toBe('rejected');
    expect(store.evaluations.map((e) => e.domain)).toEqual(['games']);
    if (events.adapters[0].kind === 'rejected')
      expect(events.adapters[0].reasons[0]).toMatch(/CPT adapters are not promoted/);
    const promoting = setup({ cpt: 0.3 }, { promoteCpt: true });
    expect((await promoting.evaluator.handlePublished(published('cpt', 'cpt', []))).kind).toBe('promoted');
    expect(promoting.events.adapters[0]).toMatchObject({ kind: 'promoted', target_domains: ['games'] });
  });

  it('gates on Valid Ratio from generation when generation runs', async () => {
    const { runner, evaluator, store } = setup(
      { a: 0.5 },
      { generation: true, gate: { maxHr1Drop: 0.02, minValidRatio: 0.6, minSamples: 10 } },
    );
    const outcome = await evaluator.handlePublished(published('a'));
    expect(runner.jobs[0].generation).toBe(true);
    expect(store.evaluations.map((e) => e.method)).toEqual(['likelihood', 'generation']);
    expect(outcome.kind).toBe('rejected');
    if (outcome.kind === 'rejected')
      expect(outcome.reasons[0]).toMatch(/Valid Ratio 50\.0% below the floor 60\.0%/);
  });

  it('promotes on a manual command whatever the gate said, recording that the gate was bypassed', async () => {
    const { store, events, evaluator, register } = setup({ good: 0.5, worse: 0.1 });
    for (const id of ['good', 'worse']) {
      register(published(id));
      await evaluator.handlePublished(published(id));
    }
    const command = {
      kind: 'promote' as const,
      command_id: 'c1',
      adapter_id: 'worse',
      requested_by: 'alice',
      reason: 'hotfix',
      ts: 2,
    };
    const outcome = await evaluator.handleCommand(command);
    expect(outcome.kind).toBe('promoted');
    const event = events.adapters.at(-1)!;
    expect(event).toMatchObject({
      kind: 'promoted',
      adapter_id: 'worse',
      uri: 'file:///store/worse',
      hr1: { games: 0.1 },
    });
    if (event.kind === 'promoted') {
      expect(event.reasons[0]).toBe('manual promotion by alice, gate bypassed: hotfix');
      expect(event.reasons[1]).toBe('the gate had rejected it:');
    }
    expect(store.promotions.at(-1)).toMatchObject({ adapter_id: 'worse', decision: 'promoted' });
    // The same command redelivered changes nothing; an unknown adapter is skipped.
    expect((await evaluator.handleCommand(command)).kind).toBe('skipped');
    expect((await evaluator.handleCommand({ ...command, adapter_id: 'nope' })).kind).toBe('skipped');
    expect(events.adapters).toHaveLength(3);
  });
});
