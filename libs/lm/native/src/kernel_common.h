// What the element-wise kernels (kernels.cc) and the fused decoder layer (decoder_layer.cc) share:
// the threading threshold and a vectorizable exp.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace cprec {

// Matrix-product (or attention) flops worth waking a second thread for: waking a sleeping worker
// costs about 0.7 ms on the 2-vCPU VM this runs on (docs/kernels.md).
constexpr double kParallelFlops = 1e8;

// Instruction-set variants of the hot loops, chosen once at load by CPU features.
//
// Why not GCC's target_clones: its resolver picked the baseline clone on this VM's AMD EPYC
// (Zen 4, AVX-512) even for "avx512f" — while __builtin_cpu_supports, called after
// __builtin_cpu_init, reports every feature correctly. So the choice is made here, explicitly.
// CPREC_KERNEL_ISA=base|avx2|avx512 forces a variant (for parity tests and benchmarks); one the
// CPU lacks falls back to what it has.
enum class Isa { kBase = 0, kAvx2 = 1, kAvx512 = 2 };

inline Isa DetectIsa() {
  __builtin_cpu_init();
  Isa best = Isa::kBase;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) best = Isa::kAvx2;
  if (best == Isa::kAvx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq"))
    best = Isa::kAvx512;
  const char* forced = std::getenv("CPREC_KERNEL_ISA");
  if (forced == nullptr) return best;
  const Isa want = std::strcmp(forced, "avx512") == 0 ? Isa::kAvx512
                   : std::strcmp(forced, "avx2") == 0 ? Isa::kAvx2
                                                      : Isa::kBase;
  return static_cast<int>(want) < static_cast<int>(best) ? want : best;
}

inline Isa ActiveIsa() {
  static const Isa isa = DetectIsa();
  return isa;
}

inline const char* IsaName(Isa isa) {
  return isa == Isa::kAvx512 ? "avx512" : isa == Isa::kAvx2 ? "avx2" : "base";
}

#define CPREC_TARGET_AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")))
#define CPREC_TARGET_AVX2 __attribute__((target("avx2,fma")))

// Defines `name` (params) → ret as a dispatcher to three copies of `body_fn` — an always_inline
// function, so each copy is compiled for its instruction set — picked by ActiveIsa().
#define CPREC_ISA_DISPATCH(name, body_fn, params, args) CPREC_ISA_DISPATCH_VALUE(void, name, body_fn, params, args)

#define CPREC_ISA_DISPATCH_VALUE(ret, name, body_fn, params, args)                  \
  CPREC_TARGET_AVX512 ret name##Avx512 params { return body_fn args; }     \
  CPREC_TARGET_AVX2 ret name##Avx2 params { return body_fn args; }         \
  ret name##Base params { return body_fn args; }                           \
  ret name params {                                                        \
    static ret(*const impl) params = ActiveIsa() == Isa::kAvx512 ? name##Avx512 \
                                     : ActiveIsa() == Isa::kAvx2 ? name##Avx2   \
                                                                  : name##Base; \
    return impl args;                                                      \
  }

// exp on floats that the compiler can vectorize (std::exp in a loop stays scalar).
// Cephes' expf polynomial after reducing x = n ln2 + r: relative error about 2e-7 (less
// precise for denormal results, below -87.3), 0 under them and infinite above FLT_MAX like
// std::exp; NaN stays NaN.
#pragma omp declare simd
inline __attribute__((always_inline)) float VecExp(float x) {
  // Branch- and select-free (floor by truncation and correction; range ends by bit masks) so
  // loops calling it vectorize: GCC leaves a loop scalar for a std::floor call or a float select.
  const float clamped = std::min(std::max(x, -104.0f), 88.72283f);
  const float fx = clamped * 1.44269504088896341f + 0.5f;
  int32_t ni = static_cast<int32_t>(fx);
  ni -= static_cast<int32_t>(fx < static_cast<float>(ni));
  const float n = static_cast<float>(ni);
  const float r = clamped - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r * r + r + 1.0f;
  // 2^n as two normal powers of two, so n from -150 (denormal results) to 128 (up to FLT_MAX)
  // needs no special case; below -104 the result is 0, above 88.72 infinity.
  const int32_t under = -static_cast<int32_t>(x < -104.0f);
  const int32_t over = -static_cast<int32_t>(x > 88.72283f);
  const int32_t half = ni >> 1;
  const int32_t bits1 = ((half + 127) << 23) & ~under;
  const int32_t bits2 = (((ni - half + 127) << 23) & ~over) | (0x7f800000 & over);
  float scale1, scale2;
  std::memcpy(&scale1, &bits1, sizeof scale1);
  std::memcpy(&scale2, &bits2, sizeof scale2);
  return y * scale1 * scale2;
}

}  // namespace cprec
