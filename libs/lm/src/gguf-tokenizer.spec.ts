import { readFileSync } from 'node:fs';
import { ByteLevelBpeTokenizer, bytesToUnicode, ggufPreTokenizer } from './byte-level-bpe';
import { GgufFile, readGguf } from './gguf';
import { ggufTokenizer } from './gguf-tokenizer';
import { requireSmollm2OrSkip, SMOLLM2_GGUF, SMOLLM2_TOKENIZER_GOLDEN } from './testing/smollm2';

const available = requireSmollm2OrSkip();
const describeIfModel = available ? describe : describe.skip;

describeIfModel('GGUF byte-level BPE tokenizer (SmolLM2-135M against the reference tokenizer)', () => {
  let file: GgufFile;
  let tok: ByteLevelBpeTokenizer;
  let golden: { source: string; text: string; ids: number[] }[];

  beforeAll(() => {
    file = readGguf(SMOLLM2_GGUF);
    tok = ggufTokenizer(file);
    golden = readFileSync(SMOLLM2_TOKENIZER_GOLDEN, 'utf8')
      .split('\n')
      .filter((l) => l.trim().length > 0)
      .map((l) => JSON.parse(l) as { source: string; text: string; ids: number[] });
  });

  it('reads the vocabulary and special ids from the metadata', () => {
    expect(tok.vocabSize).toBe(49152);
    expect(tok.bosId).toBe(1);
    expect(tok.eosId).toBe(2);
    expect(tok.addBos).toBe(false);
    expect(tok.decode([1])).toBe('<|im_start|>');
    expect(tok.isSpecial(2)).toBe(true);
    expect(tok.isSpecial(504)).toBe(false);
  });

  it('encodes every golden text to exactly the reference ids', () => {
    expect(golden.length).toBe(2112);
    const wrong = golden.filter((g) => JSON.stringify(tok.encode(g.text)) !== JSON.stringify(g.ids));
    expect(wrong.map((g) => g.text)).toEqual([]);
  });

  it('decodes every golden id list back to its text, and decode(encode(text)) is the text', () => {
    for (const g of golden) {
      expect(tok.decode(g.ids)).toBe(g.text);
      expect(tok.decode(tok.encode(g.text))).toBe(g.text);
    }
  });

  it('inverts encoding for text the golden file does not cover', () => {
    const texts = [
      '<|im_start|>system\nYou are helpful<|im_end|>\n<|im_start|>user\nhi<|im_end|>',
      'mixed <|im_end|><|im_end|>special runs',
      '\u0000\u0001 control bytes \u007f',
      'ZWJ family 👨‍👩‍👧‍👦 and flags 🇫🇷',
      '  \n\n\t trailing spaces   ',
      '١٢٣ Arabic-Indic digits, ½ fractions, Ⅻ numerals',
      "it's 'quoted' ''''",
    ];
    for (const t of texts) expect(tok.decode(tok.encode(t))).toBe(t);
  });

  it('matches special tokens whole and adds BOS/EOS only when asked', () => {
    expect(tok.encode('<|im_start|>user')).toEqual([1, 4093]);
    expect(tok.encode('user', { bos: true, eos: true })).toEqual([1, 4093, 2]);
  });
});

describe('byte-level BPE building blocks', () => {
  it("maps all 256 bytes to distinct printable characters (GPT-2's table)", () => {
    const table = bytesToUnicode();
    expect(new Set(table).size).toBe(256);
    expect(table[0x20]).toBe('Ġ');
    expect(table[0x41]).toBe('A');
    expect(table[0x0a]).toBe('Ċ');
  });

  it('cuts digits out of the regex pieces for the SmolLM pre-tokenizer', () => {
    const split = ggufPreTokenizer('smollm');
    expect(split('rated,  2.7-Ounce')).toEqual(['rated', ',', ' ', ' ', '2', '.', '7', '-', 'Ounce']);
    expect(split('PS4 1080p')).toEqual(['PS', '4', ' ', '1', '0', '8', '0', 'p']);
    expect(ggufPreTokenizer('gpt-2')('PS4 1080p')).toEqual(['PS', '4', ' 1080', 'p']);
  });

  it('refuses a pre-tokenizer it does not know instead of guessing', () => {
    expect(() => ggufPreTokenizer('deepseek-coder')).toThrow(/pre-tokenizer "deepseek-coder".*not supported/);
  });

  it('merges by rank on a hand-made vocabulary', () => {
    const tokens = ['a', 'b', 'c', 'ab', 'bc', 'abc', 'Ġ', 'Ġa'];
    const tok = new ByteLevelBpeTokenizer({
      tokens,
      merges: ['b c', 'a b', 'a bc', 'Ġ a'],
      specialIds: [],
      preTokenizer: ggufPreTokenizer('gpt-2'),
      bosId: -1,
      eosId: -1,
      addBos: false,
    });
    // "b c" ranks before "a b", so "abc" is a + bc, then a·bc → abc.
    expect(tok.encode('abc')).toEqual([5]);
    expect(tok.encode('ab')).toEqual([3]);
    expect(tok.encode(' a')).toEqual([7]);
    expect(tok.decode([7, 4])).toBe(' abc');
  });
});

describeIfModel('GGUF tokenizer errors', () => {
  it('names an unsupported tokenizer model', () => {
    const file = readGguf(SMOLLM2_GGUF);
    const meta = new Map(file.metadata);
    meta.set('tokenizer.ggml.model', 'llama');
    expect(() => ggufTokenizer({ ...file, metadata: meta })).toThrow(
      /tokenizer model "llama" is not supported/,
    );
    meta.set('tokenizer.ggml.model', 'gpt2');
    meta.set('tokenizer.ggml.pre', 'mystery');
    expect(() => ggufTokenizer({ ...file, metadata: meta })).toThrow(/pre-tokenizer "mystery"/);
  });
});
