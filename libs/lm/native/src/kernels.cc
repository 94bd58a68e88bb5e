// Native float32 kernels for the tfjs `cpu` backend (see libs/lm/src/kernels/index.ts).
//
// Every entry point takes input typed arrays plus a caller-allocated output typed array and writes
// the result in place, so no JS <-> native copies happen. Shapes and strides are computed in
// TypeScript (mirroring the tfjs cpu kernels) and passed in as Int32Arrays; this file only does
// the arithmetic. Matrix products go to OpenBLAS; element-wise loops are split across cores with
// OpenMP above a size threshold (below it the fork/join overhead dominates).
#include <napi.h>
#include <cblas.h>
#include <omp.h>

#include "decoder_layer.h"
#include "kernel_common.h"
#include "training_ops.h"

#include <malloc.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

namespace {

// Threading policy, from measurements on the 2-vCPU VM this runs on (docs/kernels.md): waking a
// sleeping worker thread costs about 0.7 ms there (the idle vCPU has to be woken by the
// hypervisor), while a 2048×64 element-wise add takes 0.04 ms on one thread, and memory-bound
// element-wise ops are no faster on two threads even at 4M elements. So element-wise copies,
// adds and reductions stay on the calling thread; only work that takes milliseconds on one core
// (large matrix products, fused attention, transcendental maps over millions of values) is split.
constexpr int64_t kParallelThreshold = int64_t{1} << 40;  // memory-bound element-wise: never
constexpr int64_t kTranscendentalThreshold = int64_t{1} << 20;  // exp/log/sigmoid values
constexpr int kMaxRank = 24;

using cprec::ActiveIsa;
using cprec::Isa;
using cprec::kParallelFlops;
using cprec::VecExp;

// Row softmax kernels, compiled per instruction set (CPREC_ISA_DISPATCH) and picked at load
// time by the CPU: exp dominates them and AVX2 doubles its throughput (measured 0.73 → 0.36 ms
// for 283K values), while the addon must still load on CPUs without AVX2.

// out = softmax(x) over n values, like the tfjs kernel: NaN anywhere makes the row NaN.
inline __attribute__((always_inline)) void SoftmaxRowBody(const float* x, float* out, int64_t n) {
  float mx = -std::numeric_limits<float>::infinity();
  bool nan = false;
  for (int64_t c = 0; c < n; c++) {
    nan = nan || std::isnan(x[c]);
    mx = x[c] > mx ? x[c] : mx;
  }
  if (nan) mx = NAN;
#pragma omp simd
  for (int64_t c = 0; c < n; c++) out[c] = VecExp(x[c] - mx);
  double sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t c = 0; c < n; c++) sum += out[c];
  const float fsum = static_cast<float>(sum);
  for (int64_t c = 0; c < n; c++) out[c] = out[c] / fsum;
}
CPREC_ISA_DISPATCH(SoftmaxRow, SoftmaxRowBody, (const float* x, float* out, int64_t n), (x, out, n))

template <typename T>
T* DataOf(const Napi::Value& v) {
  auto arr = v.As<Napi::TypedArrayOf<T>>();
  return arr.Data();
}

template <typename T>
size_t LengthOf(const Napi::Value& v) {
  return v.As<Napi::TypedArrayOf<T>>().ElementLength();
}

std::vector<int64_t> IntsOf(const Napi::Value& v) {
  auto arr = v.As<Napi::Int32Array>();
  return std::vector<int64_t>(arr.Data(), arr.Data() + arr.ElementLength());
}

bool Truthy(const Napi::Value& v) { return v.ToBoolean().Value(); }
int64_t IntOf(const Napi::Value& v) { return v.As<Napi::Number>().Int64Value(); }

// ---------------------------------------------------------------------------------------------
// sgemm with tfjs batch semantics: batch index bi reads a[bi % batchA] and b[bi % batchB].
// Args: a, b, out, batch, batchA, batchB, m, n, k, transposeA, transposeB
Napi::Value Matmul(const Napi::CallbackInfo& info) {
  const float* a = DataOf<float>(info[0]);
  const float* b = DataOf<float>(info[1]);
  float* out = DataOf<float>(info[2]);
  const int64_t batch = IntOf(info[3]), batchA = IntOf(info[4]), batchB = IntOf(info[5]);
  const int m = static_cast<int>(IntOf(info[6]));
  const int n = static_cast<int>(IntOf(info[7]));
  const int k = static_cast<int>(IntOf(info[8]));
  const bool ta = Truthy(info[9]), tb = Truthy(info[10]);
  if (m == 0 || n == 0) return info.Env().Undefined();
  if (k == 0) {
    std::fill(out, out + batch * m * n, 0.0f);
    return info.Env().Undefined();
  }
  const int lda = ta ? m : k;
  const int ldb = tb ? k : n;
  const int64_t strideA = static_cast<int64_t>(m) * k, strideB = static_cast<int64_t>(k) * n,
                strideC = static_cast<int64_t>(m) * n;
  // OpenBLAS runs single-threaded (set at load: its own thread pool pays the wake-up cost on
  // every call, 3-6 ms for a 128³ product measured here); large work is split here instead.
  const auto gemm = [&](const float* pa, const float* pb, float* pc, int rows, int cols) {
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, rows, cols, k,
                1.0f, pa, lda, pb, ldb, 0.0f, pc, n);
  };
  const double flops = 2.0 * static_cast<double>(batch) * m * n * k;
  const int threads = flops >= kParallelFlops ? omp_get_max_threads() : 1;
  if (threads > 1 && batch >= threads) {
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t bi = 0; bi < batch; bi++) {
      gemm(a + (bi % batchA) * strideA, b + (bi % batchB) * strideB, out + bi * strideC, m, n);
    }
  } else if (threads > 1) {
    // One large product: each thread takes a block of output rows (or columns when m is small).
    for (int64_t bi = 0; bi < batch; bi++) {
      const float* pa = a + (bi % batchA) * strideA;
      const float* pb = b + (bi % batchB) * strideB;
      float* pc = out + bi * strideC;
      const bool byRows = m >= n;
#pragma omp parallel num_threads(threads)
      {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        const int extent = byRows ? m : n;
        const int chunk = (extent + nt - 1) / nt;
        const int s0 = std::min(extent, t * chunk), s1 = std::min(extent, s0 + chunk);
        if (s0 < s1) {
          if (byRows) {
            gemm(ta ? pa + s0 : pa + static_cast<int64_t>(s0) * lda, pb, pc + static_cast<int64_t>(s0) * n, s1 - s0, n);
          } else {
            gemm(pa, tb ? pb + static_cast<int64_t>(s0) * ldb : pb + s0, pc + s0, m, s1 - s0);
          }
        }
      }
    }
  } else {
    for (int64_t bi = 0; bi < batch; bi++) {
      gemm(a + (bi % batchA) * strideA, b + (bi % batchB) * strideB, out + bi * strideC, m, n);
    }
  }
  return info.Env().Undefined();
}

// ---------------------------------------------------------------------------------------------
// Strided N-d iteration shared by the binary ops and the copy kernels. Dimensions that are
// contiguous for every operand are merged first so the inner loop is as long as possible.
struct Layout {
  int rank = 0;
  int64_t shape[kMaxRank];
  int64_t strides[3][kMaxRank];  // up to three operands
};

Layout Collapse(const std::vector<int64_t>& shape, const std::vector<const std::vector<int64_t>*>& strides) {
  Layout l;
  const int ops = static_cast<int>(strides.size());
  for (size_t d = 0; d < shape.size(); d++) {
    if (shape[d] == 1) continue;  // size-1 dims never move any operand
    if (l.rank > 0) {
      bool mergeable = true;
      for (int o = 0; o < ops; o++) {
        if (l.strides[o][l.rank - 1] != (*strides[o])[d] * shape[d]) mergeable = false;
      }
      if (mergeable) {
        l.shape[l.rank - 1] *= shape[d];
        for (int o = 0; o < ops; o++) l.strides[o][l.rank - 1] = (*strides[o])[d];
        continue;
      }
    }
    l.shape[l.rank] = shape[d];
    for (int o = 0; o < ops; o++) l.strides[o][l.rank] = (*strides[o])[d];
    l.rank++;
  }
  if (l.rank == 0) {
    l.rank = 1;
    l.shape[0] = 1;
    for (int o = 0; o < ops; o++) l.strides[o][0] = 0;
  }
  return l;
}

// Calls body(offsets[], innerCount) for every inner row of outputs [start, end) (linear index
// over the layout's shape). Offsets are per operand.
template <int Ops, typename Body>
void ForEachRow(const Layout& l, int64_t start, int64_t end, Body body) {
  const int r = l.rank;
  const int64_t inner = l.shape[r - 1];
  int64_t idx[kMaxRank];
  int64_t rem = start;
  for (int d = r - 1; d >= 0; d--) {
    idx[d] = rem % l.shape[d];
    rem /= l.shape[d];
  }
  int64_t off[Ops];
  for (int o = 0; o < Ops; o++) {
    off[o] = 0;
    for (int d = 0; d < r; d++) off[o] += idx[d] * l.strides[o][d];
  }
  int64_t pos = start;
  while (pos < end) {
    const int64_t count = std::min(inner - idx[r - 1], end - pos);
    body(off, count);
    pos += count;
    for (int o = 0; o < Ops; o++) off[o] += count * l.strides[o][r - 1];
    idx[r - 1] += count;
    for (int d = r - 1; d > 0 && idx[d] == l.shape[d]; d--) {
      idx[d] = 0;
      idx[d - 1]++;
      for (int o = 0; o < Ops; o++) off[o] += l.strides[o][d - 1] - l.shape[d] * l.strides[o][d];
    }
  }
}

template <int Ops, typename Body>
void ParallelRows(const Layout& l, int64_t total, Body body) {
  if (total < kParallelThreshold) {
    ForEachRow<Ops>(l, 0, total, body);
    return;
  }
#pragma omp parallel
  {
    const int64_t threads = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t chunk = (total + threads - 1) / threads;
    const int64_t s = std::min(total, t * chunk), e = std::min(total, s + chunk);
    if (s < e) ForEachRow<Ops>(l, s, e, body);
  }
}

int64_t SizeOf(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// ---------------------------------------------------------------------------------------------
// Binary ops. Op codes match BINARY_OPS in index.ts. Arithmetic is done in float (each input is
// a float32, and a single IEEE op in float rounds identically to double-then-round for + − × ÷).
enum BinaryOp { kAdd = 0, kSub, kMul, kDiv, kMax, kMin, kSquaredDiff };

template <typename F>
void RunBinary(const Layout& l, int64_t total, const float* a, const float* b, float* out, F f) {
  ParallelRows<3>(l, total, [&](const int64_t* off, int64_t count) {
    const float* pa = a + off[0];
    const float* pb = b + off[1];
    float* po = out + off[2];
    const int64_t sa = l.strides[0][l.rank - 1], sb = l.strides[1][l.rank - 1];
    if (sa == 1 && sb == 1) {
      for (int64_t i = 0; i < count; i++) po[i] = f(pa[i], pb[i]);
    } else if (sa == 1 && sb == 0) {
      const float vb = pb[0];
      for (int64_t i = 0; i < count; i++) po[i] = f(pa[i], vb);
    } else if (sa == 0 && sb == 1) {
      const float va = pa[0];
      for (int64_t i = 0; i < count; i++) po[i] = f(va, pb[i]);
    } else {
      for (int64_t i = 0; i < count; i++) po[i] = f(pa[i * sa], pb[i * sb]);
    }
  });
}

// JS Math.max/min propagate NaN; std::max would not.
inline float JsMax(float x, float y) { return (std::isnan(x) || std::isnan(y)) ? NAN : (x > y ? x : y); }
inline float JsMin(float x, float y) { return (std::isnan(x) || std::isnan(y)) ? NAN : (x < y ? x : y); }

// Args: op, a, aStrides (broadcast, length = out rank), b, bStrides, out, outShape
Napi::Value Binary(const Napi::CallbackInfo& info) {
  const int op = static_cast<int>(IntOf(info[0]));
  const float* a = DataOf<float>(info[1]);
  const auto aStrides = IntsOf(info[2]);
  const float* b = DataOf<float>(info[3]);
  const auto bStrides = IntsOf(info[4]);
  float* out = DataOf<float>(info[5]);
  const auto shape = IntsOf(info[6]);
  const int64_t total = SizeOf(shape);
  if (total == 0) return info.Env().Undefined();
  std::vector<int64_t> outStrides(shape.size());
  int64_t s = 1;
  for (int d = static_cast<int>(shape.size()) - 1; d >= 0; d--) {
    outStrides[d] = s;
    s *= shape[d];
  }
  const Layout l = Collapse(shape, {&aStrides, &bStrides, &outStrides});
  switch (op) {
    case kAdd: RunBinary(l, total, a, b, out, [](float x, float y) { return x + y; }); break;
    case kSub: RunBinary(l, total, a, b, out, [](float x, float y) { return x - y; }); break;
    case kMul: RunBinary(l, total, a, b, out, [](float x, float y) { return x * y; }); break;
    case kDiv: RunBinary(l, total, a, b, out, [](float x, float y) { return x / y; }); break;
    case kMax: RunBinary(l, total, a, b, out, JsMax); break;
    case kMin: RunBinary(l, total, a, b, out, JsMin); break;
    case kSquaredDiff:
      RunBinary(l, total, a, b, out, [](float x, float y) {
        const float d = x - y;
        return d * d;
      });
      break;
    default: Napi::Error::New(info.Env(), "unknown binary op").ThrowAsJavaScriptException();
  }
  return info.Env().Undefined();
}

// ---------------------------------------------------------------------------------------------
// Unary ops. Op codes match UNARY_OPS in index.ts. Log is evaluated in double like JS Math.log;
// exp (and sigmoid through it) uses the vectorized VecExp, within 3e-7 of the double result.
enum UnaryOp { kExp = 0, kLog, kNeg, kSqrt, kRsqrt, kReciprocal, kSigmoid, kRelu, kSquare, kAbs };

template <typename F>
void RunUnary(const float* x, float* out, int64_t n, F f) {
#pragma omp parallel for schedule(static) if (n >= kTranscendentalThreshold)
  for (int64_t i = 0; i < n; i++) out[i] = f(x[i]);
}

Napi::Value Unary(const Napi::CallbackInfo& info) {
  const int op = static_cast<int>(IntOf(info[0]));
  const float* x = DataOf<float>(info[1]);
  float* out = DataOf<float>(info[2]);
  const int64_t n = static_cast<int64_t>(LengthOf<float>(info[1]));
  switch (op) {
    case kExp: RunUnary(x, out, n, [](float v) { return VecExp(v); }); break;
    case kLog: RunUnary(x, out, n, [](float v) { return static_cast<float>(std::log(static_cast<double>(v))); }); break;
    case kNeg: RunUnary(x, out, n, [](float v) { return -v; }); break;
    case kSqrt: RunUnary(x, out, n, [](float v) { return static_cast<float>(std::sqrt(static_cast<double>(v))); }); break;
    case kRsqrt:
      RunUnary(x, out, n, [](float v) { return static_cast<float>(1.0 / std::sqrt(static_cast<double>(v))); });
      break;
    case kReciprocal: RunUnary(x, out, n, [](float v) { return static_cast<float>(1.0 / static_cast<double>(v)); }); break;
    case kSigmoid:
      RunUnary(x, out, n, [](float v) { return 1.0f / (1.0f + VecExp(-v)); });
      break;
    // tfjs cpu Relu keeps NaN (x < 0 ? 0 : x).
    case kRelu: RunUnary(x, out, n, [](float v) { return v < 0.0f ? 0.0f : v; }); break;
    case kSquare: RunUnary(x, out, n, [](float v) { return v * v; }); break;
    case kAbs: RunUnary(x, out, n, [](float v) { return std::fabs(v); }); break;
    default: Napi::Error::New(info.Env(), "unknown unary op").ThrowAsJavaScriptException();
  }
  return info.Env().Undefined();
}

// ---------------------------------------------------------------------------------------------
// Row-wise softmax over the last axis: exp(x - max) / sum. Args: x, out, rows, cols
Napi::Value Softmax(const Napi::CallbackInfo& info) {
  const float* x = DataOf<float>(info[0]);
  float* out = DataOf<float>(info[1]);
  const int64_t rows = IntOf(info[2]), cols = IntOf(info[3]);
#pragma omp parallel for schedule(static) if (rows * cols >= kTranscendentalThreshold)
  for (int64_t r = 0; r < rows; r++) SoftmaxRow(x + r * cols, out + r * cols, cols);
  return info.Env().Undefined();
}

// log softmax(row)[token] of one row of n logits: max-shifted, exps summed in kLanes partial sums.
inline __attribute__((always_inline)) float LogProbabilityBody(const float* row, int64_t n, int64_t token) {
  constexpr int64_t kLanes = 16;
  float mx = -std::numeric_limits<float>::infinity();
  for (int64_t c = 0; c < n; c++) mx = row[c] > mx ? row[c] : mx;
  float lanes[kLanes] = {};
  int64_t c = 0;
  for (; c + kLanes <= n; c += kLanes) {
#pragma omp simd
    for (int64_t l = 0; l < kLanes; l++) lanes[l] += VecExp(row[c + l] - mx);
  }
  double sum = 0;
  for (int64_t l = 0; l < kLanes; l++) sum += lanes[l];
  for (; c < n; c++) sum += VecExp(row[c] - mx);
  return static_cast<float>(row[token] - mx - std::log(sum));
}
CPREC_ISA_DISPATCH_VALUE(float, LogProbability, LogProbabilityBody, (const float* row, int64_t n, int64_t token),
                         (row, n, token))

// out[i] = log softmax(logits[offsets[i], offsets[i] + n))[tokens[i]] — the few positions a
// candidate ranking reads out of a [rows, columns, vocab] logits tensor.
// Args: logits, n, offsets (Int32Array), tokens (Int32Array), out (Float32Array)
Napi::Value LogProbabilities(const Napi::CallbackInfo& info) {
  const float* logits = DataOf<float>(info[0]);
  const size_t total = LengthOf<float>(info[0]);
  const int64_t n = IntOf(info[1]);
  const auto offsets = info[2].As<Napi::Int32Array>();
  const auto tokens = info[3].As<Napi::Int32Array>();
  float* out = DataOf<float>(info[4]);
  const size_t count = offsets.ElementLength();
  if (tokens.ElementLength() != count || LengthOf<float>(info[4]) != count) {
    Napi::Error::New(info.Env(), "logProbabilities: offsets, tokens and out differ in length")
        .ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  for (size_t i = 0; i < count; i++) {
    const int64_t off = offsets[i], tok = tokens[i];
    if (off < 0 || static_cast<size_t>(off + n) > total || tok < 0 || tok >= n) {
      Napi::Error::New(info.Env(), "logProbabilities: position or token out of range").ThrowAsJavaScriptException();
      return info.Env().Undefined();
    }
    out[i] = LogProbability(logits + off, n, tok);
  }
  return info.Env().Undefined();
}

// ---------------------------------------------------------------------------------------------
// Reductions over the innermost `inner` values of each of `outer` rows. Sums accumulate in double
// like the JS kernels. Args: op (0 sum, 1 max, 2 min), x, out, outer, inner
Napi::Value Reduce(const Napi::CallbackInfo& info) {
  const int op = static_cast<int>(IntOf(info[0]));
  const float* x = DataOf<float>(info[1]);
  float* out = DataOf<float>(info[2]);
  const int64_t outer = IntOf(info[3]), inner = IntOf(info[4]);
#pragma omp parallel for schedule(static) if (outer * inner >= kParallelThreshold)
  for (int64_t r = 0; r < outer; r++) {
    const float* px = x + r * inner;
    if (op == 0) {
      double s = 0;
      for (int64_t c = 0; c < inner; c++) s += px[c];
      out[r] = static_cast<float>(s);
    } else {
      // tfjs maxImpl: starts from the first value and uses `value > max` (NaN is sticky only if first).
      float m = inner > 0 ? px[0] : 0.0f;
      for (int64_t c = 1; c < inner; c++) {
        const float v = px[c];
        if (std::isnan(v) || (op == 1 ? v > m : v < m)) m = v;
      }
      out[r] = m;
    }
  }
  return info.Env().Undefined();
}

// ---------------------------------------------------------------------------------------------
// General strided copy: dst[dstOffset + Σ i_d·dstStrides_d] = src[srcOffset + Σ i_d·srcStrides_d]
// over `shape`. Transpose, Slice, Pad, Concat, Split and Tile are all expressed with it in TS.
// Args: src, srcOffset, srcStrides, dst, dstOffset, dstStrides, shape
Napi::Value CopyStrided(const Napi::CallbackInfo& info) {
  const float* src = DataOf<float>(info[0]) + IntOf(info[1]);
  const auto srcStrides = IntsOf(info[2]);
  float* dst = DataOf<float>(info[3]) + IntOf(info[4]);
  const auto dstStrides = IntsOf(info[5]);
  const auto shape = IntsOf(info[6]);
  const int64_t total = SizeOf(shape);
  if (total == 0) return info.Env().Undefined();
  const Layout l = Collapse(shape, {&srcStrides, &dstStrides});
  ParallelRows<2>(l, total, [&](const int64_t* off, int64_t count) {
    const float* ps = src + off[0];
    float* pd = dst + off[1];
    const int64_t ss = l.strides[0][l.rank - 1], ds = l.strides[1][l.rank - 1];
    if (ss == 1 && ds == 1) {
      std::memcpy(pd, ps, count * sizeof(float));
    } else {
      for (int64_t i = 0; i < count; i++) pd[i * ds] = ps[i * ss];
    }
  });
  return info.Env().Undefined();
}

// Fill with a constant. Args: dst, value
Napi::Value Fill(const Napi::CallbackInfo& info) {
  float* dst = DataOf<float>(info[0]);
  const int64_t n = static_cast<int64_t>(LengthOf<float>(info[0]));
  const float v = static_cast<float>(info[1].As<Napi::Number>().DoubleValue());
  std::fill(dst, dst + n, v);
  return info.Env().Undefined();
}

// ---------------------------------------------------------------------------------------------
// Gather rows: x viewed as [outer, dimSize, inner], out as [outer, nIdx, inner].
// Args: x, indices (Int32Array), out, outer, dimSize, inner
Napi::Value Gather(const Napi::CallbackInfo& info) {
  const float* x = DataOf<float>(info[0]);
  const int32_t* idx = DataOf<int32_t>(info[1]);
  const int64_t nIdx = static_cast<int64_t>(LengthOf<int32_t>(info[1]));
  float* out = DataOf<float>(info[2]);
  const int64_t outer = IntOf(info[3]), dimSize = IntOf(info[4]), inner = IntOf(info[5]);
#pragma omp parallel for schedule(static) if (outer * nIdx * inner >= kParallelThreshold)
  for (int64_t r = 0; r < outer * nIdx; r++) {
    const int64_t o = r / nIdx, i = r % nIdx;
    std::memcpy(out + r * inner, x + (o * dimSize + idx[i]) * inner, inner * sizeof(float));
  }
  return info.Env().Undefined();
}

// Scatter-add rows: out[seg[i]] += x[i] for rows of length `inner`, ids outside
// [0, numSegments) are dropped (as in the JS kernel). Accumulates in double.
// Args: x, segmentIds (Int32Array), out, numSegments, inner
Napi::Value UnsortedSegmentSum(const Napi::CallbackInfo& info) {
  const float* x = DataOf<float>(info[0]);
  const int32_t* seg = DataOf<int32_t>(info[1]);
  const int64_t nIds = static_cast<int64_t>(LengthOf<int32_t>(info[1]));
  float* out = DataOf<float>(info[2]);
  const int64_t numSegments = IntOf(info[3]), inner = IntOf(info[4]);
  std::vector<double> acc(static_cast<size_t>(numSegments * inner), 0.0);
  // Split over columns so threads never write the same accumulator.
#pragma omp parallel for schedule(static) if (nIds * inner >= kParallelThreshold && inner >= 16)
  for (int64_t c = 0; c < inner; c++) {
    for (int64_t i = 0; i < nIds; i++) {
      const int64_t s = seg[i];
      if (s >= 0 && s < numSegments) acc[s * inner + c] += x[i * inner + c];
    }
  }
  for (int64_t j = 0; j < numSegments * inner; j++) out[j] = static_cast<float>(acc[j]);
  return info.Env().Undefined();
}

// Info about the build, for `cprec doctor` and the benchmark.
Napi::Value Describe(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("blasThreads", openblas_get_num_threads());
  o.Set("parallelFlops", kParallelFlops);
  o.Set("ompThreads", omp_get_max_threads());
  o.Set("blasConfig", openblas_get_config());
  o.Set("isa", cprec::IsaName(cprec::ActiveIsa()));
  const char* tuning = std::getenv("CPREC_MALLOC_TUNING");
  o.Set("mallocTuning", tuning != nullptr && std::strcmp(tuning, "off") == 0 ? "off" : "heap-only");
  return o;
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  const int n = static_cast<int>(IntOf(info[0]));
  omp_set_num_threads(n);
  return info.Env().Undefined();
}

// tfjs's cpu backend allocates a fresh typed array for every op result, and V8 frees it only when
// a garbage collection finds it dead. Memory the process touches for the first time costs a page
// fault per 4 KiB page, 2.5-20 µs each in this VM (measured: 160-620 ms to first-touch 200 MB,
// 10 ms to rewrite it) — about a third of a SmolLM2 LoRA step before this tuning
// (docs/kernels.md). glibc serves blocks above its mmap threshold (128 KiB, at most 32 MiB) with
// fresh mmaps and unmaps them on free, so every such activation paid those faults again; and it
// trims the top of the heap. So: no mmap at all (M_MMAP_MAX 0: blocks of every size come from the
// heap, so the 200 MB logits of a step reuse the last step's pages), never trim, and grow the heap
// in 64 MiB steps. The heap then stays at its peak (RSS 4 GB for a SmolLM2 step at batch 4 × 256)
// and a step after the first pays ~500 page faults instead of ~110,000.
// CPREC_MALLOC_TUNING=off leaves glibc's defaults.
void TuneMalloc() {
  const char* v = std::getenv("CPREC_MALLOC_TUNING");
  if (v != nullptr && std::strcmp(v, "off") == 0) return;
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, std::numeric_limits<int>::max());
  mallopt(M_TOP_PAD, 64 * 1024 * 1024);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  TuneMalloc();
  openblas_set_num_threads(1);
  exports.Set("matmul", Napi::Function::New(env, Matmul));
  exports.Set("binary", Napi::Function::New(env, Binary));
  exports.Set("unary", Napi::Function::New(env, Unary));
  exports.Set("softmax", Napi::Function::New(env, Softmax));
  exports.Set("reduce", Napi::Function::New(env, Reduce));
  exports.Set("copyStrided", Napi::Function::New(env, CopyStrided));
  exports.Set("fill", Napi::Function::New(env, Fill));
  exports.Set("gather", Napi::Function::New(env, Gather));
  exports.Set("unsortedSegmentSum", Napi::Function::New(env, UnsortedSegmentSum));
  exports.Set("decoderLayer", Napi::Function::New(env, cprec::DecoderLayer));
  exports.Set("logProbabilities", Napi::Function::New(env, LogProbabilities));
  exports.Set("rmsNormForward", Napi::Function::New(env, cprec::RmsNormForward));
  exports.Set("rmsNormBackward", Napi::Function::New(env, cprec::RmsNormBackward));
  exports.Set("swigluForward", Napi::Function::New(env, cprec::SwiGluForward));
  exports.Set("swigluBackward", Napi::Function::New(env, cprec::SwiGluBackward));
  exports.Set("ropeForward", Napi::Function::New(env, cprec::RopeForward));
  exports.Set("ropeBackward", Napi::Function::New(env, cprec::RopeBackward));
  exports.Set("crossEntropyForward", Napi::Function::New(env, cprec::CrossEntropyForward));
  exports.Set("crossEntropyBackward", Napi::Function::New(env, cprec::CrossEntropyBackward));
  exports.Set("loraLinearForward", Napi::Function::New(env, cprec::LoraLinearForward));
  exports.Set("loraLinearBackward", Napi::Function::New(env, cprec::LoraLinearBackward));
  exports.Set("sumSquares", Napi::Function::New(env, cprec::SumSquares));
  exports.Set("adamwUpdate", Napi::Function::New(env, cprec::AdamWUpdate));
  exports.Set("attentionTrainForward", Napi::Function::New(env, cprec::AttentionTrainForward));
  exports.Set("attentionTrainBackward", Napi::Function::New(env, cprec::AttentionTrainBackward));
  exports.Set("describe", Napi::Function::New(env, Describe));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads));
  return exports;
}

}  // namespace

NODE_API_MODULE(cprec_kernels, Init)
