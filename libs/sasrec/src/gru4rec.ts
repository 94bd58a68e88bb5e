import * as tf from '@tensorflow/tfjs-core';
import { embeddingLookup } from './embedding';
import { linear, maybeDropout, timelineMask, WindowBatch } from './layers';
import { NeuralSequenceModel } from './sequence-model';
import { Gru4RecConfig, resolveGru4RecConfig } from './types';
import { readWeightsDir } from './weights-io';

/**
 * GRU4Rec (Hidasi et al., ICLR 2016) as a next-item model over the same left-padded windows as
 * SASRec: item embedding → one GRU layer unrolled over the window → linear projection back to the
 * embedding width; an item's score is the dot product with its embedding (output and input
 * embeddings shared, as GRU4Rec's "constrained embedding" variant). Trained on one sampled
 * negative per position (items the user never interacted with), by default with the same BCE loss
 * as SASRec so the two sequence models differ only in the encoder; `loss: 'bpr'` gives the paper's
 * BPR. The session-parallel mini-batches of the paper are replaced by per-user windows, which is
 * what the 20-candidate leave-one-out protocol needs.
 *
 * The GRU cell is written with tfjs ops because tfjs-core has no recurrent layers (those live in
 * tfjs-layers, which this project does not use). Gates follow the cuDNN/PyTorch form:
 * r = σ(x·Wxr + bxr + h·Whr + bhr), z = σ(…), n = tanh(x·Wxn + bxn + r ⊙ (h·Whn + bhn)),
 * h' = (1 − z) ⊙ n + z ⊙ h. The input projections of all steps are one matmul; padding steps keep
 * h at its previous value (0 before the first item), so left padding is invisible.
 */
export class Gru4Rec extends NeuralSequenceModel {
  readonly name = 'gru4rec';
  readonly config: Gru4RecConfig;
  private readonly itemEmbedding: tf.Variable;
  private readonly inputKernel: tf.Variable;
  private readonly inputBias: tf.Variable;
  private readonly recurrentKernel: tf.Variable;
  private readonly recurrentBias: tf.Variable;
  private readonly outputKernel: tf.Variable;
  private readonly outputBias: tf.Variable;

  constructor(config: Partial<Gru4RecConfig> & { numItems: number }) {
    const resolved = resolveGru4RecConfig(config);
    super(resolved);
    this.config = resolved;
    const { numItems, embeddingDim: e, hiddenDim: h } = resolved;
    const p = this.params;
    this.itemEmbedding = p.add('item_embedding', [numItems + 1, e], { kind: 'glorot' });
    // Gate order in the 3h-wide kernels: reset, update, candidate.
    this.inputKernel = p.add('gru.input_kernel', [e, 3 * h], { kind: 'glorot' });
    this.inputBias = p.add('gru.input_bias', [3 * h], { kind: 'zeros' });
    this.recurrentKernel = p.add('gru.recurrent_kernel', [h, 3 * h], { kind: 'glorot' });
    this.recurrentBias = p.add('gru.recurrent_bias', [3 * h], { kind: 'zeros' });
    this.outputKernel = p.add('output.kernel', [h, e], { kind: 'glorot' });
    this.outputBias = p.add('output.bias', [e], { kind: 'zeros' });
  }

  /** Rebuilds a model from a directory written by `save` (config from the manifest). */
  static async load(dir: string): Promise<Gru4Rec> {
    const encoded = await readWeightsDir(dir);
    const model = new Gru4Rec(encoded.manifest.config as unknown as Gru4RecConfig);
    try {
      model.loadEncodedWeights(encoded);
    } catch (error) {
      model.dispose();
      throw error;
    }
    return model;
  }

  configRecord(): Record<string, unknown> {
    return { ...this.config };
  }

  protected architecture(config: Record<string, unknown>): Record<string, unknown> {
    const { numItems, maxLen, embeddingDim, hiddenDim } = config;
    return { numItems, maxLen, embeddingDim, hiddenDim };
  }

  protected itemTable(): tf.Variable {
    return this.itemEmbedding;
  }

  protected encode(inputs: WindowBatch, training: boolean): tf.Tensor3D {
    return tf.tidy(() => {
      const { hiddenDim, dropout } = this.config;
      const batch = inputs.size;
      const embedded = maybeDropout(
        embeddingLookup(this.itemEmbedding as tf.Tensor2D, inputs.tensor),
        dropout,
        training,
        this.nextSeed(),
      );
      const projected = linear(embedded, this.inputKernel as tf.Tensor2D, this.inputBias as tf.Tensor1D);
      const steps = tf.unstack(projected, 1) as tf.Tensor2D[];
      // Full-width masks: same-shape element-wise ops are the fast path (see layers.ts).
      const isItem = tf.unstack(timelineMask(inputs, hiddenDim), 1) as tf.Tensor2D[];
      let state = tf.zeros([batch, hiddenDim]) as tf.Tensor2D;
      const outputs: tf.Tensor2D[] = [];
      steps.forEach((step, t) => {
        const [xr, xz, xn] = tf.split(step, 3, 1);
        const recurrent = tf.add(tf.matMul(state, this.recurrentKernel as tf.Tensor2D), this.recurrentBias);
        const [hr, hz, hn] = tf.split(recurrent, 3, 1);
        const reset = tf.sigmoid(tf.add(xr, hr));
        const update = tf.sigmoid(tf.add(xz, hz));
        const candidate = tf.tanh(tf.add(xn, tf.mul(reset, hn)));
        const next = tf.add(candidate, tf.mul(update, tf.sub(state, candidate)));
        // Padding step: keep the previous state.
        state = tf.add(state, tf.mul(isItem[t], tf.sub(next, state))) as tf.Tensor2D;
        outputs.push(state);
      });
      const hidden = maybeDropout(tf.stack(outputs, 1), dropout, training, this.nextSeed());
      return linear(hidden, this.outputKernel as tf.Tensor2D, this.outputBias as tf.Tensor1D) as tf.Tensor3D;
    });
  }
}
