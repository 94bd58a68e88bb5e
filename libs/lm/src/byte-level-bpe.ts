import { scoreRankedMerge, Tokenizer } from './tokenizer';

/**
 * GPT-2-style byte-level BPE (the tokenizer of SmolLM, GPT-2, LLaMA-3, Qwen…): text is split by a
 * pre-tokenizer, each piece's UTF-8 bytes are mapped to printable characters (GPT-2's
 * `bytes_to_unicode`), and adjacent symbols are merged by merge rank until none applies.
 * Special tokens are matched whole in the text before any of that.
 *
 * Hand-written rather than the `tokenizers` npm package: that is a native binding with prebuilt
 * binaries fetched at install time, and the algorithm is small. Correctness is pinned by the
 * reference tokenizer's ids (`tokenizer-golden.jsonl`, 2,112 texts).
 */

/** GPT-2's reversible byte → printable-unicode table. */
export function bytesToUnicode(): string[] {
  const printable = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  const table: string[] = new Array<string>(256);
  let n = 0;
  for (let b = 0; b < 256; b++) table[b] = String.fromCharCode(printable(b) ? b : 256 + n++);
  return table;
}

/** Splits text into the pieces BPE runs on independently. */
export type PreTokenizer = (text: string) => string[];

/** GPT-2's split (Hugging Face ByteLevel `use_regex`). */
export const GPT2_PATTERN = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;
/** LLaMA-3's split (llama.cpp `llama-bpe`); case-insensitive contractions, digits in runs of ≤ 3. */
const LLAMA3_PATTERN =
  /'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD]|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+/gu;
/** Qwen-2's split: LLaMA-3's with single digits. */
const QWEN2_PATTERN =
  /'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD]|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+/gu;

export function regexPreTokenizer(pattern: RegExp): PreTokenizer {
  return (text) => text.match(pattern) ?? [];
}

/**
 * A regex split whose pieces are then cut so that every digit stands alone (SmolLM/StarCoder's
 * individual digits). The digit cut runs on the regex's pieces, not before the regex: the
 * reference tokenizer encodes "rated,  2.7" with two single-space tokens before "2", which only
 * this order gives (cutting digits first leaves "  " at the end of a piece, one token).
 */
export function regexThenDigits(pattern: RegExp): PreTokenizer {
  const split = regexPreTokenizer(pattern);
  return (text) => {
    const out: string[] = [];
    for (const piece of split(text)) {
      if (!SOME_DIGIT.test(piece)) {
        out.push(piece);
        continue;
      }
      let start = 0;
      for (let i = 0; i < piece.length;) {
        const cp = piece.codePointAt(i) as number;
        const width = cp > 0xffff ? 2 : 1;
        if (ONE_DIGIT.test(String.fromCodePoint(cp))) {
          if (i > start) out.push(piece.slice(start, i));
          out.push(piece.slice(i, i + width));
          start = i + width;
        }
        i += width;
      }
      if (start < piece.length) out.push(piece.slice(start));
    }
    return out;
  };
}

const SOME_DIGIT = /\p{N}/u;
const ONE_DIGIT = /^\p{N}$/u;

/**
 * Pre-tokenizers by llama.cpp's `tokenizer.ggml.pre` name. Only splits verified against a reference
 * tokenizer or identical to one are listed; anything else is refused (a wrong split silently gives
 * different ids than the model was trained on).
 */
const GGUF_PRE_TOKENIZERS: Record<string, () => PreTokenizer> = {
  // llama.cpp groups these: digits isolated, then GPT-2's regex.
  smollm: () => regexThenDigits(GPT2_PATTERN),
  starcoder: () => regexThenDigits(GPT2_PATTERN),
  refact: () => regexThenDigits(GPT2_PATTERN),
  'command-r': () => regexThenDigits(GPT2_PATTERN),
  codeshell: () => regexThenDigits(GPT2_PATTERN),
  exaone: () => regexThenDigits(GPT2_PATTERN),
  minerva: () => regexThenDigits(GPT2_PATTERN),
  'gpt-2': () => regexPreTokenizer(GPT2_PATTERN),
  default: () => regexPreTokenizer(GPT2_PATTERN),
  'llama-bpe': () => regexPreTokenizer(LLAMA3_PATTERN),
  llama3: () => regexPreTokenizer(LLAMA3_PATTERN),
  qwen2: () => regexPreTokenizer(QWEN2_PATTERN),
};

export function ggufPreTokenizer(name: string): PreTokenizer {
  const make = GGUF_PRE_TOKENIZERS[name];
  if (!make)
    throw new Error(
      `pre-tokenizer "${name}" (tokenizer.ggml.pre) is not supported; supported: ${Object.keys(GGUF_PRE_TOKENIZERS).join(', ')}`,
    );
  return make();
}

export interface ByteLevelBpeSpec {
  /** Token strings in byte-level form (GPT-2's printable mapping), index = id. */
  tokens: readonly string[];
  /** Merges in rank order, each "left right" or [left, right]. */
  merges: readonly (string | readonly [string, string])[];
  /** Ids whose text is matched whole in input (control and user-defined tokens). */
  specialIds: readonly number[];
  preTokenizer: PreTokenizer;
  bosId: number;
  eosId: number;
  /** Whether the model expects BOS before a text (GGUF `tokenizer.ggml.add_bos_token`). */
  addBos: boolean;
}

/** Cached BPE results of pieces: titles and prompts repeat the same words constantly. */
const PIECE_CACHE_LIMIT = 100_000;

export class ByteLevelBpeTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly addBos: boolean;
  private readonly tokens: readonly string[];
  private readonly vocab = new Map<string, number>();
  private readonly ranks = new Map<string, number>();
  private readonly special = new Map<string, number>();
  private readonly specialIds = new Set<number>();
  /** Special strings longest first, so one that contains another wins. */
  private readonly specialOrder: string[];
  private readonly byteEncoder = bytesToUnicode();
  private readonly byteDecoder = new Map<string, number>();
  private readonly preTokenize: PreTokenizer;
  private readonly pieceCache = new Map<string, number[]>();

  constructor(spec: ByteLevelBpeSpec) {
    this.tokens = spec.tokens;
    this.vocabSize = spec.tokens.length;
    // First id wins on duplicate strings (as HF's vocab map built in id order).
    spec.tokens.forEach((t, id) => {
      if (!this.vocab.has(t)) this.vocab.set(t, id);
    });
    spec.merges.forEach((m, rank) => {
      const [a, b] = typeof m === 'string' ? splitMerge(m) : m;
      const key = `${a} ${b}`;
      if (!this.ranks.has(key)) this.ranks.set(key, rank);
    });
    for (const id of spec.specialIds) {
      const text = spec.tokens[id];
      if (text === undefined) throw new Error(`special token id ${id} out of range [0, ${this.vocabSize})`);
      if (text.length === 0) continue;
      this.special.set(text, id);
      this.specialIds.add(id);
    }
    this.specialOrder = [...this.special.keys()].sort((a, b) => b.length - a.length);
    this.byteEncoder.forEach((ch, b) => this.byteDecoder.set(ch, b));
    this.preTokenize = spec.preTokenizer;
    this.bosId = spec.bosId;
    this.eosId = spec.eosId;
    this.addBos = spec.addBos;
  }

  /** BPE of one pre-tokenized piece (already in byte-level characters). */
  private bpePiece(piece: string): number[] {
    const cached = this.pieceCache.get(piece);
    if (cached) return cached;
    const whole = this.vocab.get(piece);
    let ids: number[];
    if (whole !== undefined) ids = [whole];
    else {
      const symbols = [...piece];
      const start = symbols.map((s) => {
        const id = this.vocab.get(s);
        if (id === undefined)
          throw new Error(
            `byte-level symbol ${JSON.stringify(s)} is not in the vocabulary (a broken tokenizer)`,
          );
        return id;
      });
      ids = scoreRankedMerge(start, symbols, (a, b) => {
        const rank = this.ranks.get(`${a} ${b}`);
        if (rank === undefined) return undefined;
        const id = this.vocab.get(a + b);
        return id === undefined ? undefined : { id, score: -rank };
      });
    }
    if (this.pieceCache.size >= PIECE_CACHE_LIMIT) this.pieceCache.clear();
    this.pieceCache.set(piece, ids);
    return ids;
  }

  private encodeOrdinary(text: string, out: number[]): void {
    if (text.length === 0) return;
    const utf8 = new TextEncoder();
    for (const piece of this.preTokenize(text)) {
      let mapped = '';
      for (const b of utf8.encode(piece)) mapped += this.byteEncoder[b];
      for (const id of this.bpePiece(mapped)) out.push(id);
    }
  }

  encode(text: string, opts: { bos?: boolean; eos?: boolean } = {}): number[] {
    const out: number[] = [];
    if (opts.bos && this.bosId >= 0) out.push(this.bosId);
    let rest = text;
    while (rest.length > 0) {
      let at = -1;
      let which = '';
      for (const s of this.specialOrder) {
        const i = rest.indexOf(s);
        if (i >= 0 && (at < 0 || i < at)) [at, which] = [i, s];
      }
      if (at < 0) {
        this.encodeOrdinary(rest, out);
        break;
      }
      this.encodeOrdinary(rest.slice(0, at), out);
      out.push(this.special.get(which) as number);
      rest = rest.slice(at + which.length);
    }
    if (opts.eos && this.eosId >= 0) out.push(this.eosId);
    return out;
  }

  pieceBytes(_prev: number, token: number): Uint8Array {
    const piece = this.tokens[token];
    if (piece === undefined) throw new Error(`token id ${token} out of range [0, ${this.vocabSize})`);
    if (this.specialIds.has(token)) return new TextEncoder().encode(piece);
    const bytes = new Uint8Array(piece.length);
    let n = 0;
    for (const ch of piece) {
      const b = this.byteDecoder.get(ch);
      // Not a byte-level character: a token added as plain text; emit its UTF-8.
      if (b === undefined) return new TextEncoder().encode(piece);
      bytes[n++] = b;
    }
    return bytes.subarray(0, n);
  }

  /** Special tokens decode to their text, so decode(encode(t)) === t for every t. */
  decode(ids: readonly number[]): string {
    const parts: Uint8Array[] = [];
    let total = 0;
    for (const id of ids) {
      const b = this.pieceBytes(-1, id);
      parts.push(b);
      total += b.length;
    }
    const all = new Uint8Array(total);
    let o = 0;
    for (const p of parts) {
      all.set(p, o);
      o += p.length;
    }
    return new TextDecoder().decode(all);
  }

  /** Whether `id` is a control/special token (never part of ordinary text). */
  isSpecial(id: number): boolean {
    return this.specialIds.has(id);
  }
}

function splitMerge(m: string): [string, string] {
  // Byte-level symbols never contain a plain space (it maps to 'Ġ'), so the first space separates.
  const i = m.indexOf(' ', 1);
  if (i < 0) throw new Error(`malformed merge ${JSON.stringify(m)} (expected "left right")`);
  return [m.slice(0, i), m.slice(i + 1)];
}
