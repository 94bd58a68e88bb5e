// Fused kernels of the LoRA training step: RMSNorm, SwiGLU, interleaved RoPE, the causal-LM
// cross-entropy and the LoRA projections, each forward and backward in one call.
//
// Why: a SmolLM2 LoRA step run op by op spent about half its kernel time outside matrix products
// (docs/kernels.md, profile of 2026-11-23): every tfjs op reads and writes whole activations, and
// the op graph of one block is ~60 ops forward and ~120 backward, each allocating its result.
// Here each of those chains is one pass over its rows. The TypeScript side
// (libs/lm/src/kernels/training-ops.ts) registers these as tfjs kernels with gradients and keeps
// the op graph they must match for other backends.
#include "training_ops.h"

#include <cblas.h>
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "kernel_common.h"

namespace cprec {
namespace {

// exp-heavy maps (SwiGLU, cross-entropy) take a second thread from this many values on; the
// memory-bound ones never do (docs/kernels.md: two threads are not faster for them here). Higher
// than the native Sigmoid's 1M: with the AVX-512 VecExp a SwiGLU pass over 1M values takes
// 0.4 ms on one thread, less than waking the second one (0.7 ms).
constexpr int64_t kTranscendentalValues = int64_t{1} << 22;

// Reads positional arguments with the checks that keep a wrong call from writing out of bounds.
class Args {
 public:
  Args(const Napi::CallbackInfo& info, const char* fn) : info_(info), fn_(fn) {}

  float* F32(size_t i, int64_t expected) const { return F32Of(info_[i], expected, i); }
  float* OptionalF32(size_t i, int64_t expected) const {
    if (info_[i].IsNull() || info_[i].IsUndefined()) return nullptr;
    return F32(i, expected);
  }
  const int32_t* I32(size_t i, int64_t expected) const {
    const Napi::Value v = info_[i];
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
      Fail("argument " + std::to_string(i) + " must be an Int32Array");
    auto a = v.As<Napi::Int32Array>();
    if (static_cast<int64_t>(a.ElementLength()) != expected)
      Fail("argument " + std::to_string(i) + " has " + std::to_string(a.ElementLength()) + " values, expected " +
           std::to_string(expected));
    return a.Data();
  }
  int64_t Size(size_t i) const {
    const Napi::Value v = info_[i];
    if (!v.IsNumber()) Fail("argument " + std::to_string(i) + " must be a number");
    const int64_t n = v.As<Napi::Number>().Int64Value();
    if (n < 0) Fail("argument " + std::to_string(i) + " must not be negative");
    return n;
  }
  double Number(size_t i) const {
    if (!info_[i].IsNumber()) Fail("argument " + std::to_string(i) + " must be a number");
    return info_[i].As<Napi::Number>().DoubleValue();
  }
  bool Flag(size_t i) const { return info_[i].ToBoolean().Value(); }

  float* F32Of(const Napi::Value& v, int64_t expected, size_t i) const {
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
      Fail("argument " + std::to_string(i) + " must be a Float32Array");
    auto a = v.As<Napi::Float32Array>();
    if (static_cast<int64_t>(a.ElementLength()) != expected)
      Fail("argument " + std::to_string(i) + " has " + std::to_string(a.ElementLength()) + " values, expected " +
           std::to_string(expected));
    return a.Data();
  }
  [[noreturn]] void Fail(const std::string& what) const { throw std::invalid_argument(std::string(fn_) + ": " + what); }

 private:
  const Napi::CallbackInfo& info_;
  const char* fn_;
};

template <typename Body>
Napi::Value Guarded(const Napi::CallbackInfo& info, Body body) {
  try {
    return body();
  } catch (const std::exception& e) {
    Napi::Error::New(info.Env(), e.what()).ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
}

// ---------------------------------------------------------------------------------------------
// RMSNorm: y = x · r · w with r = 1/sqrt(mean(x²) + eps) per row, rounded as the op graph
// (Square, Mean summed in double, Add, Rsqrt in double, two Muls) so both paths agree to the ulp.

inline __attribute__((always_inline)) float InverseRms(const float* x, int64_t dim, float eps) {
  double ss = 0;
#pragma omp simd reduction(+ : ss)
  for (int64_t c = 0; c < dim; c++) {
    const float sq = x[c] * x[c];
    ss += sq;
  }
  const float ms = static_cast<float>(ss) / static_cast<float>(dim);
  return static_cast<float>(1.0 / std::sqrt(static_cast<double>(ms + eps)));
}

inline __attribute__((always_inline)) void RmsNormRowsBody(const float* x, const float* w, float* out, int64_t rows,
                                                           int64_t dim, float eps) {
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = x + r * dim;
    float* o = out + r * dim;
    const float inv = InverseRms(xr, dim, eps);
#pragma omp simd
    for (int64_t c = 0; c < dim; c++) o[c] = xr[c] * inv * w[c];
  }
}
CPREC_ISA_DISPATCH(RmsNormRows, RmsNormRowsBody,
                   (const float* x, const float* w, float* out, int64_t rows, int64_t dim, float eps),
                   (x, w, out, rows, dim, eps))

// dx = r·g − x·r³·(g·x)/dim with g = dy ⊙ w; dw += Σ_rows dy ⊙ x · r (in double). r is recomputed
// from x: one more dot per row is cheaper than keeping it alive from the forward pass.
inline __attribute__((always_inline)) void RmsNormBackwardRowsBody(const float* x, const float* w, const float* dy,
                                                                   float* dx, double* dw, int64_t rows,
                                                                   int64_t dim, float eps) {
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = x + r * dim;
    const float* g = dy + r * dim;
    const float inv = InverseRms(xr, dim, eps);
    if (dx) {
      double dot = 0;
#pragma omp simd reduction(+ : dot)
      for (int64_t c = 0; c < dim; c++) {
        const float p = g[c] * w[c] * xr[c];
        dot += p;
      }
      const float k = inv * inv * inv * static_cast<float>(dot) / static_cast<float>(dim);
      float* d = dx + r * dim;
#pragma omp simd
      for (int64_t c = 0; c < dim; c++) d[c] = inv * (g[c] * w[c]) - xr[c] * k;
    }
    if (dw) {
#pragma omp simd
      for (int64_t c = 0; c < dim; c++) {
        const float p = g[c] * xr[c] * inv;
        dw[c] += p;
      }
    }
  }
}
CPREC_ISA_DISPATCH(RmsNormBackwardRows, RmsNormBackwardRowsBody,
                   (const float* x, const float* w, const float* dy, float* dx, double* dw, int64_t rows,
                    int64_t dim, float eps),
                   (x, w, dy, dx, dw, rows, dim, eps))

// ---------------------------------------------------------------------------------------------
// SwiGLU: out = silu(gate) · up with silu(g) = g · sigmoid(g), sigmoid as the native Sigmoid.

inline __attribute__((always_inline)) void SwiGluForwardBody(const float* gate, const float* up, float* out,
                                                             int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; i++) {
    const float g = gate[i];
    const float s = 1.0f / (1.0f + VecExp(-g));
    out[i] = g * s * up[i];
  }
}
CPREC_ISA_DISPATCH(SwiGluForwardRange, SwiGluForwardBody, (const float* gate, const float* up, float* out, int64_t n),
                   (gate, up, out, n))

// dup = dy · silu(g); dgate = dy · up · s · (1 + g · (1 − s)).
inline __attribute__((always_inline)) void SwiGluBackwardBody(const float* gate, const float* up, const float* dy,
                                                              float* dgate, float* dup, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; i++) {
    const float g = gate[i];
    const float s = 1.0f / (1.0f + VecExp(-g));
    dup[i] = dy[i] * (g * s);
    dgate[i] = dy[i] * up[i] * (s * (1.0f + g * (1.0f - s)));
  }
}
CPREC_ISA_DISPATCH(SwiGluBackwardRange, SwiGluBackwardBody,
                   (const float* gate, const float* up, const float* dy, float* dgate, float* dup, int64_t n),
                   (gate, up, dy, dgate, dup, n))

// Splits [0, n) over threads when the exps are worth a thread wake-up.
template <typename Body>
void SplitValues(int64_t n, Body body) {
  const int threads = n >= kTranscendentalValues ? omp_get_max_threads() : 1;
  if (threads <= 1) {
    body(0, n);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t chunk = ((n + nt - 1) / nt + 15) / 16 * 16;
    const int64_t s = std::min(n, t * chunk), e = std::min(n, s + chunk);
    if (s < e) body(s, e - s);
  }
}

// ---------------------------------------------------------------------------------------------
// Interleaved RoPE as model.ts: (x0, x1) → (x0·c0 − x1·s0, x1·c1 + x0·s1) per adjacent pair, then
// × scale. The backward is the transposed rotation: (dy0·c0 + dy1·s1, dy1·c1 − dy0·s0) · scale.
// Layouts: x [B, T, H, hs]; y [B, H, T, hs] when headsFirst (what attention reads), else like x.
// cos/sin rows: position t (cosRows = T) or b·T + t (cosRows = B·T).

struct RopeShape {
  int64_t batch, time, heads, hs, cosRows;
  bool headsFirst;
  int64_t TokenOffset(int64_t b, int64_t t, int64_t h) const { return ((b * time + t) * heads + h) * hs; }
  int64_t OutOffset(int64_t b, int64_t t, int64_t h) const {
    return headsFirst ? ((b * heads + h) * time + t) * hs : TokenOffset(b, t, h);
  }
  int64_t CosRow(int64_t b, int64_t t) const { return (cosRows == time ? t : b * time + t) * hs; }
};

// ---------------------------------------------------------------------------------------------
// Cross-entropy over rows of logits with integer targets and per-row weights (0 = not a target).

// Row maximum and Σ exp(z − max) (16 partial sums so the loop vectorizes).
inline __attribute__((always_inline)) void RowLogSumExpBody(const float* z, int64_t n, float* maxOut,
                                                            float* logSumOut) {
  constexpr int64_t kLanes = 16;
  float mxLanes[kLanes];
  for (int64_t l = 0; l < kLanes; l++) mxLanes[l] = -std::numeric_limits<float>::infinity();
  int64_t c = 0;
  for (; c + kLanes <= n; c += kLanes) {
#pragma omp simd
    for (int64_t l = 0; l < kLanes; l++) mxLanes[l] = z[c + l] > mxLanes[l] ? z[c + l] : mxLanes[l];
  }
  float mx = -std::numeric_limits<float>::infinity();
  for (int64_t l = 0; l < kLanes; l++) mx = mxLanes[l] > mx ? mxLanes[l] : mx;
  for (; c < n; c++) mx = z[c] > mx ? z[c] : mx;
  float lanes[kLanes] = {};
  c = 0;
  for (; c + kLanes <= n; c += kLanes) {
#pragma omp simd
    for (int64_t l = 0; l < kLanes; l++) lanes[l] += VecExp(z[c + l] - mx);
  }
  double sum = 0;
  for (int64_t l = 0; l < kLanes; l++) sum += lanes[l];
  for (; c < n; c++) sum += VecExp(z[c] - mx);
  *maxOut = mx;
  *logSumOut = static_cast<float>(std::log(sum));
}
CPREC_ISA_DISPATCH(RowLogSumExp, RowLogSumExpBody, (const float* z, int64_t n, float* maxOut, float* logSumOut),
                   (z, n, maxOut, logSumOut))

// d = exp(z − lse) · coef, then d[target] −= coef.
inline __attribute__((always_inline)) void SoftmaxMinusOneHotBody(const float* z, int64_t n, float lse, float coef,
                                                                  int64_t target, float* d) {
#pragma omp simd
  for (int64_t c = 0; c < n; c++) d[c] = VecExp(z[c] - lse) * coef;
  d[target] -= coef;
}
CPREC_ISA_DISPATCH(SoftmaxMinusOneHot, SoftmaxMinusOneHotBody,
                   (const float* z, int64_t n, float lse, float coef, int64_t target, float* d),
                   (z, n, lse, coef, target, d))

// ---------------------------------------------------------------------------------------------
// LoRA projections sharing one input: y_i = [residual_i +] x·W_iᵀ + scale·(x_i'·A_iᵀ)·B_iᵀ, where
// x_i' is x or the projection's own (dropout) input. One parallel region per call, split by rows:
// every product of a row block (base, LoRA down and up) runs on the thread that owns it, so the
// thread wake-up (~0.7 ms here) is paid once per call instead of once per product.

struct Projection {
  const float* w = nullptr;  // [out, in]
  int64_t out = 0;
  const float* a = nullptr;  // [rank, in] or null (no adapter)
  const float* b = nullptr;  // [out, rank]
  int64_t rank = 0;
  const float* loraInput = nullptr;  // [rows, in] or null (= x)
  const float* residual = nullptr;   // [rows, out] or null
  float* y = nullptr;                // forward output [rows, out]
  const float* dy = nullptr;         // backward input [rows, out]
  float* dA = nullptr;               // [rank, in]
  float* dB = nullptr;               // [out, rank]
  float* dLoraInput = nullptr;       // [rows, in], only with loraInput
  // Dropout on the adapter's input, drawn here (see DropoutRows): keep element i of x when
  // DropoutDraw(seed, i) >= threshold (of 2^24), scaled by keepScale. threshold 0: none.
  uint32_t seed = 0;
  uint32_t threshold = 0;
  float keepScale = 1.0f;
};

// LoRA dropout drawn from a hash of (seed, flat element index) instead of a stored mask or a
// sequential generator: the backward pass regenerates the forward's mask block by block, any
// thread split draws the same mask, and training-ops.ts computes the same draws in JS (for the
// op graph it is checked against). Why not tf.dropout: on the cpu backend it drew its uniforms in
// JS, one per element of each projection's input — 150M per SmolLM2 step at batch 4 × 256.
inline __attribute__((always_inline)) uint32_t Mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x;
}

// 24 uniform bits for element `index` of a projection's dropout.
inline __attribute__((always_inline)) uint32_t DropoutDraw(uint32_t seed, uint32_t index) {
  return Mix32(seed ^ Mix32(index)) >> 8;
}

// out[j] = x[j] · (draw(first + j) >= threshold ? keepScale : 0) for j < n.
inline __attribute__((always_inline)) void DropoutRowsBody(const float* x, float* out, int64_t n, uint32_t first,
                                                           uint32_t seed, uint32_t threshold, float keepScale) {
#pragma omp simd
  for (int64_t j = 0; j < n; j++) {
    const uint32_t u = DropoutDraw(seed, first + static_cast<uint32_t>(j));
    out[j] = u >= threshold ? x[j] * keepScale : 0.0f;
  }
}
CPREC_ISA_DISPATCH(DropoutRows, DropoutRowsBody,
                   (const float* x, float* out, int64_t n, uint32_t first, uint32_t seed, uint32_t threshold,
                    float keepScale),
                   (x, out, n, first, seed, threshold, keepScale))

// acc[j] += d[j] · (draw(first + j) >= threshold ? keepScale : 0): the dropout's backward into dx.
inline __attribute__((always_inline)) void DropoutAccumulateBody(const float* d, float* acc, int64_t n, uint32_t first,
                                                                 uint32_t seed, uint32_t threshold, float keepScale) {
#pragma omp simd
  for (int64_t j = 0; j < n; j++) {
    const uint32_t u = DropoutDraw(seed, first + static_cast<uint32_t>(j));
    acc[j] += u >= threshold ? d[j] * keepScale : 0.0f;
  }
}
CPREC_ISA_DISPATCH(DropoutAccumulate, DropoutAccumulateBody,
                   (const float* d, float* acc, int64_t n, uint32_t first, uint32_t seed, uint32_t threshold,
                    float keepScale),
                   (d, acc, n, first, seed, threshold, keepScale))

class ObjectArgs {
 public:
  ObjectArgs(const Napi::Object& o, const char* fn, std::string what) : o_(o), fn_(fn), what_(std::move(what)) {}
  float* F32(const char* name, int64_t expected, bool optional = false) const {
    const Napi::Value v = o_.Get(name);
    if (optional && (v.IsNull() || v.IsUndefined())) return nullptr;
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
      Fail(std::string(name) + " must be a Float32Array");
    auto a = v.As<Napi::Float32Array>();
    if (static_cast<int64_t>(a.ElementLength()) != expected)
      Fail(std::string(name) + " has " + std::to_string(a.ElementLength()) + " values, expected " +
           std::to_string(expected));
    return a.Data();
  }
  int64_t Size(const char* name) const {
    const Napi::Value v = o_.Get(name);
    if (!v.IsNumber()) Fail(std::string(name) + " must be a number");
    const int64_t n = v.As<Napi::Number>().Int64Value();
    if (n < 0) Fail(std::string(name) + " must not be negative");
    return n;
  }
  float Number(const char* name) const {
    const Napi::Value v = o_.Get(name);
    if (!v.IsNumber()) Fail(std::string(name) + " must be a number");
    return static_cast<float>(v.As<Napi::Number>().DoubleValue());
  }
  bool Has(const char* name) const {
    const Napi::Value v = o_.Get(name);
    return !v.IsNull() && !v.IsUndefined();
  }
  [[noreturn]] void Fail(const std::string& m) const {
    throw std::invalid_argument(std::string(fn_) + ": " + what_ + m);
  }

 private:
  const Napi::Object& o_;
  const char* fn_;
  std::string what_;
};

std::vector<Projection> ReadProjections(const Napi::Object& args, const char* fn, int64_t rows, int64_t in,
                                        bool backward) {
  const Napi::Value list = args.Get("projections");
  if (!list.IsArray()) throw std::invalid_argument(std::string(fn) + ": projections must be an array");
  const Napi::Array arr = list.As<Napi::Array>();
  std::vector<Projection> out(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); i++) {
    const Napi::Value item = arr.Get(i);
    if (!item.IsObject()) throw std::invalid_argument(std::string(fn) + ": projections must be objects");
    const Napi::Object po = item.As<Napi::Object>();
    const ObjectArgs p(po, fn, "projection " + std::to_string(i) + ": ");
    Projection& pr = out[i];
    pr.out = p.Size("out");
    if (pr.out == 0 || in == 0) p.Fail("empty projection");
    pr.w = p.F32("w", pr.out * in);
    if (p.Has("a")) {
      pr.rank = p.Size("rank");
      if (pr.rank == 0) p.Fail("rank must be positive");
      pr.a = p.F32("a", pr.rank * in);
      pr.b = p.F32("b", pr.out * pr.rank);
      pr.loraInput = p.F32("loraInput", rows * in, true);
      if (p.Has("dropoutThreshold")) {
        if (pr.loraInput) p.Fail("dropout and a separate adapter input exclude each other");
        if (rows * in > int64_t{0xffffffff}) p.Fail("too many values for the dropout draws");
        pr.threshold = static_cast<uint32_t>(p.Size("dropoutThreshold"));
        pr.seed = static_cast<uint32_t>(p.Size("seed"));
        pr.keepScale = p.Number("keepScale");
      }
    }
    if (backward) {
      pr.dy = p.F32("dy", rows * pr.out);
      if (pr.a) {
        pr.dA = p.F32("dA", pr.rank * in);
        pr.dB = p.F32("dB", pr.out * pr.rank);
        if (pr.loraInput) pr.dLoraInput = p.F32("dLoraInput", rows * in);
      }
    } else {
      pr.residual = p.F32("residual", rows * pr.out, true);
      pr.y = p.F32("y", rows * pr.out);
    }
  }
  return out;
}

// Row-major C[m, n] (ldc) = alpha · op(A) op(B) + beta · C, skipping empty products.
inline void Gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                 const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, static_cast<int>(m),
              static_cast<int>(n), static_cast<int>(k), alpha, a, static_cast<int>(lda), b, static_cast<int>(ldb),
              beta, c, static_cast<int>(ldc));
}

// Runs body(r0, r1) on row blocks, one per thread when the products are worth a wake-up.
template <typename Body>
void SplitRows(int64_t rows, double flops, Body body) {
  const int threads = flops >= kParallelFlops && rows >= 2 ? omp_get_max_threads() : 1;
  if (threads <= 1) {
    body(0, rows, 0);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t chunk = (rows + nt - 1) / nt;
    const int64_t r0 = std::min(rows, t * chunk), r1 = std::min(rows, r0 + chunk);
    body(r0, r1, static_cast<int>(t));
  }
}

}  // namespace

// Args: x, w, out, rows, dim, eps
Napi::Value RmsNormForward(const Napi::CallbackInfo& info) {
  return Guarded(info, [&]() {
    const Args a(info, "rmsNormForward");
    const int64_t rows = a.Size(3), dim = a.Size(4);
    const float eps = static_cast<float>(a.Number(5));
    const float* x = a.F32(0, rows * dim);
    const float* w = a.F32(1, dim);
    float* out = a.F32(2, rows * dim);
    RmsNormRows(x, w, out, rows, dim, eps);
    return info.Env().Undefined();
  });
}

// Args: x, w, dy, dx|null, dw|null, rows, dim, eps
Napi::Value RmsNormBackward(const Napi::CallbackInfo& info) {
  return Guarded(info, [&]() {
    const Args a(info, "rmsNormBackward");
    const int64_t rows = a.Size(5), dim = a.Size(6);
    const float eps = static_cast<float>(a.Number(7));
    const float* x = a.F32(0, rows * dim);
    const float* w = a.F32(1, dim);
    const float* dy = a.F32(2, rows * dim);
    float* dx = a.OptionalF32(3, rows * dim);
    float* dw = a.OptionalF32(4, dim);
    std::vector<double> acc(dw ? static_cast<size_t>(dim) : 0, 0.0);
    RmsNormBackwardRows(x, w, dy, dx, dw ? acc.data() : nullptr, rows, dim, eps);
    if (dw)
      for (int64_t c = 0; c < dim; c++) dw[c] = static_cast<float>(acc[c]);
    return info.Env().Undefined();
  });
}

// Args: gate, up, out, n
Napi::Value SwiGluForward(const Napi::CallbackInfo& info) {
  return Guarded(info, [&]() {
    const Args a(info, "swigluForward");
    const int64_t n = a.Size(3);
    const float* gate = a.F32(0, n);
    const float* up = a.F32(1, n);
    float* out = a.F32(2, n);
    SplitValues(n, [&](int64_t s, int64_t count) { SwiGluForwardRange(gate + s, up + s, out + s, count); });
    return info.Env().Undefined();
  });
}

// Args: gate, up, dy, dgate, dup, n
Napi::Value SwiGluBackward(const Napi::CallbackInfo& info) {
  return Guarded(info, [&]() {
    const Args a(info, "swigluBackward");
    const int64_t n = a.Size(5);
    const float* gate = a.F32(0, n);
    const float* up = a.F32(1, n);
    const float* dy = a.F32(2, n);
    float* dgate = a.F32(3, n);
    float* dup = a.F32(4, n);
    SplitValues(n, [&](int64_t s, int64_t count) {
      SwiGluBackwardRange(gate + s, up + s, dy + s, dgate + s, dup + s, count);
    });
    return info.Env().Undefined();
  });
}

namespace {
RopeShape ReadRopeShape(const Args& a, size_t first) {
  RopeShape s{a.Size(first), a.Size(first + 1), a.Size(first + 2), a.Size(first + 3), a.Size(first + 4),
              a.Flag(first + 6)};
  if (s.hs % 2 != 0) a.Fail("head size must be even");
  if (s.cosRows != s.time && s.cosRows != s.batch * s.time) a.Fail("cos/sin rows must be T or B·T");
  return s;
}
}  // namespace

// Args: x, cos, sin, out, batch, time, heads, hs, cosRows, scale, headsFirst
Napi::Value RopeForward(const Napi::CallbackInfo& info) {
  return Guarded(info, [&]() {
    const Args a(info, "ropeForward");
    const RopeShape s = ReadRopeShape(a, 4);
    const float scale = static_cast<float>(a.Number(9));
    const int64_t n = s.batch * s.time * s.heads * s.hs;
    const float* x = a.F32(0, n);
    const float* cos = a.F32(1, s.cosRows * s.hs);
    const float* sin = a.F32(2, s.cosRows * s.hs);
    float* out = a.F32(3, n);
    for (int64_t b = 0; b < s.batch; b++)
      for (int64_t t = 0; t < s.time; t++) {
        const float* c = cos + s.CosRow(b, t);
        const float* sn = sin + s.CosRow(b, t);
        for (int64_t h = 0; h < s.heads; h++) {
          const float* xi = x + s.TokenOffset(b, t, h);
          float* o = out + s.OutOffset(b, t, h);
          for (int64_t i = 0; i < s.hs; i += 2) {
            const float x0 = xi[i], x1 = xi[i + 1];
            o[i] = (x0 * c[i] - x1 * sn[i]) * scale;
            o[i + 1] = (x1 * c[i + 1] + x0 * sn[i + 1]) * scale;
          }
        }
      }
    return info.Env().Undefined();
  });
}

// Args: dy (output layout), cos, sin, dx (input layout), batch, time, heads, hs, cosRows, scale, headsFirst
Napi::Value RopeBackward(const Napi::CallbackInfo& info) {
  return Guarded(info, [&]() {
    const Args a(info, "ropeBackward");
    const RopeShape s = ReadRopeShape(a, 4);
    const float scale = static_cast<float>(a.Number(9));
    const int64_t n = s.batch * s.time * s.heads * s.hs;
    const float* dy = a.F32(0, n);
    const float* cos = a.F32(1, s.cosRows * s.hs);
    const float* sin = a.F32(2, s.cosRows * s.hs);
    float* dx = a.F32(3, n);
    for (int64_t b = 0; b < s.batch; b++)
      for (int64_t t = 0; t < s.time; t++) {
        const float* c = cos + s.CosRow(b, t);
        const float* sn = sin + s.CosRow(b, t);
        for (int64_t h = 0; h < s.heads; h++) {
          const float* g = dy + s.OutOffset(b, t, h);
          float* d = dx + s.TokenOffset(b, t, h);
          for (int64_t i = 0; i < s.hs; i += 2) {
            const float g0 = g[i] * scale, g1 = g[i + 1] * scale;
            d[i] = g0 * c[i] + g1 * sn[i + 1];
            d[i + 1] = g1 * c[i + 1] - g0 * sn[i];
          }
        }
      }
    return info.Env().Undefined();
  });
}

// Σ_r w_r · (lse_r − z_r[t_r]) / max(Σ w, 1) over rows with w_r ≠ 0; writes lse (0 for skipped
// rows) for the backward pass and returns the loss. Rows whose weight is 0 are never read.
// Args: logits, rows, vocab, targets (Int32Array), weights, lse (out)
Napi::Value CrossEntropyForward(const Napi::CallbackInfo& info) {
  return Guarded(info, [&]() -> Napi::Value {
    const Args a(info, "crossEntropyForward");
    const int64_t rows = a.Size(1), vocab = a.Size(2);
    const float* logits = a.F32(0, rows * vocab);
    const int32_t* targets = a.I32(3, rows);
    const float* weights = a.F32(4, rows);
    float* lse = a.F32(5, rows);
    double wsum = 0;
    for (int64_t r = 0; r < rows; r++) {
      if (weights[r] != 0.0f && (targets[r] < 0 || targets[r] >= vocab)) a.Fail("target outside the vocabulary");
      wsum += weights[r];
    }
    std::vector<float> nll(static_cast<size_t>(rows), 0.0f);
    int64_t counted = 0;
    for (int64_t r = 0; r < rows; r++) counted += weights[r] != 0.0f;
    const int threads = counted * vocab >= kTranscendentalValues ? omp_get_max_threads() : 1;
#pragma omp parallel for schedule(dynamic, 4) num_threads(threads) if (threads > 1)
    for (int64_t r = 0; r < rows; r++) {
      if (weights[r] == 0.0f) {
        lse[r] = 0.0f;
        continue;
      }
      const float* z = logits + r * vocab;
      float mx, logSum;
      RowLogSumExp(z, vocab, &mx, &logSum);
      lse[r] = mx + logSum;
      // As the graph rounds log-softmax: (z_t − max) − log Σ.
      nll[r] = -((z[targets[r]] - mx) - logSum);
    }
    double total = 0;
    for (int64_t r = 0; r < rows; r++) total += static_cast<float>(nll[r] * weights[r]);
    const float denom = std::max(static_cast<float>(wsum), 1.0f);
    return Napi::Number::New(info.Env(), static_cast<float>(total) / denom);
  });
}

// dlogits[r] = (softmax(z_r) − onehot(t_r)) · w_r · scale; zero rows where w_r = 0.
// Args: logits, rows, vocab, targets, weights, lse, scale, dlogits (out)
Napi::Value CrossEntropyBackward(const Napi::CallbackInfo& info) {
  return Guarded(info, [&]() {
    const Args a(info, "crossEntropyBackward");
    const int64_t rows = a.Size(1), vocab = a.Size(2);
    const float* logits = a.F32(0, rows * vocab);
    const int32_t* targets = a.I32(3, rows);
    const float* weights = a.F32(4, rows);
    const float* lse = a.F32(5, rows);
    const float scale = static_cast<float>(a.Number(6));
    float* d = a.F32(7, rows * vocab);
    for (int64_t r = 0; r < rows; r++)
      if (weights[r] != 0.0f && (targets[r] < 0 || targets[r] >= vocab)) a.Fail("target outside the vocabulary");
    const int threads = rows * vocab >= kTranscendentalValues ? omp_get_max_threads() : 1;
#pragma omp parallel for schedule(dynamic, 4) num_threads(threads) if (threads > 1)
    for (int64_t r = 0; r < rows; r++) {
      float* dr = d + r * vocab;
      if (weights[r] == 0.0f) {
        std::fill(dr, dr + vocab, 0.0f);
        continue;
      }
      SoftmaxMinusOneHot(logits + r * vocab, vocab, lse[r], weights[r] * scale, targets[r], dr);
    }
    return info.Env().Undefined();
  });
}

// Args: { x, rows, in, scale, projections: [{ w, out, a?, b?, rank?, loraInput?, residual?, y }] }
Napi::Value LoraLinearForward(const Napi::CallbackInfo& info) {
  return Guarded(info, [&]() {
    if (info.Length() != 1 || !info[0].IsObject()) throw std::invalid_argument("loraLinearForward takes one object");
    const Napi::Object o = info[0].As<Napi::Object>();
    const ObjectArgs args(o, "loraLinearForward", "");
    const int64_t rows = args.Size("rows"), in = args.Size("in");
    const float scale = static_cast<float>(o.Get("scale").As<Napi::Number>().DoubleValue());
    const float* x = args.F32("x", rows * in);
    const std::vector<Projection> ps = ReadProjections(o, "loraLinearForward", rows, in, false);
    double flops = 0;
    int64_t maxRank = 0;
    bool anyDropout = false;
    for (const Projection& p : ps) {
      anyDropout = anyDropout || p.threshold > 0;
      flops += 2.0 * rows * in * p.out + 2.0 * rows * p.rank * (in + p.out);
      maxRank = std::max(maxRank, p.rank);
    }
    SplitRows(rows, flops, [&](int64_t r0, int64_t r1, int) {
      const int64_t m = r1 - r0;
      if (m <= 0) return;
      std::vector<float> xa(static_cast<size_t>(m * maxRank));
      std::vector<float> dropped(anyDropout ? static_cast<size_t>(m * in) : 0);
      for (const Projection& p : ps) {
        float* y = p.y + r0 * p.out;
        if (p.residual) std::copy(p.residual + r0 * p.out, p.residual + r1 * p.out, y);
        Gemm(false, true, m, p.out, in, 1.0f, x + r0 * in, in, p.w, in, p.residual ? 1.0f : 0.0f, y, p.out);
        if (!p.a) continue;
        const float* xin = (p.loraInput ? p.loraInput : x) + r0 * in;
        if (p.threshold > 0) {
          DropoutRows(x + r0 * in, dropped.data(), m * in, static_cast<uint32_t>(r0 * in), p.seed, p.threshold,
                      p.keepScale);
          xin = dropped.data();
        }
        Gemm(false, true, m, p.rank, in, 1.0f, xin, in, p.a, in, 0.0f, xa.data(), p.rank);
        Gemm(false, true, m, p.out, p.rank, scale, xa.data(), p.rank, p.b, p.rank, 1.0f, y, p.out);
      }
    });
    return info.Env().Undefined();
  });
}

// dx = Σ dy_i·W_i (+ scale·(dy_i·B_i)·A_i for adapters reading x); per adapter dA = scale·(dy·B)ᵀ·x',
// dB = scale·dyᵀ·(x'·Aᵀ), and dLoraInput = scale·(dy·B)·A when it has its own input. The down
// projection x'·Aᵀ is recomputed (rows × rank × in flops) rather than kept from the forward pass.
// Threads take row blocks and sum their dA/dB partials at the end.
// Args: { x, rows, in, scale, dx, projections: [{ w, out, dy, a?, b?, rank?, loraInput?, dA?, dB?, dLoraInput? }] }
Napi::Value LoraLinearBackward(const Napi::CallbackInfo& info) {
  return Guarded(info, [&]() {
    if (info.Length() != 1 || !info[0].IsObject()) throw std::invalid_argument("loraLinearBackward takes one object");
    const Napi::Object o = info[0].As<Napi::Object>();
    const ObjectArgs args(o, "loraLinearBackward", "");
    const int64_t rows = args.Size("rows"), in = args.Size("in");
    const float scale = static_cast<float>(o.Get("scale").As<Napi::Number>().DoubleValue());
    const float* x = args.F32("x", rows * in);
    float* dx = args.F32("dx", rows * in);
    const std::vector<Projection> ps = ReadProjections(o, "loraLinearBackward", rows, in, true);
    double flops = 0;
    int64_t partialSize = 0, maxRank = 0;
    bool anyDropout = false;
    for (const Projection& p : ps) {
      anyDropout = anyDropout || p.threshold > 0;
      flops += 2.0 * rows * in * p.out + 2.0 * rows * p.rank * (2 * in + 2 * p.out);
      partialSize += p.rank * in + p.out * p.rank;
      maxRank = std::max(maxRank, p.rank);
    }
    const int maxThreads = omp_get_max_threads();
    std::vector<float> partials(static_cast<size_t>(maxThreads * partialSize), 0.0f);
    std::vector<char> used(static_cast<size_t>(maxThreads), 0);
    if (rows == 0 || in == 0) std::fill(dx, dx + rows * in, 0.0f);
    SplitRows(rows, flops, [&](int64_t r0, int64_t r1, int t) {
      const int64_t m = r1 - r0;
      if (m <= 0) return;
      used[t] = 1;
      std::vector<float> dyB(static_cast<size_t>(m * maxRank)), xa(static_cast<size_t>(m * maxRank));
      std::vector<float> dropped(anyDropout ? static_cast<size_t>(m * in) : 0);
      std::vector<float> dDropped(anyDropout ? static_cast<size_t>(m * in) : 0);
      float* part = partials.data() + t * partialSize;
      float* dxr = dx + r0 * in;
      bool first = true;
      for (const Projection& p : ps) {
        const float* dy = p.dy + r0 * p.out;
        Gemm(false, false, m, in, p.out, 1.0f, dy, p.out, p.w, in, first ? 0.0f : 1.0f, dxr, in);
        first = false;
        if (!p.a) continue;
        const float* xin = (p.loraInput ? p.loraInput : x) + r0 * in;
        const uint32_t first = static_cast<uint32_t>(r0 * in);
        if (p.threshold > 0) {
          DropoutRows(x + r0 * in, dropped.data(), m * in, first, p.seed, p.threshold, p.keepScale);
          xin = dropped.data();
        }
        Gemm(false, false, m, p.rank, p.out, 1.0f, dy, p.out, p.b, p.rank, 0.0f, dyB.data(), p.rank);
        Gemm(false, true, m, p.rank, in, 1.0f, xin, in, p.a, in, 0.0f, xa.data(), p.rank);
        if (p.threshold > 0) {
          Gemm(false, false, m, in, p.rank, scale, dyB.data(), p.rank, p.a, in, 0.0f, dDropped.data(), in);
          DropoutAccumulate(dDropped.data(), dxr, m * in, first, p.seed, p.threshold, p.keepScale);
        } else if (p.dLoraInput)
          Gemm(false, false, m, in, p.rank, scale, dyB.data(), p.rank, p.a, in, 0.0f, p.dLoraInput + r0 * in, in);
        else
          Gemm(false, false, m, in, p.rank, scale, dyB.data(), p.rank, p.a, in, 1.0f, dxr, in);
        float* pdA = part;
        float* pdB = part + p.rank * in;
        Gemm(true, false, p.rank, in, m, scale, dyB.data(), p.rank, xin, in, 0.0f, pdA, in);
        Gemm(true, false, p.out, p.rank, m, scale, dy, p.out, xa.data(), p.rank, 0.0f, pdB, p.rank);
        part += p.rank * in + p.out * p.rank;
      }
      if (ps.empty()) std::fill(dxr, dxr + m * in, 0.0f);
    });
    // Sum the per-thread partials of each adapter's dA and dB.
    int64_t offset = 0;
    for (const Projection& p : ps) {
      if (!p.a) continue;
      const int64_t n = p.rank * in + p.out * p.rank;
      for (int64_t i = 0; i < n; i++) {
        float s = 0.0f;
        for (int t = 0; t < maxThreads; t++)
          if (used[t]) s += partials[t * partialSize + offset + i];
        if (i < p.rank * in)
          p.dA[i] = s;
        else
          p.dB[i - p.rank * in] = s;
      }
      offset += n;
    }
    return info.Env().Undefined();
  });
}

// ---------------------------------------------------------------------------------------------
// Optimizer step over every trained variable in one call. A LoRA model has hundreds of small
// adapter tensors (420 for SmolLM2 with r=8 on all projections); the op graph ran ~12 tfjs ops per
// tensor for AdamW and 2 more for the gradient norm, about 6,000 dispatches per step, each
// allocating a small result. The arithmetic below is the op graph's, operation by operation in
// float (no fused multiply-add: this file's base instruction set has none), so the updated
// weights are bit-identical to it.

namespace {
std::vector<float*> FloatArrays(const Napi::Value& v, const char* fn, const char* name) {
  if (!v.IsArray()) throw std::invalid_argument(std::string(fn) + ": " + name + " must be an array");
  const Napi::Array arr = v.As<Napi::Array>();
  std::vector<float*> out(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); i++) {
    const Napi::Value item = arr.Get(i);
    if (!item.IsTypedArray() || item.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
      throw std::invalid_argument(std::string(fn) + ": " + name + " must hold Float32Arrays");
    out[i] = item.As<Napi::Float32Array>().Data();
  }
  return out;
}

std::vector<int64_t> Lengths(const Napi::Value& v) {
  const Napi::Array arr = v.As<Napi::Array>();
  std::vector<int64_t> out(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); i++) out[i] = arr.Get(i).As<Napi::Float32Array>().ElementLength();
  return out;
}
}  // namespace

// Per array Σ x² (squares in float, summed in double, as Square + Sum). Args: arrays, out
Napi::Value SumSquares(const Napi::CallbackInfo& info) {
  return Guarded(info, [&]() {
    const std::vector<float*> xs = FloatArrays(info[0], "sumSquares", "arrays");
    const std::vector<int64_t> lengths = Lengths(info[0]);
    const Args a(info, "sumSquares");
    float* out = a.F32(1, static_cast<int64_t>(xs.size()));
    for (size_t i = 0; i < xs.size(); i++) {
      double s = 0;
      const float* x = xs[i];
      for (int64_t j = 0; j < lengths[i]; j++) {
        const float sq = x[j] * x[j];
        s += sq;
      }
      out[i] = static_cast<float>(s);
    }
    return info.Env().Undefined();
  });
}

// AdamW with bias correction, as train.ts's graph: m' = m·β1 + g·(1−β1), v' = v·β2 + g²·(1−β2),
// u = (m'/bc1) / (sqrt(v'/bc2) + ε), w' = [w·(1 − lr·wd)] − u·lr, with g = grad·gradScale when
// gradScale ≠ 1 (clipping). Args: { w, g, m, v, wOut, mOut, vOut (arrays), lr, beta1, oneMinusBeta1,
// beta2, oneMinusBeta2, epsilon, decay (1 − lr·wd, or null), bc1, bc2, gradScale (or null) }
Napi::Value AdamWUpdate(const Napi::CallbackInfo& info) {
  return Guarded(info, [&]() {
    if (info.Length() != 1 || !info[0].IsObject()) throw std::invalid_argument("adamwUpdate takes one object");
    const Napi::Object o = info[0].As<Napi::Object>();
    const char* fn = "adamwUpdate";
    const std::vector<float*> w = FloatArrays(o.Get("w"), fn, "w"), g = FloatArrays(o.Get("g"), fn, "g"),
                              m = FloatArrays(o.Get("m"), fn, "m"), v = FloatArrays(o.Get("v"), fn, "v"),
                              wOut = FloatArrays(o.Get("wOut"), fn, "wOut"),
                              mOut = FloatArrays(o.Get("mOut"), fn, "mOut"),
                              vOut = FloatArrays(o.Get("vOut"), fn, "vOut");
    const std::vector<int64_t> n = Lengths(o.Get("w"));
    for (const auto* list : {&g, &m, &v, &wOut, &mOut, &vOut})
      if (list->size() != w.size()) throw std::invalid_argument("adamwUpdate: lists differ in length");
    for (const char* name : {"g", "m", "v", "wOut", "mOut", "vOut"})
      if (Lengths(o.Get(name)) != n) throw std::invalid_argument(std::string("adamwUpdate: ") + name + " sizes differ from w");
    const auto number = [&](const char* name) { return static_cast<float>(o.Get(name).As<Napi::Number>().DoubleValue()); };
    const float lr = number("lr"), b1 = number("beta1"), c1 = number("oneMinusBeta1"), b2 = number("beta2"),
                c2 = number("oneMinusBeta2"), eps = number("epsilon"), bc1 = number("bc1"), bc2 = number("bc2");
    const bool decays = !o.Get("decay").IsNull() && !o.Get("decay").IsUndefined();
    const float decay = decays ? number("decay") : 1.0f;
    const bool scales = !o.Get("gradScale").IsNull() && !o.Get("gradScale").IsUndefined();
    const float gradScale = scales ? number("gradScale") : 1.0f;
    for (size_t t = 0; t < w.size(); t++) {
      for (int64_t i = 0; i < n[t]; i++) {
        const float gi = scales ? g[t][i] * gradScale : g[t][i];
        const float mi = m[t][i] * b1 + gi * c1;
        const float gsq = gi * gi;
        const float vi = v[t][i] * b2 + gsq * c2;
        const float mHat = mi / bc1;
        const float vHat = vi / bc2;
        const float root = static_cast<float>(std::sqrt(static_cast<double>(vHat)));
        const float update = mHat / (root + eps);
        const float decayed = decays ? w[t][i] * decay : w[t][i];
        const float step = update * lr;
        wOut[t][i] = decayed - step;
        mOut[t][i] = mi;
        vOut[t][i] = vi;
      }
    }
    return info.Env().Undefined();
  });
}

// ---------------------------------------------------------------------------------------------
// Attention for training: softmax(q·kᵀ + bias)·v per (batch, kv head) unit, keeping only each
// row's max and 1/Σ for the backward pass, which recomputes the probabilities block by block.
//
// Why not keep the probabilities (the previous fused kernel did): [B, kvHeads, rows, keys] floats
// per layer — 9 MB at batch 4 × 256, 38 MB at 4 × 512 — were kept alive from forward to backward
// for all 30 layers and freshly allocated each step; recomputing them costs one q·kᵀ product per
// block. Rows run in blocks of kRowBlock, and a block reads only the keys before its last row's
// first trailing masked key (causal: half the keys on average), so the products skip the masked
// triangle instead of computing it and multiplying by zero.

namespace {
constexpr int64_t kRowBlock = 64;

struct AttentionShape {
  int64_t units, m, keys, head, timeRows, biasUnitsPerBatch;
  bool biasPerBatch;
};

// One past the last unmasked key of every bias row (all keys when there is no bias; a row whose
// keys are all masked keeps them all, so its softmax is uniform as in tfjs).
std::vector<int64_t> ValidEnds(const float* bias, const AttentionShape& s) {
  const int64_t biasRows = bias ? (s.biasPerBatch ? s.units / s.biasUnitsPerBatch : 1) * s.timeRows : 0;
  std::vector<int64_t> end(static_cast<size_t>(biasRows));
  for (int64_t br = 0; br < biasRows; br++) {
    const float* b = bias + br * s.keys;
    int64_t e = s.keys;
    while (e > 0 && b[e - 1] < -1e8f) e--;
    end[br] = e == 0 ? s.keys : e;
  }
  return end;
}

struct RowBias {
  const float* row;  // null: no bias
  int64_t valid;
};

inline RowBias BiasOf(const float* bias, const std::vector<int64_t>& ends, const AttentionShape& s, int64_t u,
                      int64_t r) {
  if (!bias) return {nullptr, s.keys};
  const int64_t batch = s.biasPerBatch ? u / s.biasUnitsPerBatch : 0;
  const int64_t br = batch * s.timeRows + r % s.timeRows;
  return {bias + br * s.keys, ends[br]};
}

// Keys a block of rows [r0, r1) needs: the largest valid end among them.
inline int64_t BlockKeys(const float* bias, const std::vector<int64_t>& ends, const AttentionShape& s, int64_t u,
                         int64_t r0, int64_t r1) {
  int64_t n = 0;
  for (int64_t r = r0; r < r1; r++) n = std::max(n, BiasOf(bias, ends, s, u, r).valid);
  return n;
}

// row[0, n) = softmax(row + bias) over the valid prefix, 0 after it; returns (max, 1/Σ).
inline __attribute__((always_inline)) void SoftmaxStatsRowBody(float* row, const float* bias, int64_t n,
                                                               int64_t valid, float* stats) {
  if (bias) {
#pragma omp simd
    for (int64_t c = 0; c < valid; c++) row[c] += bias[c];
  }
  float mx = -std::numeric_limits<float>::infinity();
  for (int64_t c = 0; c < valid; c++) mx = row[c] > mx ? row[c] : mx;
#pragma omp simd
  for (int64_t c = 0; c < valid; c++) row[c] = VecExp(row[c] - mx);
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t c = 0; c < valid; c++) sum += row[c];
  const float inv = 1.0f / sum;
#pragma omp simd
  for (int64_t c = 0; c < valid; c++) row[c] *= inv;
  std::fill(row + valid, row + n, 0.0f);
  stats[0] = mx;
  stats[1] = inv;
}
CPREC_ISA_DISPATCH(SoftmaxStatsRow, SoftmaxStatsRowBody,
                   (float* row, const float* bias, int64_t n, int64_t valid, float* stats),
                   (row, bias, n, valid, stats))

// The forward's probabilities again from the scores and the saved (max, 1/Σ).
inline __attribute__((always_inline)) void RecomputeRowBody(float* row, const float* bias, int64_t n, int64_t valid,
                                                            const float* stats) {
  if (bias) {
#pragma omp simd
    for (int64_t c = 0; c < valid; c++) row[c] += bias[c];
  }
  const float mx = stats[0], inv = stats[1];
#pragma omp simd
  for (int64_t c = 0; c < valid; c++) row[c] = VecExp(row[c] - mx) * inv;
  std::fill(row + valid, row + n, 0.0f);
}
CPREC_ISA_DISPATCH(RecomputeRow, RecomputeRowBody,
                   (float* row, const float* bias, int64_t n, int64_t valid, const float* stats),
                   (row, bias, n, valid, stats))

// ds = p ⊙ (dp − Σ dp ⊙ p) in place over n values.
inline __attribute__((always_inline)) void SoftmaxGradRowBody(float* dp, const float* p, int64_t n) {
  float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
  for (int64_t c = 0; c < n; c++) dot += dp[c] * p[c];
#pragma omp simd
  for (int64_t c = 0; c < n; c++) dp[c] = p[c] * (dp[c] - dot);
}
CPREC_ISA_DISPATCH(SoftmaxGradRow, SoftmaxGradRowBody, (float* dp, const float* p, int64_t n), (dp, p, n))

AttentionShape ReadAttentionShape(const Args& a, size_t first) {
  AttentionShape s{a.Size(first),     a.Size(first + 1), a.Size(first + 2), a.Size(first + 3),
                   a.Size(first + 4), a.Size(first + 5), a.Flag(first + 6)};
  if (s.timeRows == 0 || s.m % s.timeRows != 0) a.Fail("rows must be blocks of timeRows");
  if (s.biasPerBatch && (s.biasUnitsPerBatch == 0 || s.units % s.biasUnitsPerBatch != 0))
    a.Fail("units must be whole batches of biasUnitsPerBatch");
  return s;
}

int64_t BiasValues(const AttentionShape& s) {
  return (s.biasPerBatch ? s.units / s.biasUnitsPerBatch : 1) * s.timeRows * s.keys;
}
}  // namespace

// Args: q, k, v, bias|null, out, stats (out, [units, m, 2]), units, m, keys, head, timeRows,
// biasUnitsPerBatch, biasPerBatch
Napi::Value AttentionTrainForward(const Napi::CallbackInfo& info) {
  return Guarded(info, [&]() {
    const Args a(info, "attentionTrainForward");
    const AttentionShape s = ReadAttentionShape(a, 6);
    const float* q = a.F32(0, s.units * s.m * s.head);
    const float* k = a.F32(1, s.units * s.keys * s.head);
    const float* v = a.F32(2, s.units * s.keys * s.head);
    const float* bias = a.OptionalF32(3, BiasValues(s));
    float* out = a.F32(4, s.units * s.m * s.head);
    float* stats = a.F32(5, s.units * s.m * 2);
    if (s.units == 0 || s.m == 0) return info.Env().Undefined();
    const std::vector<int64_t> ends = ValidEnds(bias, s);
    const int64_t blocks = (s.m + kRowBlock - 1) / kRowBlock;
    const double flops = 4.0 * s.units * s.m * s.keys * s.head;
    const int threads = flops >= kParallelFlops ? omp_get_max_threads() : 1;
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
      std::vector<float> p(static_cast<size_t>(kRowBlock * s.keys));
#pragma omp for schedule(dynamic, 1)
      for (int64_t item = 0; item < s.units * blocks; item++) {
        const int64_t u = item / blocks, r0 = (item % blocks) * kRowBlock, r1 = std::min(s.m, r0 + kRowBlock);
        const int64_t n = BlockKeys(bias, ends, s, u, r0, r1);
        const float* ku = k + u * s.keys * s.head;
        Gemm(false, true, r1 - r0, n, s.head, 1.0f, q + (u * s.m + r0) * s.head, s.head, ku, s.head, 0.0f, p.data(), n);
        for (int64_t r = r0; r < r1; r++) {
          const RowBias rb = BiasOf(bias, ends, s, u, r);
          SoftmaxStatsRow(p.data() + (r - r0) * n, rb.row, n, std::min(rb.valid, n), stats + (u * s.m + r) * 2);
        }
        Gemm(false, false, r1 - r0, s.head, n, 1.0f, p.data(), n, v + u * s.keys * s.head, s.head, 0.0f,
             out + (u * s.m + r0) * s.head, s.head);
      }
    }
    return info.Env().Undefined();
  });
}

// Args: q, k, v, bias|null, stats, dOut, dQ, dK, dV, units, m, keys, head, timeRows, biasUnitsPerBatch,
// biasPerBatch
Napi::Value AttentionTrainBackward(const Napi::CallbackInfo& info) {
  return Guarded(info, [&]() {
    const Args a(info, "attentionTrainBackward");
    const AttentionShape s = ReadAttentionShape(a, 9);
    const float* q = a.F32(0, s.units * s.m * s.head);
    const float* k = a.F32(1, s.units * s.keys * s.head);
    const float* v = a.F32(2, s.units * s.keys * s.head);
    const float* bias = a.OptionalF32(3, BiasValues(s));
    const float* stats = a.F32(4, s.units * s.m * 2);
    const float* dOut = a.F32(5, s.units * s.m * s.head);
    float* dQ = a.F32(6, s.units * s.m * s.head);
    float* dK = a.F32(7, s.units * s.keys * s.head);
    float* dV = a.F32(8, s.units * s.keys * s.head);
    std::fill(dK, dK + s.units * s.keys * s.head, 0.0f);
    std::fill(dV, dV + s.units * s.keys * s.head, 0.0f);
    if (s.units == 0 || s.m == 0) return info.Env().Undefined();
    const std::vector<int64_t> ends = ValidEnds(bias, s);
    const int64_t blocks = (s.m + kRowBlock - 1) / kRowBlock;
    const double flops = 10.0 * s.units * s.m * s.keys * s.head;
    const int threads = flops >= kParallelFlops ? omp_get_max_threads() : 1;
    // By unit: the row blocks of a unit all add into its dK and dV.
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
      std::vector<float> p(static_cast<size_t>(kRowBlock * s.keys)), dp(static_cast<size_t>(kRowBlock * s.keys));
#pragma omp for schedule(dynamic, 1)
      for (int64_t u = 0; u < s.units; u++) {
        const float* ku = k + u * s.keys * s.head;
        const float* vu = v + u * s.keys * s.head;
        float* dKu = dK + u * s.keys * s.head;
        float* dVu = dV + u * s.keys * s.head;
        for (int64_t b = 0; b < blocks; b++) {
          const int64_t r0 = b * kRowBlock, r1 = std::min(s.m, r0 + kRowBlock), rows = r1 - r0;
          const int64_t n = BlockKeys(bias, ends, s, u, r0, r1);
          const float* qb = q + (u * s.m + r0) * s.head;
          const float* dOb = dOut + (u * s.m + r0) * s.head;
          Gemm(false, true, rows, n, s.head, 1.0f, qb, s.head, ku, s.head, 0.0f, p.data(), n);
          for (int64_t r = r0; r < r1; r++) {
            const RowBias rb = BiasOf(bias, ends, s, u, r);
            RecomputeRow(p.data() + (r - r0) * n, rb.row, n, std::min(rb.valid, n), stats + (u * s.m + r) * 2);
          }
          // dV += pᵀ dO; dP = dO vᵀ; dS = p (dP − rowsum(dP p)); dQ = dS k; dK += dSᵀ q.
          Gemm(true, false, n, s.head, rows, 1.0f, p.data(), n, dOb, s.head, 1.0f, dVu, s.head);
          Gemm(false, true, rows, n, s.head, 1.0f, dOb, s.head, vu, s.head, 0.0f, dp.data(), n);
          for (int64_t r = 0; r < rows; r++) SoftmaxGradRow(dp.data() + r * n, p.data() + r * n, n);
          Gemm(false, false, rows, s.head, n, 1.0f, dp.data(), n, ku, s.head, 0.0f, dQ + (u * s.m + r0) * s.head,
               s.head);
          Gemm(true, false, n, s.head, rows, 1.0f, dp.data(), n, qb, s.head, 1.0f, dKu, s.head);
        }
      }
    }
    return info.Env().Undefined();
  });
}

}  // namespace cprec
