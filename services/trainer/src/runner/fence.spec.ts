import { RunnerFence } from './fence';

describe('RunnerFence', () => {
  it('holds until the last renewal runs out, and an older renewal does not shorten it', () => {
    let now = 1_000;
    const fence = new RunnerFence(2_000, () => now);
    expect(fence.expired()).toBe(false);
    now = 1_900;
    fence.renew(3_000);
    fence.renew(2_500);
    now = 2_999;
    expect(fence.expired()).toBe(false);
    // The parent stopped renewing (paused, dead, partitioned): the runner stops by its own clock.
    now = 3_000;
    expect(fence.expired()).toBe(true);
  });

  it('a runner started without a valid lease is fenced at once', () => {
    expect(new RunnerFence(0, () => 5).expired()).toBe(true);
  });
});
