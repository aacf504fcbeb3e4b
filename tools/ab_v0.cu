// Kernel A/B outside both harnesses: Triton's v0 kernel (its PTX, JIT-compiled by the driver)
// beside mlakv's flat and tile2d kernels and hand-written variants of both, all launched from this
// one program with cudaLaunchKernelEx / cuLaunchKernelEx and PDL, timed in CUDA-graph replay (100
// calls a graph, median of 20 replays, rounds in rotating order) on the same buffers; every
// variant's bytes are compared with v0's first. docs/perf-notes.md 26 and 29 have what it found.
// Build here (sm_90a only, seconds), run on the GPU machine with a PTX from tools/triton_dump.py:
//   nvcc -std=c++17 -O3 -arch=sm_90a --fmad=false --expt-relaxed-constexpr -Isrc -Iinclude \
//        tools/ab_v0.cu -o .carry/bin/ab_v0 -cudart static -L/usr/local/cuda/lib64/stubs -lcuda
//   python3 tools/triton_dump.py /tmp/ptx v0:16:8:2 && .carry/bin/ab_v0 /tmp/ptx/v0_16_8_2.ptx 7 16 1024
// (arguments: PTX, rounds, h, s[, N[, calls a graph]]; DeepSeek dims, bf16 -> e4m3fn, device scales.
// With N, a shorter list of variants is timed at N buffer placements instead, the four buffers at
// random 64 KiB offsets in one pool; the last argument sets the calls a graph, default 100)
#include <cuda.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "cuda/vendor.cuh"
#include "kernels/pack_kernels.cuh"

using namespace mlakv;

#define CK(x) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) { std::printf("%s: %s\n", #x, cudaGetErrorString(e_)); std::exit(1); } } while (0)
#define DK(x) do { CUresult r_ = (x); if (r_ != CUDA_SUCCESS) { const char* m_; cuGetErrorString(r_, &m_); std::printf("%s: %s\n", #x, m_); std::exit(1); } } while (0)

int S = 1024, H = 16;

// ---- hand-written v0 shapes. M bits: 1 = griddepcontrol.wait before any arithmetic (as Triton);
// 2 = trigger dependents at the start (else at the end); 4 = loads unconditional from a clamped
// row, only the stores predicated (no branch around the loads); 8 = Triton's load order (k scale,
// k_pe, k_nope, v, v scale). 32-bit offsets; no NULL tests on the scales; one store each.
template <int M>
__global__ void __launch_bounds__(256) v0like(const uint16_t* kn, const uint16_t* kpe, const uint16_t* v, uint8_t* ko,
                                               uint8_t* vo, const float* ksp, const float* vsp, int s, int kn_st,
                                               int kn_sh, int kpe_st, int v_st, int v_sh, int ko_st, int ko_sh,
                                               int vo_st, int vo_sh) {
  constexpr bool WAIT_FIRST = M & 1, EARLY = M & 2, CLAMP = M & 4, ORDER = M & 8, LATE_SCALES = M & 16;
  if (WAIT_FIRST) {
    if (EARLY) vendor::launch_dependents();
    vendor::grid_dependency_wait();
  }
  const int t0 = blockIdx.x * 16 + (threadIdx.x >> 4), lane = threadIdx.x & 15, hd = blockIdx.y;
  const bool ok = t0 < s;
  const int t = CLAMP ? (ok ? t0 : s - 1) : t0;
  const uint16_t* pkn = kn + t * kn_st + hd * kn_sh + lane * 8;
  const uint16_t* ppe = kpe + t * kpe_st + lane * 4;
  const uint16_t* pv = v + t * v_st + hd * v_sh + lane * 8;
  if (!WAIT_FIRST) {
    if (EARLY) vendor::launch_dependents();
    vendor::grid_dependency_wait();
  }
  float ks, vs;
  uint4 a = {}, b = {};
  uint2 p = {};
  if (LATE_SCALES) {
    if (CLAMP || ok) { p = vendor::load8(ppe); a = vendor::load16(pkn); b = vendor::load16(pv); }
    ks = *ksp; vs = *vsp;
  } else if (ORDER) {
    ks = *ksp;
    if (CLAMP || ok) { p = vendor::load8(ppe); a = vendor::load16(pkn); b = vendor::load16(pv); }
    vs = *vsp;
  } else {
    ks = *ksp; vs = *vsp;
    if (CLAMP || ok) { a = vendor::load16(pkn); p = vendor::load8(ppe); b = vendor::load16(pv); }
  }
  auto cv = [](uint32_t w, float m) {
    return vendor::encode2<Fp8Format::E4M3FN>(__fmul_rn(__uint_as_float(w << 16), m),
                                              __fmul_rn(__uint_as_float(w & 0xFFFF0000u), m));
  };
  const uint2 ok8 = make_uint2(cv(a.x, ks) | cv(a.y, ks) << 16, cv(a.z, ks) | cv(a.w, ks) << 16);
  const uint32_t op = cv(p.x, ks) | cv(p.y, ks) << 16;
  const uint2 ov8 = make_uint2(cv(b.x, vs) | cv(b.y, vs) << 16, cv(b.z, vs) | cv(b.w, vs) << 16);
  uint8_t* krow = ko + t * ko_st + hd * ko_sh;
  if (ok) {
    *reinterpret_cast<uint2*>(krow + lane * 8) = ok8;
    *reinterpret_cast<uint32_t*>(krow + 128 + lane * 4) = op;
    *reinterpret_cast<uint2*>(vo + t * vo_st + hd * vo_sh + lane * 8) = ov8;
  }
  if (!EARLY) vendor::launch_dependents();
}

// ---- mlakv's flat DS16S kernel (run_pairs, unroll 1) with the scale reads and the PDL wait
// moved. O bits: 1 = wait before the index arithmetic; 2 = k scale read before the data loads
// (else after); 4 = v scale read before the data loads (else after). 6 = what the library does.
template <int O>
__global__ void exp_flat(const kern::Params P) {
  using namespace kern;
  constexpr InType T = InType::BF16;
  constexpr Fp8Format F = Fp8Format::E4M3FN;
  if (O & 1) {
    if (P.early) vendor::launch_dependents();
    vendor::grid_dependency_wait();
  }
  const uint32_t g = blockIdx.x * blockDim.x + threadIdx.x;
  int64_t t, hh;
  int lane;
  const bool ok = flat_pair<Dims::DS16S>(P, g, &t, &hh, &lane);
  const char* s_kn = P.k_nope + (t * P.kn_st + hh * P.kn_sh + lane * 8) * 2;
  const char* s_pe = P.k_pe + (t * P.kp_st + lane * 4) * 2;
  const char* s_v = P.v + (t * P.v_st + hh * P.v_sh + lane * 8) * 2;
  if (!(O & 1)) {
    if (P.early) vendor::launch_dependents();
    vendor::grid_dependency_wait();
  }
  float ks = 0.f, vs = 0.f;
  if (O & 2) ks = P.k_scale_ptr ? *P.k_scale_ptr : P.k_scale;
  if (O & 4) vs = P.v_scale_ptr ? *P.v_scale_ptr : P.v_scale;
  Chunk<T, 8> kn, vv;
  Chunk<T, 4> pe;
  if (ok) {
    load_chunk<T, 8>(&kn, s_kn);
    load_chunk<T, 8>(&vv, s_v);
    load_chunk<T, 4>(&pe, s_pe);
  }
  if (!(O & 2)) ks = P.k_scale_ptr ? *P.k_scale_ptr : P.k_scale;
  if (!(O & 4)) vs = P.v_scale_ptr ? *P.v_scale_ptr : P.v_scale;
  uint8_t* krow = P.k_out + t * P.ko_st + hh * P.ko_sh;
  uint8_t* vrow = P.v_out + t * P.vo_st + hh * P.vo_sh;
  const bool stream = P.stream != 0;
  if (ok) {
    convert_store<T, F, 8>(kn, krow + lane * 8, ks, stream);
    convert_store<T, F, 8>(vv, vrow + lane * 8, vs, stream);
    convert_store<T, F, 4>(pe, krow + 128 + lane * 4, ks, stream);
  }
  if (!P.early) vendor::launch_dependents();
}

struct Bufs {
  uint16_t *kv, *pe;
  uint8_t *k, *v;
  float* sc;
};

int main(int argc, char** argv) {
  const char* ptx_path = argc > 1 ? argv[1] : "v0_16_8_2.ptx";
  const int rounds = argc > 2 ? std::atoi(argv[2]) : 5;
  if (argc > 4) { H = std::atoi(argv[3]); S = std::atoi(argv[4]); }
  CK(cudaSetDevice(0));
  CK(cudaFree(nullptr));
  const int placements = argc > 5 ? std::atoi(argv[5]) : 0;
  const int graph_calls = argc > 6 ? std::atoi(argv[6]) : 100;
  Bufs b;
  const size_t nkv = size_t(S) * H * 256, npe = size_t(S) * 64, nk = size_t(S) * H * 192, nv = size_t(S) * H * 128;
  // placement mode: the four buffers at random 64 KiB-multiple offsets inside one pool
  constexpr size_t kGrain = size_t(64) << 10, kGaps = 64;
  const size_t need = nkv * 2 + npe * 2 + nk + nv + 8 * kGrain, pool_bytes = need + 4 * kGaps * kGrain;
  char* pool = nullptr;
  CK(cudaMalloc(&pool, pool_bytes));
  std::vector<uint16_t> hin(nkv);
  for (size_t i = 0; i < nkv; ++i) hin[i] = uint16_t(0x3C00 + (i * 2654435761u) % 0x0800) ^ (i & 1 ? 0x8000 : 0);
  std::mt19937 prng(12345);
  std::vector<std::string> place_names;
  auto place = [&](int p) {  // p = 0: packed from the pool's start
    auto up = [&](size_t x) { return (x + kGrain - 1) / kGrain * kGrain; };
    size_t off = p ? kGrain * (prng() % kGaps) : 0;
    size_t o[4];
    const size_t sz[4] = {nkv * 2, npe * 2, nk, nv};
    for (int i = 0; i < 4; ++i) {
      o[i] = off;
      off = up(off + sz[i]) + (p ? kGrain * (prng() % kGaps) : 0);
    }
    b.kv = reinterpret_cast<uint16_t*>(pool + o[0]); b.pe = reinterpret_cast<uint16_t*>(pool + o[1]);
    b.k = reinterpret_cast<uint8_t*>(pool + o[2]); b.v = reinterpret_cast<uint8_t*>(pool + o[3]);
    CK(cudaMemcpy(b.kv, hin.data(), nkv * 2, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(b.pe, hin.data(), npe * 2, cudaMemcpyHostToDevice));
    char nm[64];
    std::snprintf(nm, sizeof nm, "%zu/%zu/%zu/%zu", o[0] / kGrain, o[1] / kGrain, o[2] / kGrain, o[3] / kGrain);
    place_names.push_back(nm);
  };
  place(0);
  CK(cudaMalloc(&b.sc, 8));
  {
    const float sc[2] = {26.6f, 47.6f};
    CK(cudaMemcpy(b.sc, sc, 8, cudaMemcpyHostToDevice));
  }
  cudaStream_t st;
  CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0)); CK(cudaEventCreate(&e1));

  // Triton's v0 from its PTX
  std::ifstream f(ptx_path);
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string ptx = ss.str();
  CUmodule mod;
  CUfunction fv0;
  DK(cuModuleLoadData(&mod, ptx.c_str()));
  DK(cuModuleGetFunction(&fv0, mod, "_mla_pack_v0_kernel"));
  int nregs = 0;
  DK(cuFuncGetAttribute(&nregs, CU_FUNC_ATTRIBUTE_NUM_REGS, fv0));
  std::printf("triton v0 (driver JIT of %s): %d registers\n", ptx_path, nregs);

  const uint16_t* kn = b.kv;
  const uint16_t* vv = b.kv + 128;
  auto repoint = [&] { kn = b.kv; vv = b.kv + 128; };
  int s_ = S, kn_st = H * 256, kn_sh = 256, kpe_st = 64, v_st = H * 256, v_sh = 256, ko_st = H * 192, ko_sh = 192,
      vo_st = H * 128, vo_sh = 128;
  const float* ksp = b.sc;
  const float* vsp = b.sc + 1;
  void* null = nullptr;
  void* v0args[] = {(void*)&kn, (void*)&b.pe, (void*)&vv, (void*)&b.k, (void*)&b.v, (void*)&ksp, (void*)&vsp, &s_,
                    &kn_st, &kn_sh, &kpe_st, &v_st, &v_sh, &ko_st, &ko_sh, &vo_st, &vo_sh, &null, &null};
  auto launch_v0 = [&](bool pdl) {
    CUlaunchConfig c{};
    c.gridDimX = (S + 15) / 16; c.gridDimY = H; c.gridDimZ = 1;
    c.blockDimX = 256; c.blockDimY = 1; c.blockDimZ = 1;
    c.hStream = st;
    CUlaunchAttribute at[1];
    at[0].id = CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
    at[0].value.programmaticStreamSerializationAllowed = 1;
    c.attrs = at;
    c.numAttrs = pdl ? 1 : 0;
    DK(cuLaunchKernelEx(&c, fv0, v0args, nullptr));
  };

  // mlakv kernels with a hand-built Params (as bench/mlakv_bench.cu's host section)
  auto params = [&](int block, int early) {
    kern::Params P{};
    P.k_nope = reinterpret_cast<const char*>(kn); P.k_pe = reinterpret_cast<const char*>(b.pe);
    P.v = reinterpret_cast<const char*>(vv);
    P.k_out = b.k; P.v_out = b.v;
    P.kn_st = kn_st; P.kn_sh = kn_sh; P.kp_st = kpe_st; P.v_st = v_st; P.v_sh = v_sh;
    P.ko_st = ko_st; P.ko_sh = ko_sh; P.vo_st = vo_st; P.vo_sh = vo_sh;
    P.k_scale_ptr = ksp; P.v_scale_ptr = vsp;
    P.s = S; P.h = H; P.d_nope = 128; P.d_rope = 64; P.d_v = 128;
    P.lanes = 16; P.un = 16; P.ur = 16; P.uv = 16;
    P.div_l = kern::FastDiv::make(16); P.div_h = kern::FastDiv::make(H);
    P.pairs = uint32_t(S * H * 16); P.block = block; P.early = early;
    return P;
  };
  auto cfg = [&](dim3 g, int threads, bool pdl, cudaLaunchAttribute* at) {
    cudaLaunchConfig_t c{};
    c.gridDim = g; c.blockDim = dim3(threads); c.stream = st;
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = 1;
    c.attrs = at; c.numAttrs = pdl ? 1 : 0;
    return c;
  };
  using kern::Dims;
  kern::Params Pt0, Pt1, Pf1, Pf1h, Pt0h, Pt8, Pt8h, Pt8s;
  float* sep_sc = nullptr;  // the two scales in allocations of their own, 2 MiB apart
  CK(cudaMalloc(&sep_sc, size_t(4) << 20));
  {
    const float k = 26.6f, v = 47.6f;
    CK(cudaMemcpy(sep_sc, &k, 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(sep_sc + (size_t(2) << 20) / 4, &v, 4, cudaMemcpyHostToDevice));
  }
  auto rebuild = [&] {
    Pt0 = params(16, 0); Pt1 = params(16, 1); Pf1 = params(1, 1); Pt8 = params(8, 1);
    Pf1h = Pf1; Pt0h = Pt0;  // host-value scales: no scale loads at all
    Pf1h.k_scale_ptr = Pf1h.v_scale_ptr = nullptr; Pf1h.k_scale = 26.6f; Pf1h.v_scale = 47.6f;
    Pt0h.k_scale_ptr = Pt0h.v_scale_ptr = nullptr; Pt0h.k_scale = 26.6f; Pt0h.v_scale = 47.6f;
    Pt8h = Pt8; Pt8h.k_scale_ptr = Pt8h.v_scale_ptr = nullptr; Pt8h.k_scale = 26.6f; Pt8h.v_scale = 47.6f;
    Pt8s = Pt8; Pt8s.k_scale_ptr = sep_sc; Pt8s.v_scale_ptr = sep_sc + (size_t(2) << 20) / 4;
  };
  rebuild();
  auto tile8 = [&](const kern::Params& P) {  // the sm_90 table's row for s*h 5633-6656
    cudaLaunchAttribute at[1];
    cudaLaunchConfig_t c = cfg(dim3((S + 7) / 8, H), 128, true, at);
    CK(cudaLaunchKernelEx(&c, kern::pack_tile2d<InType::BF16, Fp8Format::E4M3FN, Dims::DS16S, 1>, P));
  };
  auto flat_t = [&](const kern::Params& P, int threads) {
    cudaLaunchAttribute at[1];
    cudaLaunchConfig_t c = cfg(dim3(S * H * 16 / threads), threads, true, at);
    CK(cudaLaunchKernelEx(&c, kern::pack_flat<InType::BF16, Fp8Format::E4M3FN, Dims::DS16S, 1>, P));
  };
  auto tile = [&](const kern::Params& P) {
    cudaLaunchAttribute at[1];
    cudaLaunchConfig_t c = cfg(dim3((S + 15) / 16, H), 256, true, at);
    CK(cudaLaunchKernelEx(&c, kern::pack_tile2d<InType::BF16, Fp8Format::E4M3FN, Dims::DS16S, 1>, P));
  };
  auto flat = [&](const kern::Params& P) {
    cudaLaunchAttribute at[1];
    cudaLaunchConfig_t c = cfg(dim3(S * H * 16 / 256), 256, true, at);
    CK(cudaLaunchKernelEx(&c, kern::pack_flat<InType::BF16, Fp8Format::E4M3FN, Dims::DS16S, 1>, P));
  };
  auto xflat = [&](auto kfn) {
    cudaLaunchAttribute at[1];
    cudaLaunchConfig_t c = cfg(dim3(S * H * 16 / 256), 256, true, at);
    CK(cudaLaunchKernelEx(&c, kfn, Pf1));
  };
  auto like = [&](auto kfn) {
    cudaLaunchAttribute at[1];
    cudaLaunchConfig_t c = cfg(dim3((S + 15) / 16, H), 256, true, at);
    CK(cudaLaunchKernelEx(&c, kfn, kn, (const uint16_t*)b.pe, vv, b.k, b.v, ksp, vsp, s_, kn_st, kn_sh, kpe_st, v_st,
                          v_sh, ko_st, ko_sh, vo_st, vo_sh));
  };

  struct Var {
    const char* name;
    std::function<void()> f;
    std::vector<double> us;
  };
  std::vector<Var> vars = {
      {"triton v0 16/8 (PTX), PDL", [&] { launch_v0(true); }, {}},
      {"mlakv tile2d 16x1 l16s e0", [&] { tile(Pt0); }, {}},
      {"mlakv flat 256 l16s e1", [&] { flat(Pf1); }, {}},
      {"mlakv flat 256 l16s e1 host sc", [&] { flat(Pf1h); }, {}},
      {"mlakv tile2d 16x1 l16s e0 host sc", [&] { tile(Pt0h); }, {}},
      {"exp_flat o6 (= library)", [&] { xflat(exp_flat<6>); }, {}},
      {"exp_flat o2 ks|data|vs", [&] { xflat(exp_flat<2>); }, {}},
      {"exp_flat o7 wait-first", [&] { xflat(exp_flat<7>); }, {}},
      {"exp_flat o3 wait-first ks|data|vs", [&] { xflat(exp_flat<3>); }, {}},
      {"exp_flat o4 vs|data|ks", [&] { xflat(exp_flat<4>); }, {}},
      {"v0like m1  Wlbo", [&] { like(v0like<1>); }, {}},
      {"v0like m9  WlbO", [&] { like(v0like<9>); }, {}},
  };
  // correctness: every variant's bytes equal v0's
  std::vector<uint8_t> refk(nk), refv(nv), gk(nk), gv(nv);
  for (size_t i = 0; i < vars.size(); ++i) {
    CK(cudaMemsetAsync(b.k, 0xA5, nk, st)); CK(cudaMemsetAsync(b.v, 0xA5, nv, st));
    vars[i].f();
    CK(cudaStreamSynchronize(st));
    CK(cudaMemcpy(gk.data(), b.k, nk, cudaMemcpyDeviceToHost)); CK(cudaMemcpy(gv.data(), b.v, nv, cudaMemcpyDeviceToHost));
    if (i == 0) { refk = gk; refv = gv; continue; }
    size_t bad = 0;
    for (size_t j = 0; j < nk; ++j) bad += gk[j] != refk[j];
    for (size_t j = 0; j < nv; ++j) bad += gv[j] != refv[j];
    std::printf("  %-28s %zu bytes differ from v0\n", vars[i].name, bad);
  }
  // graph replay: 100 calls a graph, median of 20 replays, rounds rotating the order
  auto graph_us = [&](const std::function<void()>& f) {
    cudaGraph_t g;
    cudaGraphExec_t ge;
    CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
    for (int i = 0; i < graph_calls; ++i) f();
    CK(cudaStreamEndCapture(st, &g));
    CK(cudaGraphInstantiate(&ge, g, 0));
    CK(cudaGraphLaunch(ge, st));
    CK(cudaStreamSynchronize(st));
    std::vector<float> t;
    for (int r = 0; r < 20; ++r) {
      float ms;
      CK(cudaEventRecord(e0, st)); CK(cudaGraphLaunch(ge, st)); CK(cudaEventRecord(e1, st));
      CK(cudaEventSynchronize(e1)); CK(cudaEventElapsedTime(&ms, e0, e1));
      t.push_back(ms);
    }
    CK(cudaGraphExecDestroy(ge)); CK(cudaGraphDestroy(g));
    std::sort(t.begin(), t.end());
    return 1e3 * t[t.size() / 2] / graph_calls;
  };
  for (int w = 0; w < 300; ++w) vars[0].f();  // clocks up
  CK(cudaStreamSynchronize(st));
  if (placements > 0) {  // the same few variants at `placements` buffer placements, 3 rounds each
    std::vector<Var> pv = {
        {"triton v0 16/8 (PTX)", [&] { launch_v0(true); }, {}},
        {"tile2d 8x1 t128 l16s e1", [&] { tile8(Pt8); }, {}},
        {"tile2d 8x1 host scales", [&] { tile8(Pt8h); }, {}},
        {"tile2d 8x1 scales 2MiB apart", [&] { tile8(Pt8s); }, {}},
        {"flat 128 l16s e1", [&] { flat_t(Pf1, 128); }, {}},
        {"flat 256 l16s e1", [&] { flat_t(Pf1, 256); }, {}},
        {"tile2d 16x1 t256 l16s e1", [&] { tile(Pt1); }, {}},
    };
    std::vector<std::vector<double>> m(pv.size());
    for (int p = 0; p < placements; ++p) {
      if (p) { place(p); repoint(); rebuild(); }
      for (auto& v : pv) v.us.clear();
      for (int r = 0; r < 3; ++r)
        for (size_t j = 0; j < pv.size(); ++j) {
          Var& v = pv[(j + r) % pv.size()];
          v.us.push_back(graph_us(v.f));
        }
      for (size_t j = 0; j < pv.size(); ++j) {
        std::sort(pv[j].us.begin(), pv[j].us.end());
        m[j].push_back(pv[j].us[1]);
      }
    }
    std::printf("h=%d s=%d, graph replay (%d calls, PDL), us per call, median of 3 rounds, by placement "
                "(kv/pe/k/v offsets in 64 KiB):\n", H, S, graph_calls);
    for (size_t j = 0; j < pv.size(); ++j) {
      std::printf("  %-26s", pv[j].name);
      for (double x : m[j]) std::printf(" %6.3f", x);
      std::printf("\n");
    }
    std::printf("  placements:");
    for (auto& n : place_names) std::printf(" %s", n.c_str());
    std::printf("\n");
    return 0;
  }
  for (int r = 0; r < rounds; ++r)
    for (size_t j = 0; j < vars.size(); ++j) {
      Var& v = vars[(j + r) % vars.size()];
      v.us.push_back(graph_us(v.f));
    }
  std::printf("h=%d s=%d, graph replay (100 calls, PDL), us per call: median [min..max] of %d rounds\n", H, S, rounds);
  for (auto& v : vars) {
    std::vector<double> u = v.us;
    std::sort(u.begin(), u.end());
    std::printf("  %-28s %.3f [%.3f..%.3f]\n", v.name, u[u.size() / 2], u.front(), u.back());
  }
  return 0;
}
