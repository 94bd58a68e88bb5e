import type { ServingEventRecord } from '@cprec/clickhouse';
import { ServingEventSchema } from '@cprec/contracts';
import { servingEventMessage, ServingEventOutbox } from './serving-event-log';

const record = (adapterId: string, detail = ''): ServingEventRecord => ({
  event: 'switch',
  domain: 'games',
  adapter_id: adapterId,
  previous_adapter_id: '',
  detail,
  ts_ms: 1_700_000_000_000,
});

describe('servingEventMessage', () => {
  it('is a valid serving event, keyed by the replica, whatever the detail holds', () => {
    const message = servingEventMessage(record('a1', `refused: \ud800 ${'x'.repeat(5000)}`), 'host-8105');
    expect(ServingEventSchema.safeParse(message).success).toBe(true);
    expect(message.instance).toBe('host-8105');
    expect(message.detail.startsWith('refused: \ufffd x')).toBe(true);
    expect(message.detail).toHaveLength(4000);
    // A cut through a surrogate pair leaves no half of it.
    const emoji = servingEventMessage(record('a1', `${'y'.repeat(3999)}😀`), 'i');
    expect(emoji.detail).toBe(`${'y'.repeat(3999)}\ufffd`);
  });
});

describe('ServingEventOutbox: in order, retried until Kafka has it', () => {
  it('sends events one at a time in the order they happened, keyed by the replica', async () => {
    const sent: Array<[string, string]> = [];
    const outbox = new ServingEventOutbox('r1', { send: async (key, value) => void sent.push([key, value]) });
    const results = await Promise.all([outbox.publish(record('a')), outbox.publish(record('b'))]);
    expect(results).toEqual([true, true]);
    expect(sent.map(([key, value]) => [key, JSON.parse(value).adapter_id])).toEqual([
      ['r1', 'a'],
      ['r1', 'b'],
    ]);
  });

  it('retries a refused send with a growing backoff, and nothing overtakes it', async () => {
    const attempts: string[] = [];
    const sleeps: number[] = [];
    const errors: string[] = [];
    let refusals = 3;
    const outbox = new ServingEventOutbox('r1', {
      send: async (_key, value) => {
        const id = JSON.parse(value).adapter_id as string;
        attempts.push(id);
        if (id === 'a' && refusals-- > 0) throw new Error('broker down');
      },
      sleep: async (ms) => void sleeps.push(ms),
      onError: (m) => errors.push(m),
      initialBackoffMs: 100,
      maxBackoffMs: 250,
    });
    const a = outbox.publish(record('a'));
    const b = outbox.publish(record('b'));
    expect(await Promise.all([a, b])).toEqual([true, true]);
    expect(attempts).toEqual(['a', 'a', 'a', 'a', 'b']);
    expect(sleeps).toEqual([100, 200, 250]);
    expect(errors).toHaveLength(3);
    expect(errors[0]).toMatch(/switch of a for games failed \(broker down\); retrying in 100 ms/);
  });

  it('on close, waits for what is queued for a while, then gives up and says what was not sent', async () => {
    const outbox = new ServingEventOutbox('r1', {
      send: async () => {
        throw new Error('broker down');
      },
      initialBackoffMs: 10,
      maxBackoffMs: 10,
    });
    const pending = outbox.publish(record('a'));
    const unsent = await outbox.close(100);
    expect(unsent.map((e) => e.adapter_id)).toEqual(['a']);
    expect(await pending).toBe(false);
    expect(await outbox.publish(record('b'))).toBe(false);
  });
});
