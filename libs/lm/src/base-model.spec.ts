import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  baseModelChecksum,
  baseModelContextLength,
  baseModelFormat,
  defaultPromptTokens,
  loadBaseModel,
} from './base-model';
import { saveHfCheckpoint } from './hf';
import { sha256File } from './lora';
import { STORIES260K_CHECKPOINT, STORIES260K_TOKENIZER, stories260kAvailable } from './testing/stories260k';
import { SMOLLM2_GGUF, smollm2Available } from './testing/smollm2';
import { tinyConfig } from './testing/tiny';
import { randomWeights } from './weights';

describe('loadBaseModel: one way to name a base model', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'cprec-base-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  (stories260kAvailable() ? it : it.skip)(
    'a llama2.c .bin takes its tokenizer from beside it or as named, hashed by its bytes',
    async () => {
      const beside = await loadBaseModel(STORIES260K_CHECKPOINT);
      expect(beside.format).toBe('llama2c');
      expect(beside.baseModelId).toBe('stories260K.bin');
      expect(beside.baseChecksum).toBe(await sha256File(STORIES260K_CHECKPOINT));
      expect(beside.contextLength).toBe(512);
      expect(beside.tokenizer.encode('Once upon a time', { bos: true })[0]).toBe(1);
      const named = await loadBaseModel({ model: STORIES260K_CHECKPOINT, tokenizer: STORIES260K_TOKENIZER });
      expect(named.tokenizer.encode('Lily')).toEqual(beside.tokenizer.encode('Lily'));
      expect(baseModelContextLength(STORIES260K_CHECKPOINT)).toBe(512);
      // Alone in a folder, the tokenizer cannot be guessed.
      const lonely = join(dir, 'lonely.bin');
      copyFileSync(STORIES260K_CHECKPOINT, lonely);
      await expect(loadBaseModel(lonely)).rejects.toThrow(/needs its tokenizer\.bin/);
    },
  );

  it('a Hugging Face folder uses its tokenizer.json and is hashed by config + weights, not its name', async () => {
    const hf = join(dir, 'hf-model');
    const weights = randomWeights(tinyConfig({ vocabSize: 260, maxSeqLen: 96 }), 5);
    saveHfCheckpoint(weights, hf);
    const vocab: Record<string, number> = {};
    for (let i = 0; i < 256; i++) vocab[`<0x${i.toString(16).toUpperCase().padStart(2, '0')}>`] = i;
    Object.assign(vocab, { '<s>': 256, '</s>': 257, '▁': 258, a: 259 });
    writeFileSync(
      join(hf, 'tokenizer.json'),
      JSON.stringify({ model: { type: 'BPE', vocab, merges: [], byte_fallback: true }, added_tokens: [] }),
    );
    const base = await loadBaseModel(hf);
    expect(base.format).toBe('hf');
    expect(base.contextLength).toBe(96);
    expect(baseModelContextLength(hf)).toBe(96);
    expect(base.weights.config.vocabSize).toBe(260);
    const renamed = join(dir, 'renamed');
    saveHfCheckpoint(weights, renamed);
    expect(await baseModelChecksum(renamed)).toBe(base.baseChecksum);
    await expect(loadBaseModel({ model: hf, tokenizer: '/x/tokenizer.json' })).rejects.toThrow(
      /its tokenizer\.json is used/,
    );
  });

  (smollm2Available() ? it : it.skip)(
    'a GGUF file carries its tokenizer; naming another is refused',
    async () => {
      expect(baseModelFormat(SMOLLM2_GGUF)).toBe('gguf');
      expect(baseModelContextLength(SMOLLM2_GGUF)).toBe(8192);
      await expect(loadBaseModel({ model: SMOLLM2_GGUF, tokenizer: STORIES260K_TOKENIZER })).rejects.toThrow(
        /carries its own tokenizer/,
      );
    },
  );

  it('names a path that does not exist', async () => {
    await expect(loadBaseModel('/nowhere/model.gguf')).rejects.toThrow(
      /base model \/nowhere\/model\.gguf does not exist/,
    );
  });

  it('a folder without config.json is not a checkpoint', () => {
    expect(() => baseModelFormat(dir)).toThrow(/has no config\.json/);
  });

  it('prompt budgets follow the context, capped at 1,024 tokens', () => {
    expect(defaultPromptTokens(8192)).toBe(1024);
    expect(defaultPromptTokens(512)).toBe(512);
  });
});
