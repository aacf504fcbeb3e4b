// The one FP8 encoder of mlakv: host and device code, every backend uses it (the CUDA backend
// swaps in the hardware conversion only where it gives the same bytes, and tests prove that).
//
// Q(x * m): widen x to fp32 exactly, p = fl32(x * m) (one RNE multiply, no contraction), then
// round p to the fp8 format with round-to-nearest-even and gradual underflow, saturating to
// +-max finite (infinities included), NaN -> the format's canonical NaN.
//
// Written branch-free on 32-bit integers so that compilers vectorise the host loops.
#pragma once
#include <stdint.h>

#if defined(__CUDACC__) || defined(__HIPCC__)
#define MLAKV_HD __host__ __device__ __forceinline__
#else
#define MLAKV_HD inline __attribute__((always_inline))
#endif

namespace mlakv {

enum class Fp8Format : int { E4M3FN = 0, E5M2 = 1, E4M3FNUZ = 2, E5M2FNUZ = 3 };

// Constants of one format, all derived from (mantissa bits, exponent bias, fn/fnuz).
template <Fp8Format F>
struct Fp8Traits;

template <>
struct Fp8Traits<Fp8Format::E4M3FN> {
  static constexpr int kMant = 3, kBias = 7;
  static constexpr uint32_t kMaxBits = 0x43E00000u;  // 448
  static constexpr uint32_t kMaxCode = 0x7Eu, kNaN = 0x7Fu;
  static constexpr bool kFnuz = false;
};
template <>
struct Fp8Traits<Fp8Format::E5M2> {
  static constexpr int kMant = 2, kBias = 15;
  static constexpr uint32_t kMaxBits = 0x47600000u;  // 57344
  static constexpr uint32_t kMaxCode = 0x7Bu, kNaN = 0x7Fu;
  static constexpr bool kFnuz = false;
};
template <>
struct Fp8Traits<Fp8Format::E4M3FNUZ> {
  static constexpr int kMant = 3, kBias = 8;
  static constexpr uint32_t kMaxBits = 0x43700000u;  // 240
  static constexpr uint32_t kMaxCode = 0x7Fu, kNaN = 0x80u;
  static constexpr bool kFnuz = true;
};
template <>
struct Fp8Traits<Fp8Format::E5M2FNUZ> {
  static constexpr int kMant = 2, kBias = 16;
  static constexpr uint32_t kMaxBits = 0x47600000u;  // 57344
  static constexpr uint32_t kMaxCode = 0x7Fu, kNaN = 0x80u;
  static constexpr bool kFnuz = true;
};

MLAKV_HD uint32_t f32_bits(float f) {
  union {
    float f;
    uint32_t u;
  } c;
  c.f = f;
  return c.u;
}
MLAKV_HD float bits_f32(uint32_t u) {
  union {
    float f;
    uint32_t u;
  } c;
  c.u = u;
  return c.f;
}

// Exact widening of the input element types.
MLAKV_HD float bf16_to_f32(uint16_t h) { return bits_f32(uint32_t(h) << 16); }

MLAKV_HD float fp16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t mag = h & 0x7FFFu;
  // normal and inf/NaN: rebias the exponent (inf/NaN: exponent field all ones in both).
  const uint32_t normal = (mag << 13) + ((127u - 15u) << 23);
  const uint32_t infnan = (mag << 13) | 0x7F800000u;
  // subnormal (and zero): mag * 2^-24 is exact in fp32.
  const uint32_t sub = f32_bits(float(int32_t(mag)) * 5.9604644775390625e-08f);
  const uint32_t r = mag < 0x0400u ? sub : (mag >= 0x7C00u ? infnan : normal);
  return bits_f32(sign | r);
}

// fp32 -> fp8 code, RNE, saturating, per the format's traits.
template <Fp8Format F>
MLAKV_HD uint8_t encode_fp8(float p) {
  using T = Fp8Traits<F>;
  constexpr int kDrop = 23 - T::kMant;
  // smallest normal 2^(1-bias); subnormal quantum 2^(1-bias-mant)
  constexpr uint32_t kMinNormalBits = uint32_t(127 + 1 - T::kBias) << 23;
  // adding 2^(quantum_exp + 23) rounds |p| < min normal to a multiple of the quantum (RNE).
  constexpr uint32_t kMagicBits = uint32_t(127 + 1 - T::kBias - T::kMant + 23) << 23;
  constexpr uint32_t kRebias = uint32_t(127 - T::kBias) << T::kMant;

  const uint32_t u = f32_bits(p);
  const uint32_t sign = (u >> 24) & 0x80u;
  const uint32_t a = u & 0x7FFFFFFFu;
  // normal range: round away the low kDrop bits, nearest even
  const uint32_t rounded = a + ((1u << (kDrop - 1)) - 1u) + ((a >> kDrop) & 1u);
  const uint32_t normal_code = (rounded >> kDrop) - kRebias;
  // subnormal range (gives 2^mant, the smallest normal's code, when it rounds up into it)
  const uint32_t sub_code = f32_bits(bits_f32(a) + bits_f32(kMagicBits)) - kMagicBits;
  uint32_t mag = a < kMinNormalBits ? sub_code : normal_code;
  mag = rounded > T::kMaxBits ? T::kMaxCode : mag;  // saturate (inf included)
  uint32_t code = sign | mag;
  if (T::kFnuz) code = mag == 0u ? 0u : code;       // no negative zero
  code = a > 0x7F800000u ? T::kNaN : code;           // NaN
  return uint8_t(code);
}

// Runtime-format entry point (tests, slow paths).
MLAKV_HD uint8_t encode_fp8(float p, Fp8Format f) {
  switch (f) {
    case Fp8Format::E4M3FN: return encode_fp8<Fp8Format::E4M3FN>(p);
    case Fp8Format::E5M2: return encode_fp8<Fp8Format::E5M2>(p);
    case Fp8Format::E4M3FNUZ: return encode_fp8<Fp8Format::E4M3FNUZ>(p);
    default: return encode_fp8<Fp8Format::E5M2FNUZ>(p);
  }
}

// The fp32 product of step 2. Kept in its own function so the multiply is never fused with
// anything (builds also pass -ffp-contract=off / --fmad=false).
MLAKV_HD float scale_mul(float x, float m) {
#if defined(__CUDA_ARCH__) || defined(__HIP_DEVICE_COMPILE__)
  return __fmul_rn(x, m);  // never contracted into an FMA
#else
  return x * m;
#endif
}

// Amax (mlakv.h): an input's contribution is the bit pattern of |x| as an int32, +0 for NaN; the
// call's values and the stored amax combine by int32 maximum, exact and independent of the order
// in which threads combine (atomicMax on int32 on GPUs).
MLAKV_HD int32_t amax_bits(float x) {
  const uint32_t a = f32_bits(x) & 0x7FFFFFFFu;
  return a > 0x7F800000u ? 0 : int32_t(a);
}

}  // namespace mlakv
