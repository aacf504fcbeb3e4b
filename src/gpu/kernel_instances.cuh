// The kernel instances of one part of the table (src/gpu/kernel_table.h): included by the six
// sources in src/gpu/instances/, each of which instantiates fill_kernels for one input type and
// body, and so compiles that part's kernels only.
#pragma once
#include "gpu/vendor.h"  // first: the runtime's headers define what the shared headers use

#include "gpu/kernel_table.h"

namespace mlakv {
namespace gpu {
namespace instances {

using kern::Units;

template <InType T, Fp8Format F, Units D, int U, bool X>
constexpr KernelFn flat_kernel() {
  if constexpr (kern::flat_capped<T, F, D, U, X>()) return kern::pack_flat_ext_r32<T, F, D>;
  else return kern::pack_flat<T, F, D, U, X>;
}
template <InType T, Fp8Format F, Units D, int U, bool X>
struct FlatK { static constexpr KernelFn fn = flat_kernel<T, F, D, U, X>(); };
template <InType T, Fp8Format F, Units D, int U, bool X>
struct PersistK { static constexpr KernelFn fn = kern::pack_persist<T, F, D, U, X>; };
template <InType T, Fp8Format F, Units D, int U, bool X>
struct Tile2dK { static constexpr KernelFn fn = kern::pack_tile2d<T, F, D, U, X>; };
template <InType T, Fp8Format F, Units D, int U, bool X>
struct GeneralK { static constexpr KernelFn fn = kern::pack_general<T, F, X>; };
// tile2d's lane-commit instance: ext, unroll 1 only (commit=lane rows; nullptr for unroll 2 and 4)
template <InType T, Fp8Format F, Units D, int U, bool X>
constexpr KernelFn tile2d_lane_kernel() {
  if constexpr (X && U == 1) return kern::pack_tile2d<T, F, D, 1, true, true>;
  else return nullptr;
}
template <InType T, Fp8Format F, Units D, int U, bool X>
struct Tile2dLaneK { static constexpr KernelFn fn = tile2d_lane_kernel<T, F, D, U, X>(); };

template <template <InType, Fp8Format, Units, int, bool> class K, bool X, InType T, Fp8Format F, Units D, bool U4>
void fill_d(KernelFn (&o)[3]) {
  o[0] = K<T, F, D, 1, X>::fn;
  o[1] = K<T, F, D, 2, X>::fn;
  if constexpr (U4) o[2] = K<T, F, D, 4, X>::fn;
  else o[2] = nullptr;
}
template <template <InType, Fp8Format, Units, int, bool> class K, bool X, InType T, Fp8Format F>
void fill_f(KernelFn (&o)[kUnits][3]) {
  fill_d<K, X, T, F, Units::DS16, true>(o[int(Units::DS16)]);
  fill_d<K, X, T, F, Units::DS8, true>(o[int(Units::DS8)]);
  fill_d<K, X, T, F, Units::V8, true>(o[int(Units::V8)]);
  fill_d<K, X, T, F, Units::DS16S, false>(o[int(Units::DS16S)]);
  fill_d<K, X, T, F, Units::DS32S, false>(o[int(Units::DS32S)]);
  fill_d<K, X, T, F, Units::DS8W, false>(o[int(Units::DS8W)]);
}
// o: the slots of input type T, by format, unit layout and unroll
template <template <InType, Fp8Format, Units, int, bool> class K, bool X, InType T>
void fill_t(KernelFn (&o)[4][kUnits][3]) {
  fill_f<K, X, T, Fp8Format::E4M3FN>(o[0]);
  fill_f<K, X, T, Fp8Format::E5M2>(o[1]);
  fill_f<K, X, T, Fp8Format::E4M3FNUZ>(o[2]);
  fill_f<K, X, T, Fp8Format::E5M2FNUZ>(o[3]);
}
// tile2d's lean instances of input T (16-bit), grid order HF, amax commit A, by format
template <InType T, bool HF, int A>
void fill_lean(KernelFn (&o)[4]) {
  o[0] = kern::pack_tile2d_lean<T, Fp8Format::E4M3FN, HF, A>;
  o[1] = kern::pack_tile2d_lean<T, Fp8Format::E5M2, HF, A>;
  o[2] = kern::pack_tile2d_lean<T, Fp8Format::E4M3FNUZ, HF, A>;
  o[3] = kern::pack_tile2d_lean<T, Fp8Format::E5M2FNUZ, HF, A>;
}

}  // namespace instances

template <InType T, bool X>
void fill_kernels(KernelTable& t) {
  using namespace instances;
  constexpr int in = int(T);
  fill_t<FlatK, X, T>(t.k[X][kFlat][in]);
  fill_t<PersistK, X, T>(t.k[X][kPersist][in]);
  fill_t<Tile2dK, X, T>(t.k[X][kTile2d][in]);
  fill_t<GeneralK, X, T>(t.k[X][kGeneral][in]);
  if constexpr (X) fill_t<Tile2dLaneK, true, T>(t.lane[in]);
  if constexpr (T != InType::FP32 && !X) {
    fill_lean<T, false, 0>(t.lean[0][in]);
    fill_lean<T, true, 0>(t.lean[1][in]);
  }
  if constexpr (T != InType::FP32 && X) {
    fill_lean<T, false, 1>(t.lean_x[0][in]);
    fill_lean<T, false, 2>(t.lean_x[1][in]);
  }
}

}  // namespace gpu
}  // namespace mlakv
