import { InteractionRecord, interactionRowsJsonEachRow } from './interactions';

describe('interactionRowsJsonEachRow', () => {
  const INGESTED_AT = 1_763_780_000_123;

  /** The row insertBatch builds from a record (the existing path), for comparison. */
  const expectedRow = (r: InteractionRecord) => ({
    event_id: r.event_id,
    user_id: r.user_id,
    item_id: r.item_id,
    domain: r.domain,
    ts: Math.floor(r.ts_ms / 1000),
    ts_ms: r.ts_ms,
    seq: r.seq ?? 0,
    platform: r.platform ?? '',
    title: r.title ?? '',
    ingested_at: Math.floor(INGESTED_AT / 1000),
    ingest_version: INGESTED_AT,
  });

  it('writes one JSON line per event with the columns insertBatch sends, escaping every string', () => {
    const events = [
      { event_id: 'e"1\\', user_id: 'u1', item_id: 'i1', domain: 'games', ts: 1_600_000_000_999 },
      {
        event_id: 'e2',
        user_id: 'u2',
        item_id: 'i2',
        domain: 'beauty',
        ts: 0,
        seq: 7,
        platform: 'web',
        title: 'Tab\there, "quotes", newline\n, émoji 😀, \u2028 and \\',
      },
    ];
    const text = interactionRowsJsonEachRow(events, INGESTED_AT);
    expect(text.endsWith('\n')).toBe(true);
    const lines = text.slice(0, -1).split('\n');
    expect(lines).toHaveLength(2);
    expect(lines.map((l) => JSON.parse(l) as unknown)).toEqual(
      events.map((e) => expectedRow({ ...e, ts_ms: e.ts })),
    );
  });

  it('refuses timestamps ClickHouse DateTime cannot hold, naming the event', () => {
    const base = { user_id: 'u', item_id: 'i', domain: 'd' };
    expect(() =>
      interactionRowsJsonEachRow([{ ...base, event_id: 'late', ts: 4_294_967_296_000 }], 0),
    ).toThrow(/late: ts 4294967296000 is outside/);
    expect(() => interactionRowsJsonEachRow([{ ...base, event_id: 'neg', ts: -1 }], 0)).toThrow(RangeError);
    expect(interactionRowsJsonEachRow([], 0)).toBe('');
  });
});
