import type { EncodedSample } from '@cprec/corpus';

/** A padded micro-batch in plain arrays (what `Trainer.trainStep` accepts). */
export interface PaddedBatch {
  inputIds: number[][];
  lossMask: number[][];
  attentionMask: number[][];
  /** Real (non-padding) tokens in the batch. */
  tokens: number;
  /** Length every row was padded to. */
  length: number;
}

/**
 * Right-pads encoded samples to the longest one. Padding keys are masked out of attention and
 * padding positions out of the loss, so the pad id itself never matters.
 */
export function padBatch(samples: readonly EncodedSample[], padId = 0): PaddedBatch {
  if (samples.length === 0) throw new Error('cannot build an empty batch');
  const length = Math.max(...samples.map((s) => s.inputIds.length));
  const inputIds: number[][] = [];
  const lossMask: number[][] = [];
  const attentionMask: number[][] = [];
  let tokens = 0;
  for (const s of samples) {
    const n = s.inputIds.length;
    tokens += n;
    const ids = new Array<number>(length).fill(padId);
    const loss = new Array<number>(length).fill(0);
    const attn = new Array<number>(length).fill(0);
    for (let i = 0; i < n; i++) {
      ids[i] = s.inputIds[i]!;
      loss[i] = s.lossMask[i]!;
      attn[i] = 1;
    }
    inputIds.push(ids);
    lossMask.push(loss);
    attentionMask.push(attn);
  }
  return { inputIds, lossMask, attentionMask, tokens, length };
}
