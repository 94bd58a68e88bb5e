import { LlamaWeights } from '../weights';

/**
 * Independent plain-JS Float32 transcription of llama2.c `run.c forward` (one token at a time,
 * with its own KV cache). Test support only: it checks the tfjs model against run.c semantics.
 */
export class ReferenceLlama {
  private readonly keyCache: Float32Array;
  private readonly valueCache: Float32Array;

  /**
   * `ropeStyle: 'halves'` rotates pairs (i, i+hs/2) as Hugging Face's `rotate_half` does, for
   * weights whose q/k rows are in HF order; 'interleaved' (default) is run.c's adjacent pairs.
   */
  constructor(
    private readonly w: LlamaWeights,
    private readonly ropeStyle: 'interleaved' | 'halves' = 'interleaved',
  ) {
    const c = w.config;
    const kvDim = (c.dim * c.nKvHeads) / c.nHeads;
    this.keyCache = new Float32Array(c.nLayers * c.maxSeqLen * kvDim);
    this.valueCache = new Float32Array(c.nLayers * c.maxSeqLen * kvDim);
  }

  private static rmsnorm(o: Float32Array, x: Float32Array, weight: Float32Array, eps: number): void {
    let ss = 0;
    for (let j = 0; j < x.length; j++) ss = Math.fround(ss + Math.fround(x[j] * x[j]));
    ss = Math.fround(ss / x.length);
    ss = Math.fround(ss + eps);
    ss = Math.fround(1 / Math.sqrt(ss));
    for (let j = 0; j < x.length; j++) o[j] = Math.fround(weight[j] * Math.fround(ss * x[j]));
  }

  private static matmul(xout: Float32Array, x: Float32Array, w: Float32Array, n: number, d: number): void {
    for (let i = 0; i < d; i++) {
      let val = 0;
      for (let j = 0; j < n; j++) val = Math.fround(val + Math.fround(w[i * n + j] * x[j]));
      xout[i] = val;
    }
  }

  forward(token: number, pos: number): Float32Array {
    const c = this.w.config;
    const dim = c.dim;
    const hs = dim / c.nHeads;
    const kvDim = (dim * c.nKvHeads) / c.nHeads;
    const kvMul = c.nHeads / c.nKvHeads;
    const x = this.w.tokEmbedding.slice(token * dim, (token + 1) * dim);
    const xb = new Float32Array(dim);
    const xb2 = new Float32Array(dim);
    const hb = new Float32Array(c.hiddenDim);
    const hb2 = new Float32Array(c.hiddenDim);
    const q = new Float32Array(dim);
    const att = new Float32Array(c.maxSeqLen);
    for (let l = 0; l < c.nLayers; l++) {
      const lw = this.w.layers[l];
      ReferenceLlama.rmsnorm(xb, x, lw.attnNorm, c.normEps);
      const loff = l * c.maxSeqLen * kvDim;
      const k = this.keyCache.subarray(loff + pos * kvDim, loff + (pos + 1) * kvDim);
      const v = this.valueCache.subarray(loff + pos * kvDim, loff + (pos + 1) * kvDim);
      ReferenceLlama.matmul(q, xb, lw.wq, dim, dim);
      ReferenceLlama.matmul(k, xb, lw.wk, dim, kvDim);
      ReferenceLlama.matmul(v, xb, lw.wv, dim, kvDim);
      for (let i = 0; i < dim; i += 2) {
        const headDim = i % hs;
        const freq = Math.fround(1 / Math.fround(Math.pow(c.ropeTheta, Math.fround(headDim / hs))));
        const val = Math.fround(pos * freq);
        const fcr = Math.fround(Math.cos(val));
        const fci = Math.fround(Math.sin(val));
        // Pair partner of frequency index headDim/2 within its head.
        const head = Math.floor(i / hs) * hs;
        const [i0, i1] =
          this.ropeStyle === 'interleaved' ? [i, i + 1] : [head + headDim / 2, head + headDim / 2 + hs / 2];
        const rotn = i < kvDim ? 2 : 1;
        for (let r = 0; r < rotn; r++) {
          const vec = r === 0 ? q : k;
          const v0 = vec[i0];
          const v1 = vec[i1];
          vec[i0] = Math.fround(Math.fround(v0 * fcr) - Math.fround(v1 * fci));
          vec[i1] = Math.fround(Math.fround(v0 * fci) + Math.fround(v1 * fcr));
        }
      }
      xb.fill(0);
      for (let h = 0; h < c.nHeads; h++) {
        const kvh = Math.floor(h / kvMul);
        for (let t = 0; t <= pos; t++) {
          let score = 0;
          for (let i = 0; i < hs; i++)
            score = Math.fround(
              score + Math.fround(q[h * hs + i] * this.keyCache[loff + t * kvDim + kvh * hs + i]),
            );
          att[t] = Math.fround(score / Math.sqrt(hs));
        }
        let max = att[0];
        for (let t = 1; t <= pos; t++) if (att[t] > max) max = att[t];
        let sum = 0;
        for (let t = 0; t <= pos; t++) {
          att[t] = Math.fround(Math.exp(att[t] - max));
          sum = Math.fround(sum + att[t]);
        }
        for (let t = 0; t <= pos; t++) att[t] = Math.fround(att[t] / sum);
        for (let t = 0; t <= pos; t++) {
          for (let i = 0; i < hs; i++)
            xb[h * hs + i] = Math.fround(
              xb[h * hs + i] + Math.fround(att[t] * this.valueCache[loff + t * kvDim + kvh * hs + i]),
            );
        }
      }
      ReferenceLlama.matmul(xb2, xb, lw.wo, dim, dim);
      for (let i = 0; i < dim; i++) x[i] = Math.fround(x[i] + xb2[i]);
      ReferenceLlama.rmsnorm(xb, x, lw.ffnNorm, c.normEps);
      ReferenceLlama.matmul(hb, xb, lw.w1, dim, c.hiddenDim);
      ReferenceLlama.matmul(hb2, xb, lw.w3, dim, c.hiddenDim);
      for (let i = 0; i < c.hiddenDim; i++) {
        const g = hb[i];
        hb[i] = Math.fround(Math.fround(g * Math.fround(1 / (1 + Math.exp(-g)))) * hb2[i]);
      }
      ReferenceLlama.matmul(xb, hb, lw.w2, c.hiddenDim, dim);
      for (let i = 0; i < dim; i++) x[i] = Math.fround(x[i] + xb[i]);
    }
    ReferenceLlama.rmsnorm(x, x, this.w.finalNorm, c.normEps);
    const logits = new Float32Array(c.vocabSize);
    ReferenceLlama.matmul(logits, x, this.w.classifier ?? this.w.tokEmbedding, dim, c.vocabSize);
    return logits;
  }
}
