import { ConsumerLiveness } from './consumer-liveness';

describe('ConsumerLiveness', () => {
  it('is unhealthy until the group is joined, after a crash, and while stalled or waiting; healthy again once it consumes', () => {
    let now = 0;
    const l = new ConsumerLiveness({ stalledAfterMs: 60_000, now: () => now });
    expect(l.problem()).toBe('consumer has not joined its group');
    l.consuming();
    expect(l.problem()).toBeNull();

    // A broker restart: kafkajs crashes the consumer and restarts it; the next fetch heals /health.
    l.crashed('Connection error: ECONNREFUSED', true);
    expect(l.problem()).toMatch(
      /^consumer crashed \(Connection error: ECONNREFUSED\); kafkajs is restarting it/,
    );
    now += 5_000;
    l.consuming();
    expect(l.problem()).toBeNull();

    // No fetch for longer than the limit while idle: stalled.
    now += 61_000;
    expect(l.problem()).toMatch(/^consumer stalled: no fetch for 61 s/);
    l.consuming();
    expect(l.problem()).toBeNull();

    // A long handler is not a stall, but waiting on a dependency is reported.
    l.busy(true);
    now += 600_000;
    expect(l.problem()).toBeNull();
    l.waiting('waiting for ClickHouse (ECONNREFUSED)');
    expect(l.problem()).toBe('waiting for ClickHouse (ECONNREFUSED)');
    l.waiting(null);
    l.busy(false);
    expect(l.problem()).toBeNull();
  });
});
