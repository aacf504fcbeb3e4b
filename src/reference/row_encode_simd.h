// encode_fp8<F> (core/fp8.h) on a vector of fp32 products, one code per 32-bit lane, written once
// for the SIMD row-loop sets over an ISA's operations V (row_kernels_avx2.cpp: 8 lanes, lane masks;
// row_kernels_avx512.cpp: 16 lanes, mask registers), each of which includes it after defining V.
// V supplies: types I (32-bit lanes), P (fp32 lanes), M (a lane mask); set1, bits(P), floats(I),
// and_, or_, add, sub, min (signed), srli<k>, addf (fp32 add), gt (signed >, to M), eq0 (lane == 0,
// to M), select(M, if set, if clear), mor (mask or) and none(M).
//
// The same bytes as encode_fp8 lane by lane (the same IEEE fp32 add for subnormal outputs, integer
// steps equivalent to its branches, in fewer operations): the normal code takes the rebias in its
// rounding add (lanes where that underflows are subnormal, and take the subnormal code);
// saturation is a min with the largest finite code (the normal code grows with the rounded
// magnitude, and is the largest finite code exactly up to the largest finite value); NaN lanes,
// whose intermediate values mean nothing, take the NaN code last. And a group of vectors whose
// products are all normal in the format and cannot round past its largest finite value - nearly
// all, for calibrated scales - takes the normal branch alone (about 60% of the operations; the
// reference backend is compute-bound). tests/test_row_kernels.cpp runs every set over every
// 16-bit input pattern and over 32-element groups of one fp32 value around each seam of that choice.
#pragma once
#include <stdint.h>

#include "core/fp8.h"

namespace mlakv {

template <class V, Fp8Format F>
struct EncSimd {
  using I = typename V::I;
  using P = typename V::P;
  using M = typename V::M;
  using Tr = Fp8Traits<F>;
  static constexpr int kDrop = 23 - Tr::kMant;
  static constexpr uint32_t kMinNormal = uint32_t(127 + 1 - Tr::kBias) << 23;
  static constexpr uint32_t kRebias = uint32_t(127 - Tr::kBias) << Tr::kMant;
  // the largest magnitude that cannot round past the largest finite value
  static constexpr uint32_t kNormalMax = Tr::kMaxBits - (1u << (kDrop - 1));

  // |p|'s bits
  static I magnitude(P p) { return V::and_(V::bits(p), V::set1(0x7FFFFFFF)); }
  static I sign(P p) { return V::and_(V::template srli<24>(V::bits(p)), V::set1(0x80)); }
  // encode_fp8's normal branch: (a rounded to kDrop fewer bits, nearest even) - rebias
  static I normal(I a) {
    const I rounded = V::add(V::add(a, V::set1(int32_t(((1u << (kDrop - 1)) - 1u) - (kRebias << kDrop)))),
                             V::and_(V::template srli<kDrop>(a), V::set1(1)));
    return V::template srli<kDrop>(rounded);
  }
  // The lanes the normal branch alone does not encode: a < kMinNormal (zero, subnormal) or
  // a > kNormalMax (saturating, inf, NaN). One signed compare: a - kMinNormal + 2^31 lies in
  // [INT_MIN, INT_MIN + kNormalMax - kMinNormal] exactly for the others (a <= 0x7FFFFFFF, so
  // nothing wraps past the other end).
  static M outside(I a) {
    return V::gt(V::add(a, V::set1(int32_t(0x80000000u - kMinNormal))),
                 V::set1(int32_t(0x80000000u + (kNormalMax - kMinNormal))));
  }
  // lanes that are all normal and unsaturated (outside() clear)
  static I normal_only(P p, I a) { return V::or_(sign(p), normal(a)); }
  // any lanes
  static I any(P p, I a) {
    // subnormal outputs: the fp32 add of a magic number rounds to the fp8 grid (ties to even)
    const I magic = V::set1(int32_t((127 + 1 - Tr::kBias - Tr::kMant + 23) << 23));
    const I sub = V::sub(V::bits(V::addf(V::floats(a), V::floats(magic))), magic);
    const I mag = V::min(V::select(V::gt(V::set1(int32_t(kMinNormal)), a), sub, normal(a)), V::set1(int32_t(Tr::kMaxCode)));
    I code = V::or_(sign(p), mag);
    if (Tr::kFnuz) code = V::select(V::eq0(mag), V::set1(0), code);  // no -0 in fnuz
    return V::select(V::gt(a, V::set1(0x7F800000)), V::set1(int32_t(Tr::kNaN)), code);
  }
  // K vectors of products (a group of 32): the normal branch alone where no lane is outside it
  template <int K>
  static void group(const P (&p)[K], I (&c)[K]) {
    I a[K];
    a[0] = magnitude(p[0]);
    M odd = outside(a[0]);
    for (int k = 1; k < K; ++k) {
      a[k] = magnitude(p[k]);
      odd = V::mor(odd, outside(a[k]));
    }
    if (V::none(odd)) {
      for (int k = 0; k < K; ++k) c[k] = normal_only(p[k], a[k]);
    } else {
      for (int k = 0; k < K; ++k) c[k] = any(p[k], a[k]);
    }
  }
};

}  // namespace mlakv
