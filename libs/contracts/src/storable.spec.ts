import { DEFAULT_LIMITS } from './limits';
import { commandAgeProblem } from './commands';
import { AdapterEventSchema } from './control';
import { decodeJson, parseInteraction, parseItem, parseWith } from './parse';
import { findUnstorableText, isWellFormedText, MAX_STORABLE_EPOCH_MS } from './storable';
import { topicsFor, TOPICS, validateTopicPrefix } from './topics';

const NOW = Date.UTC(2026, 0, 1);
const limits = { ...DEFAULT_LIMITS, now: () => NOW };
const event = { event_id: 'e', user_id: 'u', item_id: 'i', domain: 'games', ts: NOW - 1 };

describe('storable text', () => {
  it('tells unpaired surrogates from pairs', () => {
    expect(isWellFormedText('a😀b')).toBe(true);
    expect(isWellFormedText('\ud800')).toBe(false);
    expect(isWellFormedText('x\udc00')).toBe(false);
    expect(isWellFormedText('\ud83d\ude00\ud83d')).toBe(false);
  });

  it('finds an unpaired surrogate in any string of a message, keys included, and names where', () => {
    expect(findUnstorableText({ a: [1, { b: 'ok' }] })).toBeNull();
    expect(findUnstorableText({ a: [1, { b: 'x\ud800' }] })).toMatch(
      /^a\.1\.b: contains an unpaired UTF-16 surrogate \(\\ud800\) at index 1/,
    );
    expect(findUnstorableText({ attributes: { ['k\udfff']: 1 } })).toMatch(/^attributes \(a key\): /);
    // Deep nesting is walked without recursion.
    let deep: unknown = '\ud800';
    for (let i = 0; i < 100_000; i++) deep = [deep];
    expect(findUnstorableText(deep)).toMatch(/unpaired/);
  });

  it('rejects an interaction whose title is a lone surrogate (valid JSON) as unstorable', () => {
    const raw = JSON.stringify({ ...event, title: '\ud800' });
    expect(raw).toContain('\\ud800');
    expect(parseInteraction(Buffer.from(raw), limits)).toEqual({
      ok: false,
      kind: 'unstorable',
      reason: expect.stringMatching(/^title: contains an unpaired UTF-16 surrogate/),
    });
  });

  it('rejects surrogates in item attributes, and bytes that are not UTF-8', () => {
    const item = { item_id: 'i', domain: 'games', title: 't', attributes: { colour: 'red\udc00' } };
    expect(parseItem(JSON.stringify(item), limits)).toMatchObject({ ok: false, kind: 'unstorable' });
    const notUtf8 = Buffer.concat([
      Buffer.from('{"event_id":"'),
      Buffer.from([0xc3, 0x28]),
      Buffer.from('"}'),
    ]);
    expect(decodeJson(notUtf8, limits)).toMatchObject({ ok: false, kind: 'malformed' });
  });

  it('rejects dates a ClickHouse DateTime cannot hold, in events and control messages', () => {
    const far = { ...event, ts: MAX_STORABLE_EPOCH_MS + 1 };
    const result = parseInteraction(Buffer.from(JSON.stringify(far)), { ...limits, maxFutureSkewMs: 1e16 });
    expect(result).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/^ts: is beyond the storable date range/),
    });
    const rejected = { kind: 'rejected', adapter_id: 'a', reasons: [], ts: MAX_STORABLE_EPOCH_MS + 1 };
    expect(parseWith(AdapterEventSchema, rejected).ok).toBe(false);
    expect(parseWith(AdapterEventSchema, { ...rejected, ts: MAX_STORABLE_EPOCH_MS }).ok).toBe(true);
  });

  it('gives each refusal a kind from the closed set', () => {
    expect(decodeJson(null, limits)).toMatchObject({ kind: 'empty' });
    expect(decodeJson('x'.repeat(limits.maxMessageBytes + 1), limits)).toMatchObject({ kind: 'too_large' });
    expect(decodeJson('{', limits)).toMatchObject({ kind: 'malformed' });
    const policy = parseInteraction(JSON.stringify({ ...event, ts: NOW + 2 * 86_400_000 }), limits);
    expect(policy).toMatchObject({ kind: 'policy' });
  });
});

describe('command lifetime', () => {
  it('drops commands older than their lifetime, and those dated further ahead than it', () => {
    expect(commandAgeProblem(NOW - 1_000, NOW, 60_000)).toBeNull();
    expect(commandAgeProblem(NOW - 61_000, NOW, 60_000)).toMatch(
      /^is 61 s old, older than its lifetime of 60 s/,
    );
    expect(commandAgeProblem(NOW + 61_000, NOW, 60_000)).toMatch(/in the future/);
  });
});

describe('topic names', () => {
  it('are the base names without a prefix and carry the prefix otherwise', () => {
    expect(topicsFor('')).toBe(TOPICS);
    expect(topicsFor('t.run1.ingest.').interactions).toBe('t.run1.ingest.cprec.interactions.v1');
    expect(() => validateTopicPrefix('bad prefix')).toThrow(/CPREC_TOPIC_PREFIX/);
  });
});
