// mlakv_stress_cuda: a stress run of mixed mlakv_pack_fp8 calls on the CUDA backend, every output
// byte compared with the reference backend's (tests/gpu/stress_common.h says what a batch does).
//
// Several host threads (default 4), each with its own two non-blocking streams, issue batches of
// calls: h in {1, 2, 16, 128}, s from 1 to 8192 (s*h capped), DeepSeek dims 128/64/128 mostly and
// small or odd ones (16/8/24, 1/1/1, 5/3/7, ...), bf16/fp16/fp32 in, all four FP8 formats out;
// contiguous, fused k_nope|v, padded strides, head-major, stride-0 broadcast and misaligned layouts;
// PDL auto/on/off; host-float and device scales; AUTO and CUDA backends; calls repeated with
// identical arguments, layer loops over one geometry, and groups captured into CUDA graphs (some
// forked over both streams) and replayed with new inputs and scales; several calls in flight
// before each synchronisation.
//
//   mlakv_stress_cuda [--seconds S] [--batches N] [--threads T] [--seed X] [--device D]
//                     [--max-sxh N] [--max-calls N] [--quiet]
// Exit status: 0 all bytes identical; 1 a mismatch or an error (the first is printed: the call,
// the byte, expected and got, the plan); 2 bad usage; 77 no CUDA device (ctest: skipped).
#include <cuda_runtime.h>
#include <mlakv/mlakv.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "stress_common.h"

namespace {

void usage(std::FILE* f) {
  std::fprintf(f,
      "usage: mlakv_stress_cuda [options]\n"
      "  --seconds S    run for about S seconds in all (default 60)\n"
      "  --batches N    run N batches per thread instead (overrides --seconds)\n"
      "  --threads T    host threads, each with its own 2 streams (default 4)\n"
      "  --seed X       the seed (default 0x5eed5); thread t draws from seed + t\n"
      "  --device D     the CUDA device (default 0)\n"
      "  --max-sxh N    the largest s*h at DeepSeek dims (default 131072; other dims: as many elements)\n"
      "  --max-calls N  the most calls in one batch (default 8)\n"
      "  --quiet        no progress lines\n"
      "exit: 0 ok, 1 mismatch or error, 2 usage, 77 no CUDA device\n");
}

bool parse_u64(const char* s, uint64_t* out) {
  if (!s || !*s) return false;
  char* end = nullptr;
  const unsigned long long v = std::strtoull(s, &end, 0);
  if (*end) return false;
  *out = v;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 60;
  uint64_t batches = 0, threads = 4, seed = 0x5eed5, device = 0, max_sxh = 131072, max_calls = 8;
  bool quiet = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : nullptr;
    bool ok = true;
    if (a == "--help" || a == "-h") { usage(stdout); return 0; }
    else if (a == "--quiet") quiet = true;
    else if (a == "--seconds") { ok = v && (seconds = std::atof(v)) > 0; ++i; }
    else if (a == "--batches") { ok = parse_u64(v, &batches) && batches > 0; ++i; }
    else if (a == "--threads") { ok = parse_u64(v, &threads) && threads > 0 && threads <= 64; ++i; }
    else if (a == "--seed") { ok = parse_u64(v, &seed); ++i; }
    else if (a == "--device") { ok = parse_u64(v, &device); ++i; }
    else if (a == "--max-sxh") { ok = parse_u64(v, &max_sxh) && max_sxh > 0; ++i; }
    else if (a == "--max-calls") { ok = parse_u64(v, &max_calls) && max_calls > 0 && max_calls <= 64; ++i; }
    else ok = false;
    if (!ok) {
      std::fprintf(stderr, "mlakv_stress_cuda: bad argument '%s'%s%s\n", a.c_str(), v ? " " : "", v ? v : "");
      usage(stderr);
      return 2;
    }
  }

  std::string why;
  const int n = stress::cuda_devices(&why);
  if (n <= 0) {
    std::printf("mlakv_stress_cuda: no CUDA device (%s): skipped\n", why.c_str());
    return 77;
  }
  if (int(device) >= n) {
    std::printf("mlakv_stress_cuda: device %d requested, %d present\n", int(device), n);
    return 1;
  }
  const std::string problem = stress::cuda_backend_problem();
  if (!problem.empty()) {
    std::printf("mlakv_stress_cuda: FAIL: a CUDA device is present but %s\n", problem.c_str());
    return 1;
  }
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, int(device)) != cudaSuccess) {
    std::printf("mlakv_stress_cuda: FAIL: cudaGetDeviceProperties(%d)\n", int(device));
    return 1;
  }
  std::printf("mlakv_stress_cuda: %s, device %d: %s (sm_%d%d, %d SMs), %d threads x 2 streams, seed 0x%llx, ",
              mlakv_version_string(), int(device), prop.name, prop.major, prop.minor, prop.multiProcessorCount,
              int(threads), (unsigned long long)seed);
  if (batches) std::printf("%llu batches per thread\n", (unsigned long long)batches);
  else std::printf("%.0f s\n", seconds);
  std::fflush(stdout);
  for (mlakv_dtype d : tu::kInputDtypes) (void)stress::value_pool(d);  // built once, before the threads

  stress::WorkerOptions opt;
  opt.limits.max_sxh = int64_t(max_sxh);
  opt.max_calls = int(max_calls);
  std::vector<std::unique_ptr<stress::Worker>> workers;
  for (uint64_t t = 0; t < threads; ++t)
    workers.emplace_back(new stress::Worker(int(t), {int(device)}, seed + t, opt));

  const auto t0 = std::chrono::steady_clock::now();
  const auto deadline = t0 + std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(seconds));
  std::atomic<int> running{int(threads)};
  std::atomic<uint64_t> done_batches{0};
  std::vector<std::thread> pool;
  for (auto& w : workers)
    pool.emplace_back([&, wp = w.get()] {
      if (wp->init()) {
        for (uint64_t b = 0; !stress::failures().stop.load(); ++b) {
          if (batches ? b >= batches : std::chrono::steady_clock::now() >= deadline) break;
          if (!wp->run_random_batch()) break;
          done_batches.fetch_add(1);
        }
      }
      wp->release();
      running.fetch_sub(1);
    });
  auto last = t0;
  while (running.load() > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const auto now = std::chrono::steady_clock::now();
    if (!quiet && now - last >= std::chrono::seconds(10)) {
      last = now;
      std::printf("mlakv_stress_cuda: %.0f s, %llu batches done\n", std::chrono::duration<double>(now - t0).count(),
                  (unsigned long long)done_batches.load());
      std::fflush(stdout);
    }
  }
  for (auto& t : pool) t.join();
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  stress::Stats total;
  for (auto& w : workers) total.merge(w->stats());
  stress::print_stats(total, "mlakv_stress_cuda");
  const cudaError_t last_err = cudaGetLastError();
  stress::Failures& f = stress::failures();
  if (f.count.load() == 0 && total.executions == 0) f.add("no call was checked");
  if (f.count.load() > 0) {
    std::printf("mlakv_stress_cuda: FAIL after %.1f s (seed 0x%llx, %d threads): %s\n", elapsed,
                (unsigned long long)seed, int(threads), f.first.c_str());
    return 1;
  }
  if (last_err != cudaSuccess) {
    std::printf("mlakv_stress_cuda: FAIL: a CUDA error was left behind: %s\n", cudaGetErrorString(last_err));
    return 1;
  }
  std::printf("mlakv_stress_cuda: OK: %llu executions, %s compared, all bytes identical, in %.1f s\n",
              (unsigned long long)total.executions, stress::human_bytes(double(total.bytes_checked)).c_str(), elapsed);
  return 0;
}
