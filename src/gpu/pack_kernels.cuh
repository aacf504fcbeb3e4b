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
// sees it once per token (and each head's copy is encoded by that head's row, with its scale).
//
// Per-head scales and amax (issue 15): every kernel is compiled twice, by the template flag X:
//   plain (X = false) - one multiplier for K and one for V, no amax (the per-tensor code, with the
//                       registers - so the occupancy and the rows a device can run - of a kernel
//                       without amax).
//                       Per-head multipliers (Params::per_head: h floats behind each scale pointer)
//                       too where every pair of a thread is of one head - flat with unroll 1, tile2d:
//                       the multiplier is read at the PDL entry by that head's index instead of 0,
//                       the same load as a per-tensor device scale (measured on the H200: within
//                       noise of per-tensor at every size, docs/perf-notes.md);
//   ext   (X = true)  - amax, and per-head multipliers where a thread's pairs span heads (persist,
//                       flat with unroll 2 / 4, general): each thread keeps the running maximum of
//                       |input| (NaN ignored) in registers, lanes that share a destination combine
//                       theirs with warp shuffles / redux, and one lane issues an atomicMax on the
//                       int32 bit pattern only if its value is larger than what the destination
//                       held when the block started (tile2d: always, without that read).
// (One kernel with a runtime branch between the two bodies was measured first: the same compile
// time and code size, but the kernel's registers are the larger body's, +7 to +16 on most plain
// kernels - 32 -> 48 for tile2d ds16s unroll 1, an occupancy of 1280 threads an SM instead of 2048.)
// The host picks the instance per call (src/gpu/gpu_backend.cu wants_ext); a call that gains or
// loses amax pointers is planned anew (tables may have rows for amax calls only: amax=1).
// Where the ext body puts the maxima:
//   tile2d          a block is one head: thread maxima, combined per block at the end, into amax[0]
//                   (per tensor) or amax[head] (per head); rows with commit=lane run a third
//                   instance whose every thread commits its own (tile_amax);
//   flat / persist  per tensor: thread maxima across all pairs (persist: all its chunks), combined
//                   per block at the end; per head: per (row, lane) pair, the lanes of one row (an
//                   aligned group of L lanes in DS layouts: redux / xor shuffles; x8 layouts: a
//                   segmented shuffle reduction keyed by row) combine, the row's lane 0 commits, and
//                   each pair's multipliers are loaded per head;
//   general         per tensor: thread maxima, per warp at the end; per head: each element, a
//                   segmented shuffle reduction keyed by (row, K or V), the segment's first lane
//                   commits.
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
  // per-head scales and amax, read by the ext kernels only (appended: the plain kernels' parameter
  // offsets stay as they were)
  float* k_amax;    // NULL: no amax of K; else 1 float (per tensor) or h (per head), accumulated into
  float* v_amax;
  int32_t per_head; // the scale pointers hold h multipliers, the amax arrays h floats
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

// N elements -> N fp8 bytes, one N-byte store. X (the ext body): *acc also takes the maximum of
// the elements' magnitudes, before scaling (vendor::amax_join: NaN ignored).
template <InType T, Fp8Format F, int N, bool X = false>
MLAKV_DEVICE void convert_store(const Chunk<T, N>& c, uint8_t* dst, float m, bool evict_first, float* acc = nullptr) {
  float in[N], x[N];
#pragma unroll
  for (int e = 0; e < N; ++e) {
    in[e] = T == InType::FP32 ? bits_f32(c.w[e]) : widen<T>(c.w[e / 2], e & 1);
    x[e] = scale_mul(in[e], m);
  }
  if constexpr (X) {
    // the chunk's largest magnitude by a balanced tree (log2 N dependent steps, not N: at tiny
    // sizes they sit on the kernel's tail; -0.15 us at h=128 s=64 on the H200), then the thread's
    float t[N];
#pragma unroll
    for (int e = 0; e < N; ++e) t[e] = fabsf(in[e]);
#pragma unroll
    for (int w = 1; w < N; w <<= 1)
#pragma unroll
      for (int e = 0; e + w < N; e += 2 * w) t[e] = vendor::amax_join(t[e], t[e + w]);
    *acc = vendor::amax_join(*acc, t[0]);
  }
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

// The multipliers: from the scale pointers when set (entry `head` of per-head arrays; 0 per
// tensor), else the values.
MLAKV_DEVICE void read_scales(const Params& P, float* ks, float* vs, int64_t head = 0) {
  *ks = P.k_scale_inv_ptr ? P.k_scale_inv_ptr[head] : P.k_scale_inv;
  *vs = P.v_scale_inv_ptr ? P.v_scale_inv_ptr[head] : P.v_scale_inv;
}

// ---- amax: maxima as int32 bit patterns (non-negative, non-NaN floats: the float order) ----------

// One lane's contribution m to *p, where the lane read *p as `seen` (int32 bits): an atomic max only
// if m is larger, so a destination that already holds at least m costs no atomic (a calibration
// in its steady state costs none at all). A stale `seen` only costs an atomic that was not needed;
// seen = -1 (not read) always commits.
MLAKV_DEVICE void amax_commit(float* p, uint32_t m, int32_t seen) {
  if (int32_t(m) > seen) vendor::amax_max(p, int32_t(m));
}

// What a block's destinations held when it started (read by thread 0 right after the PDL wait, so
// the read overlaps the block's work; through L2: the freshest copy, one read a block). flat,
// persist and general read it (their grids reach 10^5 blocks, whose atomics, all on one line, would
// serialize: one a block at 220 MB cost +25% on the H200); tile2d does not (kNotRead: it commits
// always), since the built-in table sends it calls of at most a few hundred blocks, where that read,
// after the PDL wait, costs more than the atomics (H200: h=16 s=1 +0.11 us against +0.21, h=128
// s=64 in 32-token tiles +0.19 against +0.42; a flag choosing at run time cost +0.07 us on its own).
struct AmaxSeen {
  int32_t k = 0, v = 0;
};
constexpr AmaxSeen kNotRead{-1, -1};
MLAKV_DEVICE AmaxSeen amax_seen_block(const Params& P, int64_t idx) {
  AmaxSeen s;
  if (vendor::block_leader()) {
    if (P.k_amax) s.k = vendor::amax_read_l2(P.k_amax + idx);
    if (P.v_amax) s.v = vendor::amax_read_l2(P.v_amax + idx);
  }
  return s;
}

// The thread maxima of a whole block (every thread calls it, at the end) into dst[idx]: combined
// by warp and across the warps (vendor::block_max2), then one commit a block - the number of
// atomics a call can issue is bounded by its blocks, even into arrays zeroed before every call.
// (Without the barrier - shared-memory atomics, the last warp to finish committing - was slower on
// the H200 at every size: +12% against +6.6% at h=128 s=1024, docs/perf-notes.md.)
MLAKV_DEVICE void amax_flush(const Params& P, float ak, float av, int64_t idx, AmaxSeen seen) {
  if (!P.k_amax && !P.v_amax) return;
  uint32_t mk = f32_bits(ak), mv = f32_bits(av);
  if (vendor::block_max2(&mk, &mv)) {
    if (P.k_amax) amax_commit(P.k_amax + idx, mk, seen.k);
    if (P.v_amax) amax_commit(P.v_amax + idx, mv, seen.v);
  }
}

// tile2d's amax commit. LC (rows with commit=lane; tile2d's third instance): every thread commits
// its own maxima - no redux, no barrier, so the atomics leave right behind the stores instead of
// after a reduction's latency (H200, one-warp tiles at h=16 s <= 8: +0.05-0.08 us against
// +0.10-0.13). The atomics are one a thread, all on amax[0] per tensor: cheap on grids of a few
// thousand threads, ruinous on large ones (+1.3-5.6 us at s*h >= 1024), so only the table's small
// rows ask for it. Otherwise one commit a block (amax_flush). Max is exact and order-free: the
// same result either way.
template <bool LC>
MLAKV_DEVICE void tile_amax(const Params& P, float ak, float av, int64_t idx) {
  if constexpr (LC) {
    if (P.k_amax) vendor::amax_max(P.k_amax + idx, int32_t(f32_bits(ak)));
    if (P.v_amax) vendor::amax_max(P.v_amax + idx, int32_t(f32_bits(av)));
  } else {
    amax_flush(P, ak, av, idx, kNotRead);
  }
}

// Maxima of lanes holding the same key, for keys that come in contiguous runs of lanes (rows of
// an x8 layout, the (row, K / V) segments of the general kernel): after it, the first lane of each
// run holds the run's maximum in *mk (and *mv when TWO); returns whether this lane is such a first
// lane. Every lane calls it (converged). A lane with a key of its own (an invalid pair) combines
// with nobody. (Keys that repeat further on are harmless: a lane only ever takes values of its key.)
template <bool TWO>
MLAKV_DEVICE bool segment_max(uint32_t key, uint32_t* mk, uint32_t* mv) {
  const int lane = vendor::lane();
#pragma unroll
  for (int d = 1; d < vendor::kLanes; d <<= 1) {
    const uint32_t k_d = vendor::shfl_down(key, d), mk_d = vendor::shfl_down(*mk, d);
    const bool take = lane + d < vendor::kLanes && k_d == key;
    *mk = take && mk_d > *mk ? mk_d : *mk;
    if constexpr (TWO) {
      const uint32_t mv_d = vendor::shfl_down(*mv, d);
      *mv = take && mv_d > *mv ? mv_d : *mv;
    }
  }
  const uint32_t before = vendor::shfl_up(key, 1);
  return lane == 0 || before != key;
}

template <Units D>
MLAKV_DEVICE int lanes_of(const Params& P) { return is_ds(D) ? UnitsT<D>::L : P.lanes; }

// The (row, lane) pairs of one thread, loaded together, then converted and stored. Input
// addresses are computed first and `ready()` is called just before the first global load: the
// kernels pass the PDL wait there, so reading the launch parameters and the index arithmetic
// overlap the previous kernel's tail instead of following it. Output addresses come after the
// loads are issued. ready() also returns the scales (read after
// the wait: a device-memory scale may be written by the previous kernel).
// X: the ext body. Each pair's maxima of |k_nope|, |k_pe| (K) and |v| go to sink(ok, head, lane,
// token, K max, V max, K amax seen, V amax seen); with per-head scales and PH (pairs of several
// heads: flat, persist) each pair's multipliers are loaded by its head (tile2d's ready() returns
// its head's).
template <InType T, Fp8Format F, Units D, int UNROLL, bool X = false, bool PH = false, class PairAt, class Ready,
          class Sink = int>
MLAKV_DEVICE void run_pairs(const Params& P, PairAt pair_at, Ready ready, Sink sink = 0) {
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
  // X: the pairs' multipliers; per head, where a thread's pairs are of several heads (PH), loaded
  // by head with the data in flight (ready() read none then), and so are what their heads' amax
  // held (through L1: the read is cheap, a stale value only costs an atomic)
  float ksp[UNROLL], vsp[UNROLL];
  int32_t seen_k[UNROLL], seen_v[UNROLL];
  if constexpr (X) {
#pragma unroll
    for (int i = 0; i < UNROLL; ++i) {
      ksp[i] = ks;
      vsp[i] = vs;
      seen_k[i] = seen_v[i] = 0;
      if (PH && P.per_head) {
        ksp[i] = ok[i] ? P.k_scale_inv_ptr[h_of[i]] : 0.0f;
        vsp[i] = ok[i] ? P.v_scale_inv_ptr[h_of[i]] : 0.0f;
        if (is_ds(D) && ok[i] && P.k_amax) seen_k[i] = vendor::amax_read(P.k_amax + h_of[i]);
        if (is_ds(D) && ok[i] && P.v_amax) seen_v[i] = vendor::amax_read(P.v_amax + h_of[i]);
      }
    }
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
  if constexpr (!X) {
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
  } else {
#pragma unroll
    for (int i = 0; i < UNROLL; ++i) {
      float ak = 0.0f, av = 0.0f;  // this pair's maxima
#pragma unroll
      for (int k = 0; k < CPL; ++k) {
        const int u = lane_of[i] + k * L;
        if (ok[i] && u < un) convert_store<T, F, W, true>(kn[i][k], ko[i] + k * L * W, ksp[i], evict_first, &ak);
        if (ok[i] && u < uv) convert_store<T, F, W, true>(vv[i][k], vo[i] + k * L * W, vsp[i], evict_first, &av);
      }
      if (ok[i] && lane_of[i] < ur) convert_store<T, F, WP, true>(pe[i], kpo[i], ksp[i], evict_first, &ak);
      sink(ok[i], h_of[i], lane_of[i], t_of[i], ak, av, seen_k[i], seen_v[i]);
    }
  }
}

// PDL entry, just before the first global read: optionally let the next kernel launch now, then
// wait for the previous one and read the scales (of head `head` for per-head scales).
MLAKV_DEVICE void pdl_enter(const Params& P, float* ks, float* vs, int64_t head = 0) {
  if (P.early) vendor::launch_dependents();
  vendor::grid_dependency_wait();
  read_scales(P, ks, vs, head);
}
// The ext body of flat / persist: with per-head scales the pairs load their heads' multipliers
// (run_pairs), so none is read here (a load into the same register would hold theirs back).
MLAKV_DEVICE void pdl_enter_ext(const Params& P, float* ks, float* vs) {
  if (P.early) vendor::launch_dependents();
  vendor::grid_dependency_wait();
  *ks = *vs = 0.0f;
  if (!P.per_head) read_scales(P, ks, vs);
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

// The ext body's sink for flat numbering: per tensor, the pair's maxima join the thread's (*ak,
// *av, flushed per block at the end); per head, the row's lanes combine now and its lane 0 commits
// to amax[head]. In DS layouts a row's L lanes are an aligned group of a warp (blocks and chunks
// are multiples of 32 pairs) and what the head's amax held was read with the data (seen_*); in x8
// layouts rows are runs of lanes keyed by row, whose first lane reads the destination now. Every
// lane of the warp calls it (converged).
template <Units D>
struct FlatSink {
  const Params& P;
  float* ak;
  float* av;
  const AmaxSeen* own = nullptr;  // unroll 1: what the thread's one head's amax held (read at the PDL entry)
  MLAKV_DEVICE void operator()(bool ok, int64_t hh, int lane, int64_t t, float pk, float pv, int32_t seen_k,
                               int32_t seen_v) const {
    if (!P.per_head) {
      *ak = *ak > pk ? *ak : pk;
      *av = *av > pv ? *av : pv;
      return;
    }
    if (!P.k_amax && !P.v_amax) return;
    uint32_t mk = f32_bits(pk), mv = f32_bits(pv);
    bool first;
    if (own) {
      seen_k = own->k;
      seen_v = own->v;
    }
    if constexpr (is_ds(D)) {
      constexpr int G = UnitsT<D>::L < vendor::kLanes ? UnitsT<D>::L : vendor::kLanes;
      mk = vendor::group_max<G>(mk);
      mv = vendor::group_max<G>(mv);
      first = lane % G == 0;
    } else {
      (void)lane;
      first = segment_max<true>(ok ? uint32_t(t * P.h + hh) : 0xFFFFFFFFu, &mk, &mv);
      if (first && ok && !own) {
        if (P.k_amax) seen_k = vendor::amax_read(P.k_amax + hh);
        if (P.v_amax) seen_v = vendor::amax_read(P.v_amax + hh);
      }
    }
    if (first && ok) {
      if (P.k_amax) amax_commit(P.k_amax + hh, mk, seen_k);
      if (P.v_amax) amax_commit(P.v_amax + hh, mv, seen_v);
    }
  }
};

// With one pair a thread (unroll 1) the thread's scales are its pair's head's, read at the PDL
// entry like a per-tensor device scale (plain and ext); with several pairs (ext only: the host
// sends per-head calls with unroll 2 / 4 there) each pair loads its own after its data.
template <InType T, Fp8Format F, Units D, int UNROLL, bool X>
MLAKV_DEVICE void flat_run(const Params& P) {
  constexpr bool kOneHead = UNROLL == 1;
  const uint32_t base = blockIdx.x * blockDim.x * uint32_t(UNROLL) + threadIdx.x;
  float ak = 0.0f, av = 0.0f;
  int64_t head0 = 0;
  AmaxSeen seen, own;
  const bool per_tensor_amax = X && !P.per_head;
  run_pairs<T, F, D, UNROLL, X, !kOneHead>(
      P,
      [&](int i, int64_t* t, int64_t* hh, int* lane) {
        const bool ok = flat_pair<D>(P, base + uint32_t(i) * blockDim.x, t, hh, lane);
        if (i == 0) head0 = *hh;
        return ok;
      },
      [&](float* ks, float* vs) {
        if constexpr (kOneHead) {
          pdl_enter(P, ks, vs, P.per_head ? head0 : 0);
          if constexpr (X) {
            if (!P.per_head) {
              seen = amax_seen_block(P, 0);
            } else {
              if (P.k_amax) own.k = vendor::amax_read(P.k_amax + head0);
              if (P.v_amax) own.v = vendor::amax_read(P.v_amax + head0);
            }
          }
        } else if constexpr (X) {
          pdl_enter_ext(P, ks, vs);
          if (!P.per_head) seen = amax_seen_block(P, 0);
        } else {
          pdl_enter(P, ks, vs);
        }
      },
      FlatSink<D>{P, &ak, &av, kOneHead ? &own : nullptr});
  if constexpr (X)
    if (per_tensor_amax) amax_flush(P, ak, av, 0, seen);
  pdl_exit(P);
}

template <InType T, Fp8Format F, Units D, int UNROLL, bool X>
__global__ void pack_flat(const Params P) {
  flat_run<T, F, D, UNROLL, X>(P);
}

// The ext instances of flat with unroll 1, 16-bit inputs and ds16 units: their plain twins fit in
// 32 registers, two blocks of 1024 threads an SM (the H200 rows of ~100 MB), the ext body took 38
// to 40 and ran those rows at half occupancy (+24% at h=128, s=1024); held to 32 it does not
// spill (ptxas -v, sm_90a; x8 units would, so they are not held).
template <InType T, Fp8Format F, Units D, int UNROLL, bool X>
constexpr bool flat_capped() {
  return X && UNROLL == 1 && T != InType::FP32 && D == Units::DS16;
}
template <InType T, Fp8Format F, Units D>
__global__ void MLAKV_BOUNDS_1024X2 pack_flat_ext_r32(const Params P) {
  flat_run<T, F, D, 1, true>(P);
}

template <InType T, Fp8Format F, Units D, int UNROLL, bool X>
__global__ void pack_persist(const Params P) {
  const uint32_t chunk = blockDim.x * uint32_t(UNROLL);
  float ks = 0.f, vs = 0.f;
  float ak = 0.0f, av = 0.0f;
  AmaxSeen seen;
  bool entered = false;
  for (uint32_t first = blockIdx.x * chunk; first < P.pairs; first += gridDim.x * chunk) {  // block-uniform
    const uint32_t base = first + threadIdx.x;
    run_pairs<T, F, D, UNROLL, X, true>(
        P, [&](int i, int64_t* t, int64_t* hh, int* lane) { return flat_pair<D>(P, base + uint32_t(i) * blockDim.x, t, hh, lane); },
        [&](float* k, float* v) {
          if constexpr (X) {
            if (!entered) {
              pdl_enter_ext(P, &ks, &vs);
              if (!P.per_head) seen = amax_seen_block(P, 0);
              entered = true;
            }
          } else {
            if (!entered) { pdl_enter(P, &ks, &vs); entered = true; }
          }
          *k = ks;
          *v = vs;
        },
        FlatSink<D>{P, &ak, &av});
  }
  if constexpr (X) {
    if (!entered) {  // a block with no work still takes part in PDL
      pdl_enter_ext(P, &ks, &vs);
      if (!P.per_head) seen = amax_seen_block(P, 0);
    }
  } else {
    if (!entered) pdl_enter(P, &ks, &vs);  // a block with no work still takes part in PDL
  }
  if constexpr (X)
    if (!P.per_head) amax_flush(P, ak, av, 0, seen);
  pdl_exit(P);
}

// tile2d's ext sink: a block is one head, so every pair's maxima join the thread's.
struct ThreadSink {
  float* ak;
  float* av;
  MLAKV_DEVICE void operator()(bool, int64_t, int, int64_t, float pk, float pv, int32_t, int32_t) const {
    *ak = *ak > pk ? *ak : pk;
    *av = *av > pv ? *av : pv;
  }
};

// blockIdx.x: a block of P.block tokens; blockIdx.y: the head. LC (ext only): lane commits (tile_amax).
template <InType T, Fp8Format F, Units D, int UNROLL, bool X, bool LC = false>
__global__ void pack_tile2d(const Params P) {
  const int64_t t0 = int64_t(blockIdx.x) * P.block;
  const int64_t left = P.s - t0;
  const uint32_t L = uint32_t(lanes_of<D>(P));
  const uint32_t n = uint32_t(left < P.block ? left : P.block) * L;
  const int64_t head = blockIdx.y;
  // per-head scales (and amax): the block's head's, re-read from blockIdx where used
#define MLAKV_TILE_SCALE_AT (P.per_head ? int64_t(blockIdx.y) : int64_t(0))
  float ak = 0.0f, av = 0.0f;
  if (uint32_t(P.block) * L == blockDim.x * uint32_t(UNROLL)) {
    // one pass covers the tile (the table's tile2d rows are sized so): no loop, no re-entry test
    run_pairs<T, F, D, UNROLL, X>(
        P,
        [&](int i, int64_t* t, int64_t* hh, int* lane) {
          const uint32_t l = threadIdx.x + uint32_t(i) * blockDim.x;
          const uint32_t tl = is_ds(D) ? l / uint32_t(UnitsT<D>::L) : P.div_l.div(l);
          *lane = int(l - tl * L);
          *t = t0 + tl;
          *hh = head;
          return l < n;
        },
        [&](float* k, float* v) { pdl_enter(P, k, v, MLAKV_TILE_SCALE_AT); },
        ThreadSink{&ak, &av});
    if constexpr (X) tile_amax<LC>(P, ak, av, MLAKV_TILE_SCALE_AT);
    pdl_exit(P);
    return;
  }
  float ks = 0.f, vs = 0.f;
  bool entered = false;
  for (uint32_t base = threadIdx.x; base < n; base += blockDim.x * uint32_t(UNROLL)) {
    run_pairs<T, F, D, UNROLL, X>(
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
          if (!entered) {
            pdl_enter(P, &ks, &vs, MLAKV_TILE_SCALE_AT);
            entered = true;
          }
          *k = ks;
          *v = vs;
        },
        ThreadSink{&ak, &av});
  }
  if (!entered) pdl_enter(P, &ks, &vs, MLAKV_TILE_SCALE_AT);
  if constexpr (X) tile_amax<LC>(P, ak, av, MLAKV_TILE_SCALE_AT);  // (every thread of the block gets here)
  pdl_exit(P);
}
#undef MLAKV_TILE_SCALE_AT

// tile2d's plain instance in its commonest shape, lean: 16 lanes a (token, head) row with k_pe split
// (ds16s: 8 elements of k_nope and of v, 4 of k_pe a lane), one pair a thread, a tile covered in
// one pass (P.block x 16 = threads), plain stores, 16-bit inputs, and 32-bit offsets - the host
// sends it only calls whose operands each span under 2^32 bytes (gpu_backend.cu, lean_fits), where
// every offset it forms fits and the modular arithmetic is exact. The same bytes as pack_tile2d;
// it only drops what that shape does not need: at L2-resident sizes a block's latency is the cost,
// and there 64-bit offsets cost 8-10% and the general body's per-chunk convert-and-store about as
// much (H200, 27-31 MB, docs/perf-notes.md). Input addresses before the PDL wait, as everywhere.
// Its grid is (token tiles, heads), or with HF (heads, token tiles) (rows order=heads: blocks
// launched together then share their tokens' k_pe and write neighbouring parts of a token's output
// rows). A template flag, not a parameter: a run-time choice let nvcc move the address arithmetic
// after the PDL wait (+7% at h=128 s=256 on an H200).
// A (amax rows with lean=1; token tiles first only): 0 the plain instance; 1 and 2 the ext ones,
// which also take the thread's maxima (magnitudes of the inputs before scaling, NaN ignored, as the
// ext body) and commit them as tile2d's: 1 one commit a block, 2 every thread's (commit=lane).
template <InType T, Fp8Format F, bool HF, int A = 0>
__global__ void pack_tile2d_lean(const Params P) {
  static_assert(A == 0 || !HF, "the amax instances number token tiles first");
  static_assert(T != InType::FP32, "16-bit inputs");
  constexpr uint64_t E = 2;
  const uint32_t lane = threadIdx.x & 15u;
  const uint32_t tile = HF ? blockIdx.y : blockIdx.x, head = HF ? blockIdx.x : blockIdx.y;
  const uint32_t t = tile * uint32_t(P.block) + (threadIdx.x >> 4u);
  const bool ok = int64_t(t) < P.s;
  const char* pe_src = P.k_pe + uint64_t(t * uint32_t(P.kp_st) + lane * 4u) * E;
  const char* kn_src = P.k_nope + uint64_t(t * uint32_t(P.kn_st) + head * uint32_t(P.kn_sh) + lane * 8u) * E;
  const char* v_src = P.v + uint64_t(t * uint32_t(P.v_st) + head * uint32_t(P.v_sh) + lane * 8u) * E;
  float ks, vs;
  pdl_enter(P, &ks, &vs, P.per_head ? int64_t(head) : int64_t(0));
  uint2 pe = make_uint2(0, 0);
  uint4 kn = make_uint4(0, 0, 0, 0), vv = kn;
  if (ok) {
    pe = vendor::load8(pe_src);
    kn = vendor::load16(kn_src);
    vv = vendor::load16(v_src);
  }
  const auto two = [](uint32_t w, float m) {
    return vendor::encode2<F>(scale_mul(widen<T>(w, 0), m), scale_mul(widen<T>(w, 1), m));
  };
  const uint2 ko = make_uint2(two(kn.x, ks) | two(kn.y, ks) << 16, two(kn.z, ks) | two(kn.w, ks) << 16);
  const uint32_t kpo = two(pe.x, ks) | two(pe.y, ks) << 16;
  const uint2 vo = make_uint2(two(vv.x, vs) | two(vv.y, vs) << 16, two(vv.z, vs) | two(vv.w, vs) << 16);
  if (ok) {
    uint8_t* krow = P.k_out + (t * uint32_t(P.ko_st) + head * uint32_t(P.ko_sh));
    vendor::store8(krow + lane * 8u, ko, false);
    vendor::store4(krow + UnitsT<Units::DS16S>::DN + lane * 4u, kpo, false);
    vendor::store8(P.v_out + (t * uint32_t(P.vo_st) + head * uint32_t(P.vo_sh) + lane * 8u), vo, false);
  }
  if constexpr (A != 0) {
    // balanced trees over the thread's 12 elements of K and 8 of V (zeros where !ok); joined with 0
    // last, so a thread of NaN only contributes 0
    const auto mag2 = [](uint32_t w) { return vendor::amax_join(fabsf(widen<T>(w, 0)), fabsf(widen<T>(w, 1))); };
    const auto mag8 = [&](uint4 q) {
      return vendor::amax_join(vendor::amax_join(mag2(q.x), mag2(q.y)), vendor::amax_join(mag2(q.z), mag2(q.w)));
    };
    const float ak = vendor::amax_join(0.0f, vendor::amax_join(mag8(kn), vendor::amax_join(mag2(pe.x), mag2(pe.y))));
    const float av = vendor::amax_join(0.0f, mag8(vv));
    tile_amax<A == 2>(P, ak, av, P.per_head ? int64_t(head) : int64_t(0));
  }
  pdl_exit(P);
}

// Any dims, any alignment: one element per thread and grid-stride, 64-bit indices. Element i of
// the numbering (rows r = t * h + head of d_nope + d_rope + d_v columns) converted and stored with
// its multiplier (per tensor ks / vs, or its head's); returns the input widened to fp32, its head
// and whether it is of V.
template <InType T, Fp8Format F>
MLAKV_DEVICE float general_element(const Params& P, int64_t i, float ks, float vs, int64_t* head, bool* is_v) {
  constexpr int E = Elem<T>::size;
  const int64_t w = int64_t(P.d_nope) + P.d_rope + P.d_v;
  const int64_t row = i / w, c = i - row * w;
  const int64_t t = row / P.h, hh = row - t * P.h;
  *head = hh;
  *is_v = c >= P.d_nope + P.d_rope;
  const char* src;
  uint8_t* dst;
  float m;
  if (c < P.d_nope) {
    src = P.k_nope + (t * P.kn_st + hh * P.kn_sh + c) * E;
    dst = P.k_out + t * P.ko_st + hh * P.ko_sh + c;
    m = ks;
  } else if (!*is_v) {
    src = P.k_pe + (t * P.kp_st + (c - P.d_nope)) * E;
    dst = P.k_out + t * P.ko_st + hh * P.ko_sh + c;
    m = ks;
  } else {
    const int64_t cv = c - P.d_nope - P.d_rope;
    src = P.v + (t * P.v_st + hh * P.v_sh + cv) * E;
    dst = P.v_out + t * P.vo_st + hh * P.vo_sh + cv;
    m = vs;
  }
  if (P.per_head) m = *is_v ? P.v_scale_inv_ptr[hh] : P.k_scale_inv_ptr[hh];
  float x;
  if (T == InType::FP32) x = *reinterpret_cast<const float*>(src);
  else x = widen<T>(*reinterpret_cast<const uint16_t*>(src), 0);
  *dst = uint8_t(vendor::encode2<F>(scale_mul(x, m), 0.0f) & 0xFFu);
  return x;
}

template <InType T, Fp8Format F>
MLAKV_DEVICE void general_plain(const Params& P) {
  float ks, vs;
  pdl_enter(P, &ks, &vs);
  const int64_t total = P.s * P.h * (int64_t(P.d_nope) + P.d_rope + P.d_v);
  int64_t head;
  bool is_v;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x)
    general_element<T, F>(P, i, ks, vs, &head, &is_v);
  pdl_exit(P);
}

// The general kernel's ext body: the loop runs while any lane of the warp has an element (the
// per-head reduction needs every lane).
template <InType T, Fp8Format F>
MLAKV_DEVICE void general_ext(const Params& P) {
  float ks, vs;
  pdl_enter(P, &ks, &vs);
  const AmaxSeen seen = P.per_head ? AmaxSeen() : amax_seen_block(P, 0);
  const int64_t w = int64_t(P.d_nope) + P.d_rope + P.d_v;
  const int64_t total = P.s * P.h * w;
  const int64_t lane = vendor::lane();  // the warp's first element is i - lane
  float ak = 0.0f, av = 0.0f;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i - lane < total; i += int64_t(gridDim.x) * blockDim.x) {
    const bool ok = i < total;
    int64_t hh = 0;
    bool is_v = false;
    const float x = ok ? general_element<T, F>(P, i, ks, vs, &hh, &is_v) : 0.0f;
    const float a = vendor::amax_join(0.0f, fabsf(x));
    if (!P.per_head) {
      if (is_v) av = av > a ? av : a;
      else ak = ak > a ? ak : a;
    } else if (P.k_amax || P.v_amax) {
      // the run of lanes of one (row, K or V) combines; its first lane commits where it belongs
      uint32_t mk = f32_bits(a);
      const bool first = segment_max<false>(ok ? uint32_t((i / w) * 2 + (is_v ? 1 : 0)) : 0xFFFFFFFFu, &mk, nullptr);
      float* dst_amax = is_v ? P.v_amax : P.k_amax;
      if (first && ok && dst_amax) amax_commit(dst_amax + hh, mk, vendor::amax_read(dst_amax + hh));
    }
  }
  if (!P.per_head) amax_flush(P, ak, av, 0, seen);
  pdl_exit(P);
}

template <InType T, Fp8Format F, bool X>
__global__ void pack_general(const Params P) {
  if constexpr (X) general_ext<T, F>(P);
  else general_plain<T, F>(P);
}

}  // namespace kern
}  // namespace mlakv
