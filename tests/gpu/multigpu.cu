// mlakv_multigpu_cuda: the CUDA backend on two (or more) devices of one process.
//
//   1. concurrent packing: a host thread per device (args.device set, streams and buffers on that
//      device) running batches of interleaved sizes (each device on other sizes at the same time),
//      plus one thread alternating between the devices with another device current around its
//      calls (the library must launch on args.device and give the caller's device back); every
//      byte compared with the reference backend (tests/gpu/stress_common.h);
//   2. per-device dispatch tables: a table file measured on device 0 (its header names the device:
//      backend, arch, SM count, L2, name) with a row whose note this program recognises in
//      mlakv_pack_fp8_plan's text. Loaded, it applies to device 0 and to every device identical to
//      it, and to no other; a second file for device 1 leaves device 0's in force (or, identical
//      devices, replaces it on both); a file for a device that is not here and a malformed file
//      change nothing; mlakv_dispatch_table_reset and _set forget the files on every device; packing
//      on both devices while a file is in force gives the reference's bytes;
//   3. the same from the environment (a child process with MLAKV_TABLE naming device 0's file);
//   4. memory of device 0 passed with args.device = 1 (a child process, since a fault would end
//      the CUDA context): refused with MLAKV_ERR_MEMORY_SPACE, or run with the right bytes; never a
//      kernel fault. Skip with --no-cross-device.
// With fewer than 2 devices it says why and exits with 77 (ctest: skipped).
//
//   mlakv_multigpu_cuda [--seconds S] [--seed X] [--no-cross-device]
// Exit status: 0 pass, 1 a check failed (each check prints PASS or FAIL), 2 usage, 77 < 2 devices.
#include <cuda_runtime.h>
#include <mlakv/mlakv.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "stress_common.h"

extern char** environ;

namespace {

const char* kProg = "mlakv_multigpu_cuda";
int g_failed = 0;

// One check's verdict; the detail (a plan, a message) is printed with a failure only.
void check(bool ok, const std::string& what, const std::string& detail = std::string()) {
  const bool show = !ok && !detail.empty();
  std::printf("%s: %s: %s%s%s\n", kProg, ok ? "PASS" : "FAIL", what.c_str(), show ? "\n    " : "",
              show ? detail.c_str() : "");
  std::fflush(stdout);
  if (!ok) ++g_failed;
}

// ---- what a table file names, per device (as src/core/table_file.h defines the device line) -----
struct DevKey {
  int arch = 0, units = 0;
  long long l2_mib = 0;
  std::string name;
  bool operator==(const DevKey& o) const { return arch == o.arch && units == o.units && l2_mib == o.l2_mib && name == o.name; }
  std::string line() const {
    return "device backend=cuda arch=" + std::to_string(arch) + " units=" + std::to_string(units) +
           " l2=" + std::to_string(l2_mib) + " name=" + name;
  }
};
DevKey dev_key(int d) {
  cudaDeviceProp p;
  DevKey k;
  if (cudaGetDeviceProperties(&p, d) != cudaSuccess) return k;
  k.arch = p.major * 10 + p.minor;
  k.units = p.multiProcessorCount;
  k.l2_mib = (long long)(p.l2CacheSize) >> 20;
  for (const char* c = p.name; *c; ++c) {
    const char ch = *c;
    const bool ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' || ch == '-';
    k.name += ok ? ch : '_';
  }
  k.name = k.name.substr(0, 128);
  return k;
}

// A table file for `key` whose one row takes every call and carries the note `tag`.
std::string write_table(const std::string& dir, const std::string& file, const DevKey& key, const std::string& tag) {
  const std::string path = dir + "/" + file;
  std::ofstream o(path);
  o << "# " << kProg << ": a table file for one device\n"
    << "mlakv-table 1\n"
    << key.line() << "\n"
    << "arch=" << key.arch << "-" << key.arch << " s=1-* sxh=1-* dims=any variant=general threads=96  # " << tag << "\n";
  return path;
}

// ---- plan probes: a DeepSeek-shaped call on each device (buffers allocated once, zero-filled) --
struct Probe {
  int device = 0;
  void *kv = nullptr, *pe = nullptr, *ko = nullptr, *vo = nullptr;
};
const int64_t kPs = 64, kPh = 16;
bool make_probe(int d, Probe* p) {
  p->device = d;
  if (cudaSetDevice(d) != cudaSuccess) return false;
  const size_t kv = size_t(kPs * kPh * 256 * 2), pe = size_t(kPs * 64 * 2), ko = size_t(kPs * kPh * 192), vo = size_t(kPs * kPh * 128);
  bool ok = cudaMalloc(&p->kv, kv) == cudaSuccess && cudaMalloc(&p->pe, pe) == cudaSuccess &&
            cudaMalloc(&p->ko, ko) == cudaSuccess && cudaMalloc(&p->vo, vo) == cudaSuccess;
  ok = ok && cudaMemset(p->kv, 0, kv) == cudaSuccess && cudaMemset(p->pe, 0, pe) == cudaSuccess &&
       cudaMemset(p->ko, 0, ko) == cudaSuccess && cudaMemset(p->vo, 0, vo) == cudaSuccess;
  return ok;
}
mlakv_pack_args probe_args(const Probe& p, int device) {
  mlakv_pack_args a = MLAKV_PACK_ARGS_INIT;
  a.k_nope = tu::tensor3(p.kv, MLAKV_DTYPE_BF16, kPs, kPh, 128, kPh * 256, 256);
  a.v = tu::tensor3(static_cast<char*>(p.kv) + 256, MLAKV_DTYPE_BF16, kPs, kPh, 128, kPh * 256, 256);
  a.k_pe = tu::tensor2(p.pe, MLAKV_DTYPE_BF16, kPs, 64, 64);
  a.k_out = tu::tensor3(p.ko, MLAKV_DTYPE_E4M3FN, kPs, kPh, 192, kPh * 192, 192);
  a.v_out = tu::tensor3(p.vo, MLAKV_DTYPE_E4M3FN, kPs, kPh, 128, kPh * 128, 128);
  a.backend = MLAKV_BACKEND_CUDA;
  a.device = device;
  return a;
}
std::string plan_on(const Probe& p) {
  const mlakv_pack_args a = probe_args(p, p.device);
  char buf[2048];
  buf[0] = '\0';
  const mlakv_status st = mlakv_pack_fp8_plan(&a, buf, sizeof buf, nullptr);
  if (st != MLAKV_OK) return std::string("(plan failed: ") + mlakv_status_string(st) + ": " + mlakv_last_error() + ")";
  return buf;
}
bool has(const std::string& text, const std::string& what) { return text.find(what) != std::string::npos; }

// Every device's plan names `path` with `tag` where expect[d], else the built-in table (or `other`).
void check_plans(const std::vector<Probe>& probes, const std::vector<bool>& expect, const std::string& path,
                 const std::string& tag, const std::string& what, const char* otherwise = "table=built-in") {
  for (size_t d = 0; d < probes.size(); ++d) {
    const std::string plan = plan_on(probes[d]);
    const bool ok = expect[d] ? has(plan, "table=" + path) && has(plan, tag)
                              : has(plan, otherwise) && !has(plan, tag);
    check(ok, what + ": device " + std::to_string(d) + (expect[d] ? " names " + path : std::string(" uses ") + otherwise),
          "plan: " + plan);
  }
}

// ---- concurrent packing ---------------------------------------------------------------------------
bool run_concurrent(int ndev, double seconds, uint64_t seed, const std::string& label, stress::Stats* total) {
  static const int64_t sizes[][2] = {{1, 16},   {2048, 128}, {7, 128},  {8192, 16}, {64, 2},   {384, 128},
                                     {1, 1},    {4096, 16},  {129, 128}, {1000, 16}, {8, 128},  {8192, 1},
                                     {33, 16},  {512, 128},  {3, 2},    {256, 16}};
  constexpr int kSizes = int(sizeof sizes / sizeof sizes[0]);
  stress::WorkerOptions opt;
  opt.slab_bytes = size_t(1) << 30;
  opt.max_calls = 4;
  std::vector<std::unique_ptr<stress::Worker>> workers;
  for (int d = 0; d < ndev; ++d) workers.emplace_back(new stress::Worker(d, {d}, seed + uint64_t(d), opt));
  stress::WorkerOptions alt = opt;
  alt.switch_device = true;
  std::vector<int> all;
  for (int d = 0; d < ndev; ++d) all.push_back(d);
  workers.emplace_back(new stress::Worker(ndev, all, seed + 1000, alt));  // alternates devices

  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(seconds));
  std::atomic<int> ready{0};
  const int nw = int(workers.size());
  std::vector<std::thread> threads;
  for (int w = 0; w < nw; ++w)
    threads.emplace_back([&, w] {
      stress::Worker& W = *workers[size_t(w)];
      const bool ok = W.init();
      ready.fetch_add(1);
      while (ready.load() < nw) std::this_thread::yield();  // all devices start together
      for (uint64_t b = 0; ok && !stress::failures().stop.load() && std::chrono::steady_clock::now() < deadline; ++b) {
        if (w == nw - 1) {
          if (!W.run_random_batch()) break;
          continue;
        }
        // device w: sizes from the list, starting half-way round it for every other device
        std::vector<stress::Spec> specs;
        const int n = 1 + int(W.rng().below(3));
        for (int k = 0; k < n; ++k) {
          const int i = int((b * 3 + uint64_t(k) + uint64_t(w) * (kSizes / 2)) % kSizes);
          specs.push_back(stress::random_spec(W.rng(), opt.limits, w, sizes[i][0], sizes[i][1]));
        }
        if (!W.run_batch(specs)) break;
      }
      W.release();
    });
  for (auto& t : threads) t.join();
  stress::Stats s;
  for (auto& w : workers) s.merge(w->stats());
  total->merge(s);
  const bool ok = stress::failures().count.load() == 0;
  check(ok && s.executions > 0,
        "concurrent packing on " + std::to_string(ndev) + " devices (" + label + "): " + std::to_string(s.executions) +
            " executions, " + stress::human_bytes(double(s.bytes_checked)) + " compared",
        ok ? std::string() : stress::failures().first);
  return ok;
}

// ---- child processes ------------------------------------------------------------------------------
int spawn_self(const std::vector<std::string>& args, const std::vector<std::string>& env_set) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    bool replaced = false;
    for (const std::string& s : env_set)
      if (std::strncmp(*e, s.c_str(), s.find('=') + 1) == 0) replaced = true;
    if (!replaced) env.push_back(*e);
  }
  for (const std::string& s : env_set) env.push_back(s);
  std::vector<char*> argv, envp;
  std::string self = "/proc/self/exe";
  argv.push_back(const_cast<char*>(kProg));
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (std::string& e : env) envp.push_back(&e[0]);
  envp.push_back(nullptr);
  std::fflush(stdout);
  std::fflush(stderr);
  pid_t pid = 0;
  if (posix_spawn(&pid, self.c_str(), nullptr, nullptr, argv.data(), envp.data()) != 0) return -1;
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return -1;
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Child: MLAKV_TABLE names device 0's file; each device looks for it when first used.
int child_env(const std::string& path, const std::string& tag) {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess || n < 2) return 3;
  const DevKey k0 = dev_key(0);
  std::vector<Probe> probes(static_cast<size_t>(n));
  std::vector<bool> expect(static_cast<size_t>(n));
  for (int d = 0; d < n; ++d) {
    if (!make_probe(d, &probes[size_t(d)])) { check(false, "child: device buffers on device " + std::to_string(d)); return 1; }
    expect[size_t(d)] = dev_key(d) == k0;
  }
  check_plans(probes, expect, path, tag, "MLAKV_TABLE=" + path + " read when each device is first used");
  for (int d = 0; d < n; ++d)
    if (!expect[size_t(d)]) {
      const std::string plan = plan_on(probes[size_t(d)]);
      check(has(plan, "measured on another device"), "device " + std::to_string(d) + "'s plan says why MLAKV_TABLE does not apply",
            "plan: " + plan);
    }
  return g_failed ? 1 : 0;
}

// Child: device 0's memory in a call with args.device = 1.
int child_cross() {
  const int64_t s = 37, h = 16;
  const size_t kv_b = size_t(s * h * 256 * 2), pe_b = size_t(s * 64 * 2), ko_b = size_t(s * h * 192), vo_b = size_t(s * h * 128);
  tu::Rng rng(0xc705);
  std::vector<uint8_t> kv(kv_b), pe(pe_b), rk(ko_b, 0xA5), rv(vo_b, 0xA5);
  stress::fill_random(kv.data(), kv_b / 2, MLAKV_DTYPE_BF16, rng);
  stress::fill_random(pe.data(), pe_b / 2, MLAKV_DTYPE_BF16, rng);
  auto args = [&](void* kvp, void* pep, void* k, void* v, int device, void* stream, mlakv_backend b) {
    mlakv_pack_args a = MLAKV_PACK_ARGS_INIT;
    a.k_nope = tu::tensor3(kvp, MLAKV_DTYPE_BF16, s, h, 128, h * 256, 256);
    a.v = tu::tensor3(static_cast<char*>(kvp) + 256, MLAKV_DTYPE_BF16, s, h, 128, h * 256, 256);
    a.k_pe = tu::tensor2(pep, MLAKV_DTYPE_BF16, s, 64, 64);
    a.k_out = tu::tensor3(k, MLAKV_DTYPE_E4M3FN, s, h, 192, h * 192, 192);
    a.v_out = tu::tensor3(v, MLAKV_DTYPE_E4M3FN, s, h, 128, h * 128, 128);
    a.k_scale_inv = 26.6f;
    a.v_scale_inv = 47.6f;
    a.backend = b;
    a.device = device;
    a.stream = stream;
    return a;
  };
  {
    mlakv_pack_args r = args(kv.data(), pe.data(), rk.data(), rv.data(), 0, nullptr, MLAKV_BACKEND_REFERENCE);
    if (mlakv_pack_fp8(&r) != MLAKV_OK) { check(false, "child: the reference", mlakv_last_error()); return 1; }
  }
  void *d_kv, *d_pe, *d_ko, *d_vo;
  cudaStream_t st0, st1;
  if (cudaSetDevice(0) != cudaSuccess || cudaMalloc(&d_kv, kv_b) != cudaSuccess || cudaMalloc(&d_pe, pe_b) != cudaSuccess ||
      cudaMalloc(&d_ko, ko_b) != cudaSuccess || cudaMalloc(&d_vo, vo_b) != cudaSuccess ||
      cudaMemcpy(d_kv, kv.data(), kv_b, cudaMemcpyHostToDevice) != cudaSuccess ||
      cudaMemcpy(d_pe, pe.data(), pe_b, cudaMemcpyHostToDevice) != cudaSuccess ||
      cudaStreamCreateWithFlags(&st0, cudaStreamNonBlocking) != cudaSuccess || cudaSetDevice(1) != cudaSuccess ||
      cudaStreamCreateWithFlags(&st1, cudaStreamNonBlocking) != cudaSuccess) {
    check(false, "child: buffers on device 0, streams");
    return 1;
  }
  // runs the call; true if refused or right. *ran: it was accepted and ran.
  auto attempt = [&](const std::string& what, int device, cudaStream_t stream, bool must_run) -> bool {
    cudaSetDevice(0);
    if (cudaMemset(d_ko, 0xA5, ko_b) != cudaSuccess || cudaMemset(d_vo, 0xA5, vo_b) != cudaSuccess) {
      check(false, what + ": cudaMemset");
      return false;
    }
    mlakv_pack_args a = args(d_kv, d_pe, d_ko, d_vo, device, stream, MLAKV_BACKEND_CUDA);
    const mlakv_status st = mlakv_pack_fp8(&a);
    if (st == MLAKV_ERR_MEMORY_SPACE && !must_run) {
      check(true, what + ": refused with MLAKV_ERR_MEMORY_SPACE", mlakv_last_error());
      return true;
    }
    if (st != MLAKV_OK) {
      check(false, what + ": unexpected status " + mlakv_status_string(st), mlakv_last_error());
      return false;
    }
    cudaSetDevice(device);
    const cudaError_t e = cudaStreamSynchronize(stream);
    if (e != cudaSuccess) {
      check(false, what + ": accepted, and the kernel failed: " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")",
            "mlakv_pack_fp8 returned MLAKV_OK for memory its device cannot reach; the CUDA context is now unusable");
      return false;
    }
    std::vector<uint8_t> gk(ko_b), gv(vo_b);
    cudaSetDevice(0);
    const bool copied = cudaMemcpy(gk.data(), d_ko, ko_b, cudaMemcpyDeviceToHost) == cudaSuccess &&
                        cudaMemcpy(gv.data(), d_vo, vo_b, cudaMemcpyDeviceToHost) == cudaSuccess;
    const bool same = copied && gk == rk && gv == rv;
    check(same, what + (same ? ": ran, bytes identical to the reference" : ": ran, bytes DIFFER from the reference"));
    return same;
  };
  bool ok = attempt("device 0 memory, args.device = 1, no peer access, first call of this thread", 1, st1, false);
  // the same pointers known good on device 0 (the library's per-thread caches now hold them) ...
  ok = ok && attempt("device 0 memory on device 0", 0, st0, true);
  // ... then on device 1 again
  ok = ok && attempt("device 0 memory, args.device = 1, no peer access, after a call on device 0", 1, st1, false);
  int can = 0;
  if (ok && cudaDeviceCanAccessPeer(&can, 1, 0) == cudaSuccess && can) {
    cudaSetDevice(1);
    const cudaError_t e = cudaDeviceEnablePeerAccess(0, 0);
    if (e == cudaSuccess || e == cudaErrorPeerAccessAlreadyEnabled) {
      (void)cudaGetLastError();
      ok = attempt("device 0 memory, args.device = 1, peer access enabled", 1, st1, false);
    } else {
      std::printf("%s: note: cudaDeviceEnablePeerAccess(1 -> 0): %s\n", kProg, cudaGetErrorString(e));
    }
  } else if (ok) {
    std::printf("%s: note: device 1 cannot access device 0's memory (no peer access): that case not run\n", kProg);
  }
  return ok && !g_failed ? 0 : 1;
}

void usage(std::FILE* f) {
  std::fprintf(f,
               "usage: %s [--seconds S] [--seed X] [--no-cross-device]\n"
               "  --seconds S         concurrent packing: S seconds on the built-in tables, S/2 with a file in force (default 10)\n"
               "  --seed X            the seed (default 0x36c0)\n"
               "  --no-cross-device   skip the check of device 0's memory passed with args.device = 1\n"
               "exit: 0 pass, 1 a check failed, 2 usage, 77 fewer than 2 CUDA devices\n",
               kProg);
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 10;
  uint64_t seed = 0x36c0;
  bool cross = true;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--child-env" && i + 2 < argc) return child_env(argv[i + 1], argv[i + 2]);
    if (a == "--child-cross") return child_cross();
    const char* v = i + 1 < argc ? argv[i + 1] : nullptr;
    char* end = nullptr;
    if (a == "--help" || a == "-h") { usage(stdout); return 0; }
    else if (a == "--no-cross-device") cross = false;
    else if (a == "--seconds" && v && (seconds = std::strtod(v, &end)) > 0 && !*end) ++i;
    else if (a == "--seed" && v && ((seed = std::strtoull(v, &end, 0)), !*end)) ++i;
    else {
      std::fprintf(stderr, "%s: bad argument '%s'\n", kProg, a.c_str());
      usage(stderr);
      return 2;
    }
  }

  std::string why;
  const int n = stress::cuda_devices(&why);
  if (n < 2) {
    std::printf("%s: %d CUDA device%s (%s), 2 needed: skipped\n", kProg, n, n == 1 ? "" : "s",
                n == 0 ? why.c_str() : "one device");
    return 77;
  }
  const std::string problem = stress::cuda_backend_problem();
  if (!problem.empty()) {
    std::printf("%s: FAIL: %d CUDA devices are present but %s\n", kProg, n, problem.c_str());
    return 1;
  }
  std::vector<DevKey> keys;
  std::printf("%s: %s, %d devices, seed 0x%llx\n", kProg, mlakv_version_string(), n, (unsigned long long)seed);
  for (int d = 0; d < n; ++d) {
    keys.push_back(dev_key(d));
    std::printf("  device %d: %s\n", d, keys.back().line().c_str());
  }
  const bool identical = keys[0] == keys[1];
  std::printf("%s: devices 0 and 1 are %s for table files\n", kProg,
              identical ? "identical (one file applies to both)" : "different (a file applies to one)");
  for (mlakv_dtype d : tu::kInputDtypes) (void)stress::value_pool(d);
  stress::Stats total;

  // ---- 1. both devices at once on the built-in tables
  check(mlakv_dispatch_table_reset(MLAKV_BACKEND_CUDA) == MLAKV_OK, "mlakv_dispatch_table_reset");
  run_concurrent(n, seconds, seed, "built-in tables", &total);

  // ---- 2. per-device table files
  std::vector<Probe> probes(static_cast<size_t>(n));
  for (int d = 0; d < n; ++d)
    if (!make_probe(d, &probes[size_t(d)])) {
      check(false, "probe buffers on device " + std::to_string(d));
      return 1;
    }
  char dir_tmpl[] = "/tmp/mlakv-multigpu-XXXXXX";
  const char* dir = mkdtemp(dir_tmpl);
  if (!dir) {
    check(false, "mkdtemp");
    return 1;
  }
  const std::string tag0 = "multigpu-row-A-" + std::to_string(getpid()), tag1 = "multigpu-row-B-" + std::to_string(getpid());
  const std::string f0 = write_table(dir, "device0.table", keys[0], tag0);
  const std::string f1 = write_table(dir, "device1.table", keys[1], tag1);
  DevKey absent = keys[0];
  absent.units += 1000;
  const std::string fx = write_table(dir, "absent.table", absent, "multigpu-row-X");
  const std::string fbad = std::string(dir) + "/bad.table";
  { std::ofstream(fbad) << "mlakv-table 1\n" << keys[0].line() << "\narch=90-90 s=1-* variant=nosuch\n"; }
  std::vector<bool> on0(static_cast<size_t>(n)), on1(static_cast<size_t>(n)), none(static_cast<size_t>(n), false);
  for (int d = 0; d < n; ++d) {
    on0[size_t(d)] = keys[size_t(d)] == keys[0];
    on1[size_t(d)] = keys[size_t(d)] == keys[1];
  }

  check_plans(probes, none, "", tag0, "after a reset");
  mlakv_status st = mlakv_dispatch_table_load(MLAKV_BACKEND_CUDA, f0.c_str());
  check(st == MLAKV_OK, "mlakv_dispatch_table_load(device 0's file)", st ? mlakv_last_error() : "");
  check_plans(probes, on0, f0, tag0, "device 0's file loaded");

  // both devices at once while device 0 (and any identical one) runs the file's row
  run_concurrent(n, seconds / 2, seed + 77, "device 0's table file in force", &total);

  st = mlakv_dispatch_table_load(MLAKV_BACKEND_CUDA, f1.c_str());
  check(st == MLAKV_OK, "mlakv_dispatch_table_load(device 1's file)", st ? mlakv_last_error() : "");
  if (identical) {
    // the same device line: the later file replaces the earlier one on every device it names
    check_plans(probes, on1, f1, tag1, "device 1's file (identical devices) loaded after device 0's");
  } else {
    // each device keeps its own: device 0's file stays in force where device 1's does not apply
    for (int d = 0; d < n; ++d) {
      const std::string plan = plan_on(probes[size_t(d)]);
      const bool ok = on1[size_t(d)] ? has(plan, "table=" + f1) && has(plan, tag1)
                      : on0[size_t(d)] ? has(plan, "table=" + f0) && has(plan, tag0)
                                       : has(plan, "table=built-in");
      check(ok, "device 1's file loaded after device 0's: device " + std::to_string(d) + " keeps its own table",
            "plan: " + plan);
    }
  }
  std::vector<std::string> before;
  for (const Probe& p : probes) before.push_back(plan_on(p));
  st = mlakv_dispatch_table_load(MLAKV_BACKEND_CUDA, fx.c_str());
  check(st == MLAKV_ERR_TABLE_DEVICE, "a file for a device this process does not have: MLAKV_ERR_TABLE_DEVICE",
        std::string(mlakv_status_string(st)) + ": " + mlakv_last_error());
  st = mlakv_dispatch_table_load(MLAKV_BACKEND_CUDA, fbad.c_str());
  check(st == MLAKV_ERR_TABLE_PARSE, "a malformed file: MLAKV_ERR_TABLE_PARSE",
        std::string(mlakv_status_string(st)) + ": " + mlakv_last_error());
  for (int d = 0; d < n; ++d) {
    const std::string plan = plan_on(probes[size_t(d)]);
    check(plan == before[size_t(d)], "refused files change nothing: device " + std::to_string(d),
          "before: " + before[size_t(d)] + "\n    after:  " + plan);
  }
  check(mlakv_dispatch_table_reset(MLAKV_BACKEND_CUDA) == MLAKV_OK, "mlakv_dispatch_table_reset");
  check_plans(probes, none, "", tag0, "reset forgets the files");
  for (const Probe& p : probes)
    check(!has(plan_on(p), tag1), "reset forgets device 1's file too: device " + std::to_string(p.device));

  // mlakv_dispatch_table_set forgets them too
  check(mlakv_dispatch_table_load(MLAKV_BACKEND_CUDA, f0.c_str()) == MLAKV_OK, "mlakv_dispatch_table_load(device 0's file) again");
  size_t need = 0;
  mlakv_dispatch_table_get(MLAKV_BACKEND_CUDA, nullptr, 0, &need);
  std::string text(need, '\0');
  check(mlakv_dispatch_table_get(MLAKV_BACKEND_CUDA, &text[0], text.size(), nullptr) == MLAKV_OK, "mlakv_dispatch_table_get");
  check(mlakv_dispatch_table_set(MLAKV_BACKEND_CUDA, text.c_str()) == MLAKV_OK, "mlakv_dispatch_table_set(the built-in text)",
        mlakv_last_error());
  check_plans(probes, none, "", tag0, "set forgets the files", "table=set");
  check(mlakv_dispatch_table_reset(MLAKV_BACKEND_CUDA) == MLAKV_OK, "mlakv_dispatch_table_reset");
  check_plans(probes, none, "", tag0, "after the last reset");

  // ---- 3. the environment: a fresh process, MLAKV_TABLE naming device 0's file
  const std::string empty_dir = std::string(dir) + "/cache";
  mkdir(empty_dir.c_str(), 0700);
  int rc = spawn_self({"--child-env", f0, tag0}, {"MLAKV_TABLE=" + f0, "MLAKV_TABLE_DIR=" + empty_dir});
  check(rc == 0, "a child process with MLAKV_TABLE=" + f0 + " (exit " + std::to_string(rc) + ")");

  // ---- 4. device 0's memory in a call on device 1, in a child process
  if (cross) {
    rc = spawn_self({"--child-cross"}, {});
    check(rc == 0, "device 0's memory passed with args.device = 1: refused or right, never a fault (child exit " +
                       std::to_string(rc) + ")");
  } else {
    std::printf("%s: device 0's memory with args.device = 1: not checked (--no-cross-device)\n", kProg);
  }

  for (const std::string& f : {f0, f1, fx, fbad}) std::remove(f.c_str());
  rmdir(empty_dir.c_str());
  rmdir(dir);
  for (Probe& p : probes) {
    cudaSetDevice(p.device);
    cudaFree(p.kv); cudaFree(p.pe); cudaFree(p.ko); cudaFree(p.vo);
  }
  stress::print_stats(total, kProg);
  if (g_failed) {
    std::printf("%s: FAIL: %d check%s failed\n", kProg, g_failed, g_failed == 1 ? "" : "s");
    if (stress::failures().count.load()) std::printf("%s: first packing failure: %s\n", kProg, stress::failures().first.c_str());
    return 1;
  }
  std::printf("%s: OK\n", kProg);
  return 0;
}
