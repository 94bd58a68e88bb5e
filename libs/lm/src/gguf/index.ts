export * from './ggml-types';
export * from './dequantize';
export * from './gguf-file';
export * from './gguf-metadata';
export * from './gguf-checkpoint';
