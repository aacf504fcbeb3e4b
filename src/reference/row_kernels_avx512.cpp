// Row loops with AVX-512F intrinsics (16 lanes), compiled with -mavx512f (see CMakeLists.txt) and
// used only where the CPU and OS run them. The steps of row_kernels_avx2.cpp (encode_fp8's bytes,
// core/fp8.h: the same IEEE fp32 steps, integer steps equivalent to its branches, the normal branch
// alone for groups of 32 products that all take it) with the lane selections through mask
// registers; tests/test_row_kernels.cpp runs every set over every 16-bit input pattern and over
// 32-element groups of one fp32 value around each seam of that choice.
// (About 2.3x the AVX2 loop's throughput on an AVX-512 Xeon; the reference backend is compute-bound.)
// (GCC 12's AVX-512 headers start some intrinsics from _mm512_undefined_*, a self-initialised
// variable that -Wuninitialized / -Wmaybe-uninitialized report where it is inlined; the value is
// never read.)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include "reference/row_kernels.h"

namespace mlakv {
namespace {

template <InType T>
__m512 load16(const void* x, int64_t i);
template <>
__m512 load16<InType::BF16>(const void* x, int64_t i) {
  const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(x) + i));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
template <>
__m512 load16<InType::FP16>(const void* x, int64_t i) {
  // exact for every fp16 pattern, subnormals included (no DAZ for fp16 inputs)
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(x) + i)));
}
template <>
__m512 load16<InType::FP32>(const void* x, int64_t i) {
  return _mm512_loadu_ps(static_cast<const float*>(x) + i);
}

// encode_fp8<F> on 16 lanes, one code per 32-bit lane: Enc8 of row_kernels_avx2.cpp (which says
// why each step is exact) with masks.
template <Fp8Format F>
struct Enc16 {
  using Tr = Fp8Traits<F>;
  static constexpr int kDrop = 23 - Tr::kMant;
  static constexpr uint32_t kMinNormal = uint32_t(127 + 1 - Tr::kBias) << 23;
  static constexpr uint32_t kRebias = uint32_t(127 - Tr::kBias) << Tr::kMant;
  static constexpr uint32_t kNormalMax = Tr::kMaxBits - (1u << (kDrop - 1));

  static __m512i magnitude(__m512 p) { return _mm512_and_si512(_mm512_castps_si512(p), _mm512_set1_epi32(0x7FFFFFFF)); }
  static __m512i sign(__m512 p) {
    return _mm512_and_si512(_mm512_srli_epi32(_mm512_castps_si512(p), 24), _mm512_set1_epi32(0x80));
  }
  static __m512i normal(__m512i a) {
    const __m512i rounded = _mm512_add_epi32(
        _mm512_add_epi32(a, _mm512_set1_epi32(int32_t(((1u << (kDrop - 1)) - 1u) - (kRebias << kDrop)))),
        _mm512_and_si512(_mm512_srli_epi32(a, kDrop), _mm512_set1_epi32(1)));
    return _mm512_srli_epi32(rounded, kDrop);
  }
  // the lanes outside [kMinNormal, kNormalMax]
  static __mmask16 outside(__m512i a) {
    const __m512i t = _mm512_add_epi32(a, _mm512_set1_epi32(int32_t(0x80000000u - kMinNormal)));
    return _mm512_cmpgt_epi32_mask(t, _mm512_set1_epi32(int32_t(0x80000000u + (kNormalMax - kMinNormal))));
  }
  static __m512i normal_only(__m512 p, __m512i a) { return _mm512_or_si512(sign(p), normal(a)); }
  static __m512i any(__m512 p, __m512i a) {
    // subnormal outputs: the fp32 add of a magic number rounds to the fp8 grid (ties to even)
    const __m512i magic = _mm512_set1_epi32(int32_t((127 + 1 - Tr::kBias - Tr::kMant + 23) << 23));
    const __m512i sub = _mm512_sub_epi32(_mm512_castps_si512(_mm512_add_ps(_mm512_castsi512_ps(a), _mm512_castsi512_ps(magic))), magic);
    const __mmask16 is_sub = _mm512_cmpgt_epi32_mask(_mm512_set1_epi32(int32_t(kMinNormal)), a);
    const __m512i mag = _mm512_min_epi32(_mm512_mask_mov_epi32(normal(a), is_sub, sub), _mm512_set1_epi32(int32_t(Tr::kMaxCode)));
    __m512i code = _mm512_or_si512(sign(p), mag);
    if (Tr::kFnuz) code = _mm512_maskz_mov_epi32(_mm512_test_epi32_mask(mag, mag), code);  // no -0 in fnuz
    const __mmask16 nan = _mm512_cmpgt_epi32_mask(a, _mm512_set1_epi32(0x7F800000));
    return _mm512_mask_mov_epi32(code, nan, _mm512_set1_epi32(int32_t(Tr::kNaN)));
  }
};

template <InType T, Fp8Format F>
void encode_row_avx512(const void* x, uint8_t* __restrict out, int64_t n, float m) {
  using E = Enc16<F>;
  const __m512 vm = _mm512_set1_ps(m);
  int64_t i = 0;
  // codes are 0..255: the truncating narrow keeps them
  for (; i + 32 <= n; i += 32) {
    const __m512 p0 = _mm512_mul_ps(load16<T>(x, i), vm), p1 = _mm512_mul_ps(load16<T>(x, i + 16), vm);
    const __m512i a0 = E::magnitude(p0), a1 = E::magnitude(p1);
    __m512i c0, c1;
    if ((E::outside(a0) | E::outside(a1)) == 0) {
      c0 = E::normal_only(p0, a0);
      c1 = E::normal_only(p1, a1);
    } else {
      c0 = E::any(p0, a0);
      c1 = E::any(p1, a1);
    }
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), _mm512_cvtepi32_epi8(c0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i + 16), _mm512_cvtepi32_epi8(c1));
  }
  for (; i + 16 <= n; i += 16) {
    const __m512 p = _mm512_mul_ps(load16<T>(x, i), vm);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), _mm512_cvtepi32_epi8(E::any(p, E::magnitude(p))));
  }
  for (; i < n; ++i)
    out[i] = encode_fp8<F>(scale_mul(HostIn<T>::widen(static_cast<const typename HostIn<T>::raw*>(x)[i]), m));
}

}  // namespace

const RowKernels& row_kernels_avx512() {
  static const RowKernels k = MLAKV_ROW_KERNELS_TABLE_OF(encode_row_avx512);
  return k;
}

}  // namespace mlakv
