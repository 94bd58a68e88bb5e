import { encodeSample, TokenBudgetError, type Tokenizer } from './encode';
import { createRng, randomInt } from './rng';
import {
  CPT_PHRASING,
  cptSample,
  LLARA_PHRASINGS,
  llaraSample,
  phrasingParts,
  renderPrompt,
  type PromptItem,
  type PromptSample,
} from './templates';
import { displayTitle, normaliseTitle } from './titles';

/** Byte-level test tokenizer: one token per UTF-8 byte (id = byte + 4); 1 = BOS, 2 = EOS, 3 = placeholder. */
const PLACEHOLDER = 3;
const byteTokenizer: Tokenizer = {
  bosId: 1,
  eosId: 2,
  encode(text, opts) {
    const ids = [...Buffer.from(text, 'utf8')].map((b) => b + 4);
    return [...(opts?.bos ? [1] : []), ...ids, ...(opts?.eos ? [2] : [])];
  },
  decode(ids) {
    return Buffer.from(ids.filter((id) => id >= 4).map((id) => id - 4)).toString('utf8');
  },
};
const text = (ids: ArrayLike<number>): string => byteTokenizer.decode(Array.from(ids));
const item = (itemId: string, title: string): PromptItem => ({ itemId, title });

const history = [item('h1', 'Red Lipstick'), item('h2', 'Face &amp; Body   Cream')];
const candidates = [item('c1', 'Blue Mascara'), item('h3', 'Nail Polish'), item('c2', 'Hair\nGel')];
const target = item('h3', 'Nail Polish');

describe('titles', () => {
  it('decodes HTML entities and collapses whitespace', () => {
    expect(normaliseTitle('  Tom &amp; Jerry&#39;s\n\t Game  ')).toBe("Tom & Jerry's Game");
    expect(displayTitle('x1', ' &nbsp; ')).toBe('item x1');
    expect(displayTitle('x1', undefined)).toBe('item x1');
  });
});

describe('renderPrompt', () => {
  it('renders the unified CPT template (paper Table 1) word for word', () => {
    const { prompt, answer } = renderPrompt(cptSample({ history, candidates, target }));
    expect(prompt).toBe(
      'This user has bought Red Lipstick, Face & Body Cream in the previous. Please predict the next item this ' +
        'user will buy. The item title candidates are Blue Mascara, Nail Polish, Hair Gel. Choose only one item ' +
        'from the candidates. The answer is ',
    );
    expect(answer).toBe('Nail Polish');
  });

  it('hybrid style follows each title with its marker', () => {
    const sample = llaraSample({ history, candidates, target }, 'hybrid', createRng(0), [CPT_PHRASING]);
    expect(renderPrompt(sample).prompt).toContain(
      'bought Red Lipstick [HistoryEmb], Face & Body Cream [HistoryEmb] in the previous',
    );
    expect(renderPrompt(sample).prompt).toContain(
      'are Blue Mascara [CansEmb], Nail Polish [CansEmb], Hair Gel [CansEmb].',
    );
  });

  it('rejects a target that is not a candidate and malformed phrasings', () => {
    expect(() => cptSample({ history, candidates, target: item('zz', 'Other') })).toThrow(
      /"zz" is not among the 3/,
    );
    expect(() => phrasingParts({ id: 'bad', text: '{history} only' })).toThrow(/exactly one/);
  });

  it('chooses phrasings at random per sample, reproducibly by seed', () => {
    const pick = (seed: number): string =>
      llaraSample({ history, candidates, target }, 'text', createRng(seed)).phrasing.id;
    expect(pick(5)).toBe(pick(5));
    const seen = new Set(Array.from({ length: 40 }, (_, s) => pick(s)));
    expect(seen.size).toBe(LLARA_PHRASINGS.length);
    for (const p of LLARA_PHRASINGS) expect(() => phrasingParts(p)).not.toThrow();
  });
});

describe('encodeSample', () => {
  const roomy = { maxTokens: 4096, maxTitleTokens: 64 };

  it('text-only: tokens spell prompt + answer, loss only on the answer and EOS', () => {
    const sample = llaraSample({ history, candidates, target }, 'text', createRng(1));
    const enc = encodeSample(sample, byteTokenizer, roomy);
    const { prompt, answer } = renderPrompt(sample);
    expect(enc.inputIds[0]).toBe(1);
    expect(enc.inputIds[enc.inputIds.length - 1]).toBe(2);
    expect(text(enc.inputIds)).toBe(prompt + answer);
    // The answer separator travels with the answer (" Nail Polish"), as BPE merges it with the word.
    expect(enc.promptLength).toBe(1 + Buffer.byteLength(prompt) - 1);
    expect(text(enc.inputIds.slice(enc.promptLength))).toBe(' Nail Polish');
    expect([...enc.inputIds.slice(enc.promptLength, -1)]).toEqual(enc.answerTokenIds);
    const trained = [...enc.lossMask].map((m, i) => (m ? i : -1)).filter((i) => i >= 0);
    expect(trained[0]).toBe(enc.promptLength);
    expect(trained).toHaveLength(enc.inputIds.length - enc.promptLength);
    expect(enc.placeholders).toEqual([]);
    expect(enc.answerText).toBe('Nail Polish');
  });

  it('CPT samples train on every token except BOS', () => {
    const enc = encodeSample(cptSample({ history, candidates, target }), byteTokenizer, roomy);
    expect(enc.lossMask[0]).toBe(0);
    expect([...enc.lossMask.slice(1)].every((m) => m === 1)).toBe(true);
  });

  it('hybrid: one placeholder after each title, recorded with its item, never trained', () => {
    const sample = llaraSample({ history, candidates, target }, 'hybrid', createRng(1));
    expect(() => encodeSample(sample, byteTokenizer, roomy)).toThrow(/placeholderId/);
    const enc = encodeSample(sample, byteTokenizer, roomy, { placeholderId: PLACEHOLDER });
    expect(enc.placeholders.map((p) => `${p.kind}:${p.itemId}`)).toEqual([
      'history:h1',
      'history:h2',
      'candidate:c1',
      'candidate:h3',
      'candidate:c2',
    ]);
    const positions = [...enc.inputIds].map((id, i) => (id === PLACEHOLDER ? i : -1)).filter((i) => i >= 0);
    expect(positions).toEqual(enc.placeholders.map((p) => p.position));
    for (const p of enc.placeholders) expect(enc.lossMask[p.position]).toBe(0);
    // Each placeholder directly follows its item's title.
    const before = (p: number, n: number): string => text(enc.inputIds.slice(p - n, p));
    expect(before(enc.placeholders[1].position, 17)).toBe('Face & Body Cream');
    expect(before(enc.placeholders[4].position, 8)).toBe('Hair Gel');
  });

  it('generation mode gives exactly the training prompt', () => {
    const sample = llaraSample({ history, candidates, target }, 'hybrid', createRng(2));
    const train = encodeSample(
      sample,
      byteTokenizer,
      { maxTokens: 330, maxTitleTokens: 6 },
      { placeholderId: 3 },
    );
    const gen = encodeSample(
      sample,
      byteTokenizer,
      { maxTokens: 330, maxTitleTokens: 6 },
      { placeholderId: 3, includeAnswer: false },
    );
    expect([...gen.inputIds]).toEqual([...train.inputIds.slice(0, train.promptLength)]);
    expect(gen.answerText).toBe(train.answerText);
  });

  it('truncates titles to the per-title budget and the answer like its candidate', () => {
    const sample = cptSample({ history, candidates, target }, 'answer');
    // Five byte tokens: the leading space and four letters.
    const enc = encodeSample(sample, byteTokenizer, { maxTokens: 4096, maxTitleTokens: 5 });
    expect(enc.candidateTitles).toEqual(['Blue', 'Nail', 'Hair']);
    expect(enc.answerText).toBe('Nail');
    expect(enc.answerTokenIds).toEqual(enc.candidateTokenIds[1]);
    expect(text(enc.candidateTokenIds[0]!)).toBe(' Blue');
    expect(text(enc.inputIds)).toContain('bought Red , Face in the previous');
  });

  it('drops the oldest history first', () => {
    const long = Array.from({ length: 10 }, (_, k) => item(`h${k}`, `History item number ${k}`));
    const sample = cptSample({ history: long, candidates, target });
    const full = encodeSample(sample, byteTokenizer, roomy);
    // Each history entry costs 23 tokens (" History item number k" + ","): 30 tokens less drops two.
    const tight = encodeSample(sample, byteTokenizer, {
      maxTokens: full.inputIds.length - 30,
      maxTitleTokens: 64,
    });
    expect(tight.historyItemIds).toEqual(['h2', 'h3', 'h4', 'h5', 'h6', 'h7', 'h8', 'h9']);
    expect(tight.inputIds.length).toBeLessThanOrEqual(full.inputIds.length - 30);
    expect(tight.titleTokens).toBe(64);
  });

  it('fails clearly when even one-token titles cannot fit', () => {
    const sample = cptSample({ history, candidates, target });
    expect(() => encodeSample(sample, byteTokenizer, { maxTokens: 100, maxTitleTokens: 8 })).toThrow(
      TokenBudgetError,
    );
    expect(() => encodeSample(sample, byteTokenizer, { maxTokens: 100, maxTitleTokens: 8 })).toThrow(
      /over the budget of 100/,
    );
  });

  it('property: a sample never exceeds the budget, and its answer is the target candidate as shown', () => {
    const words = [
      'Deluxe',
      '&amp;',
      'Édition',
      '日本語',
      'Ultra',
      'Pack',
      '  ',
      '\n',
      'x'.repeat(40),
      '🎮',
      'of',
      'the',
    ];
    const randomTitle = (rng: ReturnType<typeof createRng>): string =>
      Array.from({ length: randomInt(rng, 0, 60) }, () => words[randomInt(rng, 0, words.length - 1)]).join(
        ' ',
      );
    let fitted = 0;
    let shrunk = 0;
    for (let seed = 0; seed < 200; seed++) {
      const rng = createRng(seed);
      const hist = Array.from({ length: randomInt(rng, 0, 12) }, (_, k) => item(`h${k}`, randomTitle(rng)));
      const cands = Array.from({ length: 20 }, (_, k) => item(`c${k}`, randomTitle(rng)));
      const tgt = cands[randomInt(rng, 0, 19)];
      const style = randomInt(rng, 0, 1) === 0 ? 'text' : 'hybrid';
      const sample: PromptSample = llaraSample({ history: hist, candidates: cands, target: tgt }, style, rng);
      const budget = { maxTokens: randomInt(rng, 150, 2500), maxTitleTokens: randomInt(rng, 1, 80) };
      let enc;
      try {
        enc = encodeSample(sample, byteTokenizer, budget, { placeholderId: PLACEHOLDER });
      } catch (e) {
        expect(e).toBeInstanceOf(TokenBudgetError);
        // Only when even the smallest rendering (one history item, one-token titles) is over budget.
        const minimal = encodeSample(
          sample,
          byteTokenizer,
          { maxTokens: 1e9, maxTitleTokens: 1 },
          { placeholderId: 3 },
        );
        const minimalLength =
          minimal.inputIds.length - Math.max(0, hist.length - 1) * (2 + (style === 'hybrid' ? 1 : 0));
        expect(minimalLength).toBeGreaterThan(budget.maxTokens);
        continue;
      }
      fitted++;
      if (enc.titleTokens < budget.maxTitleTokens) shrunk++;
      expect(enc.inputIds.length).toBeLessThanOrEqual(budget.maxTokens);
      expect(enc.titleTokens).toBeLessThanOrEqual(budget.maxTitleTokens);
      const at = cands.indexOf(tgt);
      expect(enc.answerText).toBe(enc.candidateTitles[at]);
      expect(enc.answerTokenIds).toEqual(enc.candidateTokenIds[at]);
      expect([...enc.inputIds.slice(enc.promptLength, -1)]).toEqual(enc.answerTokenIds);
      expect(text(enc.inputIds.slice(enc.promptLength)).trim()).toBe(enc.answerText);
      expect(hist.slice(hist.length - enc.historyItemIds.length).map((h) => h.itemId)).toEqual(
        enc.historyItemIds,
      );
      if (hist.length > 0) expect(enc.historyItemIds.length).toBeGreaterThanOrEqual(1);
      expect(enc.lossMask.length).toBe(enc.inputIds.length);
    }
    expect(fitted).toBeGreaterThan(100);
    expect(shrunk).toBeGreaterThan(0); // the title-cap step of the policy was exercised
  });
});
