import { InteractionRepository, ItemRepository, SequenceStore } from '@cprec/clickhouse';
import { useNamespace } from '../support/harness';
import { RunningService } from '../support/service-process';
import { requireClusterProfile } from './cluster-infra';

/**
 * Two serving replicas (each its own consumer group, as `npm start -- --replicas serving=2` runs
 * them) on the cluster profile behind a round-robin client that stops sending to a replica once a
 * request to it fails at the connection (what a load balancer's passive health check does). One
 * replica is SIGKILLed under load: only the requests it had in flight fail, the other replica
 * answers everything, before and after. Real processes, the stories260K base read by path.
 */
const ns = useNamespace('cluster-serving');
requireClusterProfile();
const DOMAIN = 'books';
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
const ITEMS = Array.from({ length: 24 }, (_, i) => ({
  item_id: `${DOMAIN}-${i}`,
  title: `${WORDS[i % 12]} ${WORDS[(i * 5 + 1) % 12]} ${DOMAIN}`,
}));

const env = (instance: string): Record<string, string> => ({
  SERVING_GROUP_ID: ns.group('serving'),
  SERVING_INSTANCE_ID: instance,
  SERVING_MODEL: 'checkpoint',
  SERVING_BASE_MODEL: '/work/shared/models/stories260K/stories260K.bin',
  SERVING_BACKEND: 'cpu',
  SERVING_WORKERS: '0',
  SERVING_MAX_TOKENS: '128',
});

interface Outcome {
  replica: number;
  sentAt: number;
  endedAt: number;
  ok: boolean;
  detail: string;
}

/** N concurrent workers sending /v1/recommend round-robin over the replicas still believed up. */
class RoundRobinClient {
  readonly outcomes: Outcome[] = [];
  readonly inFlight: number[];
  readonly down = new Set<number>();
  /** When the client first saw a replica fail at the connection (it stops routing to it then). */
  readonly downSince = new Map<number, number>();
  private next = 0;
  private running = true;
  private workers: Promise<void>[] = [];

  constructor(private readonly urls: readonly string[]) {
    this.inFlight = urls.map(() => 0);
  }

  start(concurrency: number): void {
    this.workers = Array.from({ length: concurrency }, (_, w) => this.worker(w));
  }

  private pick(): number {
    for (let i = 0; i < this.urls.length; i++) {
      const r = this.next++ % this.urls.length;
      if (!this.down.has(r)) return r;
    }
    throw new Error('no replica left');
  }

  private async worker(w: number): Promise<void> {
    let n = 0;
    while (this.running) {
      const replica = this.pick();
      const start = (n++ * 7 + w * 3) % ITEMS.length;
      const ids = Array.from({ length: 12 }, (_, i) => ITEMS[(start + i) % ITEMS.length]!.item_id);
      const body = { history: ids.slice(0, 2), domain: DOMAIN, candidate_ids: ids.slice(2), k: 5 };
      const sentAt = Date.now();
      this.inFlight[replica]!++;
      try {
        const res = await fetch(`${this.urls[replica]}/v1/recommend`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
        const text = await res.text();
        const ok = res.status === 200 && (JSON.parse(text) as { items?: unknown[] }).items?.length === 5;
        this.outcomes.push({ replica, sentAt, endedAt: Date.now(), ok, detail: `${res.status}` });
      } catch (err) {
        const endedAt = Date.now();
        const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
        this.outcomes.push({ replica, sentAt, endedAt, ok: false, detail: cause });
        if (!this.down.has(replica)) {
          this.down.add(replica);
          this.downSince.set(replica, endedAt);
        }
      } finally {
        this.inFlight[replica]!--;
      }
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.workers);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  await new ItemRepository(ns.ch).upsertBatch(
    ITEMS.map((i) => ({ ...i, domain: DOMAIN, attributes: {}, updated_at_ms: 1_000 })),
  );
  const rows = [];
  for (let u = 0; u < 8; u++)
    for (let k = 0; k < 6; k++)
      rows.push({
        event_id: `e-${u}-${k}`,
        user_id: `u${u}`,
        item_id: `${DOMAIN}-${(u + k * 2) % 24}`,
        domain: DOMAIN,
        ts_ms: 1_600_000_000_000 + k * 60_000 + u,
      });
  await new InteractionRepository(ns.ch).insertBatch(rows, 1_000_000);
  await new SequenceStore(ns.ch).rebuild({ safetyMarginMs: 0, nowMs: 4_000_000_000_000 });
}, 120_000);

describe('serving failover (two replicas behind a round-robin client)', () => {
  it('SIGKILL of one serving replica under load: only its in-flight requests fail, the other keeps answering', async () => {
    const replicas: RunningService[] = await Promise.all([
      ns.startService('serving', 'SERVING_PORT', env('r1'), { timeoutMs: 180_000 }),
      ns.startService('serving', 'SERVING_PORT', env('r2'), { timeoutMs: 180_000 }),
    ]);
    const client = new RoundRobinClient(replicas.map((r) => `http://127.0.0.1:${r.port}`));
    client.start(4);
    await sleep(6_000);
    // Kill while the victim is answering requests, so some are in flight.
    const victim = 0;
    for (let i = 0; i < 200 && client.inFlight[victim]! === 0; i++) await sleep(5);
    const inFlightAtKill = client.inFlight[victim]!;
    const killedAt = Date.now();
    replicas[victim]!.child.kill('SIGKILL');
    await sleep(6_000);
    await client.stop();
    await replicas[victim]!.kill();

    const all = client.outcomes;
    const before = all.filter((o) => o.endedAt < killedAt);
    const failed = all.filter((o) => !o.ok);
    const survivor = all.filter((o) => o.replica !== victim);
    const afterKill = all.filter((o) => o.sentAt > (client.downSince.get(victim) ?? killedAt));
    // Enough load on both replicas before the kill, all answered.
    expect(before.filter((o) => o.replica === victim).length).toBeGreaterThan(5);
    expect(before.filter((o) => o.replica !== victim).length).toBeGreaterThan(5);
    expect(before.filter((o) => !o.ok)).toEqual([]);
    expect(inFlightAtKill).toBeGreaterThan(0);
    // Only the victim's in-flight requests failed: sent to it before the client could know it was
    // gone (the first failure it saw), ended after the kill. A request sent in the instant between
    // the kill and that first failure is in flight too, as it is behind a real load balancer.
    const noticedAt = client.downSince.get(victim)!;
    expect(noticedAt).toBeGreaterThanOrEqual(killedAt);
    expect(failed.length).toBeGreaterThan(0);
    expect(
      failed.filter((o) => !(o.replica === victim && o.sentAt <= noticedAt && o.endedAt >= killedAt)),
    ).toEqual([]);
    // Nothing was sent to it once the client knew.
    expect(all.filter((o) => o.replica === victim && o.sentAt > noticedAt)).toEqual([]);
    // The other replica answered every request, and after the kill it answered them all.
    expect(survivor.filter((o) => !o.ok)).toEqual([]);
    expect(afterKill.length).toBeGreaterThan(5);
    expect(afterKill.every((o) => o.ok && o.replica !== victim)).toBe(true);

    const rate = (xs: Outcome[], ms: number) => Math.round((xs.length / ms) * 1000);
    const firstSent = Math.min(...all.map((o) => o.sentAt));
    console.log(
      `[cluster] serving failover: ${all.length} requests (4 concurrent), ${rate(before, killedAt - firstSent)}/s on two ` +
        `replicas, ${rate(afterKill, 6_000)}/s on one after the kill; ${inFlightAtKill} in flight at the victim at the kill, ` +
        `${failed.length} failed (${[...new Set(failed.map((f) => f.detail))].join(', ')}; ` +
        `${failed.filter((f) => f.sentAt > killedAt).length} of them sent between the kill and the first failure), the client stopped routing to it ` +
        `${(client.downSince.get(victim) ?? killedAt) - killedAt} ms after the kill`,
    );
  }, 300_000);
});
