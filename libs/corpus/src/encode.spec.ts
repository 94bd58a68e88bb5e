import { encodePiece, encodeSample, type Tokenizer } from './encode';
import { cptSample, llaraSample, renderPrompt, type PromptItem } from './templates';
import { createRng } from './rng';

/**
 * A GPT-2-like word tokenizer: a word or punctuation mark merges with the one space before it
 * (" Mario" is one token), as byte-level BPE pre-tokenises. Ids are assigned on first sight, so
 * any text encodes and decode(encode(x)) === x.
 */
function bpeLikeTokenizer(
  PIECE = /\s?[A-Za-z0-9]+|\s?[^\sA-Za-z0-9]|\s+/g,
): Tokenizer & { pieces: string[] } {
  const pieces = ['<unk>', '<s>', '</s>'];
  const ids = new Map<string, number>();
  return {
    pieces,
    bosId: 1,
    eosId: 2,
    encode(text) {
      return (text.match(PIECE) ?? []).map((p) => {
        let id = ids.get(p);
        if (id === undefined) ids.set(p, (id = pieces.push(p) - 1));
        return id;
      });
    },
    decode(list) {
      return list
        .filter((id) => id > 2)
        .map((id) => pieces[id])
        .join('');
    },
  };
}

/**
 * Words with SentencePiece's dummy prefix, as the llama2.c tokenizer: encode(text) encodes
 * " " + text, and decode keeps that space (run.c strips it only right after BOS). As in
 * stories260K's tok512, a space merges with a word but not with punctuation (" ," is " " + ",").
 */
function dummyPrefixTokenizer(): Tokenizer {
  const inner = bpeLikeTokenizer(/\s?[A-Za-z0-9]+|[^\sA-Za-z0-9]|\s/g);
  return {
    bosId: 1,
    eosId: 2,
    encode: (text) => inner.encode(text.length > 0 ? ` ${text}` : text),
    decode: (list) => inner.decode(list),
  };
}

const item = (itemId: string, title: string): PromptItem => ({ itemId, title });
const history = [item('h1', 'Super Mario Odyssey'), item('h2', 'The Legend of Zelda: Breath of the Wild')];
const candidates = [item('c1', 'Splatoon 2'), item('c2', 'FIFA 19'), item('c3', 'Call of Duty: WWII')];
const target = candidates[1]!;
const roomy = { maxTokens: 4096, maxTitleTokens: 64 };

describe('encodePiece', () => {
  it('gives a BPE tokenizer the leading space to merge with the word', () => {
    const tok = bpeLikeTokenizer();
    expect(tok.decode(encodePiece(tok, ' Super Mario'))).toBe(' Super Mario');
    expect(encodePiece(tok, ' Super Mario')).toEqual(tok.encode(' Super Mario'));
  });

  it('lets a dummy-prefix tokenizer supply the space itself (no doubled space token)', () => {
    const tok = dummyPrefixTokenizer();
    expect(tok.decode(encodePiece(tok, ' Super Mario'))).toBe(' Super Mario');
    expect(tok.decode(encodePiece(tok, ','))).toBe(',');
    // At the start of the text the prefix stays, as SentencePiece encodes a whole text.
    expect(tok.decode(encodePiece(tok, 'This user', true))).toBe(' This user');
  });
});

describe('encodeSample tokenises the prompt as the whole text would be', () => {
  it('BPE-like: concatenated pieces equal the ids of the rendered text (no lone-space tokens)', () => {
    const tok = bpeLikeTokenizer();
    for (const sample of [
      cptSample({ history, candidates, target }),
      llaraSample({ history, candidates, target }, 'text', createRng(3)),
    ]) {
      const enc = encodeSample(sample, tok, roomy);
      const { prompt, answer } = renderPrompt(sample);
      expect([...enc.inputIds]).toEqual([tok.bosId, ...tok.encode(prompt + answer), tok.eosId]);
      expect([...enc.inputIds].some((id) => tok.pieces[id] === ' ')).toBe(false);
      expect(tok.decode([...enc.answerTokenIds])).toBe(' FIFA 19');
    }
  });

  it('dummy-prefix: the decoded sample reads like the rendered text, one space between words', () => {
    const tok = dummyPrefixTokenizer();
    const sample = cptSample({ history, candidates, target });
    const enc = encodeSample(sample, tok, roomy);
    const { prompt, answer } = renderPrompt(sample);
    expect(tok.decode(Array.from(enc.inputIds))).toBe(` ${prompt}${answer}`);
    expect(tok.decode([...enc.answerTokenIds])).toBe(' FIFA 19');
  });

  it('candidate token ids are the ids shown in the prompt and the ids an answer is trained on', () => {
    for (const tok of [bpeLikeTokenizer(), dummyPrefixTokenizer()]) {
      const budget = { maxTokens: 4096, maxTitleTokens: 2 }; // "Call of Duty: WWII" is cut to " Call of"
      const prompt = encodeSample(cptSample({ history, candidates, target }), tok, budget, {
        includeAnswer: false,
      });
      expect(prompt.candidateTitles).toEqual(['Splatoon 2', 'FIFA 19', 'Call of']);
      const ids = Array.from(prompt.inputIds);
      candidates.forEach((c, i) => {
        const shown = prompt.candidateTokenIds[i]!;
        // Shown in the prompt as a contiguous run of exactly these ids.
        const at = ids.findIndex((_, p) => shown.every((id, k) => ids[p + k] === id));
        expect(at).toBeGreaterThan(0);
        // Trained as the answer when this candidate is the target.
        const train = encodeSample(cptSample({ history, candidates, target: c }, 'answer'), tok, budget);
        expect([...train.inputIds.slice(train.promptLength, -1)]).toEqual(shown);
        expect([...train.inputIds.slice(0, train.promptLength)]).toEqual(ids);
      });
    }
  });

  it('refuses a phrasing whose slot or answer is not preceded by one space', () => {
    const tok = bpeLikeTokenizer();
    const bad = { id: 'bad', text: 'History:{history} candidates: {candidates}. Answer:' };
    const sample = { ...cptSample({ history, candidates, target }), phrasing: bad };
    expect(() => encodeSample(sample, tok, roomy)).toThrow(/must follow one space/);
  });
});
