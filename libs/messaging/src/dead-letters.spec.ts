import { DeadLetter, DeadLetterSchema } from '@cprec/contracts';
import { deadLetterBatches } from './dead-letter-batches';

const letter = (offset: number, originalBytes: number): DeadLetter => ({
  source_topic: 'cprec.interactions.v1',
  partition: 1,
  offset: String(offset),
  reason: `message is ${originalBytes} bytes, larger than the limit of 4096`,
  original_base64: Buffer.alloc(originalBytes, offset % 251).toString('base64'),
  key: `k${offset}`,
  ts: 1,
});
const size = (batch: { key: string | null; value: string }[]) =>
  batch.reduce((s, m) => s + Buffer.byteLength(m.value) + Buffer.byteLength(m.key ?? ''), 0);

describe('deadLetterBatches', () => {
  it('keeps every dead letter, in order and unchanged, in requests under the byte limit', () => {
    const records = Array.from({ length: 40 }, (_, i) => letter(i, 3000 + i * 100));
    const batches = deadLetterBatches(records, 20_000);
    expect(batches.length).toBeGreaterThan(1);
    for (const b of batches) expect(size(b)).toBeLessThanOrEqual(20_000);
    const values = batches.flat().map((m) => JSON.parse(m.value) as unknown);
    expect(values).toEqual(records);
    expect(batches.flat().map((m) => m.key)).toEqual(records.map((r) => r.key));
  });

  it('puts small dead letters into one request', () => {
    expect(deadLetterBatches([letter(1, 10), letter(2, 10)], 20_000)).toHaveLength(1);
    expect(deadLetterBatches([], 20_000)).toEqual([]);
  });

  it('truncates the original of a single dead letter that cannot fit and says so in the reason', () => {
    const big = letter(7, 50_000);
    const [batch] = deadLetterBatches([big], 20_000);
    expect(batch).toHaveLength(1);
    expect(size(batch!)).toBeLessThanOrEqual(20_000);
    const sent = DeadLetterSchema.parse(JSON.parse(batch![0]!.value));
    const kept = Buffer.from(sent.original_base64, 'base64');
    expect(sent.reason).toBe(
      `${big.reason}; original_base64 holds the first ${kept.length} of 50000 bytes (dead-letter message size limit)`,
    );
    expect(kept.length).toBeGreaterThan(10_000);
    expect(kept.equals(Buffer.from(big.original_base64, 'base64').subarray(0, kept.length))).toBe(true);
    expect({ ...sent, reason: big.reason, original_base64: big.original_base64 }).toEqual(big);
  });
});
