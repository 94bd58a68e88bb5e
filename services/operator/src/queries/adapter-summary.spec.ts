import type { EvaluationRecord, ServingEventRecord, StoredAdapter, StoredPromotion } from '@cprec/clickhouse';
import { servingDomainsByAdapter, summariseAdapters, thin } from './adapter-summary';

const adapter = (adapter_id: string): StoredAdapter => ({
  adapter_id,
  adapter_kind: 'sft',
  round_id: 'r1',
  target_domains: ['games', 'steam'],
  uri: '',
  sha256: '',
  lineage: {},
  created_ms: 0,
});

const evaluation = (
  adapter_id: string,
  domain: string,
  hr1: number,
  created_ms: number,
): EvaluationRecord => ({
  evaluation_id: `${adapter_id}-${domain}-${created_ms}`,
  adapter_id,
  split_id: 's',
  domain,
  method: 'generate',
  samples: 10,
  hr1,
  hr1_valid: hr1,
  valid_ratio: 1,
  hr3: 0,
  hr5: 0,
  ndcg3: 0,
  ndcg5: 0,
  report: {},
  created_ms,
});

const decision = (adapter_id: string, d: 'promoted' | 'rejected', ts_ms: number): StoredPromotion => ({
  adapter_id,
  decision: d,
  reasons: [`${d} at ${ts_ms}`],
  hr1: {},
  ts_ms,
});

describe('summariseAdapters', () => {
  it('takes the newest evaluation per domain and averages over domains', () => {
    const [a] = summariseAdapters(
      [adapter('a1')],
      [
        evaluation('a1', 'games', 0.1, 1),
        evaluation('a1', 'games', 0.5, 3),
        evaluation('a1', 'steam', 0.3, 2),
      ],
      [],
      new Map(),
    );
    expect(a.hr1).toEqual({ games: 0.5, steam: 0.3 });
    expect(a.hr1_mean).toBeCloseTo(0.4, 12);
    expect(a.status).toBe('pending');
  });

  it('status: serving (any domain) beats the gate decision; otherwise the newest decision counts', () => {
    const rows = summariseAdapters(
      [adapter('a1'), adapter('a2'), adapter('a3')],
      [],
      [decision('a1', 'promoted', 1), decision('a2', 'promoted', 1), decision('a2', 'rejected', 2)],
      new Map([['a1', ['games']]]),
    );
    expect(rows.map((r) => [r.adapter_id, r.status, r.hr1_mean, r.serving_domains])).toEqual([
      ['a1', 'serving', null, ['games']],
      ['a2', 'rejected', null, []],
      ['a3', 'pending', null, []],
    ]);
    expect(rows[1].reasons).toEqual(['rejected at 2']);
  });
});

describe('servingDomainsByAdapter', () => {
  const row = (domain: string, adapter_id: string, ts_ms: number): ServingEventRecord => ({
    event: 'switch',
    domain,
    adapter_id,
    previous_adapter_id: '',
    detail: '',
    ts_ms,
  });

  it('gives each adapter the domains it serves, a legacy row its target domains without a row of their own', () => {
    const targets: Record<string, string[]> = { old: ['games', 'steam', 'books'] };
    const byAdapter = servingDomainsByAdapter(
      [row('games', 'x', 3), row('books', 'base', 2), row('', 'old', 1)],
      (id) => targets[id],
    );
    // games has x, books was rolled back to the base model (left out): the legacy adapter still
    // answers steam, the one target domain without a row of its own.
    expect(Object.fromEntries(byAdapter)).toEqual({ x: ['games'], old: ['steam'] });
    expect(Object.fromEntries(servingDomainsByAdapter([row('', 'cpt', 1)], () => []))).toEqual({
      cpt: ['*'],
    });
  });
});

describe('thin', () => {
  it('keeps short curves whole', () => {
    expect(thin([1, 2, 3], 5)).toEqual([1, 2, 3]);
  });
  it('keeps at most maxPoints, the first and the last', () => {
    const points = Array.from({ length: 1001 }, (_, i) => i);
    for (const max of [2, 10, 333, 1000]) {
      const kept = thin(points, max);
      expect(kept.length).toBeLessThanOrEqual(max);
      expect(kept[0]).toBe(0);
      expect(kept[kept.length - 1]).toBe(1000);
      expect([...kept].sort((x, y) => x - y)).toEqual(kept);
    }
  });
});
