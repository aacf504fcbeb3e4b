// GPU test suite: the CUDA backend against the reference backend, byte for byte.
// Runs on a machine with a CUDA GPU (scripts/gpu_verify.sh); where there is none it exits with 77,
// which ctest reports as skipped.
// Every case draws fresh random inputs (with injected edge values), poisons the outputs, runs
// both backends and compares every byte, padding included.
#define DOCTEST_CONFIG_IMPLEMENT
#include <cuda_runtime.h>
#include <doctest/doctest.h>
#include <mlakv/mlakv.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gpu/ext_cases.h"  // per-head scales and amax cases, shared with tests/gpu_host
#include "test_util.h"  // tensor builders and bf16/fp16 rounding shared with the CPU suite

namespace {

#define CK(x) REQUIRE_MESSAGE((x) == cudaSuccess, #x)

bool g_have_gpu = false;
uint64_t g_seed = 0x5eed;

struct Dims { int64_t dn, dr, dv; };

// A case: shapes, layouts and types.
struct Case {
  int64_t s = 1, h = 1;
  Dims d{128, 64, 128};
  mlakv_dtype in = MLAKV_DTYPE_BF16, out = MLAKV_DTYPE_E4M3FN;
  bool fused_kv = true;      // k_nope and v are halves of one [s, h, dn + dv] tensor
  bool pe3 = true;           // k_pe [s, 1, dr] (else [s, dr])
  int64_t pad_in = 0;        // extra elements per input row (head stride) and token
  int64_t pad_out = 0;       // extra bytes per output row and token
  bool dev_scale = false;
  int64_t misalign_in = 0;   // elements added to the k_nope base pointer (breaks 16 B alignment)
  int pdl = MLAKV_PDL_AUTO;
  float ks = 1.0f / 0.0375f, vs = 1.0f / 0.021f;
};

int esize(mlakv_dtype d) { return d == MLAKV_DTYPE_FP32 ? 4 : 2; }

// Host image of one case's buffers (inputs as raw bytes), plus device copies.
struct Buffers {
  std::vector<uint8_t> kv, kn, vv, pe;  // inputs (kv when fused)
  size_t ko_bytes = 0, vo_bytes = 0;
  int64_t kn_st, kn_sh, v_st, v_sh, pe_st, ko_st, ko_sh, vo_st, vo_sh;
};

void fill_random(std::vector<uint8_t>& buf, mlakv_dtype dt, std::mt19937_64& rng) {
  static const float specials[] = {1000.f, -1000.f, 480.f, INFINITY, -INFINITY, NAN, -0.0f, 0.0f,
                                   0.0009765625f, 0.00146484375f, 1.0625f, 1.1875f, 61440.f, 1e-7f, -3e-6f, 65504.f};
  std::normal_distribution<float> nd(0.f, 2.f);
  std::uniform_int_distribution<int> pick(0, 63);
  const size_t n = buf.size() / size_t(esize(dt));
  for (size_t i = 0; i < n; ++i) {
    const int r = pick(rng);
    // scale-aware specials: divide by ~26 so that after *ks they land near the interesting values
    float x = r < 4 ? specials[rng() % 16] * (rng() & 1 ? 0.0375f : 1.0f) : nd(rng);
    if (dt == MLAKV_DTYPE_FP32) { std::memcpy(&buf[i * 4], &x, 4); continue; }
    const uint16_t hbits = dt == MLAKV_DTYPE_BF16 ? tu::to_bf16(x) : tu::to_fp16(x);
    const uint16_t raw = r == 5 ? uint16_t(rng()) : hbits;  // occasionally any bit pattern at all
    std::memcpy(&buf[i * 2], &raw, 2);
  }
}

// Runs one case on CUDA and on the reference; returns the number of differing bytes.
constexpr const char* kCatchAll = "arch=0-100000 s=1-* sxh=1-* dims=any variant=general threads=256  # catch-all\n";

size_t run_case(const Case& c, std::string* desc, const char* forced_table = nullptr) {
  std::mt19937_64 rng(g_seed++);
  const int e = esize(c.in);
  const int64_t dn = c.d.dn, dr = c.d.dr, dv = c.d.dv;
  // input layout (elements)
  const int64_t w = c.fused_kv ? dn + dv : 0;
  const int64_t kn_sh = (c.fused_kv ? w : dn) + c.pad_in, kn_st = c.h * kn_sh + c.pad_in;
  const int64_t v_sh = (c.fused_kv ? w : dv) + c.pad_in, v_st = c.h * v_sh + c.pad_in;
  const int64_t pe_st = dr + c.pad_in;
  const int64_t ko_sh = dn + dr + c.pad_out, ko_st = c.h * ko_sh + c.pad_out;
  const int64_t vo_sh = dv + c.pad_out, vo_st = c.h * vo_sh + c.pad_out;
  const size_t kn_n = size_t(c.s * kn_st + c.misalign_in + 8), v_n = size_t(c.s * v_st + 8), pe_n = size_t(c.s * pe_st + 8);
  const size_t ko_n = size_t(c.s * ko_st), vo_n = size_t(c.s * vo_st);
  std::vector<uint8_t> kn(kn_n * e), vv(c.fused_kv ? 0 : v_n * e), pe(pe_n * e);
  fill_random(kn, c.in, rng);
  if (!c.fused_kv) fill_random(vv, c.in, rng);
  fill_random(pe, c.in, rng);

  // device copies
  void *d_kn, *d_v = nullptr, *d_pe, *d_ko, *d_vo, *d_sc;
  CK(cudaMalloc(&d_kn, kn.size()));
  if (!c.fused_kv) CK(cudaMalloc(&d_v, vv.size()));
  CK(cudaMalloc(&d_pe, pe.size()));
  CK(cudaMalloc(&d_ko, ko_n + 1));
  CK(cudaMalloc(&d_vo, vo_n + 1));
  CK(cudaMalloc(&d_sc, 8));
  CK(cudaMemcpy(d_kn, kn.data(), kn.size(), cudaMemcpyHostToDevice));
  if (!c.fused_kv) CK(cudaMemcpy(d_v, vv.data(), vv.size(), cudaMemcpyHostToDevice));
  CK(cudaMemcpy(d_pe, pe.data(), pe.size(), cudaMemcpyHostToDevice));
  CK(cudaMemset(d_ko, 0xA5, ko_n + 1));
  CK(cudaMemset(d_vo, 0xA5, vo_n + 1));
  const float sc[2] = {c.ks, c.vs};
  CK(cudaMemcpy(d_sc, sc, 8, cudaMemcpyHostToDevice));

  auto make = [&](void* kn_p, void* v_p, void* pe_p, void* ko, void* vo, const float* scp, mlakv_backend b) {
    mlakv_pack_args a = MLAKV_PACK_ARGS_INIT;
    char* knb = static_cast<char*>(kn_p) + c.misalign_in * e;
    void* vbase = c.fused_kv ? static_cast<void*>(static_cast<char*>(kn_p) + dn * e) : v_p;
    a.k_nope = tu::tensor3(knb, c.in, c.s, c.h, dn, kn_st, kn_sh);
    a.v = tu::tensor3(vbase, c.in, c.s, c.h, dv, c.fused_kv ? kn_st : v_st, c.fused_kv ? kn_sh : v_sh);
    if (c.pe3) a.k_pe = tu::tensor3(pe_p, c.in, c.s, 1, dr, pe_st, dr);
    else { a.k_pe = tu::tensor3(pe_p, c.in, c.s, dr, 1, pe_st, 1); a.k_pe.ndim = 2; a.k_pe.strides[1] = 1; }
    a.k_out = tu::tensor3(ko, c.out, c.s, c.h, dn + dr, ko_st, ko_sh);
    a.v_out = tu::tensor3(vo, c.out, c.s, c.h, dv, vo_st, vo_sh);
    if (c.dev_scale) { a.k_scale_inv_ptr = scp; a.v_scale_inv_ptr = scp + 1; }
    else { a.k_scale_inv = c.ks; a.v_scale_inv = c.vs; }
    a.backend = b;
    a.pdl = c.pdl;
    return a;
  };
  mlakv_pack_args ga = make(d_kn, d_v, d_pe, d_ko, d_vo, static_cast<const float*>(d_sc), MLAKV_BACKEND_CUDA);
  // a forced table ends on the general path, as every table should: a row that cannot run this call
  // (its kernel's register limit, misaligned rows for its units) leaves it to the catch-all
  const std::string table = forced_table ? std::string(forced_table) + kCatchAll : std::string();
  if (forced_table) REQUIRE(mlakv_dispatch_table_set(MLAKV_BACKEND_CUDA, table.c_str()) == MLAKV_OK);
  char plan[512] = {0};
  mlakv_pack_fp8_plan(&ga, plan, sizeof plan, nullptr);
  *desc = plan;
  const mlakv_status st = mlakv_pack_fp8(&ga);
  if (forced_table) mlakv_dispatch_table_reset(MLAKV_BACKEND_CUDA);
  REQUIRE_MESSAGE(st == MLAKV_OK, mlakv_last_error());
  CK(cudaDeviceSynchronize());
  std::vector<uint8_t> gk(ko_n + 1), gv(vo_n + 1);
  CK(cudaMemcpy(gk.data(), d_ko, ko_n + 1, cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(gv.data(), d_vo, vo_n + 1, cudaMemcpyDeviceToHost));

  std::vector<uint8_t> rk(ko_n + 1, 0xA5), rv(vo_n + 1, 0xA5);
  mlakv_pack_args ra = make(kn.data(), vv.data(), pe.data(), rk.data(), rv.data(), sc, MLAKV_BACKEND_REFERENCE);
  REQUIRE_MESSAGE(mlakv_pack_fp8(&ra) == MLAKV_OK, mlakv_last_error());

  size_t bad = 0;
  for (size_t i = 0; i < gk.size(); ++i) bad += gk[i] != rk[i];
  for (size_t i = 0; i < gv.size(); ++i) bad += gv[i] != rv[i];
  cudaFree(d_kn); if (d_v) cudaFree(d_v); cudaFree(d_pe); cudaFree(d_ko); cudaFree(d_vo); cudaFree(d_sc);
  return bad;
}

void check_case(const Case& c, const char* table = nullptr) {
  std::string plan;
  const size_t bad = run_case(c, &plan, table);
  INFO("case s=" << c.s << " h=" << c.h << " dims=" << c.d.dn << "," << c.d.dr << "," << c.d.dv << " in=" << c.in
       << " out=" << c.out << " fused=" << c.fused_kv << " pe3=" << c.pe3 << " pad_in=" << c.pad_in << " pad_out="
       << c.pad_out << " dev_scale=" << c.dev_scale << " misalign=" << c.misalign_in << " pdl=" << c.pdl
       << " seed=" << (g_seed - 1) << " plan: " << std::string(plan));
  CHECK(bad == 0);
}

// DeepSeek dims, k_nope and v as the two halves of one [s, h, 256] tensor of type `in`, k_pe
// [s, 1, 64], contiguous outputs of format `out` (bf16 -> e4m3fn unless asked), on backend b.
mlakv_pack_args ds_args(int64_t s, int64_t h, void* kv, void* pe, void* k, void* v, mlakv_backend b,
                        mlakv_dtype in = MLAKV_DTYPE_BF16, mlakv_dtype out = MLAKV_DTYPE_E4M3FN) {
  mlakv_pack_args a = MLAKV_PACK_ARGS_INIT;
  a.k_nope = tu::tensor3(kv, in, s, h, 128, h * 256, 256);
  a.v = tu::tensor3(static_cast<char*>(kv) + 128 * esize(in), in, s, h, 128, h * 256, 256);
  a.k_pe = tu::tensor3(pe, in, s, 1, 64, 64, 64);
  a.k_out = tu::tensor3(k, out, s, h, 192, h * 192, 192);
  a.v_out = tu::tensor3(v, out, s, h, 128, h * 128, 128);
  a.backend = b;
  return a;
}

}  // namespace

#define GPU_ONLY() if (!g_have_gpu) { MESSAGE("no CUDA device: skipped"); return; }

TEST_CASE("cuda matches reference: DeepSeek dims, every dtype and format, many s and h") {
  GPU_ONLY();
  const int64_t ss[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 17, 31, 33, 64, 127, 128, 129, 384, 1000, 2048};
  const int64_t hs[] = {1, 2, 8, 16, 32, 64, 128};
  const mlakv_dtype ins[] = {MLAKV_DTYPE_BF16, MLAKV_DTYPE_FP16, MLAKV_DTYPE_FP32};
  const mlakv_dtype outs[] = {MLAKV_DTYPE_E4M3FN, MLAKV_DTYPE_E5M2, MLAKV_DTYPE_E4M3FNUZ, MLAKV_DTYPE_E5M2FNUZ};
  int k = 0;
  for (int64_t s : ss)
    for (int64_t h : hs) {
      Case c;
      c.s = s; c.h = h;
      c.in = ins[k % 3];
      c.out = outs[(k / 3) % 4];
      c.pe3 = k % 2;
      c.dev_scale = (k / 2) % 2;
      ++k;
      if (s * h > 64 * 1024) continue;
      check_case(c);
    }
  // every (in, out) pair on the hot shape
  for (auto in : ins)
    for (auto out : outs) {
      Case c; c.s = 384; c.h = 16; c.in = in; c.out = out; check_case(c);
    }
}

TEST_CASE("cuda matches reference: other dims, padded strides, separate k_nope and v") {
  GPU_ONLY();
  const Dims dims[] = {{64, 32, 64}, {8, 8, 8}, {96, 48, 80}, {5, 3, 7}, {128, 64, 128}, {16, 16, 32}};
  int k = 0;
  for (const Dims& d : dims)
    for (int64_t s : {1, 3, 17, 129})
      for (int64_t h : {1, 8, 128}) {
        Case c;
        c.d = d; c.s = s; c.h = h;
        c.fused_kv = k % 2;
        c.pad_in = (k % 3) * 8;
        c.pad_out = (k % 4) * 16;
        c.in = k % 5 == 0 ? MLAKV_DTYPE_FP16 : (k % 7 == 0 ? MLAKV_DTYPE_FP32 : MLAKV_DTYPE_BF16);
        ++k;
        check_case(c);
      }
  // paddings that break 16-byte alignment of rows: must fall back, not fault
  for (int64_t pad : {1, 2, 3, 5}) {
    Case c; c.s = 33; c.h = 8; c.pad_in = pad; c.pad_out = pad; check_case(c);
  }
}

TEST_CASE("cuda: misaligned base pointers take a correct path") {
  GPU_ONLY();
  for (int64_t m : {1, 2, 3, 4, 7}) {
    Case c; c.s = 64; c.h = 16; c.misalign_in = m; check_case(c);
    c.in = MLAKV_DTYPE_FP32; check_case(c);
  }
}

TEST_CASE("cuda: PDL on and off give the same bytes") {
  GPU_ONLY();
  for (int pdl : {MLAKV_PDL_AUTO, MLAKV_PDL_ON, MLAKV_PDL_OFF})
    for (int64_t s : {1, 8, 384}) {
      Case c; c.s = s; c.h = 128; c.pdl = pdl; c.dev_scale = true; check_case(c);
    }
}

TEST_CASE("cuda: every variant and launch configuration is correct") {
  GPU_ONLY();
  const char* variants[] = {"tile2d", "flat", "persist", "general"};
  const int threads[] = {32, 64, 128, 256, 512, 1024};
  int k = 0;
  for (const char* v : variants)
    for (int th : threads)
      for (int unroll : {1, 2, 4}) {
        const int block = 1 + (k % 5) * 3, early = k % 2, waves = 1 + k % 4;
        ++k;
        // unit layouts: 16 lanes, 8 lanes, 16 lanes with k_pe split, 32 lanes (4-element units),
        // 8 lanes with 16-element (wide) units; the split and wide layouts have unroll 1 and 2
        const int layout = unroll == 4 ? (k / 2) % 2 : (k / 2) % 5;
        const int lanes = layout == 1 || layout == 4 ? 8 : layout == 3 ? 32 : 16, split = layout == 2 || layout == 3 ? 1 : 0;
        char table[256];
        std::snprintf(table, sizeof table, "arch=0-100000 s=1-* sxh=1-* dims=any variant=%s threads=%d block=%d unroll=%d waves=%d early=%d lanes=%d split=%d evict_first=%d wide=%d\n",
                      v, th, block, unroll, waves, early, lanes, split, k % 4 == 0 ? 1 : 0, layout == 4 ? 1 : 0);
        Case c;
        c.in = k % 7 == 0 ? MLAKV_DTYPE_FP32 : k % 7 == 1 ? MLAKV_DTYPE_FP16 : MLAKV_DTYPE_BF16;
        c.s = 1 + k * 7 % 300; c.h = (k % 3 == 0) ? 128 : 16;
        c.d = (k % 4 == 0) ? Dims{64, 32, 64} : Dims{128, 64, 128};
        c.out = (k % 5 == 0) ? MLAKV_DTYPE_E5M2 : MLAKV_DTYPE_E4M3FN;
        check_case(c, table);
      }
}

TEST_CASE("cuda: tile2d tiles covered in one pass and in several") {
  GPU_ONLY();
  // a block covers its tile in one pass when block x lanes == threads x unroll (the table's tile2d
  // rows); otherwise it loops; partial last tiles (s not a multiple of block) both ways
  struct L { int lanes, split, wide; } layouts[] = {{16, 0, 0}, {8, 0, 0}, {16, 1, 0}, {32, 1, 0}, {8, 0, 1}};
  int k = 0;
  for (const L& l : layouts)
    for (int unroll : {1, 2})
      for (int block : {2, 4, 8, 16, 32})
        for (bool one_pass : {true, false}) {
          const int exact = block * l.lanes / unroll;  // threads for one pass
          if (exact < 32 || exact > 1024) continue;
          const int threads = one_pass ? exact : (exact >= 64 ? exact / 2 : 32);
          if (!one_pass && threads * unroll >= block * l.lanes) continue;
          ++k;
          char table[256];
          std::snprintf(table, sizeof table, "arch=0-100000 s=1-* sxh=1-* dims=x8 variant=tile2d threads=%d block=%d unroll=%d waves=0 early=%d lanes=%d split=%d evict_first=0 wide=%d\n",
                        threads, block, unroll, k % 2, l.lanes, l.split, l.wide);
          Case c;
          c.s = block * (1 + k % 5) + (k % 3);  // whole tiles, or a partial last one
          c.h = k % 2 ? 16 : 5;
          c.in = k % 3 == 0 ? MLAKV_DTYPE_FP16 : MLAKV_DTYPE_BF16;
          c.dev_scale = k % 4 == 0;
          check_case(c, table);
        }
  CHECK(k > 20);
}

TEST_CASE("cuda: every unit layout with every input type and format") {
  GPU_ONLY();
  const mlakv_dtype ins[] = {MLAKV_DTYPE_BF16, MLAKV_DTYPE_FP16, MLAKV_DTYPE_FP32};
  const mlakv_dtype outs[] = {MLAKV_DTYPE_E4M3FN, MLAKV_DTYPE_E5M2, MLAKV_DTYPE_E4M3FNUZ, MLAKV_DTYPE_E5M2FNUZ};
  const int layouts[][3] = {{16, 0, 0}, {8, 0, 0}, {16, 1, 0}, {32, 1, 0}, {8, 0, 1}};  // lanes, split, wide
  int k = 0;
  for (const char* v : {"flat", "tile2d", "persist"})
    for (const auto& l : layouts)
      for (mlakv_dtype in : ins)
        for (mlakv_dtype out : outs) {
          ++k;
          char table[256];
          std::snprintf(table, sizeof table, "arch=0-100000 s=1-* sxh=1-* dims=x8 variant=%s threads=%d block=%d unroll=1 waves=2 early=%d lanes=%d split=%d evict_first=%d wide=%d\n",
                        v, k % 2 ? 256 : 128, k % 3 ? 16 : 5, k % 2, l[0], l[1], k % 5 == 0 ? 1 : 0, l[2]);
          Case c;
          c.s = 37 + k % 50; c.h = k % 2 ? 16 : 3;
          c.in = in; c.out = out;
          c.pad_out = k % 3 == 0 ? 16 : 0;
          c.dev_scale = k % 4 == 0;
          check_case(c, table);
        }
}

TEST_CASE("cuda: wide units where input rows are 32-byte aligned, 8-element units where not") {
  GPU_ONLY();
  // a lanes=8 wide=1 row holds only where every k_nope / v row start is 32-byte aligned and every
  // output row start 16-byte aligned (DS8W: 32-byte loads, one 256-bit load on Blackwell, two
  // 16-byte loads here); elsewhere the walk goes on to the next row, here the same row with
  // wide=0 (DS8). The plan names the row and the layout that run.
  int k = 0;
  for (const char* v : {"flat", "tile2d", "persist"})
    for (mlakv_dtype in : {MLAKV_DTYPE_BF16, MLAKV_DTYPE_FP16, MLAKV_DTYPE_FP32})
      for (int64_t shift_bytes : {0, 16})       // k_nope base 16 bytes past a 32-byte boundary
        for (int64_t pad_bytes : {0, 16, 32}) {  // input row padding in bytes
          ++k;
          Case c;
          c.in = in;
          c.s = 5 + k % 40; c.h = k % 2 ? 16 : 3;
          c.misalign_in = shift_bytes / esize(in);
          c.pad_in = pad_bytes / esize(in);
          c.pad_out = k % 3 == 0 ? 16 : 0;
          c.dev_scale = k % 4 == 0;
          char row[224], table[512];
          std::snprintf(row, sizeof row, "arch=0-100000 s=1-* sxh=1-* dims=x8 variant=%s threads=%d block=8 unroll=%d waves=2 early=%d lanes=8 split=0 evict_first=%d",
                        v, k % 2 ? 256 : 64, 1 + k % 2, k % 2, k % 5 == 0 ? 1 : 0);
          std::snprintf(table, sizeof table, "%s wide=1\n%s wide=0\n", row, row);
          std::string plan;
          const size_t bad = run_case(c, &plan, table);
          const bool wide = shift_bytes == 0 && pad_bytes % 32 == 0;
          INFO("plan: " << plan);
          CHECK(bad == 0);
          CHECK(plan.find(wide ? "wide=1 | units=ds8w" : "wide=0 | units=ds8") != std::string::npos);
        }
}

TEST_CASE("cuda: a row asking for more threads than its kernel's registers allow does not hold") {
  GPU_ONLY();
  // fp32 with unroll 4 needs about 165 registers a thread: 1024 threads cannot run, so the walk
  // takes the next row; the plan names the row that runs, with the threads it names
  Case c;
  c.in = MLAKV_DTYPE_FP32;
  c.s = 300; c.h = 16;
  const char* table =
      "arch=0-100000 s=1-* sxh=1-* dims=x8 variant=flat threads=1024 unroll=4 lanes=16  # too many threads\n"
      "arch=0-100000 s=1-* sxh=1-* dims=x8 variant=flat threads=128 unroll=4 lanes=16  # runs\n";
  std::string plan;
  CHECK(run_case(c, &plan, table) == 0);
  INFO("plan: " << plan);
  CHECK(plan.find("threads=128 block=1 unroll=4") != std::string::npos);
  CHECK(plan.find("# runs") != std::string::npos);
}

// An amax call (both arrays; per head or per tensor), or a per-head call without one (amax = false),
// of s x h on the built-in table, checked as the per-head tests check it (defined with them below):
// mismatching bytes and amax floats, and the plan.
namespace {
size_t run_ext_row_case(int64_t s, int64_t h, bool per_head, bool amax, std::string* plan);
}  // namespace

TEST_CASE("cuda: every built-in table row for this GPU, at both ends of its s*h band") {
  GPU_ONLY();
  // the built-in table's DeepSeek-dims rows that this device reaches, each run at the smallest and
  // the largest s*h it covers (h chosen so that s = s*h / h lies in the row's s band), checking the
  // bytes and that the plan names that row; an edge where an earlier row matches first is skipped
  int dev = 0;
  CK(cudaGetDevice(&dev));
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, dev));
  const int arch = prop.major * 10 + prop.minor;
  const long l2_mib = long(prop.l2CacheSize) >> 20;
  REQUIRE(mlakv_dispatch_table_reset(MLAKV_BACKEND_CUDA) == MLAKV_OK);
  size_t need = 0;
  mlakv_dispatch_table_get(MLAKV_BACKEND_CUDA, nullptr, 0, &need);
  std::string text(need, '\0');
  REQUIRE(mlakv_dispatch_table_get(MLAKV_BACKEND_CUDA, &text[0], text.size(), nullptr) == MLAKV_OK);
  struct Row {
    long a0, a1, s0, s1, sh0, sh1, l0, l1;  // -1: unbounded
    bool x8;
    int amax;    // -1: any call; 0 / 1: calls without / with an amax (printed as " amax=N" after sxh)
    int scales;  // -1: any call; 0 / 1: per-tensor / per-head calls (" scales=tensor|head")
    std::string line;
  };
  std::vector<Row> table;
  std::istringstream lines(text.c_str());
  std::string line;
  while (std::getline(lines, line)) {
    Row r{};
    char s1[24] = {0}, sh1[24] = {0}, l1[24] = {0};
    r.l1 = -1;  // rows on the device's L2 size: "arch=A-B l2=L-M s=..." (the l2 field is printed when set)
    const size_t l2_at = line.find(" l2=");
    std::string rest = line;
    if (l2_at != std::string::npos && l2_at < line.find(" s=")) {
      if (std::sscanf(line.c_str() + l2_at, " l2=%ld-%23s", &r.l0, l1) != 2) continue;
      r.l1 = l1[0] == '*' ? -1 : std::atol(l1);
      rest = line.substr(0, l2_at) + line.substr(line.find(" s=", l2_at));
    }
    if (std::sscanf(rest.c_str(), "arch=%ld-%ld s=%ld-%23s sxh=%ld-%23s", &r.a0, &r.a1, &r.s0, s1, &r.sh0, sh1) != 6) continue;
    r.s1 = s1[0] == '*' ? -1 : std::atol(s1);
    r.sh1 = sh1[0] == '*' ? -1 : std::atol(sh1);
    r.x8 = line.find("dims=x8") != std::string::npos;
    const size_t am = line.find(" amax=");
    r.amax = am == std::string::npos ? -1 : std::atoi(line.c_str() + am + 6);
    r.scales = line.find(" scales=head") != std::string::npos ? 1 : line.find(" scales=tensor") != std::string::npos ? 0 : -1;
    r.line = line;
    table.push_back(r);
  }
  REQUIRE(table.size() > 2);
  auto holds = [&](const Row& r, long s, long sh, int with_amax, int per_head) {
    return arch >= r.a0 && arch <= r.a1 && l2_mib >= r.l0 && (r.l1 < 0 || l2_mib <= r.l1) && s >= r.s0 &&
           (r.s1 < 0 || s <= r.s1) && sh >= r.sh0 && (r.sh1 < 0 || sh <= r.sh1) && (r.amax < 0 || r.amax == with_amax) &&
           (r.scales < 0 || r.scales == per_head);
  };
  int rows = 0, runs = 0;
  for (size_t i = 0; i < table.size(); ++i) {
    const Row& r = table[i];
    if (!r.x8 || arch < r.a0 || arch > r.a1 || l2_mib < r.l0 || (r.l1 >= 0 && l2_mib > r.l1)) continue;
    const std::string band = "sxh=" + std::to_string(r.sh0) + "-" + (r.sh1 < 0 ? std::string("*") : std::to_string(r.sh1));
    bool ran = false;
    const int with_amax = r.amax == 1 ? 1 : 0;  // rows for calls with an amax run such calls,
    const int per_head = r.scales == 1 ? 1 : 0;  // rows for per-head calls per-head ones
    for (long sh : {r.sh0, r.sh1}) {
      if (sh < 1) continue;
      long h = 0;
      for (long cand : {128L, 16L, 8L, 4L, 2L, 1L})
        if (sh % cand == 0 && holds(r, sh / cand, sh, with_amax, per_head)) { h = cand; break; }
      for (long s = r.s0; !h && s <= (r.s1 < 0 ? r.s0 + 8 : r.s1); ++s)
        if (sh % s == 0) h = sh / s;
      if (!h) continue;
      size_t first = 0;
      while (first < table.size() && !(table[first].x8 && holds(table[first], sh / h, sh, with_amax, per_head))) ++first;
      if (first != i) continue;  // shadowed here by an earlier row
      std::string plan;
      size_t bad = 0;
      if (with_amax) {
        bad = run_ext_row_case(sh / h, h, per_head || runs % 2 == 1, true, &plan);  // per tensor and per head in turn
      } else if (per_head) {
        bad = run_ext_row_case(sh / h, h, true, false, &plan);
      } else {
        Case c;
        c.s = sh / h; c.h = h;
        bad = run_case(c, &plan);
      }
      INFO("row: " << r.line << "\ns=" << sh / h << " h=" << h << " plan: " << plan);
      CHECK(bad == 0);
      CHECK(plan.find(band) != std::string::npos);
      ran = true;
      ++runs;
    }
    rows += ran;
  }
  MESSAGE(rows << " rows of the built-in table ran for sm_" << arch << ", " << runs << " sizes");
  CHECK(rows > 0);
}

TEST_CASE("cuda: a table file measured on this device applies to it and never changes bytes") {
  GPU_ONLY();
  // a file like mlakv-tune's, for this device: rows for three s*h bands, the rest falling through
  // to the built-in table; each band's calls must name the file's row and give the reference's bytes
  int dev = 0;
  CK(cudaGetDevice(&dev));
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, dev));
  std::string name = prop.name;
  for (char& ch : name)
    if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' || ch == '-')) ch = '_';
  const int arch = prop.major * 10 + prop.minor;
  auto device_line = [&](int units) {
    return "device backend=cuda arch=" + std::to_string(arch) + " units=" + std::to_string(units) +
           " l2=" + std::to_string(prop.l2CacheSize >> 20) + " name=" + name + "\n";
  };
  const std::string rows =
      "arch=" + std::to_string(arch) + "-" + std::to_string(arch) +
      " sxh=1-600 dims=ds variant=flat threads=512 lanes=32  # file row A\n"
      "arch=0-100000 sxh=601-5000 dims=x8 variant=tile2d threads=256 block=16 lanes=16 split=1  # file row B\n"
      "arch=0-100000 sxh=5001-20000 dims=x8 variant=persist threads=256 unroll=2 waves=2 lanes=8  # file row C\n";
  char path[] = "/tmp/mlakv-table-XXXXXX";
  const int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  close(fd);
  { std::ofstream(path) << "# a test's table\nmlakv-table 1\n" << device_line(prop.multiProcessorCount) << rows; }
  REQUIRE_MESSAGE(mlakv_dispatch_table_load(MLAKV_BACKEND_CUDA, path) == MLAKV_OK, mlakv_last_error());
  struct Sz { int64_t s, h; const char* row; } sizes[] = {
      {1, 16, "# file row A"}, {37, 16, "# file row A"}, {64, 16, "# file row B"}, {300, 16, "# file row B"},
      {64, 128, "# file row C"}, {150, 128, "# file row C"}, {4096, 16, nullptr}};
  for (const Sz& z : sizes) {
    Case c;
    c.s = z.s;
    c.h = z.h;
    c.in = z.s % 2 ? MLAKV_DTYPE_FP16 : MLAKV_DTYPE_BF16;
    std::string plan;
    const size_t bad = run_case(c, &plan);
    INFO("s=" << z.s << " h=" << z.h << " plan: " << plan);
    CHECK(bad == 0);
    if (z.row) {
      CHECK(plan.find(std::string("table=") + path) != std::string::npos);
      CHECK(plan.find(z.row) != std::string::npos);
    } else {
      CHECK(plan.find("table=built-in") != std::string::npos);  // beyond the file's rows
    }
  }
  // a file for another device changes nothing
  { std::ofstream(path) << "mlakv-table 1\n" << device_line(prop.multiProcessorCount + 1) << rows; }
  CHECK(mlakv_dispatch_table_load(MLAKV_BACKEND_CUDA, path) == MLAKV_ERR_TABLE_DEVICE);
  REQUIRE(mlakv_dispatch_table_reset(MLAKV_BACKEND_CUDA) == MLAKV_OK);
  Case c;
  c.s = 37;
  c.h = 16;
  std::string plan;
  CHECK(run_case(c, &plan) == 0);
  CHECK(plan.find("table=built-in") != std::string::npos);
  std::remove(path);
}

TEST_CASE("cuda: large sizes") {
  GPU_ONLY();
  { Case c; c.s = 16384; c.h = 128; check_case(c); }
  { Case c; c.s = 32768; c.h = 16; c.dev_scale = true; check_case(c); }
  { Case c; c.s = 4096; c.h = 128; c.in = MLAKV_DTYPE_FP32; c.out = MLAKV_DTYPE_E4M3FNUZ; check_case(c); }
  { Case c; c.s = 8191; c.h = 32; c.d = {96, 48, 80}; c.pad_out = 16; check_case(c); }
}

TEST_CASE("cuda: graph capture and replay, device scales read at replay time") {
  GPU_ONLY();
  const int64_t s = 64, h = 16, dn = 128, dr = 64, dv = 128, w = dn + dv;
  std::vector<uint16_t> kv(size_t(s * h * w)), pe(size_t(s * dr));
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.f, 2.f);
  for (auto& x : kv) x = tu::to_bf16(nd(rng));
  for (auto& x : pe) x = tu::to_bf16(nd(rng));
  void *d_kv, *d_pe, *d_k, *d_v;
  float* d_sc;
  CK(cudaMalloc(&d_kv, kv.size() * 2)); CK(cudaMalloc(&d_pe, pe.size() * 2));
  CK(cudaMalloc(&d_k, size_t(s * h * (dn + dr)))); CK(cudaMalloc(&d_v, size_t(s * h * dv)));
  CK(cudaMalloc(&d_sc, 8));
  CK(cudaMemcpy(d_kv, kv.data(), kv.size() * 2, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(d_pe, pe.data(), pe.size() * 2, cudaMemcpyHostToDevice));
  auto args = [&](void* kvp, void* pep, void* k, void* v, const float* sc, mlakv_backend b) {
    mlakv_pack_args a = ds_args(s, h, kvp, pep, k, v, b);
    a.k_scale_inv_ptr = sc; a.v_scale_inv_ptr = sc + 1;
    return a;
  };
  cudaStream_t st;
  CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  mlakv_pack_args ga = args(d_kv, d_pe, d_k, d_v, d_sc, MLAKV_BACKEND_CUDA);
  ga.stream = st;
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal));
  for (int i = 0; i < 3; ++i) REQUIRE(mlakv_pack_fp8(&ga) == MLAKV_OK);  // a PDL chain inside the graph
  CK(cudaStreamEndCapture(st, &graph));
  CK(cudaGraphInstantiate(&exec, graph, 0));
  for (float scale : {1.0f, 26.6f, 0.001f, 3000.0f}) {
    const float sc[2] = {scale, scale * 0.5f};
    CK(cudaMemcpy(d_sc, sc, 8, cudaMemcpyHostToDevice));
    CK(cudaMemset(d_k, 0xA5, size_t(s * h * (dn + dr))));
    CK(cudaMemset(d_v, 0xA5, size_t(s * h * dv)));
    CK(cudaGraphLaunch(exec, st));
    CK(cudaStreamSynchronize(st));
    std::vector<uint8_t> gk(size_t(s * h * (dn + dr))), gv(size_t(s * h * dv)), rk(gk.size()), rv(gv.size());
    CK(cudaMemcpy(gk.data(), d_k, gk.size(), cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(gv.data(), d_v, gv.size(), cudaMemcpyDeviceToHost));
    mlakv_pack_args ra = args(kv.data(), pe.data(), rk.data(), rv.data(), sc, MLAKV_BACKEND_REFERENCE);
    REQUIRE(mlakv_pack_fp8(&ra) == MLAKV_OK);
    INFO("scale " << scale);
    CHECK(gk == rk);
    CHECK(gv == rv);
  }
  cudaGraphExecDestroy(exec); cudaGraphDestroy(graph); cudaStreamDestroy(st);
  cudaFree(d_kv); cudaFree(d_pe); cudaFree(d_k); cudaFree(d_v); cudaFree(d_sc);
}

TEST_CASE("cuda: per-layer buffers of the same shapes (plans reused with new pointers)") {
  GPU_ONLY();
  // a layer loop: the same shapes on per-layer device buffers, scales by value and by pointer,
  // calls alternating between layers; then the same shapes in host memory (AUTO must move to the
  // reference backend) and at a 2-byte offset (a plan for 16-byte-aligned buffers must not be
  // reused); every output compared with the reference, byte for byte, after poisoning
  const int64_t s = 37, h = 16, dn = 128, dr = 64, dv = 128, w = dn + dv;
  const size_t kv_n = size_t(s * h * w + 8), pe_n = size_t(s * dr + 8), ko_n = size_t(s * h * (dn + dr)), vo_n = size_t(s * h * dv);
  struct Layer {
    std::vector<uint8_t> kv, pe;
    void *d_kv = nullptr, *d_pe = nullptr, *d_k = nullptr, *d_v = nullptr;
    float* d_sc = nullptr;
    float sc[2];
  };
  std::mt19937_64 rng(g_seed++);
  std::vector<Layer> layers(3);
  for (size_t l = 0; l < layers.size(); ++l) {
    Layer& L = layers[l];
    L.kv.resize(kv_n * 2); L.pe.resize(pe_n * 2);
    fill_random(L.kv, MLAKV_DTYPE_BF16, rng);
    fill_random(L.pe, MLAKV_DTYPE_BF16, rng);
    L.sc[0] = 20.0f + float(l); L.sc[1] = 40.0f - float(l);
    CK(cudaMalloc(&L.d_kv, L.kv.size())); CK(cudaMalloc(&L.d_pe, L.pe.size()));
    CK(cudaMalloc(&L.d_k, ko_n)); CK(cudaMalloc(&L.d_v, vo_n)); CK(cudaMalloc(&L.d_sc, 8));
    CK(cudaMemcpy(L.d_kv, L.kv.data(), L.kv.size(), cudaMemcpyHostToDevice));
    CK(cudaMemcpy(L.d_pe, L.pe.data(), L.pe.size(), cudaMemcpyHostToDevice));
    CK(cudaMemcpy(L.d_sc, L.sc, 8, cudaMemcpyHostToDevice));
  }
  auto args = [&](void* kv, void* pe, void* k, void* v, mlakv_backend b) { return ds_args(s, h, kv, pe, k, v, b); };
  auto reference = [&](const Layer& L, std::vector<uint8_t>* rk, std::vector<uint8_t>* rv) {
    rk->assign(ko_n, 0xA5); rv->assign(vo_n, 0xA5);
    std::vector<uint8_t> kv = L.kv, pe = L.pe;
    mlakv_pack_args ra = args(kv.data(), pe.data(), rk->data(), rv->data(), MLAKV_BACKEND_REFERENCE);
    ra.k_scale_inv = L.sc[0]; ra.v_scale_inv = L.sc[1];
    REQUIRE(mlakv_pack_fp8(&ra) == MLAKV_OK);
  };
  std::vector<uint8_t> gk(ko_n), gv(vo_n), rk, rv;
  for (int round = 0; round < 4; ++round)
    for (size_t l = 0; l < layers.size(); ++l) {
      Layer& L = layers[l];
      CK(cudaMemset(L.d_k, 0xA5, ko_n)); CK(cudaMemset(L.d_v, 0xA5, vo_n));
      mlakv_pack_args a = args(L.d_kv, L.d_pe, L.d_k, L.d_v, round & 1 ? MLAKV_BACKEND_CUDA : MLAKV_BACKEND_AUTO);
      if (round < 2) { a.k_scale_inv = L.sc[0]; a.v_scale_inv = L.sc[1]; }
      else { a.k_scale_inv_ptr = L.d_sc; a.v_scale_inv_ptr = L.d_sc + 1; }
      REQUIRE_MESSAGE(mlakv_pack_fp8(&a) == MLAKV_OK, mlakv_last_error());
      CK(cudaDeviceSynchronize());
      CK(cudaMemcpy(gk.data(), L.d_k, ko_n, cudaMemcpyDeviceToHost));
      CK(cudaMemcpy(gv.data(), L.d_v, vo_n, cudaMemcpyDeviceToHost));
      reference(L, &rk, &rv);
      INFO("round " << round << " layer " << l);
      CHECK(gk == rk);
      CHECK(gv == rv);
    }
  // the same shapes in host memory, AUTO: the reference backend writes the host outputs
  {
    Layer& L = layers[0];
    std::vector<uint8_t> hk(ko_n, 0xA5), hv(vo_n, 0xA5);
    mlakv_pack_args a = args(L.kv.data(), L.pe.data(), hk.data(), hv.data(), MLAKV_BACKEND_AUTO);
    a.k_scale_inv = L.sc[0]; a.v_scale_inv = L.sc[1];
    REQUIRE_MESSAGE(mlakv_pack_fp8(&a) == MLAKV_OK, mlakv_last_error());
    reference(L, &rk, &rv);
    CHECK(hk == rk);
    CHECK(hv == rv);
    // and the CUDA backend named explicitly refuses it, writing nothing
    std::vector<uint8_t> hk2(ko_n, 0xA5), hv2(vo_n, 0xA5);
    a = args(L.kv.data(), L.pe.data(), hk2.data(), hv2.data(), MLAKV_BACKEND_CUDA);
    mlakv_pack_args prev = args(L.d_kv, L.d_pe, L.d_k, L.d_v, MLAKV_BACKEND_CUDA);
    REQUIRE(mlakv_pack_fp8(&prev) == MLAKV_OK);
    CHECK(mlakv_pack_fp8(&a) == MLAKV_ERR_MEMORY_SPACE);
    for (uint8_t x : hk2) REQUIRE(x == 0xA5);
    // only one pointer changed, to host memory: the unchanged ones are not asked about again, the
    // changed one still is
    REQUIRE(mlakv_pack_fp8(&prev) == MLAKV_OK);
    mlakv_pack_args one = prev;
    one.k_out.data = hk2.data();
    CHECK(mlakv_pack_fp8(&one) == MLAKV_ERR_MEMORY_SPACE);
    CHECK(std::string(mlakv_last_error()).find("k_out") != std::string::npos);
    for (uint8_t x : hk2) REQUIRE(x == 0xA5);
    one.backend = MLAKV_BACKEND_AUTO;  // AUTO: no backend reaches both device and host-only memory
    prev.backend = MLAKV_BACKEND_AUTO;
    REQUIRE(mlakv_pack_fp8(&prev) == MLAKV_OK);
    CHECK(mlakv_pack_fp8(&one) == MLAKV_ERR_MEMORY_SPACE);
    for (uint8_t x : hk2) REQUIRE(x == 0xA5);
  }
  // k_pe 2 bytes off its 16-byte alignment, after an aligned call of the same shapes
  for (size_t l = 0; l < 2; ++l) {
    Layer& L = layers[l];
    mlakv_pack_args a = args(L.d_kv, L.d_pe, L.d_k, L.d_v, MLAKV_BACKEND_CUDA);
    a.k_scale_inv = L.sc[0]; a.v_scale_inv = L.sc[1];
    REQUIRE(mlakv_pack_fp8(&a) == MLAKV_OK);
    CK(cudaMemcpy(static_cast<char*>(L.d_pe) + 2, L.pe.data(), L.pe.size() - 2, cudaMemcpyHostToDevice));
    CK(cudaMemset(L.d_k, 0xA5, ko_n)); CK(cudaMemset(L.d_v, 0xA5, vo_n));
    a.k_pe.data = static_cast<char*>(L.d_pe) + 2;
    REQUIRE_MESSAGE(mlakv_pack_fp8(&a) == MLAKV_OK, mlakv_last_error());
    CK(cudaDeviceSynchronize());
    CK(cudaMemcpy(gk.data(), L.d_k, ko_n, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(gv.data(), L.d_v, vo_n, cudaMemcpyDeviceToHost));
    reference(L, &rk, &rv);
    INFO("misaligned k_pe, layer " << l);
    CHECK(gk == rk);
    CHECK(gv == rv);
    CK(cudaMemcpy(L.d_pe, L.pe.data(), L.pe.size(), cudaMemcpyHostToDevice));
  }
  CHECK(cudaGetLastError() == cudaSuccess);
  for (Layer& L : layers) {
    cudaFree(L.d_kv); cudaFree(L.d_pe); cudaFree(L.d_k); cudaFree(L.d_v); cudaFree(L.d_sc);
  }
}

TEST_CASE("cuda: host threads calling at once, each with its own stream, shapes and types") {
  GPU_ONLY();
  // eight threads start together (their first calls race on the per-device caches and on the
  // per-kernel thread limits the plan asks for once) and each packs 40 times on its own stream,
  // alternating two buffer sets (so the plan is reused with new pointers); every output is
  // compared with the reference backend's bytes, computed beforehand on this thread
  struct Job {
    int64_t s, h;
    mlakv_dtype in, out;
    bool dev_scale;
  };
  const Job jobs[] = {{1, 16, MLAKV_DTYPE_BF16, MLAKV_DTYPE_E4M3FN, false},
                      {7, 128, MLAKV_DTYPE_FP16, MLAKV_DTYPE_E5M2, true},
                      {64, 16, MLAKV_DTYPE_FP32, MLAKV_DTYPE_E4M3FN, true},
                      {300, 16, MLAKV_DTYPE_BF16, MLAKV_DTYPE_E4M3FNUZ, false},
                      {33, 128, MLAKV_DTYPE_BF16, MLAKV_DTYPE_E4M3FN, true},
                      {1024, 16, MLAKV_DTYPE_BF16, MLAKV_DTYPE_E4M3FN, false},
                      {5, 3, MLAKV_DTYPE_FP16, MLAKV_DTYPE_E5M2FNUZ, false},
                      {129, 128, MLAKV_DTYPE_FP32, MLAKV_DTYPE_E5M2, true}};
  constexpr int kJobs = int(sizeof jobs / sizeof jobs[0]), kCalls = 40;
  struct Set {
    std::vector<uint8_t> kv, pe, rk, rv;
    void *d_kv = nullptr, *d_pe = nullptr, *d_k = nullptr, *d_v = nullptr;
  };
  struct State {
    Set set[2];
    float* d_sc = nullptr;
    cudaStream_t st = nullptr;
    size_t ko_n = 0, vo_n = 0;
    int bad_status = 0;
    size_t bad_bytes = 0;
    std::string first_error;
  };
  const float sc[2] = {26.6f, 47.6f};
  std::vector<State> state(kJobs);
  auto make = [&](const Job& j, void* kv, void* pe, void* k, void* v, const float* scp, mlakv_backend b) {
    mlakv_pack_args a = ds_args(j.s, j.h, kv, pe, k, v, b, j.in, j.out);
    if (scp) { a.k_scale_inv_ptr = scp; a.v_scale_inv_ptr = scp + 1; }
    else { a.k_scale_inv = sc[0]; a.v_scale_inv = sc[1]; }
    return a;
  };
  std::mt19937_64 rng(g_seed++);
  for (int i = 0; i < kJobs; ++i) {
    const Job& j = jobs[i];
    State& S = state[i];
    const int e = esize(j.in);
    S.ko_n = size_t(j.s * j.h * 192);
    S.vo_n = size_t(j.s * j.h * 128);
    CK(cudaMalloc(&S.d_sc, 8));
    CK(cudaMemcpy(S.d_sc, sc, 8, cudaMemcpyHostToDevice));
    CK(cudaStreamCreateWithFlags(&S.st, cudaStreamNonBlocking));
    for (Set& b : S.set) {
      b.kv.resize(size_t(j.s * j.h * 256 * e));
      b.pe.resize(size_t(j.s * 64 * e));
      fill_random(b.kv, j.in, rng);
      fill_random(b.pe, j.in, rng);
      b.rk.assign(S.ko_n, 0xA5);
      b.rv.assign(S.vo_n, 0xA5);
      mlakv_pack_args ra = make(j, b.kv.data(), b.pe.data(), b.rk.data(), b.rv.data(), nullptr, MLAKV_BACKEND_REFERENCE);
      REQUIRE_MESSAGE(mlakv_pack_fp8(&ra) == MLAKV_OK, mlakv_last_error());
      CK(cudaMalloc(&b.d_kv, b.kv.size())); CK(cudaMalloc(&b.d_pe, b.pe.size()));
      CK(cudaMalloc(&b.d_k, S.ko_n)); CK(cudaMalloc(&b.d_v, S.vo_n));
      CK(cudaMemcpy(b.d_kv, b.kv.data(), b.kv.size(), cudaMemcpyHostToDevice));
      CK(cudaMemcpy(b.d_pe, b.pe.data(), b.pe.size(), cudaMemcpyHostToDevice));
    }
  }
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kJobs; ++i)
    threads.emplace_back([&, i] {
      const Job& j = jobs[i];
      State& S = state[i];
      std::vector<uint8_t> gk(S.ko_n), gv(S.vo_n);
      ready.fetch_add(1);
      while (ready.load() < kJobs) std::this_thread::yield();
      for (int c = 0; c < kCalls; ++c) {
        Set& b = S.set[c & 1];
        const bool ok = cudaMemsetAsync(b.d_k, 0xA5, S.ko_n, S.st) == cudaSuccess &&
                        cudaMemsetAsync(b.d_v, 0xA5, S.vo_n, S.st) == cudaSuccess;
        mlakv_pack_args a = make(j, b.d_kv, b.d_pe, b.d_k, b.d_v, j.dev_scale ? S.d_sc : nullptr,
                                 c % 3 == 2 ? MLAKV_BACKEND_AUTO : MLAKV_BACKEND_CUDA);
        a.stream = S.st;
        const mlakv_status st = mlakv_pack_fp8(&a);
        if (!ok || st != MLAKV_OK) {
          if (!S.bad_status++) S.first_error = std::string(mlakv_status_string(st)) + ": " + mlakv_last_error();
          continue;
        }
        if (cudaMemcpyAsync(gk.data(), b.d_k, S.ko_n, cudaMemcpyDeviceToHost, S.st) != cudaSuccess ||
            cudaMemcpyAsync(gv.data(), b.d_v, S.vo_n, cudaMemcpyDeviceToHost, S.st) != cudaSuccess ||
            cudaStreamSynchronize(S.st) != cudaSuccess) {
          if (!S.bad_status++) S.first_error = "CUDA copy or synchronize failed";
          continue;
        }
        for (size_t k = 0; k < S.ko_n; ++k) S.bad_bytes += gk[k] != b.rk[k];
        for (size_t k = 0; k < S.vo_n; ++k) S.bad_bytes += gv[k] != b.rv[k];
      }
    });
  for (auto& t : threads) t.join();
  for (int i = 0; i < kJobs; ++i) {
    State& S = state[i];
    INFO("thread " << i << ": s=" << jobs[i].s << " h=" << jobs[i].h << " in=" << jobs[i].in << " out=" << jobs[i].out
         << " dev_scale=" << jobs[i].dev_scale << " " << S.first_error);
    CHECK(S.bad_status == 0);
    CHECK(S.bad_bytes == 0);
    for (Set& b : S.set) { cudaFree(b.d_kv); cudaFree(b.d_pe); cudaFree(b.d_k); cudaFree(b.d_v); }
    cudaFree(S.d_sc);
    cudaStreamDestroy(S.st);
  }
  CHECK(cudaGetLastError() == cudaSuccess);
}

TEST_CASE("cuda: routing and memory checks") {
  GPU_ONLY();
  const int64_t s = 4, h = 2;
  std::vector<uint16_t> hkv(size_t(s * h * 256), 0x3F80), hpe(size_t(s * 64), 0x3F80);
  std::vector<uint8_t> hk(size_t(s * h * 192), 0xA5), hv(size_t(s * h * 128), 0xA5);
  auto args = [&](void* kv, void* pe, void* k, void* v, mlakv_backend b) { return ds_args(s, h, kv, pe, k, v, b); };
  // host memory on the CUDA backend: refused, nothing written
  mlakv_pack_args a = args(hkv.data(), hpe.data(), hk.data(), hv.data(), MLAKV_BACKEND_CUDA);
  CHECK(mlakv_pack_fp8(&a) == MLAKV_ERR_MEMORY_SPACE);
  CHECK(std::string(mlakv_last_error()).find("k_nope") != std::string::npos);
  for (auto b : hk) REQUIRE(b == 0xA5);
  // AUTO with host memory: the reference backend
  a.backend = MLAKV_BACKEND_AUTO;
  char plan[512];
  REQUIRE(mlakv_pack_fp8_plan(&a, plan, sizeof plan, nullptr) == MLAKV_OK);
  CHECK(std::string(plan).find("backend=reference") != std::string::npos);
  REQUIRE(mlakv_pack_fp8(&a) == MLAKV_OK);
  CHECK(hk[0] == 0x38);
  // AUTO with device memory: cuda; device memory on the reference backend: refused
  void *dkv, *dpe, *dk, *dv;
  CK(cudaMalloc(&dkv, hkv.size() * 2)); CK(cudaMalloc(&dpe, hpe.size() * 2));
  CK(cudaMalloc(&dk, hk.size())); CK(cudaMalloc(&dv, hv.size()));
  mlakv_pack_args d = args(dkv, dpe, dk, dv, MLAKV_BACKEND_AUTO);
  REQUIRE(mlakv_pack_fp8_plan(&d, plan, sizeof plan, nullptr) == MLAKV_OK);
  CHECK(std::string(plan).find("backend=cuda") != std::string::npos);
  d.backend = MLAKV_BACKEND_REFERENCE;
  CHECK(mlakv_pack_fp8(&d) == MLAKV_ERR_MEMORY_SPACE);
  d.backend = MLAKV_BACKEND_CUDA;
  d.device = 999;
  CHECK(mlakv_pack_fp8(&d) == MLAKV_ERR_DEVICE);
  // no sticky CUDA error left behind by any of the refusals
  CHECK(cudaGetLastError() == cudaSuccess);
  cudaFree(dkv); cudaFree(dpe); cudaFree(dk); cudaFree(dv);
}

// ---- per-head scales and amax (issue 15) ----------------------------------------------------------------
namespace {

// Device memory of one test, freed when it ends.
struct CudaMem : ext::Mem {
  std::vector<void*> blocks;
  cudaStream_t stream = nullptr;  // what sync() waits for (nullptr: the device)
  ~CudaMem() override {
    for (void* b : blocks) cudaFree(b);
  }
  void* alloc(size_t bytes) override {
    void* p = nullptr;
    REQUIRE(cudaMalloc(&p, bytes) == cudaSuccess);
    blocks.push_back(p);
    return p;
  }
  void put(void* dst, const void* src, size_t bytes) override { REQUIRE(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice) == cudaSuccess); }
  void get(void* dst, const void* src, size_t bytes) override { REQUIRE(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost) == cudaSuccess); }
  void sync() override { REQUIRE((stream ? cudaStreamSynchronize(stream) : cudaDeviceSynchronize()) == cudaSuccess); }
};

// Runs c on the CUDA backend and checks everything ext::run checks (bytes vs the reference's per-head
// call and vs per-tensor calls on each head, amax vs a host loop and the reference).
ext::Result check_ext(ext::Case c, bool forced_row_runs = true) {
  CudaMem mem;
  c.backend = MLAKV_BACKEND_CUDA;
  c.seed = g_seed++;
  const ext::Result r = ext::run(mem, c);
  INFO(ext::describe(c) << "\nplan: " << r.plan << "\n" << r.detail);
  REQUIRE_MESSAGE(r.st == MLAKV_OK, r.error);
  CHECK(r.bad_bytes == 0);
  CHECK(r.bad_bytes_heads == 0);
  CHECK(r.bad_amax == 0);
  if (c.table && forced_row_runs) CHECK(r.plan.find("# catch-all") == std::string::npos);
  CHECK(cudaGetLastError() == cudaSuccess);
  return r;
}

size_t run_ext_row_case(int64_t s, int64_t h, bool per_head, bool amax, std::string* plan) {
  CudaMem mem;
  ext::Case c;
  c.s = s;
  c.h = h;
  c.per_head = per_head;
  c.k_amax = c.v_amax = amax;
  c.scales = per_head ? ext::kPow2 : ext::kEqual;
  c.backend = MLAKV_BACKEND_CUDA;
  c.seed = g_seed++;
  const ext::Result r = ext::run(mem, c);
  *plan = r.plan;
  if (r.st != MLAKV_OK) return size_t(-1);
  return r.bad_bytes + r.bad_bytes_heads + r.bad_amax;
}

std::string ext_row(const char* variant, int threads, int block, int unroll, int waves, int early, int lanes, int split,
                    int wide, int evict_first = 0, const char* dims = "x8") {
  char row[256];
  std::snprintf(row, sizeof row,
                "arch=0-100000 s=1-* sxh=1-* dims=%s variant=%s threads=%d block=%d unroll=%d waves=%d early=%d lanes=%d "
                "split=%d evict_first=%d wide=%d\n",
                dims, variant, threads, block, unroll, waves, early, lanes, split, evict_first, wide);
  return row;
}

}  // namespace

TEST_CASE("cuda: tile2d's lean instance: rows with lean=1 run it where the call fits it, with the same bytes") {
  GPU_ONLY();
  ext::check_lean_instance({4, 8, 16, 32, 64}, [](const ext::Case& c) { return check_ext(c); });
}

TEST_CASE("cuda: tile2d's lean amax instances: amax calls on lean=1 rows (commit=block and commit=lane), the reference's bytes and the host loop's maxima") {
  GPU_ONLY();
  ext::check_lean_amax({2, 8, 16, 32, 64}, [](const ext::Case& c) { return check_ext(c); });
}

TEST_CASE("cuda: commit=lane rows: tile2d's lane-commit instance gives the reference's bytes and the host loop's maxima") {
  GPU_ONLY();
  ext::check_lane_commit([](const ext::Case& c) { return check_ext(c); });
}

TEST_CASE("cuda: tile2d's lean instance, blocks heads first: up to 65535 token tiles (grid y), beyond them the tile2d body") {
  GPU_ONLY();
  // 2-token tiles: s = 131070 is 65535 tiles (the lean instance, grid (h, 65535)); one token more is
  // 65536, which grid y cannot hold: the row's general tile2d body runs it on its (tiles, heads) grid
  const std::string row = ext::lean_row(2, 1, true, true);
  for (int64_t s : {int64_t(131070), int64_t(131071)}) {
    ext::Case c;
    c.s = s;
    c.h = 2;
    c.per_head = true;
    c.scales = ext::kPow2;
    c.k_amax = c.v_amax = false;
    c.table = row.c_str();
    const ext::Result r = check_ext(c);
    INFO(ext::describe(c) << "\nplan: " << r.plan);
    CHECK(r.plan.find("order=heads") != std::string::npos);
    CHECK((r.plan.find("units=ds16s lean") != std::string::npos) == (s == 131070));
  }
}

TEST_CASE("cuda: large sizes: an operand spanning over 4 GiB keeps 64-bit offsets (tile2d's lean instance does not run)") {
  GPU_ONLY();
  // k_out's token stride 2^32 bytes: token 1's row lies 4 GiB past token 0's; with 32-bit offsets it
  // would land on token 0's. The reference writes the same rows to a compact host layout.
  const int64_t s = 2, h = 2, dn = 128, dr = 64, dv = 128, w = dn + dv, dk = dn + dr;
  const int64_t big = int64_t(1) << 32;
  const size_t ko_bytes = size_t(big + h * dk);
  std::mt19937_64 rng(g_seed++);
  std::vector<uint16_t> kv(size_t(s * h * w)), pe(size_t(s * dr));
  for (auto& x : kv) x = tu::to_bf16(float(int32_t(rng() >> 40)) / float(1 << 20));
  for (auto& x : pe) x = tu::to_bf16(float(int32_t(rng() >> 40)) / float(1 << 18));
  void *d_kv, *d_pe, *d_ko, *d_vo;
  REQUIRE(cudaMalloc(&d_kv, kv.size() * 2) == cudaSuccess);
  REQUIRE(cudaMalloc(&d_pe, pe.size() * 2) == cudaSuccess);
  if (cudaMalloc(&d_ko, ko_bytes) != cudaSuccess) {
    cudaGetLastError();
    cudaFree(d_kv);
    cudaFree(d_pe);
    MESSAGE("skipped: cannot allocate 4 GiB on this GPU");
    return;
  }
  REQUIRE(cudaMalloc(&d_vo, size_t(s * h * dv)) == cudaSuccess);
  REQUIRE(cudaMemcpy(d_kv, kv.data(), kv.size() * 2, cudaMemcpyHostToDevice) == cudaSuccess);
  REQUIRE(cudaMemcpy(d_pe, pe.data(), pe.size() * 2, cudaMemcpyHostToDevice) == cudaSuccess);
  REQUIRE(cudaMemset(d_ko, tu::kPoison, ko_bytes) == cudaSuccess);
  REQUIRE(cudaMemset(d_vo, tu::kPoison, size_t(s * h * dv)) == cudaSuccess);
  auto make = [&](void* kvp, void* pep, void* kop, void* vop, int64_t ko_st, mlakv_backend b) {
    mlakv_pack_args a = MLAKV_PACK_ARGS_INIT;
    a.k_nope = tu::tensor3(kvp, MLAKV_DTYPE_BF16, s, h, dn, h * w, w);
    a.v = tu::tensor3(static_cast<uint16_t*>(kvp) + dn, MLAKV_DTYPE_BF16, s, h, dv, h * w, w);
    a.k_pe = tu::tensor3(pep, MLAKV_DTYPE_BF16, s, 1, dr, dr, dr);
    a.k_out = tu::tensor3(kop, MLAKV_DTYPE_E4M3FN, s, h, dk, ko_st, dk);
    a.v_out = tu::tensor3(vop, MLAKV_DTYPE_E4M3FN, s, h, dv, h * dv, dv);
    a.k_scale_inv = 1.0f / 0.0375f;
    a.v_scale_inv = 1.0f / 0.021f;
    a.backend = b;
    return a;
  };
  const std::string table = ext::lean_row(16, 1, true) + kCatchAll;
  REQUIRE(mlakv_dispatch_table_set(MLAKV_BACKEND_CUDA, table.c_str()) == MLAKV_OK);
  const mlakv_pack_args compact = make(d_kv, d_pe, d_ko, d_vo, h * dk, MLAKV_BACKEND_CUDA);
  const mlakv_pack_args spread = make(d_kv, d_pe, d_ko, d_vo, big, MLAKV_BACKEND_CUDA);
  const std::string plan_compact = tu::plan_text(compact), plan_spread = tu::plan_text(spread);
  CHECK(plan_compact.find("units=ds16s lean") != std::string::npos);
  CHECK(plan_spread.find("variant=tile2d") != std::string::npos);
  CHECK(plan_spread.find("units=ds16s") != std::string::npos);
  CHECK(plan_spread.find("units=ds16s lean") == std::string::npos);
  const mlakv_status st = mlakv_pack_fp8(&spread);
  mlakv_dispatch_table_reset(MLAKV_BACKEND_CUDA);
  REQUIRE_MESSAGE(st == MLAKV_OK, mlakv_last_error());
  REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
  std::vector<uint8_t> rk(size_t(s * h * dk), tu::kPoison), rv(size_t(s * h * dv), tu::kPoison);
  const mlakv_pack_args ref = make(kv.data(), pe.data(), rk.data(), rv.data(), h * dk, MLAKV_BACKEND_REFERENCE);
  REQUIRE_MESSAGE(mlakv_pack_fp8(&ref) == MLAKV_OK, mlakv_last_error());
  // each token's rows, and 64 bytes past them (untouched)
  const size_t row_bytes = size_t(h * dk);
  std::vector<uint8_t> got(row_bytes + 64), vo(rv.size());
  for (int64_t t = 0; t < s; ++t) {
    REQUIRE(cudaMemcpy(got.data(), static_cast<uint8_t*>(d_ko) + t * big, t + 1 < s ? got.size() : row_bytes,
                       cudaMemcpyDeviceToHost) == cudaSuccess);
    CHECK(std::memcmp(got.data(), rk.data() + t * row_bytes, row_bytes) == 0);
    if (t + 1 < s) CHECK(tu::all_bytes(got.data() + row_bytes, 64, tu::kPoison));
  }
  REQUIRE(cudaMemcpy(vo.data(), d_vo, vo.size(), cudaMemcpyDeviceToHost) == cudaSuccess);
  CHECK(vo == rv);
  cudaFree(d_kv); cudaFree(d_pe); cudaFree(d_ko); cudaFree(d_vo);
}

TEST_CASE("cuda per-head scales and amax: every variant, unit layout and unroll, as the reference and a host loop; per head without amax too") {
  GPU_ONLY();
  // each head its own power of two (K and V apart), amax arrays starting below and above, inputs
  // with NaN, +-inf, -0 and subnormals; sizes that give several blocks, persist loops of several
  // chunks, partial tiles, and rows of every head count against the warp (h = 1, 3, 16, 128)
  struct L { int lanes, split, wide; } layouts[] = {{16, 0, 0}, {8, 0, 0}, {16, 1, 0}, {32, 1, 0}, {8, 0, 1}};
  const int64_t hs[] = {16, 3, 128, 1};
  int k = 0;
  for (const char* v : {"flat", "tile2d", "persist"})
    for (const L& l : layouts)
      for (int unroll : {1, 2, 4}) {
        if (unroll == 4 && (l.split || l.wide)) continue;  // compiled with unroll 1 and 2 only
        ++k;
        const int threads = k % 3 == 0 ? 64 : k % 3 == 1 ? 256 : 128;
        const std::string table = ext_row(v, threads, k % 2 ? 16 : 5, unroll, 1 + k % 2, k % 2, l.lanes, l.split, l.wide, k % 4 == 0);
        ext::Case c;
        c.h = hs[k % 4];
        c.s = c.h >= 128 ? 3 + k % 5 : 37 + 19 * (k % 7);
        c.in = tu::kInputDtypes[k % 3];
        c.out = tu::kFp8Dtypes[(k / 3) % 4];
        c.per_head = k % 5 != 4;
        c.k_amax = k % 7 != 1;
        c.v_amax = k % 7 != 2;
        c.inf = k % 3 == 0;
        c.inf_pe = k % 5 == 0;
        c.nan_head = k % 4 == 1;
        c.pad_out = k % 3 == 1 ? 16 : 0;
        c.table = table.c_str();
        check_ext(c);
        // per head without amax: the plain instance where a thread's pairs share a head (tile2d,
        // flat with unroll 1), the ext one elsewhere
        c.per_head = true;
        c.k_amax = c.v_amax = false;
        c.scales = k % 2 ? ext::kPow2 : ext::kRandom;
        check_ext(c);
      }
  // the general kernel, and x8 units of other dims: lanes 8, 12 (rows across warp boundaries), 4
  struct D { int64_t dn, dr, dv; } dims[] = {{128, 64, 128}, {64, 32, 64}, {96, 48, 80}, {16, 16, 32}, {5, 3, 7}};
  for (const D& d : dims)
    for (const char* v : {"general", "flat", "tile2d", "persist"}) {
      const bool vec = std::strcmp(v, "general") != 0;
      if (vec && d.dn % 8) continue;
      for (bool per_head : {true, false}) {
        ++k;
        const std::string table = ext_row(v, k % 2 ? 128 : 64, 4, 1 + k % 2, 1, 0, 16, 0, 0, 0, vec ? "x8" : "any");
        ext::Case c;
        c.dn = d.dn; c.dr = d.dr; c.dv = d.dv;
        c.s = 17 + k % 40;
        c.h = k % 3 == 0 ? 5 : k % 3 == 1 ? 16 : 1;
        c.in = tu::kInputDtypes[k % 3];
        c.nan_head = k % 2 == 0;
        c.inf_pe = k % 3 == 0;
        c.per_head = per_head;
        c.table = table.c_str();
        check_ext(c);
      }
    }
}

TEST_CASE("cuda per-head scales: equal multipliers give the per-tensor bytes; every input type and format") {
  GPU_ONLY();
  // the GPU's own per-tensor bytes against its per-head bytes with every head at that multiplier
  for (mlakv_dtype in : tu::kInputDtypes)
    for (mlakv_dtype out : tu::kFp8Dtypes)
      for (int64_t h : {1, 16, 128}) {
        const int64_t s = 33;
        const int e = tu::dtype_size(in);
        std::mt19937_64 rng(g_seed++);
        std::vector<uint8_t> kv(size_t(s * h * 256 * e)), pe(size_t(s * 64 * e));
        fill_random(kv, in, rng);
        fill_random(pe, in, rng);
        CudaMem mem;
        void* d_kv = mem.alloc(kv.size());
        void* d_pe = mem.alloc(pe.size());
        uint8_t* d_k[2] = {static_cast<uint8_t*>(mem.alloc(size_t(s * h * 192))), static_cast<uint8_t*>(mem.alloc(size_t(s * h * 192)))};
        uint8_t* d_v[2] = {static_cast<uint8_t*>(mem.alloc(size_t(s * h * 128))), static_cast<uint8_t*>(mem.alloc(size_t(s * h * 128)))};
        float* d_sc = static_cast<float*>(mem.alloc(size_t(2 * h) * 4));
        mem.put(d_kv, kv.data(), kv.size());
        mem.put(d_pe, pe.data(), pe.size());
        std::vector<float> sc(size_t(2 * h));
        for (int64_t j = 0; j < h; ++j) { sc[size_t(j)] = 26.6f; sc[size_t(h + j)] = 47.6f; }
        mem.put(d_sc, sc.data(), sc.size() * 4);
        for (int per_head = 0; per_head < 2; ++per_head) {
          CK(cudaMemset(d_k[per_head], 0xA5, size_t(s * h * 192)));
          CK(cudaMemset(d_v[per_head], 0xA5, size_t(s * h * 128)));
          mlakv_pack_args a = ds_args(s, h, d_kv, d_pe, d_k[per_head], d_v[per_head], MLAKV_BACKEND_CUDA, in, out);
          a.k_scale_inv_ptr = d_sc;
          a.v_scale_inv_ptr = d_sc + h;
          a.scale_granularity = per_head ? MLAKV_SCALE_PER_HEAD : MLAKV_SCALE_PER_TENSOR;
          REQUIRE_MESSAGE(mlakv_pack_fp8(&a) == MLAKV_OK, mlakv_last_error());
        }
        mem.sync();
        std::vector<uint8_t> k0(size_t(s * h * 192)), k1(k0.size()), v0(size_t(s * h * 128)), v1(v0.size());
        mem.get(k0.data(), d_k[0], k0.size()); mem.get(k1.data(), d_k[1], k1.size());
        mem.get(v0.data(), d_v[0], v0.size()); mem.get(v1.data(), d_v[1], v1.size());
        INFO("in=" << tu::dtype_name(in) << " out=" << tu::dtype_name(out) << " h=" << h);
        CHECK(k0 == k1);
        CHECK(v0 == v1);
      }
  // and through ext::run (the built-in rows), powers of two and arbitrary multipliers per head
  int k = 0;
  for (mlakv_dtype in : tu::kInputDtypes)
    for (mlakv_dtype out : tu::kFp8Dtypes)
      for (ext::Scales sc : {ext::kEqual, ext::kPow2, ext::kRandom}) {
        ++k;
        ext::Case c;
        c.s = k % 2 ? 9 : 300;
        c.h = k % 3 ? 16 : 128;
        c.in = in;
        c.out = out;
        c.scales = sc;
        c.k_amax = c.v_amax = k % 2 == 0;
        check_ext(c);
      }
}

TEST_CASE("cuda amax: inf, NaN, -0 and subnormals, per tensor and per head, across the built-in rows' sizes") {
  GPU_ONLY();
  // the built-in table's rows (every band of sm_90 from 1 to beyond L2), per tensor and per head,
  // both amax arrays, against the host loop; a head whose v is all NaN finds +0
  const int64_t sizes[][2] = {{1, 16}, {8, 16}, {64, 16}, {300, 16}, {1, 128}, {8, 128}, {64, 128}, {400, 128},
                              {2048, 16}, {1024, 128}, {4096, 128}, {16384, 16}};
  int k = 0;
  for (const auto& z : sizes)
    for (bool per_head : {false, true}) {
      ++k;
      ext::Case c;
      c.s = z[0];
      c.h = z[1];
      c.per_head = per_head;
      c.scales = per_head ? ext::kPow2 : ext::kEqual;
      c.inf = k % 3 == 0;
      c.inf_pe = k % 5 == 0;
      c.nan_head = k % 2 == 0;
      c.in = k % 4 == 3 ? MLAKV_DTYPE_FP16 : MLAKV_DTYPE_BF16;
      check_ext(c);
    }
  // misaligned and padded layouts (the general path, or x8 rows with padding), per head
  for (int64_t m : {0, 1, 3})
    for (bool per_head : {false, true}) {
      ext::Case c;
      c.s = 70;
      c.h = 12;
      c.misalign_in = m;
      c.pad_in = 8;
      c.pad_out = 8;
      c.fused_kv = m != 1;
      c.per_head = per_head;
      check_ext(c);
    }
}

TEST_CASE("cuda amax accumulates across calls: per tensor and per head, from below and from above") {
  GPU_ONLY();
  for (bool per_head : {false, true})
    for (const char* v : {"flat", "tile2d", "persist", "general"}) {
      const std::string table = ext_row(v, 128, 8, 2, 1, 1, 16, 0, 0, 0, std::strcmp(v, "general") ? "x8" : "any");
      ext::Case c;
      c.s = 200;
      c.h = 16;
      c.per_head = per_head;
      c.calls = 4;
      c.inf = false;
      c.table = table.c_str();
      check_ext(c);
    }
}

TEST_CASE("cuda per-head scales and amax with PDL on and off") {
  GPU_ONLY();
  for (int pdl : {MLAKV_PDL_AUTO, MLAKV_PDL_ON, MLAKV_PDL_OFF})
    for (int64_t s : {1, 8, 384}) {
      ext::Case c;
      c.s = s;
      c.h = 128;
      c.pdl = pdl;
      c.calls = 2;
      check_ext(c);
    }
}

TEST_CASE("cuda amax through a cached plan: amax pointers that come and go between calls of one geometry") {
  GPU_ONLY();
  // the same arguments but for the amax pointers: each call must run what its pointers ask for
  // (the plan cache plans anew when amax pointers come or go: rows may be for amax calls only)
  const int64_t s = 64, h = 16;
  std::vector<uint16_t> kv(size_t(s * h * 256)), pe(size_t(s * 64));
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.f, 3.f);
  for (auto& x : kv) x = tu::to_bf16(nd(rng));
  for (auto& x : pe) x = tu::to_bf16(nd(rng));
  float want_k = 0, want_v = 0;
  for (int64_t r = 0; r < s * h; ++r)
    for (int64_t i = 0; i < 128; ++i) {
      want_k = std::max(want_k, std::fabs(tu::widen_bf16(kv[size_t(r * 256 + i)])));
      want_v = std::max(want_v, std::fabs(tu::widen_bf16(kv[size_t(r * 256 + 128 + i)])));
    }
  for (uint16_t x : pe) want_k = std::max(want_k, std::fabs(tu::widen_bf16(x)));
  CudaMem mem;
  void* d_kv = mem.alloc(kv.size() * 2);
  void* d_pe = mem.alloc(pe.size() * 2);
  void* d_k = mem.alloc(size_t(s * h * 192));
  void* d_v = mem.alloc(size_t(s * h * 128));
  float* d_am = static_cast<float*>(mem.alloc(8));
  mem.put(d_kv, kv.data(), kv.size() * 2);
  mem.put(d_pe, pe.data(), pe.size() * 2);
  mlakv_pack_args a = ds_args(s, h, d_kv, d_pe, d_k, d_v, MLAKV_BACKEND_CUDA);
  auto amax = [&] {
    float r[2];
    mem.sync();
    mem.get(r, d_am, 8);
    return std::make_pair(r[0], r[1]);
  };
  CK(cudaMemset(d_am, 0, 8));
  REQUIRE(mlakv_pack_fp8(&a) == MLAKV_OK);  // no amax
  CHECK(amax().first == 0.0f);
  a.k_amax = d_am;
  a.v_amax = d_am + 1;
  REQUIRE(mlakv_pack_fp8(&a) == MLAKV_OK);
  CHECK(amax().first == want_k);
  CHECK(amax().second == want_v);
  const float minus[2] = {-1.0f, -1.0f};
  mem.put(d_am, minus, 8);
  a.k_amax = a.v_amax = nullptr;
  REQUIRE(mlakv_pack_fp8(&a) == MLAKV_OK);  // gone again: nothing written
  CHECK(amax().first == -1.0f);
  CHECK(amax().second == -1.0f);
  a.v_amax = d_am + 1;  // only V
  REQUIRE(mlakv_pack_fp8(&a) == MLAKV_OK);
  CHECK(amax().first == -1.0f);
  CHECK(amax().second == want_v);
  CHECK(cudaGetLastError() == cudaSuccess);
}

TEST_CASE("cuda graph capture: per-head scales changed and amax reset between replays") {
  GPU_ONLY();
  // a graph of two per-head calls with amax (a PDL chain), replayed after new per-head multipliers
  // were written and the amax arrays zeroed: bytes as the reference's with those multipliers, amax
  // as the host loop's (both calls see the same inputs: the maximum once)
  const int64_t s = 64, h = 16;
  std::vector<uint16_t> kv(size_t(s * h * 256)), pe(size_t(s * 64));
  std::mt19937 rng(12);
  std::normal_distribution<float> nd(0.f, 2.f);
  for (int64_t t = 0; t < s; ++t)
    for (int64_t j = 0; j < h; ++j)
      for (int64_t i = 0; i < 256; ++i) kv[size_t((t * h + j) * 256 + i)] = tu::to_bf16(nd(rng) * float(1 + j));
  for (auto& x : pe) x = tu::to_bf16(nd(rng));
  std::vector<float> want_k(size_t(h), 0.f), want_v(size_t(h), 0.f);
  float pe_max = 0;
  for (uint16_t x : pe) pe_max = std::max(pe_max, std::fabs(tu::widen_bf16(x)));
  for (int64_t t = 0; t < s; ++t)
    for (int64_t j = 0; j < h; ++j)
      for (int64_t i = 0; i < 128; ++i) {
        want_k[size_t(j)] = std::max({want_k[size_t(j)], pe_max, std::fabs(tu::widen_bf16(kv[size_t((t * h + j) * 256 + i)]))});
        want_v[size_t(j)] = std::max(want_v[size_t(j)], std::fabs(tu::widen_bf16(kv[size_t((t * h + j) * 256 + 128 + i)])));
      }
  CudaMem mem;
  void* d_kv = mem.alloc(kv.size() * 2);
  void* d_pe = mem.alloc(pe.size() * 2);
  void* d_k = mem.alloc(size_t(s * h * 192));
  void* d_v = mem.alloc(size_t(s * h * 128));
  float* d_sc = static_cast<float*>(mem.alloc(size_t(2 * h) * 4));
  float* d_am = static_cast<float*>(mem.alloc(size_t(2 * h) * 4));
  mem.put(d_kv, kv.data(), kv.size() * 2);
  mem.put(d_pe, pe.data(), pe.size() * 2);
  auto args = [&](void* kvp, void* pep, void* k, void* v, const float* sc, float* am, mlakv_backend b) {
    mlakv_pack_args a = ds_args(s, h, kvp, pep, k, v, b);
    a.scale_granularity = MLAKV_SCALE_PER_HEAD;
    a.k_scale_inv_ptr = sc;
    a.v_scale_inv_ptr = sc + h;
    a.k_amax = am;
    a.v_amax = am + h;
    return a;
  };
  cudaStream_t st;
  CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  mem.stream = st;
  mlakv_pack_args ga = args(d_kv, d_pe, d_k, d_v, d_sc, d_am, MLAKV_BACKEND_CUDA);
  ga.stream = st;
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal));
  for (int i = 0; i < 2; ++i) REQUIRE(mlakv_pack_fp8(&ga) == MLAKV_OK);
  CK(cudaStreamEndCapture(st, &graph));
  CK(cudaGraphInstantiate(&exec, graph, 0));
  for (int replay = 0; replay < 4; ++replay) {
    std::vector<float> sc(size_t(2 * h));
    for (int64_t j = 0; j < h; ++j) {
      sc[size_t(j)] = std::ldexp(1.0f, int((j + replay) % 9) - 4);
      sc[size_t(h + j)] = std::ldexp(1.0f, 3 - int((j * 3 + replay) % 7));
    }
    CK(cudaMemcpy(d_sc, sc.data(), sc.size() * 4, cudaMemcpyHostToDevice));
    CK(cudaMemset(d_am, 0, size_t(2 * h) * 4));
    CK(cudaMemset(d_k, 0xA5, size_t(s * h * 192)));
    CK(cudaMemset(d_v, 0xA5, size_t(s * h * 128)));
    CK(cudaGraphLaunch(exec, st));
    CK(cudaStreamSynchronize(st));
    std::vector<uint8_t> gk(size_t(s * h * 192)), gv(size_t(s * h * 128)), rk(gk.size()), rv(gv.size());
    std::vector<float> gam(size_t(2 * h)), ram(size_t(2 * h), 0.f);
    mem.get(gk.data(), d_k, gk.size());
    mem.get(gv.data(), d_v, gv.size());
    mem.get(gam.data(), d_am, gam.size() * 4);
    mlakv_pack_args ra = args(kv.data(), pe.data(), rk.data(), rv.data(), sc.data(), ram.data(), MLAKV_BACKEND_REFERENCE);
    REQUIRE_MESSAGE(mlakv_pack_fp8(&ra) == MLAKV_OK, mlakv_last_error());
    INFO("replay " << replay);
    CHECK(gk == rk);
    CHECK(gv == rv);
    for (int64_t j = 0; j < h; ++j) {
      CHECK(gam[size_t(j)] == want_k[size_t(j)]);
      CHECK(gam[size_t(h + j)] == want_v[size_t(j)]);
      CHECK(ram[size_t(j)] == want_k[size_t(j)]);
    }
  }
  cudaGraphExecDestroy(exec); cudaGraphDestroy(graph); cudaStreamDestroy(st);
  CHECK(cudaGetLastError() == cudaSuccess);
}

TEST_CASE("cuda amax: many blocks racing for one destination, steady state and from zero") {
  GPU_ONLY();
  // a large call whose every warp finds the same maximum (the value is everywhere): from zero the
  // first warps race their atomics, then (second call) every warp reads the destination and skips
  const int64_t s = 4096, h = 128;
  std::vector<uint16_t> kv(size_t(s * h * 256), tu::to_bf16(-3.5)), pe(size_t(s * 64), tu::to_bf16(1.0));
  CudaMem mem;
  void* d_kv = mem.alloc(kv.size() * 2);
  void* d_pe = mem.alloc(pe.size() * 2);
  void* d_k = mem.alloc(size_t(s * h * 192));
  void* d_v = mem.alloc(size_t(s * h * 128));
  float* d_am = static_cast<float*>(mem.alloc(size_t(2 * h) * 4));
  mem.put(d_kv, kv.data(), kv.size() * 2);
  mem.put(d_pe, pe.data(), pe.size() * 2);
  for (bool per_head : {false, true}) {
    const int64_t n = per_head ? h : 1;
    CK(cudaMemset(d_am, 0, size_t(2 * h) * 4));
    mlakv_pack_args a = ds_args(s, h, d_kv, d_pe, d_k, d_v, MLAKV_BACKEND_CUDA);
    std::vector<float> sc(size_t(2 * h), 1.0f);
    float* d_sc = static_cast<float*>(mem.alloc(sc.size() * 4));
    mem.put(d_sc, sc.data(), sc.size() * 4);
    a.scale_granularity = per_head ? MLAKV_SCALE_PER_HEAD : MLAKV_SCALE_PER_TENSOR;
    a.k_scale_inv_ptr = d_sc;
    a.v_scale_inv_ptr = d_sc + n;
    a.k_amax = d_am;
    a.v_amax = d_am + n;
    for (int call = 0; call < 2; ++call) {
      REQUIRE(mlakv_pack_fp8(&a) == MLAKV_OK);
      std::vector<float> got(size_t(2 * n));
      mem.sync();
      mem.get(got.data(), d_am, got.size() * 4);
      INFO("per_head " << per_head << " call " << call);
      for (int64_t j = 0; j < n; ++j) {
        CHECK(got[size_t(j)] == 3.5f);
        CHECK(got[size_t(n + j)] == 3.5f);
      }
    }
  }
}

int main(int argc, char** argv) {
  int n = 0;
  g_have_gpu = cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
  cudaGetLastError();
  if (!g_have_gpu) {
    std::printf("test_cuda: no CUDA device: skipped\n");
    return 77;
  }
  if (const char* s = std::getenv("MLAKV_TEST_SEED")) g_seed = std::strtoull(s, nullptr, 0);
  else g_seed = std::random_device{}();
  std::printf("test_cuda: seed 0x%llx (set MLAKV_TEST_SEED to repeat)\n", (unsigned long long)g_seed);
  doctest::Context ctx(argc, argv);
  return ctx.run();
}
