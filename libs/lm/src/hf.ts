import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseSafetensors, SafetensorsTensor, serializeSafetensors, TensorToWrite } from './safetensors';
import { LlamaConfig, validateConfig } from './types';
import { LayerWeights, LlamaWeights, permuteRopeRows } from './weights';

/** The subset of a Hugging Face LlamaForCausalLM `config.json` that the architecture needs. */
export interface HfLlamaConfigJson {
  architectures?: string[];
  model_type?: string;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads?: number;
  vocab_size: number;
  max_position_embeddings: number;
  rms_norm_eps?: number;
  rope_theta?: number;
  tie_word_embeddings?: boolean;
  head_dim?: number;
  rope_scaling?: unknown;
  hidden_act?: string;
}

export function configFromHf(j: HfLlamaConfigJson): LlamaConfig {
  if (j.model_type && !['llama', 'mistral', 'qwen2'].includes(j.model_type))
    throw new Error(`config.json model_type "${j.model_type}" is not a LLaMA-family decoder`);
  if (j.hidden_act && j.hidden_act !== 'silu')
    throw new Error(`config.json hidden_act "${j.hidden_act}" is not supported (SwiGLU needs silu)`);
  if (j.rope_scaling) throw new Error('config.json rope_scaling is not supported (plain RoPE only)');
  if (j.head_dim !== undefined && j.head_dim !== j.hidden_size / j.num_attention_heads)
    throw new Error(`config.json head_dim ${j.head_dim} differs from hidden_size/num_attention_heads`);
  const c: LlamaConfig = {
    dim: j.hidden_size,
    hiddenDim: j.intermediate_size,
    nLayers: j.num_hidden_layers,
    nHeads: j.num_attention_heads,
    nKvHeads: j.num_key_value_heads ?? j.num_attention_heads,
    vocabSize: j.vocab_size,
    maxSeqLen: j.max_position_embeddings,
    normEps: j.rms_norm_eps ?? 1e-6,
    ropeTheta: j.rope_theta ?? 10000,
    tiedClassifier: j.tie_word_embeddings ?? false,
  };
  validateConfig(c);
  return c;
}

export function configToHf(c: LlamaConfig): HfLlamaConfigJson {
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: c.dim,
    intermediate_size: c.hiddenDim,
    num_hidden_layers: c.nLayers,
    num_attention_heads: c.nHeads,
    num_key_value_heads: c.nKvHeads,
    vocab_size: c.vocabSize,
    max_position_embeddings: c.maxSeqLen,
    rms_norm_eps: c.normEps,
    rope_theta: c.ropeTheta,
    tie_word_embeddings: c.tiedClassifier,
    hidden_act: 'silu',
  };
}

const HF_LAYER_NAMES: Record<keyof LayerWeights, string> = {
  attnNorm: 'input_layernorm.weight',
  wq: 'self_attn.q_proj.weight',
  wk: 'self_attn.k_proj.weight',
  wv: 'self_attn.v_proj.weight',
  wo: 'self_attn.o_proj.weight',
  ffnNorm: 'post_attention_layernorm.weight',
  w1: 'mlp.gate_proj.weight',
  w2: 'mlp.down_proj.weight',
  w3: 'mlp.up_proj.weight',
};

/** Tensors of a checkpoint directory: `model.safetensors` or shards listed in `model.safetensors.index.json`. */
function readHfTensors(dir: string): Map<string, SafetensorsTensor> {
  const single = join(dir, 'model.safetensors');
  if (existsSync(single)) return parseSafetensors(readFileSync(single)).tensors;
  const indexPath = join(dir, 'model.safetensors.index.json');
  if (!existsSync(indexPath))
    throw new Error(`${dir}: neither model.safetensors nor model.safetensors.index.json found`);
  const index = JSON.parse(readFileSync(indexPath, 'utf8')) as { weight_map: Record<string, string> };
  const out = new Map<string, SafetensorsTensor>();
  for (const shard of new Set(Object.values(index.weight_map))) {
    for (const [k, v] of parseSafetensors(readFileSync(join(dir, shard))).tensors) out.set(k, v);
  }
  return out;
}

/**
 * Loads a Hugging Face LLaMA-family checkpoint directory (config.json + safetensors). HF stores
 * q/k rows permuted for split-half RoPE; they are permuted back to llama2.c's interleaved order so
 * the same model code (adjacent-pair RoPE) computes identical attention.
 */
export function loadHfCheckpoint(dir: string): LlamaWeights {
  const config = configFromHf(
    JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as HfLlamaConfigJson,
  );
  const tensors = readHfTensors(dir);
  const get = (name: string, shape: number[]): Float32Array => {
    const t = tensors.get(name);
    if (!t) throw new Error(`${dir}: tensor ${name} missing`);
    if (t.shape.join(',') !== shape.join(','))
      throw new Error(
        `${dir}: tensor ${name} has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}]`,
      );
    return t.data;
  };
  const hs = config.dim / config.nHeads;
  const kv = config.nKvHeads * hs;
  const layers: LayerWeights[] = [];
  for (let l = 0; l < config.nLayers; l++) {
    const p = (k: keyof LayerWeights): string => `model.layers.${l}.${HF_LAYER_NAMES[k]}`;
    layers.push({
      attnNorm: get(p('attnNorm'), [config.dim]),
      wq: permuteRopeRows(
        get(p('wq'), [config.dim, config.dim]),
        config.nHeads,
        hs,
        config.dim,
        'hfToInterleaved',
      ),
      wk: permuteRopeRows(get(p('wk'), [kv, config.dim]), config.nKvHeads, hs, config.dim, 'hfToInterleaved'),
      wv: get(p('wv'), [kv, config.dim]),
      wo: get(p('wo'), [config.dim, config.dim]),
      ffnNorm: get(p('ffnNorm'), [config.dim]),
      w1: get(p('w1'), [config.hiddenDim, config.dim]),
      w2: get(p('w2'), [config.dim, config.hiddenDim]),
      w3: get(p('w3'), [config.hiddenDim, config.dim]),
    });
  }
  const tokEmbedding = get('model.embed_tokens.weight', [config.vocabSize, config.dim]);
  let classifier: Float32Array | undefined;
  if (!config.tiedClassifier) {
    classifier = tensors.has('lm_head.weight')
      ? get('lm_head.weight', [config.vocabSize, config.dim])
      : undefined;
    if (!classifier) throw new Error(`${dir}: lm_head.weight missing and tie_word_embeddings is false`);
  }
  return { config, tokEmbedding, layers, finalNorm: get('model.norm.weight', [config.dim]), classifier };
}

/** Writes `config.json` + `model.safetensors` in HF LlamaForCausalLM naming (q/k rows in HF split-half order). */
export function saveHfCheckpoint(
  w: LlamaWeights,
  dir: string,
  opts: { dtype?: 'F32' | 'F16' | 'BF16' } = {},
): void {
  const c = w.config;
  const hs = c.dim / c.nHeads;
  const kv = c.nKvHeads * hs;
  const t = new Map<string, TensorToWrite>();
  const add = (name: string, shape: number[], data: Float32Array): void =>
    void t.set(name, { shape, data, dtype: opts.dtype });
  add('model.embed_tokens.weight', [c.vocabSize, c.dim], w.tokEmbedding);
  w.layers.forEach((lw, l) => {
    const p = (k: keyof LayerWeights): string => `model.layers.${l}.${HF_LAYER_NAMES[k]}`;
    add(p('attnNorm'), [c.dim], lw.attnNorm);
    add(p('wq'), [c.dim, c.dim], permuteRopeRows(lw.wq, c.nHeads, hs, c.dim, 'interleavedToHf'));
    add(p('wk'), [kv, c.dim], permuteRopeRows(lw.wk, c.nKvHeads, hs, c.dim, 'interleavedToHf'));
    add(p('wv'), [kv, c.dim], lw.wv);
    add(p('wo'), [c.dim, c.dim], lw.wo);
    add(p('ffnNorm'), [c.dim], lw.ffnNorm);
    add(p('w1'), [c.hiddenDim, c.dim], lw.w1);
    add(p('w2'), [c.dim, c.hiddenDim], lw.w2);
    add(p('w3'), [c.hiddenDim, c.dim], lw.w3);
  });
  add('model.norm.weight', [c.dim], w.finalNorm);
  if (!c.tiedClassifier && w.classifier) add('lm_head.weight', [c.vocabSize, c.dim], w.classifier);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(configToHf(c), null, 2) + '\n');
  writeFileSync(join(dir, 'model.safetensors'), serializeSafetensors(t, { format: 'pt' }));
}
