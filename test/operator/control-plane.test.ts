import {
  ClickHouse,
  ControlPlaneRepository,
  createClickHouse,
  ident,
  runMigrations,
  servingOf,
  sql,
  type ServingEventRecord,
} from '@cprec/clickhouse';
import { requireInfra, testClickHouseSettings, uniqueName } from '../support/infra';

/** ControlPlaneRepository against a real ClickHouse, in a database of its own. */
const settings = testClickHouseSettings(uniqueName('cprec_it_control'));
let ch: ClickHouse;
let repo: ControlPlaneRepository;
const t0 = 1_700_000_000_000;

beforeAll(async () => {
  await requireInfra({ clickhouse: true });
  await runMigrations(settings);
  ch = createClickHouse(settings);
  repo = new ControlPlaneRepository(ch);
});

afterAll(async () => {
  await ch.command(sql`DROP DATABASE IF EXISTS ${ident(settings.database)}`);
  await ch.close();
});

describe('rounds', () => {
  it('reads the latest state of each round, newest round first, with unknown loss as null', async () => {
    const base = {
      step: 0,
      total_steps: 100,
      message: '',
      target_domains: ['games'],
      requested_by: 'operator',
    };
    await repo.insertRoundState({
      ...base,
      round_id: 'r1',
      state: 'queued',
      loss: null,
      lr: null,
      created_ms: t0,
      updated_ms: t0,
    });
    await repo.insertRoundState({
      ...base,
      round_id: 'r1',
      state: 'stable',
      step: 40,
      loss: 2.5,
      lr: 5e-4,
      created_ms: t0,
      updated_ms: t0 + 10,
    });
    // An older state arriving late must not win: the version decides, not the insert order.
    await repo.insertRoundState({
      ...base,
      round_id: 'r1',
      state: 'warmup',
      step: 5,
      loss: 3,
      lr: 1e-4,
      created_ms: t0,
      updated_ms: t0 + 5,
    });
    await repo.insertRoundState({
      ...base,
      round_id: 'r2',
      state: 'queued',
      loss: null,
      lr: null,
      created_ms: t0 + 100,
      updated_ms: t0 + 100,
    });

    const rounds = await repo.listRounds();
    expect(rounds.map((r) => [r.round_id, r.state, r.step])).toEqual([
      ['r2', 'queued', 0],
      ['r1', 'stable', 40],
    ]);
    expect(rounds[0].loss).toBeNull();
    expect(rounds[0].lr).toBeNull();
    expect(rounds[1].loss).toBe(2.5);
    expect(rounds[1].target_domains).toEqual(['games']);

    expect((await repo.getRound('r1'))?.state).toBe('stable');
    expect(await repo.getRound('nope')).toBeNull();
    expect((await repo.listRounds({ limit: 1 })).length).toBe(1);
  });

  it('reads the training curve of a round in step order', async () => {
    await repo.insertRoundSteps([
      { round_id: 'r1', phase: 'stable', step: 2, loss: 2.0, lr: 5e-4, tokens: 64, ts_ms: t0 + 2 },
      { round_id: 'r1', phase: 'warmup', step: 1, loss: 3.0, lr: 2e-4, tokens: 64, ts_ms: t0 + 1 },
      { round_id: 'r9', phase: 'warmup', step: 1, loss: 9.0, lr: 2e-4, tokens: 64, ts_ms: t0 + 1 },
    ]);
    const steps = await repo.listRoundSteps('r1');
    expect(steps.map((s) => [s.phase, s.step, s.loss, s.lr])).toEqual([
      ['warmup', 1, 3.0, 2e-4],
      ['stable', 2, 2.0, 5e-4],
    ]);
  });
});

describe('adapters, evaluations, promotions', () => {
  it('lists adapters newest first and evaluations by adapter and domain', async () => {
    const lineage = { base_model: 'stories260K', round_id: 'r1', data_watermark: 7 };
    await repo.insertAdapter({
      adapter_id: 'a1',
      adapter_kind: 'cpt',
      round_id: 'r1',
      target_domains: ['games', 'steam'],
      uri: 'file:///a1',
      sha256: 'a'.repeat(64),
      lineage,
      created_ms: t0,
    });
    await repo.insertAdapter({
      adapter_id: 'a2',
      adapter_kind: 'sft',
      round_id: 'r1',
      target_domains: ['games'],
      uri: 'file:///a2',
      sha256: 'b'.repeat(64),
      lineage,
      created_ms: t0 + 1,
    });
    const adapters = await repo.listAdapters();
    expect(adapters.map((a) => a.adapter_id)).toEqual(['a2', 'a1']);
    expect(adapters[1].target_domains).toEqual(['games', 'steam']);
    expect(adapters[1].lineage).toEqual(lineage);
    expect((await repo.getAdapter('a1'))?.uri).toBe('file:///a1');
    expect(await repo.getAdapter('zz')).toBeNull();

    const metrics = {
      hr1_valid: 0.5,
      valid_ratio: 0.9,
      hr3: 0.6,
      hr5: 0.7,
      ndcg3: 0.55,
      ndcg5: 0.6,
      samples: 200,
    };
    await repo.insertEvaluations([
      {
        ...metrics,
        evaluation_id: 'e1',
        adapter_id: 'a1',
        split_id: 's',
        domain: 'games',
        method: 'generate',
        hr1: 0.3,
        report: { buckets: [1] },
        created_ms: t0 + 5,
      },
      {
        ...metrics,
        evaluation_id: 'e2',
        adapter_id: 'a1',
        split_id: 's',
        domain: 'steam',
        method: 'generate',
        hr1: 0.2,
        report: {},
        created_ms: t0 + 6,
      },
      {
        ...metrics,
        evaluation_id: 'e3',
        adapter_id: 'a2',
        split_id: 's',
        domain: 'games',
        method: 'generate',
        hr1: 0.4,
        report: {},
        created_ms: t0 + 7,
      },
    ]);
    expect((await repo.listEvaluations({ adapterIds: ['a1'] })).map((e) => e.evaluation_id)).toEqual([
      'e2',
      'e1',
    ]);
    expect((await repo.listEvaluations({ domain: 'games' })).map((e) => [e.adapter_id, e.hr1])).toEqual([
      ['a2', 0.4],
      ['a1', 0.3],
    ]);
    const [e1] = await repo.listEvaluations({ adapterIds: ['a1'], domain: 'games' });
    expect(e1.report).toEqual({ buckets: [1] });
    expect(e1.samples).toBe(200);
    expect(await repo.listEvaluations({ adapterIds: [] })).toEqual([]);

    await repo.insertPromotion({
      adapter_id: 'a1',
      decision: 'promoted',
      reasons: ['first adapter'],
      hr1: { games: 0.3 },
      ts_ms: t0 + 10,
    });
    await repo.insertPromotion({
      adapter_id: 'a2',
      decision: 'rejected',
      reasons: ['HR@1 fell by 0.2'],
      hr1: { games: 0.1 },
      ts_ms: t0 + 11,
    });
    const promotions = await repo.listPromotions();
    expect(promotions.map((p) => [p.adapter_id, p.decision])).toEqual([
      ['a2', 'rejected'],
      ['a1', 'promoted'],
    ]);
    expect(promotions[0].reasons).toEqual(['HR@1 fell by 0.2']);
    expect(promotions[1].hr1).toEqual({ games: 0.3 });
    expect((await repo.listPromotions({ adapterIds: ['a1'] })).length).toBe(1);
  });
});

describe('drift and serving', () => {
  it('returns the HR@1 series oldest first per domain, and alerts', async () => {
    await repo.insertDriftObservations([
      {
        adapter_id: 'a1',
        domain: 'games',
        window_start_ms: t0,
        window_end_ms: t0 + 2000,
        hr1: 0.3,
        samples: 50,
        ts_ms: t0 + 2001,
      },
      {
        adapter_id: 'a1',
        domain: 'games',
        window_start_ms: t0 - 1000,
        window_end_ms: t0 + 1000,
        hr1: 0.35,
        samples: 50,
        ts_ms: t0 + 1001,
      },
      {
        adapter_id: 'a1',
        domain: 'steam',
        window_start_ms: t0,
        window_end_ms: t0 + 1500,
        hr1: 0.2,
        samples: 40,
        ts_ms: t0 + 1501,
      },
    ]);
    const games = await repo.driftSeries({ domain: 'games' });
    expect(games.map((p) => [p.window_end_ms, p.hr1])).toEqual([
      [t0 + 1000, 0.35],
      [t0 + 2000, 0.3],
    ]);
    expect((await repo.driftSeries()).map((p) => p.domain)).toEqual(['games', 'steam', 'games']);
    // limit keeps the newest points
    expect((await repo.driftSeries({ domain: 'games', limit: 1 })).map((p) => p.hr1)).toEqual([0.3]);
    expect((await repo.driftSeries({ fromMs: t0 + 1500 })).length).toBe(2);

    await repo.insertDriftAlert({
      adapter_id: 'a1',
      domain: 'games',
      hr1: 0.2,
      baseline_hr1: 0.35,
      relative_drop: 0.43,
      samples: 50,
      refresh_requested: true,
      ts_ms: t0 + 3000,
    });
    const alerts = await repo.listDriftAlerts({ domain: 'games' });
    expect(alerts).toHaveLength(1);
    expect(alerts[0].refresh_requested).toBe(true);
    expect(await repo.listDriftAlerts({ domain: 'steam' })).toEqual([]);
  });

  it('names the adapter serving each domain after its latest switch or rollback, not after a failed load', async () => {
    expect(await repo.servingByDomain()).toEqual([]);
    const event = (e: Omit<ServingEventRecord, 'previous_adapter_id' | 'detail'>): ServingEventRecord => ({
      previous_adapter_id: '',
      detail: '',
      ...e,
    });
    // A row written before per-domain serving (domain ''), then per-domain rows.
    await repo.insertServingEvent(event({ event: 'switch', domain: '', adapter_id: 'legacy', ts_ms: t0 }));
    await repo.insertServingEvent(
      event({ event: 'switch', domain: 'games', adapter_id: 'a1', ts_ms: t0 + 1 }),
    );
    await repo.insertServingEvent(
      event({ event: 'switch', domain: 'games', adapter_id: 'a2', ts_ms: t0 + 2 }),
    );
    await repo.insertServingEvent(
      event({ event: 'rollback', domain: 'games', adapter_id: 'a1', ts_ms: t0 + 3 }),
    );
    await repo.insertServingEvent(
      event({ event: 'load_failed', domain: 'games', adapter_id: 'a3', ts_ms: t0 + 4 }),
    );
    // One adapter switched in for two domains in the same millisecond: two rows, not one.
    await repo.insertServingEvent(
      event({ event: 'switch', domain: 'steam', adapter_id: 'cpt', ts_ms: t0 + 5 }),
    );
    await repo.insertServingEvent(
      event({ event: 'switch', domain: 'books', adapter_id: 'cpt', ts_ms: t0 + 5 }),
    );
    const byDomain = await repo.servingByDomain();
    expect(byDomain.map((e) => [e.domain, e.adapter_id]).sort()).toEqual([
      ['', 'legacy'],
      ['books', 'cpt'],
      ['games', 'a1'],
      ['steam', 'cpt'],
    ]);
    expect(servingOf(byDomain, 'games')?.adapter_id).toBe('a1');
    expect(servingOf(byDomain, 'books')?.adapter_id).toBe('cpt');
    // A domain with no row of its own is still served by the legacy all-domains adapter.
    expect(servingOf(byDomain, 'toys')?.adapter_id).toBe('legacy');
    expect(servingOf([], 'toys')).toBeNull();
    expect((await repo.listServingEvents({ limit: 3 })).map((e) => [e.event, e.domain])).toEqual([
      ['switch', 'books'],
      ['switch', 'steam'],
      ['load_failed', 'games'],
    ]);
  });
});
