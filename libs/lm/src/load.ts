import { statSync } from 'node:fs';
import { loadHfCheckpoint } from './hf';
import { HfBpeTokenizer } from './hf-tokenizer';
import { loadLlama2cCheckpoint } from './llama2c';
import { Llama2cTokenizer, Tokenizer } from './tokenizer';
import { LlamaWeights } from './weights';

/** A directory is a Hugging Face checkpoint (config.json + safetensors); a file is a llama2.c checkpoint. */
export function loadCheckpoint(path: string): LlamaWeights {
  return statSync(path).isDirectory() ? loadHfCheckpoint(path) : loadLlama2cCheckpoint(path);
}

/** `*.json` is a Hugging Face tokenizer.json; anything else a llama2.c tokenizer.bin (needs the vocab size). */
export function loadTokenizer(path: string, vocabSize: number): Tokenizer {
  return path.endsWith('.json') ? HfBpeTokenizer.fromFile(path) : Llama2cTokenizer.fromFile(path, vocabSize);
}
