// Inference-only fused LLaMA decoder block: RMSNorm → q/k/v projections → RoPE → grouped-query
// attention over cached + new keys → output projection → residual → RMSNorm → SwiGLU → residual,
// in one call. The contract (argument object, layouts, masking) is documented in
// libs/lm/src/kernels/decoder-layer.ts, which also holds the op-graph definition it must match.
//
// Why a fused block: serving's model is tiny (stories260K: dim 64), so the ~110 tfjs ops of one
// block cost far more in dispatch, allocation and small-matrix overhead than in arithmetic
// (docs/serving.md: ~31 ms per 20-candidate request, attention 11 ms of it with score tensors
// materialised per head). Here a block is six single-threaded sgemm calls plus loops that keep
// each (batch, kv head) unit's keys and values transposed in cache, so the score and weighted-sum
// loops run over contiguous keys and vectorize for any head size.
#include "decoder_layer.h"

#include <cblas.h>
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernel_common.h"

namespace cprec {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

struct Floats {
  float* data = nullptr;
  size_t length = 0;
};

Floats FloatsOf(const Napi::Object& args, const char* name, size_t expected, bool optional = false) {
  const Napi::Value v = args.Get(name);
  if (optional && (v.IsNull() || v.IsUndefined())) return {};
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw std::invalid_argument(std::string("decoderLayer: ") + name + " must be a Float32Array");
  auto arr = v.As<Napi::Float32Array>();
  if (arr.ElementLength() != expected)
    throw std::invalid_argument(std::string("decoderLayer: ") + name + " has " +
                                std::to_string(arr.ElementLength()) + " values, expected " +
                                std::to_string(expected));
  return {arr.Data(), arr.ElementLength()};
}

int64_t IntField(const Napi::Object& args, const char* name) {
  const Napi::Value v = args.Get(name);
  if (!v.IsNumber()) throw std::invalid_argument(std::string("decoderLayer: ") + name + " must be a number");
  return v.As<Napi::Number>().Int64Value();
}

// y = x·Wᵀ for x [rows, in] and W [out, in]; split by rows across threads only when the product
// is worth a thread wake-up.
void Linear(const float* x, const float* w, float* y, int64_t rows, int64_t in, int64_t out) {
  if (rows == 0) return;
  const double flops = 2.0 * static_cast<double>(rows) * in * out;
  const int threads = flops >= kParallelFlops ? omp_get_max_threads() : 1;
  if (threads <= 1) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows), static_cast<int>(out),
                static_cast<int>(in), 1.0f, x, static_cast<int>(in), w, static_cast<int>(in), 0.0f, y,
                static_cast<int>(out));
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t chunk = (rows + nt - 1) / nt;
    const int64_t r0 = std::min(rows, t * chunk), r1 = std::min(rows, r0 + chunk);
    if (r0 < r1)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(r1 - r0), static_cast<int>(out),
                  static_cast<int>(in), 1.0f, x + r0 * in, static_cast<int>(in), w, static_cast<int>(in), 0.0f,
                  y + r0 * out, static_cast<int>(out));
  }
}

// out[r] = x[r] / sqrt(mean(x[r]²) + eps) ⊙ w, as the model's rmsNorm.
void RmsNorm(const float* x, const float* w, float* out, int64_t rows, int64_t dim, float eps) {
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = x + r * dim;
    float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
    for (int64_t c = 0; c < dim; c++) ss += xr[c] * xr[c];
    const float inv = 1.0f / std::sqrt(ss / static_cast<float>(dim) + eps);
    float* o = out + r * dim;
#pragma omp simd
    for (int64_t c = 0; c < dim; c++) o[c] = xr[c] * inv * w[c];
  }
}

// Interleaved RoPE in place on `heads` heads of one row: (x0, x1) → (x0 c − x1 s, x1 c + x0 s),
// then × scale (the model scales q before the dot product, not the scores).
void Rope(float* row, const float* cos, const float* sin, int64_t heads, int64_t hs, float scale) {
  for (int64_t h = 0; h < heads; h++) {
    float* x = row + h * hs;
    for (int64_t i = 0; i < hs; i += 2) {
      const float x0 = x[i], x1 = x[i + 1];
      x[i] = (x0 * cos[i] - x1 * sin[i]) * scale;
      x[i + 1] = (x1 * cos[i + 1] + x0 * sin[i + 1]) * scale;
    }
  }
}

// Keys are processed in blocks of kLanes (one AVX-512 register, two AVX2 ones): per block the
// scores accumulate in registers over the head dimension, and reductions (max, sum, the
// weighted sums of values) keep kLanes partial results that are combined once per row. The
// compiler's own reductions were the bottleneck before: without -ffast-math it folded each
// vector into a scalar with 16 dependent adds, per row and per head dimension.
constexpr int64_t kLanes = 16;

inline int64_t PadToLanes(int64_t n) { return (n + kLanes - 1) / kLanes * kLanes; }

// One run of keys a query row attends to: keys and values transposed ([hs][stride], stride a
// multiple of kLanes, columns past the stored keys zero) and an additive bias per key (0, or −∞
// for masked and padding columns). The row sees the first `len` keys.
struct KeySegment {
  const float* kT;
  const float* vT;
  const float* bias;
  int64_t stride;
  int64_t len;
};

inline __attribute__((always_inline)) float HorizontalSum(float (&lanes)[kLanes]) {
  for (int64_t w = kLanes / 2; w > 0; w /= 2)
    for (int64_t i = 0; i < w; i++) lanes[i] += lanes[i + w];
  return lanes[0];
}

// The loops below are templates on the head size so that, for the common sizes, the per-lane
// accumulators of every head dimension live in registers (HS = 0: any size, from memory).

// scores[0, PadToLanes(len)) = bias + q·K for the segment's keys; columns from len on → −∞.
template <int HS>
inline __attribute__((always_inline)) void ScoreSegment(const float* q, const KeySegment& s, int64_t hsRuntime,
                                                        float* scores) {
  const int64_t hs = HS > 0 ? HS : hsRuntime;
  const int64_t padded = PadToLanes(s.len);
  for (int64_t j = 0; j < padded; j += kLanes) {
    float acc[kLanes];
#pragma omp simd
    for (int64_t l = 0; l < kLanes; l++) acc[l] = s.bias[j + l];
    for (int64_t d = 0; d < hs; d++) {
      const float qd = q[d];
      const float* kd = s.kT + d * s.stride + j;
#pragma omp simd
      for (int64_t l = 0; l < kLanes; l++) acc[l] += qd * kd[l];
    }
#pragma omp simd
    for (int64_t l = 0; l < kLanes; l++) scores[j + l] = j + l < s.len ? acc[l] : kNegInf;
  }
}

// out[d] += Σ_j p[j] · V[j][d] over the segment's padded columns (p is 0 past len).
template <int HS>
inline __attribute__((always_inline)) void AccumulateValues(const float* p, const KeySegment& s,
                                                            int64_t hsRuntime, float* out) {
  const int64_t padded = PadToLanes(s.len);
  if constexpr (HS > 0) {
    float acc[HS][kLanes] = {};
    for (int64_t j = 0; j < padded; j += kLanes)
      for (int64_t d = 0; d < HS; d++) {
        const float* vd = s.vT + d * s.stride + j;
#pragma omp simd
        for (int64_t l = 0; l < kLanes; l++) acc[d][l] += p[j + l] * vd[l];
      }
    for (int64_t d = 0; d < HS; d++) out[d] += HorizontalSum(acc[d]);
  } else {
    for (int64_t d = 0; d < hsRuntime; d++) {
      const float* vd = s.vT + d * s.stride;
      float acc[kLanes] = {};
      for (int64_t j = 0; j < padded; j += kLanes) {
#pragma omp simd
        for (int64_t l = 0; l < kLanes; l++) acc[l] += p[j + l] * vd[j + l];
      }
      out[d] += HorizontalSum(acc);
    }
  }
}

// One query row (q already scaled) against the cached keys, then its own new ones:
// out = softmax(bias + q·Kᵀ) V. `scores` holds PadToLanes(past.len) + PadToLanes(own.len) floats.
template <int HS>
inline __attribute__((always_inline)) void AttendRowHs(const float* q, const KeySegment& past,
                                                      const KeySegment& own, int64_t hs, float* scores,
                                                      float* out) {
  const int64_t n1 = PadToLanes(past.len), n = n1 + PadToLanes(own.len);
  if (past.len > 0) ScoreSegment<HS>(q, past, hs, scores);
  ScoreSegment<HS>(q, own, hs, scores + n1);
  float mxLanes[kLanes];
  std::fill(mxLanes, mxLanes + kLanes, kNegInf);
  for (int64_t j = 0; j < n; j += kLanes) {
#pragma omp simd
    for (int64_t l = 0; l < kLanes; l++) mxLanes[l] = scores[j + l] > mxLanes[l] ? scores[j + l] : mxLanes[l];
  }
  float mx = kNegInf;
  for (int64_t l = 0; l < kLanes; l++) mx = mxLanes[l] > mx ? mxLanes[l] : mx;
  std::fill(out, out + hs, 0.0f);
  if (mx == kNegInf) return;  // every key masked (a padding query row): its output is never read
  float sumLanes[kLanes] = {};
  for (int64_t j = 0; j < n; j += kLanes) {
#pragma omp simd
    for (int64_t l = 0; l < kLanes; l++) {
      const float e = VecExp(scores[j + l] - mx);  // masked keys: exp(−∞) = 0
      scores[j + l] = e;
      sumLanes[l] += e;
    }
  }
  const float inv = 1.0f / HorizontalSum(sumLanes);
  if (past.len > 0) AccumulateValues<HS>(scores, past, hs, out);
  AccumulateValues<HS>(scores + n1, own, hs, out);
  for (int64_t d = 0; d < hs; d++) out[d] *= inv;
}

inline __attribute__((always_inline)) void AttendRowBody(const float* q, const KeySegment& past,
                                                        const KeySegment& own, int64_t hs, float* scores,
                                                        float* out) {
  switch (hs) {
    case 8:
      return AttendRowHs<8>(q, past, own, hs, scores, out);
    case 16:
      return AttendRowHs<16>(q, past, own, hs, scores, out);
    default:
      return AttendRowHs<0>(q, past, own, hs, scores, out);
  }
}

CPREC_ISA_DISPATCH(AttendRow, AttendRowBody,
                   (const float* q, const KeySegment& past, const KeySegment& own, int64_t hs, float* scores,
                    float* out),
                   (q, past, own, hs, scores, out))

// Writes the keys/values of `count` positions (rows `stride0` apart in src, hs values each) into
// transposed, lane-padded buffers [hs][stride].
void Transpose(const float* k, const float* v, int64_t count, int64_t srcStride, int64_t hs, int64_t stride,
               float* kT, float* vT) {
  std::fill(kT, kT + hs * stride, 0.0f);
  std::fill(vT, vT + hs * stride, 0.0f);
  for (int64_t j = 0; j < count; j++)
    for (int64_t d = 0; d < hs; d++) {
      kT[d * stride + j] = k[j * srcStride + d];
      vT[d * stride + j] = v[j * srcStride + d];
    }
}

// Per-thread scratch that keeps its memory between calls: a fresh zeroed allocation per call
// cost page faults and memsets worth ~8% of a block on serving's shapes.
struct Scratch {
  std::vector<float> buffer;
  float* Take(size_t n) {
    if (buffer.size() < n) buffer.resize(n);
    return buffer.data();
  }
};

inline __attribute__((always_inline)) void SwiGluBody(const float* gate, const float* up, float* out, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; i++) {
    const float g = gate[i];
    out[i] = g / (1.0f + VecExp(-g)) * up[i];
  }
}

CPREC_ISA_DISPATCH(SwiGlu, SwiGluBody, (const float* gate, const float* up, float* out, int64_t n),
                   (gate, up, out, n))

}  // namespace

Napi::Value DecoderLayer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  try {
    if (info.Length() != 1 || !info[0].IsObject()) throw std::invalid_argument("decoderLayer takes one object");
    const Napi::Object a = info[0].As<Napi::Object>();
    const int64_t B = IntField(a, "batch"), T = IntField(a, "time"), Tp = IntField(a, "past");
    const int64_t P = IntField(a, "pastBatch"), dim = IntField(a, "dim"), H = IntField(a, "heads");
    const int64_t G = IntField(a, "kvHeads"), hidden = IntField(a, "hidden");
    const int64_t cosRows = IntField(a, "cosRows");
    const float eps = static_cast<float>(a.Get("eps").As<Napi::Number>().DoubleValue());
    if (B <= 0 || T <= 0 || Tp < 0 || dim <= 0 || H <= 0 || G <= 0 || H % G != 0 || dim % H != 0 ||
        hidden <= 0 || (cosRows != T && cosRows != B * T))
      throw std::invalid_argument("decoderLayer: inconsistent sizes");
    const int64_t hs = dim / H, kvDim = G * hs, kvMul = H / G, N = B * T, Tk = Tp + T;

    const float* x = FloatsOf(a, "x", N * dim).data;
    float* out = FloatsOf(a, "out", N * dim).data;
    const float* attnNorm = FloatsOf(a, "attnNorm", dim).data;
    const float* wq = FloatsOf(a, "wq", dim * dim).data;
    const float* wk = FloatsOf(a, "wk", kvDim * dim).data;
    const float* wv = FloatsOf(a, "wv", kvDim * dim).data;
    const float* wo = FloatsOf(a, "wo", dim * dim).data;
    const float* ffnNorm = FloatsOf(a, "ffnNorm", dim).data;
    const float* w1 = FloatsOf(a, "w1", hidden * dim).data;
    const float* w2 = FloatsOf(a, "w2", dim * hidden).data;
    const float* w3 = FloatsOf(a, "w3", hidden * dim).data;
    const float* cos = FloatsOf(a, "cos", cosRows * hs).data;
    const float* sin = FloatsOf(a, "sin", cosRows * hs).data;
    const float* pastK = Tp > 0 ? FloatsOf(a, "pastK", P * G * Tp * hs).data : nullptr;
    const float* pastV = Tp > 0 ? FloatsOf(a, "pastV", P * G * Tp * hs).data : nullptr;
    const float* pastMask = Tp > 0 ? FloatsOf(a, "pastMask", B * Tp, true).data : nullptr;
    const float* newMask = FloatsOf(a, "newMask", N, true).data;
    float* newK = FloatsOf(a, "newK", B * G * T * hs).data;
    float* newV = FloatsOf(a, "newV", B * G * T * hs).data;
    std::vector<int32_t> pastRows(static_cast<size_t>(B));
    const Napi::Value rowsValue = a.Get("pastRows");
    if (rowsValue.IsNull() || rowsValue.IsUndefined()) {
      if (Tp > 0 && P != B) throw std::invalid_argument("decoderLayer: pastRows needed when pastBatch != batch");
      for (int64_t b = 0; b < B; b++) pastRows[b] = static_cast<int32_t>(b);
    } else {
      if (!rowsValue.IsTypedArray() || rowsValue.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
        throw std::invalid_argument("decoderLayer: pastRows must be an Int32Array");
      auto rows = rowsValue.As<Napi::Int32Array>();
      if (rows.ElementLength() != static_cast<size_t>(B))
        throw std::invalid_argument("decoderLayer: pastRows must have one entry per batch row");
      const int32_t* r = rows.Data();
      for (int64_t b = 0; b < B; b++) {
        if (r[b] < 0 || r[b] >= P) throw std::invalid_argument("decoderLayer: pastRows entry out of range");
        pastRows[b] = r[b];
      }
    }

    // Projections of all rows at once.
    thread_local Scratch blockScratch;
    float* xb = blockScratch.Take(static_cast<size_t>(N * (3 * dim + 2 * kvDim + 2 * hidden)));
    float* q = xb + N * dim;
    float* att = q + N * dim;
    float* k = att + N * dim;
    float* v = k + N * kvDim;
    float* gate = v + N * kvDim;
    float* up = gate + N * hidden;
    RmsNorm(x, attnNorm, xb, N, dim, eps);
    Linear(xb, wq, q, N, dim, dim);
    Linear(xb, wk, k, N, dim, kvDim);
    Linear(xb, wv, v, N, dim, kvDim);
    const float scale = 1.0f / std::sqrt(static_cast<float>(hs));
    for (int64_t n = 0; n < N; n++) {
      const int64_t cr = cosRows == N ? n : n % T;
      Rope(q + n * dim, cos + cr * hs, sin + cr * hs, H, hs, scale);
      Rope(k + n * kvDim, cos + cr * hs, sin + cr * hs, G, hs, 1.0f);
    }
    // The new columns' keys/values in the cache layout [B, G, T, hs].
    for (int64_t b = 0; b < B; b++)
      for (int64_t t = 0; t < T; t++)
        for (int64_t g = 0; g < G; g++) {
          const int64_t src = (b * T + t) * kvDim + g * hs, dst = ((b * G + g) * T + t) * hs;
          std::copy(k + src, k + src + hs, newK + dst);
          std::copy(v + src, v + src + hs, newV + dst);
        }

    // Attention. Cached keys are transposed once per (cache row, kv head) — many input rows may
    // share one cache row (candidate continuations after one prompt) — and each unit (input row,
    // kv head) transposes its own new keys; then every query head of the group and new column
    // attends to both runs.
    const int64_t pastStride = PadToLanes(Tp), ownStride = PadToLanes(T);
    std::vector<int32_t> slotOf(static_cast<size_t>(P), -1);
    std::vector<int32_t> used;
    if (Tp > 0)
      for (int64_t b = 0; b < B; b++)
        if (slotOf[pastRows[b]] < 0) {
          slotOf[pastRows[b]] = static_cast<int32_t>(used.size());
          used.push_back(pastRows[b]);
        }
    thread_local Scratch pastScratch;
    float* pastT = pastScratch.Take(static_cast<size_t>(used.size() * G * 2 * hs * pastStride));
    for (size_t s = 0; s < used.size(); s++)
      for (int64_t g = 0; g < G; g++) {
        const int64_t base = (static_cast<int64_t>(used[s]) * G + g) * Tp * hs;
        float* kT = pastT + ((static_cast<int64_t>(s) * G + g) * 2) * hs * pastStride;
        Transpose(pastK + base, pastV + base, Tp, hs, hs, pastStride, kT, kT + hs * pastStride);
      }
    const double attnFlops = 4.0 * static_cast<double>(B) * H * T * Tk * hs;
    const int threads = attnFlops >= kParallelFlops ? omp_get_max_threads() : 1;
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
      thread_local Scratch unitScratch;
      float* ownT = unitScratch.Take(static_cast<size_t>(2 * hs * ownStride + pastStride + ownStride +
                                                         pastStride + ownStride));
      float* vOwnT = ownT + hs * ownStride;
      float* pastBias = vOwnT + hs * ownStride;
      float* ownBias = pastBias + pastStride;
      float* scores = ownBias + ownStride;
#pragma omp for schedule(dynamic, 1)
      for (int64_t u = 0; u < B * G; u++) {
        const int64_t b = u / G, g = u % G;
        for (int64_t j = 0; j < pastStride; j++)
          pastBias[j] = j >= Tp || (pastMask && pastMask[b * Tp + j] == 0.0f) ? kNegInf : 0.0f;
        for (int64_t j = 0; j < ownStride; j++)
          ownBias[j] = j >= T || (newMask && newMask[b * T + j] == 0.0f) ? kNegInf : 0.0f;
        const int64_t own0 = ((b * G + g) * T) * hs;
        Transpose(newK + own0, newV + own0, T, hs, hs, ownStride, ownT, vOwnT);
        const float* kPastT =
            Tp > 0 ? pastT + ((static_cast<int64_t>(slotOf[pastRows[b]]) * G + g) * 2) * hs * pastStride : nullptr;
        const KeySegment past{kPastT, kPastT ? kPastT + hs * pastStride : nullptr, pastBias, pastStride, Tp};
        for (int64_t hq = 0; hq < kvMul; hq++) {
          const int64_t h = g * kvMul + hq;
          for (int64_t t = 0; t < T; t++) {
            float* o = att + (b * T + t) * dim + h * hs;
            if (newMask && newMask[b * T + t] == 0.0f) {
              std::fill(o, o + hs, 0.0f);  // a padding query: its output is never read
              continue;
            }
            const KeySegment own{ownT, vOwnT, ownBias, ownStride, t + 1};  // causal: columns ≤ t
            AttendRow(q + (b * T + t) * dim + h * hs, past, own, hs, scores, o);
          }
        }
      }
    }

    // Output projection and residual, then the SwiGLU feed-forward and its residual.
    Linear(att, wo, out, N, dim, dim);
    for (int64_t i = 0; i < N * dim; i++) out[i] += x[i];
    float* hb = xb;  // the attention input is no longer needed
    RmsNorm(out, ffnNorm, hb, N, dim, eps);
    Linear(hb, w1, gate, N, dim, hidden);
    Linear(hb, w3, up, N, dim, hidden);
    SwiGlu(gate, up, gate, N * hidden);
    Linear(gate, w2, att, N, hidden, dim);
    for (int64_t i = 0; i < N * dim; i++) out[i] += att[i];
  } catch (const std::exception& e) {
    Napi::Error::New(env, e.what()).ThrowAsJavaScriptException();
  }
  return env.Undefined();
}

}  // namespace cprec
