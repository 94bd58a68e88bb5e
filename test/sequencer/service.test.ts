import { CorpusStats, CorpusStatsSchema } from '@cprec/contracts';
import { ClickHouse, ident, InteractionRecord, InteractionRepository, sql } from '@cprec/clickhouse';
import { useNamespace } from '../support/harness';
import { eventually, randomPort, RunningService } from '../support/service-process';

/**
 * The sequencer as a process: it rebuilds sequences of a database of its own, publishes
 * CorpusStats for the test's own domains, and survives its database disappearing.
 */
const ns = useNamespace('sequencer');
const run = ns.run;
const database = ns.database;
const domainA = `it-a-${run}`;
const domainB = `it-b-${run}`;
let ch: ClickHouse;
let sequencer: RunningService | null = null;
const received: CorpusStats[] = [];
const port = randomPort();

const ours = (s: CorpusStats) => s.domains.some((d) => d.domain === domainA || d.domain === domainB);

beforeAll(async () => {
  ch = ns.ch;
  await ns.consume([ns.topics.corpusStats], async ({ message }) => {
    const stats = CorpusStatsSchema.parse(JSON.parse(String(message.value)));
    if (ours(stats)) received.push(stats);
  });
  sequencer = await ns.startService(
    'sequencer',
    'SEQUENCER_PORT',
    {
      SEQUENCER_CLIENT_ID: ns.group('sequencer'),
      SEQUENCER_INTERVAL_MS: '300',
      SEQUENCER_SAFETY_MARGIN_MS: '0',
      SEQUENCER_RETRY_INITIAL_MS: '100',
      SEQUENCER_RETRY_MAX_MS: '500',
    },
    { port },
  );
});

const events = (prefix: string, n: number, users: number, domain: string): InteractionRecord[] =>
  Array.from({ length: n }, (_, i) => ({
    event_id: `${run}-${prefix}-${i}`,
    user_id: `${prefix}-user${i % users}`,
    item_id: `item${i}`,
    domain,
    ts_ms: 1_600_000_000_000 + i * 1000,
  }));

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return text
    .split('\n')
    .filter((l) => l.startsWith(name))
    .reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
}

const totals = () => {
  const sum = (domain: string) =>
    received
      .flatMap((s) => s.domains.filter((d) => d.domain === domain))
      .reduce((acc, d) => acc + d.new_interactions, 0);
  return { a: sum(domainA), b: sum(domainB) };
};

describe('sequencer service', () => {
  it('rebuilds sequences and publishes CorpusStats for new interactions', async () => {
    await new InteractionRepository(ch).insertBatch([
      ...events('x', 12, 4, domainA),
      ...events('y', 5, 5, domainB),
    ]);
    await eventually(
      async () => totals(),
      (t) => t.a === 12 && t.b === 5,
      'CorpusStats for the first batch',
    );
    const first = received.flatMap((s) => s.domains).filter((d) => d.domain === domainA);
    expect(first.reduce((acc, d) => acc + d.new_users, 0)).toBe(4);
    const [row] = await ch.query<{ n: string }>(
      sql`SELECT count() AS n FROM domain_sequences FINAL WHERE domain = ${domainA}`,
    );
    expect(Number(row.n)).toBe(4);

    await new InteractionRepository(ch).insertBatch(events('z', 6, 2, domainA));
    await eventually(
      async () => totals(),
      (t) => t.a === 18,
      'CorpusStats for the second batch',
    );
    const last = received[received.length - 1];
    expect(last.domains.find((d) => d.domain === domainA)?.total_interactions).toBe(18);
    for (let i = 1; i < received.length; i++)
      expect(received[i].previous_watermark).toBe(received[i - 1].watermark);
    expect(await metric('cprec_sequencer_users_rebuilt_total')).toBeGreaterThanOrEqual(6);
    expect(await metric('cprec_sequencer_rebuild_seconds_count')).toBeGreaterThan(1);
  });

  it('reports unhealthy while its database is gone, then recreates it and carries on', async () => {
    await ch.command(sql`DROP DATABASE ${ident(database)}`);
    await eventually(
      async () => (await fetch(`http://127.0.0.1:${port}/health`)).status,
      (status) => status === 503,
      'health to report the failure',
      30_000,
    );
    expect(await metric('cprec_sequencer_failures_total')).toBeGreaterThan(0);
    await eventually(
      async () => (await fetch(`http://127.0.0.1:${port}/health`)).status,
      (status) => status === 200,
      'the sequencer to recover',
      60_000,
    );
    expect(sequencer?.child.exitCode).toBeNull();
    const before = totals().b;
    await new InteractionRepository(ch).insertBatch(events('w', 3, 3, domainB));
    await eventually(
      async () => totals().b,
      (b) => b === before + 3,
      'CorpusStats after recovery',
    );
  });
});
