// The GPU kernel bodies of mlakv, written once for CUDA and HIP. Include a vendor header first
// (src/cuda/vendor.cuh or src/hip/vendor_hip.h): it supplies MLAKV_DEVICE and mlakv::vendor::
// {grid_dependency_wait, launch_dependents, half_bits_to_float, encode2, load16, store16,
// store8, umulhi}.
//
// Work is cut into "units": VEC consecutive elements of one row segment (k_nope, k_pe or v of
// one (token, head) pair), read with 16-byte loads and written with one 16- or 8-byte store.
// A row has U = (D_nope + D_rope + D_v) / VEC units; unit u < UN is k_nope, u < UN + UR is
// the token's k_pe (read again for every head: it stays in L1/L2, DRAM sees it once), the rest
// is v. The variants differ only in how units are handed to threads:
//   tile2d  - grid (token blocks, heads): a block owns `block` tokens of one head (upstream's
//             2-D shape for tiny s);
//   flat    - 1-D grid over all s*h*U units, `threads * unroll` per block;
//   persist - flat's mapping with a grid of (SMs x waves) blocks striding over the chunks;
//   general - one element per thread, 64-bit indices: any dims, any alignment.
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

enum class Dims : int { DS = 0, V16 = 1, V8 = 2 };

struct Params {
  const char* k_nope;
  const char* k_pe;
  const char* v;
  uint8_t* k_out;
  uint8_t* v_out;
  // strides in elements
  int64_t kn_st, kn_sh, kp_st, v_st, v_sh, ko_st, ko_sh, vo_st, vo_sh;
  int64_t s;
  int32_t h, d_nope, d_rope, d_v;
  int32_t un, ur, u;  // units: k_nope, k_pe, whole row
  FastDiv div_u, div_h;
  uint32_t total_units;  // s * h * u (< 2^31 for the unit variants)
  int32_t unroll;        // units per thread (1..kMaxUnroll)
  int32_t block;         // tile2d: tokens per block
  int32_t early;         // PDL trigger at the start (1) or after the stores (0)
  float k_scale, v_scale;
  const float* k_scale_ptr;
  const float* v_scale_ptr;
};

constexpr int kMaxUnroll = 4;

template <Dims D>
struct DimsT {
  static constexpr int VEC = D == Dims::V8 ? 8 : 16;
};

template <InType T>
struct Elem {
  static constexpr int size = T == InType::FP32 ? 4 : 2;
};

template <InType T>
MLAKV_DEVICE float widen(uint32_t word, int half) {
  if (T == InType::BF16) return bits_f32(half ? (word & 0xFFFF0000u) : (word << 16));
  return vendor::half_bits_to_float(uint16_t(half ? (word >> 16) : (word & 0xFFFFu)));
}

template <Dims D>
MLAKV_DEVICE int units_nope(const Params& P) { return D == Dims::DS ? 8 : P.un; }
template <Dims D>
MLAKV_DEVICE int units_rope(const Params& P) { return D == Dims::DS ? 4 : P.ur; }
template <Dims D>
MLAKV_DEVICE uint32_t units_row(const Params& P) { return D == Dims::DS ? 20u : uint32_t(P.u); }

// Where unit u of row (t, hh) reads and writes, and which scale it uses.
template <InType T, Dims D>
MLAKV_DEVICE void locate(const Params& P, int64_t t, int64_t hh, int u, const char** src, uint8_t** dst,
                         bool* is_v) {
  constexpr int VEC = DimsT<D>::VEC;
  constexpr int E = Elem<T>::size;
  const int un = units_nope<D>(P), ur = units_rope<D>(P);
  const int dn = D == Dims::DS ? 128 : P.d_nope;
  if (u < un) {
    *src = P.k_nope + (t * P.kn_st + hh * P.kn_sh + int64_t(u) * VEC) * E;
    *dst = P.k_out + t * P.ko_st + hh * P.ko_sh + u * VEC;
    *is_v = false;
  } else if (u < un + ur) {
    const int c = u - un;
    *src = P.k_pe + (t * P.kp_st + int64_t(c) * VEC) * E;
    *dst = P.k_out + t * P.ko_st + hh * P.ko_sh + dn + c * VEC;
    *is_v = false;
  } else {
    const int c = u - un - ur;
    *src = P.v + (t * P.v_st + hh * P.v_sh + int64_t(c) * VEC) * E;
    *dst = P.v_out + t * P.vo_st + hh * P.vo_sh + c * VEC;
    *is_v = true;
  }
}

// Loads of one unit: VEC elements = VEC*E bytes = NL 16-byte words.
template <InType T, Dims D>
struct Unit {
  static constexpr int VEC = DimsT<D>::VEC;
  static constexpr int NL = VEC * Elem<T>::size / 16;
  uint4 w[NL];
};

template <InType T, Fp8Format F, Dims D>
MLAKV_DEVICE void convert_store(const Unit<T, D>& in, uint8_t* dst, float m) {
  constexpr int VEC = DimsT<D>::VEC;
  uint32_t out[VEC / 4];
  if (T == InType::FP32) {
#pragma unroll
    for (int j = 0; j < Unit<T, D>::NL; ++j) {
      const uint4 q = in.w[j];
      const uint32_t lo = vendor::encode2<F>(scale_mul(bits_f32(q.x), m), scale_mul(bits_f32(q.y), m));
      const uint32_t hi = vendor::encode2<F>(scale_mul(bits_f32(q.z), m), scale_mul(bits_f32(q.w), m));
      out[j] = lo | (hi << 16);
    }
  } else {
#pragma unroll
    for (int j = 0; j < Unit<T, D>::NL; ++j) {
      const uint4 q = in.w[j];
      const uint32_t words[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
      for (int k = 0; k < 2; ++k) {
        const uint32_t a = words[2 * k], b = words[2 * k + 1];
        const uint32_t lo = vendor::encode2<F>(scale_mul(widen<T>(a, 0), m), scale_mul(widen<T>(a, 1), m));
        const uint32_t hi = vendor::encode2<F>(scale_mul(widen<T>(b, 0), m), scale_mul(widen<T>(b, 1), m));
        out[2 * j + k] = lo | (hi << 16);
      }
    }
  }
  if (VEC == 16) vendor::store16(dst, make_uint4(out[0], out[1], out[2], out[3]));
  else vendor::store8(dst, make_uint2(out[0], out[1]));
}

MLAKV_DEVICE void read_scales(const Params& P, float* ks, float* vs) {
  *ks = P.k_scale_ptr ? *P.k_scale_ptr : P.k_scale;
  *vs = P.v_scale_ptr ? *P.v_scale_ptr : P.v_scale;
}

// Up to kMaxUnroll units per thread: all loads are issued before the first conversion.
// unit(i) gives the i-th unit's (token, head, u) or returns false when it is past the end.
template <InType T, Fp8Format F, Dims D, class UnitAt>
MLAKV_DEVICE void run_units(const Params& P, float ks, float vs, UnitAt unit_at) {
  Unit<T, D> in[kMaxUnroll];
  uint8_t* dst[kMaxUnroll];
  bool isv[kMaxUnroll], ok[kMaxUnroll];
#pragma unroll
  for (int i = 0; i < kMaxUnroll; ++i) {
    int64_t t = 0, hh = 0;
    int u = 0;
    ok[i] = i < P.unroll && unit_at(i, &t, &hh, &u);
    if (ok[i]) {
      const char* src;
      locate<T, D>(P, t, hh, u, &src, &dst[i], &isv[i]);
#pragma unroll
      for (int j = 0; j < Unit<T, D>::NL; ++j) in[i].w[j] = vendor::load16(src + 16 * j);
    }
  }
#pragma unroll
  for (int i = 0; i < kMaxUnroll; ++i)
    if (ok[i]) convert_store<T, F, D>(in[i], dst[i], isv[i] ? vs : ks);
}

// Flat mapping of a global unit index g to (token, head, u).
template <Dims D>
MLAKV_DEVICE bool flat_unit(const Params& P, uint32_t g, int64_t* t, int64_t* hh, int* u) {
  if (g >= P.total_units) return false;
  const uint32_t U = units_row<D>(P);
  const uint32_t row = D == Dims::DS ? g / 20u : P.div_u.div(g);
  *u = int(g - row * U);
  const uint32_t tt = P.div_h.div(row);
  *t = tt;
  *hh = row - tt * uint32_t(P.h);
  return true;
}

template <InType T, Fp8Format F, Dims D>
__global__ void pack_flat(const Params P) {
  if (P.early) vendor::launch_dependents();
  vendor::grid_dependency_wait();
  float ks, vs;
  read_scales(P, &ks, &vs);
  const uint32_t base = blockIdx.x * blockDim.x * uint32_t(P.unroll) + threadIdx.x;
  run_units<T, F, D>(P, ks, vs, [&](int i, int64_t* t, int64_t* hh, int* u) {
    return flat_unit<D>(P, base + uint32_t(i) * blockDim.x, t, hh, u);
  });
  if (!P.early) vendor::launch_dependents();
}

template <InType T, Fp8Format F, Dims D>
__global__ void pack_persist(const Params P) {
  if (P.early) vendor::launch_dependents();
  vendor::grid_dependency_wait();
  float ks, vs;
  read_scales(P, &ks, &vs);
  const uint32_t chunk = blockDim.x * uint32_t(P.unroll);
  const uint32_t nchunks = (P.total_units + chunk - 1) / chunk;
  for (uint32_t c = blockIdx.x; c < nchunks; c += gridDim.x) {
    const uint32_t base = c * chunk + threadIdx.x;
    run_units<T, F, D>(P, ks, vs, [&](int i, int64_t* t, int64_t* hh, int* u) {
      return flat_unit<D>(P, base + uint32_t(i) * blockDim.x, t, hh, u);
    });
  }
  if (!P.early) vendor::launch_dependents();
}

// blockIdx.x: a block of P.block tokens; blockIdx.y: the head.
template <InType T, Fp8Format F, Dims D>
__global__ void pack_tile2d(const Params P) {
  if (P.early) vendor::launch_dependents();
  vendor::grid_dependency_wait();
  float ks, vs;
  read_scales(P, &ks, &vs);
  const int64_t t0 = int64_t(blockIdx.x) * P.block;
  const int64_t ntok = P.s - t0 < P.block ? P.s - t0 : P.block;
  const uint32_t U = units_row<D>(P);
  const uint32_t n = uint32_t(ntok) * U;
  const int64_t hh = blockIdx.y;
  for (uint32_t base = threadIdx.x; base < n; base += blockDim.x * uint32_t(P.unroll)) {
    run_units<T, F, D>(P, ks, vs, [&](int i, int64_t* t, int64_t* h_out, int* u) {
      const uint32_t l = base + uint32_t(i) * blockDim.x;
      if (l >= n) return false;
      const uint32_t tl = D == Dims::DS ? l / 20u : P.div_u.div(l);
      *u = int(l - tl * U);
      *t = t0 + tl;
      *h_out = hh;
      return true;
    });
  }
  if (!P.early) vendor::launch_dependents();
}

// Any dims, any alignment: one element per thread and grid-stride, 64-bit indices.
template <InType T, Fp8Format F>
__global__ void pack_general(const Params P) {
  if (P.early) vendor::launch_dependents();
  vendor::grid_dependency_wait();
  float ks, vs;
  read_scales(P, &ks, &vs);
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
  if (!P.early) vendor::launch_dependents();
}

}  // namespace kern
}  // namespace mlakv
