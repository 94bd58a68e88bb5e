import type { CorpusStats } from '@cprec/contracts';
import type { DomainDelta, RebuildResult } from '@cprec/clickhouse';
import { SequencerLoop, SequencerPorts } from './sequencer-loop';

/** In-memory ports: a scripted sequence of watermarks and switchable failures. */
function harness() {
  const state = {
    watermark: 0,
    failSetup: false,
    failRebuild: false,
    failPublish: false,
    setups: 0,
    published: [] as CorpusStats[],
    failures: [] as string[],
  };
  let previous = 0;
  const ports: SequencerPorts = {
    setup: async () => {
      state.setups++;
      if (state.failSetup) throw new Error('clickhouse down');
    },
    rebuild: async (): Promise<RebuildResult> => {
      if (state.failRebuild) throw new Error('connection refused');
      const result = {
        version: state.watermark + 1,
        fullRebuild: previous === 0,
        previousWatermarkMs: previous,
        watermarkMs: state.watermark,
        maxIngestMs: state.watermark,
        usersRebuilt: 1,
        durationMs: 1,
      };
      previous = state.watermark;
      return result;
    },
    deltas: async (from, to): Promise<DomainDelta[]> => [
      { domain: 'toy', newInteractions: to - from, newUsers: 1, totalInteractions: to },
    ],
    publish: async (stats) => {
      if (state.failPublish) throw new Error('kafka down');
      state.published.push(stats);
    },
    now: () => 42,
  };
  const loop = new SequencerLoop(
    ports,
    { rebuilt: () => undefined, published: () => undefined, failed: (stage) => state.failures.push(stage) },
    { intervalMs: 5000, retryInitialMs: 100, retryMaxMs: 1000 },
  );
  return { state, loop };
}

describe('SequencerLoop', () => {
  it('publishes stats for each advance of the watermark and nothing when it stands still', async () => {
    const { state, loop } = harness();
    state.watermark = 10;
    await loop.round();
    state.watermark = 25;
    await loop.round();
    await loop.round();
    expect(
      state.published.map((s) => [s.previous_watermark, s.watermark, s.domains[0].new_interactions]),
    ).toEqual([
      [0, 10, 10],
      [10, 25, 15],
    ]);
    expect(state.setups).toBe(1);
    expect(loop.delayAfter()).toBe(5000);
  });

  it('retries set-up, backs off exponentially up to the cap, and recovers', async () => {
    const { state, loop } = harness();
    state.failSetup = true;
    const delays: number[] = [];
    for (let i = 0; i < 6; i++) {
      const outcome = await loop.round();
      expect(outcome.ok).toBe(false);
      delays.push(loop.delayAfter());
    }
    expect(delays).toEqual([100, 200, 400, 800, 1000, 1000]);
    state.failSetup = false;
    state.watermark = 5;
    expect((await loop.round()).ok).toBe(true);
    expect(loop.delayAfter()).toBe(5000);
    expect(state.failures).toEqual(Array(6).fill('setup'));
  });

  it('keeps a failed publish interval pending so the next publish covers it', async () => {
    const { state, loop } = harness();
    state.watermark = 10;
    await loop.round();
    state.failPublish = true;
    state.watermark = 20;
    const failed = await loop.round();
    expect(failed).toMatchObject({ ok: false, stage: 'publish' });
    state.failRebuild = true;
    expect(await loop.round()).toMatchObject({ ok: false, stage: 'rebuild' });
    state.failRebuild = false;
    state.failPublish = false;
    state.watermark = 30;
    await loop.round();
    expect(state.published.map((s) => [s.previous_watermark, s.watermark])).toEqual([
      [0, 10],
      [10, 30],
    ]);
  });
});
