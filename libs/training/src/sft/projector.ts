import { readFileSync, writeFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { mulberry32, parseSafetensors, serializeSafetensors, type TensorToWrite } from '@cprec/lm';

export interface ProjectorConfig {
  /** Width of the recommender's item embeddings (SASRec hidden size). */
  inDim: number;
  /** Width of the hidden layer (LLaRA uses the LM width). */
  hiddenDim: number;
  /** The LM's embedding width. */
  outDim: number;
}

export const PROJECTOR_FORMAT = 'cprec-projector/1';

/**
 * LLaRA's item projector: a 2-layer MLP (Linear → GELU → Linear) mapping a recommender's item
 * embedding into the LM's token-embedding space, where it replaces a placeholder token.
 * Trainable; the recommender itself stays frozen.
 */
export class ItemProjector {
  readonly w1: tf.Variable;
  readonly b1: tf.Variable;
  readonly w2: tf.Variable;
  readonly b2: tf.Variable;

  constructor(
    readonly config: ProjectorConfig,
    seed = 1,
  ) {
    for (const [k, v] of Object.entries(config))
      if (!Number.isInteger(v) || v <= 0)
        throw new Error(`projector ${k} must be a positive integer, got ${v}`);
    const rand = mulberry32(seed);
    // Glorot-uniform weights, zero biases (PyTorch's nn.Linear uses a similar fan-in bound).
    const glorot = (rows: number, cols: number): tf.Tensor2D => {
      const bound = Math.sqrt(6 / (rows + cols));
      const a = new Float32Array(rows * cols);
      for (let i = 0; i < a.length; i++) a[i] = (rand() * 2 - 1) * bound;
      return tf.tensor2d(a, [rows, cols]);
    };
    this.w1 = tf.tidy(() => tf.variable(glorot(config.inDim, config.hiddenDim), true, undefined));
    this.b1 = tf.tidy(() => tf.variable(tf.zeros([config.hiddenDim]), true));
    this.w2 = tf.tidy(() => tf.variable(glorot(config.hiddenDim, config.outDim), true));
    this.b2 = tf.tidy(() => tf.variable(tf.zeros([config.outDim]), true));
  }

  /** [n, inDim] → [n, outDim]. GELU by its tanh approximation (tfjs-core has no gelu op). */
  apply(x: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => {
      const h = tf.add(tf.matMul(x, this.w1), this.b1);
      const c = Math.sqrt(2 / Math.PI);
      const gelu = tf.mul(
        tf.mul(h, 0.5),
        tf.add(1, tf.tanh(tf.mul(tf.add(h, tf.mul(tf.pow(h, 3), 0.044715)), c))),
      );
      return tf.add(tf.matMul(gelu, this.w2), this.b2) as tf.Tensor2D;
    });
  }

  variables(): Map<string, tf.Variable> {
    return new Map([
      ['projector.w1', this.w1],
      ['projector.b1', this.b1],
      ['projector.w2', this.w2],
      ['projector.b2', this.b2],
    ]);
  }

  /** Copies the weights of `other` (same config) into this projector. */
  assignFrom(other: ItemProjector): void {
    for (const [name, v] of this.variables()) v.assign(other.variables().get(name)!);
  }

  /** Writes the weights as safetensors, the config in its metadata. */
  save(path: string, metadata: Record<string, string> = {}): void {
    const tensors = new Map<string, TensorToWrite>();
    for (const [name, v] of this.variables())
      tensors.set(name, { shape: v.shape, data: (v.dataSync() as Float32Array).slice() });
    writeFileSync(
      path,
      serializeSafetensors(tensors, {
        ...metadata,
        format: PROJECTOR_FORMAT,
        config: JSON.stringify(this.config),
      }),
    );
  }

  static load(path: string): ItemProjector {
    const file = parseSafetensors(readFileSync(path));
    if (file.metadata?.format !== PROJECTOR_FORMAT)
      throw new Error(`${path}: not a cprec projector (format ${String(file.metadata?.format)})`);
    const projector = new ItemProjector(JSON.parse(file.metadata.config ?? '{}') as ProjectorConfig);
    for (const [name, v] of projector.variables()) {
      const t = file.tensors.get(name);
      if (!t || t.shape.join(',') !== v.shape.join(',')) {
        projector.dispose();
        throw new Error(`${path}: projector tensor ${name} missing or of the wrong shape`);
      }
      tf.tidy(() => v.assign(tf.tensor(t.data, t.shape)));
    }
    return projector;
  }

  dispose(): void {
    for (const v of this.variables().values()) v.dispose();
  }
}
