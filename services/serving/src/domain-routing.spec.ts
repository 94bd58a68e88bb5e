import type { RankRequest, ScoredCandidate } from '@cprec/training';
import { BASE_REF, type AdapterRef, type Serving } from './adapter-manager';
import { rankByDomain, type BatchRanker } from './domain-routing';

/** A model that ranks by recording what it was given; its scores name it. */
class FakeScorer implements BatchRanker {
  readonly batches: string[][] = [];
  failWith: Error | null = null;
  constructor(readonly name: string) {}
  rankBatch(requests: readonly RankRequest[]): Promise<ScoredCandidate[][]> {
    this.batches.push(requests.map((r) => r.history[0].itemId));
    if (this.failWith) return Promise.reject(this.failWith);
    return Promise.resolve(
      requests.map((r) => [{ itemId: `${this.name}:${r.history[0].itemId}`, title: '', score: 0, rank: 1 }]),
    );
  }
}

const ref = (id: string): AdapterRef => ({ adapterId: id, uri: `file:///${id}`, sha256: id.padEnd(64, '0') });
const request = (domain: string, id: string): RankRequest => ({
  domain,
  history: [{ itemId: id, title: id }],
  candidates: [{ itemId: 'c', title: 'c' }],
});

function setup() {
  const base: Serving<FakeScorer> = { ref: BASE_REF, value: new FakeScorer('base') };
  const slots = new Map<string, Serving<FakeScorer>>([
    ['games', { ref: ref('x'), value: new FakeScorer('x') }],
    ['books', { ref: ref('y'), value: new FakeScorer('y') }],
  ]);
  return { base, slots, servingOf: (d: string) => slots.get(d) ?? base };
}

describe('rankByDomain (request routing)', () => {
  it("sends each request to its domain's adapter, the base model for a domain without one, in batch order", async () => {
    const { base, slots, servingOf } = setup();
    const batch = [
      request('games', 'g1'),
      request('books', 'b1'),
      request('toys', 't1'),
      request('games', 'g2'),
    ];
    const routed = await rankByDomain(batch, servingOf);
    expect(routed.map((r) => [r.ref.adapterId, r.ranked[0].itemId])).toEqual([
      ['x', 'x:g1'],
      ['y', 'y:b1'],
      ['base', 'base:t1'],
      ['x', 'x:g2'],
    ]);
    // One rankBatch per model, holding only its domain's requests.
    expect(slots.get('games')!.value.batches).toEqual([['g1', 'g2']]);
    expect(slots.get('books')!.value.batches).toEqual([['b1']]);
    expect(base.value.batches).toEqual([['t1']]);
  });

  it('hands every group to its model before awaiting anything (a switch cannot dispose a model mid-batch)', async () => {
    const { slots, servingOf } = setup();
    const promise = rankByDomain([request('games', 'g1'), request('books', 'b1')], servingOf);
    // Synchronously after the call, before any await has resumed: both models have their batch.
    expect(slots.get('games')!.value.batches).toHaveLength(1);
    expect(slots.get('books')!.value.batches).toHaveLength(1);
    // What serves games changes now: the batch already given to x is still answered by x.
    slots.set('games', { ref: ref('x2'), value: new FakeScorer('x2') });
    expect((await promise).map((r) => r.ref.adapterId)).toEqual(['x', 'y']);
  });

  it('fails the batch when a group fails (the micro-batcher retries request by request)', async () => {
    const { slots, servingOf } = setup();
    slots.get('books')!.value.failWith = new Error('books adapter failed');
    await expect(rankByDomain([request('games', 'g1'), request('books', 'b1')], servingOf)).rejects.toThrow(
      /books adapter failed/,
    );
    expect(await rankByDomain([request('games', 'g1')], servingOf)).toHaveLength(1);
  });
});
