import * as tf from '@tensorflow/tfjs-core';
import { groupedAttention } from './kernels/attention';
import {
  fusedTrainingAvailable,
  loraProjections,
  ProjectionSpec,
  rmsNorm,
  rope,
  swiglu,
} from './kernels/training-ops';
import { fusedDecoderAvailable, fusedDecoderLayer } from './kernels/decoder-layer';
import { embeddingLookup, injectRows } from './embedding';
import { LlamaConfig, LoraConfig, LoraTarget, validateConfig } from './types';
import { LAYER_TENSORS, LayerWeights, LlamaWeights } from './weights';

/** Base weights of one block as tf.Variables (non-trainable unless full fine-tuning is asked for). */
export type LayerParams = Record<keyof LayerWeights, tf.Variable>;

/** The weight each LoRA target adapts. */
export const LORA_TARGET_WEIGHT: Record<LoraTarget, keyof LayerWeights> = {
  q: 'wq',
  k: 'wk',
  v: 'wv',
  o: 'wo',
  w1: 'w1',
  w2: 'w2',
  w3: 'w3',
};

/** One adapter: ΔW = (alpha/rank)·B·A with A [rank, in] and B [out, rank]. */
export interface LoraPair {
  a: tf.Variable;
  b: tf.Variable;
}

/** Adapters attached to a model, keyed `layers.<l>.<target>`. */
export interface LoraState {
  config: LoraConfig;
  scale: number;
  adapters: Map<string, LoraPair>;
  /** When merged, W already includes ΔW and the adapter path is skipped; `originals` restores W. */
  merged: boolean;
  originals: Map<string, tf.Tensor>;
}

export function loraKey(layer: number, target: LoraTarget): string {
  return `layers.${layer}.${target}`;
}

/** Token embeddings supplied from outside (LLaRA hybrid prompts): row k replaces position positions[k] = [batch, t]. */
export interface InjectedEmbeddings {
  positions: ReadonlyArray<readonly [number, number]>;
  /** [K, dim], one row per entry of `positions`. */
  vectors: tf.Tensor2D;
}

export interface ForwardOptions {
  /**
   * [B, T] with 1 for real tokens and 0 for padding. Either side may be padded: positions are the
   * running count of real tokens (cumsum − 1), and padded keys are masked out. Batched generation
   * uses LEFT padding so every row's next token lands in the same column.
   */
  attentionMask?: tf.Tensor2D | number[][];
  /** Incremental decoding: keys/values of earlier columns; appended to in place. */
  cache?: KVCache;
  inject?: InjectedEmbeddings;
  /** Enables LoRA dropout. */
  training?: boolean;
  /** Only compute logits for the last column (generation), returning [B, 1, vocab]. */
  lastOnly?: boolean;
  /**
   * The input rows continue prompts held in another cache, which is read but not extended: row i
   * attends to the cached columns of `prefix.cache` row `prefix.rows[i]` (candidate scoring:
   * many continuations after one prompt's prefill). Exclusive with `cache`. The fused decoder
   * reads the shared rows in place; the op graph gathers a per-row copy of the cache.
   */
  prefix?: { cache: KVCache; rows: readonly number[] };
}

/**
 * Per-layer keys/values (after RoPE) of the columns processed so far, [B, nKvHeads, Tc, headSize],
 * grown by concatenation. `mask` [B, Tc] is kept only once padding has been seen.
 */
export class KVCache {
  keys: (tf.Tensor4D | null)[];
  values: (tf.Tensor4D | null)[];
  mask: tf.Tensor2D | null = null;
  length = 0;
  constructor(
    readonly nLayers: number,
    public batch: number,
  ) {
    this.keys = new Array<tf.Tensor4D | null>(nLayers).fill(null);
    this.values = new Array<tf.Tensor4D | null>(nLayers).fill(null);
  }

  /** A new cache whose single row is repeated `n` times (shared prompt prefix for batched candidates). */
  repeatBatch(n: number): KVCache {
    if (this.batch !== 1) throw new Error('repeatBatch needs a batch-1 cache');
    const out = new KVCache(this.nLayers, n);
    out.length = this.length;
    for (let l = 0; l < this.nLayers; l++) {
      const k = this.keys[l];
      const v = this.values[l];
      out.keys[l] = k ? tf.keep(tf.tile(k, [n, 1, 1, 1])) : null;
      out.values[l] = v ? tf.keep(tf.tile(v, [n, 1, 1, 1])) : null;
    }
    out.mask = this.mask ? tf.keep(tf.tile(this.mask, [n, 1])) : null;
    return out;
  }

  /** A new cache whose row i is row `rowsOf[i]` of this one (`repeatBatch` for any rows). */
  gatherRows(rowsOf: readonly number[]): KVCache {
    const out = new KVCache(this.nLayers, rowsOf.length);
    out.length = this.length;
    tf.tidy(() => {
      const index = tf.tensor1d(Array.from(rowsOf), 'int32');
      for (let l = 0; l < this.nLayers; l++) {
        const k = this.keys[l];
        const v = this.values[l];
        out.keys[l] = k ? tf.keep(tf.gather(k, index)) : null;
        out.values[l] = v ? tf.keep(tf.gather(v, index)) : null;
      }
      out.mask = this.mask ? tf.keep(tf.gather(this.mask, index)) : null;
    });
    return out;
  }

  dispose(): void {
    for (const t of [...this.keys, ...this.values, this.mask]) t?.dispose();
    this.keys.fill(null);
    this.values.fill(null);
    this.mask = null;
    this.length = 0;
  }
}

let dropoutSeed = 1;

/**
 * LLaMA-architecture decoder (llama2.c `forward`, batched): token embedding, per block
 * RMSNorm → GQA attention with interleaved RoPE → residual, RMSNorm → SwiGLU → residual; final
 * RMSNorm and a tied or separate classifier. Pure tfjs ops, so any backend runs it.
 */
export class LlamaModel {
  readonly config: LlamaConfig;
  readonly tokEmbedding: tf.Variable;
  readonly layers: LayerParams[];
  readonly finalNorm: tf.Variable;
  readonly classifier: tf.Variable | null;
  lora: LoraState | null = null;
  private readonly ropeCos: tf.Tensor2D;
  private readonly ropeSin: tf.Tensor2D;
  /** x·R swaps each adjacent pair with a sign: (x0, x1) → (−x1, x0). */
  private readonly ropeRot: tf.Tensor2D;
  /** Tensors owned by the model this one shares its base with (never disposed here). */
  private readonly borrowed = new Set<tf.Tensor>();
  private disposed = false;

  /**
   * From host weights (uploads them as tfjs variables), or sharing the base tensors of another
   * model: `new LlamaModel(base)` uploads nothing — its weights, norms and RoPE tables are the
   * base's, so one base in memory can carry several LoRA adapters (one per model sharing it). A
   * sharing model never writes or disposes the shared tensors: merging LoRA into it gives the
   * adapted projections private copies (`mergeLora`), and the base must outlive it.
   */
  constructor(source: LlamaWeights | LlamaModel) {
    if (source instanceof LlamaModel) {
      if (source.disposed) throw new Error('cannot share the weights of a disposed model');
      this.config = source.config;
      this.tokEmbedding = source.tokEmbedding;
      // Own parameter records (a merge replaces entries here), holding the base's tensors.
      this.layers = source.layers.map((p) => ({ ...p }));
      this.finalNorm = source.finalNorm;
      this.classifier = source.classifier;
      this.ropeCos = source.ropeCos;
      this.ropeSin = source.ropeSin;
      this.ropeRot = source.ropeRot;
      for (const v of source.baseVariables().values()) this.borrowed.add(v);
      for (const t of [source.ropeCos, source.ropeSin, source.ropeRot]) this.borrowed.add(t);
      return;
    }
    const weights = source;
    const c = { ...weights.config };
    validateConfig(c);
    this.config = c;
    const hs = c.dim / c.nHeads;
    const kv = c.nKvHeads * hs;
    const shapes: Record<keyof LayerWeights, [number] | [number, number]> = {
      attnNorm: [c.dim],
      wq: [c.dim, c.dim],
      wk: [kv, c.dim],
      wv: [kv, c.dim],
      wo: [c.dim, c.dim],
      ffnNorm: [c.dim],
      w1: [c.hiddenDim, c.dim],
      w2: [c.dim, c.hiddenDim],
      w3: [c.hiddenDim, c.dim],
    };
    const variable = (data: Float32Array, shape: number[], what: string): tf.Variable => {
      const n = shape.reduce((a, b) => a * b, 1);
      if (data.length !== n)
        throw new Error(
          `weight ${what} has ${data.length} values, expected ${n} for shape [${shape.join(', ')}]`,
        );
      return tf.tidy(() => tf.variable(tf.tensor(data, shape, 'float32'), false));
    };
    this.tokEmbedding = variable(weights.tokEmbedding, [c.vocabSize, c.dim], 'tokEmbedding');
    if (weights.layers.length !== c.nLayers)
      throw new Error(`checkpoint has ${weights.layers.length} layers, config says ${c.nLayers}`);
    this.layers = weights.layers.map((lw, l) => {
      const p = {} as LayerParams;
      for (const k of LAYER_TENSORS) p[k] = variable(lw[k], shapes[k], `layers.${l}.${k}`);
      return p;
    });
    this.finalNorm = variable(weights.finalNorm, [c.dim], 'finalNorm');
    if (c.tiedClassifier) this.classifier = null;
    else {
      if (!weights.classifier) throw new Error('config has an untied classifier but the checkpoint has none');
      this.classifier = variable(weights.classifier, [c.vocabSize, c.dim], 'classifier');
    }
    // RoPE tables in float32 arithmetic, as run.c computes them (powf/cosf on floats).
    const cos = new Float32Array(c.maxSeqLen * hs);
    const sin = new Float32Array(c.maxSeqLen * hs);
    for (let p = 0; p < c.maxSeqLen; p++) {
      for (let i = 0; i < hs; i += 2) {
        const freq = Math.fround(1 / Math.fround(Math.pow(c.ropeTheta, Math.fround(i / hs))));
        const val = Math.fround(p * freq);
        cos[p * hs + i] = cos[p * hs + i + 1] = Math.cos(val);
        sin[p * hs + i] = sin[p * hs + i + 1] = Math.sin(val);
      }
    }
    const rot = new Float32Array(hs * hs);
    for (let i = 0; i < hs; i += 2) {
      rot[(i + 1) * hs + i] = -1;
      rot[i * hs + i + 1] = 1;
    }
    this.ropeCos = tf.keep(tf.tensor2d(cos, [c.maxSeqLen, hs]));
    this.ropeSin = tf.keep(tf.tensor2d(sin, [c.maxSeqLen, hs]));
    this.ropeRot = tf.keep(tf.tensor2d(rot, [hs, hs]));
  }

  get headSize(): number {
    return this.config.dim / this.config.nHeads;
  }

  /** Base weights by stable name (`tokEmbedding`, `layers.<l>.<tensor>`, `finalNorm`, `classifier`). */
  baseVariables(): Map<string, tf.Variable> {
    const m = new Map<string, tf.Variable>();
    m.set('tokEmbedding', this.tokEmbedding);
    this.layers.forEach((p, l) => {
      for (const k of LAYER_TENSORS) m.set(`layers.${l}.${k}`, p[k]);
    });
    m.set('finalNorm', this.finalNorm);
    if (this.classifier) m.set('classifier', this.classifier);
    return m;
  }

  /** Adapter variables by name (`layers.<l>.<target>.lora_A` / `.lora_B`). */
  loraVariables(): Map<string, tf.Variable> {
    const m = new Map<string, tf.Variable>();
    if (!this.lora) return m;
    for (const [key, pair] of this.lora.adapters) {
      m.set(`${key}.lora_A`, pair.a);
      m.set(`${key}.lora_B`, pair.b);
    }
    return m;
  }

  /** Every variable the optimiser should update: trainable adapters, plus base weights if unfrozen. */
  trainableVariables(): Map<string, tf.Variable> {
    const m = new Map<string, tf.Variable>();
    for (const [k, v] of this.baseVariables()) if (v.trainable) m.set(k, v);
    for (const [k, v] of this.loraVariables()) if (v.trainable) m.set(k, v);
    return m;
  }

  /** Full fine-tuning switch: base weights are frozen by default (LoRA training). */
  setBaseTrainable(trainable: boolean): void {
    for (const v of this.baseVariables().values()) v.trainable = trainable;
  }

  /** Reads the base weights back to host arrays (for writing checkpoints). */
  toWeights(): LlamaWeights {
    const read = (v: tf.Variable): Float32Array => v.dataSync() as Float32Array;
    return {
      config: { ...this.config },
      tokEmbedding: read(this.tokEmbedding).slice(),
      layers: this.layers.map((p) => {
        const lw = {} as LayerWeights;
        for (const k of LAYER_TENSORS) lw[k] = read(p[k]).slice();
        return lw;
      }),
      finalNorm: read(this.finalNorm).slice(),
      classifier: this.classifier ? read(this.classifier).slice() : undefined,
    };
  }

  private rmsNorm(x: tf.Tensor, w: tf.Tensor): tf.Tensor {
    return rmsNorm(x, w, this.config.normEps);
  }

  /**
   * x·Wᵀ (+ LoRA path) for each target, all reading x [N, in]; `residual` is added to the first
   * result. One fused call on the native cpu kernels (training-ops.ts), the op graph elsewhere.
   */
  private project(
    x: tf.Tensor2D,
    layer: number,
    targets: readonly LoraTarget[],
    training: boolean,
    residual?: tf.Tensor2D,
  ): tf.Tensor2D[] {
    const lora = this.lora;
    const specs = targets.map((target, i): ProjectionSpec => {
      const spec: ProjectionSpec = { w: this.layers[layer][LORA_TARGET_WEIGHT[target]] as tf.Tensor2D };
      const pair = lora && !lora.merged ? lora.adapters.get(loraKey(layer, target)) : undefined;
      if (lora && pair) {
        spec.lora = { a: pair.a as tf.Tensor2D, b: pair.b as tf.Tensor2D };
        if (training && lora.config.dropout > 0) {
          // Fused: the kernel draws the mask from a hash (no [rows, in] uniforms drawn in JS per
          // projection); elsewhere the op graph's tf.dropout, as before.
          if (fusedTrainingAvailable())
            spec.lora.dropout = { rate: lora.config.dropout, seed: dropoutSeed++ };
          else spec.lora.input = tf.dropout(x, lora.config.dropout, undefined, dropoutSeed++) as tf.Tensor2D;
        }
      }
      if (i === 0 && residual) spec.residual = residual;
      return spec;
    });
    return loraProjections(x, specs, lora?.scale ?? 1);
  }

  /**
   * Logits [B, T, vocab] (or [B, 1, vocab] with `lastOnly`) for int token ids [B, T].
   * With a cache, the ids are the next columns after the cached ones and the cache is extended;
   * with `prefix`, they continue rows of a shared cache that stays as it is.
   *
   * Blocks run as one fused native kernel each (`fusedDecoderLayer`) when nothing needs their
   * gradient — not training, no gradient being recorded, LoRA merged or absent — and the native
   * cpu kernels are active; otherwise as the op graph below, on any backend.
   */
  forward(inputIds: tf.Tensor2D | number[][], opts: ForwardOptions = {}): tf.Tensor3D {
    return this.run(inputIds, opts, null) as tf.Tensor3D;
  }

  /**
   * Logits [K, vocab] of the flat positions `rows` (row b·T + t of the batch) only, from the same
   * forward pass: the final norm and the classifier — 49,152 × 576 on SmolLM2, the largest product
   * of a step — run on K rows instead of B·T. A masked loss needs no more (an SFT batch counts
   * ~10 answer tokens of ~500); each row's logits equal `forward`'s for that position.
   */
  logitsAt(
    inputIds: tf.Tensor2D | number[][],
    rows: readonly number[],
    opts: Omit<ForwardOptions, 'lastOnly'> = {},
  ): tf.Tensor2D {
    if ((opts as ForwardOptions).lastOnly)
      throw new Error('logitsAt selects its own rows; lastOnly does not apply');
    return this.run(inputIds, opts, rows) as tf.Tensor2D;
  }

  private run(
    inputIds: tf.Tensor2D | number[][],
    opts: ForwardOptions,
    select: readonly number[] | null,
  ): tf.Tensor {
    if (this.disposed) throw new Error('model was disposed');
    const shared = opts.prefix;
    if (shared && opts.cache)
      throw new Error('forward takes either a cache to extend or a shared prefix, not both');
    const fused = this.canFuse(opts);
    if (shared && !fused) {
      // The op graph reads a cache row per input row: gather them into a temporary cache.
      const rows = shared.cache.gatherRows(shared.rows);
      try {
        return this.run(inputIds, { ...opts, prefix: undefined, cache: rows }, select);
      } finally {
        rows.dispose();
      }
    }
    const c = this.config;
    const cache = opts.cache;
    const source = cache ?? shared?.cache;
    const past = source ? source.length : 0;
    const oldCache: tf.Tensor[] = [];
    const newColumns = Array.isArray(inputIds) ? (inputIds[0]?.length ?? 0) : inputIds.shape[1];
    const out = tf.tidy(() => {
      const ids = Array.isArray(inputIds)
        ? tf.tensor2d(inputIds.flat(), [inputIds.length, inputIds[0]?.length ?? 0], 'int32')
        : tf.cast(inputIds, 'int32');
      const [B, T] = ids.shape as [number, number];
      if (T === 0) throw new Error('forward needs at least one column');
      if (cache && cache.batch !== B)
        throw new Error(`cache batch ${cache.batch} differs from input batch ${B}`);
      if (shared) {
        if (shared.rows.length !== B)
          throw new Error(`prefix rows name ${shared.rows.length} cache rows for a batch of ${B}`);
        for (const r of shared.rows)
          if (!Number.isInteger(r) || r < 0 || r >= shared.cache.batch)
            throw new Error(`prefix row ${r} outside the cache's ${shared.cache.batch} rows`);
      }
      if (past + T > c.maxSeqLen)
        throw new Error(`sequence of ${past + T} tokens exceeds maxSeqLen ${c.maxSeqLen}`);
      const newMask =
        opts.attentionMask === undefined
          ? null
          : Array.isArray(opts.attentionMask)
            ? tf.tensor2d(opts.attentionMask.flat(), [B, T], 'float32')
            : tf.cast(opts.attentionMask, 'float32');
      if (newMask && (newMask.shape[0] !== B || newMask.shape[1] !== T))
        throw new Error(`attentionMask shape [${newMask.shape.join(', ')}] differs from ids [${B}, ${T}]`);
      const sourceMask = source?.mask ?? null;
      const prevMask =
        past > 0 && sourceMask
          ? shared
            ? (tf.gather(sourceMask, tf.tensor1d(Array.from(shared.rows), 'int32')) as tf.Tensor2D)
            : sourceMask
          : null;

      // Positions: running count of real tokens when padding is present, else column index.
      const anyMask = newMask !== null || prevMask !== null;
      let fullMask: tf.Tensor2D | null = null;
      let positions: tf.Tensor;
      if (anyMask) {
        const cur = newMask ?? tf.ones([B, T]);
        const before = past > 0 ? (prevMask ?? tf.ones([B, past])) : null;
        fullMask = (before ? tf.concat([before, cur], 1) : cur) as tf.Tensor2D;
        positions = tf.cast(tf.slice(tf.relu(tf.sub(tf.cumsum(fullMask, 1), 1)), [0, past], [B, T]), 'int32');
      } else {
        positions = tf.reshape(tf.range(past, past + T, 1, 'int32'), [1, T]);
      }
      const flatPositions = tf.reshape(positions, [-1]);
      const cos = tf.gather(this.ropeCos, flatPositions) as tf.Tensor2D; // [T or B·T, hs]
      const sin = tf.gather(this.ropeSin, flatPositions) as tf.Tensor2D;

      let x: tf.Tensor2D = embeddingLookup(
        this.tokEmbedding as tf.Tensor2D,
        tf.reshape(ids, [-1]) as tf.Tensor1D,
      );
      if (opts.inject && opts.inject.positions.length > 0) {
        const rows = opts.inject.positions.map(([b, t]) => {
          if (b < 0 || b >= B || t < 0 || t >= T)
            throw new Error(`injected position [${b}, ${t}] outside batch [${B}, ${T}]`);
          return b * T + t;
        });
        x = injectRows(x, rows, opts.inject.vectors);
      }
      const extend = (l: number, k: tf.Tensor4D, v: tf.Tensor4D): void => {
        if (!cache) return;
        const pk = cache.keys[l];
        const pv = cache.values[l];
        if (pk && pv) {
          k = tf.concat([pk, k], 2);
          v = tf.concat([pv, v], 2);
          oldCache.push(pk, pv);
        }
        cache.keys[l] = tf.keep(k);
        cache.values[l] = tf.keep(v);
      };
      if (fused) {
        const pastRows = shared ? Int32Array.from(shared.rows) : null;
        for (let l = 0; l < c.nLayers; l++) {
          const r = fusedDecoderLayer(this.layers[l], {
            x,
            batch: B,
            time: T,
            cos,
            sin,
            pastK: source?.keys[l] ?? null,
            pastV: source?.values[l] ?? null,
            pastRows,
            pastMask: prevMask,
            newMask,
            heads: c.nHeads,
            kvHeads: c.nKvHeads,
            eps: c.normEps,
          });
          x = r.x;
          extend(l, r.k, r.v);
        }
      } else {
        x = this.graphLayers(x, {
          B,
          T,
          past,
          cos,
          sin,
          fullMask,
          training: opts.training ?? false,
          extend,
          cache,
        });
      }
      if (cache && fullMask) {
        if (cache.mask) oldCache.push(cache.mask);
        cache.mask = tf.keep(fullMask);
      }
      if (select) {
        for (const r of select)
          if (!Number.isInteger(r) || r < 0 || r >= B * T)
            throw new Error(`logit row ${r} outside the batch's ${B * T} positions`);
        const picked = selectRows(x, select);
        const normed = this.rmsNorm(picked, this.finalNorm) as tf.Tensor2D;
        return tf.matMul(normed, (this.classifier ?? this.tokEmbedding) as tf.Tensor2D, false, true);
      }
      let h = x;
      let rowsT = T;
      if (opts.lastOnly) {
        h = tf.reshape(tf.slice(tf.reshape(x, [B, T, c.dim]), [0, T - 1, 0], [B, 1, c.dim]), [B, c.dim]);
        rowsT = 1;
      }
      h = this.rmsNorm(h, this.finalNorm) as tf.Tensor2D;
      const logits = tf.matMul(h, (this.classifier ?? this.tokEmbedding) as tf.Tensor2D, false, true);
      return tf.reshape(logits, [B, rowsT, c.vocabSize]) as tf.Tensor3D;
    });
    if (cache) {
      cache.length = past + newColumns;
      for (const t of oldCache) t.dispose();
    }
    return out;
  }

  /** Whether this forward may use the fused native blocks (which have no gradient). */
  private canFuse(opts: ForwardOptions): boolean {
    if (opts.training) return false;
    if (tf.engine().state.gradientDepth > 0) return false;
    if (this.lora && !this.lora.merged && this.lora.adapters.size > 0) return false;
    return fusedDecoderAvailable();
  }

  /** The decoder blocks as tfjs ops (differentiable, any backend). */
  private graphLayers(
    input: tf.Tensor2D,
    s: {
      B: number;
      T: number;
      past: number;
      /** RoPE tables of the new columns, [T or B·T, hs]. */
      cos: tf.Tensor2D;
      sin: tf.Tensor2D;
      fullMask: tf.Tensor2D | null;
      training: boolean;
      extend: (l: number, k: tf.Tensor4D, v: tf.Tensor4D) => void;
      cache: KVCache | undefined;
    },
  ): tf.Tensor2D {
    const c = this.config;
    const hs = this.headSize;
    const kvMul = c.nHeads / c.nKvHeads;
    const { B, T, past, cos, sin, fullMask, training } = s;
    // Attention bias [1 or B, 1, T, Tk]: causal by column, plus padded keys.
    const Tk = past + T;
    let bias: tf.Tensor4D | null = null;
    if (T > 1 || fullMask) {
      const causal = new Float32Array(T * Tk);
      for (let i = 0; i < T; i++) for (let j = past + i + 1; j < Tk; j++) causal[i * Tk + j] = -1e9;
      bias = tf.tensor4d(causal, [1, 1, T, Tk]);
      if (fullMask)
        bias = tf.add(bias, tf.reshape(tf.mul(tf.sub(1, fullMask), -1e9), [B, 1, 1, Tk])) as tf.Tensor4D;
    }
    const scale = 1 / Math.sqrt(hs);
    let x = input;
    for (let l = 0; l < c.nLayers; l++) {
      const p = this.layers[l];
      const xb = this.rmsNorm(x, p.attnNorm) as tf.Tensor2D;
      const [qf, kf, vf] = this.project(xb, l, ['q', 'k', 'v'], training);
      // RoPE writes heads first ([B, heads, T, hs]) for attention; 1/sqrt(hs) is applied to q
      // (B·T·dim values) rather than to the larger score matrix.
      const q = rope(tf.reshape(qf, [B, T, c.nHeads, hs]), cos, sin, {
        scale,
        headsFirst: true,
        rotation: this.ropeRot,
      });
      let k = rope(tf.reshape(kf, [B, T, c.nKvHeads, hs]), cos, sin, {
        headsFirst: true,
        rotation: this.ropeRot,
      });
      let v = tf.transpose(tf.reshape(vf, [B, T, c.nKvHeads, hs]), [0, 2, 1, 3]) as tf.Tensor4D;
      if (s.cache) {
        s.extend(l, k, v);
        k = s.cache.keys[l] as tf.Tensor4D;
        v = s.cache.values[l] as tf.Tensor4D;
      }
      // Group query heads by their kv head: [B, nKv, kvMul*T, hs] so no k/v repetition is needed.
      const qg = tf.reshape(q, [B, c.nKvHeads, kvMul * T, hs]);
      const att = groupedAttention(qg as tf.Tensor4D, k, v, bias, T); // [B, nKv, kvMul*T, hs]
      const merged = tf.reshape(tf.transpose(tf.reshape(att, [B, c.nHeads, T, hs]), [0, 2, 1, 3]), [
        B * T,
        c.dim,
      ]) as tf.Tensor2D;
      [x] = this.project(merged, l, ['o'], training, x);
      const hb = this.rmsNorm(x, p.ffnNorm) as tf.Tensor2D;
      const [gate, up] = this.project(hb, l, ['w1', 'w3'], training);
      [x] = this.project(swiglu(gate, up), l, ['w2'], training, x);
    }
    return x;
  }

  /** Whether `t` belongs to the model this one shares its base with (see the constructor). */
  borrows(t: tf.Tensor): boolean {
    return this.borrowed.has(t);
  }

  /** Releases what this model owns; tensors shared with a base model are left to it. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    const release = (t: tf.Tensor) => {
      if (!this.borrowed.has(t)) t.dispose();
    };
    for (const v of this.baseVariables().values()) release(v);
    for (const v of this.loraVariables().values()) v.dispose();
    if (this.lora) for (const t of this.lora.originals.values()) release(t);
    release(this.ropeCos);
    release(this.ropeSin);
    release(this.ropeRot);
  }
}

/**
 * Rows `rows` of `x`. tf.gather's gradient is UnsortedSegmentSum, which tfjs-backend-wasm does not
 * have, so there the rows are picked by a one-hot product instead (its gradient is a product too;
 * exact for finite values: every output is one x value times 1 plus zeros). Other backends gather.
 */
function selectRows(x: tf.Tensor2D, rows: readonly number[]): tf.Tensor2D {
  const index = tf.tensor1d(Int32Array.from(rows), 'int32');
  if (tf.getKernel('UnsortedSegmentSum', tf.getBackend()) !== undefined)
    return tf.gather(x, index) as tf.Tensor2D;
  return tf.matMul(tf.cast(tf.oneHot(index, x.shape[0]), 'float32'), x);
}
