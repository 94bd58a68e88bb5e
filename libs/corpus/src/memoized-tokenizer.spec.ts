import { memoizeTokenizer } from './memoized-tokenizer';
import type { Tokenizer } from './encode';

class CountingTokenizer implements Tokenizer {
  readonly bosId = 1;
  readonly eosId = 2;
  readonly placeholderId = 3;
  calls = 0;
  encode(text: string, opts?: { bos?: boolean; eos?: boolean }): number[] {
    this.calls++;
    const ids = [...text].map((c) => c.charCodeAt(0));
    return [...(opts?.bos ? [this.bosId] : []), ...ids, ...(opts?.eos ? [this.eosId] : [])];
  }
  decode(ids: number[]): string {
    return String.fromCharCode(...ids.filter((i) => i > 3));
  }
}

describe('memoizeTokenizer', () => {
  it('returns what the tokenizer returns, encoding each distinct input once', () => {
    const inner = new CountingTokenizer();
    const tok = memoizeTokenizer(inner);
    expect(tok.encode('cat')).toEqual([99, 97, 116]);
    expect(tok.encode('cat')).toEqual([99, 97, 116]);
    expect(tok.encode('cat', { bos: true })).toEqual([1, 99, 97, 116]);
    expect(tok.encode('cat', { eos: true })).toEqual([99, 97, 116, 2]);
    expect(inner.calls).toBe(3);
  });

  it('hands out copies, so a caller changing its array cannot change later results', () => {
    const tok = memoizeTokenizer(new CountingTokenizer());
    const first = tok.encode('dog');
    first.push(0);
    first[0] = 5;
    expect(tok.encode('dog')).toEqual([100, 111, 103]);
  });

  it('keeps every other member of the tokenizer, bound to it', () => {
    const tok = memoizeTokenizer(new CountingTokenizer());
    expect(tok.placeholderId).toBe(3);
    expect(tok.eosId).toBe(2);
    expect(tok.decode([104, 105])).toBe('hi');
  });

  it('evicts the least recently used input beyond its capacity', () => {
    const inner = new CountingTokenizer();
    const tok = memoizeTokenizer(inner, 2);
    tok.encode('a');
    tok.encode('b');
    tok.encode('a'); // a is now the most recent
    tok.encode('c'); // evicts b
    expect(inner.calls).toBe(3);
    tok.encode('a');
    expect(inner.calls).toBe(3);
    tok.encode('b');
    expect(inner.calls).toBe(4);
    expect(() => memoizeTokenizer(inner, 0)).toThrow(/capacity/);
  });
});
