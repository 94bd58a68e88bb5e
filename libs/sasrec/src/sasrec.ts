import * as tf from '@tensorflow/tfjs-core';
import { embeddingLookup } from './embedding';
import {
  AttentionWeights,
  causalPaddingBias,
  layerNorm,
  linear,
  maybeDropout,
  multiHeadAttention,
  timelineMask as buildTimelineMask,
  WindowBatch,
} from './layers';
import { NeuralSequenceModel } from './sequence-model';
import { resolveSasRecConfig, SasRecConfig } from './types';
import { readWeightsDir } from './weights-io';

interface BlockParams {
  attentionNorm: { gamma: tf.Variable; beta: tf.Variable };
  attention: AttentionWeights;
  feedForwardNorm: { gamma: tf.Variable; beta: tf.Variable };
  w1: tf.Variable;
  b1: tf.Variable;
  w2: tf.Variable;
  b2: tf.Variable;
}

/**
 * SASRec (Kang & McAuley, ICDM 2018), following the authors' code: item embedding scaled by √d plus
 * a learned absolute position embedding over the left-padded window; `numBlocks` blocks of
 * [layer norm → causal multi-head self-attention (queries normalised, keys/values not) → residual
 * → layer norm → point-wise feed-forward with residual], padding positions zeroed after every
 * block; a final layer norm. Trained with BCE on one sampled negative per position (negatives are
 * items the user never interacted with), Adam, padding positions masked out of the loss. An item's
 * score is the dot product of the last hidden state with the item's embedding.
 */
export class SasRec extends NeuralSequenceModel {
  readonly name = 'sasrec';
  readonly config: SasRecConfig;
  private readonly itemEmbedding: tf.Variable;
  private readonly positionEmbedding: tf.Variable;
  private readonly blocks: BlockParams[] = [];
  private readonly finalNorm: { gamma: tf.Variable; beta: tf.Variable };

  constructor(config: Partial<SasRecConfig> & { numItems: number }) {
    const resolved = resolveSasRecConfig(config);
    super({ ...resolved, loss: 'bce' });
    this.config = resolved;
    const { numItems, maxLen, hiddenDim: d } = resolved;
    const p = this.params;
    this.itemEmbedding = p.add('item_embedding', [numItems + 1, d], { kind: 'glorot' });
    this.positionEmbedding = p.add('position_embedding', [maxLen, d], { kind: 'glorot' });
    const norm = (prefix: string) => ({
      gamma: p.add(`${prefix}.gamma`, [d], { kind: 'ones' }),
      beta: p.add(`${prefix}.beta`, [d], { kind: 'zeros' }),
    });
    for (let b = 0; b < resolved.numBlocks; b++) {
      const at = (name: string, shape: number[], bias: boolean) =>
        p.add(`block${b}.attention.${name}`, shape, bias ? { kind: 'zeros' } : { kind: 'glorot' });
      this.blocks.push({
        attentionNorm: norm(`block${b}.attention_norm`),
        attention: {
          wq: at('wq', [d, d], false) as tf.Tensor2D,
          bq: at('bq', [d], true) as tf.Tensor1D,
          wk: at('wk', [d, d], false) as tf.Tensor2D,
          bk: at('bk', [d], true) as tf.Tensor1D,
          wv: at('wv', [d, d], false) as tf.Tensor2D,
          bv: at('bv', [d], true) as tf.Tensor1D,
          wo: at('wo', [d, d], false) as tf.Tensor2D,
          bo: at('bo', [d], true) as tf.Tensor1D,
        },
        feedForwardNorm: norm(`block${b}.feed_forward_norm`),
        w1: p.add(`block${b}.feed_forward.w1`, [d, d], { kind: 'glorot' }),
        b1: p.add(`block${b}.feed_forward.b1`, [d], { kind: 'zeros' }),
        w2: p.add(`block${b}.feed_forward.w2`, [d, d], { kind: 'glorot' }),
        b2: p.add(`block${b}.feed_forward.b2`, [d], { kind: 'zeros' }),
      });
    }
    this.finalNorm = norm('final_norm');
  }

  /** Rebuilds a model from a directory written by `save` (config from the manifest). */
  static async load(dir: string): Promise<SasRec> {
    const encoded = await readWeightsDir(dir);
    const model = new SasRec(encoded.manifest.config as unknown as SasRecConfig);
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
    const { numItems, maxLen, hiddenDim, numBlocks, numHeads } = config;
    return { numItems, maxLen, hiddenDim, numBlocks, numHeads };
  }

  protected itemTable(): tf.Variable {
    return this.itemEmbedding;
  }

  protected encode(inputs: WindowBatch, training: boolean): tf.Tensor3D {
    return tf.tidy(() => {
      const { hiddenDim, dropout, numHeads } = this.config;
      const timelineMask = buildTimelineMask(inputs, hiddenDim);
      const bias = causalPaddingBias(inputs);
      let x = tf.mul(embeddingLookup(this.itemEmbedding as tf.Tensor2D, inputs.tensor), Math.sqrt(hiddenDim));
      x = tf.add(x, this.positionEmbedding);
      x = tf.mul(maybeDropout(x, dropout, training, this.nextSeed()), timelineMask);
      for (const block of this.blocks) {
        const queries = layerNorm(
          x,
          block.attentionNorm.gamma as tf.Tensor1D,
          block.attentionNorm.beta as tf.Tensor1D,
        );
        const attended = multiHeadAttention(
          queries,
          x,
          bias,
          block.attention,
          numHeads,
          dropout,
          training,
          this.nextSeed(),
        );
        x = tf.add(queries, attended);
        x = layerNorm(
          x,
          block.feedForwardNorm.gamma as tf.Tensor1D,
          block.feedForwardNorm.beta as tf.Tensor1D,
        );
        let h = tf.relu(linear(x, block.w1 as tf.Tensor2D, block.b1 as tf.Tensor1D));
        h = linear(
          maybeDropout(h, dropout, training, this.nextSeed()),
          block.w2 as tf.Tensor2D,
          block.b2 as tf.Tensor1D,
        );
        x = tf.mul(tf.add(x, maybeDropout(h, dropout, training, this.nextSeed())), timelineMask);
      }
      return layerNorm(
        x,
        this.finalNorm.gamma as tf.Tensor1D,
        this.finalNorm.beta as tf.Tensor1D,
      ) as tf.Tensor3D;
    });
  }
}
