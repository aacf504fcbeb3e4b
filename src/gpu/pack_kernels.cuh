// The GPU kernel bodies of mlakv, written once for CUDA and HIP. Include the vendor layer first
// (src/gpu/vendor.h): it supplies MLAKV_DEVICE and mlakv::vendor::
// {grid_dependency_wait, launch_dependents, half_bits_to_float, encode2, load32/16/8/4,
// store16/8/4/2, umulhi}.
//
// The variants differ only in how (row, lane) pairs (below) are handed to threads:
//   tile2d  - grid (token blocks, heads): a block owns `block` tokens of one head (upstream's
//             2-D shape for tiny s);
//   flat    - 1-D grid over all s*h*L pairs, `threads * unroll` per block;
//   persist - flat's numbering with a grid of (SMs x waves) blocks striding over it;
//   general - one element per thread, 64-bit indices: any dims, any alignment.
// k_pe is read by every head's row of a token; after the first it comes from L1/L2, so DRAM
// sees it once per token.
#pragma once
#include <stdint.h>

#include "core/fp8.h"
#include "core/problem.h"

namespace mlakv {
namespace kern {

// n / d for n < 2^31 with one multiply-high (divisor set up on the host).
struct FastDiv {
  uint32_t d = 1, m = 1, s = 0;
  static FastDiv make(uint32_t d) {
    FastDiv f;
    f.d = d;
    f.s = 0;
    while ((uint64_t(1) << f.s) < d) ++f.s;
    f.m = uint32_t(((uint64_t(1) << 32) * ((uint64_t(1) << f.s) - d)) / d + 1);
    return f;
  }
  MLAKV_DEVICE uint32_t div(uint32_t n) const { return (vendor::umulhi(n, m) + n) >> s; }
};

// Unit layouts. DS*: DeepSeek dims (128, 64, 128) as compile-time constants; V8: any dims multiple
// of 8 with counts at run time. A "unit" is the piece of a segment one lane converts at once: W elements of
// k_nope / v and WP of k_pe (for bf16: 16-, 8- or 4-byte loads; W- and WP-byte stores).
//   DS16  16 lanes a row, W = 8; k_pe by 8 of them (WP = 8)
//   DS8    8 lanes a row, 2 units of k_nope and of v each (W = 8); k_pe WP = 8
//   DS16S 16 lanes, W = 8; k_pe split over all 16 lanes (WP = 4)
//   DS32S 32 lanes (a warp a row), W = 4; k_pe split over all 32 (WP = 2)
//   DS8W   8 lanes a row, W = 16 (one 32-byte load of bf16/fp16 a unit: a single 256-bit load
//          on Blackwell, two 16-byte loads elsewhere; one 16-byte store); k_pe WP = 8. Needs
//          32-byte-aligned input rows (wide_units_hold, src/core/dispatch.cpp)
//   V8    lanes = the largest unit count, W = WP = 8
// Wider units mean fewer instructions; narrower ones more threads and whole-line warp stores (a
// DS32S warp stores one row's 128 k_nope bytes at once). The H100 measurements pick per size
// (docs/perf-notes.md). (16-element units with two 16-byte loads a thread touch each sector
// twice and measured slower.)
enum class Units : int { DS16 = 0, DS8 = 1, V8 = 2, DS16S = 3, DS32S = 4, DS8W = 5 };
constexpr int kUnitsCount = 6;
constexpr bool is_ds(Units d) { return d != Units::V8; }

// Work is cut into (row, lane) pairs: a row is one (token, head), and lane j of a row converts
// units j, j + L, ... (CPL of them) of k_nope[t, h, :] and of v[t, h, :], and unit j of
// k_pe[t, :] where there is one. The lanes of a warp read pieces of a few contiguous rows (full
// 32-byte sectors) and every thread does the same straight-line work: missing units are
// predicated off, never branched to. Each thread takes UNROLL (row, lane) pairs and issues all
// their loads before converting.
struct Params {
  // read by every thread of the vector variants: kept together at the front of the parameter block
  const char* k_nope;
  const char* k_pe;
  const char* v;
  uint8_t* k_out;
  uint8_t* v_out;
  int64_t kn_st, kn_sh, kp_st, v_st, v_sh, ko_st, ko_sh, vo_st, vo_sh;  // strides in elements
  const float* k_scale_inv_ptr;
  const float* v_scale_inv_ptr;
  float k_scale_inv, v_scale_inv;
  uint32_t pairs;   // rows * lanes (< 2^31 for the vector variants)
  int32_t h;
  FastDiv div_h;    // row -> token
  FastDiv div_l;    // pair -> row (V8; DS divides by a constant)
  int32_t lanes, un, ur, uv;  // V8: lanes per row and chunks per segment
  int32_t block;    // tile2d: tokens per block
  int32_t early;    // PDL trigger at the start (1) or after the stores (0)
  int32_t evict_first;  // evict-first (streaming) stores
  // the general path
  int64_t s;
  int32_t d_nope, d_rope, d_v;
};

// L lanes a row, CPL units of k_nope and of v a lane, W / WP elements a unit, UN / UR / UV units
// in k_nope / k_pe / v, DN = D_nope.
template <Units D>
struct UnitsT {  // DS16
  static constexpr int L = 16, CPL = 1, W = 8, WP = 8, UN = 16, UR = 8, UV = 16, DN = 128;
};
template <>
struct UnitsT<Units::DS8> {
  static constexpr int L = 8, CPL = 2, W = 8, WP = 8, UN = 16, UR = 8, UV = 16, DN = 128;
};
template <>
struct UnitsT<Units::DS16S> {
  static constexpr int L = 16, CPL = 1, W = 8, WP = 4, UN = 16, UR = 16, UV = 16, DN = 128;
};
template <>
struct UnitsT<Units::DS32S> {
  static constexpr int L = 32, CPL = 1, W = 4, WP = 2, UN = 32, UR = 32, UV = 32, DN = 128;
};
template <>
struct UnitsT<Units::DS8W> {
  static constexpr int L = 8, CPL = 1, W = 16, WP = 8, UN = 8, UR = 8, UV = 8, DN = 128;
};
template <>
struct UnitsT<Units::V8> {  // lanes and unit counts come from Params
  static constexpr int L = 1, CPL = 1, W = 8, WP = 8, UN = 0, UR = 0, UV = 0, DN = 0;
};

// Lanes a row of a DeepSeek layout (host and device).
constexpr int ds_lanes(Units d) {
  return d == Units::DS8 ? UnitsT<Units::DS8>::L : d == Units::DS8W ? UnitsT<Units::DS8W>::L
       : d == Units::DS16S ? UnitsT<Units::DS16S>::L
       : d == Units::DS32S ? UnitsT<Units::DS32S>::L : UnitsT<Units::DS16>::L;
}

template <InType T>
struct Elem {
  static constexpr int size = T == InType::FP32 ? 4 : 2;
};

template <InType T>
MLAKV_DEVICE float widen(uint32_t word, int half) {
  if (T == InType::BF16) return bits_f32(half ? (word & 0xFFFF0000u) : (word << 16));
  return vendor::half_bits_to_float(uint16_t(half ? (word >> 16) : (word & 0xFFFFu)));
}

// N input elements as 32-bit words (bf16/fp16: two a word).
template <InType T, int N>
struct Chunk {
  static constexpr int bytes = N * Elem<T>::size;
  uint32_t w[bytes / 4];
};

template <InType T, int N>
MLAKV_DEVICE void load_chunk(Chunk<T, N>* c, const char* src) {
  constexpr int B = Chunk<T, N>::bytes;
  if constexpr (N == 16) {  // the wide units of DS8W: 32 bytes a load
#pragma unroll
    for (int j = 0; j < B / 32; ++j) {
      const vendor::Wide32 q = vendor::load32(src + 32 * j);
      c->w[8 * j] = q.lo.x; c->w[8 * j + 1] = q.lo.y; c->w[8 * j + 2] = q.lo.z; c->w[8 * j + 3] = q.lo.w;
      c->w[8 * j + 4] = q.hi.x; c->w[8 * j + 5] = q.hi.y; c->w[8 * j + 6] = q.hi.z; c->w[8 * j + 7] = q.hi.w;
    }
  } else if constexpr (B >= 16) {
#pragma unroll
    for (int j = 0; j < B / 16; ++j) {
      const uint4 q = vendor::load16(src + 16 * j);
      c->w[4 * j] = q.x; c->w[4 * j + 1] = q.y; c->w[4 * j + 2] = q.z; c->w[4 * j + 3] = q.w;
    }
  } else if constexpr (B == 8) {
    const uint2 q = vendor::load8(src);
    c->w[0] = q.x; c->w[1] = q.y;
  } else {
    c->w[0] = vendor::load4(src);
  }
}

// N elements -> N fp8 bytes, one N-byte store.
template <InType T, Fp8Format F, int N>
MLAKV_DEVICE void convert_store(const Chunk<T, N>& c, uint8_t* dst, float m, bool evict_first) {
  float x[N];
#pragma unroll
  for (int e = 0; e < N; ++e)
    x[e] = scale_mul(T == InType::FP32 ? bits_f32(c.w[e]) : widen<T>(c.w[e / 2], e & 1), m);
  uint32_t out[(N + 3) / 4];
#pragma unroll
  for (int j = 0; j < (N + 3) / 4; ++j) out[j] = 0;
#pragma unroll
  for (int e = 0; e < N; e += 2) out[e / 4] |= vendor::encode2<F>(x[e], x[e + 1]) << (8 * (e % 4));
  if constexpr (N == 16) vendor::store16(dst, make_uint4(out[0], out[1], out[2], out[3]), evict_first);
  else if constexpr (N == 8) vendor::store8(dst, make_uint2(out[0], out[1]), evict_first);
  else if constexpr (N == 4) vendor::store4(dst, out[0], evict_first);
  else vendor::store2(dst, uint16_t(out[0]), evict_first);
}

MLAKV_DEVICE void read_scales(const Params& P, float* ks, float* vs) {
  *ks = P.k_scale_inv_ptr ? *P.k_scale_inv_ptr : P.k_scale_inv;
  *vs = P.v_scale_inv_ptr ? *P.v_scale_inv_ptr : P.v_scale_inv;
}

template <Units D>
MLAKV_DEVICE int lanes_of(const Params& P) { return is_ds(D) ? UnitsT<D>::L : P.lanes; }

// The (row, lane) pairs of one thread, loaded together, then converted and stored. Input
// addresses are computed first and `ready()` is called just before the first global load: the
// kernels pass the PDL wait there, so reading the launch parameters and the index arithmetic
// overlap the previous kernel's tail instead of following it. Output addresses come after the
// loads are issued. ready() also returns the scales (read after
// the wait: a device-memory scale may be written by the previous kernel).
template <InType T, Fp8Format F, Units D, int UNROLL, class PairAt, class Ready>
MLAKV_DEVICE void run_pairs(const Params& P, PairAt pair_at, Ready ready) {
  using DT = UnitsT<D>;
  constexpr int E = Elem<T>::size;
  constexpr int CPL = DT::CPL, W = DT::W, WP = DT::WP;
  const int L = lanes_of<D>(P);
  const int un = is_ds(D) ? DT::UN : P.un;
  const int ur = is_ds(D) ? DT::UR : P.ur;
  const int uv = is_ds(D) ? DT::UV : P.uv;
  const int dn = is_ds(D) ? DT::DN : P.d_nope;
  const bool evict_first = P.evict_first != 0;
  const char* s_kn[UNROLL];
  const char* s_pe[UNROLL];
  const char* s_v[UNROLL];
  int64_t t_of[UNROLL], h_of[UNROLL];
  int lane_of[UNROLL];
  bool ok[UNROLL];
#pragma unroll
  for (int i = 0; i < UNROLL; ++i) {
    int64_t t = 0, hh = 0;
    int lane = 0;
    ok[i] = pair_at(i, &t, &hh, &lane);
    lane_of[i] = lane;
    t_of[i] = t;
    h_of[i] = hh;
    const int64_t c = int64_t(lane) * W, cp = int64_t(lane) * WP;
    s_kn[i] = P.k_nope + (t * P.kn_st + hh * P.kn_sh + c) * E;
    s_pe[i] = P.k_pe + (t * P.kp_st + cp) * E;
    s_v[i] = P.v + (t * P.v_st + hh * P.v_sh + c) * E;
  }
  float ks, vs;
  ready(&ks, &vs);
  Chunk<T, W> kn[UNROLL][CPL], vv[UNROLL][CPL];
  Chunk<T, WP> pe[UNROLL];
#pragma unroll
  for (int i = 0; i < UNROLL; ++i) {
#pragma unroll
    for (int k = 0; k < CPL; ++k) {
      const int u = lane_of[i] + k * L;
      if (ok[i] && u < un) load_chunk<T, W>(&kn[i][k], s_kn[i] + k * L * W * E);
      if (ok[i] && u < uv) load_chunk<T, W>(&vv[i][k], s_v[i] + k * L * W * E);
    }
    if (ok[i] && lane_of[i] < ur) load_chunk<T, WP>(&pe[i], s_pe[i]);
  }
  // output addresses only now: with every load in flight (and, under PDL, the input addresses
  // computed before the wait) a warp's first load is not held back by arithmetic it does not need
  uint8_t* ko[UNROLL];
  uint8_t* kpo[UNROLL];
  uint8_t* vo[UNROLL];
#pragma unroll
  for (int i = 0; i < UNROLL; ++i) {
    const int64_t t = t_of[i], hh = h_of[i];
    const int64_t c = int64_t(lane_of[i]) * W, cp = int64_t(lane_of[i]) * WP;
    uint8_t* krow = P.k_out + t * P.ko_st + hh * P.ko_sh;
    ko[i] = krow + c;
    kpo[i] = krow + dn + cp;
    vo[i] = P.v_out + t * P.vo_st + hh * P.vo_sh + c;
  }
#pragma unroll
  for (int i = 0; i < UNROLL; ++i) {
#pragma unroll
    for (int k = 0; k < CPL; ++k) {
      const int u = lane_of[i] + k * L;
      if (ok[i] && u < un) convert_store<T, F, W>(kn[i][k], ko[i] + k * L * W, ks, evict_first);
      if (ok[i] && u < uv) convert_store<T, F, W>(vv[i][k], vo[i] + k * L * W, vs, evict_first);
    }
    if (ok[i] && lane_of[i] < ur) convert_store<T, F, WP>(pe[i], kpo[i], ks, evict_first);
  }
}

// PDL entry, just before the first global read: optionally let the next kernel launch now, then
// wait for the previous one and read the scales.
MLAKV_DEVICE void pdl_enter(const Params& P, float* ks, float* vs) {
  if (P.early) vendor::launch_dependents();
  vendor::grid_dependency_wait();
  read_scales(P, ks, vs);
}
MLAKV_DEVICE void pdl_exit(const Params& P) {
  if (!P.early) vendor::launch_dependents();
}

// Flat numbering of (row, lane) pairs: pair g = row * L + lane, row = token * h + head.
template <Units D>
MLAKV_DEVICE bool flat_pair(const Params& P, uint32_t g, int64_t* t, int64_t* hh, int* lane) {
  const uint32_t L = uint32_t(lanes_of<D>(P));
  const uint32_t row = is_ds(D) ? g / uint32_t(UnitsT<D>::L) : P.div_l.div(g);
  *lane = int(g - row * L);
  const uint32_t tt = P.div_h.div(row);
  *t = tt;
  *hh = row - tt * uint32_t(P.h);
  return g < P.pairs;
}

template <InType T, Fp8Format F, Units D, int UNROLL>
__global__ void pack_flat(const Params P) {
  const uint32_t base = blockIdx.x * blockDim.x * uint32_t(UNROLL) + threadIdx.x;
  run_pairs<T, F, D, UNROLL>(
      P, [&](int i, int64_t* t, int64_t* hh, int* lane) { return flat_pair<D>(P, base + uint32_t(i) * blockDim.x, t, hh, lane); },
      [&](float* ks, float* vs) { pdl_enter(P, ks, vs); });
  pdl_exit(P);
}

template <InType T, Fp8Format F, Units D, int UNROLL>
__global__ void pack_persist(const Params P) {
  const uint32_t chunk = blockDim.x * uint32_t(UNROLL);
  float ks = 0.f, vs = 0.f;
  bool entered = false;
  for (uint32_t first = blockIdx.x * chunk; first < P.pairs; first += gridDim.x * chunk) {
    const uint32_t base = first + threadIdx.x;
    run_pairs<T, F, D, UNROLL>(
        P, [&](int i, int64_t* t, int64_t* hh, int* lane) { return flat_pair<D>(P, base + uint32_t(i) * blockDim.x, t, hh, lane); },
        [&](float* k, float* v) {
          if (!entered) { pdl_enter(P, &ks, &vs); entered = true; }
          *k = ks;
          *v = vs;
        });
  }
  if (!entered) pdl_enter(P, &ks, &vs);  // a block with no work still takes part in PDL
  pdl_exit(P);
}

// blockIdx.x: a block of P.block tokens; blockIdx.y: the head.
template <InType T, Fp8Format F, Units D, int UNROLL>
__global__ void pack_tile2d(const Params P) {
  const int64_t t0 = int64_t(blockIdx.x) * P.block;
  const int64_t left = P.s - t0;
  const uint32_t L = uint32_t(lanes_of<D>(P));
  const uint32_t n = uint32_t(left < P.block ? left : P.block) * L;
  const int64_t head = blockIdx.y;
  if (uint32_t(P.block) * L == blockDim.x * uint32_t(UNROLL)) {
    // one pass covers the tile (the table's tile2d rows are sized so): no loop, no re-entry test
    run_pairs<T, F, D, UNROLL>(
        P,
        [&](int i, int64_t* t, int64_t* hh, int* lane) {
          const uint32_t l = threadIdx.x + uint32_t(i) * blockDim.x;
          const uint32_t tl = is_ds(D) ? l / uint32_t(UnitsT<D>::L) : P.div_l.div(l);
          *lane = int(l - tl * L);
          *t = t0 + tl;
          *hh = head;
          return l < n;
        },
        [&](float* k, float* v) { pdl_enter(P, k, v); });
    pdl_exit(P);
    return;
  }
  float ks = 0.f, vs = 0.f;
  bool entered = false;
  for (uint32_t base = threadIdx.x; base < n; base += blockDim.x * uint32_t(UNROLL)) {
    run_pairs<T, F, D, UNROLL>(
        P,
        [&](int i, int64_t* t, int64_t* hh, int* lane) {
          const uint32_t l = base + uint32_t(i) * blockDim.x;
          const uint32_t tl = is_ds(D) ? l / uint32_t(UnitsT<D>::L) : P.div_l.div(l);
          *lane = int(l - tl * L);
          *t = t0 + tl;
          *hh = head;
          return l < n;
        },
        [&](float* k, float* v) {
          if (!entered) { pdl_enter(P, &ks, &vs); entered = true; }
          *k = ks;
          *v = vs;
        });
  }
  if (!entered) pdl_enter(P, &ks, &vs);
  pdl_exit(P);
}

// Any dims, any alignment: one element per thread and grid-stride, 64-bit indices.
template <InType T, Fp8Format F>
__global__ void pack_general(const Params P) {
  float ks, vs;
  pdl_enter(P, &ks, &vs);
  const int64_t w = int64_t(P.d_nope) + P.d_rope + P.d_v;
  const int64_t total = P.s * P.h * w;
  constexpr int E = Elem<T>::size;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t row = i / w, c = i - row * w;
    const int64_t t = row / P.h, hh = row - t * P.h;
    const char* src;
    uint8_t* dst;
    float m;
    if (c < P.d_nope) {
      src = P.k_nope + (t * P.kn_st + hh * P.kn_sh + c) * E;
      dst = P.k_out + t * P.ko_st + hh * P.ko_sh + c;
      m = ks;
    } else if (c < P.d_nope + P.d_rope) {
      src = P.k_pe + (t * P.kp_st + (c - P.d_nope)) * E;
      dst = P.k_out + t * P.ko_st + hh * P.ko_sh + c;
      m = ks;
    } else {
      const int64_t cv = c - P.d_nope - P.d_rope;
      src = P.v + (t * P.v_st + hh * P.v_sh + cv) * E;
      dst = P.v_out + t * P.vo_st + hh * P.vo_sh + cv;
      m = vs;
    }
    float x;
    if (T == InType::FP32) x = *reinterpret_cast<const float*>(src);
    else x = widen<T>(*reinterpret_cast<const uint16_t*>(src), 0);
    *dst = uint8_t(vendor::encode2<F>(scale_mul(x, m), 0.0f) & 0xFFu);
  }
  pdl_exit(P);
}

}  // namespace kern
}  // namespace mlakv
