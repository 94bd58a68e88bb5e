export * from './word-tokenizer';
