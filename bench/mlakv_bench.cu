// mlakv benchmark: in one run, on the same buffers, times
//   - mlakv as dispatched (the built-in table),
//   - every variant/configuration candidate (forced through mlakv_dispatch_table_set), so the
//     table can be checked and re-derived,
//   - a naive unfused CUDA baseline (concat into a bf16 K, then two quantize kernels),
//   - a device-to-device copy of the same byte count (the roofline),
// plus the host cost of one eager mlakv_pack_fp8 call against a bare cudaLaunchKernelEx (an empty
// kernel with a parameter block of the same size and the same PDL attribute: the floor every
// launch pays). DeepSeek dims, bf16 -> e4m3fn, k_nope and v the two halves of one [s, h, 256].
//
// Timing: `graph` = µs per call from CUDA-graph replay of a chain of calls on the same buffers
// (L2 warm, the method of ../shared/anchors and triton.testing.do_bench_cudagraph);
// `rot` = the same with the chain cycling through enough buffer sets to exceed L2 (cold L2).
//
//   mlakv_bench [--sizes h:s,h:s,...] [--quick] [--no-sweep] [--only NAME,NAME] [--no-host] [--table FILE] [--json FILE]
//   mlakv_bench --ext [--sizes h:s,...] [--rounds N] [--ph-gap BYTES] [--placements N] [--json FILE]
//   (--only keeps the sweep candidates whose name contains one of the parts; --no-host skips the
//   host-cost section; --table installs a dispatch table from a file first, as
//   mlakv_dispatch_table_set would)
//   --ext: only the cost of per-head scales and amax (issue 15), in one process: per-tensor,
//   per-head, per-tensor + amax and per-head + amax (amax in steady state: the arrays already hold
//   the maximum, as in a calibration), and per-head + amax zeroed before every call (a memset node
//   before each call, against per-tensor after the same memset), and the two amax modes again with
//   K's and V's maxima in allocations of their own ("apart": separate framework tensors, on lines
//   of their own; the first two modes put v_amax right after k_amax, on k_amax's line, so every
//   block's two atomics meet there), each a graph of calls on the same
//   buffers (L2 warm), the modes interleaved over --rounds rounds (default 30) in rotating order;
//   overheads are the medians of the per-round differences against per-tensor, in us and %, checked
//   against the bars: per-head <= 1% at >= 100 MB moved and <= 0.05 us at s <= 64, amax <= 3% and
//   <= 0.1 us. Default sizes: h in {16, 128} x s in {1, 8, 64, 1024, 4096, 16384}. Per head, V's
//   multipliers follow K's in one allocation, --ph-gap BYTES (default 0) after their end; per
//   tensor, K's and V's scales are the first of K's and of V's multipliers (every mode packs the
//   same bytes, checked before timing). Where a caller's scales lie changes
//   the time of either path by up to ~0.15 us at L2-resident sizes (docs/perf-notes.md), so
//   --placements N (default 1) measures each size with that allocation at N places (other 2 MiB
//   pages, other lines) and reports, per mode, the median over them of each time and overhead,
//   and the range of the per-head overhead and of the per-tensor time.
#include <cuda_runtime.h>
#include <mlakv/mlakv.h>

#include <algorithm>
#include <cmath>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "bench_util.cuh"
#include "gpu/vendor.h"
#include "gpu/pack_kernels.cuh"  // kern::Params: the size of the bare launch's parameter block

namespace {

using bench::check;
using bench::DN;
using bench::DR;
using bench::DV;
using bench::Set;
using bench::Timer;
using bench::W;

struct Size {
  int64_t h, s;
  double bytes() const { return bench::bytes_moved(s, h); }
};

mlakv_pack_args make_args(const Size& z, const Set& b, const float* sc, cudaStream_t st) {
  return bench::make_args(z.s, z.h, MLAKV_DTYPE_BF16, b, sc, st);
}

// The launch floor: an empty kernel that only takes part in PDL, with a parameter block the size
// of the library's kernels' (the host cost of a launch depends on it, not on the kernel body).
__global__ void empty_pdl(const mlakv::kern::Params) {
  mlakv::vendor::launch_dependents();
  mlakv::vendor::grid_dependency_wait();
}

// ---- the naive unfused baseline: concat into bf16 K, then quantize K and V

__global__ void naive_concat(const uint16_t* kv, const uint16_t* pe, uint16_t* k, int64_t s, int64_t h) {
  const int64_t n = s * h * (DN + DR);
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t row = i / (DN + DR), c = i % (DN + DR), t = row / h;
    k[i] = c < DN ? kv[row * W + c] : pe[t * DR + (c - DN)];
  }
}
__global__ void naive_quant(const uint16_t* x, int64_t row_stride, int64_t off, int64_t d, uint8_t* out,
                            int64_t rows, const float* scale) {
  const float m = *scale;
  const int64_t n = rows * d;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / d, c = i % d;
    const float f = mlakv::bits_f32(uint32_t(x[r * row_stride + off + c]) << 16) * m;
    out[i] = uint8_t(mlakv::vendor::encode2<mlakv::Fp8Format::E4M3FN>(f, 0.f));
  }
}

struct Candidate {
  std::string name;   // printable
  std::string table;  // a table forcing it: its row, then the catch-all (see kCatchAll)
};
// Ends every candidate's table: a candidate row that cannot run a size (its kernel's register
// limit, say) leaves the call to this row, and the sweep skips the candidate for that size.
using bench::kCatchAll;

std::vector<Candidate> candidates(const Size& z, const std::string& only) {
  std::vector<Candidate> c;
  // lanes 16 / 8, and with unroll 1 the split-k_pe layouts: l16s (16 lanes) and l32 (4-element
  // units); flat also with wide units, l8w (8 lanes, 32-byte loads)
  auto add1 = [&](const char* v, int th, int block, int unroll, int waves, int early, int lanes, int split = 0,
                  int wide = 0) {
    char row[256], name[96];
    std::snprintf(row, sizeof row, "arch=0-100000 s=1-* sxh=1-* dims=x8 variant=%s threads=%d block=%d unroll=%d waves=%d early=%d lanes=%d split=%d wide=%d\n",
                  v, th, block, unroll, waves, early, lanes, split, wide);
    std::snprintf(name, sizeof name, "%s t%d b%d u%d w%d e%d l%d%s", v, th, block, unroll, waves, early, lanes,
                  wide ? "w" : split && lanes == 16 ? "s" : "");
    c.push_back({name, std::string(row) + kCatchAll});
  };
  auto add = [&](const char* v, int th, int block, int unroll, int waves, int early) {
    add1(v, th, block, unroll, waves, early, 16);
    add1(v, th, block, unroll, waves, early, 8);
    if (unroll == 1) {
      add1(v, th, block, unroll, waves, early, 16, 1);
      add1(v, th, block, unroll, waves, early, 32);
    }
    if (unroll <= 2 && std::strcmp(v, "flat") == 0) add1(v, th, block, unroll, waves, early, 8, 0, 1);
  };
  const int64_t sh = z.s * z.h;
  for (int th : {64, 128, 256, 512})
    for (int u : {1, 2, 4})
      for (int early : {0, 1}) add("flat", th, 1, u, 0, early);
  for (int early : {0, 1}) add1("flat", 1024, 1, 1, 0, early, 16, 1);
  if (z.s <= 64)
    for (int block : {1, 2, 4, 16})
      for (int th : {64, 128, 256}) add("tile2d", th, block, 1, 0, 1);
  if (z.s > 64 && z.s <= 4096)  // 2-D tiles of many tokens x one head (upstream's v0 at BLOCK_S=16)
    for (int block : {8, 16, 32})
      for (int th : {128, 256, 512})
        for (int early : {0, 1}) add("tile2d", th, block, 1, 0, early);
  for (int lanes : {16, 32})  // evict-first stores, 8- and 4-element units
    for (int th : {256, 512}) {
      char row[256], name[96];
      std::snprintf(row, sizeof row, "arch=0-100000 s=1-* sxh=1-* dims=x8 variant=flat threads=%d unroll=1 early=0 lanes=%d evict_first=1\n", th, lanes);
      std::snprintf(name, sizeof name, "flat t%d u1 e0 l%d evict", th, lanes);
      c.push_back({name, std::string(row) + kCatchAll});
    }
  if (sh >= 2048)
    for (int th : {256, 512})
      for (int u : {2, 4})
        for (int waves : {1, 2, 4, 8}) add("persist", th, 1, u, waves, 0);
  if (!only.empty()) {  // --only: keep candidates whose name contains one of the comma-separated parts
    std::vector<Candidate> kept;
    for (auto& x : c) {
      size_t pos = 0;
      bool keep = false;
      while (pos <= only.size() && !keep) {
        const size_t comma = only.find(',', pos);
        const std::string part = only.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
        if (!part.empty() && x.name.find(part) != std::string::npos) keep = true;
        if (comma == std::string::npos) break;
        pos = comma + 1;
      }
      if (keep) kept.push_back(x);
    }
    c.swap(kept);
  }
  return c;
}

struct Row {
  Size z;
  std::string plan;
  double mlakv = 0, mlakv_rot = 0, naive = 0, copy = 0, best = 0;
  std::string best_name;
  std::vector<std::pair<std::string, double>> sweep;
};

std::vector<Size> parse_sizes(const std::string& arg) {
  std::vector<Size> out;
  size_t pos = 0;
  while (pos < arg.size()) {
    size_t comma = arg.find(',', pos);
    std::string tok = arg.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    long long h, s;
    if (std::sscanf(tok.c_str(), "%lld:%lld", &h, &s) == 2) out.push_back({h, s});
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return out;
}

// Host cost of g over f, measured in pairs: each pair times one f() and one g(), in alternating
// order, so slow drifts of this (virtualised, frequency-scaling) host hit both and neither always
// pays for going second. Several (f, g) variants are measured interleaved: rounds of `block` pairs
// of each variant in turn, the order rotating every round, so a host that changes state mid-run
// (its bare launch moves between ~2.6 and ~4.3 us) moves every variant alike. The first pair of each block is not counted (it follows another variant's calls).
// Returns per variant the medians of f, g and of the per-pair differences g - f (the robust
// number), in microseconds.
struct Paired {
  double f, g, diff;
  double diff_f_first, diff_g_first;  // the same medians over the pairs of one order each
};
struct PairVariant {
  std::function<void(int)> f, g;
};
std::vector<Paired> interleaved_pairs(const std::vector<PairVariant>& vs, int rounds, int block) {
  using clk = std::chrono::steady_clock;
  const size_t nv = vs.size();
  std::vector<std::vector<double>> tf(nv), tg(nv), td(nv), td_f(nv), td_g(nv);
  for (size_t v = 0; v < nv; ++v)
    for (int i = 0; i < 200; ++i) { vs[v].f(i); vs[v].g(i); }
  for (int r = 0; r < rounds; ++r)
    for (size_t j = 0; j < nv; ++j) {
      const size_t v = (j + size_t(r)) % nv;
      for (int i = 0; i <= block; ++i) {
        const int k = r * block + i;
        // the order inside a pair alternates (f g, g f, ...), so whatever the second call of a
        // pair pays or saves for following the first hits f and g alike
        const bool f_first = (i & 1) == 0;
        const auto t0 = clk::now();
        if (f_first) vs[v].f(k); else vs[v].g(k);
        const auto t1 = clk::now();
        if (f_first) vs[v].g(k); else vs[v].f(k);
        const auto t2 = clk::now();
        if (i == 0) continue;
        const double a = std::chrono::duration<double, std::micro>(t1 - t0).count(),
                     b = std::chrono::duration<double, std::micro>(t2 - t1).count();
        tf[v].push_back(f_first ? a : b);
        tg[v].push_back(f_first ? b : a);
        td[v].push_back(tg[v].back() - tf[v].back());
        (f_first ? td_f : td_g)[v].push_back(td[v].back());
      }
    }
  auto med = [](std::vector<double>& x) {
    std::nth_element(x.begin(), x.begin() + x.size() / 2, x.end());
    return x[x.size() / 2];
  };
  std::vector<Paired> out;
  for (size_t v = 0; v < nv; ++v) out.push_back({med(tf[v]), med(tg[v]), med(td[v]), med(td_f[v]), med(td_g[v])});
  return out;
}

double host_us_per_call(int n, const std::function<void()>& f) {
  for (int i = 0; i < 50; ++i) f();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) f();
  const auto t1 = std::chrono::steady_clock::now();
  return std::chrono::duration<double, std::micro>(t1 - t0).count() / n;
}

struct Opts {
  std::vector<Size> sizes;
  bool sweep = true, host = true, ext = false;
  int rounds = 30;
  int64_t ph_gap = 0;  // --ext: bytes between the end of K's per-head multipliers and V's
  int placements = 1;  // --ext: placements of the scales a size is measured at (medians reported)
  std::string json_path, only, table_in;
};

Opts parse_args(int argc, char** argv) {
  Opts o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--sizes" && i + 1 < argc) o.sizes = parse_sizes(argv[++i]);
    else if (a == "--quick") o.sizes = parse_sizes("16:1,16:8,16:64,16:384,16:2048,16:16384,128:1,128:8,128:64,128:384,128:2048,128:16384");
    else if (a == "--no-sweep") o.sweep = false;
    else if (a == "--json" && i + 1 < argc) o.json_path = argv[++i];
    else if (a == "--only" && i + 1 < argc) o.only = argv[++i];
    else if (a == "--no-host") o.host = false;
    else if (a == "--table" && i + 1 < argc) o.table_in = argv[++i];
    else if (a == "--ext") o.ext = true;
    else if (a == "--rounds" && i + 1 < argc) o.rounds = std::max(3, std::atoi(argv[++i]));
    else if (a == "--ph-gap" && i + 1 < argc) o.ph_gap = std::max<int64_t>(0, std::atoll(argv[++i])) / 4 * 4;
    else if (a == "--placements" && i + 1 < argc) o.placements = std::min(64, std::max(1, std::atoi(argv[++i])));
    else {
      std::fprintf(stderr,
                   "usage: mlakv_bench [--sizes h:s,...] [--quick] [--no-sweep] [--only NAME,NAME] [--no-host] [--table FILE] [--json FILE]\n"
                   "       mlakv_bench --ext [--sizes h:s,...] [--rounds N] [--ph-gap BYTES] [--placements N] [--json FILE]\n"
                   "             (per-head scales and amax: overheads vs per-tensor; --ph-gap: V's per-head multipliers BYTES\n"
                   "             after the end of K's, default 0; --placements: the scales at N places, medians reported)\n");
      std::exit(2);
    }
  }
  if (o.sizes.empty() && o.ext)
    o.sizes = parse_sizes("16:1,16:8,16:64,16:1024,16:4096,16:16384,128:1,128:8,128:64,128:1024,128:4096,128:16384");
  if (o.sizes.empty())
    o.sizes = parse_sizes(
        "16:1,16:2,16:3,16:4,16:8,16:16,16:64,16:128,16:384,16:1024,16:2048,16:4096,16:8192,16:16384,16:32768,"
        "128:1,128:2,128:4,128:5,128:8,128:16,128:64,128:128,128:384,128:1024,128:2048,128:4096,128:8192,128:16384");
  return o;
}

// "as dispatched" then means by the table in this file
void install_table(const std::string& path) {
  std::ifstream tf(path);
  std::stringstream text;
  text << tf.rdbuf();
  if (!tf || mlakv_dispatch_table_set(MLAKV_BACKEND_CUDA, text.str().c_str()) != MLAKV_OK) {
    std::fprintf(stderr, "--table %s: %s\n", path.c_str(), tf ? mlakv_last_error() : "cannot read the file");
    std::exit(2);
  }
  std::printf("dispatch table from %s\n", path.c_str());
}

// Host cost of one eager mlakv_pack_fp8 (h = 16, s = 1) against a bare launch, in five cases.
void host_cost(Timer& T, const cudaDeviceProp& prop, float* d_sc, const std::string& json_path) {
  const Size z{16, 1}, z2{16, 2};  // buffers for s = 2; most calls use s = 1
  Set b;
  CK(cudaMalloc(&b.kv, size_t(z2.s * z2.h * W * 2)));
  CK(cudaMalloc(&b.pe, size_t(z2.s * DR * 2)));
  CK(cudaMalloc(&b.k, size_t(z2.s * z2.h * (DN + DR))));
  CK(cudaMalloc(&b.v, size_t(z2.s * z2.h * DV)));
  CK(cudaMemset(b.kv, 0, size_t(z2.s * z2.h * W * 2)));
  CK(cudaMemset(b.pe, 0, size_t(z2.s * DR * 2)));
  mlakv_pack_args a = make_args(z, b, d_sc, T.st);
  mlakv_pack_args a_trust = a;
  a_trust.flags = MLAKV_FLAG_TRUST_POINTERS;
  char plan[512];
  check(mlakv_pack_fp8_plan(&a, plan, sizeof plan, nullptr), "plan");
  // the bare launch: an empty kernel, the parameter block size and PDL attribute of the library's
  // launches; alternating between two parameter blocks where mlakv alternates pointers
  mlakv::kern::Params P1{}, P2{};
  P2.k_scale_inv_ptr = d_sc;
  cudaLaunchConfig_t lc{};
  lc.gridDim = dim3(1);
  lc.blockDim = dim3(128);
  lc.stream = T.st;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  lc.attrs = attr;
  lc.numAttrs = prop.major >= 9 ? 1 : 0;
  auto bare = [&](int k) { CK(cudaLaunchKernelEx(&lc, empty_pdl, k & 1 ? P1 : P2)); };
  mlakv_pack_args a2 = a;  // same buffers, other scale pointer order: new pointers, same shapes
  const mlakv_pack_args a3 = make_args(z2, b, d_sc, T.st);  // s = 2: new shapes
  std::swap(a2.k_scale_inv_ptr, a2.v_scale_inv_ptr);
  mlakv_pack_args a2_trust = a2;
  a2_trust.flags = MLAKV_FLAG_TRUST_POINTERS;
  auto sync_every = [&](int i) { if ((i & 1023) == 1023) CK(cudaStreamSynchronize(T.st)); };
  // each mlakv case paired with a bare launch: 80 rounds of 250 pairs each, interleaved (20000 pairs a case)
  const std::vector<Paired> hp = interleaved_pairs(
      {{[&](int i) { sync_every(i); bare(0); }, [&](int) { check(mlakv_pack_fp8(&a), "pack"); }},
       {[&](int i) { sync_every(i); bare(0); }, [&](int) { check(mlakv_pack_fp8(&a_trust), "pack"); }},
       {[&](int i) { sync_every(i); bare(i); }, [&](int i) { check(mlakv_pack_fp8(i & 1 ? &a : &a2), "pack"); }},
       {[&](int i) { sync_every(i); bare(i); }, [&](int i) { check(mlakv_pack_fp8(i & 1 ? &a_trust : &a2_trust), "pack"); }},
       {[&](int i) { sync_every(i); bare(i); }, [&](int i) { check(mlakv_pack_fp8(i & 1 ? &a : &a3), "pack"); }}},
      80, 250);
  const Paired &rep = hp[0], &trust = hp[1], &alt = hp[2], &alt_trust = hp[3], &shape = hp[4];
  CK(cudaStreamSynchronize(T.st));
  std::printf("host cost per eager call (h=16, s=1; medians of 20000 pairs a case, each a bare cudaLaunchKernelEx of an "
              "empty kernel with the same parameter size and an mlakv_pack_fp8 in alternating order, the five cases "
              "interleaved in blocks of 250; +x = median per-pair difference); bar: +0.3 us\n"
              "  same arguments as the last call: bare %.3f us, mlakv %.3f us (+%.3f); with MLAKV_FLAG_TRUST_POINTERS "
              "bare %.3f, mlakv %.3f (+%.3f)\n"
              "  new pointers every call, same shapes (two sets alternating: pointers re-validated, plan reused): "
              "bare %.3f us, mlakv %.3f us (+%.3f); with MLAKV_FLAG_TRUST_POINTERS bare %.3f, mlakv %.3f (+%.3f)\n"
              "  new shapes every call (s = 1 and 2 alternating: full validation, routing and planning): bare %.3f us, "
              "mlakv %.3f us (+%.3f)\n",
              rep.f, rep.g, rep.diff, trust.f, trust.g, trust.diff, alt.f, alt.g, alt.diff, alt_trust.f, alt_trust.g,
              alt_trust.diff, shape.f, shape.g, shape.diff);
  std::printf("  by order within a pair (median difference when the bare launch goes first / when mlakv goes first): "
              "repeated +%.3f / +%.3f, trusted +%.3f / +%.3f, new pointers +%.3f / +%.3f, trusted +%.3f / +%.3f, "
              "new shapes +%.3f / +%.3f\n",
              rep.diff_f_first, rep.diff_g_first, trust.diff_f_first, trust.diff_g_first, alt.diff_f_first,
              alt.diff_g_first, alt_trust.diff_f_first, alt_trust.diff_g_first, shape.diff_f_first, shape.diff_g_first);
  std::printf("  plan: %s\n", plan);
  {  // where host time goes
    int d = 0;
    const double t_getdev = host_us_per_call(20000, [&] { cudaGetDevice(&d); });
    cudaPointerAttributes pa;
    const double t_ptr = host_us_per_call(20000, [&] { cudaPointerGetAttributes(&pa, b.kv); });
    mlakv_pack_args bad = a;
    bad.struct_size = 0;
    const double t_reject = host_us_per_call(20000, [&] { (void)mlakv_pack_fp8(&bad); });
    mlakv_pack_args late = a_trust;
    late.device = 4242;  // fails in plan, after validation and routing
    const double t_late = host_us_per_call(20000, [&] { (void)mlakv_pack_fp8(&late); });
    std::printf("  host breakdown: cudaGetDevice %.3f us, cudaPointerGetAttributes %.3f us, rejected call %.3f us, "
                "validated+routed (trust) call failing in plan %.3f us\n", t_getdev, t_ptr, t_reject, t_late);
  }
  {  // PDL in graphs: chains of 40 launches, with and without the attribute
    auto chain = [&](bool pdl) {
      cudaLaunchConfig_t c = lc;
      c.numAttrs = pdl ? lc.numAttrs : 0;
      return T.graph_us(40, [&](int) { CK(cudaLaunchKernelEx(&c, empty_pdl, P1)); });
    };
    std::printf("  graph chain per launch: empty kernel PDL %.3f us / plain %.3f us; mlakv_pack_fp8 %.3f us (trust %.3f us)\n",
                chain(true), chain(false), T.graph_us(40, [&](int) { check(mlakv_pack_fp8(&a), "pack"); }),
                T.graph_us(40, [&](int) { check(mlakv_pack_fp8(&a_trust), "pack"); }));
  }
  if (std::FILE* jf = json_path.empty() ? nullptr : std::fopen((json_path + ".host").c_str(), "w")) {
    std::fprintf(jf, "{\"bare_us\": %.4f, \"mlakv_us\": %.4f, \"mlakv_trust_us\": %.4f, \"bare_alternating_us\": %.4f, "
                     "\"mlakv_new_pointers_us\": %.4f, \"mlakv_new_pointers_trust_us\": %.4f, \"mlakv_new_shapes_us\": %.4f, "
                     "\"extra_us\": %.4f, \"extra_trust_us\": %.4f, \"extra_new_pointers_us\": %.4f, "
                     "\"extra_new_pointers_trust_us\": %.4f, \"extra_new_shapes_us\": %.4f, "
                     "\"extra_bare_first_us\": %.4f, \"extra_mlakv_first_us\": %.4f}\n",
                 rep.f, rep.g, trust.g, alt.f, alt.g, alt_trust.g, shape.g, rep.diff, trust.diff, alt.diff, alt_trust.diff,
                 shape.diff, rep.diff_f_first, rep.diff_g_first);
    std::fclose(jf);
  }
  cudaFree(b.kv); cudaFree(b.pe); cudaFree(b.k); cudaFree(b.v);
}

// One size: mlakv as dispatched (L2 warm and rotating buffer sets), the naive baseline, a device
// copy of the same byte count, and the sweep.
Row time_size(Timer& T, const cudaDeviceProp& prop, const Size& z, float* d_sc, const Opts& o) {
  Row r;
  r.z = z;
  const double bytes = z.bytes();
  // enough buffer sets that a rotating chain overflows L2 (cold), capped by memory
  const int nsets = int(std::min<double>(16, std::max<double>(1, std::ceil(3.0 * prop.l2CacheSize / bytes))));
  std::vector<Set> sets(static_cast<size_t>(nsets));
  std::vector<uint16_t> host(size_t(z.s * z.h * W));
  for (size_t i = 0; i < host.size(); ++i) host[i] = uint16_t(0x3C00 + (i * 2654435761u) % 0x0800) ^ (i & 1 ? 0x8000 : 0);
  for (Set& b : sets) {
    CK(cudaMalloc(&b.kv, size_t(z.s * z.h * W * 2)));
    CK(cudaMalloc(&b.pe, size_t(z.s * DR * 2)));
    CK(cudaMalloc(&b.k, size_t(z.s * z.h * (DN + DR))));
    CK(cudaMalloc(&b.v, size_t(z.s * z.h * DV)));
    CK(cudaMemcpy(b.kv, host.data(), host.size() * 2, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(b.pe, host.data(), size_t(z.s * DR * 2), cudaMemcpyHostToDevice));
  }
  std::vector<mlakv_pack_args> args;
  for (const Set& b : sets) args.push_back(make_args(z, b, d_sc, T.st));
  char plan[512];
  check(mlakv_pack_fp8_plan(&args[0], plan, sizeof plan, nullptr), "plan");
  r.plan = plan;
  const int calls = bytes > 200e6 ? 4 : (bytes > 20e6 ? 10 : 40);
  auto run_mlakv = [&](int) { check(mlakv_pack_fp8(&args[0]), "pack"); };
  auto run_rot = [&](int i) { check(mlakv_pack_fp8(&args[size_t(i % nsets)]), "pack"); };
  r.mlakv = T.graph_us(calls, run_mlakv);
  r.mlakv_rot = nsets > 1 ? T.graph_us(std::max(calls, 2 * nsets), run_rot) : r.mlakv;
  {  // naive unfused: concat into bf16 K (scratch), quantize K, quantize V
    uint16_t* kbf;
    CK(cudaMalloc(&kbf, size_t(z.s * z.h * (DN + DR) * 2)));
    const int nb = prop.multiProcessorCount * 8;
    r.naive = T.graph_us(calls, [&](int) {
      naive_concat<<<nb, 256, 0, T.st>>>(static_cast<uint16_t*>(sets[0].kv), static_cast<uint16_t*>(sets[0].pe), kbf, z.s, z.h);
      naive_quant<<<nb, 256, 0, T.st>>>(kbf, DN + DR, 0, DN + DR, static_cast<uint8_t*>(sets[0].k), z.s * z.h, d_sc);
      naive_quant<<<nb, 256, 0, T.st>>>(static_cast<uint16_t*>(sets[0].kv), W, DN, DV, static_cast<uint8_t*>(sets[0].v), z.s * z.h, d_sc + 1);
    });
    CK(cudaFree(kbf));
  }
  {  // roofline: a device copy of the same byte count (bytes/2 read + bytes/2 written)
    void *src, *dst;
    const size_t half = size_t(bytes / 2);
    CK(cudaMalloc(&src, half));
    CK(cudaMalloc(&dst, half));
    r.copy = T.graph_us(calls, [&](int) { CK(cudaMemcpyAsync(dst, src, half, cudaMemcpyDeviceToDevice, T.st)); });
    cudaFree(src); cudaFree(dst);
  }
  r.best = r.mlakv;
  r.best_name = "(as dispatched)";
  if (o.sweep)
    for (const Candidate& c : candidates(z, o.only)) {
      check(mlakv_dispatch_table_set(MLAKV_BACKEND_CUDA, c.table.c_str()), "table");
      check(mlakv_pack_fp8_plan(&args[0], plan, sizeof plan, nullptr), "plan");
      if (std::strstr(plan, "# catch-all")) continue;  // the candidate's row cannot run this size
      const double us = T.graph_us(calls, run_mlakv, 6.0);
      r.sweep.push_back({c.name, us});
      if (us < r.best) { r.best = us; r.best_name = c.name; }
    }
  if (o.table_in.empty()) check(mlakv_dispatch_table_reset(MLAKV_BACKEND_CUDA), "reset");
  else install_table(o.table_in);
  for (Set& b : sets) { cudaFree(b.kv); cudaFree(b.pe); cudaFree(b.k); cudaFree(b.v); }
  std::printf("h=%-4lld s=%-6lld %9.2f MB  mlakv %8.2f us (rot %8.2f)  naive %8.2f  copy %8.2f  best %8.2f [%s]\n",
              (long long)z.h, (long long)z.s, bytes / 1e6, r.mlakv, r.mlakv_rot, r.naive, r.copy, r.best, r.best_name.c_str());
  std::fflush(stdout);
  return r;
}

void write_json(const std::string& path, const cudaDeviceProp& prop, int driver, const std::vector<Row>& rows) {
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (!f) { std::perror(path.c_str()); std::exit(1); }
  std::fprintf(f, "{\"device\": \"%s\", \"sm\": %d, \"driver_api\": %d, \"mlakv\": \"%s\", \"rows\": [\n", prop.name,
               prop.major * 10 + prop.minor, driver, mlakv_version_string());
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row& r = rows[i];
    std::fprintf(f, " {\"h\": %lld, \"s\": %lld, \"bytes\": %.0f, \"mlakv_graph_us\": %.4f, \"mlakv_rot_us\": %.4f, "
                    "\"naive_us\": %.4f, \"copy_us\": %.4f, \"best_us\": %.4f, \"best\": \"%s\", \"plan\": \"%s\", \"sweep\": {",
                 (long long)r.z.h, (long long)r.z.s, r.z.bytes(), r.mlakv, r.mlakv_rot, r.naive, r.copy, r.best,
                 r.best_name.c_str(), r.plan.c_str());
    for (size_t j = 0; j < r.sweep.size(); ++j)
      std::fprintf(f, "%s\"%s\": %.4f", j ? ", " : "", r.sweep[j].first.c_str(), r.sweep[j].second);
    std::fprintf(f, "}}%s\n", i + 1 < rows.size() ? "," : "");
  }
  std::fprintf(f, "]}\n");
  std::fclose(f);
}

void print_table(const std::vector<Row>& rows) {
  std::printf("\n| h | s | MB | mlakv graph us | mlakv cold-L2 us | TB/s | naive us | copy us | best-of-sweep us | best config | dispatched variant |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (const Row& r : rows) {
    const size_t at = r.plan.find("variant=");
    const std::string var = at == std::string::npos ? "?" : r.plan.substr(at + 8, r.plan.find(" #") - at - 8);
    std::printf("| %lld | %lld | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %s | %s |\n", (long long)r.z.h,
                (long long)r.z.s, r.z.bytes() / 1e6, r.mlakv, r.mlakv_rot, r.z.bytes() / r.mlakv / 1e6, r.naive, r.copy,
                r.best, r.best_name.c_str(), var.c_str());
  }
}


// ---- --ext: per-head scales and amax against per-tensor, same build, same buffers -------------------
struct ExtRow {
  Size z;
  std::string plan_tensor, plan_head;
  double us[8] = {};    // median us a call per mode
  double diff[8] = {};  // median per-round difference against the mode's baseline
  // over placements (--placements): the range of per-tensor's time and of per-head's overhead
  double pt_lo = 0, pt_hi = 0, ph_lo = 0, ph_hi = 0;
};
constexpr int kExtModes = 8;
const char* const kExtNames[kExtModes] = {"per-tensor", "per-head", "tensor+amax", "head+amax", "tensor+memset",
                                          "head+amax0", "tensor+amax-apart", "head+amax-apart"};
// mode -> the mode it is compared with
constexpr int kExtBase[kExtModes] = {0, 0, 0, 0, 4, 4, 0, 0};
// mode -> the bar it is held to (the mode of the same features)
constexpr int kExtBar[kExtModes] = {0, 1, 2, 3, 0, 0, 2, 3};

ExtRow ext_size(Timer& T, const Size& z, int rounds, int64_t ph_gap, int64_t sc_offset) {
  ExtRow r;
  r.z = z;
  Set b;
  const size_t kv_n = size_t(z.s * z.h * W);
  CK(cudaMalloc(&b.kv, kv_n * 2));
  CK(cudaMalloc(&b.pe, size_t(z.s * DR * 2)));
  CK(cudaMalloc(&b.k, size_t(z.s * z.h * (DN + DR))));
  CK(cudaMalloc(&b.v, size_t(z.s * z.h * DV)));
  std::vector<uint16_t> host(kv_n);
  for (size_t i = 0; i < host.size(); ++i) host[i] = uint16_t(0x3C00 + (i * 2654435761u) % 0x0800) ^ (i & 1 ? 0x8000 : 0);
  CK(cudaMemcpy(b.kv, host.data(), kv_n * 2, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(b.pe, host.data(), size_t(z.s * DR * 2), cudaMemcpyHostToDevice));
  float *d_sc_alloc, *d_sc, *d_am, *d_ak, *d_av;  // per-head multipliers (h for K, h for V), amax (h + h; apart: h, h)
  const int64_t gap = ph_gap / 4;  // floats between K's and V's per-head multipliers
  CK(cudaMalloc(&d_sc_alloc, size_t(sc_offset) + size_t(2 * z.h + gap) * 4));
  d_sc = d_sc_alloc + sc_offset / 4;
  CK(cudaMalloc(&d_am, size_t(2 * z.h) * 4));
  CK(cudaMalloc(&d_ak, size_t(z.h) * 4));
  CK(cudaMalloc(&d_av, size_t(z.h) * 4));
  CK(cudaMemset(d_ak, 0, size_t(z.h) * 4));
  CK(cudaMemset(d_av, 0, size_t(z.h) * 4));
  std::vector<float> sc(size_t(2 * z.h + gap), 0.0f);
  for (int64_t j = 0; j < z.h; ++j) { sc[size_t(j)] = 1.0f / 0.0375f; sc[size_t(z.h + gap + j)] = 1.0f / 0.021f; }
  CK(cudaMemcpy(d_sc, sc.data(), sc.size() * 4, cudaMemcpyHostToDevice));
  CK(cudaMemset(d_am, 0, size_t(2 * z.h) * 4));
  mlakv_pack_args a[kExtModes];
  for (int m = 0; m < kExtModes; ++m) {
    a[m] = make_args(z, b, d_sc, T.st);
    const bool head = m == 1 || m == 3 || m == 5 || m == 7, amax = m == 2 || m == 3 || m == 5;
    a[m].v_scale_inv_ptr = d_sc + z.h + gap;  // per tensor: V's first multiplier (every head's)
    a[m].scale_granularity = head ? MLAKV_SCALE_PER_HEAD : MLAKV_SCALE_PER_TENSOR;
    if (m >= 6) {
      a[m].k_amax = d_ak;
      a[m].v_amax = d_av;
    } else if (amax) {
      a[m].k_amax = d_am;
      a[m].v_amax = d_am + (head ? z.h : 1);
    }
  }
  char plan[512];
  check(mlakv_pack_fp8_plan(&a[0], plan, sizeof plan, nullptr), "plan");
  r.plan_tensor = plan;
  check(mlakv_pack_fp8_plan(&a[3], plan, sizeof plan, nullptr), "plan");
  r.plan_head = plan;
  const double bytes = z.bytes();
  const int calls = bytes > 200e6 ? 4 : (bytes > 20e6 ? 10 : 40);
  // one graph a mode: `calls` calls (mode 4 and 5: each after a memset of the amax arrays)
  cudaGraphExec_t ge[kExtModes];
  for (int m = 0; m < kExtModes; ++m) {
    cudaGraph_t g;
    CK(cudaStreamBeginCapture(T.st, cudaStreamCaptureModeThreadLocal));
    for (int i = 0; i < calls; ++i) {
      if (m == 4 || m == 5) CK(cudaMemsetAsync(d_am, 0, size_t(2 * z.h) * 4, T.st));
      check(mlakv_pack_fp8(&a[m]), "pack");
    }
    CK(cudaStreamEndCapture(T.st, &g));
    CK(cudaGraphInstantiate(&ge[m], g, 0));
    CK(cudaGraphDestroy(g));
    CK(cudaGraphLaunch(ge[m], T.st));  // warm-up (and the amax arrays reach their steady state)
  }
  CK(cudaStreamSynchronize(T.st));
  // every mode packs the same bytes (all heads share K's and V's multipliers): each after poisoned
  // outputs, against per-tensor's
  std::vector<uint8_t> want, got;
  const size_t k_bytes = size_t(z.s * z.h * (DN + DR)), v_bytes = size_t(z.s * z.h * DV);
  for (int m = 0; m < kExtModes; ++m) {
    CK(cudaMemsetAsync(b.k, 0xA5, k_bytes, T.st));
    CK(cudaMemsetAsync(b.v, 0xA5, v_bytes, T.st));
    check(mlakv_pack_fp8(&a[m]), "pack");
    got.resize(k_bytes + v_bytes);
    CK(cudaMemcpyAsync(got.data(), b.k, k_bytes, cudaMemcpyDeviceToHost, T.st));
    CK(cudaMemcpyAsync(got.data() + k_bytes, b.v, v_bytes, cudaMemcpyDeviceToHost, T.st));
    CK(cudaStreamSynchronize(T.st));
    if (m == 0) want.swap(got);
    else if (got != want) {
      std::fprintf(stderr, "h=%lld s=%lld: %s packed other bytes than per-tensor\n", (long long)z.h, (long long)z.s, kExtNames[m]);
      std::exit(1);
    }
  }
  std::vector<double> t[kExtModes], d[kExtModes];
  for (int round = 0; round < rounds; ++round) {
    double now[kExtModes];
    for (int j = 0; j < kExtModes; ++j) {
      const int m = (j + round) % kExtModes;
      float ms = 0;
      CK(cudaEventRecord(T.e0, T.st));
      CK(cudaGraphLaunch(ge[m], T.st));
      CK(cudaEventRecord(T.e1, T.st));
      CK(cudaEventSynchronize(T.e1));
      CK(cudaEventElapsedTime(&ms, T.e0, T.e1));
      now[m] = 1e3 * ms / calls;
    }
    for (int m = 0; m < kExtModes; ++m) {
      t[m].push_back(now[m]);
      d[m].push_back(now[m] - now[kExtBase[m]]);
    }
  }
  auto med = [](std::vector<double> x) {
    std::sort(x.begin(), x.end());
    return x[x.size() / 2];
  };
  for (int m = 0; m < kExtModes; ++m) {
    r.us[m] = med(t[m]);
    r.diff[m] = med(d[m]);
    CK(cudaGraphExecDestroy(ge[m]));
  }
  cudaFree(b.kv); cudaFree(b.pe); cudaFree(b.k); cudaFree(b.v); cudaFree(d_sc_alloc); cudaFree(d_am); cudaFree(d_ak); cudaFree(d_av);
  return r;
}

// Bars of issue 15 for mode m at size z (*us: at s <= 64; *frac: at >= 100 MB moved; a size between
// the two regimes has none): per-head 0.05 us / 1%, amax 0.1 us / 3%, per-head + amax the two summed.
bool ext_bar(int mode, const Size& z, double* us, double* frac) {
  const int m = kExtBar[mode];
  if (m < 1 || m > 3) return false;
  const double bar_us[4] = {0, 0.05, 0.1, 0.15}, bar_frac[4] = {0, 0.01, 0.03, 0.04};
  *us = 0;
  *frac = 0;
  if (z.s <= 64) *us = bar_us[m];
  else if (z.bytes() >= 100e6) *frac = bar_frac[m];
  else return false;
  return true;
}

// The row of a plan's text (after " | "): what runs.
std::string plan_row(const std::string& plan) {
  const size_t at = plan.find(" | ");
  return at == std::string::npos ? plan : plan.substr(at + 3);
}

int run_ext(Timer& T, const cudaDeviceProp& prop, int driver, const Opts& o) {
  std::vector<ExtRow> rows;
  std::printf("per-head scales and amax vs per-tensor (DeepSeek dims, bf16 -> e4m3fn, graph replay of calls on the same "
              "buffers, L2 warm; %d interleaved rounds; overhead = median per-round difference; per head, V's multipliers "
              "%lld bytes after K's)\n", o.rounds, (long long)o.ph_gap);
  for (const Size& z : o.sizes) {
    std::vector<ExtRow> at;
    for (int p = 0; p < o.placements; ++p) {
      // placement p: its own 2 MiB page, and one of 64 lines of the first 8 KiB of it
      const int64_t off = int64_t(p) * (int64_t(2) << 20) + int64_t((p * 37) % 64) * 128;
      at.push_back(ext_size(T, z, o.rounds, o.ph_gap, off));
      if (o.placements > 1)
        std::printf("  h=%lld s=%lld placement %d (+%lld bytes): per-tensor %.3f us, per-head %+.3f, tensor+amax %+.3f, head+amax %+.3f\n",
                    (long long)z.h, (long long)z.s, p, (long long)off, at.back().us[0], at.back().diff[1], at.back().diff[2],
                    at.back().diff[3]);
    }
    ExtRow r = at[0];
    auto med = [&](auto get) {
      std::vector<double> x;
      for (const ExtRow& a : at) x.push_back(get(a));
      std::sort(x.begin(), x.end());
      return x[x.size() / 2];
    };
    for (int m = 0; m < kExtModes; ++m) {
      r.us[m] = med([m](const ExtRow& a) { return a.us[m]; });
      r.diff[m] = med([m](const ExtRow& a) { return a.diff[m]; });
    }
    r.pt_lo = r.pt_hi = at[0].us[0];
    r.ph_lo = r.ph_hi = at[0].diff[1];
    for (const ExtRow& a : at) {
      r.pt_lo = std::min(r.pt_lo, a.us[0]);
      r.pt_hi = std::max(r.pt_hi, a.us[0]);
      r.ph_lo = std::min(r.ph_lo, a.diff[1]);
      r.ph_hi = std::max(r.ph_hi, a.diff[1]);
    }
    rows.push_back(r);
    std::printf("h=%-4lld s=%-6lld %8.2f MB  per-tensor %8.3f us | per-head %+7.3f us (%+6.2f%%) | tensor+amax %+7.3f us (%+6.2f%%) | "
                "head+amax %+7.3f us (%+6.2f%%) | apart: tensor+amax %+7.3f head+amax %+7.3f us | head+amax zeroed each call %+7.3f us vs memset+per-tensor %.3f\n",
                (long long)z.h, (long long)z.s, z.bytes() / 1e6, r.us[0], r.diff[1], 100 * r.diff[1] / r.us[0], r.diff[2],
                100 * r.diff[2] / r.us[0], r.diff[3], 100 * r.diff[3] / r.us[0], r.diff[6], r.diff[7], r.diff[5], r.us[4]);
    std::printf("  row: %s\n", plan_row(r.plan_tensor).c_str());
    if (plan_row(r.plan_tensor) != plan_row(r.plan_head))  // a row holds for both instances or neither
      std::printf("  NOTE: per-head + amax runs another row: %s\n", plan_row(r.plan_head).c_str());
    std::fflush(stdout);
  }
  int fails = 0;
  std::printf("\n(amax: K's and V's maxima side by side on one line; apart: in allocations of their own)\n");
  if (o.placements > 1)
    std::printf("(each time and overhead: the median over %d placements of the scales; ranges: lowest and highest of them)\n",
                o.placements);
  std::printf("| h | s | MB | per-tensor us | per-head +us (%%) | tensor+amax +us (%%) | head+amax +us (%%) | apart: tensor+amax +us (%%) | apart: head+amax +us (%%) | head+amax zeroed +us | bars |%s\n",
              o.placements > 1 ? " per-tensor us range | per-head +us range |" : "");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|%s\n", o.placements > 1 ? "---|---|" : "");
  for (const ExtRow& r : rows) {
    std::string bars;
    for (int m : {1, 2, 3, 6, 7}) {
      double us, frac;
      if (!ext_bar(m, r.z, &us, &frac)) continue;
      const bool ok = frac > 0 ? r.diff[m] <= frac * r.us[0] : r.diff[m] <= us;
      char b[96];
      if (frac > 0) std::snprintf(b, sizeof b, "%s %s (<= %.0f%%) ", kExtNames[m], ok ? "ok" : "OVER", 100 * frac);
      else std::snprintf(b, sizeof b, "%s %s (<= %.2f us) ", kExtNames[m], ok ? "ok" : "OVER", us);
      bars += b;
      fails += !ok;
    }
    std::printf("| %lld | %lld | %.2f | %.3f | %+.3f (%+.2f%%) | %+.3f (%+.2f%%) | %+.3f (%+.2f%%) | %+.3f (%+.2f%%) | %+.3f (%+.2f%%) | %+.3f | %s|",
                (long long)r.z.h, (long long)r.z.s, r.z.bytes() / 1e6, r.us[0], r.diff[1], 100 * r.diff[1] / r.us[0], r.diff[2],
                100 * r.diff[2] / r.us[0], r.diff[3], 100 * r.diff[3] / r.us[0], r.diff[6], 100 * r.diff[6] / r.us[0], r.diff[7],
                100 * r.diff[7] / r.us[0], r.diff[5], bars.empty() ? "(none at this size) " : bars.c_str());
    if (o.placements > 1) std::printf(" %.3f - %.3f | %+.3f - %+.3f |", r.pt_lo, r.pt_hi, r.ph_lo, r.ph_hi);
    std::printf("\n");
  }
  std::printf("%s: %d over a bar\n", fails ? "EXT BARS FAILED" : "ext bars: all met", fails);
  if (!o.json_path.empty()) {
    std::FILE* f = std::fopen(o.json_path.c_str(), "w");
    if (!f) { std::perror(o.json_path.c_str()); std::exit(1); }
    std::fprintf(f, "{\"device\": \"%s\", \"sm\": %d, \"driver_api\": %d, \"mlakv\": \"%s\", \"rounds\": %d, \"ph_gap\": %lld, \"placements\": %d, \"ext\": [\n", prop.name,
                 prop.major * 10 + prop.minor, driver, mlakv_version_string(), o.rounds, (long long)o.ph_gap, o.placements);
    for (size_t i = 0; i < rows.size(); ++i) {
      const ExtRow& r = rows[i];
      std::fprintf(f, " {\"h\": %lld, \"s\": %lld, \"bytes\": %.0f", (long long)r.z.h, (long long)r.z.s, r.z.bytes());
      for (int m = 0; m < kExtModes; ++m) std::fprintf(f, ", \"%s_us\": %.4f, \"%s_extra_us\": %.4f", kExtNames[m], r.us[m], kExtNames[m], r.diff[m]);
      std::fprintf(f, ", \"per-tensor_us_range\": [%.4f, %.4f], \"per-head_extra_us_range\": [%.4f, %.4f]", r.pt_lo, r.pt_hi, r.ph_lo, r.ph_hi);
      std::fprintf(f, ", \"plan\": \"%s\"}%s\n", r.plan_head.c_str(), i + 1 < rows.size() ? "," : "");
    }
    std::fprintf(f, "]}\n");
    std::fclose(f);
  }
  return fails ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Opts o = parse_args(argc, argv);
  if (!o.table_in.empty()) install_table(o.table_in);
  int dev = 0, driver = 0;
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, dev));
  CK(cudaDriverGetVersion(&driver));
  std::printf("device: %s (sm_%d%d, %d SMs, L2 %d MB), driver API %d, mlakv %s\n", prop.name, prop.major, prop.minor,
              prop.multiProcessorCount, prop.l2CacheSize >> 20, driver, mlakv_version_string());
  Timer T;
  bench::warm_up(T.st);
  if (o.ext) return run_ext(T, prop, driver, o);
  float* d_sc;
  CK(cudaMalloc(&d_sc, 8));
  const float sc[2] = {1.0f / 0.0375f, 1.0f / 0.021f};
  CK(cudaMemcpy(d_sc, sc, 8, cudaMemcpyHostToDevice));
  if (o.host) host_cost(T, prop, d_sc, o.json_path);
  std::vector<Row> rows;
  for (const Size& z : o.sizes) rows.push_back(time_size(T, prop, z, d_sc, o));
  CK(cudaGetLastError());
  if (!o.json_path.empty()) write_json(o.json_path, prop, driver, rows);
  print_table(rows);
  return 0;
}
