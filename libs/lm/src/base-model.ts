import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { llamaConfigFromGguf, loadGgufCheckpoint, readGguf } from './gguf';
import { ggufTokenizer } from './gguf-tokenizer';
import { configFromHf, HfLlamaConfigJson, loadHfCheckpoint } from './hf';
import { HfBpeTokenizer } from './hf-tokenizer';
import { loadLlama2cCheckpoint } from './llama2c';
import { sha256File } from './lora';
import { Llama2cTokenizer, Tokenizer } from './tokenizer';
import { LlamaWeights } from './weights';

/** The three checkpoint formats a base model can be named by. */
export type BaseModelFormat = 'gguf' | 'llama2c' | 'hf';

/**
 * A base language model and the tokenizer that belongs to it, loaded from one path. Everything
 * that trains, evaluates or serves adapters names its base this way, so an adapter's
 * `baseChecksum` always refers to the same bytes.
 */
export interface LoadedBaseModel {
  readonly weights: LlamaWeights;
  readonly tokenizer: Tokenizer;
  /** File or folder name, e.g. "SmolLM2-135M-Instruct.Q4_1.gguf"; recorded in adapters. */
  readonly baseModelId: string;
  /**
   * sha256 of the checkpoint's bytes (the GGUF or llama2.c file; for a Hugging Face folder, of
   * its config.json + safetensors files in name order). Adapters record it; loading one on other
   * weights is refused.
   */
  readonly baseChecksum: string;
  readonly format: BaseModelFormat;
  /** The longest sequence the model was trained for (the prompt budget follows it). */
  readonly contextLength: number;
}

/** Where to find a base model: the checkpoint, and a separate tokenizer where the format needs one. */
export interface BaseModelSource {
  /** `.gguf` file, llama2.c `.bin` file, or a Hugging Face checkpoint folder. */
  readonly model: string;
  /**
   * llama2.c only: its `tokenizer.bin`. GGUF files carry their tokenizer; a Hugging Face folder has
   * `tokenizer.json`. Giving one for those formats is refused rather than silently ignored.
   */
  readonly tokenizer?: string;
}

/** Which format a path holds, by what it is (folder) and its magic bytes, not only its name. */
export function baseModelFormat(path: string): BaseModelFormat {
  if (!existsSync(path)) throw new Error(`base model ${path} does not exist`);
  if (statSync(path).isDirectory()) {
    if (!existsSync(join(path, 'config.json')))
      throw new Error(`base model folder ${path} has no config.json (expected a Hugging Face checkpoint)`);
    return 'hf';
  }
  return path.toLowerCase().endsWith('.gguf') || hasGgufMagic(path) ? 'gguf' : 'llama2c';
}

function hasGgufMagic(path: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const head = Buffer.alloc(4);
    return readSync(fd, head, 0, 4, 0) === 4 && head.toString('latin1') === 'GGUF';
  } finally {
    closeSync(fd);
  }
}

/** sha256 over a Hugging Face folder's config and weights (sorted), so renaming the folder keeps it. */
async function hfFolderChecksum(dir: string): Promise<string> {
  const files = readdirSync(dir)
    .filter((f) => f === 'config.json' || f.endsWith('.safetensors'))
    .sort();
  const h = createHash('sha256');
  for (const f of files) h.update(`${f}\0${await sha256File(join(dir, f))}\n`);
  return h.digest('hex');
}

/** The llama2.c tokenizer beside a checkpoint when none is named: the only `tok*.bin` there. */
function llama2cTokenizerBeside(model: string): string {
  const dir = dirname(model);
  const candidates = readdirSync(dir).filter((f) => /^tok.*\.bin$/i.test(f) || f === 'tokenizer.bin');
  if (candidates.length !== 1)
    throw new Error(
      `llama2.c checkpoint ${model} needs its tokenizer.bin: name it (found ${candidates.length} candidates in ${dir})`,
    );
  return join(dir, candidates[0]);
}

/** A base model's weights and tokenizer, read without hashing the file (see `loadBaseModel`). */
export type ReadBaseModel = Omit<LoadedBaseModel, 'baseChecksum'>;

/**
 * Reads a base model and its tokenizer from one source, synchronously and without the checksum:
 * for processes that were handed the checksum by whoever planned their work.
 */
export function readBaseModel(source: BaseModelSource | string): ReadBaseModel {
  const src: BaseModelSource = typeof source === 'string' ? { model: source } : source;
  const format = baseModelFormat(src.model);
  const baseModelId = basename(src.model.replace(/\/+$/, ''));
  if (format === 'gguf') {
    if (src.tokenizer)
      throw new Error(`${src.model} is a GGUF file and carries its own tokenizer; do not name another`);
    const { weights, gguf } = loadGgufCheckpoint(src.model);
    return {
      weights,
      tokenizer: ggufTokenizer(gguf),
      baseModelId,
      format,
      contextLength: weights.config.maxSeqLen,
    };
  }
  if (format === 'hf') {
    if (src.tokenizer)
      throw new Error(
        `${src.model} is a Hugging Face folder; its tokenizer.json is used, do not name another`,
      );
    const tokPath = join(src.model, 'tokenizer.json');
    if (!existsSync(tokPath)) throw new Error(`Hugging Face folder ${src.model} has no tokenizer.json`);
    const weights = loadHfCheckpoint(src.model);
    return {
      weights,
      tokenizer: HfBpeTokenizer.fromFile(tokPath),
      baseModelId,
      format,
      contextLength: weights.config.maxSeqLen,
    };
  }
  const tokPath = src.tokenizer ?? llama2cTokenizerBeside(src.model);
  if (!existsSync(tokPath)) throw new Error(`tokenizer ${tokPath} does not exist`);
  const weights = loadLlama2cCheckpoint(src.model);
  return {
    weights,
    tokenizer: Llama2cTokenizer.fromFile(tokPath, weights.config.vocabSize),
    baseModelId,
    format,
    contextLength: weights.config.maxSeqLen,
  };
}

/** Loads a base model and its tokenizer from one source, with the checksum adapters are pinned to. */
export async function loadBaseModel(source: BaseModelSource | string): Promise<LoadedBaseModel> {
  const read = readBaseModel(source);
  const src: BaseModelSource = typeof source === 'string' ? { model: source } : source;
  return { ...read, baseChecksum: await baseModelChecksum(src) };
}

/** sha256 of a base model's checkpoint without loading its weights (what adapters are checked against). */
export async function baseModelChecksum(source: BaseModelSource | string): Promise<string> {
  const src: BaseModelSource = typeof source === 'string' ? { model: source } : source;
  return baseModelFormat(src.model) === 'hf' ? hfFolderChecksum(src.model) : sha256File(src.model);
}

/**
 * The base model's context length from its header or metadata alone (no weights are read), so a
 * service can size its prompts before it loads the model.
 */
export function baseModelContextLength(source: BaseModelSource | string): number {
  const src: BaseModelSource = typeof source === 'string' ? { model: source } : source;
  const format = baseModelFormat(src.model);
  if (format === 'gguf') return llamaConfigFromGguf(readGguf(src.model)).maxSeqLen;
  if (format === 'hf')
    return configFromHf(JSON.parse(readFileSync(join(src.model, 'config.json'), 'utf8')) as HfLlamaConfigJson)
      .maxSeqLen;
  // llama2.c legacy header: 7 int32, the last is seq_len.
  const fd = openSync(src.model, 'r');
  try {
    const header = Buffer.alloc(28);
    if (readSync(fd, header, 0, 28, 0) !== 28)
      throw new Error(`llama2.c checkpoint ${src.model} is truncated`);
    return header.readInt32LE(24);
  } finally {
    closeSync(fd);
  }
}

/**
 * Prompt tokens a recommender prompt may use by default: the model's context, capped at 1,024 so
 * a long-context model (SmolLM2: 8,192) does not make every training step pay for mostly padding.
 * At 1,024 a LLaRA prompt holds 10 history items and 20 candidates with whole titles.
 */
export const DEFAULT_PROMPT_TOKENS_CAP = 1024;

export function defaultPromptTokens(contextLength: number): number {
  return Math.min(contextLength, DEFAULT_PROMPT_TOKENS_CAP);
}
