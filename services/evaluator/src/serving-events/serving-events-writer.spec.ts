import type { ServingEventRecord } from '@cprec/clickhouse';
import type { ServingEventMessage } from '@cprec/contracts';
import { RejectedMessage } from '@cprec/messaging';
import { storeServingEvent } from './serving-events-writer';

const event: ServingEventMessage = {
  event: 'rollback',
  domain: 'games',
  adapter_id: 'a1',
  previous_adapter_id: 'a2',
  detail: 'operator (c1)',
  ts_ms: 1_700_000_000_000,
  instance: 'host-8105',
};

class MemoryStore {
  rows: ServingEventRecord[] = [];
  async insertServingEvent(record: ServingEventRecord): Promise<void> {
    this.rows.push(record);
  }
}

const message = (value: unknown) => ({
  value: value === null ? null : Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)),
});

async function refusal(value: unknown): Promise<RejectedMessage> {
  const store = new MemoryStore();
  const err = await storeServingEvent(message(value), store).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(RejectedMessage);
  expect(store.rows).toEqual([]);
  return err as RejectedMessage;
}

describe('storeServingEvent: the evaluator stores what serving publishes', () => {
  it('stores the record of serving_events (the replica is the key, not a column)', async () => {
    const store = new MemoryStore();
    const { instance: _instance, ...record } = event;
    expect(await storeServingEvent(message(event), store)).toEqual(record);
    expect(store.rows).toEqual([record]);
  });

  it('stores a redelivered event as the same record (same sorting key, collapsed by FINAL)', async () => {
    const store = new MemoryStore();
    await storeServingEvent(message(event), store);
    await storeServingEvent(message(event), store);
    expect(store.rows[0]).toEqual(store.rows[1]);
  });

  it('refuses what can never be stored, with a reason and a kind, storing nothing', async () => {
    expect((await refusal('{"event": ')).kind).toBe('malformed');
    expect((await refusal(null)).kind).toBe('empty'); // a tombstone
    const invalid = await refusal({ ...event, event: 'exploded' });
    expect(invalid.kind).toBe('invalid');
    expect(invalid.message).toMatch(/^serving event refused: event: /);
    expect((await refusal({ ...event, domain: 'Not A Slug' })).message).toMatch(/domain/);
    expect((await refusal({ ...event, extra: 1 })).message).toMatch(/extra/);
    expect((await refusal({ ...event, instance: undefined })).message).toMatch(/instance/);
    expect((await refusal({ ...event, ts_ms: 5_000_000_000_000 })).message).toMatch(/ts_ms/);
    // An unpaired surrogate has no UTF-8 form: ClickHouse would refuse the insert.
    expect((await refusal(`{"event":"switch","detail":"\\ud800"}`)).kind).toBe('unstorable');
  });
});
