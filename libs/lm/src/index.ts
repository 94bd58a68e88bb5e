/**
 * @cprec/lm — LLaMA-architecture language model on the pure tfjs API (backend chosen at runtime).
 *
 * Conventions worth knowing before using it:
 * - Weights: `LlamaWeights` (host Float32Arrays, [out, in] rows) is what every loader returns
 *   (`loadLlama2cCheckpoint`, `loadHfCheckpoint`, `randomWeights`, `loadCheckpoint`); `new LlamaModel(w)`
 *   turns it into tf.Variables (base weights non-trainable).
 * - RoPE is llama2.c's interleaved (adjacent-pair) form; HF checkpoints get their q/k rows permuted
 *   back from split-half order on load (`permuteRopeRows`) and forward on save.
 * - Padding: `forward(ids, { attentionMask })` accepts left or right padding (positions = running
 *   count of real tokens). Batched generation (`generateBatch`) left-pads; scoring right-pads
 *   candidates after a shared KV-cached prompt.
 * - Loss masks mark target tokens: `lossMask[b][t] = 1` counts the prediction of token t.
 * - `Trainer.trainStep(batch, lr)` is the entry point for CPT/SFT; LoRA via `attachLora`.
 * - Hybrid prompts: `inject: { positions: [[b, t]...], vectors [K, dim] }` in forward/training, and
 *   `promptInject` in generation and scoring.
 */
export * from './types';
export * from './weights';
export * from './tokenizer';
export * from './llama2c';
export * from './embedding';
export * from './model';
export * from './sampling';
export * from './generate';
export * from './scoring';
export * from './backend';
export * from './safetensors';
export * from './lora';
export * from './train';
export * from './hf';
export * from './hf-tokenizer';
export * from './load';
export * from './gguf';
export * from './byte-level-bpe';
export * from './gguf-tokenizer';
export * from './base-model';
