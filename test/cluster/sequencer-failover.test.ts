import { InteractionRepository, type InteractionRecord } from '@cprec/clickhouse';
import { type CorpusStats, CorpusStatsSchema } from '@cprec/contracts';
import { useNamespace } from '../support/harness';
import { eventually, RunningService } from '../support/service-process';
import { requireClusterProfile } from './cluster-infra';

/**
 * Two sequencer replicas in one consumer group on the cluster profile: one rebuilds and publishes,
 * the standby does nothing (no rebuild at all) until the active one is SIGKILLed; then it takes
 * over and the statistics go on.
 */
const ns = useNamespace('cluster-sequencer');
requireClusterProfile();
const domain = `it-${ns.run}`;
const SESSION_MS = 8_000;
const env: Record<string, string> = {
  SEQUENCER_CLIENT_ID: ns.group('sequencer'),
  SEQUENCER_INTERVAL_MS: '300',
  SEQUENCER_SAFETY_MARGIN_MS: '0',
  SEQUENCER_LEASE: 'true',
  SEQUENCER_LEASE_SESSION_MS: String(SESSION_MS),
  SEQUENCER_LEASE_HEARTBEAT_MS: '500',
  SEQUENCER_LEASE_VALIDITY_MS: '4000',
};
const received: CorpusStats[] = [];

const events = (from: number, n: number): InteractionRecord[] =>
  Array.from({ length: n }, (_, i) => ({
    event_id: `${ns.run}-${from + i}`,
    user_id: `user${(from + i) % 17}`,
    item_id: `item${from + i}`,
    domain,
    ts_ms: 1_600_000_000_000 + (from + i) * 1000,
  }));

const newestTotal = () =>
  Math.max(
    0,
    ...received.flatMap((s) => s.domains.filter((d) => d.domain === domain).map((d) => d.total_interactions)),
  );

async function role(s: RunningService): Promise<string | null> {
  try {
    const body = (await (await fetch(`http://127.0.0.1:${s.port}/health`)).json()) as {
      checks?: Record<string, string>;
    };
    const key = Object.keys(body.checks ?? {}).find((k) => k.startsWith('sequencer-loop'));
    return /\((active|standby)\)/.exec(key ?? '')?.[1] ?? null;
  } catch {
    return null;
  }
}

async function rebuilds(s: RunningService): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${s.port}/metrics`)).text();
  return text
    .split('\n')
    .filter((l) => l.startsWith('cprec_sequencer_rebuild_seconds_count'))
    .reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
}

beforeAll(async () => {
  await ns.consume([ns.topics.corpusStats], async ({ message }) => {
    received.push(CorpusStatsSchema.parse(JSON.parse(String(message.value))));
  });
});

describe('sequencer failover (active + standby in one consumer group)', () => {
  it('the standby never rebuilds; after a SIGKILL of the active one it takes over and the statistics go on', async () => {
    const first = await ns.startService('sequencer', 'SEQUENCER_PORT', env);
    await eventually(
      () => role(first),
      (r) => r === 'active',
      'the first sequencer active',
    );
    const second = await ns.startService('sequencer', 'SEQUENCER_PORT', env);
    await eventually(
      () => role(second),
      (r) => r === 'standby',
      'the second sequencer standby',
    );

    await new InteractionRepository(ns.ch).insertBatch(events(0, 300), Date.now());
    await eventually(
      async () => newestTotal(),
      (n) => n >= 300,
      'statistics of the first 300 events',
    );
    expect(await role(first)).toBe('active');
    expect(await rebuilds(first)).toBeGreaterThan(0);
    expect(await rebuilds(second)).toBe(0);

    const killedAt = Date.now();
    await first.kill();
    await new InteractionRepository(ns.ch).insertBatch(events(300, 200), Date.now());
    await eventually(
      () => role(second),
      (r) => r === 'active',
      'the standby taking over',
      SESSION_MS + 60_000,
    );
    const takeoverMs = Date.now() - killedAt;
    await eventually(
      async () => newestTotal(),
      (n) => n >= 500,
      'statistics of all 500 events',
      60_000,
    );
    const statsMs = Date.now() - killedAt;
    expect(await rebuilds(second)).toBeGreaterThan(0);
    // Published watermarks never go back.
    const marks = received.map((s) => s.watermark);
    expect(marks).toEqual([...marks].sort((a, b) => a - b));
    console.log(
      `[cluster] sequencer failover: standby active ${takeoverMs} ms after the SIGKILL (session ${SESSION_MS} ms), ` +
        `statistics of the events sent meanwhile ${statsMs} ms after it`,
    );
  }, 300_000);
});
