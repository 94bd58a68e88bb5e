import type { InteractionEvent, ItemEvent } from '@cprec/contracts';
import type { Dataset } from '../model';
import { onlyUsers, planLiveStream } from './live';

const DAY = 86_400_000;

function dataset(rows: Array<[user: string, domain: string, day: number]>): Dataset {
  const events: InteractionEvent[] = rows.map(([user, domain, day], i) => ({
    event_id: `e${i}`,
    user_id: user,
    item_id: `i${i}`,
    domain,
    ts: day * DAY,
    seq: i,
  }));
  const items: ItemEvent[] = [{ item_id: 'i0', domain: 'a', title: 'x' }];
  return {
    name: 'test',
    format: 'synthetic',
    async *items() {
      yield* items;
    },
    async *interactions() {
      yield* events;
    },
  };
}

// u1 in a and b, u2 only in a, u3 in a, b and c.
const rows: Array<[string, string, number]> = [
  ['u1', 'a', 1],
  ['u1', 'b', 2],
  ['u2', 'a', 3],
  ['u2', 'a', 4],
  ['u3', 'c', 5],
  ['u3', 'a', 6],
  ['u3', 'b', 7],
  ['u1', 'a', 8],
];

describe('planLiveStream', () => {
  it('keeps the users active in enough domains and finds where the backlog ends', async () => {
    const plan = await planLiveStream([dataset(rows)], { minDomains: 2, backlogFraction: 0.5 });
    expect([...plan.users!].sort()).toEqual(['u1', 'u3']);
    expect(plan).toMatchObject({
      userCount: 2,
      interactionCount: 6,
      interactions: { a: 3, b: 2, c: 1 },
      firstMs: 1 * DAY,
      lastMs: 8 * DAY,
    });
    // Kept days 1 2 5 6 7 8: half of them (3) come before day 6.
    expect(plan.liveFromMs).toBe(6 * DAY);
  });

  it('keeps everyone (users null) without a filter, and no backlog by default', async () => {
    const plan = await planLiveStream([dataset(rows)]);
    expect(plan.users).toBeNull();
    expect(plan).toMatchObject({ userCount: 3, interactionCount: 8, liveFromMs: null });
  });

  it('samples at most maxUsers users, the same ones whatever the order of the rows', async () => {
    const one = await planLiveStream([dataset(rows)], { maxUsers: 2 });
    const reversed = await planLiveStream([dataset([...rows].reverse())], { maxUsers: 2 });
    expect(one.users!.size).toBe(2);
    expect([...one.users!].sort()).toEqual([...reversed.users!].sort());
  });

  it('refuses nonsense settings with a clear message', async () => {
    await expect(planLiveStream([dataset(rows)], { backlogFraction: 1 })).rejects.toThrow(
      'backlogFraction must be in [0, 1)',
    );
    await expect(planLiveStream([dataset(rows)], { minDomains: 0 })).rejects.toThrow('minDomains');
  });
});

describe('onlyUsers', () => {
  it('streams the kept users only, with their original event ids, and every item', async () => {
    const filtered = onlyUsers(dataset(rows), new Set(['u2']));
    const ids: string[] = [];
    for await (const e of filtered.interactions()) ids.push(e.event_id);
    expect(ids).toEqual(['e2', 'e3']);
    const items: string[] = [];
    for await (const i of filtered.items()) items.push(i.item_id);
    expect(items).toEqual(['i0']);
  });
});
