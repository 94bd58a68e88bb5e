import { LlamaConfig, validateConfig } from '../types';
import { LayerWeights, LAYER_TENSORS, LlamaWeights, weightShapes } from '../weights';
import { isSupportedGgmlType, supportedGgmlTypeNames } from './dequantize';
import { GgufFile, GgufTensorReader, readGguf } from './gguf-file';
import { ggufHas, ggufNumber, ggufString } from './gguf-metadata';

/**
 * A llama.cpp GGUF model as `LlamaWeights`. llama.cpp's converter stores the Q and K rows already
 * in the interleaved (adjacent-pair) RoPE order our decoder uses — it applies the same permutation
 * to Hugging Face weights that `permuteRopeRows` undoes — so rows are taken as they are.
 */

export const SUPPORTED_GGUF_ARCHITECTURES: readonly string[] = ['llama'];

/** GGUF tensor name of each per-layer weight (llama.cpp's LLM_TENSOR_NAMES for llama). */
const LAYER_GGUF_NAMES: Record<keyof LayerWeights, string> = {
  attnNorm: 'attn_norm',
  wq: 'attn_q',
  wk: 'attn_k',
  wv: 'attn_v',
  wo: 'attn_output',
  ffnNorm: 'ffn_norm',
  w1: 'ffn_gate',
  w2: 'ffn_down',
  w3: 'ffn_up',
};

export function llamaConfigFromGguf(file: GgufFile): LlamaConfig {
  const arch = ggufString(file, 'general.architecture');
  if (!SUPPORTED_GGUF_ARCHITECTURES.includes(arch))
    throw new Error(
      `GGUF file ${file.path} has architecture "${arch}", which cprec cannot run (supported: ${SUPPORTED_GGUF_ARCHITECTURES.join(', ')})`,
    );
  const key = (k: string): string => `${arch}.${k}`;
  const dim = ggufNumber(file, key('embedding_length'));
  const nHeads = ggufNumber(file, key('attention.head_count'));
  const hs = dim / nHeads;

  // Each of these changes the computation our decoder does; silently ignoring one would give a
  // model that loads and produces wrong logits.
  const expertCount = ggufNumber(file, key('expert_count'), 0);
  if (expertCount > 0)
    throw new Error(
      `GGUF file ${file.path} is a mixture-of-experts model (${expertCount} experts), which cprec cannot run`,
    );
  const scaling = ggufString(file, key('rope.scaling.type'), 'none');
  if (scaling !== 'none')
    throw new Error(
      `GGUF file ${file.path} uses RoPE scaling "${scaling}", which cprec does not implement (only none)`,
    );
  const linear = ggufNumber(file, key('rope.scale_linear'), 1);
  if (linear !== 1)
    throw new Error(
      `GGUF file ${file.path} uses linear RoPE scaling ${linear}, which cprec does not implement`,
    );
  if (file.tensors.has('rope_freqs.weight'))
    throw new Error(
      `GGUF file ${file.path} has RoPE frequency factors (rope_freqs.weight), which cprec does not implement`,
    );
  for (const k of ['rope.dimension_count', 'attention.key_length', 'attention.value_length']) {
    const v = ggufNumber(file, key(k), hs);
    if (v !== hs)
      throw new Error(
        `GGUF file ${file.path}: ${key(k)} is ${v}, but cprec needs it to equal the head size ${dim}/${nHeads} = ${hs}`,
      );
  }

  const embd = file.tensors.get('token_embd.weight');
  if (!embd) throw new Error(`GGUF file ${file.path} has no tensor token_embd.weight (the token embedding)`);
  if (embd.dims.length !== 2 || embd.dims[0] !== dim)
    throw new Error(
      `GGUF file ${file.path}: token_embd.weight has dims [${embd.dims.join(', ')}], expected [${dim}, vocab size]`,
    );
  const vocabSize = embd.dims[1];
  if (ggufHas(file, key('vocab_size')) && ggufNumber(file, key('vocab_size')) !== vocabSize)
    throw new Error(
      `GGUF file ${file.path}: ${key('vocab_size')} is ${ggufNumber(file, key('vocab_size'))} but token_embd.weight has ${vocabSize} rows`,
    );

  const config: LlamaConfig = {
    dim,
    hiddenDim: ggufNumber(file, key('feed_forward_length')),
    nLayers: ggufNumber(file, key('block_count')),
    nHeads,
    nKvHeads: ggufNumber(file, key('attention.head_count_kv'), nHeads),
    vocabSize,
    maxSeqLen: ggufNumber(file, key('context_length')),
    normEps: ggufNumber(file, key('attention.layer_norm_rms_epsilon')),
    ropeTheta: ggufNumber(file, key('rope.freq_base'), 10000),
    tiedClassifier: !file.tensors.has('output.weight'),
  };
  try {
    validateConfig(config);
  } catch (e) {
    throw new Error(`GGUF file ${file.path}: ${e instanceof Error ? e.message : String(e)}`);
  }
  return config;
}

/** GGUF dims are innermost-first; a row-major [out, in] matrix is stored as dims [in, out]. */
function ggufDimsFor(shape: number[]): number[] {
  return [...shape].reverse();
}

/**
 * Loads a llama-architecture GGUF model as float32 weights. Every tensor's presence, shape and type
 * is checked before any data is read; tensors are then read and de-quantised one at a time.
 */
export function loadGgufCheckpoint(path: string): { weights: LlamaWeights; gguf: GgufFile } {
  const gguf = readGguf(path);
  const config = llamaConfigFromGguf(gguf);
  const shapes = weightShapes(config);

  const wanted: { name: string; shape: number[]; role: string }[] = [
    { name: 'token_embd.weight', shape: shapes.tokEmbedding, role: 'tokEmbedding' },
    { name: 'output_norm.weight', shape: shapes.finalNorm, role: 'finalNorm' },
  ];
  if (!config.tiedClassifier)
    wanted.push({ name: 'output.weight', shape: shapes.classifier, role: 'classifier' });
  for (let l = 0; l < config.nLayers; l++)
    for (const t of LAYER_TENSORS)
      wanted.push({
        name: `blk.${l}.${LAYER_GGUF_NAMES[t]}.weight`,
        shape: shapes[t],
        role: `layers[${l}].${t}`,
      });

  for (const { name, shape, role } of wanted) {
    const info = gguf.tensors.get(name);
    if (!info) throw new Error(`GGUF file ${path} has no tensor ${name} (needed for ${role})`);
    const dims = ggufDimsFor(shape);
    if (info.dims.length !== dims.length || info.dims.some((d, i) => d !== dims[i]))
      throw new Error(
        `GGUF file ${path}: tensor ${name} has dims [${info.dims.join(', ')}], but the config needs [${dims.join(', ')}] ` +
          `(row-major [${shape.join(', ')}]) for ${role}`,
      );
    if (!isSupportedGgmlType(info.type))
      throw new Error(
        `tensor ${name} has type ${info.typeName}, which cprec cannot de-quantise (supported: ${supportedGgmlTypeNames()})`,
      );
  }
  const expected = new Set(wanted.map((w) => w.name));
  const extra = [...gguf.tensors.keys()].filter((n) => !expected.has(n));
  if (extra.length > 0)
    throw new Error(
      `GGUF file ${path} has tensors a llama decoder does not use, so it is not a model cprec can run faithfully: ` +
        `${extra.slice(0, 5).join(', ')}${extra.length > 5 ? ` and ${extra.length - 5} more` : ''}`,
    );

  const reader = new GgufTensorReader(gguf);
  try {
    const read = (name: string): Float32Array => reader.read(name);
    const layers: LayerWeights[] = [];
    for (let l = 0; l < config.nLayers; l++) {
      const layer = {} as LayerWeights;
      for (const t of LAYER_TENSORS) layer[t] = read(`blk.${l}.${LAYER_GGUF_NAMES[t]}.weight`);
      layers.push(layer);
    }
    const weights: LlamaWeights = {
      config,
      tokEmbedding: read('token_embd.weight'),
      layers,
      finalNorm: read('output_norm.weight'),
      classifier: config.tiedClassifier ? undefined : read('output.weight'),
    };
    return { weights, gguf };
  } finally {
    reader.close();
  }
}
