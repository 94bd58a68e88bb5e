/**
 * Shapes and hyper-parameters of the LLaMA-family decoder and of its LoRA adapters.
 * Field names follow llama2.c / Hugging Face `config.json` meanings so either checkpoint maps 1:1.
 */

/** Architecture of a LLaMA-style decoder (llama2.c `Config` plus the HF fields it leaves implicit). */
export interface LlamaConfig {
  /** Model (residual stream) width; HF `hidden_size`. Must be divisible by `nHeads`. */
  dim: number;
  /** Inner width of the SwiGLU feed-forward (rows of w1/w3); HF `intermediate_size`. */
  hiddenDim: number;
  /** Number of decoder blocks; HF `num_hidden_layers`. */
  nLayers: number;
  /** Number of query heads; head size is `dim / nHeads`. HF `num_attention_heads`. */
  nHeads: number;
  /** Number of key/value heads (grouped-query attention); divides `nHeads`. HF `num_key_value_heads`. */
  nKvHeads: number;
  /** Number of tokens in the vocabulary (rows of the embedding table). */
  vocabSize: number;
  /** Longest sequence (positions 0..maxSeqLen-1) the RoPE tables are built for. HF `max_position_embeddings`. */
  maxSeqLen: number;
  /** Epsilon inside RMSNorm's square root (1e-5 for llama2.c). HF `rms_norm_eps`. */
  normEps: number;
  /** RoPE base frequency θ (10000 for LLaMA-2). HF `rope_theta`. */
  ropeTheta: number;
  /** True when the output classifier shares the token-embedding matrix. HF `tie_word_embeddings`. */
  tiedClassifier: boolean;
}

/** The linear layers of a decoder block that a LoRA adapter can attach to. */
export type LoraTarget = 'q' | 'k' | 'v' | 'o' | 'w1' | 'w2' | 'w3';

export const ALL_LORA_TARGETS: readonly LoraTarget[] = ['q', 'k', 'v', 'o', 'w1', 'w2', 'w3'];

/** Low-rank adapter hyper-parameters (Hu et al. 2021), as LLaRA uses them. */
export interface LoraConfig {
  /** Rank r of the update ΔW = B·A (A is [r, in], B is [out, r]). */
  rank: number;
  /** Scaling numerator: the update is multiplied by `alpha / rank`. */
  alpha: number;
  /** Dropout probability applied to the adapter input during training only (0 disables). */
  dropout: number;
  /** Which projections get adapters; default all attention (q,k,v,o) and MLP (w1,w2,w3) projections. */
  targets: LoraTarget[];
}

export function defaultLoraConfig(overrides: Partial<LoraConfig> = {}): LoraConfig {
  return { rank: 8, alpha: 16, dropout: 0.05, targets: [...ALL_LORA_TARGETS], ...overrides };
}

export function headSize(c: LlamaConfig): number {
  return c.dim / c.nHeads;
}

/** Throws a readable error if the config cannot describe a working model. */
export function validateConfig(c: LlamaConfig): void {
  const ints: (keyof LlamaConfig)[] = [
    'dim',
    'hiddenDim',
    'nLayers',
    'nHeads',
    'nKvHeads',
    'vocabSize',
    'maxSeqLen',
  ];
  for (const k of ints) {
    const v = c[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0)
      throw new Error(`LlamaConfig.${k} must be a positive integer, got ${String(v)}`);
  }
  if (c.dim % c.nHeads !== 0)
    throw new Error(`LlamaConfig.dim (${c.dim}) must be divisible by nHeads (${c.nHeads})`);
  if (c.nHeads % c.nKvHeads !== 0)
    throw new Error(`LlamaConfig.nHeads (${c.nHeads}) must be divisible by nKvHeads (${c.nKvHeads})`);
  if ((c.dim / c.nHeads) % 2 !== 0) throw new Error(`head size ${c.dim / c.nHeads} must be even for RoPE`);
}
