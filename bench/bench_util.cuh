// What bench/'s GPU programs share (mlakv_bench: CUDA; mlakv-tune: CUDA or HIP): error checks, the
// DeepSeek-shaped arguments over one set of device buffers, the graph-replay timer and the clock
// warm-up. Runtime calls through gpu_runtime.h (gpu* -> cuda* / hip*).
#pragma once
#include <mlakv/mlakv.h>

#include "gpu_runtime.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace bench {

#define CK(x)                                                                                 \
  do {                                                                                        \
    gpuError_t e_ = (x);                                                                      \
    if (e_ != gpuSuccess) {                                                                   \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, gpuGetErrorString(e_));  \
      std::exit(1);                                                                           \
    }                                                                                         \
  } while (0)

inline void check(mlakv_status s, const char* what) {
  if (s != MLAKV_OK) {
    std::fprintf(stderr, "%s: %s (%s)\n", what, mlakv_status_string(s), mlakv_last_error());
    std::exit(1);
  }
}

// DeepSeek V3 dims; k_nope and v are the two halves of one [s, h, W] tensor
constexpr int64_t DN = 128, DR = 64, DV = 128, W = DN + DV;

// Ends every table that forces one candidate row: where the candidate's row cannot run a size (its
// kernel's register limit, say) the call falls to this row, and the plan says "# catch-all".
constexpr const char* kCatchAll = "arch=0-100000 s=1-* sxh=1-* dims=any variant=general threads=256  # catch-all\n";

struct Set {  // one set of input / output buffers
  void *kv = nullptr, *pe = nullptr, *k = nullptr, *v = nullptr;
};

// bytes one call moves: inputs read once (k_pe once a token), outputs written once (16-bit inputs)
inline double bytes_moved(int64_t s, int64_t h) { return double(s * h * W * 2 + s * DR * 2 + s * h * (DN + DR + DV)); }

inline mlakv_tensor t3(void* p, mlakv_dtype dt, int64_t a, int64_t b, int64_t c, int64_t sa, int64_t sb) {
  mlakv_tensor t = MLAKV_TENSOR_INIT;
  t.data = p; t.dtype = dt; t.ndim = 3;
  t.shape[0] = a; t.shape[1] = b; t.shape[2] = c;
  t.strides[0] = sa; t.strides[1] = sb; t.strides[2] = 1;
  return t;
}

// in -> e4m3fn on this build's GPU backend (kBackend), scales read from device memory (sc[0], sc[1])
inline mlakv_pack_args make_args(int64_t s, int64_t h, mlakv_dtype in, const Set& b, const float* sc, gpuStream_t st,
                                 int device = 0) {
  mlakv_pack_args a = MLAKV_PACK_ARGS_INIT;
  a.k_nope = t3(b.kv, in, s, h, DN, h * W, W);
  a.v = t3(static_cast<uint16_t*>(b.kv) + DN, in, s, h, DV, h * W, W);
  a.k_pe = t3(b.pe, in, s, 1, DR, DR, DR);
  a.k_out = t3(b.k, MLAKV_DTYPE_E4M3FN, s, h, DN + DR, h * (DN + DR), DN + DR);
  a.v_out = t3(b.v, MLAKV_DTYPE_E4M3FN, s, h, DV, h * DV, DV);
  a.k_scale_inv_ptr = sc;
  a.v_scale_inv_ptr = sc + 1;
  a.backend = kBackend;
  a.device = device;
  a.stream = st;
  return a;
}

struct Timer {
  gpuStream_t st;
  gpuEvent_t e0, e1;
  Timer() {
    CK(gpuStreamCreateWithFlags(&st, gpuStreamNonBlocking));
    CK(gpuEventCreate(&e0));
    CK(gpuEventCreate(&e1));
  }
  // µs per call: `calls` invocations of f(i) captured into one graph, replayed (after one warm-up)
  // until about target_ms, at least 3 times; the median replay over calls.
  template <class F>
  double graph_us(int calls, F&& f, double target_ms = 15.0) {
    gpuGraph_t g;
    gpuGraphExec_t ge;
    CK(gpuStreamBeginCapture(st, gpuStreamCaptureModeThreadLocal));
    for (int i = 0; i < calls; ++i) f(i);
    CK(gpuStreamEndCapture(st, &g));
    CK(gpuGraphInstantiate(&ge, g));
    CK(gpuGraphLaunch(ge, st));  // warm-up
    CK(gpuStreamSynchronize(st));
    CK(gpuEventRecord(e0, st));
    CK(gpuGraphLaunch(ge, st));
    CK(gpuEventRecord(e1, st));
    CK(gpuEventSynchronize(e1));
    float ms = 0;
    CK(gpuEventElapsedTime(&ms, e0, e1));
    const int reps = std::max(3, std::min(200, int(target_ms / std::max(ms, 1e-3f))));
    std::vector<float> t;
    for (int r = 0; r < reps; ++r) {
      CK(gpuEventRecord(e0, st));
      CK(gpuGraphLaunch(ge, st));
      CK(gpuEventRecord(e1, st));
      CK(gpuEventSynchronize(e1));
      CK(gpuEventElapsedTime(&ms, e0, e1));
      t.push_back(ms);
    }
    CK(gpuGraphExecDestroy(ge));
    CK(gpuGraphDestroy(g));
    std::sort(t.begin(), t.end());
    return 1e3 * t[t.size() / 2] / calls;
  }
};

// The clocks idle at a few hundred MHz: bring them up before anything is timed.
inline void warm_up(gpuStream_t st) {
  void* w;
  const size_t n = size_t(256) << 20;
  CK(gpuMalloc(&w, n));
  const auto t0 = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(300)) {
    for (int i = 0; i < 20; ++i) CK(gpuMemsetAsync(w, i, n, st));
    CK(gpuStreamSynchronize(st));
  }
  CK(gpuFree(w));
}

}  // namespace bench
