/**
 * Seeded generator of malformed, oversized and adversarial Kafka messages for the fault suite.
 * Each message is a mutation of a valid template of its topic, labelled with what the consumer
 * must do with it: `dead-letter` (with the rejection kinds it may carry), `accept` (stored,
 * handled, or — for a command, whose templates are all older than the consumers' lifetime —
 * skipped as stale), or `either` (a mutation whose outcome the contract leaves open, e.g. a
 * byte-order mark; it must still end up in exactly one of the two).
 */

/** mulberry32: a small, fast, seedable PRNG (same as libs/lm's, kept here to stay framework-free). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export type Expected = 'dead-letter' | 'accept' | 'either';

export interface FuzzMessage {
  /** Index within its topic's batch (the offset is the batch's base offset plus it). */
  index: number;
  mutation: string;
  expected: Expected;
  /** For `dead-letter`: the rejection kinds the dead letter may name. */
  kinds?: readonly string[];
  key: string;
  value: Buffer | null;
  /** The identity a stored message is found by (ingest topics only). */
  id?: string;
}

type Json = Record<string, unknown>;

export interface TopicTemplate {
  /** A valid message; `i` makes its identity unique. */
  make(i: number): Json;
  /** The field holding the identity a stored message is found by (ingest topics). */
  idField?: string;
  /** Required fields (wrong types and deletions are refused). */
  required: readonly string[];
  /** String fields to carry adversarial text. */
  strings: readonly string[];
  /** The epoch-ms field. */
  tsField: string;
  /** A string field that may grow (oversized messages). */
  padField: string;
}

const WRONG_TYPES: readonly unknown[] = [42, -1.5, true, null, [], {}, ['x'], { nested: 'x' }, 'text'];
const jsonType = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);

/** Nested arrays `depth` deep, as JSON text (built iteratively, never recursively). */
const deepJson = (depth: number): string => '['.repeat(depth) + ']'.repeat(depth);

const pick = <T>(rand: () => number, xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;

function randomBytes(rand: () => number, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(rand() * 256);
  return b;
}

/** One mutation: its name, the message it makes and what the consumer must do with it. */
type Mutation = (
  t: TopicTemplate,
  base: Json,
  rand: () => number,
) => { value: Buffer | null; expected: Expected; kinds?: readonly string[]; key?: string };

const json = (v: unknown) => Buffer.from(JSON.stringify(v), 'utf8');

export const MUTATIONS: Record<string, Mutation> = {
  clean: (_t, base) => ({ value: json(base), expected: 'accept' }),
  'random-bytes': (_t, _b, rand) => ({
    // A leading 0xff is never UTF-8 (and never JSON): whatever follows, it is refused.
    value: Buffer.concat([Buffer.from([0xff]), randomBytes(rand, 1 + Math.floor(rand() * 300))]),
    expected: 'dead-letter',
    kinds: ['malformed'],
  }),
  empty: () => ({ value: Buffer.alloc(0), expected: 'dead-letter', kinds: ['empty', 'malformed'] }),
  tombstone: () => ({ value: null, expected: 'dead-letter', kinds: ['empty'] }),
  truncated: (_t, base, rand) => {
    const text = JSON.stringify(base);
    return {
      value: Buffer.from(text.slice(0, 1 + Math.floor(rand() * (text.length - 2))), 'utf8'),
      expected: 'dead-letter',
      kinds: ['malformed'],
    };
  },
  'bad-utf8': (t, base) => {
    const text = JSON.stringify({ ...base, [t.strings[0]!]: '@@' });
    const at = text.indexOf('@@');
    const bytes = Buffer.from(text, 'utf8');
    // An overlong encoding of '/' (0xc0 0xaf) inside a string: never valid UTF-8.
    bytes[at] = 0xc0;
    bytes[at + 1] = 0xaf;
    return { value: bytes, expected: 'dead-letter', kinds: ['malformed'] };
  },
  'not-an-object': (_t, _b, rand) => ({
    value: json(pick(rand, [1, 'a string', [1, 2], null, true, 1e308])),
    expected: 'dead-letter',
    kinds: ['invalid'],
  }),
  'wrong-type': (t, base, rand) => {
    const field = pick(rand, t.required);
    const wrong = WRONG_TYPES.filter((v) => jsonType(v) !== jsonType(base[field]));
    return {
      value: json({ ...base, [field]: pick(rand, wrong) }),
      expected: 'dead-letter',
      kinds: ['invalid'],
    };
  },
  'missing-field': (t, base, rand) => {
    const copy = { ...base };
    delete copy[pick(rand, t.required)];
    return { value: json(copy), expected: 'dead-letter', kinds: ['invalid'] };
  },
  'extra-field': (_t, base, rand) => ({
    value: json({ ...base, [`x${Math.floor(rand() * 1e6)}`]: 'unexpected' }),
    expected: 'dead-letter',
    kinds: ['invalid'],
  }),
  'lone-surrogate': (t, base, rand) => ({
    // JSON.stringify writes a lone surrogate as its \uXXXX escape: valid JSON, unstorable text.
    value: json({ ...base, [pick(rand, t.strings)]: `a${pick(rand, ['\ud800', '\udfff', '\udbff'])}b` }),
    expected: 'dead-letter',
    kinds: ['unstorable', 'invalid'],
  }),
  'beyond-2106': (t, base, rand) => ({
    value: json({ ...base, [t.tsField]: 4_294_967_296_000 + Math.floor(rand() * 1e12) }),
    expected: 'dead-letter',
    kinds: ['invalid', 'unstorable', 'policy'],
  }),
  'infinite-number': (t, base) => ({
    // 1e400 parses to Infinity.
    value: Buffer.from(JSON.stringify(base).replace(/}$/, `,"${t.tsField}":1e400}`), 'utf8'),
    expected: 'dead-letter',
    kinds: ['invalid'],
  }),
  oversized: (t, base, rand) => ({
    // Over every consumer's 64 KiB message limit, under the broker's 1 MiB.
    value: json({ ...base, [t.padField]: 'z'.repeat(70_000 + Math.floor(rand() * 300_000)) }),
    expected: 'dead-letter',
    kinds: ['too_large'],
  }),
  'deep-nesting': (t, base, rand) => ({
    value: Buffer.from(
      JSON.stringify(base).replace(/}$/, `,"${pick(rand, t.strings)}":${deepJson(20_000)}}`),
      'utf8',
    ),
    expected: 'dead-letter',
    kinds: ['invalid', 'malformed'],
  }),
  'proto-key': (_t, base) => ({
    // JSON.parse makes __proto__ an own key: an unknown field to a strict schema, never a prototype.
    value: Buffer.from(JSON.stringify(base).replace(/^{/, '{"__proto__":{"polluted":true},'), 'utf8'),
    expected: 'either',
  }),
  'byte-order-mark': (_t, base) => ({
    value: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), json(base)]),
    expected: 'either',
  }),
  'duplicate-key': (t, base) => ({
    // The first of two equal keys is ignored by JSON.parse: the message is its template.
    value: Buffer.from(JSON.stringify(base).replace(/^{/, `{"${t.tsField}":"ignored",`), 'utf8'),
    expected: 'accept',
  }),
  'huge-key': (_t, base, rand) => ({
    value: json(base),
    expected: 'accept',
    key: 'k'.repeat(10_000 + Math.floor(rand() * 20_000)),
  }),
  'control-chars': (t, base, rand) => ({
    value: json({ ...base, [pick(rand, t.strings)]: 'a\u0000b\u0007c\u001bd' }),
    expected: 'either',
  }),
};

/**
 * `count` messages for one topic, seeded: each a mutation of the topic's template (the clean
 * template among them, so valid input is interleaved with the bad).
 */
export function fuzzMessages(template: TopicTemplate, seed: number, count: number): FuzzMessage[] {
  const rand = prng(seed);
  const names = Object.keys(MUTATIONS);
  return Array.from({ length: count }, (_, index) => {
    // Every mutation at least once, then random ones.
    const mutation = index < names.length ? names[index]! : pick(rand, names);
    const base = template.make(index);
    const made = MUTATIONS[mutation]!(template, base, rand);
    const id = template.idField ? String(base[template.idField]) : undefined;
    return {
      index,
      mutation,
      expected: made.expected,
      ...(made.kinds ? { kinds: made.kinds } : {}),
      key: made.key ?? `fuzz-${index}`,
      value: made.value,
      ...(id === undefined ? {} : { id }),
    };
  });
}
