import { DeadLetter, DeadLetterSchema } from '@cprec/contracts';
import {
  DEAD_LETTER_KEY_BYTES,
  DEAD_LETTER_REASON_CHARS,
  deadLetterBatches,
  deadLetterOf,
  DeadLetterPublisher,
  fitDeadLetter,
  utf8Prefix,
} from './dead-letters';

const letter = (offset: number, originalBytes: number, key = `k${offset}`): DeadLetter => ({
  source_topic: 'cprec.interactions.v1',
  partition: 1,
  offset: String(offset),
  reason: `message is ${originalBytes} bytes, larger than the limit of 4096`,
  original_base64: Buffer.alloc(originalBytes, offset % 251).toString('base64'),
  key,
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

describe('fitDeadLetter', () => {
  it('cuts a huge key (it travels twice: message key and record) and says how much it kept', () => {
    // A ~600 kB key on a small invalid message: whole, the dead letter would be ~1.2 MB.
    const key = 'é'.repeat(300_000);
    const big = { ...letter(3, 200, key), reason: 'malformed JSON: Unexpected end' };
    const fitted = fitDeadLetter(big, 900 * 1024);
    expect(size([fitted])).toBeLessThanOrEqual(900 * 1024);
    const sent = DeadLetterSchema.parse(JSON.parse(fitted.value));
    expect(fitted.key).toBe(sent.key);
    expect(Buffer.byteLength(sent.key!)).toBeLessThanOrEqual(DEAD_LETTER_KEY_BYTES);
    expect(key.startsWith(sent.key!)).toBe(true);
    expect(sent.reason).toMatch(/^malformed JSON: Unexpected end; key holds the first \d+ of 600000 bytes/);
    // The original was small: it survives whole.
    expect(sent.original_base64).toBe(big.original_base64);
  });

  it('cuts a reason longer than the cap', () => {
    const fitted = fitDeadLetter({ ...letter(1, 10), reason: 'x'.repeat(50_000) });
    const sent = DeadLetterSchema.parse(JSON.parse(fitted.value));
    expect(sent.reason.length).toBeLessThan(DEAD_LETTER_REASON_CHARS + 100);
    expect(sent.reason).toMatch(/reason cut from 50000 characters/);
  });

  it('never splits a UTF-8 character when cutting', () => {
    expect(utf8Prefix('aé😀b', 3)).toBe('aé');
    expect(utf8Prefix('aé😀b', 6)).toBe('aé');
    expect(utf8Prefix('aé😀b', 7)).toBe('aé😀');
  });
});

describe('DeadLetterPublisher', () => {
  it('halves its budget and re-fits when the broker refuses a request as too large', async () => {
    const sent: { key: string | null; value: string }[][] = [];
    const tooLarge = Object.assign(
      new Error('The request included a message larger than the max message size'),
      {
        name: 'KafkaJSProtocolError',
        type: 'MESSAGE_TOO_LARGE',
      },
    );
    const producer = {
      send: jest.fn(async ({ messages }: { messages: { key: string | null; value: string }[] }) => {
        if (size(messages) > 100_000) throw tooLarge; // a broker with a 100 kB limit
        sent.push(messages);
        return [];
      }),
    };
    const publisher = new DeadLetterPublisher(producer as never, 'dlq', 400_000);
    await publisher.send([letter(1, 250_000), letter(2, 10)]);
    expect(publisher.budget).toBeLessThanOrEqual(100_000);
    expect(sent.flat()).toHaveLength(2);
    for (const batch of sent) expect(size(batch)).toBeLessThanOrEqual(100_000);
  });

  it('builds the dead letter of a consumed message with its kind and consumer', () => {
    const record = deadLetterOf(
      { topic: 't', partition: 2, offset: '9', key: Buffer.from('k'), value: Buffer.from([0xff, 0x00]) },
      'malformed UTF-8',
      'malformed',
      'ingest',
      5,
    );
    expect(DeadLetterSchema.parse(record)).toEqual({
      source_topic: 't',
      partition: 2,
      offset: '9',
      reason: 'malformed UTF-8',
      original_base64: Buffer.from([0xff, 0x00]).toString('base64'),
      key: 'k',
      ts: 5,
      reason_kind: 'malformed',
      consumer: 'ingest',
    });
  });
});
