// Row loops with AVX-512F intrinsics (16 lanes), compiled with -mavx512f (see CMakeLists.txt) and
// used only where the CPU and OS run them. The same integer and IEEE fp32 steps as encode_fp8 of
// core/fp8.h and as row_kernels_avx2.cpp, with the lane selections through mask registers, so the
// bytes are identical; tests/test_row_kernels.cpp runs every set over every 16-bit input pattern.
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

// encode_fp8<F> on 16 lanes; one code per 32-bit lane.
template <Fp8Format F>
__m512i encode16(__m512 p) {
  using Tr = Fp8Traits<F>;
  constexpr int kDrop = 23 - Tr::kMant;
  const __m512i u = _mm512_castps_si512(p);
  const __m512i a = _mm512_and_si512(u, _mm512_set1_epi32(0x7FFFFFFF));
  const __m512i sign = _mm512_and_si512(_mm512_srli_epi32(u, 24), _mm512_set1_epi32(0x80));
  const __m512i ac = _mm512_min_epi32(a, _mm512_set1_epi32(0x7F800000));  // NaN restored last
  const __m512i half_even = _mm512_and_si512(_mm512_srli_epi32(ac, kDrop), _mm512_set1_epi32(1));
  const __m512i rounded = _mm512_add_epi32(_mm512_add_epi32(ac, _mm512_set1_epi32((1 << (kDrop - 1)) - 1)), half_even);
  const __m512i normal = _mm512_sub_epi32(_mm512_srli_epi32(rounded, kDrop), _mm512_set1_epi32((127 - Tr::kBias) << Tr::kMant));
  // subnormal outputs: the fp32 add of a magic number rounds to the fp8 grid (ties to even)
  const __m512i magic = _mm512_set1_epi32((127 + 1 - Tr::kBias - Tr::kMant + 23) << 23);
  const __m512i sub = _mm512_sub_epi32(_mm512_castps_si512(_mm512_add_ps(_mm512_castsi512_ps(ac), _mm512_castsi512_ps(magic))), magic);
  const __mmask16 is_sub = _mm512_cmpgt_epi32_mask(_mm512_set1_epi32((127 + 1 - Tr::kBias) << 23), ac);
  const __mmask16 sat = _mm512_cmpgt_epi32_mask(rounded, _mm512_set1_epi32(int32_t(Tr::kMaxBits)));
  __m512i mag = _mm512_mask_mov_epi32(_mm512_mask_mov_epi32(normal, is_sub, sub), sat, _mm512_set1_epi32(int32_t(Tr::kMaxCode)));
  __m512i code = _mm512_or_si512(sign, mag);
  if (Tr::kFnuz) code = _mm512_maskz_mov_epi32(_mm512_test_epi32_mask(mag, mag), code);  // no -0 in fnuz
  const __mmask16 nan = _mm512_cmpgt_epi32_mask(a, _mm512_set1_epi32(0x7F800000));
  return _mm512_mask_mov_epi32(code, nan, _mm512_set1_epi32(int32_t(Tr::kNaN)));
}

template <InType T, Fp8Format F>
void encode_row_avx512(const void* x, uint8_t* __restrict out, int64_t n, float m) {
  const __m512 vm = _mm512_set1_ps(m);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)  // codes are 0..255: the truncating narrow keeps them
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), _mm512_cvtepi32_epi8(encode16<F>(_mm512_mul_ps(load16<T>(x, i), vm))));
  for (; i < n; ++i)
    out[i] = encode_fp8<F>(scale_mul(HostIn<T>::widen(static_cast<const typename HostIn<T>::raw*>(x)[i]), m));
}

}  // namespace

const RowKernels& row_kernels_avx512() {
  static const RowKernels k = MLAKV_ROW_KERNELS_TABLE_OF(encode_row_avx512);
  return k;
}

}  // namespace mlakv
