import { unsafeUniformIntDistribution, xoroshiro128plus, type RandomGenerator } from 'pure-rand';
import { InteractionEventSchema } from './events';
import { acceptInteractionFast } from './fast-parse';
import { DEFAULT_LIMITS, ContractLimits } from './limits';
import { parseInteraction, parseInteractionWithSchema } from './parse';

/*
 * Property test: on many random messages, valid and subtly invalid, the hand-written fast path
 * makes exactly the zod schema's decision, and `parseInteraction` (fast path + zod fallback)
 * returns exactly what the zod-only path returns — the same value or the same reason text.
 */

const NOW = Date.UTC(2026, 0, 1);
const int = (rng: RandomGenerator, min: number, max: number) => unsafeUniformIntDistribution(min, max, rng);
const chance = (rng: RandomGenerator, percent: number) => int(rng, 1, 100) <= percent;
const pick = <T>(rng: RandomGenerator, xs: readonly T[]): T => xs[int(rng, 0, xs.length - 1)]!;

const PRINTABLE = Array.from({ length: 0x7e - 0x21 + 1 }, (_, i) => String.fromCharCode(0x21 + i));
const NOT_PRINTABLE = [' ', '\x7f', '\x00', '\n', '\t', 'é', '😀', '\u2028'];
const SLUG_FIRST = [...'abcdefghijklmnopqrstuvwxyz0123456789'];
const SLUG_REST = [...SLUG_FIRST, '_', '-'];
const NOT_SLUG = ['A', 'Z', '.', ' ', 'é', '/', '\n'];

function randomId(rng: RandomGenerator): string {
  const length = chance(rng, 85) ? int(rng, 1, 40) : pick(rng, [0, 1, 255, 256, 257, 300]);
  let s = '';
  for (let i = 0; i < length; i++) s += pick(rng, PRINTABLE);
  if (length > 0 && chance(rng, 8)) {
    const at = int(rng, 0, length - 1);
    s = s.slice(0, at) + pick(rng, NOT_PRINTABLE) + s.slice(at + 1);
  }
  return s;
}

function randomDomain(rng: RandomGenerator): string {
  const length = chance(rng, 85) ? int(rng, 1, 12) : pick(rng, [0, 63, 64, 65]);
  let s = '';
  for (let i = 0; i < length; i++) s += i === 0 ? pick(rng, SLUG_FIRST) : pick(rng, SLUG_REST);
  if (length > 0 && chance(rng, 10)) {
    const at = int(rng, 0, length - 1);
    s = s.slice(0, at) + pick(rng, at === 0 ? [...NOT_SLUG, '_', '-'] : NOT_SLUG) + s.slice(at + 1);
  }
  return s;
}

/** Raw JSON text for a number-ish field, including texts JSON.stringify cannot produce. */
function randomEpochText(rng: RandomGenerator): string {
  if (chance(rng, 80)) return String(int(rng, 0, 2_000_000_000) * 1000 + int(rng, 0, 999));
  return pick(rng, [
    '0',
    '-0',
    '-1',
    '1.5',
    '1e3',
    '1.0',
    '8640000000000000',
    '8640000000000001',
    '9007199254740991',
    '9007199254740992',
    '1e400',
    '-1e400',
    String(NOW + 2 * 24 * 3600 * 1000), // too far in the future (limits, not schema)
    '"1700000000000"',
    'null',
    'true',
    '{}',
    '[]',
  ]);
}

function randomString(rng: RandomGenerator, maxLength: number): string {
  const length = int(rng, 0, maxLength);
  let s = '';
  for (let i = 0; i < length; i++) s += chance(rng, 90) ? pick(rng, PRINTABLE) : pick(rng, NOT_PRINTABLE);
  return s;
}

/** One random message as JSON text: usually a valid event, often with one or more defects. */
function randomMessage(rng: RandomGenerator): string {
  if (chance(rng, 3)) return pick(rng, ['[]', 'null', '42', '"event"', '{}', 'true', '[{"event_id":"e"}]']);
  const fields: [string, string][] = [
    ['event_id', JSON.stringify(randomId(rng))],
    ['user_id', JSON.stringify(randomId(rng))],
    ['item_id', JSON.stringify(randomId(rng))],
    ['domain', JSON.stringify(randomDomain(rng))],
    ['ts', randomEpochText(rng)],
  ];
  if (chance(rng, 30)) fields.push(['schema_version', pick(rng, ['1', '1', '1.0', '2', '0', '"1"', 'null'])]);
  if (chance(rng, 40)) {
    const platform = chance(rng, 85)
      ? randomString(rng, 10)
      : pick(rng, ['', 'p'.repeat(64), 'p'.repeat(65)]);
    fields.push(['platform', chance(rng, 95) ? JSON.stringify(platform) : pick(rng, ['3', 'null', '[]'])]);
  }
  if (chance(rng, 50)) {
    const title = chance(rng, 90) ? randomString(rng, 60) : 't'.repeat(pick(rng, [1999, 2000, 2001]));
    fields.push(['title', chance(rng, 95) ? JSON.stringify(title) : pick(rng, ['7', 'null', '{}'])]);
  }
  if (chance(rng, 40)) {
    fields.push([
      'seq',
      chance(rng, 80)
        ? String(int(rng, 0, 100_000))
        : pick(rng, ['-1', '1.5', '-0', '9007199254740991', '9007199254740992', '"3"', 'null', '1e400']),
    ]);
  }
  // Wrong types for required fields.
  if (chance(rng, 5)) fields[int(rng, 0, 3)]![1] = pick(rng, ['17', 'null', 'true', '[]', '{}']);
  if (chance(rng, 5)) fields.splice(int(rng, 0, fields.length - 1), 1); // a missing field
  if (chance(rng, 5)) {
    const extra = pick(rng, ['colour', '__proto__', 'constructor', 'toString', 'EVENT_ID', 'ts ']);
    fields.push([extra, pick(rng, ['"red"', '1', 'null', '{}'])]);
  }
  if (chance(rng, 3)) fields.push([fields[0]![0], JSON.stringify(randomId(rng))]); // a duplicate key
  // Shuffle the key order.
  for (let i = fields.length - 1; i > 0; i--) {
    const j = int(rng, 0, i);
    [fields[i], fields[j]] = [fields[j]!, fields[i]!];
  }
  return `{${fields.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(',')}}`;
}

function limitsFor(rng: RandomGenerator): ContractLimits {
  return {
    ...DEFAULT_LIMITS,
    now: () => NOW,
    domainAllowList: chance(rng, 10) ? ['a', 'b', 'games', 'x1'] : [],
  };
}

describe('acceptInteractionFast', () => {
  const MESSAGES = 20_000;

  it(`makes exactly the zod schema's accept/reject decision on ${MESSAGES} random decoded messages`, () => {
    const rng = xoroshiro128plus(20260101);
    let accepted = 0;
    let rejected = 0;
    const disagreements: string[] = [];
    for (let n = 0; n < MESSAGES; n++) {
      const text = randomMessage(rng);
      const decoded: unknown = JSON.parse(text);
      const schema = InteractionEventSchema.safeParse(decoded);
      const fast = acceptInteractionFast(decoded);
      if (schema.success !== (fast !== null)) disagreements.push(text);
      else if (schema.success) {
        accepted++;
        expect(fast).toEqual(schema.data);
      } else rejected++;
    }
    expect(disagreements.slice(0, 5)).toEqual([]);
    // The generator must exercise both sides substantially for the agreement to mean anything.
    expect(accepted).toBeGreaterThan(MESSAGES * 0.2);
    expect(rejected).toBeGreaterThan(MESSAGES * 0.2);
  });

  it('returns the same result as the zod-only path, reason text included, on random raw messages', () => {
    const rng = xoroshiro128plus(7);
    let rejectedWithReason = 0;
    for (let n = 0; n < MESSAGES; n++) {
      const text = chance(rng, 2) ? randomMessage(rng).slice(0, -1) : randomMessage(rng); // some malformed
      const limits = limitsFor(rng);
      const raw = Buffer.from(text);
      const reference = parseInteractionWithSchema(raw, limits);
      const result = parseInteraction(raw, limits);
      if (JSON.stringify(result) !== JSON.stringify(reference) || result.ok !== reference.ok) {
        expect({ text, result }).toEqual({ text, result: reference });
      }
      if (!reference.ok) rejectedWithReason++;
    }
    expect(rejectedWithReason).toBeGreaterThan(MESSAGES * 0.2);
  });

  it('accepts the common event shapes and rejects values that are not plain events', () => {
    const event = { event_id: 'ev-1', user_id: 'u1', item_id: 'i1', domain: 'video_games', ts: 1 };
    expect(acceptInteractionFast(event)).toBe(event);
    expect(
      acceptInteractionFast({ ...event, seq: 3, platform: 'web', title: '', schema_version: 1 }),
    ).not.toBeNull();
    expect(acceptInteractionFast({ ...event, title: undefined })).toBeNull(); // left to zod
    expect(acceptInteractionFast([event])).toBeNull();
    expect(acceptInteractionFast(null)).toBeNull();
    expect(acceptInteractionFast({ ...event, domain: '-games' })).toBeNull();
    expect(acceptInteractionFast({ ...event, ts: 2 ** 53 })).toBeNull();
  });
});
