// Row loops with AVX2 (+F16C) intrinsics, compiled with -mavx2 -mf16c (see CMakeLists.txt) and
// used only where the CPU has both: the encoder of row_encode_simd.h on 8 lanes (encode_fp8's
// bytes, core/fp8.h), groups of 32 products, packed to bytes.
#include <immintrin.h>

#include "reference/row_encode_simd.h"
#include "reference/row_kernels.h"

namespace mlakv {
namespace {

// row_encode_simd.h's operations on 8 lanes, masks as all-ones lanes
struct Avx2 {
  using I = __m256i;
  using P = __m256;
  using M = __m256i;
  static I set1(int32_t v) { return _mm256_set1_epi32(v); }
  static I bits(P p) { return _mm256_castps_si256(p); }
  static P floats(I x) { return _mm256_castsi256_ps(x); }
  static I and_(I x, I y) { return _mm256_and_si256(x, y); }
  static I or_(I x, I y) { return _mm256_or_si256(x, y); }
  static I add(I x, I y) { return _mm256_add_epi32(x, y); }
  static I sub(I x, I y) { return _mm256_sub_epi32(x, y); }
  static I min(I x, I y) { return _mm256_min_epi32(x, y); }
  template <int k>
  static I srli(I x) { return _mm256_srli_epi32(x, k); }
  static P addf(P x, P y) { return _mm256_add_ps(x, y); }
  static M gt(I x, I y) { return _mm256_cmpgt_epi32(x, y); }
  static M eq0(I x) { return _mm256_cmpeq_epi32(x, _mm256_setzero_si256()); }
  static I select(M m, I set, I clear) { return _mm256_blendv_epi8(clear, set, m); }
  static M mor(M x, M y) { return _mm256_or_si256(x, y); }
  static bool none(M m) { return _mm256_testz_si256(m, m); }
};

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

template <InType T, Fp8Format F>
void encode_row_avx2(const void* x, uint8_t* __restrict out, int64_t n, float m) {
  using E = EncSimd<Avx2, F>;
  const __m256 vm = _mm256_set1_ps(m);
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256 p[4] = {_mm256_mul_ps(load8<T>(x, i), vm), _mm256_mul_ps(load8<T>(x, i + 8), vm),
                         _mm256_mul_ps(load8<T>(x, i + 16), vm), _mm256_mul_ps(load8<T>(x, i + 24), vm)};
    __m256i c[4];
    E::group(p, c);
    // codes are 0..255: two saturating packs keep them, then undo the per-128-bit interleave
    const __m256i w = _mm256_packus_epi16(_mm256_packus_epi32(c[0], c[1]), _mm256_packus_epi32(c[2], c[3]));
    const __m256i b = _mm256_permutevar8x32_epi32(w, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), b);
  }
  for (; i + 8 <= n; i += 8) {
    const __m256 p = _mm256_mul_ps(load8<T>(x, i), vm);
    const __m256i c = E::any(p, E::magnitude(p));
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
