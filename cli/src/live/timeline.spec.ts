import { finished, liveEnvironment, liveStreamSpec, type DemoOptions } from '../commands/demo.command';
import { EventReporter, formatTimeline, generationLine, type DriftView, type RoundRow } from './timeline';

const DAY = 86_400_000;
const t = (iso: string) => Date.parse(`${iso}T00:00:00Z`);

const drift: DriftView = {
  series: [
    {
      adapter_id: 'r1-sft-a',
      domain: 'a',
      window_start_ms: t('2013-01-01'),
      window_end_ms: t('2013-01-31'),
      hr1: 0.1,
      samples: 60,
      ts_ms: 100,
    },
    {
      adapter_id: 'r1-sft-b',
      domain: 'b',
      window_start_ms: t('2013-01-01'),
      window_end_ms: t('2013-01-31'),
      hr1: 0.2,
      samples: 50,
      ts_ms: 100,
    },
    {
      adapter_id: 'r1-sft-a',
      domain: 'a',
      window_start_ms: t('2013-01-31'),
      window_end_ms: t('2013-03-02'),
      hr1: 0.05,
      samples: 60,
      ts_ms: 200,
    },
    // The same window scored again for the newly promoted adapter: the newest wins.
    {
      adapter_id: 'r2-sft-a',
      domain: 'a',
      window_start_ms: t('2013-01-31'),
      window_end_ms: t('2013-03-02'),
      hr1: 0.3,
      samples: 60,
      ts_ms: 300,
    },
  ],
  alerts: [
    {
      adapter_id: 'r1-sft-a',
      domain: 'a',
      hr1: 0.05,
      baseline_hr1: 0.1,
      relative_drop: 0.5,
      samples: 60,
      refresh_requested: true,
      ts_ms: 210,
      stream_ms: t('2013-03-03'),
    },
  ],
  promotions: [
    {
      adapter_id: 'r2-sft-a',
      decision: 'promoted',
      reasons: [],
      hr1: { a: 0.3 },
      ts_ms: 290,
      stream_ms: t('2013-03-05'),
    },
  ],
  decisions: [
    {
      adapter_id: 'r2-sft-a',
      decision: 'promoted',
      reasons: [],
      hr1: { a: 0.3 },
      ts_ms: 290,
      stream_ms: t('2013-03-05'),
    },
    {
      adapter_id: 'r2-cpt',
      decision: 'rejected',
      reasons: ['CPT adapters are not promoted'],
      hr1: {},
      ts_ms: 280,
      stream_ms: t('2013-03-05'),
    },
  ],
  rounds: [
    {
      round_id: 'r1',
      state: 'published',
      created_ms: 10,
      requested_by: 'policy',
      stream_ms: t('2012-12-20'),
    },
    {
      round_id: 'r2',
      state: 'published',
      created_ms: 150,
      requested_by: 'evaluator:drift',
      stream_ms: t('2013-02-10'),
    },
  ],
};

describe('formatTimeline', () => {
  it('prints one row per window with the newest observation per domain, and the events between the windows at their stream time', () => {
    const text = formatTimeline(drift);
    const lines = text.trim().split('\n');
    expect(lines[1]).toMatch(/^window\s+a\s+b\s*$/);
    expect(lines.slice(2)).toEqual([
      '  2012-12-20  ● round r1 started (policy)',
      expect.stringMatching(/^2013-01-01 → 2013-01-31\s+0\.100 \(60\) a1\s+0\.200 \(50\) a2\s*$/),
      '  2013-02-10  ● round r2 started (evaluator:drift)',
      expect.stringMatching(/^2013-01-31 → 2013-03-02\s+0\.300 \(60\) a3\s+–\s*$/),
      '  2013-03-03  ! drift alert a: 0.050 vs 0.100',
      '  2013-03-05  ▲ promoted r2-sft-a (a3)',
      'adapters: a1 = r1-sft-a, a2 = r1-sft-b, a3 = r2-sft-a',
    ]);
  });

  it('says so when no window was observed', () => {
    expect(formatTimeline({ ...drift, series: [] })).toMatch(/no window was observed yet/);
  });
});

describe('EventReporter', () => {
  const round = (id: string, state: string, created: number): RoundRow => ({
    round_id: id,
    state,
    step: 0,
    total_steps: 0,
    message: `${state} message`,
    requested_by: 'policy',
    created_ms: created,
    target_domains: [],
  });

  it('reports each round start, finish, decision, window and alert once', () => {
    const reporter = new EventReporter();
    const first = reporter.update([round('r1', 'stable', 10)], {
      ...drift,
      series: [],
      alerts: [],
      decisions: [],
    });
    expect(first).toEqual(['round r1 started by policy (stream at 2012-12-20) — stable']);
    const second = reporter.update([round('r1', 'published', 10), round('r2', 'queued', 150)], drift);
    expect(second).toEqual(
      expect.arrayContaining([
        'round r1 published: published message',
        'round r2 started by policy (stream at 2013-02-10) — queued',
        'gate: r2-sft-a promoted (HR@1 a 0.300)',
        'gate: r2-cpt rejected — CPT adapters are not promoted',
        'HR@1 2013-01-01 → 2013-01-31 (r1-sft-a): a 0.100 (60)',
        'DRIFT ALERT a: HR@1 0.050 vs 0.100 at promotion (−50%, 60 users); refresh round requested',
      ]),
    );
    expect(reporter.update([round('r1', 'published', 10), round('r2', 'queued', 150)], drift)).toEqual([]);
  });
});

describe('generationLine', () => {
  it('reports Valid Ratio and generation HR@1 per domain, nothing without generation rows', () => {
    const rows = [
      { adapter_id: 'x', domain: 'b', method: 'generation', samples: 60, hr1: 0.05, valid_ratio: 0.4 },
      { adapter_id: 'x', domain: 'a', method: 'generation', samples: 60, hr1: 0, valid_ratio: 0 },
      { adapter_id: 'x', domain: 'a', method: 'likelihood', samples: 60, hr1: 0.1, valid_ratio: 1 },
    ];
    expect(generationLine('x', rows)).toBe(
      '  generation check of x: a Valid Ratio 0.000, HR@1 0.000 (60) · b Valid Ratio 0.400, HR@1 0.050 (60)',
    );
    expect(generationLine('y', rows)).toBeNull();
  });
});

describe('live mode settings', () => {
  const options: DemoOptions = {
    dataset: [],
    speed: 2,
    backlog: 0.3,
    roundEvery: 60,
    roundAfter: 20_000,
    window: 30,
    minValidRatio: 0,
    rounds: 3,
    timeoutMin: 90,
  };

  it('streams the synthetic generator with --synthetic, fine-tuning every domain', () => {
    const { spec, targets } = liveStreamSpec({ ...options, synthetic: true, users: 50 });
    expect(spec.datasets).toEqual([]);
    expect(spec.synthetic).toMatchObject({ users: 50, domains: ['games', 'beauty', 'books'] });
    expect(targets).toEqual(['games', 'beauty', 'books']);
  });

  it('turns the flags into the services’ policy and drift settings, the environment winning', () => {
    const env = liveEnvironment(options, ['a', 'b'], { EVALUATOR_MAX_EXAMPLES: '7', EMPTY: '' }, 'tok');
    expect(env).toMatchObject({
      OPERATOR_TOKEN: 'tok',
      TRAINER_AUTO_STREAM_INTERVAL_MS: String(60 * DAY),
      TRAINER_AUTO_MIN_NEW_INTERACTIONS: '20000',
      EVALUATOR_DRIFT_INTERVAL_MS: '5000',
      EVALUATOR_DRIFT_WINDOW_MS: String(30 * DAY),
      EVALUATOR_GENERATION: 'true',
      TRAINER_TARGET_DOMAINS: 'a,b',
      EVALUATOR_TARGET_DOMAINS: 'a,b',
      EVALUATOR_MAX_EXAMPLES: '7',
    });
    expect(env.EMPTY).toBeUndefined();
  });

  it('--exit is done once the first N rounds are published, judged and a window scored after their last promotion', () => {
    const rounds = [round('r1', 'published', 10), round('r2', 'published', 150), round('r3', 'stable', 400)];
    const adapters = [
      { adapter_id: 'r1-sft-a', round_id: 'r1', status: 'promoted' },
      { adapter_id: 'r2-sft-a', round_id: 'r2', status: 'serving' },
      { adapter_id: 'r2-cpt', round_id: 'r2', status: 'rejected' },
      { adapter_id: 'r3-cpt', round_id: 'r3', status: 'pending' },
    ];
    expect(finished(rounds, adapters, drift, 0, 2, 0, 1_000).done).toBe(true);
    expect(finished(rounds, adapters, drift, 0, 3, 0, 1_000)).toMatchObject({ done: false, published: 2 });
    const pending = adapters.map((a) => (a.adapter_id === 'r2-sft-a' ? { ...a, status: 'pending' } : a));
    expect(finished(rounds, pending, drift, 0, 2, 0, 1_000).done).toBe(false);
    const notYetScored = { ...drift, series: drift.series.filter((p) => p.ts_ms < 290) };
    expect(finished(rounds, adapters, notYetScored, 0, 2, 0, 1_000).done).toBe(false);
    expect(finished(rounds, adapters, notYetScored, 0, 2, 0, 200_000).done).toBe(true); // two quiet minutes
  });

  function round(id: string, state: string, created: number): RoundRow {
    return {
      round_id: id,
      state,
      step: 0,
      total_steps: 0,
      message: '',
      requested_by: 'policy',
      created_ms: created,
      target_domains: [],
    };
  }
});
