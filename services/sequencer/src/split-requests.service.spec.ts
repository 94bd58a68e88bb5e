import { EmptySplitError, SplitMismatchError } from '@cprec/clickhouse';
import { NotEnoughItemsError } from '@cprec/corpus';
import { handleSplitRequest } from './split-requests.service';

const request = {
  kind: 'create_split',
  split_id: 'loo-1',
  split_kind: 'loo',
  domains: ['games'],
  seed: 7,
  requested_by: 'evaluator',
  ts: 1,
};
const stored = {
  splitId: 'loo-1',
  kind: 'loo' as const,
  domains: ['games'],
  seed: 7,
  windowStartMs: 0,
  windowEndMs: 0,
  watermarkMs: 0,
  examples: 3,
  createdMs: 0,
};

const recordRefusal = jest.fn().mockResolvedValue(undefined);
beforeEach(() => recordRefusal.mockClear());

describe('handleSplitRequest', () => {
  it('freezes the requested split once, passing its definition through', async () => {
    const createIfAbsent = jest
      .fn()
      .mockResolvedValueOnce({ split: stored, created: true })
      .mockResolvedValueOnce({ split: stored, created: false });
    const lines: string[] = [];
    expect(
      await handleSplitRequest(Buffer.from(JSON.stringify(request)), { createIfAbsent, recordRefusal }, (l) =>
        lines.push(l),
      ),
    ).toBe('created');
    expect(
      await handleSplitRequest(Buffer.from(JSON.stringify(request)), { createIfAbsent, recordRefusal }, (l) =>
        lines.push(l),
      ),
    ).toBe('existing');
    expect(createIfAbsent).toHaveBeenCalledWith({
      splitId: 'loo-1',
      kind: 'loo',
      domains: ['games'],
      seed: 7,
    });
    expect(lines[0]).toBe('split loo-1 frozen: 3 examples');
  });

  it('refuses malformed requests (dead-lettered by the consumer) and skips conflicting ones instead of retrying them forever', async () => {
    const createIfAbsent = jest.fn().mockRejectedValue(new SplitMismatchError('different seed'));
    const log = jest.fn();
    await expect(
      handleSplitRequest(Buffer.from('{oops'), { createIfAbsent, recordRefusal }, log),
    ).rejects.toMatchObject({
      name: 'RejectedMessage',
      kind: 'malformed',
    });
    await expect(
      handleSplitRequest(
        Buffer.from(JSON.stringify({ ...request, domains: [] })),
        { createIfAbsent, recordRefusal },
        log,
      ),
    ).rejects.toMatchObject({
      kind: 'invalid',
      message: expect.stringMatching(/^split request refused: domains/),
    });
    await expect(
      handleSplitRequest(
        Buffer.from(JSON.stringify({ ...request, split_id: 'x', requested_by: '\ud800' })),
        { createIfAbsent, recordRefusal },
        log,
      ),
    ).rejects.toMatchObject({ kind: 'unstorable' });
    expect(createIfAbsent).not.toHaveBeenCalled();
    // Unparseable requests have no split to answer for; a refused valid one gets its reason
    // recorded against the request's own timestamp, for the requester polling the split.
    expect(recordRefusal).not.toHaveBeenCalled();
    expect(
      await handleSplitRequest(Buffer.from(JSON.stringify(request)), { createIfAbsent, recordRefusal }, log),
    ).toBe('rejected');
    expect(recordRefusal).toHaveBeenCalledWith('loo-1', 'different seed', 1);
  });

  it('leaves a split that is not possible yet unfrozen and unrefused, so a later request can succeed', async () => {
    for (const error of [
      new EmptySplitError('no sequences of games yet'),
      new NotEnoughItemsError('games', 3, 19),
    ]) {
      const createIfAbsent = jest.fn().mockRejectedValue(error);
      const lines: string[] = [];
      expect(
        await handleSplitRequest(
          Buffer.from(JSON.stringify(request)),
          { createIfAbsent, recordRefusal },
          (l) => lines.push(l),
        ),
      ).toBe('rejected');
      expect(lines[0]).toMatch(/not frozen yet/);
    }
    expect(recordRefusal).not.toHaveBeenCalled();
  });

  it('drops a request older than its lifetime', async () => {
    const createIfAbsent = jest.fn();
    const lines: string[] = [];
    expect(
      await handleSplitRequest(
        Buffer.from(JSON.stringify(request)),
        { createIfAbsent, recordRefusal },
        (l) => lines.push(l),
        { maxAgeMs: 60_000, now: () => 120_000 },
      ),
    ).toBe('stale');
    expect(createIfAbsent).not.toHaveBeenCalled();
    expect(lines[0]).toMatch(/^split request loo-1 is 120 s old, older than its lifetime of 60 s/);
  });

  it('throws on server errors so the message is retried', async () => {
    const createIfAbsent = jest.fn().mockRejectedValue(new Error('ECONNREFUSED'));
    await expect(
      handleSplitRequest(
        Buffer.from(JSON.stringify(request)),
        { createIfAbsent, recordRefusal },
        () => undefined,
      ),
    ).rejects.toThrow('ECONNREFUSED');
  });
});
