import { decode as decodeHtml } from 'he';
import { Llama2cTokenizer, scoreRankedMerge } from './tokenizer';
import { STORIES260K_MISSING, STORIES260K_TOKENIZER, stories260kAvailable } from './testing/stories260k';
import { mulberry32 } from './weights';

const enc = new TextEncoder();

/** A tokenizer.bin-style vocabulary built in the test: specials, 256 byte pieces, a few merges. */
function syntheticTokenizer(): Llama2cTokenizer {
  const pieces: Uint8Array[] = [enc.encode('<unk>'), enc.encode('\n<s>\n'), enc.encode('\n</s>\n')];
  for (let b = 0; b < 256; b++)
    pieces.push(enc.encode(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`));
  const merges = [' ', 'e', 'h', 't', 'th', ' th', 'he', ' the', 'é', 'll', 'o'];
  for (const m of merges) pieces.push(enc.encode(m));
  const scores = Float32Array.from(pieces, (_, i) => (i < 259 ? 0 : -(i - 259)));
  return new Llama2cTokenizer(pieces, scores, 8);
}

const samples = [
  'Once upon a time',
  '  leading spaces and trailing  ',
  'tabs\tand\nnewlines\r\n',
  'emoji 😀👍🏽 and flags 🇫🇷',
  'CJK 你好世界, Cyrillic привет, Arabic مرحبا',
  decodeHtml('Tom &amp; Jerry&#39;s &quot;Greatest&quot; Hits &mdash; Vol. 2 &eacute;dition'),
  'théâtre — naïve café',
];

function randomUnicode(seed: number, n: number): string {
  const r = mulberry32(seed);
  let s = '';
  for (let i = 0; i < n; i++) {
    const kind = r();
    if (kind < 0.5) s += String.fromCharCode(32 + Math.floor(r() * 95));
    else if (kind < 0.8) s += String.fromCodePoint(0xa0 + Math.floor(r() * 0x700));
    else if (kind < 0.9) s += String.fromCodePoint(0x4e00 + Math.floor(r() * 0x5000));
    else s += String.fromCodePoint(0x1f300 + Math.floor(r() * 0x300));
  }
  return s;
}

if (!stories260kAvailable()) console.warn(STORIES260K_MISSING);

describe('Llama2cTokenizer', () => {
  it('round-trips arbitrary UTF-8 (emoji, CJK, HTML-decoded titles) with a synthetic vocabulary', () => {
    const tok = syntheticTokenizer();
    for (const s of [...samples, randomUnicode(1, 200), randomUnicode(2, 50)]) {
      const ids = tok.encode(s, { bos: true });
      expect(ids[0]).toBe(1);
      expect(tok.decode(ids)).toBe(s);
    }
    expect(tok.encode('the', { bos: true })).toEqual([1, 259 + 7]); // ' the' after the dummy prefix
  });

  it('heap-based merging equals the quadratic run.c loop', () => {
    const tok = syntheticTokenizer();
    const byKey = new Map(
      tok.pieces.map((p, id) => [Buffer.from(p).toString('latin1'), { id, score: tok.scores[id] }]),
    );
    const lookup = (a: string, b: string): { id: number; score: number } | undefined => byKey.get(a + b);
    const quadratic = (ids: number[], keys: string[]): number[] => {
      ids = ids.slice();
      keys = keys.slice();
      for (;;) {
        let best = -Infinity;
        let at = -1;
        let bestId = -1;
        for (let i = 0; i + 1 < ids.length; i++) {
          const hit = lookup(keys[i], keys[i + 1]);
          if (hit && hit.score > best) [best, at, bestId] = [hit.score, i, hit.id];
        }
        if (at < 0) return ids;
        ids.splice(at, 2, bestId);
        keys.splice(at, 2, keys[at] + keys[at + 1]);
      }
    };
    const r = mulberry32(9);
    for (let trial = 0; trial < 30; trial++) {
      const alphabet = [' ', 't', 'h', 'e', 'l', 'o'];
      const text = Array.from(
        { length: 5 + Math.floor(r() * 40) },
        () => alphabet[Math.floor(r() * alphabet.length)],
      ).join('');
      const keys = [...text];
      const ids = keys.map((k) => lookup('', k)?.id ?? 3 + k.charCodeAt(0));
      expect(scoreRankedMerge(ids, keys, lookup)).toEqual(quadratic(ids, keys));
    }
  });

  (stories260kAvailable() ? it : it.skip)('round-trips arbitrary UTF-8 with tok512.bin', () => {
    const tok = Llama2cTokenizer.fromFile(STORIES260K_TOKENIZER, 512);
    for (const s of [...samples, randomUnicode(3, 300)])
      expect(tok.decode(tok.encode(s, { bos: true }))).toBe(s);
    expect(tok.encode('', { bos: true, eos: true })).toEqual([1, 2]);
  });
});
