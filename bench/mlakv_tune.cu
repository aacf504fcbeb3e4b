// mlakv-tune: measures the GPU backend's kernel configurations on the present GPU and writes a
// dispatch table for that device (a table file, core/table_file.h) and a report. One source for
// both GPU backends: built by nvcc it tunes the `cuda` backend, by hipcc the `hip` backend (the
// runtime calls through gpu_runtime.h). The HIP build is compiled and run-checked without an AMD GPU
// (tests/hip/check_hip.sh: --help, and a clean failure with no device); it has never measured one.
//
//   mlakv-tune [--quick] [--device N] [--heads 8,16,32,64,128] [--s-max 32768] [--dtypes bf16,fp16]
//              [--cold] [--out DIR] [--install]
//
// Exit status: 0 done (the tuned table's output bytes equal the built-in table's); 1 an error
// during the run, or output bytes that differ; 2 a bad command line; 3 no device to tune (no
// CUDA / HIP device present, --device out of range, the library cannot use the device, or the
// runtime does not report what a table file must name: the device's name, arch or unit count).
//
// For every size (h, s; DeepSeek dims 128/64/128, each input dtype to e4m3fn, k_nope and v the
// halves of one [s, h, 256] tensor) it times, under CUDA / HIP graph replay, the built-in table's choice
// and every candidate configuration (each forced by a one-row table ending on the catch-all), then
// re-times the built-in row and the three candidates best over all sizes of the same s*h in three
// interleaved rounds of rotating order (medians). A candidate replaces the built-in row for a size only if it beats it by more
// than the noise measured there (the spread of the built-in row's re-timings, at least 1%). Sizes
// are grouped by s*h (the tables' band key): a candidate wins an s*h when it is best on the
// geometric mean over that s*h's sizes; neighbouring s*h that choose the same candidate merge into
// one band, with edges at the geometric midpoints. Bands the built-in table keeps are left out of
// the file: a loaded table's rows are tried first and the built-in table after them.
//
// Timing: L2 warm by default (the same buffers every call, as the Triton harness times);
// --cold rotates buffer sets beyond the L2 where a size's data would sit in it (the L2 the runtime
// reports: on AMD CDNA3 that is the L2, not the Infinity Cache behind it; the run says so).
//
// Writes OUT/<device>.table (load it with mlakv_dispatch_table_load or MLAKV_TABLE; --install copies
// it into the per-device cache directory, MLAKV_TABLE_DIR or $XDG_CACHE_HOME/mlakv, where the library
// finds it on its own), OUT/report.md, OUT/report.csv and OUT/report.png (with python3 + matplotlib).
// The tuned table is then loaded and every size timed again as dispatched, its output bytes compared
// with the built-in table's.
//
// The table file's device line (backend, arch, SM / CU count, L2 MiB, name) is built from the same
// runtime fields the library's vendor header reads (bench::device_identity), and is checked against
// the library before anything is measured: a one-row file with that line must load
// (mlakv_dispatch_table_load applies a file only to a device whose own line equals it).
#include <mlakv/mlakv.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <sys/stat.h>
#include <vector>

#include "bench_util.cuh"  // (gpu_runtime.h: gpu* runtime calls, bench::kBackend, device_identity)
#include "core/table_file.h"

namespace {

using bench::check;
using bench::DeviceIdentity;
using bench::DN;
using bench::DR;
using bench::DV;
using bench::Set;
using bench::Timer;
using bench::W;

using bench::kBackend;
using bench::kCatchAll;

// exit statuses (the header comment, --help)
constexpr int kExitError = 1, kExitUsage = 2, kExitNoDevice = 3;

const char* kUsage =
    "usage: mlakv-tune [--quick] [--device N] [--heads 8,16,32,64,128] [--s-max 32768] "
    "[--dtypes bf16,fp16] [--cold] [--out DIR] [--install]\n";

struct Opts {
  bool quick = false, cold = false, install = false;
  int device = 0;
  std::vector<int64_t> heads{8, 16, 32, 64, 128};
  int64_t s_max = 32768;
  std::vector<mlakv_dtype> dtypes{MLAKV_DTYPE_BF16, MLAKV_DTYPE_FP16};
  std::string out;
};

std::vector<int64_t> int_list(const std::string& s) {
  std::vector<int64_t> v;
  std::stringstream in(s);
  for (std::string t; std::getline(in, t, ',');) v.push_back(std::atoll(t.c_str()));
  return v;
}

Opts parse(int argc, char** argv) {
  Opts o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) { std::fprintf(stderr, "mlakv-tune: %s needs a value\n", a.c_str()); std::exit(kExitUsage); }
      return argv[++i];
    };
    if (a == "--quick") o.quick = true;
    else if (a == "--cold") o.cold = true;
    else if (a == "--install") o.install = true;
    else if (a == "--device") o.device = std::atoi(next().c_str());
    else if (a == "--heads") o.heads = int_list(next());
    else if (a == "--s-max") o.s_max = std::atoll(next().c_str());
    else if (a == "--out") o.out = next();
    else if (a == "--dtypes") {
      o.dtypes.clear();
      std::stringstream in(next());
      for (std::string t; std::getline(in, t, ',');) {
        if (t == "bf16") o.dtypes.push_back(MLAKV_DTYPE_BF16);
        else if (t == "fp16") o.dtypes.push_back(MLAKV_DTYPE_FP16);
        else { std::fprintf(stderr, "mlakv-tune: --dtypes takes bf16,fp16\n"); std::exit(kExitUsage); }
      }
    } else if (a == "--help" || a == "-h") {
      std::printf("%s"
                  "Measures the %s backend's kernel configurations on one %s device and writes a dispatch\n"
                  "table for it (OUT/<device>.table) and a report (OUT/report.md, .csv, .png);\n"
                  "--install also puts the table where the library finds it for this device\n"
                  "(MLAKV_TABLE_DIR, else $XDG_CACHE_HOME/mlakv, else $HOME/.cache/mlakv).\n"
                  "  --quick        h 16 and 128, 6 token counts, bf16 only\n"
                  "  --device N     the device to tune (default 0)\n"
                  "  --heads LIST   head counts (default 8,16,32,64,128)\n"
                  "  --s-max N      the largest token count (default 32768)\n"
                  "  --dtypes LIST  input dtypes: bf16,fp16 (default both)\n"
                  "  --cold         rotate buffer sets beyond the L2 (default: L2 warm)\n"
                  "  --out DIR      where the table and report go (default mlakv-tune-<device name>)\n"
                  "  --install      also copy the table into the directory the library reads\n"
                  "exit status: 0 done; 1 an error during the run, or tuned output bytes differing from\n"
                  "the built-in table's; 2 a bad command line; 3 no %s device to tune (none present, or\n"
                  "none the library can use or name in a table file)\n",
                  kUsage, bench::kName, bench::kVendor, bench::kVendor);
      std::exit(0);
    } else {
      std::fprintf(stderr, "mlakv-tune: unknown argument '%s'\n%s", a.c_str(), kUsage);
      std::exit(kExitUsage);
    }
  }
  if (o.quick) {
    o.heads = {16, 128};
    o.dtypes = {MLAKV_DTYPE_BF16};
  }
  return o;
}

// ---- candidates: rows without arch/s/sxh, forced one at a time ----------------------------------
// Configurations the GPU kernels are compiled for (gpu_backend.cu row_check: unroll 1 and 2, any
// layout), in blocks of whole warps / wavefronts (warp: the device's, 32 on NVIDIA, 64 on AMD CDNA;
// every block size here is a multiple of 64, the check drops any that is not). `early` (the PDL
// trigger) only where the backend has PDL: HIP rows leave it out (no PDL on AMD, the key changes
// nothing there), so no two HIP candidates differ only in it. A candidate the backend still refuses
// for a size (its register limit, the unit layout) is skipped there (Problem::refusal).
std::vector<std::string> candidates(bool quick, int warp) {
  std::vector<std::string> c;
  char row[160];
  const char* early1 = bench::kHasPdl ? " early=1" : "";
  const char* early0 = bench::kHasPdl ? " early=0" : "";
  if (warp <= 0) warp = 32;
  const int threads[] = {64, 128, 256, 512, 1024};
  struct L { const char* name; int lanes, split; } layouts[] = {{"l16s", 16, 1}, {"l8", 8, 0}, {"l32", 32, 1}, {"l16", 16, 0}};
  for (int t : threads)
    for (const L& l : layouts)
      for (int u : {1, 2}) {
        if (quick && (u == 2 || t == 64)) continue;
        if (t % warp) continue;
        std::snprintf(row, sizeof row, "variant=flat threads=%d unroll=%d%s lanes=%d split=%d", t, u, early1, l.lanes, l.split);
        c.push_back(row);
      }
  for (int block : {8, 16}) {  // one-pass 2-D tiles: block x 16 lanes = threads
    if (block * 16 % warp) continue;
    std::snprintf(row, sizeof row, "variant=tile2d threads=%d block=%d%s lanes=16 split=1", block * 16, block, early1);
    c.push_back(row);
  }
  for (int block : {16, 32})  // the same on tile2d's lean instance (the H200's choice at ~27-31 MB),
    for (const char* order : {"", " order=heads"}) {  // blocks numbered token tiles or heads first
      if (block * 16 % warp) continue;
      std::snprintf(row, sizeof row, "variant=tile2d threads=%d block=%d%s lanes=16 split=1 lean=1%s", block * 16, block,
                    early1, order);
      c.push_back(row);
    }
  for (int waves : {2, 4})
    for (int u : {1, 2}) {
      std::snprintf(row, sizeof row, "variant=persist threads=256 unroll=%d waves=%d%s lanes=8", u, waves, early0);
      c.push_back(row);
    }
  return c;
}

// ---- device buffers and the timer ------------------------------------------------------------------
__global__ void fill_inputs(uint16_t* x, int64_t n, uint32_t seed, uint16_t base) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    uint32_t z = uint32_t(i) * 2654435761u ^ seed;
    z ^= z >> 15;
    z *= 2246822519u;
    x[i] = uint16_t(base + (z >> 22)) ^ uint16_t((z & 1) << 15);  // mixed magnitudes and signs
  }
}

struct Size {
  int64_t h, s;
  mlakv_dtype in;
  double bytes() const { return bench::bytes_moved(s, h); }
  int64_t sxh() const { return s * h; }
};

mlakv_pack_args make_args(const Size& z, const Set& b, const float* sc, gpuStream_t st, int device) {
  return bench::make_args(z.s, z.h, z.in, b, sc, st, device);
}

void progress(size_t done, size_t total, const std::string& what) {
  const int w = 30, n = total ? int(w * done / total) : w;
  std::fprintf(stderr, "\r[%s%s] %3d%% %-40s", std::string(size_t(n), '#').c_str(), std::string(size_t(w - n), ' ').c_str(),
               total ? int(100 * done / total) : 100, what.c_str());
  if (done == total) std::fprintf(stderr, "\n");
  std::fflush(stderr);
}

std::string table_text_for(const std::string& row) {
  return "arch=0-100000 s=1-* sxh=1-* dims=x8 " + row + "\n" + kCatchAll;
}

// ---- one size's buffers and calls ----------------------------------------------------------------
// Calls a timed graph holds: enough for about 300 µs of work at 4 TB/s (at least 3, at most 256), so
// that each call is timed in steady state - overlapping the one before it through PDL, as in a
// serving engine's stream and in the Triton harness's 20 ms graphs - and a graph's own start and end
// weigh little. (Graphs of 20-40 calls, as until 2026-11-30, read 0.05-0.1 µs more per call below
// 1 MB on an H200, and chose the same rows from 1 MB up.)
int graph_calls(double bytes) {
  const double est_us = std::max(0.8, bytes / 4e6);  // bytes / (4e12 B/s) in µs
  return int(std::min(256.0, std::max(3.0, std::ceil(300.0 / est_us))));
}

struct Problem {
  Size z;
  std::vector<Set> sets;
  std::vector<mlakv_pack_args> args;
  int calls = 40;
  Problem(Timer& T, const Opts& o, const DeviceIdentity& id, const Size& zz, float* d_sc) : z(zz) {
    const double bytes = z.bytes();
    const int nsets = o.cold ? int(std::min<double>(8, std::max<double>(1, std::ceil(3.0 * double(id.l2_bytes) / bytes)))) : 1;
    sets.resize(static_cast<size_t>(nsets));
    const uint16_t base = z.in == MLAKV_DTYPE_BF16 ? 0x3C00 : 0x3000;  // around 1/128..8 (bf16) / 0.125..2 (fp16)
    for (Set& b : sets) {
      CK(gpuMalloc(&b.kv, size_t(z.s * z.h * W * 2)));
      CK(gpuMalloc(&b.pe, size_t(z.s * DR * 2)));
      CK(gpuMalloc(&b.k, size_t(z.s * z.h * (DN + DR))));
      CK(gpuMalloc(&b.v, size_t(z.s * z.h * DV)));
      fill_inputs<<<1024, 256, 0, T.st>>>(static_cast<uint16_t*>(b.kv), z.s * z.h * W, 12345u, base);
      fill_inputs<<<64, 256, 0, T.st>>>(static_cast<uint16_t*>(b.pe), z.s * DR, 777u, base);
      args.push_back(make_args(z, b, d_sc, T.st, o.device));
    }
    CK(gpuGetLastError());  // the fills launched
    CK(gpuStreamSynchronize(T.st));
    calls = std::max(graph_calls(bytes), 2 * nsets);
  }
  ~Problem() {
    for (Set& b : sets) { (void)gpuFree(b.kv); (void)gpuFree(b.pe); (void)gpuFree(b.k); (void)gpuFree(b.v); }
  }
  // µs per call under the current table ("" = the built-in one) or one candidate's
  double time(Timer& T, const std::string& candidate) {
    if (candidate.empty()) check(mlakv_dispatch_table_reset(kBackend), "reset");
    else check(mlakv_dispatch_table_set(kBackend, table_text_for(candidate).c_str()), "candidate table");
    return T.graph_us(calls, [&](int i) { check(mlakv_pack_fp8(&args[size_t(i) % args.size()]), "pack"); }, 4.0);
  }
  // Whether a candidate can be timed here: "" if its row holds and one untimed call of it runs;
  // "catch-all" if the backend's can_run refuses the row for this size (the catch-all would run:
  // nothing to time); else why the backend refused it (its table text, the plan, the launch).
  std::string refusal(Timer& T, const std::string& candidate) {
    if (mlakv_dispatch_table_set(kBackend, table_text_for(candidate).c_str()) != MLAKV_OK)
      return std::string("the table refuses it: ") + mlakv_last_error();
    char plan[768];
    mlakv_status st = mlakv_pack_fp8_plan(&args[0], plan, sizeof plan, nullptr);
    if (st != MLAKV_OK) return std::string("plan: ") + mlakv_status_string(st) + " (" + mlakv_last_error() + ")";
    if (std::strstr(plan, "# catch-all")) return "catch-all";
    if ((st = mlakv_pack_fp8(&args[0])) != MLAKV_OK)
      return std::string("pack: ") + mlakv_status_string(st) + " (" + mlakv_last_error() + ")";
    const gpuError_t e = gpuStreamSynchronize(T.st);
    if (e != gpuSuccess) {
      (void)gpuGetLastError();
      return std::string("its kernel failed: ") + gpuGetErrorString(e);
    }
    return "";
  }
};

struct Measured {
  Size z;
  double builtin_first = 0;
  std::map<std::string, double> first;    // every candidate that holds, timed once
  double builtin = 0, noise = 0.01;       // the built-in row re-timed (median) and its spread
  std::map<std::string, double> retimed;  // the group's three best, re-timed beside it (medians)
  double copy = 0, tuned = 0;
  std::string tuned_plan;
};

// Phase 1: the built-in row, every candidate once and a device copy of the same bytes.
// A candidate the backend refuses (other than by falling to the catch-all) is skipped for the size,
// and said once.
Measured first_pass(Timer& T, const Opts& o, const DeviceIdentity& id, const Size& z,
                    const std::vector<std::string>& cands, float* d_sc) {
  static std::set<std::string> told;
  Measured m;
  m.z = z;
  Problem pb(T, o, id, z, d_sc);
  m.builtin_first = pb.time(T, "");
  for (const std::string& c : cands) {
    const std::string why = pb.refusal(T, c);
    if (why.empty()) m.first[c] = pb.time(T, c);
    else if (why != "catch-all" && told.insert(c).second)
      std::fprintf(stderr, "\nmlakv-tune: skipping '%s' (h=%lld s=%lld and wherever else it fails): %s\n", c.c_str(),
                   (long long)z.h, (long long)z.s, why.c_str());
  }
  void *src, *dst;
  const size_t half = size_t(z.bytes() / 2);
  CK(gpuMalloc(&src, half));
  CK(gpuMalloc(&dst, half));
  m.copy = T.graph_us(pb.calls, [&](int) { CK(gpuMemcpyAsync(dst, src, half, gpuMemcpyDeviceToDevice, T.st)); });
  CK(gpuFree(src));
  CK(gpuFree(dst));
  return m;
}

// Phase 2, for the sizes of one s*h: the three candidates with the best geometric mean of their
// first timings relative to the built-in row's, re-timed with the built-in row at every size in
// three interleaved rounds of rotating order.
void retime_group(Timer& T, const Opts& o, const DeviceIdentity& id, std::vector<Measured*>& group, float* d_sc) {
  std::map<std::string, std::pair<double, size_t>> score;
  for (const Measured* m : group)
    for (const auto& kv : m->first) {
      auto& sc = score[kv.first];
      sc.first += std::log(kv.second / m->builtin_first);
      sc.second += 1;
    }
  std::vector<std::pair<double, std::string>> ranked;
  for (const auto& kv : score)
    if (kv.second.second == group.size()) ranked.push_back({kv.second.first / double(kv.second.second), kv.first});
  std::sort(ranked.begin(), ranked.end());
  std::vector<std::string> contenders{""};
  for (size_t i = 0; i < ranked.size() && i < 3; ++i) contenders.push_back(ranked[i].second);
  for (Measured* m : group) {
    Problem pb(T, o, id, m->z, d_sc);
    std::map<std::string, std::vector<double>> samples;
    for (int round = 0; round < 3; ++round)
      for (size_t k = 0; k < contenders.size(); ++k) {
        const std::string& c = contenders[(k + size_t(round)) % contenders.size()];
        samples[c].push_back(pb.time(T, c));
      }
    for (auto& kv : samples) {
      std::vector<double> v = kv.second;
      std::sort(v.begin(), v.end());
      if (kv.first.empty()) {
        m->builtin = v[1];
        m->noise = std::max(0.01, v[2] / v[0] - 1);
      } else {
        m->retimed[kv.first] = v[1];
      }
    }
  }
  check(mlakv_dispatch_table_reset(kBackend), "reset");
}

// The candidate a group of sizes (one s*h) should run, "" for the built-in row: the best geometric
// mean of time relative to the built-in row, kept only where it beats the built-in row by more than
// the noise at every size of the group.
std::string choose(const std::vector<const Measured*>& group, double* gain) {
  std::map<std::string, std::pair<double, int>> score;  // log-ratio sum, count
  for (const Measured* m : group)
    for (const auto& kv : m->retimed) {
      auto& s = score[kv.first];
      s.first += std::log(kv.second / m->builtin);
      s.second += 1;
    }
  std::string best;
  double best_score = 0;
  for (const auto& kv : score) {
    if (kv.second.second != int(group.size())) continue;  // not a contender at every size
    const double g = kv.second.first / kv.second.second;
    bool beats_noise = true;
    for (const Measured* m : group) beats_noise &= m->retimed.at(kv.first) < m->builtin / (1 + m->noise);
    if (beats_noise && g < best_score) { best_score = g; best = kv.first; }
  }
  *gain = best.empty() ? 0 : 1 - std::exp(best_score);
  return best;
}

std::string now_date() {
  char b[32];
  const std::time_t t = std::time(nullptr);
  std::strftime(b, sizeof b, "%Y-%m-%d", std::gmtime(&t));
  return b;
}

const char* kPlotPy = R"PY(
import csv, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
rows = list(csv.DictReader(open(sys.argv[1])))
heads = sorted({int(r["h"]) for r in rows})
fig, axes = plt.subplots(len(heads), 2, figsize=(11, 3.2 * len(heads)), squeeze=False)
for i, h in enumerate(heads):
    for dt in sorted({r["dtype"] for r in rows}):
        rs = sorted((r for r in rows if int(r["h"]) == h and r["dtype"] == dt), key=lambda r: int(r["s"]))
        s = [int(r["s"]) for r in rs]
        for key, label, style in (("builtin_us", "built-in table", "o-"), ("tuned_us", "tuned table", "s-"), ("copy_us", "device copy", "x--")):
            us = [float(r[key]) for r in rs]
            mb = [float(r["mb"]) for r in rs]
            axes[i][0].loglog(s, us, style, label=f"{label} ({dt})", ms=3)
            axes[i][1].semilogx(s, [m / u for m, u in zip(mb, us)], style, label=f"{label} ({dt})", ms=3)
    axes[i][0].set_title(f"h = {h}: us per call"); axes[i][1].set_title(f"h = {h}: TB/s (read + written)")
    for a in axes[i]:
        a.set_xlabel("s (tokens)"); a.grid(True, which="both", alpha=0.3)
axes[0][0].legend(fontsize=7)
fig.suptitle(sys.argv[3])
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=90)
)PY";

// What the runtime did not say is written "unknown" (bench::device_identity: 0).
std::string known(int v, int div = 1) { return v > 0 ? std::to_string(v / div) : "unknown"; }

// The arch as the run and the report name it: "sm_90"; "gfx942:sramecc+:xnack- (arch 942)".
std::string arch_text(const DeviceIdentity& id) {
  return MLAKV_BENCH_HIP ? id.arch_text + " (arch " + std::to_string(id.arch) + ")" : id.arch_text;
}
std::string driver_text(const DeviceIdentity& id) {
  return MLAKV_BENCH_HIP ? "HIP driver " + known(id.driver) + ", runtime " + known(id.runtime)
                         : "driver " + known(id.driver);
}

// The device to tune, or why there is none (exit kExitNoDevice): the runtime's devices, then the
// library's view of its backend (built with it, and able to use a device).
int find_device(const Opts& o) {
  int count = 0;
  const gpuError_t e = gpuGetDeviceCount(&count);
  if (e != gpuSuccess || count <= 0) {
    (void)gpuGetLastError();
    std::fprintf(stderr, "mlakv-tune: no %s device present (%s); nothing to tune\n", bench::kVendor,
                 e != gpuSuccess ? gpuGetErrorString(e) : "0 devices");
    return kExitNoDevice;
  }
  if (o.device < 0 || o.device >= count) {
    std::fprintf(stderr, "mlakv-tune: --device %d: no such %s device (%d present)\n", o.device, bench::kVendor, count);
    return kExitNoDevice;
  }
  for (int32_t i = 0; i < mlakv_backend_count(); ++i) {
    mlakv_backend_info info = MLAKV_BACKEND_INFO_INIT;
    if (mlakv_backend_get_info(i, &info) != MLAKV_OK || info.backend != kBackend) continue;
    if (info.compiled && info.usable) return 0;
    std::fprintf(stderr, "mlakv-tune: the library's %s backend %s (%s)\n", bench::kName,
                 info.compiled ? "cannot use a device here" : "is not compiled in", info.detail ? info.detail : "");
    return kExitNoDevice;
  }
  std::fprintf(stderr, "mlakv-tune: the library knows no %s backend (%s)\n", bench::kName, mlakv_version_string());
  return kExitNoDevice;
}

}  // namespace

int main(int argc, char** argv) {
  const Opts o = parse(argc, argv);
  if (const int no = find_device(o)) return no;
  CK(gpuSetDevice(o.device));
  DeviceIdentity id;
  CK(bench::device_identity(o.device, &id));
  const int arch = id.arch;
  // A table file must name the device (core/table_file.cpp refuses an empty name, arch 0, no units);
  // where the runtime does not say, no file could ever apply to it: say so rather than measure.
  if (id.name.empty() || arch < 1 || id.units < 1) {
    std::fprintf(stderr, "mlakv-tune: the %s runtime does not report what a table file must name for device %d "
                 "(name '%s', arch %d from '%s', %d %s): no table could apply to it\n", bench::kVendor, o.device,
                 id.name.c_str(), arch, id.arch_text.c_str(), id.units, bench::kUnitsWord);
    return kExitNoDevice;
  }
  // the device line, built as the library builds its own (src/gpu/gpu_backend.cu device_info)
  const mlakv::TableDevice dev{bench::kName, arch, id.units, id.l2_bytes >> 20, mlakv::table_device_name(id.name)};
  const std::string out = o.out.empty() ? "mlakv-tune-" + dev.name : o.out;
  mkdir(out.c_str(), 0755);
  std::printf("mlakv-tune: %s (%s, %d %s, L2 %lld MiB, %s-bit bus at %s MHz), %s, mlakv %s%s\n", id.name.c_str(),
              arch_text(id).c_str(), id.units, bench::kUnitsWord, (long long)(id.l2_bytes >> 20), known(id.bus_bits).c_str(),
              known(id.mem_khz, 1000).c_str(), driver_text(id).c_str(), mlakv_version_string(),
              o.cold ? ", L2 cold (rotating buffers)" : ", L2 warm");
  if (o.cold && id.l2_bytes <= 0)
    std::printf("mlakv-tune: note: the runtime reports no L2 size: --cold rotates nothing (one buffer set a size)\n");
  else if (MLAKV_BENCH_HIP && o.cold)
    std::printf("mlakv-tune: note: --cold sizes its buffer rotation by the L2 the runtime reports (%lld MiB); a last-level "
                "cache behind it (AMD's Infinity Cache) is not counted and may still hold the data\n",
                (long long)(id.l2_bytes >> 20));
  // The library must take a file with this device line for this device before anything is measured.
  {
    const std::string probe = out + "/.mlakv-tune-identity.table";
    if (!(std::ofstream(probe) << "mlakv-table 1\n" << dev.line() << "\n" << kCatchAll)) {
      std::fprintf(stderr, "mlakv-tune: cannot write into %s\n", out.c_str());
      return kExitError;
    }
    const mlakv_status st = mlakv_dispatch_table_load(kBackend, probe.c_str());
    const std::string why = st == MLAKV_OK ? "" : mlakv_last_error();
    std::remove(probe.c_str());
    if (st != MLAKV_OK) {
      std::fprintf(stderr, "mlakv-tune: the library would not apply this device's table (%s): %s: %s\n", dev.line().c_str(),
                   mlakv_status_string(st), why.c_str());
      return kExitError;
    }
  }
  check(mlakv_dispatch_table_reset(kBackend), "reset");

  std::vector<int64_t> ss = o.quick ? std::vector<int64_t>{1, 8, 64, 512, 4096, 32768}
                                    : std::vector<int64_t>{1, 2, 4, 8, 16, 32, 64, 128, 256, 384, 512, 1024, 2048, 4096, 8192, 16384, 32768};
  std::vector<Size> sizes;
  for (mlakv_dtype in : o.dtypes)
    for (int64_t h : o.heads)
      for (int64_t s : ss)
        if (s <= o.s_max) sizes.push_back({h, s, in});
  const std::vector<std::string> cands = candidates(o.quick, id.warp);
  Timer T;
  float* d_sc;
  CK(gpuMalloc(&d_sc, 8));
  const float sc[2] = {1.0f / 0.0375f, 1.0f / 0.021f};
  CK(gpuMemcpy(d_sc, sc, 8, gpuMemcpyHostToDevice));
  bench::warm_up(T.st);
  const auto t_start = std::chrono::steady_clock::now();
  std::vector<Measured> ms;
  for (size_t i = 0; i < sizes.size(); ++i) {
    const Size& z = sizes[i];
    progress(i, 2 * sizes.size(), "h=" + std::to_string(z.h) + " s=" + std::to_string(z.s) + (z.in == MLAKV_DTYPE_BF16 ? " bf16" : " fp16"));
    ms.push_back(first_pass(T, o, id, z, cands, d_sc));
  }
  std::map<int64_t, std::vector<Measured*>> groups;
  for (Measured& m : ms) groups[m.z.sxh()].push_back(&m);
  size_t done = sizes.size();
  for (auto& kv : groups) {
    progress(done, 2 * sizes.size(), "re-timing s*h=" + std::to_string(kv.first));
    retime_group(T, o, id, kv.second, d_sc);
    done += kv.second.size();
  }
  progress(2 * sizes.size(), 2 * sizes.size(), "measured");

  // ---- bands on s*h
  std::vector<int64_t> keys;
  std::vector<std::string> winners;
  std::vector<double> gains;
  for (const auto& kv : groups) {
    double gain = 0;
    keys.push_back(kv.first);
    winners.push_back(choose(std::vector<const Measured*>(kv.second.begin(), kv.second.end()), &gain));
    gains.push_back(gain);
  }
  std::ostringstream rows;
  int n_rows = 0;
  for (size_t i = 0; i < keys.size();) {
    size_t j = i;
    while (j + 1 < keys.size() && winners[j + 1] == winners[i]) ++j;
    if (!winners[i].empty()) {
      const int64_t lo = i == 0 ? 1 : int64_t(std::floor(std::sqrt(double(keys[i - 1]) * double(keys[i])))) + 1;
      const std::string hi = j + 1 == keys.size() ? "*" : std::to_string(int64_t(std::floor(std::sqrt(double(keys[j]) * double(keys[j + 1])))));
      double best_gain = 0;
      for (size_t k = i; k <= j; ++k) best_gain = std::max(best_gain, gains[k]);
      // amax=0: timed on calls without an amax; calls with one fall through to the built-in rows
      rows << "arch=" << arch << "-" << arch << " s=1-* sxh=" << lo << "-" << hi << " amax=0 dims=ds " << winners[i]
           << "  # tuned: s*h " << keys[i] << "-" << keys[j] << ", up to " << int(best_gain * 1000 + 0.5) / 10.0
           << "% below the built-in row\n";
      ++n_rows;
    }
    i = j + 1;
  }
  const std::string table_path = out + "/" + dev.file_name();
  if (n_rows) {
    std::ofstream f(table_path);
    f << "# mlakv dispatch table measured by mlakv-tune on " << id.name << ", " << now_date() << "\n"
      << "# " << driver_text(id) << ", mlakv " << mlakv_version_string() << ", memory bus " << known(id.bus_bits)
      << " bits at " << known(id.mem_khz, 1000) << " MHz, " << (o.cold ? "L2 cold" : "L2 warm") << ", " << sizes.size()
      << " sizes, " << cands.size() << " candidates" << (MLAKV_BENCH_HIP ? ", " + id.arch_text : "") << "\n"
      << "# rows not listed here, and calls with an amax, fall through to the built-in table\n"
      << "mlakv-table 1\n" << dev.line() << "\n" << rows.str();
  }

  // ---- the tuned table as dispatched, and its bytes against the built-in table's
  if (n_rows) check(mlakv_dispatch_table_load(kBackend, table_path.c_str()), "load the tuned table");
  size_t mismatches = 0;
  for (size_t i = 0; i < ms.size(); ++i) {
    Measured& m = ms[i];
    progress(i, ms.size(), "tuned table, h=" + std::to_string(m.z.h) + " s=" + std::to_string(m.z.s));
    Set b;
    CK(gpuMalloc(&b.kv, size_t(m.z.s * m.z.h * W * 2)));
    CK(gpuMalloc(&b.pe, size_t(m.z.s * DR * 2)));
    CK(gpuMalloc(&b.k, size_t(m.z.s * m.z.h * (DN + DR))));
    CK(gpuMalloc(&b.v, size_t(m.z.s * m.z.h * DV)));
    fill_inputs<<<1024, 256, 0, T.st>>>(static_cast<uint16_t*>(b.kv), m.z.s * m.z.h * W, 999u, 0x3C00);
    fill_inputs<<<64, 256, 0, T.st>>>(static_cast<uint16_t*>(b.pe), m.z.s * DR, 5u, 0x3C00);
    CK(gpuGetLastError());
    mlakv_pack_args a = make_args(m.z, b, d_sc, T.st, o.device);
    char plan[768];
    check(mlakv_pack_fp8_plan(&a, plan, sizeof plan, nullptr), "plan");
    m.tuned_plan = plan;
    const size_t nk = size_t(m.z.s * m.z.h * (DN + DR)), nv = size_t(m.z.s * m.z.h * DV);
    std::vector<uint8_t> tk(nk), tv(nv), bk(nk), bv(nv);
    check(mlakv_pack_fp8(&a), "pack");
    CK(gpuStreamSynchronize(T.st));
    CK(gpuMemcpy(tk.data(), b.k, nk, gpuMemcpyDeviceToHost));
    CK(gpuMemcpy(tv.data(), b.v, nv, gpuMemcpyDeviceToHost));
    const int calls = graph_calls(m.z.bytes());
    m.tuned = n_rows ? T.graph_us(calls, [&](int) { check(mlakv_pack_fp8(&a), "pack"); }) : m.builtin;
    check(mlakv_dispatch_table_reset(kBackend), "reset");  // the built-in table's bytes
    check(mlakv_pack_fp8(&a), "pack");
    CK(gpuStreamSynchronize(T.st));
    CK(gpuMemcpy(bk.data(), b.k, nk, gpuMemcpyDeviceToHost));
    CK(gpuMemcpy(bv.data(), b.v, nv, gpuMemcpyDeviceToHost));
    mismatches += size_t(tk != bk) + size_t(tv != bv);
    if (n_rows) check(mlakv_dispatch_table_load(kBackend, table_path.c_str()), "load the tuned table");
    CK(gpuFree(b.kv)); CK(gpuFree(b.pe)); CK(gpuFree(b.k)); CK(gpuFree(b.v));
  }
  progress(ms.size(), ms.size(), "done");
  check(mlakv_dispatch_table_reset(kBackend), "reset");
  CK(gpuGetLastError());
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();

  // ---- the report
  std::ofstream csv(out + "/report.csv");
  csv << "h,s,dtype,mb,builtin_us,tuned_us,copy_us,noise_pct,tuned_row\n";
  std::ostringstream md;
  md << "# mlakv-tune on " << id.name << "\n\n" << now_date() << ", " << driver_text(id) << ", mlakv " << mlakv_version_string()
     << "; " << arch_text(id) << ", " << id.units << " " << bench::kUnitsWord << ", L2 " << (id.l2_bytes >> 20) << " MiB, "
     << known(id.bus_bits) << "-bit memory bus at " << known(id.mem_khz, 1000) << " MHz. DeepSeek dims, e4m3fn out, "
     << bench::kVendor << "-graph replay ("
     << (o.cold ? "L2 cold" : "L2 warm") << "), µs per call; " << sizes.size() << " sizes x " << cands.size()
     << " candidates in " << int(secs) << " s. Tuned rows: " << n_rows << " (" << table_path << ").\n"
     << "Output bytes of the tuned table equal the built-in table's: " << (mismatches ? "NO" : "yes") << ".\n\n"
     << "| h | s | in | MB | built-in µs | tuned µs | tuned vs built-in | copy µs | built-in TB/s | tuned TB/s |\n"
     << "|---|---|---|---|---|---|---|---|---|---|\n";
  for (const Measured& m : ms) {
    const char* dt = m.z.in == MLAKV_DTYPE_BF16 ? "bf16" : "fp16";
    const size_t bar = m.tuned_plan.find(" | ");
    const std::string row = bar == std::string::npos ? "" : m.tuned_plan.substr(bar + 3);
    csv << m.z.h << "," << m.z.s << "," << dt << "," << m.z.bytes() / 1e6 << "," << m.builtin << "," << m.tuned << "," << m.copy
        << "," << m.noise * 100 << ",\"" << row << "\"\n";
    char line[320];
    std::snprintf(line, sizeof line, "| %lld | %lld | %s | %.2f | %.2f | %.2f | %+.1f%% | %.2f | %.2f | %.2f |\n",
                  (long long)m.z.h, (long long)m.z.s, dt, m.z.bytes() / 1e6, m.builtin, m.tuned, 100 * (m.tuned / m.builtin - 1),
                  m.copy, m.z.bytes() / m.builtin / 1e6, m.z.bytes() / m.tuned / 1e6);
    md << line;
  }
  md << "\nTuned rows:\n\n```\n" << (n_rows ? rows.str() : "(none: the built-in table is kept at every size)\n") << "```\n";
  csv.close();
  std::ofstream(out + "/report.md") << md.str();
  {
    std::ofstream(out + "/plot.py") << kPlotPy;
    const std::string title = "mlakv-tune: " + id.name + ", " + now_date();
    const std::string cmd = "python3 -c 'import matplotlib' 2>/dev/null && python3 '" + out + "/plot.py' '" + out +
                            "/report.csv' '" + out + "/report.png' '" + title + "'";
    std::printf("%s\n", std::system(cmd.c_str()) == 0 ? ("plot: " + out + "/report.png").c_str()
                                                         : "plot: skipped (no python3 with matplotlib)");
    std::remove((out + "/plot.py").c_str());
  }
  if (o.install && n_rows) {
    const std::string dir = mlakv::table_cache_dir();
    if (dir.empty()) {
      std::fprintf(stderr, "mlakv-tune: --install: no MLAKV_TABLE_DIR, XDG_CACHE_HOME or HOME\n");
      return kExitError;
    }
    std::system(("mkdir -p '" + dir + "'").c_str());
    std::ifstream src(table_path, std::ios::binary);
    std::ofstream dst(dir + "/" + dev.file_name(), std::ios::binary);
    dst << src.rdbuf();
    std::printf("installed: %s/%s (the library loads it for this device when it is first used)\n", dir.c_str(),
                dev.file_name().c_str());
  }
  std::printf("%s", md.str().c_str());
  std::printf("mlakv-tune: %zu sizes, %d tuned rows, %zu byte mismatches, %d s\n", ms.size(), n_rows, mismatches, int(secs));
  return mismatches ? kExitError : 0;
}
