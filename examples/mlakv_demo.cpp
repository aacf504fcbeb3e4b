// The main job: pack a DeepSeek-shaped K/V (bf16 -> e4m3fn) on the best backend present, print
// what was done and how fast, and verify the bytes against an independent scalar oracle (the
// tests' FP8 encoder written from the format definition, tests/test_util.h: no library code).
//
//   mlakv_demo [--s N] [--h N] [--dims NOPE,ROPE,V] [--backend auto|reference|cuda] [--iters N]
//
// On the reference backend it also times a single-core memcpy of the same byte count in the
// same run and prints the ratio (the reference must reach >= 25% of it).
#include <mlakv/mlakv.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#ifdef MLAKV_DEMO_CUDA
#include <cuda_runtime.h>
#endif

#include "test_util.h"  // tu::Fp8Oracle, tu::widen_bf16: the oracle of the test suite

namespace {

struct Opts {
  int64_t s = 4096, h = 16, dn = 128, dr = 64, dv = 128;
  int iters = 0;  // 0: pick from the size
  mlakv_backend backend = MLAKV_BACKEND_AUTO;
};

[[noreturn]] void die(const std::string& m) {
  std::fprintf(stderr, "mlakv_demo: %s\n", m.c_str());
  std::exit(1);
}

void check(mlakv_status st, const char* what) {
  if (st != MLAKV_OK) die(std::string(what) + ": " + mlakv_status_string(st) + " (" + mlakv_last_error() + ")");
}

Opts parse(int argc, char** argv) {
  Opts o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) die("missing value after " + a);
      return argv[++i];
    };
    if (a == "--s") o.s = std::atoll(next().c_str());
    else if (a == "--h") o.h = std::atoll(next().c_str());
    else if (a == "--iters") o.iters = std::atoi(next().c_str());
    else if (a == "--dims") {
      std::string d = next();
      if (std::sscanf(d.c_str(), "%lld,%lld,%lld", (long long*)&o.dn, (long long*)&o.dr, (long long*)&o.dv) != 3)
        die("--dims wants NOPE,ROPE,V");
    } else if (a == "--backend") {
      std::string b = next();
      o.backend = b == "auto" ? MLAKV_BACKEND_AUTO : b == "reference" ? MLAKV_BACKEND_REFERENCE
                : b == "cuda" ? MLAKV_BACKEND_CUDA : b == "hip" ? MLAKV_BACKEND_HIP : -1;
      if (o.backend < 0) die("unknown backend " + b);
    } else if (a == "--help" || a == "-h") {
      std::printf("usage: mlakv_demo [--s N] [--h N] [--dims NOPE,ROPE,V] [--backend auto|reference|cuda|hip] [--iters N]\n");
      std::exit(0);
    } else die("unknown argument " + a);
  }
  if (o.s < 1 || o.h < 1) die("--s and --h must be >= 1");
  return o;
}

mlakv_tensor tensor3(void* data, mlakv_dtype dt, int64_t a, int64_t b, int64_t c, int64_t sa, int64_t sb) {
  mlakv_tensor t = MLAKV_TENSOR_INIT;
  t.data = data; t.dtype = dt; t.ndim = 3;
  t.shape[0] = a; t.shape[1] = b; t.shape[2] = c;
  t.strides[0] = sa; t.strides[1] = sb; t.strides[2] = 1;
  return t;
}

// k_nope and v are the two halves of one [s, h, D_nope + D_v] tensor, as in MLA prefill.
mlakv_pack_args make_args(const Opts& o, void* kv, void* kpe, void* kout, void* vout, mlakv_backend b) {
  mlakv_pack_args a = MLAKV_PACK_ARGS_INIT;
  const int64_t w = o.dn + o.dv;
  a.k_nope = tensor3(kv, MLAKV_DTYPE_BF16, o.s, o.h, o.dn, o.h * w, w);
  a.v = tensor3(static_cast<uint16_t*>(kv) + o.dn, MLAKV_DTYPE_BF16, o.s, o.h, o.dv, o.h * w, w);
  a.k_pe = tensor3(kpe, MLAKV_DTYPE_BF16, o.s, 1, o.dr, o.dr, o.dr);
  a.k_out = tensor3(kout, MLAKV_DTYPE_E4M3FN, o.s, o.h, o.dn + o.dr, o.h * (o.dn + o.dr), o.dn + o.dr);
  a.v_out = tensor3(vout, MLAKV_DTYPE_E4M3FN, o.s, o.h, o.dv, o.h * o.dv, o.dv);
  a.k_scale_inv = 1.0f / 0.0375f;
  a.v_scale_inv = 1.0f / 0.021f;
  a.backend = b;
  return a;
}

// The expected output bytes, element by element: widen the bf16 input, one fp32 multiply, then the
// oracle's nearest-value FP8 encoding. A 65536-entry table per multiplier keeps it fast.
void expected_bytes(const Opts& o, const std::vector<uint16_t>& kv, const std::vector<uint16_t>& kpe, float ks, float vs,
                    std::vector<uint8_t>* k, std::vector<uint8_t>* v) {
  const tu::Fp8Oracle e4m3(MLAKV_DTYPE_E4M3FN);
  auto lut = [&](float m) {
    std::vector<uint8_t> t(65536);
    for (uint32_t x = 0; x < 65536; ++x) {
      const float p = tu::widen_bf16(uint16_t(x)) * m;  // one fp32 multiply (built with -ffp-contract=off)
      t[x] = e4m3.encode(p);
    }
    return t;
  };
  const std::vector<uint8_t> lk = lut(ks), lv = lut(vs);
  const int64_t w = o.dn + o.dv, dk = o.dn + o.dr;
  k->assign(size_t(o.s * o.h * dk), 0);
  v->assign(size_t(o.s * o.h * o.dv), 0);
  for (int64_t t = 0; t < o.s; ++t)
    for (int64_t h = 0; h < o.h; ++h) {
      const uint16_t* row = &kv[size_t((t * o.h + h) * w)];
      uint8_t* kr = &(*k)[size_t((t * o.h + h) * dk)];
      uint8_t* vr = &(*v)[size_t((t * o.h + h) * o.dv)];
      for (int64_t i = 0; i < o.dn; ++i) kr[i] = lk[row[i]];
      for (int64_t i = 0; i < o.dr; ++i) kr[o.dn + i] = lk[kpe[size_t(t * o.dr + i)]];
      for (int64_t i = 0; i < o.dv; ++i) vr[i] = lv[row[o.dn + i]];
    }
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

template <class F>
double median_seconds(int iters, F&& f) {
  std::vector<double> t;
  for (int i = 0; i < iters; ++i) {
    double t0 = now_s();
    f();
    t.push_back(now_s() - t0);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const Opts o = parse(argc, argv);
  std::printf("mlakv %s\n", mlakv_version_string());
  int best = -1;
  std::printf("backends:\n");
  for (int i = 0; i < mlakv_backend_count(); ++i) {
    mlakv_backend_info info = MLAKV_BACKEND_INFO_INIT;
    check(mlakv_backend_get_info(i, &info), "mlakv_backend_get_info");
    std::printf("  %-9s compiled=%d usable=%d  %s\n", info.name, info.compiled, info.usable, info.detail);
    if (info.usable && best < 0 && (o.backend == MLAKV_BACKEND_AUTO || o.backend == info.backend)) best = info.backend;
  }
  if (best < 0) die("the requested backend is not usable here");

  const int64_t w = o.dn + o.dv;
  const size_t n_kv = size_t(o.s * o.h * w), n_pe = size_t(o.s * o.dr);
  const size_t n_ko = size_t(o.s * o.h * (o.dn + o.dr)), n_vo = size_t(o.s * o.h * o.dv);
  const double bytes = double(n_kv * 2 + n_pe * 2 + n_ko + n_vo);
  std::printf("shapes: k_nope [%lld, %lld, %lld] and v [%lld, %lld, %lld] (halves of one bf16 [s, h, %lld]), "
              "k_pe [%lld, 1, %lld] -> k_out [%lld, %lld, %lld], v_out [%lld, %lld, %lld] e4m3fn; %.2f MB moved\n",
              (long long)o.s, (long long)o.h, (long long)o.dn, (long long)o.s, (long long)o.h, (long long)o.dv,
              (long long)w, (long long)o.s, (long long)o.dr, (long long)o.s, (long long)o.h, (long long)(o.dn + o.dr),
              (long long)o.s, (long long)o.h, (long long)o.dv, bytes / 1e6);

  // Random bf16 inputs (normal-ish values around the scale), poisoned outputs.
  std::vector<uint16_t> kv(n_kv), kpe(n_pe);
  std::mt19937 rng(12345);
  std::normal_distribution<float> nd(0.0f, 2.0f);
  auto bf16 = [](float f) { uint32_t u; std::memcpy(&u, &f, 4); return uint16_t((u + 0x7FFF + ((u >> 16) & 1)) >> 16); };
  for (auto& x : kv) x = bf16(nd(rng));
  for (auto& x : kpe) x = bf16(nd(rng));
  std::vector<uint8_t> ref_k, ref_v;
  {
    const mlakv_pack_args a = make_args(o, nullptr, nullptr, nullptr, nullptr, MLAKV_BACKEND_AUTO);
    expected_bytes(o, kv, kpe, a.k_scale_inv, a.v_scale_inv, &ref_k, &ref_v);
  }

  char plan[512];
  double sec = 0;
  bool ok = true;
  if (best == MLAKV_BACKEND_REFERENCE) {
    std::vector<uint8_t> k(n_ko, 0xCD), v(n_vo, 0xCD);
    mlakv_pack_args a = make_args(o, kv.data(), kpe.data(), k.data(), v.data(), MLAKV_BACKEND_REFERENCE);
    check(mlakv_pack_fp8_plan(&a, plan, sizeof plan, nullptr), "plan");
    std::printf("plan: %s\n", plan);
    const int iters = o.iters > 0 ? o.iters : std::max(5, int(2e9 / bytes));
    sec = median_seconds(iters, [&] { check(mlakv_pack_fp8(&a), "pack"); });
    ok = k == ref_k && v == ref_v;
    // single-core memcpy of the same byte count, same run
    std::vector<char> src(size_t(bytes) / 2 + 64, 1), dst(size_t(bytes) / 2 + 64, 0);
    const double mc = median_seconds(iters, [&] {
      std::memcpy(dst.data(), src.data(), src.size());
      asm volatile("" ::: "memory");
    });
    const double gbs = bytes / sec / 1e9, mgbs = 2.0 * double(src.size()) / mc / 1e9;
    std::printf("reference: %.3f ms per call, %.2f GB/s (bytes read + written); single-core memcpy of the same "
                "byte count: %.3f ms, %.2f GB/s; ratio %.1f%% (bar: >= 25%%)\n",
                sec * 1e3, gbs, mc * 1e3, mgbs, 100.0 * gbs / mgbs);
  }
#ifdef MLAKV_DEMO_CUDA
  else if (best == MLAKV_BACKEND_CUDA) {
    void *d_kv, *d_pe, *d_k, *d_v;
    auto ck = [](cudaError_t e, const char* w) { if (e != cudaSuccess) die(std::string(w) + ": " + cudaGetErrorString(e)); };
    ck(cudaMalloc(&d_kv, n_kv * 2), "cudaMalloc");
    ck(cudaMalloc(&d_pe, n_pe * 2), "cudaMalloc");
    ck(cudaMalloc(&d_k, n_ko), "cudaMalloc");
    ck(cudaMalloc(&d_v, n_vo), "cudaMalloc");
    ck(cudaMemcpy(d_kv, kv.data(), n_kv * 2, cudaMemcpyHostToDevice), "copy");
    ck(cudaMemcpy(d_pe, kpe.data(), n_pe * 2, cudaMemcpyHostToDevice), "copy");
    ck(cudaMemset(d_k, 0xCD, n_ko), "memset");
    ck(cudaMemset(d_v, 0xCD, n_vo), "memset");
    mlakv_pack_args a = make_args(o, d_kv, d_pe, d_k, d_v, MLAKV_BACKEND_CUDA);
    check(mlakv_pack_fp8_plan(&a, plan, sizeof plan, nullptr), "plan");
    std::printf("plan: %s\n", plan);
    check(mlakv_pack_fp8(&a), "pack");
    ck(cudaDeviceSynchronize(), "sync");
    std::vector<uint8_t> k(n_ko), v(n_vo);
    ck(cudaMemcpy(k.data(), d_k, n_ko, cudaMemcpyDeviceToHost), "copy back");
    ck(cudaMemcpy(v.data(), d_v, n_vo, cudaMemcpyDeviceToHost), "copy back");
    ok = k == ref_k && v == ref_v;
    const int iters = o.iters > 0 ? o.iters : 200;
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    for (int i = 0; i < 10; ++i) check(mlakv_pack_fp8(&a), "pack");
    cudaEventRecord(e0);
    for (int i = 0; i < iters; ++i) check(mlakv_pack_fp8(&a), "pack");
    cudaEventRecord(e1);
    ck(cudaEventSynchronize(e1), "sync");
    float ms = 0;
    cudaEventElapsedTime(&ms, e0, e1);
    sec = ms / 1e3 / iters;
    std::printf("cuda: %.2f us per call (mean of %d back-to-back eager calls), %.1f GB/s (bytes read + written)\n",
                sec * 1e6, iters, bytes / sec / 1e9);
    cudaFree(d_kv); cudaFree(d_pe); cudaFree(d_k); cudaFree(d_v);
  }
#endif
  else {
    die("no timing path for this backend in this build");
  }
  std::printf("verify: %s (%zu + %zu output bytes compared with an independent scalar oracle)\n",
              ok ? "OK, byte-identical" : "MISMATCH", n_ko, n_vo);
  return ok ? 0 : 1;
}
