import { readFileSync } from 'node:fs';
import {
  ByteLevelBpeTokenizer,
  GPT2_PATTERN,
  PreTokenizer,
  regexPreTokenizer,
  regexThenDigits,
} from './byte-level-bpe';
import { scoreRankedMerge, Tokenizer } from './tokenizer';

/**
 * Hugging Face `tokenizer.json` BPE tokenizer, in the two flavours LLaMA-family models use:
 * - `byte-level` (GPT-2/SmolLM): delegated to ByteLevelBpeTokenizer with the pre-tokenizer the
 *   file's `pre_tokenizer` describes (GPT-2's regex, optionally with individual digits);
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

const BYTE_TOKEN = /^<0x([0-9A-Fa-f]{2})>$/;

function mentions(node: unknown, type: string): boolean {
  return JSON.stringify(node ?? null).includes(`"type":"${type}"`);
}

interface PreTokenizerNode {
  type?: string;
  pretokenizers?: PreTokenizerNode[];
  use_regex?: boolean;
  individual_digits?: boolean;
}

/**
 * The byte-level split a tokenizer.json's `pre_tokenizer` describes. Only the shapes verified
 * against a reference are accepted: ByteLevel with its GPT-2 regex, optionally after
 * Digits(individual_digits) (SmolLM, StarCoder). Anything else (custom Split regexes, …) is an
 * error rather than a silently different split.
 */
function byteLevelPreTokenizer(node: unknown): PreTokenizer {
  const root = (node ?? {}) as PreTokenizerNode;
  const steps = root.type === 'Sequence' ? (root.pretokenizers ?? []) : [root];
  const kinds = steps.map((n) => n.type);
  const byteLevel = steps.find((n) => n.type === 'ByteLevel');
  if (byteLevel && byteLevel.use_regex !== false) {
    if (kinds.length === 1) return regexPreTokenizer(GPT2_PATTERN);
    if (kinds.length === 2 && kinds[0] === 'Digits' && steps[0].individual_digits === true)
      return regexThenDigits(GPT2_PATTERN);
  }
  throw new Error(`tokenizer.json pre_tokenizer ${JSON.stringify(node)} is not supported`);
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
  /** The byte-level flavour's whole implementation (null for sentencepiece). */
  private readonly byteLevel: ByteLevelBpeTokenizer | null = null;
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
    if (this.flavour === 'byte-level')
      this.byteLevel = new ByteLevelBpeTokenizer({
        tokens: this.pieces,
        merges: json.model.merges.map((m) => (Array.isArray(m) ? m : (m.split(' ') as [string, string]))),
        specialIds: [...this.specialIds],
        preTokenizer: byteLevelPreTokenizer(json.pre_tokenizer),
        bosId: this.bosId,
        eosId: this.eosId,
        addBos: false,
      });
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
    const norm = (this.prefixSpace && first ? '▁' : '') + text.replace(/ /g, '▁');
    return this.bpe([...norm]);
  }

  encode(text: string, opts: { bos?: boolean; eos?: boolean } = {}): number[] {
    if (this.byteLevel) return this.byteLevel.encode(text, opts);
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
    if (this.byteLevel) return this.byteLevel.pieceBytes(prev, token);
    const m = BYTE_TOKEN.exec(piece);
    if (m) return Uint8Array.of(parseInt(m[1], 16));
    let text = piece.replace(/▁/g, ' ');
    if (this.prefixSpace && (prev === this.bosId || prev < 0) && text.startsWith(' ')) text = text.slice(1);
    return new TextEncoder().encode(text);
  }

  decode(ids: readonly number[]): string {
    if (this.byteLevel) return this.byteLevel.decode(ids);
    const parts: number[] = [];
    let prev = -1;
    for (const id of ids) {
      if (!this.specialIds.has(id)) parts.push(...this.pieceBytes(prev, id));
      prev = id;
    }
    return new TextDecoder().decode(Uint8Array.from(parts));
  }
}
