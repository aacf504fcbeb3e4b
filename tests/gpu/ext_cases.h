// Per-head scales and amax (issue 15), one case at a time, for a GPU backend's device memory: the
// CUDA suite (tests/gpu/test_cuda.cu) runs it on a GPU, the host suite (tests/gpu_host/) on fake
// devices whose kernels run on the host. A case makes random inputs with NaN, +-inf, -0 and
// subnormals (and per-head magnitudes, so that a wrong head shows), per-head multipliers, amax
// arrays with starting values below and above what the call finds (negative bit patterns too), runs
// the GPU backend `calls` times (new inputs each call, the amax accumulating) and checks
//   - every output byte (padding included) against the reference backend's per-head call, and
//     against the reference's per-tensor calls on each head alone (an oracle that does not use the
//     per-head code at all);
//   - the amax arrays (and the float past their end) against a plain host loop:
//     new = max(old, m) as int32 bit patterns, m = max |x| over the inputs, NaN skipped.
#pragma once
#include <mlakv/mlakv.h>

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "test_util.h"

namespace ext {

// How a suite's device memory is made and moved.
struct Mem {
  virtual ~Mem() = default;
  virtual void* alloc(size_t bytes) = 0;  // stays valid for the process (the suites never free it)
  virtual void put(void* dst, const void* src, size_t bytes) = 0;
  virtual void get(void* dst, const void* src, size_t bytes) = 0;
  virtual void sync() = 0;  // the backend's work on the case's stream is done
};

enum Scales { kEqual = 0, kPow2 = 1, kRandom = 2 };

struct Case {
  int64_t s = 8, h = 16, dn = 128, dr = 64, dv = 128;
  mlakv_dtype in = MLAKV_DTYPE_BF16, out = MLAKV_DTYPE_E4M3FN;
  bool per_head = true;
  bool k_amax = true, v_amax = true;
  Scales scales = kPow2;
  bool inf = true;         // one +-inf somewhere in v (and one in k_pe when inf_pe)
  bool inf_pe = false;
  bool nan_head = false;   // every element of head 0's v is NaN (its v_amax finds +0)
  int64_t pad_in = 0, pad_out = 0;  // extra elements per input row / bytes per output row
  int64_t misalign_in = 0;          // elements added to the k_nope / v base (breaks 16-byte alignment)
  bool fused_kv = true;
  int pdl = MLAKV_PDL_AUTO;
  mlakv_backend backend = MLAKV_BACKEND_CUDA;
  int device = 0;
  void* stream = nullptr;
  int calls = 1;                    // calls in a row on the same amax arrays, new inputs each
  const char* table = nullptr;      // rows forcing a variant (a catch-all row is appended)
  uint64_t seed = 1;
};

struct Result {
  mlakv_status st = MLAKV_OK;
  std::string plan, error, detail;
  size_t bad_bytes = 0;       // vs the reference's per-head call
  size_t bad_bytes_heads = 0; // vs the reference's per-tensor calls on each head
  size_t bad_amax = 0;        // amax floats (and the guards past them) that differ from the host loop
};

inline std::string describe(const Case& c) {
  std::ostringstream o;
  o << "s=" << c.s << " h=" << c.h << " dims=" << c.dn << "," << c.dr << "," << c.dv << " in=" << tu::dtype_name(c.in)
    << " out=" << tu::dtype_name(c.out) << " per_head=" << c.per_head << " k_amax=" << c.k_amax << " v_amax=" << c.v_amax
    << " scales=" << int(c.scales) << " inf=" << c.inf << " inf_pe=" << c.inf_pe << " nan_head=" << c.nan_head
    << " pad_in=" << c.pad_in << " pad_out=" << c.pad_out << " misalign=" << c.misalign_in << " fused=" << c.fused_kv
    << " pdl=" << c.pdl << " calls=" << c.calls << " seed=" << c.seed;
  if (c.table) o << "\ntable: " << c.table;
  return o.str();
}

// The multipliers of head j (kPow2: a distinct power of two a head, K and V apart).
inline float k_mult(const Case& c, int64_t j, tu::Rng* rng) {
  switch (c.scales) {
    case kEqual: return 1.0f / 0.0375f;
    case kPow2: return std::ldexp(1.0f, int(j % 11) - 5);
    default: return float(0.5 + double(rng->below(1000)) / 40.0);
  }
}
inline float v_mult(const Case& c, int64_t j, tu::Rng* rng) {
  switch (c.scales) {
    case kEqual: return 1.0f / 0.021f;
    case kPow2: return std::ldexp(1.0f, 4 - int(j % 7));
    default: return float(0.25 + double(rng->below(1000)) / 50.0);
  }
}

// One input element: normal values scaled by the head's magnitude 2^(j % 6), and now and then a
// NaN, -0 or subnormal (of the input type).
inline uint32_t element(const Case& c, tu::Rng& rng, int64_t j) {
  const uint64_t r = rng.below(64);
  if (r == 0) return c.in == MLAKV_DTYPE_FP32 ? 0x7FC00000u | uint32_t(rng.below(1 << 22)) : (c.in == MLAKV_DTYPE_BF16 ? 0x7FC1u : 0x7E01u);
  if (r == 1) return c.in == MLAKV_DTYPE_FP32 ? 0x80000000u : 0x8000u;                      // -0
  if (r == 2) return c.in == MLAKV_DTYPE_FP32 ? 0x00000001u + uint32_t(rng.below(0x7FFFFF)) // subnormal
                                              : (c.in == MLAKV_DTYPE_BF16 ? 0x0001u + uint32_t(rng.below(0x7F)) : 0x0001u + uint32_t(rng.below(0x3FF)));
  if (r == 3) return c.in == MLAKV_DTYPE_FP32 ? 0xFF800001u : (c.in == MLAKV_DTYPE_BF16 ? 0xFF81u : 0xFC01u);  // a NaN with the sign set
  const double g = (double(int32_t(rng.u32())) / double(1u << 31)) * 3.0 * std::ldexp(1.0, int(j % 6));
  return tu::to_raw(c.in, g);
}

inline uint32_t amax_bits(float x) {  // |x| as int32 bits, NaN -> 0 (skipped)
  const uint32_t a = tu::f32_bits(x) & 0x7FFFFFFFu;
  return a > 0x7F800000u ? 0u : a;
}

// Runs c; see the top of this file.
inline Result run(Mem& mem, const Case& c) {
  Result res;
  tu::Rng rng(c.seed);
  const int e = tu::dtype_size(c.in);
  const int64_t s = c.s, h = c.h, dn = c.dn, dr = c.dr, dv = c.dv, dk = dn + dr;
  // input layout (elements): fused [s, h, dn + dv] (+ pad) or k_nope and v apart; k_pe [s, dr]
  const int64_t kn_sh = (c.fused_kv ? dn + dv : dn) + c.pad_in, kn_st = h * kn_sh + c.pad_in;
  const int64_t v_sh = (c.fused_kv ? dn + dv : dv) + c.pad_in, v_st = h * v_sh + c.pad_in;
  const int64_t pe_st = dr + c.pad_in;
  const int64_t ko_sh = dk + c.pad_out, ko_st = h * ko_sh + c.pad_out, vo_sh = dv + c.pad_out, vo_st = h * vo_sh + c.pad_out;
  const size_t kn_n = size_t(s * kn_st + c.misalign_in + 8), v_n = c.fused_kv ? 0 : size_t(s * v_st + c.misalign_in + 8);
  const size_t pe_n = size_t(s * pe_st + 8), ko_n = size_t(s * ko_st + 1), vo_n = size_t(s * vo_st + 1);
  const int64_t na = c.per_head ? h : 1;  // amax floats per tensor; one guard float follows
  void* d_kn = mem.alloc(kn_n * size_t(e));
  void* d_v = c.fused_kv ? nullptr : mem.alloc(v_n * size_t(e));
  void* d_pe = mem.alloc(pe_n * size_t(e));
  void* d_ko = mem.alloc(ko_n);
  void* d_vo = mem.alloc(vo_n);
  float* d_sc = static_cast<float*>(mem.alloc(size_t(2 * h) * 4));
  float* d_ka = static_cast<float*>(mem.alloc(size_t(na + 1) * 4));
  float* d_va = static_cast<float*>(mem.alloc(size_t(na + 1) * 4));

  // multipliers (per head, or one each)
  std::vector<float> sc(size_t(2 * h));
  for (int64_t j = 0; j < h; ++j) {
    sc[size_t(j)] = k_mult(c, c.per_head ? j : 0, &rng);
    sc[size_t(h + j)] = v_mult(c, c.per_head ? j : 0, &rng);
  }
  mem.put(d_sc, sc.data(), sc.size() * 4);
  // amax starting values: 0, a negative pattern (-2.0f), above anything a call finds (1e30), or
  // +0 / a small value; the guards: a NaN pattern nobody may touch
  std::vector<float> ka(size_t(na + 1)), va(size_t(na + 1));
  const float starts[] = {0.0f, -2.0f, 1e30f, 0.5f, -0.0f};
  for (int64_t j = 0; j < na; ++j) {
    ka[size_t(j)] = starts[size_t(j) % 5];
    va[size_t(j)] = starts[size_t(j + 2) % 5];
  }
  ka[size_t(na)] = va[size_t(na)] = tu::bits_f32(0x7FBADBADu);
  mem.put(d_ka, ka.data(), ka.size() * 4);
  mem.put(d_va, va.data(), va.size() * 4);

  for (int call = 0; call < c.calls; ++call) {
    std::vector<uint8_t> kn(kn_n * size_t(e), 0), vv(v_n * size_t(e), 0), pe(pe_n * size_t(e), 0);
    auto put = [&](std::vector<uint8_t>& b, int64_t idx, uint32_t raw) { std::memcpy(&b[size_t(idx) * size_t(e)], &raw, size_t(e)); };
    const int64_t kn0 = c.misalign_in, v0 = c.fused_kv ? c.misalign_in + dn : c.misalign_in;
    std::vector<uint8_t>& vsrc = c.fused_kv ? kn : vv;
    for (int64_t t = 0; t < s; ++t)
      for (int64_t j = 0; j < h; ++j) {
        for (int64_t i = 0; i < dn; ++i) put(kn, kn0 + t * kn_st + j * kn_sh + i, element(c, rng, j));
        for (int64_t i = 0; i < dv; ++i)
          put(vsrc, v0 + t * v_st + j * v_sh + i,
              c.nan_head && j == 0 ? (c.in == MLAKV_DTYPE_FP32 ? 0x7FC00000u : (c.in == MLAKV_DTYPE_BF16 ? 0x7FC0u : 0x7E00u))
                                   : element(c, rng, j + 1));
      }
    for (int64_t t = 0; t < s; ++t)
      for (int64_t i = 0; i < dr; ++i) put(pe, t * pe_st + i, element(c, rng, 3));
    if (c.inf) {  // one infinity in v, of a random head (not the NaN head)
      const int64_t j = c.nan_head && h > 1 ? 1 + int64_t(rng.below(uint64_t(h - 1))) : int64_t(rng.below(uint64_t(h)));
      if (!(c.nan_head && j == 0))
        put(vsrc, v0 + int64_t(rng.below(uint64_t(s))) * v_st + j * v_sh + int64_t(rng.below(uint64_t(dv))),
            c.in == MLAKV_DTYPE_FP32 ? 0xFF800000u : (c.in == MLAKV_DTYPE_BF16 ? 0xFF80u : 0xFC00u));
    }
    if (c.inf_pe)
      put(pe, int64_t(rng.below(uint64_t(s))) * pe_st + int64_t(rng.below(uint64_t(dr))),
          c.in == MLAKV_DTYPE_FP32 ? 0x7F800000u : (c.in == MLAKV_DTYPE_BF16 ? 0x7F80u : 0x7C00u));
    mem.put(d_kn, kn.data(), kn.size());
    if (!c.fused_kv) mem.put(d_v, vv.data(), vv.size());
    mem.put(d_pe, pe.data(), pe.size());
    std::vector<uint8_t> poison_k(ko_n, tu::kPoison), poison_v(vo_n, tu::kPoison);
    mem.put(d_ko, poison_k.data(), ko_n);
    mem.put(d_vo, poison_v.data(), vo_n);

    // the call's arguments over any memory (device or host copies)
    auto make = [&](void* knp, void* vp, void* pep, void* kop, void* vop, const float* scp, float* kap, float* vap,
                    mlakv_backend b) {
      mlakv_pack_args a = MLAKV_PACK_ARGS_INIT;
      a.k_nope = tu::tensor3(tu::at(knp, kn0, e), c.in, s, h, dn, kn_st, kn_sh);
      a.v = tu::tensor3(tu::at(c.fused_kv ? knp : vp, v0, e), c.in, s, h, dv, v_st, v_sh);
      a.k_pe = tu::tensor2(pep, c.in, s, dr, pe_st);
      a.k_out = tu::tensor3(kop, c.out, s, h, dk, ko_st, ko_sh);
      a.v_out = tu::tensor3(vop, c.out, s, h, dv, vo_st, vo_sh);
      a.k_scale_inv_ptr = scp;
      a.v_scale_inv_ptr = scp + h;
      a.scale_granularity = c.per_head ? MLAKV_SCALE_PER_HEAD : MLAKV_SCALE_PER_TENSOR;
      a.k_amax = c.k_amax ? kap : nullptr;
      a.v_amax = c.v_amax ? vap : nullptr;
      a.backend = b;
      a.device = c.device;
      a.pdl = c.pdl;
      return a;
    };
    mlakv_pack_args g = make(d_kn, d_v, d_pe, d_ko, d_vo, d_sc, d_ka, d_va, c.backend);
    g.stream = c.stream;
    std::string table;
    if (c.table) {
      table = std::string(c.table) + "arch=0-100000 s=1-* sxh=1-* dims=any variant=general threads=256  # catch-all\n";
      if (mlakv_dispatch_table_set(c.backend, table.c_str()) != MLAKV_OK) {
        res.st = MLAKV_ERR_TABLE_PARSE;
        res.error = mlakv_last_error();
        return res;
      }
    }
    if (call == 0) res.plan = tu::plan_text(g);
    res.st = mlakv_pack_fp8(&g);
    res.error = mlakv_last_error();
    if (c.table) mlakv_dispatch_table_reset(c.backend);
    if (res.st != MLAKV_OK) return res;
    mem.sync();
    std::vector<uint8_t> gk(ko_n), gv(vo_n);
    mem.get(gk.data(), d_ko, ko_n);
    mem.get(gv.data(), d_vo, vo_n);

    // the reference's per-head call (host copies)
    std::vector<uint8_t> rk(ko_n, tu::kPoison), rv(vo_n, tu::kPoison);
    std::vector<float> rka = ka, rva = va;
    mlakv_pack_args r = make(kn.data(), vv.data(), pe.data(), rk.data(), rv.data(), sc.data(), rka.data(), rva.data(),
                             MLAKV_BACKEND_REFERENCE);
    if (mlakv_pack_fp8(&r) != MLAKV_OK) {
      res.st = MLAKV_ERR_INTERNAL;
      res.error = std::string("reference: ") + mlakv_last_error();
      return res;
    }
    std::string first;
    res.bad_bytes += tu::diff_bytes(gk.data(), rk.data(), ko_n, &first) + tu::diff_bytes(gv.data(), rv.data(), vo_n, nullptr);
    if (!first.empty()) res.detail += "k_out vs the reference:" + first + "\n";
    // per-tensor reference calls on each head alone, with that head's multipliers
    std::vector<uint8_t> hk(ko_n, tu::kPoison), hv(vo_n, tu::kPoison);
    for (int64_t j = 0; j < h; ++j) {
      mlakv_pack_args a = make(kn.data(), vv.data(), pe.data(), hk.data(), hv.data(), sc.data(), nullptr, nullptr,
                               MLAKV_BACKEND_REFERENCE);
      a.scale_granularity = MLAKV_SCALE_PER_TENSOR;
      a.k_scale_inv_ptr = a.v_scale_inv_ptr = nullptr;
      a.k_scale_inv = sc[size_t(j)];
      a.v_scale_inv = sc[size_t(h + j)];
      a.k_amax = a.v_amax = nullptr;
      a.k_nope.data = tu::at(a.k_nope.data, j * kn_sh, e);
      a.v.data = tu::at(a.v.data, j * v_sh, e);
      a.k_out.data = static_cast<uint8_t*>(a.k_out.data) + j * ko_sh;
      a.v_out.data = static_cast<uint8_t*>(a.v_out.data) + j * vo_sh;
      for (mlakv_tensor* t : {&a.k_nope, &a.v, &a.k_out, &a.v_out}) t->shape[1] = 1;
      if (mlakv_pack_fp8(&a) != MLAKV_OK) {
        res.st = MLAKV_ERR_INTERNAL;
        res.error = std::string("reference, head ") + std::to_string(j) + ": " + mlakv_last_error();
        return res;
      }
    }
    res.bad_bytes_heads += tu::diff_bytes(gk.data(), hk.data(), ko_n, nullptr) + tu::diff_bytes(gv.data(), hv.data(), vo_n, nullptr);

    // amax by a plain host loop
    auto wid = [&](const std::vector<uint8_t>& b, int64_t idx) {
      uint32_t raw = 0;
      std::memcpy(&raw, &b[size_t(idx) * size_t(e)], size_t(e));
      return tu::widen(c.in, raw);
    };
    std::vector<uint32_t> mk(size_t(na), 0), mv(size_t(na), 0);
    for (int64_t t = 0; t < s; ++t) {
      uint32_t pm = 0;
      for (int64_t i = 0; i < dr; ++i) pm = std::max(pm, amax_bits(wid(pe, t * pe_st + i)));
      for (int64_t j = 0; j < h; ++j) {
        const size_t a = size_t(c.per_head ? j : 0);
        mk[a] = std::max(mk[a], pm);
        for (int64_t i = 0; i < dn; ++i) mk[a] = std::max(mk[a], amax_bits(wid(kn, kn0 + t * kn_st + j * kn_sh + i)));
        for (int64_t i = 0; i < dv; ++i) mv[a] = std::max(mv[a], amax_bits(wid(vsrc, v0 + t * v_st + j * v_sh + i)));
      }
    }
    for (int64_t j = 0; j < na; ++j) {
      auto acc = [](float old, uint32_t m) { return int32_t(tu::f32_bits(old)) >= int32_t(m) ? old : tu::bits_f32(m); };
      if (c.k_amax) ka[size_t(j)] = acc(ka[size_t(j)], mk[size_t(j)]);
      if (c.v_amax) va[size_t(j)] = acc(va[size_t(j)], mv[size_t(j)]);
    }
    std::vector<float> gka(ka.size()), gva(va.size());
    mem.get(gka.data(), d_ka, gka.size() * 4);
    mem.get(gva.data(), d_va, gva.size() * 4);
    for (size_t j = 0; j < ka.size(); ++j) {
      const bool bk = tu::f32_bits(gka[j]) != tu::f32_bits(ka[j]), bv = tu::f32_bits(gva[j]) != tu::f32_bits(va[j]);
      const bool rbk = tu::f32_bits(rka[j]) != tu::f32_bits(ka[j]), rbv = tu::f32_bits(rva[j]) != tu::f32_bits(va[j]);
      res.bad_amax += bk + bv;
      if ((bk || bv || rbk || rbv) && res.detail.size() < 2000)
        res.detail += "call " + std::to_string(call) + " amax[" + std::to_string(j) + "]: k gpu " + tu::hex(tu::f32_bits(gka[j]), 8) +
                      " host " + tu::hex(tu::f32_bits(ka[j]), 8) + " reference " + tu::hex(tu::f32_bits(rka[j]), 8) + "; v gpu " +
                      tu::hex(tu::f32_bits(gva[j]), 8) + " host " + tu::hex(tu::f32_bits(va[j]), 8) + " reference " +
                      tu::hex(tu::f32_bits(rva[j]), 8) + "\n";
      res.bad_amax += rbk + rbv;  // the reference backend must agree with the loop too
    }
  }
  return res;
}

// A tile2d row (any arch, s, s*h) of the shape of tile2d's lean instance - block x 16 threads, 16
// lanes with k_pe split, one pass a tile - with lean=1, or without it (the general tile2d body); with
// lean=1, its blocks numbered token tiles first or heads first (order=heads).
inline std::string lean_row(int block, int early, bool lean, bool heads_first = false) {
  return "arch=0-100000 s=1-* sxh=1-* dims=x8 variant=tile2d threads=" + std::to_string(block * 16) +
         " block=" + std::to_string(block) + " unroll=1 waves=0 early=" + std::to_string(early) +
         " lanes=16 split=1 evict_first=0 wide=0" + (lean ? " lean=1" : "") + (heads_first ? " order=heads\n" : "\n");
}

// The lean instance's cases, without amax: every input type (fp32 inputs do not fit it) and format,
// each tile size of `blocks` (for fp32 those up to 16 tokens), per tensor and per head, whole and
// partial last tiles, PDL trigger early and late, blocks numbered token tiles or heads first, padded
// output rows. f(case, its row, whether the plan should name the lean instance); the row outlives
// the call only as long as f keeps it.
template <class F>
void for_lean_cases(std::initializer_list<int> blocks, F f) {
  int k = 0;
  for (mlakv_dtype in : tu::kInputDtypes)
    for (mlakv_dtype out : tu::kFp8Dtypes)
      for (int block : blocks) {
        if (in == MLAKV_DTYPE_FP32 && block > 16) continue;
        ++k;
        Case c;
        c.in = in;
        c.out = out;
        c.s = block * (1 + k % 3) + k % 5;
        c.h = k % 2 ? 16 : 3;
        c.per_head = k % 3 != 0;
        c.scales = c.per_head ? kPow2 : kEqual;
        c.k_amax = c.v_amax = false;
        c.pad_out = k % 4 == 1 ? 16 : 0;
        c.seed = 700 + uint64_t(k);
        f(c, lean_row(block, k % 2, true, k / 2 % 2 == 1), in != MLAKV_DTYPE_FP32);
      }
}

// The lean instance's test for a suite: check(case) runs a case with its forced row, checks its
// bytes and maxima, and returns the result. The cases of for_lean_cases, then the same row without
// lean=1 (the general tile2d body) and with an amax (the lean ext instance token tiles first, the
// tile2d body's heads first): each plan must say variant=tile2d, and name the lean instance exactly
// where the call fits it. (doctest's CHECK: the suites include doctest first.)
template <class Check>
void check_lean_instance(std::initializer_list<int> blocks, Check check) {
  const auto one = [&](const Case& c, bool want_lean) {
    const Result r = check(c);
    INFO(describe(c) << "\nplan: " << r.plan);
    CHECK(r.plan.find("variant=tile2d") != std::string::npos);
    CHECK((r.plan.find("units=ds16s lean") != std::string::npos) == want_lean);
  };
  for_lean_cases(blocks, [&](Case c, const std::string& row, bool want_lean) {
    c.table = row.c_str();
    one(c, want_lean);
  });
  Case c;
  c.s = 21;
  c.h = 3;
  c.k_amax = c.v_amax = false;
  const std::string plain = lean_row(16, 1, false), lean = lean_row(16, 1, true), heads = lean_row(16, 1, true, true);
  c.table = plain.c_str();
  one(c, false);
  c.k_amax = c.v_amax = true;
  c.table = lean.c_str();
  one(c, true);  // the lean amax instance
  c.table = heads.c_str();
  one(c, false);  // the tile2d body's ext instance, on its own grid (token tiles first)
}

// The lean instance's amax instances (rows with lean=1, blocks numbered token tiles first; one
// commit a block, or with commit=lane every thread's), for a suite (check as in
// check_lean_instance): each tile size of `blocks`, every input type (fp32: the tile2d body),
// per tensor and per head, K's and V's amax alone and together, inf in v and k_pe, a head of NaN,
// whole and partial last tiles, padded output rows, three calls accumulating into the same arrays;
// the bytes and maxima against the reference and a host loop, the plan naming the lean instance
// exactly where the call fits it, and the commit.
template <class Check>
void check_lean_amax(std::initializer_list<int> blocks, Check check) {
  int k = 0;
  for (int block : blocks)
    for (bool lane : {false, true})
      for (mlakv_dtype in : tu::kInputDtypes)
        for (int amax = 0; amax < 3; ++amax) {  // 0: K and V, 1: K only, 2: V only
          ++k;
          std::string row = lean_row(block, k % 2, true);
          if (lane) row.insert(row.size() - 1, " commit=lane");
          Case c;
          c.in = in;
          c.out = tu::kFp8Dtypes[k % 4];
          c.s = block * (1 + k % 3) + k % 3;
          c.h = k % 2 ? 16 : 3;
          c.per_head = k % 3 != 0;
          c.scales = c.per_head ? kPow2 : kEqual;
          c.k_amax = amax != 2;
          c.v_amax = amax != 1;
          c.inf_pe = k % 2 == 0;
          c.nan_head = k % 3 == 1;
          c.pad_out = k % 4 == 1 ? 16 : 0;
          c.calls = 3;
          c.table = row.c_str();
          c.seed = 1100 + uint64_t(k);
          const Result r = check(c);
          INFO(describe(c) << "\nrow: " << row << "plan: " << r.plan);
          CHECK(r.plan.find("variant=tile2d") != std::string::npos);
          CHECK((r.plan.find("units=ds16s lean") != std::string::npos) == (in != MLAKV_DTYPE_FP32));
          CHECK((r.plan.find("commit=lane") != std::string::npos) == lane);
        }
}

// A tile2d row with commit=lane (every thread commits its own maxima: tile2d's lane-commit
// instance): `threads` threads of `lanes` lanes (8: 8-element units; 16 / 32: k_pe split) over
// `block` tokens; with threads < block x lanes a block covers its tile in several passes.
inline std::string lane_row(int threads, int block, int lanes) {
  return "arch=0-100000 s=1-* sxh=1-* dims=x8 variant=tile2d threads=" + std::to_string(threads) +
         " block=" + std::to_string(block) + " unroll=1 waves=0 early=1 lanes=" + std::to_string(lanes) +
         " split=" + (lanes == 8 ? "0" : "1") + " evict_first=0 wide=0 commit=lane\n";
}

// The lane-commit instance's test for a suite (check as in check_lean_instance): one-pass and
// several-pass tiles, 8 / 16 / 32 lanes, every input type, per tensor and per head, K's and V's
// amax alone and together, inf in v and k_pe, a head of NaN, three calls accumulating into the same
// arrays; the bytes and maxima against the reference and a host loop, the plan naming the row.
// Without an amax the row runs the plain instance.
template <class Check>
void check_lane_commit(Check check) {
  struct T { int threads, block, lanes; } tiles[] = {{32, 2, 16}, {128, 8, 16}, {64, 2, 32}, {128, 16, 8}, {32, 8, 16}};
  int k = 0;
  for (const T& t : tiles)
    for (mlakv_dtype in : tu::kInputDtypes)
      for (int amax = 0; amax < 4; ++amax) {  // 0: K and V, 1: K only, 2: V only, 3: none
        ++k;
        const std::string row = lane_row(t.threads, t.block, t.lanes);
        Case c;
        c.in = in;
        c.out = tu::kFp8Dtypes[k % 4];
        c.s = t.block * (1 + k % 3) + k % 3;
        c.h = k % 2 ? 16 : 3;
        c.per_head = k % 3 != 0;
        c.scales = c.per_head ? kPow2 : kEqual;
        c.k_amax = amax == 0 || amax == 1;
        c.v_amax = amax == 0 || amax == 2;
        c.inf_pe = k % 2 == 0;
        c.nan_head = k % 3 == 1;
        c.calls = amax == 3 ? 1 : 3;
        c.table = row.c_str();
        c.seed = 900 + uint64_t(k);
        const Result r = check(c);
        INFO(describe(c) << "\nplan: " << r.plan);
        CHECK(r.plan.find("variant=tile2d") != std::string::npos);
        CHECK(r.plan.find("commit=lane") != std::string::npos);
      }
}

}  // namespace ext
