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

  it('skips malformed and conflicting requests instead of retrying them forever', async () => {
    const createIfAbsent = jest.fn().mockRejectedValue(new SplitMismatchError('different seed'));
    const log = jest.fn();
    expect(await handleSplitRequest(Buffer.from('{oops'), { createIfAbsent, recordRefusal }, log)).toBe(
      'rejected',
    );
    expect(
      await handleSplitRequest(
        Buffer.from(JSON.stringify({ ...request, domains: [] })),
        { createIfAbsent, recordRefusal },
        log,
      ),
    ).toBe('rejected');
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
