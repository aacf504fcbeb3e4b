// Shared by the GPU stress programs (stress.cu, multigpu.cu): random calls of mixed shapes, types,
// layouts, PDL modes, scale kinds, streams and CUDA graphs, run on the CUDA backend in batches
// (several calls in flight before a synchronisation) and compared byte for byte, padding and
// guard bytes included, with mlakv_pack_fp8 on MLAKV_BACKEND_REFERENCE over host copies of the
// same inputs (the outputs of both sides poisoned with the same byte first).
//
// A Worker belongs to one host thread. It owns two non-blocking streams, two events and a slab of
// device memory on each device it uses; the tensors of a batch are carved out of the slab (like a
// framework's caching allocator), so a batch allocates nothing and never synchronises the device
// until its calls are all in flight.
//
// One batch:
//   1. upload: every call's inputs (and device scales), one image per round, from host memory;
//   2. issue: the calls in a random interleaving, each round: poison the outputs (memset), bring in
//      the round's inputs and scales (device-to-device copies from the images), pack, snapshot the
//      outputs (device-to-device); a repeated call has byte-identical arguments each round (the
//      library's per-thread fast path); a graph group is captured once (optionally forked across
//      both streams) and replayed once a round, its device scales changed between replays;
//   3. synchronise both streams, copy every round's outputs back;
//   4. run the reference on every round's host inputs and compare every byte.
#pragma once

#include <cuda_runtime.h>
#include <mlakv/mlakv.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "test_util.h"  // tu::Rng, the input conversions (to_raw), the FP8 format definitions

namespace stress {

// ---- failures: the first one is kept with its description; every worker stops at its next check
struct Failures {
  std::mutex mu;
  std::atomic<bool> stop{false};
  std::atomic<long> count{0};
  std::string first;
  void add(const std::string& what) {
    count.fetch_add(1);
    std::lock_guard<std::mutex> lock(mu);
    if (first.empty()) first = what;
    stop.store(true);
  }
};
inline Failures& failures() {
  static Failures f;
  return f;
}

inline const char* pdl_name(int p) { return p == MLAKV_PDL_ON ? "on" : p == MLAKV_PDL_OFF ? "off" : "auto"; }
inline int esize(mlakv_dtype d) { return d == MLAKV_DTYPE_FP32 ? 4 : 2; }

// ---- input values: per input dtype a pool of 65536 raw values, drawn once from a fixed seed:
// normals over a wide range of magnitudes (so that after the scale they reach underflow, the
// subnormals and saturation of every format), special values, exact FP8 values and midpoints
// between neighbouring codes (ties for a scale of 1), and arbitrary bit patterns (NaN payloads,
// input subnormals)
inline std::vector<uint32_t> make_pool(mlakv_dtype d) {
  tu::Rng r(0x9e11 + uint64_t(d));
  static const double specials[] = {0.0, -0.0, HUGE_VAL, -HUGE_VAL, NAN, 448.0, -448.0, 480.0, 464.0, 240.0, 248.0,
                                    57344.0, 61440.0, 65504.0, -65504.0, 1e-7, -3e-6, 0.0009765625, 0.00146484375,
                                    1.0625, 1.1875, 0x1p-149, 0x1p-126, 0x1p-24, 0x1p-14, 3.4e38, -3.4e38, 1.0, -1.0};
  const tu::Fp8Oracle oracles[4] = {tu::Fp8Oracle(MLAKV_DTYPE_E4M3FN), tu::Fp8Oracle(MLAKV_DTYPE_E5M2),
                                    tu::Fp8Oracle(MLAKV_DTYPE_E4M3FNUZ), tu::Fp8Oracle(MLAKV_DTYPE_E5M2FNUZ)};
  std::vector<uint32_t> pool(65536);
  for (uint32_t& raw : pool) {
    const uint64_t u = r.below(100);
    if (u < 70) {  // a normal deviate times 2^k, k in [-10, 6]
      const double u1 = (double(r.next() >> 11) + 1.0) * 0x1p-53, u2 = double(r.next() >> 11) * 0x1p-53;
      const double g = std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
      raw = tu::to_raw(d, std::ldexp(g, int(r.range(-10, 6))));
    } else if (u < 80) {
      const double v = specials[r.below(sizeof specials / sizeof specials[0])];
      raw = tu::to_raw(d, r.below(2) ? v : v * 0.0375);
    } else if (u < 90) {  // an FP8 value or the midpoint above it, either sign
      const std::vector<double>& vals = oracles[r.below(4)].positive_values();
      const size_t j = size_t(r.below(vals.size() - 1));
      const double v = r.below(2) ? vals[j] : (vals[j] + vals[j + 1]) / 2;
      raw = tu::to_raw(d, r.below(2) ? -v : v);
    } else {
      raw = d == MLAKV_DTYPE_FP32 ? r.u32() : (r.u32() & 0xFFFFu);
    }
  }
  return pool;
}
inline const std::vector<uint32_t>& value_pool(mlakv_dtype d) {
  static const std::vector<uint32_t> pools[3] = {make_pool(MLAKV_DTYPE_BF16), make_pool(MLAKV_DTYPE_FP16),
                                                 make_pool(MLAKV_DTYPE_FP32)};
  return pools[d - MLAKV_DTYPE_BF16];
}
// Fills n elements of dtype d at dst (every byte of a buffer, padding included).
inline void fill_random(uint8_t* dst, size_t n, mlakv_dtype d, tu::Rng& r) {
  const uint32_t* pool = value_pool(d).data();
  if (d == MLAKV_DTYPE_FP32) {
    for (size_t i = 0; i < n; i += 4) {
      const uint64_t x = r.next();
      for (size_t k = 0; k < 4 && i + k < n; ++k) std::memcpy(dst + (i + k) * 4, &pool[(x >> (16 * k)) & 0xFFFF], 4);
    }
  } else {
    for (size_t i = 0; i < n; i += 4) {
      const uint64_t x = r.next();
      for (size_t k = 0; k < 4 && i + k < n; ++k) {
        const uint16_t v = uint16_t(pool[(x >> (16 * k)) & 0xFFFF]);
        std::memcpy(dst + (i + k) * 2, &v, 2);
      }
    }
  }
}

// A scale multiplier: mostly 1/scale for a typical KV scale, sometimes 1, a power of two, or an
// extreme (0, an fp32 subnormal, huge, infinite).
inline float random_scale(tu::Rng& r) {
  const uint64_t u = r.below(100);
  if (u < 65) return 1.0f / (0.004f + 0.1f * float(r.below(1 << 20)) / float(1 << 20));
  if (u < 77) return 1.0f;
  if (u < 92) return std::ldexp(1.0f, int(r.range(-12, 12)));
  static const float extremes[] = {0.0f, 1e-40f, 3e-3f, 3000.0f, 3.0e38f, INFINITY, 0.0375f, 448.0f};
  return r.pick(extremes);
}

// ---- one call's description ------------------------------------------------------------------------
enum Layout { kContiguous, kFusedKV, kStrided, kTransposed, kBroadcast, kMisaligned, kLayoutCount };
inline const char* layout_name(int l) {
  static const char* n[kLayoutCount] = {"contiguous", "fused-kv", "strided", "head-major", "broadcast", "misaligned"};
  return n[l];
}

struct Spec {
  int64_t s = 1, h = 1, dn = 128, dr = 64, dv = 128;
  mlakv_dtype in = MLAKV_DTYPE_BF16, out = MLAKV_DTYPE_E4M3FN;
  int layout = kContiguous;
  bool kv_fused = false;   // k_nope and v in one buffer
  bool pe3 = true;         // k_pe [s, 1, dr] (else [s, dr])
  int64_t pe_head_stride = 0;  // k_pe's stride over its extent-1 head dim (never used by the library)
  bool out_fused = false;  // k_out and v_out in one buffer [.., dn + dr + dv]
  // strides in elements (outputs: bytes = elements)
  int64_t kn_st = 0, kn_sh = 0, v_st = 0, v_sh = 0, pe_st = 0, ko_st = 0, ko_sh = 0, vo_st = 0, vo_sh = 0;
  // each view's first element from its buffer's start: inputs in elements, outputs in bytes
  int64_t kn_off = 0, v_off = 0, pe_off = 0, ko_off = 0, vo_off = 0;
  int64_t slack = 0;  // elements / bytes past the last one any view reaches
  // buffer sizes: inputs in elements, outputs in bytes (v_elems = 0 with kv_fused, vo_bytes = 0 with out_fused)
  int64_t kn_elems = 0, v_elems = 0, pe_elems = 0, ko_bytes = 0, vo_bytes = 0;
  int pdl = MLAKV_PDL_AUTO;
  bool dev_scale = false;
  float ks = 1.0f, vs = 1.0f;
  mlakv_backend backend = MLAKV_BACKEND_CUDA;
  uint32_t flags = 0;
  int stream = 0;  // 0 or 1: which of the worker's streams on its device
  int device = 0;

  int64_t dk() const { return dn + dr; }
  int64_t in_bytes() const { return (kn_elems + v_elems + pe_elems) * esize(in); }
  int64_t out_bytes() const { return ko_bytes + vo_bytes; }
  std::string describe() const {
    std::ostringstream o;
    o << "s=" << s << " h=" << h << " dims=" << dn << "," << dr << "," << dv << " " << tu::dtype_name(in) << "->"
      << tu::dtype_name(out) << " layout=" << layout_name(layout) << (kv_fused ? " kv-in-one-buffer" : "")
      << (out_fused ? " k_out+v_out-in-one-buffer" : "") << " k_pe=" << (pe3 ? "3d" : "2d")
      << " | strides (elements) k_nope [" << kn_st << ", " << kn_sh << "] v [" << v_st << ", " << v_sh << "] k_pe ["
      << pe_st << "] k_out [" << ko_st << ", " << ko_sh << "] v_out [" << vo_st << ", " << vo_sh << "]"
      << " | offsets k_nope +" << kn_off << " v +" << v_off << " k_pe +" << pe_off << " (elements), k_out +" << ko_off
      << " v_out +" << vo_off << " (bytes) | pdl=" << pdl_name(pdl) << " scales=" << (dev_scale ? "device" : "host")
      << " backend=" << (backend == MLAKV_BACKEND_AUTO ? "auto" : "cuda")
      << ((flags & MLAKV_FLAG_TRUST_POINTERS) ? "+trust-pointers" : "") << " device=" << device << " stream=" << stream;
    return o.str();
  }
};

// Elements from a view's first element to one past its last: n_t x n_h rows of `row` elements.
inline int64_t span(int64_t n_t, int64_t n_h, int64_t st, int64_t sh, int64_t row) {
  return (n_t - 1) * st + (n_h - 1) * sh + row;
}

// Buffer sizes from the strides and offsets.
inline void finish_sizes(Spec& c) {
  const int64_t s = c.s, h = c.h;
  const int64_t kn_end = c.kn_off + span(s, h, c.kn_st, c.kn_sh, c.dn), v_end = c.v_off + span(s, h, c.v_st, c.v_sh, c.dv);
  if (c.kv_fused) {
    c.kn_elems = std::max(kn_end, v_end) + c.slack;
    c.v_elems = 0;
  } else {
    c.kn_elems = kn_end + c.slack;
    c.v_elems = v_end + c.slack;
  }
  c.pe_elems = c.pe_off + span(s, 1, c.pe_st, 0, c.dr) + c.slack;
  const int64_t ko_end = c.ko_off + span(s, h, c.ko_st, c.ko_sh, c.dk()), vo_end = c.vo_off + span(s, h, c.vo_st, c.vo_sh, c.dv);
  if (c.out_fused) {
    c.ko_bytes = std::max(ko_end, vo_end) + c.slack;
    c.vo_bytes = 0;
  } else {
    c.ko_bytes = ko_end + c.slack;
    c.vo_bytes = vo_end + c.slack;
  }
}

// Strides and offsets for layout L (shapes, types already set).
inline void set_layout(Spec& c, int L, tu::Rng& r) {
  static const int64_t pads[] = {1, 2, 3, 4, 8, 16, 24, 64};
  const int64_t s = c.s, h = c.h, dn = c.dn, dr = c.dr, dv = c.dv, dk = c.dk();
  c.layout = L;
  c.kv_fused = L == kFusedKV || ((L == kStrided || L == kMisaligned || L == kTransposed) && r.below(2));
  c.pe3 = r.below(2) != 0;
  c.pe_head_stride = r.below(2) ? dr : int64_t(r.below(3)) * 7;
  c.out_fused = r.below(4) == 0;
  int64_t row_pad = 0, tok_pad = 0, pe_pad = 0, orow_pad = 0, otok_pad = 0;
  if (L == kStrided) {
    row_pad = r.pick(pads);
    tok_pad = r.below(2) ? r.pick(pads) : 0;
    pe_pad = r.pick(pads);
    orow_pad = r.below(3) ? r.pick(pads) : 0;
    otok_pad = r.below(2) ? r.pick(pads) : 0;
  } else if (L == kTransposed) {
    row_pad = r.below(2) ? r.pick(pads) : 0;
    tok_pad = r.below(2) ? r.pick(pads) : 0;
    orow_pad = r.below(2) ? r.pick(pads) : 0;
    otok_pad = r.below(2) ? r.pick(pads) : 0;
  } else if (L == kMisaligned && r.below(3) == 0) {
    row_pad = 1;  // odd row strides on top of the odd base pointers
    orow_pad = r.range(1, 3);
  }
  // inputs: token-major [s, h, d] rows, or head-major [h, s, d] ones (head stride > token stride)
  const bool in_head_major = L == kTransposed && r.below(3) != 0;
  if (c.kv_fused) {
    const int64_t w = dn + dv + row_pad;
    if (in_head_major) { c.kn_st = w; c.kn_sh = s * w + tok_pad; }
    else { c.kn_sh = w; c.kn_st = h * w + tok_pad; }
    c.v_st = c.kn_st;
    c.v_sh = c.kn_sh;
    const bool v_first = r.below(4) == 0;
    c.kn_off = v_first ? dv : 0;
    c.v_off = v_first ? 0 : dn;
  } else {
    if (in_head_major) {
      c.kn_st = dn + row_pad; c.kn_sh = s * c.kn_st + tok_pad;
      c.v_st = dv + row_pad; c.v_sh = s * c.v_st + tok_pad;
    } else {
      c.kn_sh = dn + row_pad; c.kn_st = h * c.kn_sh + tok_pad;
      c.v_sh = dv + row_pad; c.v_st = h * c.v_sh + tok_pad;
    }
    c.kn_off = c.v_off = 0;
  }
  c.pe_st = dr + pe_pad;
  c.pe_off = 0;
  if (L == kBroadcast) {  // stride 0: one k_nope / v row for every head, one k_pe vector for every token
    const uint64_t which = 1 + r.below(7);
    if (which & 1) c.kn_sh = 0;
    if (which & 2) c.v_sh = 0;
    if (which & 4) c.pe_st = 0;
  }
  // outputs: token-major, or head-major in the head-major layout
  const bool out_head_major = L == kTransposed && r.below(2) != 0;
  if (c.out_fused) {
    const int64_t w = dk + dv + orow_pad;
    if (out_head_major) { c.ko_st = w; c.ko_sh = s * w + otok_pad; }
    else { c.ko_sh = w; c.ko_st = h * w + otok_pad; }
    c.vo_st = c.ko_st;
    c.vo_sh = c.ko_sh;
    c.ko_off = 0;
    c.vo_off = dk;
  } else {
    if (out_head_major) {
      c.ko_st = dk + orow_pad; c.ko_sh = s * c.ko_st + otok_pad;
      c.vo_st = dv + orow_pad; c.vo_sh = s * c.vo_st + otok_pad;
    } else {
      c.ko_sh = dk + orow_pad; c.ko_st = h * c.ko_sh + otok_pad;
      c.vo_sh = dv + orow_pad; c.vo_st = h * c.vo_sh + otok_pad;
    }
    c.ko_off = c.vo_off = 0;
  }
  if (L == kMisaligned) {  // base pointers off every alignment but their element's
    const int64_t m = r.range(1, 7);
    c.kn_off += m;
    c.v_off += c.kv_fused ? m : r.range(1, 7);
    c.pe_off += r.range(1, 7);
    const int64_t mo = r.range(1, 15);
    c.ko_off += mo;
    c.vo_off += c.out_fused ? mo : r.range(1, 15);
  }
  c.slack = r.below(3) == 0 ? r.range(1, 64) : 0;
  finish_sizes(c);
}

struct Limits {
  int64_t max_s = 8192;
  int64_t max_sxh = 131072;  // s*h at DeepSeek dims; other dims: the same number of elements
};

// Picks s in [1, max_s]: small ones, sizes around powers of two and the table's bands, and a
// log-uniform spread.
inline int64_t random_s(tu::Rng& r, int64_t max_s) {
  static const int64_t special[] = {1, 2, 3, 7, 8, 9, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256, 257, 383, 384,
                                    385, 511, 512, 1000, 1023, 1024, 2047, 2048, 4095, 4096, 4097, 8191, 8192};
  const uint64_t u = r.below(100);
  int64_t s;
  if (u < 25) s = r.range(1, 16);
  else if (u < 45) s = r.pick(special);
  else s = int64_t(std::llround(std::exp(double(r.below(1 << 20)) / double(1 << 20) * std::log(double(max_s)))));
  return std::min(std::max<int64_t>(s, 1), max_s);
}

// Fits s*h under the limit: smaller h first, then smaller s.
inline void cap_size(Spec& c, const Limits& lim) {
  static const int64_t hs[] = {128, 16, 2, 1};
  const int64_t cap = std::max<int64_t>(1, lim.max_sxh * 320 / (c.dn + c.dr + c.dv));
  for (int64_t hh : hs)
    if (c.s * c.h > cap && c.h > hh) c.h = hh;
  if (c.s * c.h > cap) c.s = std::max<int64_t>(1, cap / c.h);
}

// A random call (s and h forced when > 0).
inline Spec random_spec(tu::Rng& r, const Limits& lim, int device, int64_t force_s = 0, int64_t force_h = 0) {
  struct D { int64_t dn, dr, dv; };
  static const D other_dims[] = {{16, 8, 24}, {1, 1, 1}, {64, 32, 64}, {8, 8, 8}, {5, 3, 7}, {96, 48, 80},
                                 {24, 8, 16}, {32, 16, 32}, {512, 64, 128}, {128, 64, 64}};
  static const int64_t hs[] = {1, 2, 16, 16, 128, 128};
  Spec c;
  c.device = device;
  if (r.below(100) >= 72) {
    const D d = r.pick(other_dims);
    // forced sizes are not capped: no dims wider than DeepSeek's there
    if (!(force_s > 0 && force_h > 0 && d.dn + d.dr + d.dv > 320)) { c.dn = d.dn; c.dr = d.dr; c.dv = d.dv; }
  }
  c.s = force_s > 0 ? force_s : random_s(r, lim.max_s);
  c.h = force_h > 0 ? force_h : r.pick(hs);
  if (force_s <= 0 || force_h <= 0) cap_size(c, lim);
  c.in = tu::kInputDtypes[r.below(3)];
  c.out = tu::kFp8Dtypes[r.below(4)];
  static const int layouts[] = {kContiguous, kContiguous, kContiguous, kFusedKV, kFusedKV, kStrided, kStrided,
                                kTransposed, kBroadcast, kMisaligned, kMisaligned};
  set_layout(c, r.pick(layouts), r);
  static const int pdls[] = {MLAKV_PDL_AUTO, MLAKV_PDL_ON, MLAKV_PDL_ON, MLAKV_PDL_OFF, MLAKV_PDL_OFF};
  c.pdl = r.pick(pdls);
  c.dev_scale = r.below(5) < 2;
  c.ks = random_scale(r);
  c.vs = random_scale(r);
  c.backend = r.below(10) < 7 ? MLAKV_BACKEND_CUDA : MLAKV_BACKEND_AUTO;
  c.flags = r.below(7) == 0 ? MLAKV_FLAG_TRUST_POINTERS : 0u;
  c.stream = int(r.below(2));
  return c;
}

// The call's arguments over buffers (GPU: device buffers and the scale pointer; reference: host
// buffers and host-float scales).
inline mlakv_pack_args make_args(const Spec& c, uint8_t* kn_buf, uint8_t* v_buf, uint8_t* pe_buf, uint8_t* ko_buf,
                                 uint8_t* vo_buf, const float* scale_ptr, float ks, float vs, bool gpu, void* stream) {
  const int e = esize(c.in);
  mlakv_pack_args a = MLAKV_PACK_ARGS_INIT;
  uint8_t* vb = c.kv_fused ? kn_buf : v_buf;
  uint8_t* vob = c.out_fused ? ko_buf : vo_buf;
  a.k_nope = tu::tensor3(kn_buf + c.kn_off * e, c.in, c.s, c.h, c.dn, c.kn_st, c.kn_sh);
  a.v = tu::tensor3(vb + c.v_off * e, c.in, c.s, c.h, c.dv, c.v_st, c.v_sh);
  if (c.pe3) a.k_pe = tu::tensor3(pe_buf + c.pe_off * e, c.in, c.s, 1, c.dr, c.pe_st, c.pe_head_stride);
  else a.k_pe = tu::tensor2(pe_buf + c.pe_off * e, c.in, c.s, c.dr, c.pe_st);
  a.k_out = tu::tensor3(ko_buf + c.ko_off, c.out, c.s, c.h, c.dk(), c.ko_st, c.ko_sh);
  a.v_out = tu::tensor3(vob + c.vo_off, c.out, c.s, c.h, c.dv, c.vo_st, c.vo_sh);
  if (gpu) {
    if (c.dev_scale) {
      a.k_scale_inv_ptr = scale_ptr;
      a.v_scale_inv_ptr = scale_ptr + 1;
    } else {
      a.k_scale_inv = ks;
      a.v_scale_inv = vs;
    }
    a.backend = c.backend;
    a.device = c.device;
    a.stream = stream;
    a.pdl = c.pdl;
    a.flags = c.flags;
  } else {
    a.k_scale_inv = ks;
    a.v_scale_inv = vs;
    a.backend = MLAKV_BACKEND_REFERENCE;
  }
  return a;
}

// Where byte `off` of an output view lies: "token t, head j, element e", or "" if in no row.
inline std::string locate(int64_t off, const Spec& c, int64_t st, int64_t sh, int64_t row, int64_t* t_out,
                          int64_t* j_out, int64_t* e_out) {
  if (off < 0) return "";
  for (int64_t t = 0; t < c.s; ++t) {
    const int64_t rem = off - t * (c.s > 1 ? st : 0);
    if (rem < 0) break;
    for (int64_t j = 0; j < c.h; ++j) {
      const int64_t e = rem - j * (c.h > 1 ? sh : 0);
      if (e < 0) break;
      if (e < row) {
        *t_out = t; *j_out = j; *e_out = e;
        return "token " + std::to_string(t) + ", head " + std::to_string(j) + ", element " + std::to_string(e);
      }
      if (c.h <= 1 || sh == 0) break;
    }
    if (c.s <= 1 || st == 0) break;
  }
  return "";
}

// ---- statistics ---------------------------------------------------------------------------------------
struct Count {
  uint64_t calls = 0, bytes = 0;
};
struct Stats {
  std::map<std::string, std::map<std::string, Count>> by;  // dimension -> value -> count
  uint64_t batches = 0, pack_calls = 0, captured_calls = 0, graphs = 0, graph_launches = 0, reference_calls = 0;
  uint64_t executions = 0, bytes_checked = 0;
  void add(const std::string& dim, const std::string& val, uint64_t bytes) {
    Count& c = by[dim][val];
    c.calls += 1;
    c.bytes += bytes;
  }
  void merge(const Stats& o) {
    for (const auto& d : o.by)
      for (const auto& v : d.second) {
        Count& c = by[d.first][v.first];
        c.calls += v.second.calls;
        c.bytes += v.second.bytes;
      }
    batches += o.batches; pack_calls += o.pack_calls; captured_calls += o.captured_calls; graphs += o.graphs;
    graph_launches += o.graph_launches; reference_calls += o.reference_calls; executions += o.executions;
    bytes_checked += o.bytes_checked;
  }
};
inline std::string human_bytes(double b) {
  char buf[32];
  if (b >= 1e9) std::snprintf(buf, sizeof buf, "%.2f GB", b / 1e9);
  else if (b >= 1e6) std::snprintf(buf, sizeof buf, "%.1f MB", b / 1e6);
  else if (b >= 1e3) std::snprintf(buf, sizeof buf, "%.1f kB", b / 1e3);
  else std::snprintf(buf, sizeof buf, "%.0f B", b);
  return buf;
}
inline void print_stats(const Stats& s, const char* prog) {
  std::printf("%s: %llu batches, %llu CUDA pack calls (%llu direct, %llu captured into %llu graphs, launched %llu "
              "times), %llu reference calls\n",
              prog, (unsigned long long)s.batches, (unsigned long long)(s.pack_calls + s.captured_calls),
              (unsigned long long)s.pack_calls, (unsigned long long)s.captured_calls, (unsigned long long)s.graphs,
              (unsigned long long)s.graph_launches, (unsigned long long)s.reference_calls);
  std::printf("%s: %llu executions checked, %s of output compared byte for byte\n", prog,
              (unsigned long long)s.executions, human_bytes(double(s.bytes_checked)).c_str());
  std::printf("%s: by category (executions checked, bytes compared):\n", prog);
  static const char* order[] = {"mode", "layout", "in", "out", "dims", "h", "s", "pdl", "scales", "backend", "stream",
                                "k_pe", "outputs", "device"};
  for (const char* dim : order) {
    auto it = s.by.find(dim);
    if (it == s.by.end()) continue;
    std::string line = std::string("  ") + dim + ":";
    for (const auto& v : it->second)
      line += " " + v.first + " " + std::to_string(v.second.calls) + " (" + human_bytes(double(v.second.bytes)) + ")";
    std::printf("%s\n", line.c_str());
  }
}

inline std::string s_bucket(int64_t s) {
  return s <= 8 ? "1-8" : s <= 64 ? "9-64" : s <= 512 ? "65-512" : s <= 2048 ? "513-2048" : "2049-8192";
}

// ---- the worker ------------------------------------------------------------------------------------------
struct WorkerOptions {
  Limits limits;
  size_t slab_bytes = size_t(1536) << 20;  // per device
  int max_calls = 8;                       // calls (slots) a batch
  int graph_percent = 20;                  // groups captured into a graph
  int repeat_percent = 25;                 // direct calls repeated with identical arguments
  int layer_loop_percent = 20;             // batches of one geometry on different buffers (plans rebound)
  bool switch_device = false;              // make another of the worker's devices current around calls
};

class Worker {
 public:
  // One call of a batch: its spec, rounds, device buffers and host images.
  struct Slot {
    Spec c;
    int rounds = 1, group = -1;
    std::string mode;
    uint8_t *d_kn = nullptr, *d_v = nullptr, *d_pe = nullptr, *d_ko = nullptr, *d_vo = nullptr;
    float* d_sc = nullptr;
    std::vector<uint8_t*> img_kn, img_v, img_pe, snap_ko, snap_vo;  // per round (images: r >= 1, snapshots: r < last)
    std::vector<float*> img_sc;
    std::vector<std::vector<uint8_t>> h_kn, h_v, h_pe, g_ko, g_vo;  // per round
    std::vector<float> ks, vs;
    std::vector<uint8_t> poison;
  };

  Worker(int id, std::vector<int> devices, uint64_t seed, WorkerOptions opt)
      : id_(id), devices_(std::move(devices)), rng_(seed), opt_(opt) {}
  ~Worker() { release(); }
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  const Stats& stats() const { return stats_; }
  tu::Rng& rng() { return rng_; }
  const std::vector<int>& devices() const { return devices_; }
  const WorkerOptions& options() const { return opt_; }

  // Streams, events and a slab on each device. false (with a failure recorded) on a CUDA error.
  bool init() {
    for (int d : devices_) {
      Dev dv;
      dv.device = d;
      if (!ck(cudaSetDevice(d), "cudaSetDevice")) return false;
      for (int i = 0; i < 2; ++i) {
        if (!ck(cudaStreamCreateWithFlags(&dv.st[i], cudaStreamNonBlocking), "cudaStreamCreateWithFlags")) return false;
        if (!ck(cudaEventCreateWithFlags(&dv.ev[i], cudaEventDisableTiming), "cudaEventCreateWithFlags")) return false;
      }
      size_t free_b = 0, total_b = 0;
      if (!ck(cudaMemGetInfo(&free_b, &total_b), "cudaMemGetInfo")) return false;
      dv.slab_bytes = std::min(opt_.slab_bytes, free_b / 4);
      void* p = nullptr;
      if (!ck(cudaMalloc(&p, dv.slab_bytes), "cudaMalloc (slab)")) return false;
      dv.slab = static_cast<uint8_t*>(p);
      devs_.push_back(dv);
    }
    return true;
  }
  void release() {
    for (Dev& d : devs_) {
      cudaSetDevice(d.device);
      for (int i = 0; i < 2; ++i) {
        if (d.st[i]) cudaStreamDestroy(d.st[i]);
        if (d.ev[i]) cudaEventDestroy(d.ev[i]);
      }
      if (d.slab) cudaFree(d.slab);
    }
    devs_.clear();
  }

  // A random batch on the worker's devices.
  bool run_random_batch() {
    std::vector<Spec> specs;
    const int n = 1 + int(rng_.below(uint64_t(opt_.max_calls)));
    const bool layer_loop = int(rng_.below(100)) < opt_.layer_loop_percent;
    for (int i = 0; i < n; ++i) {
      const int dev = devices_[rng_.below(devices_.size())];
      if (layer_loop && i > 0) specs.push_back(layer_clone(specs[0]));
      else specs.push_back(random_spec(rng_, opt_.limits, dev));
    }
    return run_batch(specs, layer_loop ? "layer-loop" : nullptr);
  }

  // A batch of the given calls (grouping, rounds and graphs chosen here).
  bool run_batch(std::vector<Spec> specs, const char* tag = nullptr) {
    if (failures().stop.load()) return false;
    stats_.batches++;
    ++batch_;
    for (Dev& d : devs_) d.used = 0;
    // ---- plan the groups and their device memory
    slots_.clear();
    groups_.clear();
    size_t i = 0;
    while (i < specs.size()) {
      Group g;
      g.device = specs[i].device;
      g.graph = int(rng_.below(100)) < opt_.graph_percent;
      size_t take = 1;
      if (g.graph) {  // 1-4 calls of the same device, captured on one stream, maybe forked to the other
        take = 1 + size_t(rng_.below(4));
        g.fork = take > 1 && rng_.below(2);
        g.stream = int(rng_.below(2));
        g.rounds = 2 + int(rng_.below(2));
      } else {
        g.rounds = int(rng_.below(100)) < opt_.repeat_percent ? 2 + int(rng_.below(2)) : 1;
      }
      for (size_t k = 0; k < take && i < specs.size(); ++k, ++i) {
        if (specs[i].device != g.device) break;
        Slot sl;
        sl.c = specs[i];
        if (g.graph) sl.c.stream = g.fork ? (g.stream + int(k)) % 2 : g.stream;
        sl.rounds = g.rounds;
        sl.group = int(groups_.size());
        sl.mode = g.graph ? (g.fork ? "graph-2-streams" : "graph") : g.rounds > 1 ? "repeat" : "direct";
        if (tag) sl.mode += std::string("+") + tag;
        if (!carve(sl)) {
          // the slab is full: the group's first call alone, direct, once; else end the group here
          if (k > 0 || sl.rounds == 1) break;
          g.graph = g.fork = false;
          g.rounds = sl.rounds = 1;
          take = 1;
          sl.c.stream = specs[i].stream;
          sl.mode = std::string("direct") + (tag ? std::string("+") + tag : "");
          if (!carve(sl)) break;
        }
        g.slots.push_back(int(slots_.size()));
        slots_.push_back(std::move(sl));
      }
      if (g.slots.empty()) {
        if (slots_.empty()) return fail("a call does not fit in the device slab: " + specs[i].describe());
        break;  // slab full
      }
      if (g.graph) g.rounds = slots_[size_t(g.slots[0])].rounds;
      groups_.push_back(g);
    }
    // ---- 1. host inputs of every round, uploaded (round 0 in place, later rounds to their images)
    for (Slot& sl : slots_) {
      if (!set_device(sl.c.device)) return false;
      const Spec& c = sl.c;
      sl.h_kn.resize(size_t(sl.rounds));
      sl.h_v.resize(size_t(sl.rounds));
      sl.h_pe.resize(size_t(sl.rounds));
      sl.ks.resize(size_t(sl.rounds));
      sl.vs.resize(size_t(sl.rounds));
      sl.poison.resize(size_t(sl.rounds));
      for (int r = 0; r < sl.rounds; ++r) {
        const size_t e = size_t(esize(c.in));
        sl.h_kn[size_t(r)].resize(size_t(c.kn_elems) * e);
        sl.h_v[size_t(r)].resize(size_t(c.v_elems) * e);
        sl.h_pe[size_t(r)].resize(size_t(c.pe_elems) * e);
        fill_random(sl.h_kn[size_t(r)].data(), size_t(c.kn_elems), c.in, rng_);
        fill_random(sl.h_v[size_t(r)].data(), size_t(c.v_elems), c.in, rng_);
        fill_random(sl.h_pe[size_t(r)].data(), size_t(c.pe_elems), c.in, rng_);
        // host scales are part of the arguments (the same every round); device scales change
        sl.ks[size_t(r)] = c.dev_scale && r > 0 ? random_scale(rng_) : c.ks;
        sl.vs[size_t(r)] = c.dev_scale && r > 0 ? random_scale(rng_) : c.vs;
        static const uint8_t poisons[] = {tu::kPoison, tu::kPoison, 0x00, 0xFF, 0x7F, 0x80};
        sl.poison[size_t(r)] = rng_.below(5) ? rng_.pick(poisons) : uint8_t(rng_.next());
        uint8_t* kn = r == 0 ? sl.d_kn : sl.img_kn[size_t(r)];
        uint8_t* v = r == 0 ? sl.d_v : sl.img_v[size_t(r)];
        uint8_t* pe = r == 0 ? sl.d_pe : sl.img_pe[size_t(r)];
        if (!ck(cudaMemcpy(kn, sl.h_kn[size_t(r)].data(), sl.h_kn[size_t(r)].size(), cudaMemcpyHostToDevice), "upload k_nope")) return false;
        if (c.v_elems && !ck(cudaMemcpy(v, sl.h_v[size_t(r)].data(), sl.h_v[size_t(r)].size(), cudaMemcpyHostToDevice), "upload v")) return false;
        if (!ck(cudaMemcpy(pe, sl.h_pe[size_t(r)].data(), sl.h_pe[size_t(r)].size(), cudaMemcpyHostToDevice), "upload k_pe")) return false;
        if (c.dev_scale) {
          const float sc[2] = {sl.ks[size_t(r)], sl.vs[size_t(r)]};
          if (!ck(cudaMemcpy(r == 0 ? sl.d_sc : sl.img_sc[size_t(r)], sc, 8, cudaMemcpyHostToDevice), "upload scales")) return false;
        }
      }
    }
    // ---- 2. issue: rounds of the groups in a random interleaving (each group's rounds in order)
    std::vector<int> pending;
    for (size_t g = 0; g < groups_.size(); ++g)
      for (int r = 0; r < groups_[g].rounds; ++r) pending.push_back(int(g));
    for (size_t k = pending.size(); k > 1; --k) std::swap(pending[k - 1], pending[size_t(rng_.below(k))]);
    bool ok = true;
    for (int g : pending) {
      Group& G = groups_[size_t(g)];
      ok = G.graph ? issue_graph_round(G) : issue_direct_round(G);
      ++G.next_round;
      if (!ok) break;
    }
    // ---- 3. synchronise, copy every round's outputs back
    for (Dev& d : devs_) {
      if (!set_device(d.device)) ok = false;
      for (int k = 0; k < 2; ++k)
        if (!ck(cudaStreamSynchronize(d.st[k]), "cudaStreamSynchronize")) ok = false;
    }
    for (Group& G : groups_) {
      if (G.exec) cudaGraphExecDestroy(G.exec);
      if (G.graph_obj) cudaGraphDestroy(G.graph_obj);
      G.exec = nullptr;
      G.graph_obj = nullptr;
    }
    if (!ok) return false;
    for (Slot& sl : slots_) {
      if (!set_device(sl.c.device)) return false;
      sl.g_ko.resize(size_t(sl.rounds));
      sl.g_vo.resize(size_t(sl.rounds));
      for (int r = 0; r < sl.rounds; ++r) {
        const bool last = r == sl.rounds - 1;
        sl.g_ko[size_t(r)].resize(size_t(sl.c.ko_bytes));
        sl.g_vo[size_t(r)].resize(size_t(sl.c.vo_bytes));
        if (!ck(cudaMemcpy(sl.g_ko[size_t(r)].data(), last ? sl.d_ko : sl.snap_ko[size_t(r)], size_t(sl.c.ko_bytes),
                           cudaMemcpyDeviceToHost), "copy k_out back"))
          return false;
        if (sl.c.vo_bytes && !ck(cudaMemcpy(sl.g_vo[size_t(r)].data(), last ? sl.d_vo : sl.snap_vo[size_t(r)],
                                            size_t(sl.c.vo_bytes), cudaMemcpyDeviceToHost), "copy v_out back"))
          return false;
      }
    }
    // ---- 4. the reference on the same inputs; every byte compared
    for (size_t si = 0; si < slots_.size(); ++si) {
      Slot& sl = slots_[si];
      for (int r = 0; r < sl.rounds; ++r) {
        if (!check_round(sl, r)) return false;
        sl.h_kn[size_t(r)].clear(); sl.h_kn[size_t(r)].shrink_to_fit();
        sl.h_v[size_t(r)].clear(); sl.h_v[size_t(r)].shrink_to_fit();
        sl.h_pe[size_t(r)].clear(); sl.h_pe[size_t(r)].shrink_to_fit();
        sl.g_ko[size_t(r)].clear(); sl.g_ko[size_t(r)].shrink_to_fit();
        sl.g_vo[size_t(r)].clear(); sl.g_vo[size_t(r)].shrink_to_fit();
      }
    }
    return true;
  }

  // The plan text of a spec on this worker's buffers (for messages): the call with scratch
  // pointers carved from the slab of its device, nothing run.
  std::string plan_of(const Slot& sl) const {
    const Dev* d = dev_of(sl.c.device);
    mlakv_pack_args a = make_args(sl.c, sl.d_kn, sl.d_v, sl.d_pe, sl.d_ko, sl.d_vo, sl.d_sc, sl.c.ks, sl.c.vs, true,
                                  d ? d->st[sl.c.stream] : nullptr);
    char buf[1024];
    buf[0] = '\0';
    const mlakv_status st = mlakv_pack_fp8_plan(&a, buf, sizeof buf, nullptr);
    return st == MLAKV_OK ? std::string(buf) : std::string("(plan failed: ") + mlakv_status_string(st) + ": " +
                                                   mlakv_last_error() + ")";
  }

  // A layer-loop clone: the same geometry and layout on new buffers, with other scales and stream;
  // sometimes the outputs moved to another misalignment (the plan must not be reused blindly).
  Spec layer_clone(const Spec& base) {
    Spec c = base;
    c.ks = random_scale(rng_);
    c.vs = random_scale(rng_);
    c.stream = int(rng_.below(2));
    if (rng_.below(4) == 0) c.dev_scale = !c.dev_scale;
    if (rng_.below(5) == 0) {
      const int64_t m = rng_.range(1, 15);
      c.ko_off += m;
      c.vo_off += m;
      finish_sizes(c);
    }
    return c;
  }

 private:
  struct Dev {
    int device = 0;
    cudaStream_t st[2] = {nullptr, nullptr};
    cudaEvent_t ev[2] = {nullptr, nullptr};
    uint8_t* slab = nullptr;
    size_t slab_bytes = 0, used = 0;
  };
  struct Group {
    std::vector<int> slots;
    bool graph = false, fork = false;
    int stream = 0, rounds = 1, next_round = 0, device = 0;
    cudaGraph_t graph_obj = nullptr;
    cudaGraphExec_t exec = nullptr;
  };

  const Dev* dev_of(int device) const {
    for (const Dev& d : devs_)
      if (d.device == device) return &d;
    return nullptr;
  }
  Dev* dev_of(int device) {
    for (Dev& d : devs_)
      if (d.device == device) return &d;
    return nullptr;
  }

  std::string where(const Slot& sl, int r) const {
    std::ostringstream o;
    o << "worker " << id_ << " batch " << batch_ << " call " << (&sl - slots_.data()) << " round " << r << " ("
      << sl.mode << ", " << sl.rounds << " round" << (sl.rounds > 1 ? "s" : "") << "): " << sl.c.describe();
    return o.str();
  }
  bool fail(const std::string& what) {
    failures().add(what);
    return false;
  }
  bool ck(cudaError_t e, const char* what, const std::string& ctx = std::string()) {
    if (e == cudaSuccess) return true;
    (void)cudaGetLastError();
    return fail(std::string("CUDA error in ") + what + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")" +
                (ctx.empty() ? "" : " [" + ctx + "]") + " (worker " + std::to_string(id_) + ", batch " +
                std::to_string(batch_) + ")");
  }
  bool set_device(int d) { return ck(cudaSetDevice(d), "cudaSetDevice"); }

  uint8_t* take(Dev& d, int64_t bytes) {
    const size_t at = (d.used + 255) & ~size_t(255);
    if (bytes < 0 || at + size_t(bytes) > d.slab_bytes) return nullptr;
    d.used = at + size_t(bytes);
    return d.slab + at;
  }
  // Device memory for a slot: buffers, and per round input images and output snapshots.
  bool carve(Slot& sl) {
    Dev* d = dev_of(sl.c.device);
    if (!d) return false;
    const size_t mark = d->used;
    const Spec& c = sl.c;
    const int64_t e = esize(c.in);
    bool ok = (sl.d_kn = take(*d, c.kn_elems * e)) && (sl.d_pe = take(*d, c.pe_elems * e)) &&
              (sl.d_ko = take(*d, c.ko_bytes)) && (sl.d_sc = reinterpret_cast<float*>(take(*d, 8)));
    if (ok && c.v_elems) ok = (sl.d_v = take(*d, c.v_elems * e)) != nullptr;
    if (ok && c.vo_bytes) ok = (sl.d_vo = take(*d, c.vo_bytes)) != nullptr;
    const size_t R = size_t(sl.rounds);
    sl.img_kn.assign(R, nullptr); sl.img_v.assign(R, nullptr); sl.img_pe.assign(R, nullptr);
    sl.img_sc.assign(R, nullptr); sl.snap_ko.assign(R, nullptr); sl.snap_vo.assign(R, nullptr);
    for (size_t r = 1; ok && r < R; ++r) {
      ok = (sl.img_kn[r] = take(*d, c.kn_elems * e)) && (sl.img_pe[r] = take(*d, c.pe_elems * e)) &&
           (sl.img_sc[r] = reinterpret_cast<float*>(take(*d, 8)));
      if (ok && c.v_elems) ok = (sl.img_v[r] = take(*d, c.v_elems * e)) != nullptr;
    }
    for (size_t r = 0; ok && r + 1 < R; ++r) {
      ok = (sl.snap_ko[r] = take(*d, c.ko_bytes)) != nullptr;
      if (ok && c.vo_bytes) ok = (sl.snap_vo[r] = take(*d, c.vo_bytes)) != nullptr;
    }
    if (!ok) d->used = mark;
    return ok;
  }

  // Before round r runs: poison the outputs, bring in round r's inputs and device scales.
  bool prepare_round(Slot& sl, int r, cudaStream_t st) {
    const Spec& c = sl.c;
    const uint8_t p = sl.poison[size_t(r)];
    if (!ck(cudaMemsetAsync(sl.d_ko, p, size_t(c.ko_bytes), st), "poison k_out")) return false;
    if (c.vo_bytes && !ck(cudaMemsetAsync(sl.d_vo, p, size_t(c.vo_bytes), st), "poison v_out")) return false;
    if (r == 0) return true;
    const size_t e = size_t(esize(c.in));
    if (!ck(cudaMemcpyAsync(sl.d_kn, sl.img_kn[size_t(r)], size_t(c.kn_elems) * e, cudaMemcpyDeviceToDevice, st), "round input k_nope")) return false;
    if (c.v_elems && !ck(cudaMemcpyAsync(sl.d_v, sl.img_v[size_t(r)], size_t(c.v_elems) * e, cudaMemcpyDeviceToDevice, st), "round input v")) return false;
    if (!ck(cudaMemcpyAsync(sl.d_pe, sl.img_pe[size_t(r)], size_t(c.pe_elems) * e, cudaMemcpyDeviceToDevice, st), "round input k_pe")) return false;
    if (c.dev_scale && !ck(cudaMemcpyAsync(sl.d_sc, sl.img_sc[size_t(r)], 8, cudaMemcpyDeviceToDevice, st), "round scales")) return false;
    return true;
  }
  // After round r ran (not the last): keep its outputs.
  bool snapshot_round(Slot& sl, int r, cudaStream_t st) {
    if (r == sl.rounds - 1) return true;
    const Spec& c = sl.c;
    if (!ck(cudaMemcpyAsync(sl.snap_ko[size_t(r)], sl.d_ko, size_t(c.ko_bytes), cudaMemcpyDeviceToDevice, st), "snapshot k_out")) return false;
    if (c.vo_bytes && !ck(cudaMemcpyAsync(sl.snap_vo[size_t(r)], sl.d_vo, size_t(c.vo_bytes), cudaMemcpyDeviceToDevice, st), "snapshot v_out")) return false;
    return true;
  }

  // One mlakv_pack_fp8 on the GPU; with switch_device, another device is made current around it
  // (the library must launch on args.device and give the caller's current device back).
  bool pack(Slot& sl, int r, cudaStream_t st, bool capturing) {
    mlakv_pack_args a = make_args(sl.c, sl.d_kn, sl.d_v, sl.d_pe, sl.d_ko, sl.d_vo, sl.d_sc, sl.c.ks, sl.c.vs, true, st);
    int current = sl.c.device;
    if (opt_.switch_device && devices_.size() > 1 && rng_.below(2)) {
      for (int d : devices_)
        if (d != sl.c.device) current = d;
      if (!set_device(current)) return false;
    }
    const mlakv_status s = mlakv_pack_fp8(&a);
    if (s != MLAKV_OK)
      return fail(std::string("mlakv_pack_fp8 failed") + (capturing ? " during graph capture: " : ": ") +
                  mlakv_status_string(s) + ": " + mlakv_last_error() + " [" + where(sl, r) + "]");
    int after = -1;
    if (!ck(cudaGetDevice(&after), "cudaGetDevice")) return false;
    if (after != current)
      return fail("mlakv_pack_fp8 left device " + std::to_string(after) + " current, the caller had " +
                  std::to_string(current) + " [" + where(sl, r) + "]");
    if (current != sl.c.device && !set_device(sl.c.device)) return false;
    capturing ? stats_.captured_calls++ : stats_.pack_calls++;
    return true;
  }

  bool issue_direct_round(Group& G) {
    Slot& sl = slots_[size_t(G.slots[0])];
    const int r = G.next_round;
    if (!set_device(sl.c.device)) return false;
    cudaStream_t st = dev_of(sl.c.device)->st[sl.c.stream];
    return prepare_round(sl, r, st) && pack(sl, r, st, false) && snapshot_round(sl, r, st);
  }

  bool issue_graph_round(Group& G) {
    const int r = G.next_round;
    if (!set_device(G.device)) return false;
    Dev* d = dev_of(G.device);
    cudaStream_t A = d->st[G.stream], B = d->st[1 - G.stream];
    if (r == 0) {  // capture once: thread-local mode (other workers go on with their own calls meanwhile)
      if (!ck(cudaStreamBeginCapture(A, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture")) return false;
      bool ok = true;
      if (G.fork) ok = ck(cudaEventRecord(d->ev[0], A), "fork: cudaEventRecord") && ck(cudaStreamWaitEvent(B, d->ev[0], 0), "fork: cudaStreamWaitEvent");
      for (size_t k = 0; ok && k < G.slots.size(); ++k) {
        Slot& sl = slots_[size_t(G.slots[k])];
        ok = pack(sl, 0, sl.c.stream == G.stream ? A : B, true);
      }
      if (ok && G.fork) ok = ck(cudaEventRecord(d->ev[1], B), "join: cudaEventRecord") && ck(cudaStreamWaitEvent(A, d->ev[1], 0), "join: cudaStreamWaitEvent");
      if (!set_device(G.device)) ok = false;
      cudaGraph_t g = nullptr;
      const cudaError_t e = cudaStreamEndCapture(A, &g);  // also on failure: no stream is left capturing
      G.graph_obj = g;
      if (!ok) {
        (void)cudaGetLastError();
        return false;
      }
      if (!ck(e, "cudaStreamEndCapture (was the capture invalidated by a call inside it?)")) return false;
      if (!ck(cudaGraphInstantiate(&G.exec, g, 0), "cudaGraphInstantiate")) return false;
      stats_.graphs++;
    }
    for (int si : G.slots)
      if (!prepare_round(slots_[size_t(si)], r, A)) return false;
    if (!ck(cudaGraphLaunch(G.exec, A), "cudaGraphLaunch")) return false;
    stats_.graph_launches++;
    for (int si : G.slots)
      if (!snapshot_round(slots_[size_t(si)], r, A)) return false;
    return true;
  }

  bool check_round(Slot& sl, int r) {
    const Spec& c = sl.c;
    const uint8_t p = sl.poison[size_t(r)];
    std::vector<uint8_t> rk(size_t(c.ko_bytes), p), rv(size_t(c.vo_bytes), p);
    mlakv_pack_args a = make_args(c, sl.h_kn[size_t(r)].data(), sl.h_v[size_t(r)].data(), sl.h_pe[size_t(r)].data(),
                                  rk.data(), rv.data(), nullptr, sl.ks[size_t(r)], sl.vs[size_t(r)], false, nullptr);
    const mlakv_status s = mlakv_pack_fp8(&a);
    stats_.reference_calls++;
    if (s != MLAKV_OK)
      return fail(std::string("the reference backend failed: ") + mlakv_status_string(s) + ": " + mlakv_last_error() +
                  " [" + where(sl, r) + "]");
    if (!compare(sl, r, sl.g_ko[size_t(r)], rk, c.out_fused ? "k_out+v_out buffer" : "k_out buffer")) return false;
    if (c.vo_bytes && !compare(sl, r, sl.g_vo[size_t(r)], rv, "v_out buffer")) return false;
    const uint64_t bytes = uint64_t(c.ko_bytes + c.vo_bytes);
    stats_.executions++;
    stats_.bytes_checked += bytes;
    stats_.add("mode", sl.mode, bytes);
    stats_.add("layout", layout_name(c.layout), bytes);
    stats_.add("in", tu::dtype_name(c.in), bytes);
    stats_.add("out", tu::dtype_name(c.out), bytes);
    stats_.add("dims", std::to_string(c.dn) + "/" + std::to_string(c.dr) + "/" + std::to_string(c.dv), bytes);
    stats_.add("h", std::to_string(c.h), bytes);
    stats_.add("s", s_bucket(c.s), bytes);
    stats_.add("pdl", pdl_name(c.pdl), bytes);
    stats_.add("scales", c.dev_scale ? "device" : "host", bytes);
    stats_.add("backend", std::string(c.backend == MLAKV_BACKEND_AUTO ? "auto" : "cuda") +
                              ((c.flags & MLAKV_FLAG_TRUST_POINTERS) ? "+trust" : ""), bytes);
    stats_.add("stream", std::to_string(c.stream), bytes);
    stats_.add("k_pe", c.pe3 ? "3d" : "2d", bytes);
    stats_.add("outputs", c.out_fused ? "one-buffer" : "two-buffers", bytes);
    stats_.add("device", std::to_string(c.device), bytes);
    return true;
  }

  // The first differing byte, located in the views, with its input and scale.
  bool compare(const Slot& sl, int r, const std::vector<uint8_t>& got, const std::vector<uint8_t>& want, const char* name) {
    if (got.size() == want.size() && std::memcmp(got.data(), want.data(), got.size()) == 0) return true;
    size_t first = 0, bad = 0;
    for (size_t i = 0; i < got.size(); ++i)
      if (got[i] != want[i]) {
        if (!bad) first = i;
        ++bad;
      }
    const Spec& c = sl.c;
    std::ostringstream o;
    o << "MISMATCH in " << name << " at byte " << first << ": expected (reference) " << tu::hex(want[first]) << ", got (cuda) "
      << tu::hex(got[first]) << "; " << bad << " of " << got.size() << " bytes differ, poison " << tu::hex(sl.poison[size_t(r)]) << "\n  call: "
      << where(sl, r) << "\n  scales this round: k " << tu::fmt_float(sl.ks[size_t(r)]) << ", v " << tu::fmt_float(sl.vs[size_t(r)]);
    int64_t t = 0, j = 0, e = 0;
    const bool is_v_buf = std::strcmp(name, "v_out buffer") == 0;
    const int64_t off = int64_t(first);
    std::string at;
    const int es = esize(c.in);
    auto raw_at = [&](const std::vector<uint8_t>& buf, int64_t elem) {
      uint32_t v = 0;
      if (elem >= 0 && size_t((elem + 1) * es) <= buf.size()) std::memcpy(&v, buf.data() + elem * es, size_t(es));
      return v;
    };
    if (!is_v_buf && !(at = locate(off - c.ko_off, c, c.ko_st, c.ko_sh, c.dk(), &t, &j, &e)).empty()) {
      int64_t idx;
      const std::vector<uint8_t>* src;
      if (e < c.dn) { src = &sl.h_kn[size_t(r)]; idx = c.kn_off + t * c.kn_st + j * c.kn_sh + e; }
      else { src = &sl.h_pe[size_t(r)]; idx = c.pe_off + t * c.pe_st + (e - c.dn); }
      const uint32_t raw = raw_at(*src, idx);
      o << "\n  k_out " << at << (e < c.dn ? " (k_nope" : " (k_pe") << " input raw " << tu::hex(raw, es * 2) << " = "
        << tu::fmt_float(tu::widen(c.in, raw)) << ")";
    } else if ((is_v_buf || c.out_fused) && !(at = locate(off - c.vo_off, c, c.vo_st, c.vo_sh, c.dv, &t, &j, &e)).empty()) {
      const std::vector<uint8_t>& src = c.kv_fused ? sl.h_kn[size_t(r)] : sl.h_v[size_t(r)];
      const uint32_t raw = raw_at(src, c.v_off + t * c.v_st + j * c.v_sh + e);
      o << "\n  v_out " << at << " (v input raw " << tu::hex(raw, es * 2) << " = " << tu::fmt_float(tu::widen(c.in, raw)) << ")";
    } else {
      o << "\n  the byte lies in no output row (padding or guard bytes): written where nothing may be";
    }
    o << "\n  plan: " << plan_of(sl);
    return fail(o.str());
  }

  int id_;
  std::vector<int> devices_;
  tu::Rng rng_;
  WorkerOptions opt_;
  std::vector<Dev> devs_;
  std::vector<Slot> slots_;
  std::vector<Group> groups_;
  Stats stats_;
  uint64_t batch_ = 0;
};

// 0 = no device (with *why), else the device count.
inline int cuda_devices(std::string* why) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    *why = std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
    (void)cudaGetLastError();
    return 0;
  }
  if (n <= 0) *why = "cudaGetDeviceCount reports 0 devices";
  return n;
}

// The CUDA backend's view of this machine ("" if usable, else why not).
inline std::string cuda_backend_problem() {
  for (int i = 0; i < mlakv_backend_count(); ++i) {
    mlakv_backend_info info = MLAKV_BACKEND_INFO_INIT;
    if (mlakv_backend_get_info(i, &info) != MLAKV_OK || info.backend != MLAKV_BACKEND_CUDA) continue;
    if (!info.compiled) return "the library was built without the CUDA backend";
    if (!info.usable) return std::string("the CUDA backend is not usable: ") + (info.detail ? info.detail : "");
    return "";
  }
  return "the library has no CUDA backend";
}

}  // namespace stress
