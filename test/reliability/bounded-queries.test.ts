import { ControlPlaneRepository, InteractionRepository, ItemRepository } from '@cprec/clickhouse';
import { useNamespace } from '../support/harness';

/**
 * IN lists of caller-provided ids are bounded (issue 15): 30 000 ids make a ~400 kB list, beyond
 * ClickHouse's max_query_size (256 KiB), which the server refuses ("Max query size exceeded");
 * the repositories query them in chunks and merge the rows as one query would have returned them.
 */
const ns = useNamespace('bounded_in', { topics: false });
const IDS = 30_000;

it('looks up 30 000 ids in one call against the real server', async () => {
  const items = new ItemRepository(ns.ch);
  await items.upsertBatch(
    Array.from({ length: 50 }, (_, i) => ({
      item_id: `item-${String(i * 600).padStart(6, '0')}`,
      domain: 'games',
      title: `title ${i}`,
      updated_at_ms: 1_000,
    })),
  );
  const ids = Array.from({ length: IDS }, (_, i) => `item-${String(i).padStart(6, '0')}`);
  const found = await items.get('games', ids);
  expect(found.map((i) => i.item_id)).toEqual(
    Array.from({ length: 50 }, (_, i) => `item-${String(i * 600).padStart(6, '0')}`),
  );

  const interactions = new InteractionRepository(ns.ch);
  await interactions.insertBatch(
    Array.from({ length: 20 }, (_, i) => ({
      event_id: `e${i}`,
      user_id: `user-${String(i * 1_000).padStart(6, '0')}`,
      item_id: 'item-000000',
      domain: 'games',
      ts_ms: 1_600_000_000_000 + i,
    })),
  );
  const users = Array.from({ length: IDS }, (_, i) => `user-${String(i).padStart(6, '0')}`);
  expect(await interactions.countDistinct({ userIds: users })).toBe(20);
  const rows = await interactions.readDeduplicated({ userIds: users }, 5);
  expect(rows.map((r) => r.event_id)).toEqual(['e0', 'e1', 'e2', 'e3', 'e4']);

  const control = new ControlPlaneRepository(ns.ch);
  await control.insertPromotion({ adapter_id: 'a-7', decision: 'rejected', reasons: [], hr1: {}, ts_ms: 5 });
  const adapters = Array.from({ length: IDS }, (_, i) => `a-${i}`);
  expect((await control.listPromotions({ adapterIds: adapters })).map((p) => p.adapter_id)).toEqual(['a-7']);
});
