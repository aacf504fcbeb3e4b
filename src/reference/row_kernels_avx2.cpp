// Row loops with AVX2 (+F16C) intrinsics, compiled with -mavx2 -mf16c (see CMakeLists.txt) and
// used only where the CPU has both. Lane by lane they give encode_fp8's bytes (core/fp8.h): the
// same IEEE fp32 multiply and add, integer steps equivalent to its branches (Enc8 says how), and
// groups of 32 products that are all normal and unsaturated - nearly all, for calibrated scales -
// take its normal branch alone (the reference backend is compute-bound: 1.4x on the demo's pack).
// tests/test_row_kernels.cpp runs every set over every 16-bit input pattern and over 32-element
// groups of one fp32 value around each seam of that choice to prove it.
#include <immintrin.h>

#include "reference/row_kernels.h"

namespace mlakv {
namespace {

template <InType T>
__m256 load8(const void* x, int64_t i);
template <>
__m256 load8<InType::BF16>(const void* x, int64_t i) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(x) + i));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
template <>
__m256 load8<InType::FP16>(const void* x, int64_t i) {
  // F16C's conversion is exact (subnormals included) and does not depend on MXCSR's DAZ for fp16.
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(x) + i)));
}
template <>
__m256 load8<InType::FP32>(const void* x, int64_t i) {
  return _mm256_loadu_ps(static_cast<const float*>(x) + i);
}

// encode_fp8<F> on 8 lanes, one code per 32-bit lane, from the products p and their magnitudes
// a = |p|'s bits. The same result as encode_fp8 lane by lane, in fewer steps: the normal code
// takes the rebias in its rounding add (lanes where that underflows are subnormal, and take the
// subnormal code); saturation is a min with the largest finite code (the normal code grows with
// the rounded magnitude, and is the largest finite code exactly up to the largest finite value);
// NaN lanes, whose intermediate values mean nothing, take the NaN code last.
template <Fp8Format F>
struct Enc8 {
  using Tr = Fp8Traits<F>;
  static constexpr int kDrop = 23 - Tr::kMant;
  static constexpr uint32_t kMinNormal = uint32_t(127 + 1 - Tr::kBias) << 23;
  static constexpr uint32_t kRebias = uint32_t(127 - Tr::kBias) << Tr::kMant;
  // the largest magnitude that cannot round past the largest finite value
  static constexpr uint32_t kNormalMax = Tr::kMaxBits - (1u << (kDrop - 1));

  static __m256i magnitude(__m256 p) { return _mm256_and_si256(_mm256_castps_si256(p), _mm256_set1_epi32(0x7FFFFFFF)); }
  static __m256i sign(__m256 p) {
    return _mm256_and_si256(_mm256_srli_epi32(_mm256_castps_si256(p), 24), _mm256_set1_epi32(0x80));
  }
  // encode_fp8's normal branch: (a rounded to kDrop fewer bits, nearest even) - rebias
  static __m256i normal(__m256i a) {
    const __m256i rounded = _mm256_add_epi32(
        _mm256_add_epi32(a, _mm256_set1_epi32(int32_t(((1u << (kDrop - 1)) - 1u) - (kRebias << kDrop)))),
        _mm256_and_si256(_mm256_srli_epi32(a, kDrop), _mm256_set1_epi32(1)));
    return _mm256_srli_epi32(rounded, kDrop);
  }
  // All-ones in the lanes the normal branch alone does not encode: a < kMinNormal (zero,
  // subnormal) or a > kNormalMax (saturating, inf, NaN). One signed compare: a - kMinNormal + 2^31
  // lies in [INT_MIN, INT_MIN + kNormalMax - kMinNormal] exactly for the others (a <= 0x7FFFFFFF,
  // so nothing wraps past the other end).
  static __m256i outside(__m256i a) {
    const __m256i t = _mm256_add_epi32(a, _mm256_set1_epi32(int32_t(0x80000000u - kMinNormal)));
    return _mm256_cmpgt_epi32(t, _mm256_set1_epi32(int32_t(0x80000000u + (kNormalMax - kMinNormal))));
  }
  // Lanes that are all normal and unsaturated (outside() clear)
  static __m256i normal_only(__m256 p, __m256i a) { return _mm256_or_si256(sign(p), normal(a)); }
  // Any lanes
  static __m256i any(__m256 p, __m256i a) {
    const __m256i magic = _mm256_set1_epi32(int32_t((127 + 1 - Tr::kBias - Tr::kMant + 23) << 23));
    const __m256i sub = _mm256_sub_epi32(
        _mm256_castps_si256(_mm256_add_ps(_mm256_castsi256_ps(a), _mm256_castsi256_ps(magic))), magic);
    const __m256i is_sub = _mm256_cmpgt_epi32(_mm256_set1_epi32(int32_t(kMinNormal)), a);
    const __m256i mag = _mm256_min_epi32(_mm256_blendv_epi8(normal(a), sub, is_sub), _mm256_set1_epi32(int32_t(Tr::kMaxCode)));
    __m256i code = _mm256_or_si256(sign(p), mag);
    if (Tr::kFnuz) code = _mm256_andnot_si256(_mm256_cmpeq_epi32(mag, _mm256_setzero_si256()), code);  // no -0
    const __m256i nan = _mm256_cmpgt_epi32(a, _mm256_set1_epi32(0x7F800000));
    return _mm256_blendv_epi8(code, _mm256_set1_epi32(int32_t(Tr::kNaN)), nan);
  }
};

template <InType T, Fp8Format F>
void encode_row_avx2(const void* x, uint8_t* __restrict out, int64_t n, float m) {
  const __m256 vm = _mm256_set1_ps(m);
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256 p0 = _mm256_mul_ps(load8<T>(x, i), vm), p1 = _mm256_mul_ps(load8<T>(x, i + 8), vm);
    const __m256 p2 = _mm256_mul_ps(load8<T>(x, i + 16), vm), p3 = _mm256_mul_ps(load8<T>(x, i + 24), vm);
    // the normal branch alone where all 32 lanes take it (the usual case: about 60% of the
    // operations), the whole encoder where one is zero, subnormal, saturating or NaN
    using E = Enc8<F>;
    const __m256i a0 = E::magnitude(p0), a1 = E::magnitude(p1), a2 = E::magnitude(p2), a3 = E::magnitude(p3);
    const __m256i odd = _mm256_or_si256(_mm256_or_si256(E::outside(a0), E::outside(a1)),
                                        _mm256_or_si256(E::outside(a2), E::outside(a3)));
    __m256i c0, c1, c2, c3;
    if (_mm256_testz_si256(odd, odd)) {
      c0 = E::normal_only(p0, a0);
      c1 = E::normal_only(p1, a1);
      c2 = E::normal_only(p2, a2);
      c3 = E::normal_only(p3, a3);
    } else {
      c0 = E::any(p0, a0);
      c1 = E::any(p1, a1);
      c2 = E::any(p2, a2);
      c3 = E::any(p3, a3);
    }
    // codes are 0..255: two saturating packs keep them, then undo the per-128-bit interleave
    const __m256i w = _mm256_packus_epi16(_mm256_packus_epi32(c0, c1), _mm256_packus_epi32(c2, c3));
    const __m256i b = _mm256_permutevar8x32_epi32(w, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), b);
  }
  for (; i + 8 <= n; i += 8) {
    const __m256 p = _mm256_mul_ps(load8<T>(x, i), vm);
    const __m256i c = Enc8<F>::any(p, Enc8<F>::magnitude(p));
    const __m128i w = _mm_packus_epi32(_mm256_castsi256_si128(c), _mm256_extracti128_si256(c, 1));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(out + i), _mm_packus_epi16(w, w));
  }
  for (; i < n; ++i)
    out[i] = encode_fp8<F>(scale_mul(HostIn<T>::widen(static_cast<const typename HostIn<T>::raw*>(x)[i]), m));
}

}  // namespace

const RowKernels& row_kernels_avx2() {
  static const RowKernels k = MLAKV_ROW_KERNELS_TABLE_OF(encode_row_avx2);
  return k;
}

}  // namespace mlakv
