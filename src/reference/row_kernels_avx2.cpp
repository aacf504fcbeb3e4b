// Row loops with AVX2 (+F16C) intrinsics, compiled with -mavx2 -mf16c (see CMakeLists.txt) and
// used only where the CPU has both. The arithmetic is encode_fp8 of core/fp8.h lane by lane
// (same integer steps, the same IEEE fp32 multiply and add), so the bytes are identical; groups of
// 32 products that are all normal and unsaturated take encode_fp8's normal branch alone (about
// a third fewer operations: the reference backend is compute-bound). tests/test_row_kernels.cpp
// runs every set over every 16-bit input pattern and over 32-element groups of one fp32 value
// at each seam of that choice to prove it.
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

// encode_fp8<F> on 8 lanes; returns one code per 32-bit lane.
template <Fp8Format F>
__m256i encode8(__m256 p) {
  using Tr = Fp8Traits<F>;
  constexpr int kDrop = 23 - Tr::kMant;
  const __m256i u = _mm256_castps_si256(p);
  const __m256i a = _mm256_and_si256(u, _mm256_set1_epi32(0x7FFFFFFF));
  const __m256i sign = _mm256_and_si256(_mm256_srli_epi32(u, 24), _mm256_set1_epi32(0x80));
  // clamping a to +inf keeps the signed arithmetic below in range; NaN is restored last
  const __m256i ac = _mm256_min_epi32(a, _mm256_set1_epi32(0x7F800000));
  const __m256i rounded = _mm256_add_epi32(
      _mm256_add_epi32(ac, _mm256_set1_epi32((1 << (kDrop - 1)) - 1)),
      _mm256_and_si256(_mm256_srli_epi32(ac, kDrop), _mm256_set1_epi32(1)));
  const __m256i normal = _mm256_sub_epi32(_mm256_srli_epi32(rounded, kDrop),
                                          _mm256_set1_epi32((127 - Tr::kBias) << Tr::kMant));
  const __m256i magic = _mm256_set1_epi32((127 + 1 - Tr::kBias - Tr::kMant + 23) << 23);
  const __m256i sub = _mm256_sub_epi32(
      _mm256_castps_si256(_mm256_add_ps(_mm256_castsi256_ps(ac), _mm256_castsi256_ps(magic))), magic);
  const __m256i is_sub = _mm256_cmpgt_epi32(_mm256_set1_epi32((127 + 1 - Tr::kBias) << 23), ac);
  __m256i mag = _mm256_blendv_epi8(normal, sub, is_sub);
  const __m256i sat = _mm256_cmpgt_epi32(rounded, _mm256_set1_epi32(int32_t(Tr::kMaxBits)));
  mag = _mm256_blendv_epi8(mag, _mm256_set1_epi32(int32_t(Tr::kMaxCode)), sat);
  __m256i code = _mm256_or_si256(sign, mag);
  if (Tr::kFnuz) code = _mm256_andnot_si256(_mm256_cmpeq_epi32(mag, _mm256_setzero_si256()), code);
  const __m256i nan = _mm256_cmpgt_epi32(a, _mm256_set1_epi32(0x7F800000));
  return _mm256_blendv_epi8(code, _mm256_set1_epi32(int32_t(Tr::kNaN)), nan);
}

// encode_fp8<F> on 8 lanes whose magnitudes are all normal in the format and below its
// saturation (and so not NaN): the normal branch alone, its rebias folded into the rounding add
// (exact there: the rounded magnitude is at least the smallest normal's). Lanes outside that range
// set their bits in *special; the caller then encodes the lanes again with encode8.
template <Fp8Format F>
__m256i encode8_normal(__m256 p, __m256i* special) {
  using Tr = Fp8Traits<F>;
  constexpr int kDrop = 23 - Tr::kMant;
  constexpr uint32_t kLo = uint32_t(127 + 1 - Tr::kBias) << 23;   // the smallest normal
  constexpr uint32_t kHi = Tr::kMaxBits - (1u << (kDrop - 1));   // rounds to at most the largest
  constexpr uint32_t kRebias = uint32_t(127 - Tr::kBias) << Tr::kMant;
  const __m256i u = _mm256_castps_si256(p);
  const __m256i a = _mm256_and_si256(u, _mm256_set1_epi32(0x7FFFFFFF));
  // kLo <= a <= kHi as one signed compare: a - kLo + 2^31 lands in [INT_MIN, INT_MIN + kHi - kLo]
  // exactly then (a <= 0x7FFFFFFF, so nothing wraps past the other end)
  const __m256i t = _mm256_add_epi32(a, _mm256_set1_epi32(int32_t(0x80000000u - kLo)));
  *special = _mm256_or_si256(*special, _mm256_cmpgt_epi32(t, _mm256_set1_epi32(int32_t(0x80000000u + (kHi - kLo)))));
  const __m256i sign = _mm256_and_si256(_mm256_srli_epi32(u, 24), _mm256_set1_epi32(0x80));
  const __m256i rounded = _mm256_add_epi32(
      _mm256_add_epi32(a, _mm256_set1_epi32(int32_t(((1u << (kDrop - 1)) - 1u) - (kRebias << kDrop)))),
      _mm256_and_si256(_mm256_srli_epi32(a, kDrop), _mm256_set1_epi32(1)));
  return _mm256_or_si256(sign, _mm256_srli_epi32(rounded, kDrop));
}

template <InType T, Fp8Format F>
void encode_row_avx2(const void* x, uint8_t* __restrict out, int64_t n, float m) {
  const __m256 vm = _mm256_set1_ps(m);
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256 p0 = _mm256_mul_ps(load8<T>(x, i), vm), p1 = _mm256_mul_ps(load8<T>(x, i + 8), vm);
    const __m256 p2 = _mm256_mul_ps(load8<T>(x, i + 16), vm), p3 = _mm256_mul_ps(load8<T>(x, i + 24), vm);
    // the normal branch for all 32 (about 2/3 of encode8's operations), the whole encoder again
    // for the rare groups with a zero, subnormal, saturating or NaN product
    __m256i sp = _mm256_setzero_si256();
    __m256i c0 = encode8_normal<F>(p0, &sp), c1 = encode8_normal<F>(p1, &sp);
    __m256i c2 = encode8_normal<F>(p2, &sp), c3 = encode8_normal<F>(p3, &sp);
    if (!_mm256_testz_si256(sp, sp)) {
      c0 = encode8<F>(p0);
      c1 = encode8<F>(p1);
      c2 = encode8<F>(p2);
      c3 = encode8<F>(p3);
    }
    // codes are 0..255: two saturating packs keep them, then undo the per-128-bit interleave
    const __m256i w = _mm256_packus_epi16(_mm256_packus_epi32(c0, c1), _mm256_packus_epi32(c2, c3));
    const __m256i b = _mm256_permutevar8x32_epi32(w, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), b);
  }
  for (; i + 8 <= n; i += 8) {
    const __m256i c = encode8<F>(_mm256_mul_ps(load8<T>(x, i), vm));
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
