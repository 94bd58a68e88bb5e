import { readFileSync } from 'node:fs';

/** What the model code needs from any tokenizer (llama2.c `tokenizer.bin` or HF `tokenizer.json`). */
export interface Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  /**
   * Whether the model expects BOS before a text (GGUF `tokenizer.ggml.add_bos_token`); undefined
   * when the format does not say (llama2.c models are always trained with BOS first).
   */
  readonly addBos?: boolean;
  /** Encodes UTF-8 text; `bos`/`eos` add the special ids at the ends. */
  encode(text: string, opts?: { bos?: boolean; eos?: boolean }): number[];
  /** Decodes ids to text. Bytes from byte-fallback tokens are re-assembled before UTF-8 decoding. */
  decode(ids: readonly number[]): string;
  /** Raw bytes of `token` when it follows `prev` (run.c `decode`: strips the space after BOS). */
  pieceBytes(prev: number, token: number): Uint8Array;
}

/** Binary-safe string with one char per byte (latin1), used as a Map key for byte pieces. */
function bytesKey(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i++) s += String.fromCharCode(b[i]);
  return s;
}

const BYTE_PIECE = /^<0x([0-9A-Fa-f]{2})>$/;

interface MergeCandidate {
  score: number;
  left: number;
  right: number;
  leftVersion: number;
  rightVersion: number;
}

/**
 * Min-heap of candidate merges ordered by (score desc, left position asc). run.c rescans the whole
 * sequence after every merge (quadratic); this heap with lazy invalidation performs the *same*
 * merges in the same order in O(n log n), which matters for long CPT documents.
 */
class MergeHeap {
  private readonly items: MergeCandidate[] = [];
  get size(): number {
    return this.items.length;
  }
  private less(a: { score: number; left: number }, b: { score: number; left: number }): boolean {
    return a.score > b.score || (a.score === b.score && a.left < b.left);
  }
  push(item: MergeCandidate): void {
    const h = this.items;
    h.push(item);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(h[i], h[p])) break;
      [h[i], h[p]] = [h[p], h[i]];
      i = p;
    }
  }
  pop(): MergeCandidate | undefined {
    const h = this.items;
    if (h.length === 0) return undefined;
    const top = h[0];
    const last = h.pop() as MergeCandidate;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.less(h[l], h[m])) m = l;
        if (r < h.length && this.less(h[r], h[m])) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
    return top;
  }
}

/**
 * Score-ranked BPE over a doubly linked list of pieces: repeatedly merge the adjacent pair whose
 * concatenation is in the vocabulary with the highest score (leftmost on ties), as run.c `encode`.
 * `keys` are the pieces' strings; `lookup(left, right)` says whether that pair merges, into which id, with which score.
 */
export function scoreRankedMerge(
  ids: number[],
  keys: string[],
  lookup: (left: string, right: string) => { id: number; score: number } | undefined,
): number[] {
  const n = ids.length;
  if (n < 2) return ids.slice();
  const next = new Int32Array(n);
  const prev = new Int32Array(n);
  const version = new Int32Array(n);
  const alive = new Uint8Array(n).fill(1);
  for (let i = 0; i < n; i++) {
    next[i] = i + 1 < n ? i + 1 : -1;
    prev[i] = i - 1;
  }
  const tok = ids.slice();
  const key = keys.slice();
  const heap = new MergeHeap();
  // A queued pair is stale once either node changed since it was queued (versions bump on change).
  const push = (left: number): void => {
    const right = next[left];
    if (right < 0) return;
    const hit = lookup(key[left], key[right]);
    if (hit)
      heap.push({ score: hit.score, left, right, leftVersion: version[left], rightVersion: version[right] });
  };
  for (let i = 0; i < n - 1; i++) push(i);
  while (heap.size > 0) {
    const top = heap.pop() as MergeCandidate;
    const { left, right } = top;
    if (
      !alive[left] ||
      !alive[right] ||
      next[left] !== right ||
      version[left] !== top.leftVersion ||
      version[right] !== top.rightVersion
    )
      continue;
    const merged = key[left] + key[right];
    const hit = lookup(key[left], key[right]);
    if (!hit) continue;
    tok[left] = hit.id;
    key[left] = merged;
    version[left]++;
    alive[right] = 0;
    next[left] = next[right];
    if (next[right] >= 0) prev[next[right]] = left;
    if (prev[left] >= 0) push(prev[left]);
    push(left);
  }
  const out: number[] = [];
  for (let i = 0; i >= 0; i = next[i]) out.push(tok[i]);
  return out;
}

/**
 * The llama2.c tokenizer (`tokenizer.bin`): SentencePiece BPE exported with scores, `▁` already
 * replaced by ' ', byte-fallback pieces `<0xHH>`. Encode/decode follow run.c exactly.
 */
export class Llama2cTokenizer implements Tokenizer {
  readonly bosId = 1;
  readonly eosId = 2;
  readonly vocabSize: number;
  private readonly lookupMap = new Map<string, { id: number; score: number }>();
  /** Per-id bytes already resolved for decoding (byte pieces become their single byte). */
  private readonly decodeBytes: Uint8Array[];

  constructor(
    readonly pieces: Uint8Array[],
    readonly scores: Float32Array,
    readonly maxTokenLength: number,
  ) {
    this.vocabSize = pieces.length;
    this.decodeBytes = pieces.map((p) => {
      const m = BYTE_PIECE.exec(bytesKey(p));
      return m ? Uint8Array.of(parseInt(m[1], 16)) : p;
    });
    for (let i = 0; i < pieces.length; i++) {
      const k = bytesKey(pieces[i]);
      if (!this.lookupMap.has(k)) this.lookupMap.set(k, { id: i, score: scores[i] });
    }
  }

  /** Reads `tokenizer.bin`; the vocabulary size is not stored in the file and comes from the model header. */
  static fromBuffer(buf: Uint8Array, vocabSize: number): Llama2cTokenizer {
    const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    let off = 0;
    const need = (n: number): void => {
      if (off + n > buf.byteLength)
        throw new Error(`tokenizer.bin truncated at byte ${off} (need ${n} more, vocab ${vocabSize})`);
    };
    need(4);
    const maxTokenLength = dv.getInt32(off, true);
    off += 4;
    const pieces: Uint8Array[] = [];
    const scores = new Float32Array(vocabSize);
    for (let i = 0; i < vocabSize; i++) {
      need(8);
      scores[i] = dv.getFloat32(off, true);
      const len = dv.getInt32(off + 4, true);
      off += 8;
      if (len < 0) throw new Error(`tokenizer.bin: negative piece length at token ${i}`);
      need(len);
      pieces.push(buf.slice(off, off + len));
      off += len;
    }
    return new Llama2cTokenizer(pieces, scores, maxTokenLength);
  }

  static fromFile(path: string, vocabSize: number): Llama2cTokenizer {
    return Llama2cTokenizer.fromBuffer(readFileSync(path), vocabSize);
  }

  encode(text: string, opts: { bos?: boolean; eos?: boolean } = {}): number[] {
    const out: number[] = [];
    if (opts.bos) out.push(this.bosId);
    const bytes = new TextEncoder().encode(text);
    const ids: number[] = [];
    const keys: string[] = [];
    if (bytes.length > 0) {
      const sp = this.lookupMap.get(' ');
      if (sp) {
        ids.push(sp.id);
        keys.push(' ');
      }
    }
    // Group bytes into UTF-8 code points (continuation bytes are 10xxxxxx), as run.c does.
    let i = 0;
    while (i < bytes.length) {
      let j = i + 1;
      while (j < bytes.length && (bytes[j] & 0xc0) === 0x80 && j - i < 4) j++;
      const k = bytesKey(bytes.subarray(i, j));
      const hit = this.lookupMap.get(k);
      if (hit) {
        ids.push(hit.id);
        keys.push(k);
      } else {
        for (let b = i; b < j; b++) {
          ids.push(bytes[b] + 3);
          keys.push(bytesKey(this.pieces[bytes[b] + 3]));
        }
      }
      i = j;
    }
    const merged = scoreRankedMerge(ids, keys, (a, b) => this.lookupMap.get(a + b));
    for (const id of merged) out.push(id);
    if (opts.eos) out.push(this.eosId);
    return out;
  }

  pieceBytes(prev: number, token: number): Uint8Array {
    const b = this.decodeBytes[token];
    if (b === undefined) throw new Error(`token id ${token} out of range [0, ${this.vocabSize})`);
    if (prev === this.bosId && b.length > 0 && b[0] === 0x20) return b.subarray(1);
    return b;
  }

  decode(ids: readonly number[]): string {
    const parts: Uint8Array[] = [];
    let total = 0;
    let prev = -1;
    for (const id of ids) {
      const b = id === this.bosId || id === this.eosId ? new Uint8Array(0) : this.pieceBytes(prev, id);
      parts.push(b);
      total += b.length;
      prev = id;
    }
    const all = new Uint8Array(total);
    let o = 0;
    for (const p of parts) {
      all.set(p, o);
      o += p.length;
    }
    return new TextDecoder().decode(all);
  }
}
