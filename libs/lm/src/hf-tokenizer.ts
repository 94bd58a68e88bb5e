import { readFileSync } from 'node:fs';
import { scoreRankedMerge, Tokenizer } from './tokenizer';

/**
 * Hugging Face `tokenizer.json` BPE tokenizer, in the two flavours LLaMA-family models use:
 * - `byte-level` (GPT-2/SmolLM): regex pre-split, bytes mapped to printable chars, BPE by merge rank;
 * - `sentencepiece` (LLaMA/TinyLlama): spaces → '▁', a '▁' prefix, BPE over code points by merge
 *   rank, unknown characters → `<0xHH>` byte-fallback tokens.
 * Hand-written because the `tokenizers` npm package is a native binding; merging reuses the tested
 * score-ranked merge (score = −rank).
 */
export interface HfTokenizerJson {
  model: {
    type?: string;
    vocab: Record<string, number>;
    merges: (string | [string, string])[];
    byte_fallback?: boolean;
    unk_token?: string | null;
  };
  added_tokens?: { id: number; content: string; special?: boolean }[];
  normalizer?: unknown;
  pre_tokenizer?: unknown;
  decoder?: unknown;
}

type Flavour = 'byte-level' | 'sentencepiece';

/** GPT-2's reversible byte → printable-unicode table. */
function bytesToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const table: string[] = new Array<string>(256);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (bs.includes(b)) table[b] = String.fromCharCode(b);
    else table[b] = String.fromCharCode(256 + n++);
  }
  return table;
}

const GPT2_SPLIT = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;
const BYTE_TOKEN = /^<0x([0-9A-Fa-f]{2})>$/;

function mentions(node: unknown, type: string): boolean {
  return JSON.stringify(node ?? null).includes(`"type":"${type}"`);
}

export class HfBpeTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly flavour: Flavour;
  private readonly vocab: Map<string, number>;
  private readonly pieces: string[];
  private readonly ranks = new Map<string, number>();
  private readonly special = new Map<string, number>();
  private readonly specialIds = new Set<number>();
  private readonly byteEncoder = bytesToUnicode();
  private readonly byteDecoder = new Map<string, number>();
  private readonly unkId: number;
  private readonly prefixSpace: boolean;

  constructor(json: HfTokenizerJson, opts: { bos?: string; eos?: string } = {}) {
    if (json.model.type && json.model.type !== 'BPE')
      throw new Error(`tokenizer.json model type ${json.model.type} is not BPE`);
    this.vocab = new Map(Object.entries(json.model.vocab));
    for (const t of json.added_tokens ?? []) this.vocab.set(t.content, t.id);
    this.vocabSize = Math.max(...this.vocab.values()) + 1;
    this.pieces = new Array<string>(this.vocabSize).fill('');
    for (const [p, id] of this.vocab) this.pieces[id] = p;
    json.model.merges.forEach((m, rank) => {
      const [a, b] = Array.isArray(m) ? m : (m.split(' ') as [string, string]);
      this.ranks.set(`${a} ${b}`, rank);
    });
    for (const t of json.added_tokens ?? []) {
      this.special.set(t.content, t.id);
      if (t.special !== false) this.specialIds.add(t.id);
    }
    this.byteEncoder.forEach((ch, b) => this.byteDecoder.set(ch, b));
    this.flavour = mentions(json.pre_tokenizer, 'ByteLevel') ? 'byte-level' : 'sentencepiece';
    this.prefixSpace =
      this.flavour === 'sentencepiece' &&
      (mentions(json.normalizer, 'Prepend') || mentions(json.pre_tokenizer, 'Metaspace'));
    const find = (names: string[]): number => {
      for (const n of names) {
        const id = this.vocab.get(n);
        if (id !== undefined) return id;
      }
      return -1;
    };
    this.bosId = find(opts.bos ? [opts.bos] : ['<s>', '<|begin_of_text|>', '<|endoftext|>', '<|im_start|>']);
    this.eosId = find(opts.eos ? [opts.eos] : ['</s>', '<|end_of_text|>', '<|endoftext|>', '<|im_end|>']);
    this.unkId = json.model.unk_token ? (this.vocab.get(json.model.unk_token) ?? -1) : -1;
  }

  static fromFile(path: string, opts: { bos?: string; eos?: string } = {}): HfBpeTokenizer {
    return new HfBpeTokenizer(JSON.parse(readFileSync(path, 'utf8')) as HfTokenizerJson, opts);
  }

  private bpe(symbols: string[]): number[] {
    const ids: number[] = [];
    const keys: string[] = [];
    for (const s of symbols) {
      const id = this.vocab.get(s);
      if (id !== undefined) {
        ids.push(id);
        keys.push(s);
        continue;
      }
      // Unknown symbol: sentencepiece byte fallback, else <unk>.
      const bytes = new TextEncoder().encode(s);
      const fallback = Array.from(bytes, (b) =>
        this.vocab.get(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`),
      );
      if (this.flavour === 'sentencepiece' && fallback.every((x) => x !== undefined)) {
        for (const id2 of fallback as number[]) {
          ids.push(id2);
          keys.push(`\u0000${id2}`); // never part of a merge
        }
      } else if (this.unkId >= 0) {
        ids.push(this.unkId);
        keys.push('\u0000unk');
      } else
        throw new Error(
          `cannot encode symbol ${JSON.stringify(s)}: not in vocabulary and no byte fallback/unk token`,
        );
    }
    return scoreRankedMerge(ids, keys, (a, b) => {
      const rank = this.ranks.get(`${a} ${b}`);
      if (rank === undefined) return undefined;
      const id = this.vocab.get(a + b);
      return id === undefined ? undefined : { id, score: -rank };
    });
  }

  private encodeText(text: string, first: boolean): number[] {
    if (text.length === 0) return [];
    if (this.flavour === 'byte-level') {
      const out: number[] = [];
      for (const m of text.match(GPT2_SPLIT) ?? []) {
        const mapped = Array.from(new TextEncoder().encode(m), (b) => this.byteEncoder[b]);
        out.push(...this.bpe(mapped));
      }
      return out;
    }
    const norm = (this.prefixSpace && first ? '▁' : '') + text.replace(/ /g, '▁');
    return this.bpe([...norm]);
  }

  encode(text: string, opts: { bos?: boolean; eos?: boolean } = {}): number[] {
    const out: number[] = [];
    if (opts.bos && this.bosId >= 0) out.push(this.bosId);
    // Split on added/special tokens first; they are matched literally.
    const specials = [...this.special.keys()].sort((a, b) => b.length - a.length);
    let rest = text;
    let first = true;
    while (rest.length > 0) {
      let at = -1;
      let which = '';
      for (const s of specials) {
        const i = rest.indexOf(s);
        if (i >= 0 && (at < 0 || i < at)) [at, which] = [i, s];
      }
      const chunk = at < 0 ? rest : rest.slice(0, at);
      out.push(...this.encodeText(chunk, first));
      if (chunk.length > 0) first = false;
      if (at < 0) break;
      out.push(this.special.get(which) as number);
      rest = rest.slice(at + which.length);
    }
    if (opts.eos && this.eosId >= 0) out.push(this.eosId);
    return out;
  }

  pieceBytes(prev: number, token: number): Uint8Array {
    const piece = this.pieces[token];
    if (piece === undefined) throw new Error(`token id ${token} out of range [0, ${this.vocabSize})`);
    if (this.flavour === 'byte-level') {
      if (this.special.has(piece)) return new TextEncoder().encode(piece);
      return Uint8Array.from([...piece], (ch) => this.byteDecoder.get(ch) ?? 0x3f);
    }
    const m = BYTE_TOKEN.exec(piece);
    if (m) return Uint8Array.of(parseInt(m[1], 16));
    let text = piece.replace(/▁/g, ' ');
    if (this.prefixSpace && (prev === this.bosId || prev < 0) && text.startsWith(' ')) text = text.slice(1);
    return new TextEncoder().encode(text);
  }

  decode(ids: readonly number[]): string {
    const parts: number[] = [];
    let prev = -1;
    for (const id of ids) {
      if (!this.specialIds.has(id)) parts.push(...this.pieceBytes(prev, id));
      prev = id;
    }
    return new TextDecoder().decode(Uint8Array.from(parts));
  }
}
