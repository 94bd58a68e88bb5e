import type { DeadLetter } from '@cprec/contracts';
import { RejectedMessage, type FailureClass } from './failures';
import { MessageProcessor, type InboundMessage, type MessageProcessorOptions } from './message-processor';

const message = (offset: string): InboundMessage => ({
  topic: 'mailbox',
  partition: 0,
  offset,
  key: Buffer.from('k'),
  value: Buffer.from('{"x":1}'),
  timestamp: '0',
});

function harness(overrides: Partial<MessageProcessorOptions> & { failures?: unknown[] } = {}) {
  let clock = 0;
  const dead: DeadLetter[] = [];
  const waiting: (string | null)[] = [];
  const failures = [...(overrides.failures ?? [])];
  const handled: string[] = [];
  const processor = new MessageProcessor({
    consumer: 'test',
    handle: async (m) => {
      if (failures.length > 0) throw failures.shift();
      handled.push(m.offset);
    },
    classify: () => 'transient',
    dependencies: async () => null,
    deadLetters: { send: async (r) => void dead.push(...r) },
    policy: { attempts: 3, initialBackoffMs: 100, maxBackoffMs: 1_000 },
    log: { warn: () => undefined, error: () => undefined },
    observer: { waiting: (p) => waiting.push(p) },
    sleep: async (ms) => void (clock += ms),
    now: () => clock,
    ...overrides,
  });
  const ctx = { heartbeat: async () => undefined, shouldStop: () => false };
  return { processor, dead, waiting, handled, ctx, elapsed: () => clock };
}

describe('MessageProcessor', () => {
  it('dead-letters a refused message at once with its kind, reason and original bytes', async () => {
    const h = harness({ failures: [new RejectedMessage('invalid', 'adapter_id: bad')] });
    expect(await h.processor.process(message('4'), h.ctx)).toBe('dead-lettered');
    expect(h.dead).toEqual([
      expect.objectContaining({
        offset: '4',
        reason: 'adapter_id: bad',
        reason_kind: 'invalid',
        consumer: 'test',
        original_base64: Buffer.from('{"x":1}').toString('base64'),
      }),
    ]);
    expect(h.elapsed()).toBe(0);
  });

  it('dead-letters a permanent failure as unprocessable', async () => {
    const h = harness({ failures: [new Error('Code: 25')], classify: (): FailureClass => 'permanent' });
    expect(await h.processor.process(message('1'), h.ctx)).toBe('dead-lettered');
    expect(h.dead[0]).toMatchObject({ reason_kind: 'unprocessable', reason: 'Code: 25' });
  });

  it('retries an unknown failure a bounded number of times, then dead-letters it when every dependency is up', async () => {
    const h = harness({ failures: Array.from({ length: 10 }, () => new Error('boom')) });
    expect(await h.processor.process(message('2'), h.ctx)).toBe('dead-lettered');
    expect(h.dead[0]).toMatchObject({ reason_kind: 'retries_exhausted' });
    expect(h.dead[0]!.reason).toMatch(/^failed 3 times while every dependency was up; last error: boom/);
  });

  it('keeps retrying while a dependency is down, reports it, and handles the message once it is back', async () => {
    let down = true;
    const h = harness({
      failures: Array.from({ length: 6 }, () => new Error('insert failed')),
      dependencies: async () => (down ? 'ClickHouse (ECONNREFUSED)' : null),
    });
    const done = h.processor.process(message('3'), {
      heartbeat: async () => {
        if (h.elapsed() > 5_000) down = false;
      },
      shouldStop: () => false,
    });
    expect(await done).toBe('handled');
    expect(h.dead).toEqual([]);
    expect(h.handled).toEqual(['3']);
    expect(h.waiting.some((w) => w?.startsWith('waiting for ClickHouse (ECONNREFUSED)'))).toBe(true);
    expect(h.waiting.at(-1)).toBeNull();
  });

  it('retries an unavailable dependency without a bound and never dead-letters for it', async () => {
    const h = harness({
      failures: Array.from({ length: 20 }, () => new Error('ECONNREFUSED')),
      classify: () => 'unavailable',
    });
    expect(await h.processor.process(message('5'), h.ctx)).toBe('handled');
    expect(h.dead).toEqual([]);
  });

  it('abandons the message uncommitted when asked to stop', async () => {
    const h = harness({ failures: [new Error('x'), new Error('x')] });
    let calls = 0;
    const outcome = await h.processor.process(message('6'), {
      heartbeat: async () => undefined,
      shouldStop: () => ++calls > 1,
    });
    expect(outcome).toBe('abandoned');
    expect(h.dead).toEqual([]);
  });

  it('keeps trying to send the dead letter while the dead-letter topic is unavailable', async () => {
    let refusals = 3;
    const sent: DeadLetter[] = [];
    const h = harness({
      failures: [new RejectedMessage('invalid', 'bad')],
      deadLetters: {
        send: async (r) => {
          if (refusals-- > 0) throw new Error('broker down');
          sent.push(...r);
        },
      },
    });
    expect(await h.processor.process(message('7'), h.ctx)).toBe('dead-lettered');
    expect(sent).toHaveLength(1);
    expect(h.waiting).toContain(null);
  });
});
