import { SplitMismatchError } from '@cprec/clickhouse';
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

describe('handleSplitRequest', () => {
  it('freezes the requested split once, passing its definition through', async () => {
    const createIfAbsent = jest
      .fn()
      .mockResolvedValueOnce({ split: stored, created: true })
      .mockResolvedValueOnce({ split: stored, created: false });
    const lines: string[] = [];
    expect(
      await handleSplitRequest(Buffer.from(JSON.stringify(request)), { createIfAbsent }, (l) =>
        lines.push(l),
      ),
    ).toBe('created');
    expect(
      await handleSplitRequest(Buffer.from(JSON.stringify(request)), { createIfAbsent }, (l) =>
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
    expect(await handleSplitRequest(Buffer.from('{oops'), { createIfAbsent }, log)).toBe('rejected');
    expect(
      await handleSplitRequest(
        Buffer.from(JSON.stringify({ ...request, domains: [] })),
        { createIfAbsent },
        log,
      ),
    ).toBe('rejected');
    expect(createIfAbsent).not.toHaveBeenCalled();
    expect(await handleSplitRequest(Buffer.from(JSON.stringify(request)), { createIfAbsent }, log)).toBe(
      'rejected',
    );
  });

  it('throws on server errors so the message is retried', async () => {
    const createIfAbsent = jest.fn().mockRejectedValue(new Error('ECONNREFUSED'));
    await expect(
      handleSplitRequest(Buffer.from(JSON.stringify(request)), { createIfAbsent }, () => undefined),
    ).rejects.toThrow('ECONNREFUSED');
  });
});
