import {
  ANSWER_SEPARATOR,
  CPT_PHRASING,
  ITEM_SEPARATOR,
  LLARA_PHRASINGS,
  phrasingPieces,
  type Phrasing,
  type Tokenizer,
} from '@cprec/corpus';

/**
 * The literal pieces of the unified CPT template, LLaRA's phrasings and `extra`, exactly as
 * `encodeSample` encodes them, plus the item separator: what a word tokenizer needs besides titles.
 */
export function templateVocabulary(extra: readonly Phrasing[] = []): string[] {
  const texts = [CPT_PHRASING, ...LLARA_PHRASINGS, ...extra].flatMap((p) =>
    phrasingPieces(p).flatMap((piece) => (piece.kind === 'text' ? [piece.text] : [])),
  );
  return [...texts, ITEM_SEPARATOR.trimEnd()];
}

/**
 * A word-level tokenizer over a fixed vocabulary, for tiny models on synthetic data (tests, the
 * demo, quick experiments): one token per word or punctuation mark, each carrying its leading
 * space, so decode(encode(text)) === text for text made of known words. Real models use their
 * own BPE tokenizers from @cprec/lm.
 */
export class WordTokenizer implements Tokenizer {
  static readonly UNK = 0;
  readonly bosId = 1;
  readonly eosId = 2;
  /** Reserved for LLaRA placeholders (projected embeddings are injected there). */
  readonly placeholderId = 3;
  private readonly ids = new Map<string, number>();
  private readonly pieces: string[] = ['<unk>', '<s>', '</s>', '<emb>'];

  private static readonly PIECE = /\s?[A-Za-z0-9]+|\s?[^\sA-Za-z0-9]|\s+/g;

  constructor(corpus: Iterable<string>) {
    for (const text of corpus) {
      for (const piece of text.match(WordTokenizer.PIECE) ?? []) {
        if (!this.ids.has(piece)) {
          this.ids.set(piece, this.pieces.length);
          this.pieces.push(piece);
        }
      }
    }
  }

  /**
   * A tokenizer that knows every piece prompts are made of (`templateVocabulary`) plus the given
   * titles, each with the leading space it carries in a prompt (`encodePiece`) and without it.
   */
  static forTitles(titles: Iterable<string>): WordTokenizer {
    const all = [...titles];
    return new WordTokenizer([...templateVocabulary(), ...all, ...all.map((t) => ANSWER_SEPARATOR + t)]);
  }

  get vocabSize(): number {
    return this.pieces.length;
  }

  encode(text: string, opts: { bos?: boolean; eos?: boolean } = {}): number[] {
    const out: number[] = opts.bos ? [this.bosId] : [];
    for (const piece of text.match(WordTokenizer.PIECE) ?? [])
      out.push(this.ids.get(piece) ?? WordTokenizer.UNK);
    if (opts.eos) out.push(this.eosId);
    return out;
  }

  decode(ids: readonly number[]): string {
    return ids
      .filter((id) => id !== this.bosId && id !== this.eosId)
      .map((id) => this.pieces[id] ?? '')
      .join('');
  }
}
