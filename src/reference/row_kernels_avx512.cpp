// Row loops with AVX-512F intrinsics (16 lanes), compiled with -mavx512f (see CMakeLists.txt) and
// used only where the CPU and OS run them: the encoder of row_encode_simd.h on 16 lanes with mask
// registers (encode_fp8's bytes, core/fp8.h), groups of 32 products, narrowed to bytes.
// (About 2.3x the AVX2 loop's throughput on an AVX-512 Xeon; the reference backend is compute-bound.)
// (GCC 12's AVX-512 headers start some intrinsics from _mm512_undefined_*, a self-initialised
// variable that -Wuninitialized / -Wmaybe-uninitialized report where it is inlined; the value is
// never read.)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include "reference/row_encode_simd.h"
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

// row_encode_simd.h's operations on 16 lanes, masks in mask registers
struct Avx512 {
  using I = __m512i;
  using P = __m512;
  using M = __mmask16;
  static I set1(int32_t v) { return _mm512_set1_epi32(v); }
  static I bits(P p) { return _mm512_castps_si512(p); }
  static P floats(I x) { return _mm512_castsi512_ps(x); }
  static I and_(I x, I y) { return _mm512_and_si512(x, y); }
  static I or_(I x, I y) { return _mm512_or_si512(x, y); }
  static I add(I x, I y) { return _mm512_add_epi32(x, y); }
  static I sub(I x, I y) { return _mm512_sub_epi32(x, y); }
  static I min(I x, I y) { return _mm512_min_epi32(x, y); }
  template <int k>
  static I srli(I x) { return _mm512_srli_epi32(x, k); }
  static P addf(P x, P y) { return _mm512_add_ps(x, y); }
  static M gt(I x, I y) { return _mm512_cmpgt_epi32_mask(x, y); }
  static M eq0(I x) { return _mm512_testn_epi32_mask(x, x); }
  static I select(M m, I set, I clear) { return _mm512_mask_mov_epi32(clear, m, set); }
  static M mor(M x, M y) { return M(x | y); }
  static bool none(M m) { return m == 0; }
};

template <InType T, Fp8Format F>
void encode_row_avx512(const void* x, uint8_t* __restrict out, int64_t n, float m) {
  using E = EncSimd<Avx512, F>;
  const __m512 vm = _mm512_set1_ps(m);
  int64_t i = 0;
  // codes are 0..255: the truncating narrow keeps them
  for (; i + 32 <= n; i += 32) {
    const __m512 p[2] = {_mm512_mul_ps(load16<T>(x, i), vm), _mm512_mul_ps(load16<T>(x, i + 16), vm)};
    __m512i c[2];
    E::group(p, c);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), _mm512_cvtepi32_epi8(c[0]));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i + 16), _mm512_cvtepi32_epi8(c[1]));
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
