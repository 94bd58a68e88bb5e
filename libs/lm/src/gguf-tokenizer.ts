import { ByteLevelBpeTokenizer, ggufPreTokenizer } from './byte-level-bpe';
import {
  GgufFile,
  ggufBool,
  ggufHas,
  ggufNumber,
  ggufNumberArray,
  ggufString,
  ggufStringArray,
} from './gguf';

/** llama.cpp `llama_token_type`: which ids are matched whole in text. */
const TOKEN_TYPE = { normal: 1, unknown: 2, control: 3, userDefined: 4, unused: 5, byte: 6 } as const;

/**
 * The tokenizer a GGUF file carries in its `tokenizer.ggml.*` metadata. Only byte-level BPE
 * (`tokenizer.ggml.model = "gpt2"`) is built; other models (SentencePiece "llama", WordPiece
 * "bert", …) and unknown pre-tokenizers are refused by name rather than approximated.
 */
export function ggufTokenizer(file: GgufFile): ByteLevelBpeTokenizer {
  const model = ggufString(file, 'tokenizer.ggml.model');
  if (model !== 'gpt2')
    throw new Error(
      `${file.path}: tokenizer model "${model}" is not supported (cprec reads byte-level BPE, tokenizer.ggml.model = "gpt2")`,
    );
  const tokens = ggufStringArray(file, 'tokenizer.ggml.tokens');
  const merges = ggufStringArray(file, 'tokenizer.ggml.merges');
  const types = ggufHas(file, 'tokenizer.ggml.token_type')
    ? ggufNumberArray(file, 'tokenizer.ggml.token_type')
    : [];
  if (types.length > 0 && types.length !== tokens.length)
    throw new Error(
      `${file.path}: tokenizer.ggml.token_type has ${types.length} entries for ${tokens.length} tokens`,
    );
  const specialIds: number[] = [];
  types.forEach((t, id) => {
    if (t === TOKEN_TYPE.control || t === TOKEN_TYPE.userDefined) specialIds.push(id);
  });
  const id = (key: string, fallback: number): number => {
    const v = ggufHas(file, key) ? ggufNumber(file, key) : fallback;
    if (v >= tokens.length)
      throw new Error(`${file.path}: ${key} = ${v} is outside the ${tokens.length} tokens`);
    return v;
  };
  return new ByteLevelBpeTokenizer({
    tokens,
    merges,
    specialIds,
    preTokenizer: ggufPreTokenizer(ggufString(file, 'tokenizer.ggml.pre', 'default')),
    bosId: id('tokenizer.ggml.bos_token_id', -1),
    eosId: id('tokenizer.ggml.eos_token_id', -1),
    addBos: ggufBool(file, 'tokenizer.ggml.add_bos_token', false),
  });
}
