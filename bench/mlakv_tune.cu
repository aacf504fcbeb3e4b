// mlakv-tune: measures the CUDA backend's kernel configurations on the present GPU and writes a
// dispatch table for that device (a table file, core/table_file.h) and a report.
//
//   mlakv-tune [--quick] [--device N] [--heads 8,16,32,64,128] [--s-max 32768] [--dtypes bf16,fp16]
//              [--cold] [--out DIR] [--install]
//
// For every size (h, s; DeepSeek dims 128/64/128, each input dtype to e4m3fn, k_nope and v the
// halves of one [s, h, 256] tensor) it times, under CUDA-graph replay, the built-in table's choice
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
// --cold rotates buffer sets beyond the L2 where a size's data would sit in it.
//
// Writes OUT/<device>.table (load it with mlakv_dispatch_table_load or MLAKV_TABLE; --install copies
// it into the per-device cache directory, MLAKV_TABLE_DIR or $XDG_CACHE_HOME/mlakv, where the library
// finds it on its own), OUT/report.md, OUT/report.csv and OUT/report.png (with python3 + matplotlib).
// The tuned table is then loaded and every size timed again as dispatched, its output bytes compared
// with the built-in table's.
#include <cuda_runtime.h>
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
#include <sstream>
#include <string>
#include <sys/stat.h>
#include <vector>

#include "bench_util.cuh"
#include "core/table_file.h"

namespace {

using bench::check;
using bench::DN;
using bench::DR;
using bench::DV;
using bench::Set;
using bench::Timer;
using bench::W;

using bench::kCatchAll;

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
      if (i + 1 >= argc) { std::fprintf(stderr, "mlakv-tune: %s needs a value\n", a.c_str()); std::exit(2); }
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
        else { std::fprintf(stderr, "mlakv-tune: --dtypes takes bf16,fp16\n"); std::exit(2); }
      }
    } else {
      std::fprintf(stderr,
                   "usage: mlakv-tune [--quick] [--device N] [--heads 8,16,32,64,128] [--s-max 32768] "
                   "[--dtypes bf16,fp16] [--cold] [--out DIR] [--install]\n");
      std::exit(a == "--help" || a == "-h" ? 0 : 2);
    }
  }
  if (o.quick) {
    o.heads = {16, 128};
    o.dtypes = {MLAKV_DTYPE_BF16};
  }
  return o;
}

// ---- candidates: rows without arch/s/sxh, forced one at a time ----------------------------------
std::vector<std::string> candidates(bool quick) {
  std::vector<std::string> c;
  char row[160];
  const int threads[] = {64, 128, 256, 512, 1024};
  struct L { const char* name; int lanes, split; } layouts[] = {{"l16s", 16, 1}, {"l8", 8, 0}, {"l32", 32, 1}, {"l16", 16, 0}};
  for (int t : threads)
    for (const L& l : layouts)
      for (int u : {1, 2}) {
        if (quick && (u == 2 || t == 64)) continue;
        std::snprintf(row, sizeof row, "variant=flat threads=%d unroll=%d early=1 lanes=%d split=%d", t, u, l.lanes, l.split);
        c.push_back(row);
      }
  for (int block : {8, 16}) {  // one-pass 2-D tiles: block x 16 lanes = threads
    std::snprintf(row, sizeof row, "variant=tile2d threads=%d block=%d early=1 lanes=16 split=1", block * 16, block);
    c.push_back(row);
  }
  for (int waves : {2, 4})
    for (int u : {1, 2}) {
      std::snprintf(row, sizeof row, "variant=persist threads=256 unroll=%d waves=%d early=0 lanes=8", u, waves);
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

mlakv_pack_args make_args(const Size& z, const Set& b, const float* sc, cudaStream_t st, int device) {
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
struct Problem {
  Size z;
  std::vector<Set> sets;
  std::vector<mlakv_pack_args> args;
  int calls = 40;
  Problem(Timer& T, const Opts& o, const cudaDeviceProp& prop, const Size& zz, float* d_sc) : z(zz) {
    const double bytes = z.bytes();
    const int nsets = o.cold ? int(std::min<double>(8, std::max<double>(1, std::ceil(3.0 * prop.l2CacheSize / bytes)))) : 1;
    sets.resize(static_cast<size_t>(nsets));
    const uint16_t base = z.in == MLAKV_DTYPE_BF16 ? 0x3C00 : 0x3000;  // around 1/128..8 (bf16) / 0.125..2 (fp16)
    for (Set& b : sets) {
      CK(cudaMalloc(&b.kv, size_t(z.s * z.h * W * 2)));
      CK(cudaMalloc(&b.pe, size_t(z.s * DR * 2)));
      CK(cudaMalloc(&b.k, size_t(z.s * z.h * (DN + DR))));
      CK(cudaMalloc(&b.v, size_t(z.s * z.h * DV)));
      fill_inputs<<<1024, 256, 0, T.st>>>(static_cast<uint16_t*>(b.kv), z.s * z.h * W, 12345u, base);
      fill_inputs<<<64, 256, 0, T.st>>>(static_cast<uint16_t*>(b.pe), z.s * DR, 777u, base);
      args.push_back(make_args(z, b, d_sc, T.st, o.device));
    }
    CK(cudaStreamSynchronize(T.st));
    calls = std::max(bytes > 400e6 ? 3 : bytes > 40e6 ? 8 : bytes > 4e6 ? 20 : 40, 2 * nsets);
  }
  ~Problem() {
    for (Set& b : sets) { cudaFree(b.kv); cudaFree(b.pe); cudaFree(b.k); cudaFree(b.v); }
  }
  // µs per call under the current table ("" = the built-in one) or one candidate's
  double time(Timer& T, const std::string& candidate) {
    if (candidate.empty()) check(mlakv_dispatch_table_reset(MLAKV_BACKEND_CUDA), "reset");
    else check(mlakv_dispatch_table_set(MLAKV_BACKEND_CUDA, table_text_for(candidate).c_str()), "candidate table");
    return T.graph_us(calls, [&](int i) { check(mlakv_pack_fp8(&args[size_t(i) % args.size()]), "pack"); }, 4.0);
  }
  // whether a candidate's row holds here (else the catch-all would run: nothing to time)
  bool holds(const std::string& candidate) {
    char plan[768];
    check(mlakv_dispatch_table_set(MLAKV_BACKEND_CUDA, table_text_for(candidate).c_str()), "candidate table");
    check(mlakv_pack_fp8_plan(&args[0], plan, sizeof plan, nullptr), "plan");
    return !std::strstr(plan, "# catch-all");
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
Measured first_pass(Timer& T, const Opts& o, const cudaDeviceProp& prop, const Size& z,
                    const std::vector<std::string>& cands, float* d_sc) {
  Measured m;
  m.z = z;
  Problem pb(T, o, prop, z, d_sc);
  m.builtin_first = pb.time(T, "");
  for (const std::string& c : cands)
    if (pb.holds(c)) m.first[c] = pb.time(T, c);
  void *src, *dst;
  const size_t half = size_t(z.bytes() / 2);
  CK(cudaMalloc(&src, half));
  CK(cudaMalloc(&dst, half));
  m.copy = T.graph_us(pb.calls, [&](int) { CK(cudaMemcpyAsync(dst, src, half, cudaMemcpyDeviceToDevice, T.st)); });
  CK(cudaFree(src));
  CK(cudaFree(dst));
  return m;
}

// Phase 2, for the sizes of one s*h: the three candidates with the best geometric mean of their
// first timings relative to the built-in row's, re-timed with the built-in row at every size in
// three interleaved rounds of rotating order.
void retime_group(Timer& T, const Opts& o, const cudaDeviceProp& prop, std::vector<Measured*>& group, float* d_sc) {
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
    Problem pb(T, o, prop, m->z, d_sc);
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
  check(mlakv_dispatch_table_reset(MLAKV_BACKEND_CUDA), "reset");
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

}  // namespace

int main(int argc, char** argv) {
  const Opts o = parse(argc, argv);
  CK(cudaSetDevice(o.device));
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, o.device));
  int driver = 0, mem_khz = 0, bus = 0;
  CK(cudaDriverGetVersion(&driver));
  cudaDeviceGetAttribute(&mem_khz, cudaDevAttrMemoryClockRate, o.device);
  cudaDeviceGetAttribute(&bus, cudaDevAttrGlobalMemoryBusWidth, o.device);
  const int arch = prop.major * 10 + prop.minor;
  mlakv::TableDevice dev{"cuda", arch, prop.multiProcessorCount, int64_t(prop.l2CacheSize) >> 20,
                         mlakv::table_device_name(prop.name)};
  const std::string out = o.out.empty() ? "mlakv-tune-" + dev.name : o.out;
  mkdir(out.c_str(), 0755);
  std::printf("mlakv-tune: %s (sm_%d, %d SMs, L2 %d MiB, %d-bit bus at %d MHz), driver %d, mlakv %s%s\n", prop.name, arch,
              prop.multiProcessorCount, prop.l2CacheSize >> 20, bus, mem_khz / 1000, driver, mlakv_version_string(),
              o.cold ? ", L2 cold (rotating buffers)" : ", L2 warm");
  check(mlakv_dispatch_table_reset(MLAKV_BACKEND_CUDA), "reset");

  std::vector<int64_t> ss = o.quick ? std::vector<int64_t>{1, 8, 64, 512, 4096, 32768}
                                    : std::vector<int64_t>{1, 2, 4, 8, 16, 32, 64, 128, 256, 384, 512, 1024, 2048, 4096, 8192, 16384, 32768};
  std::vector<Size> sizes;
  for (mlakv_dtype in : o.dtypes)
    for (int64_t h : o.heads)
      for (int64_t s : ss)
        if (s <= o.s_max) sizes.push_back({h, s, in});
  const std::vector<std::string> cands = candidates(o.quick);
  Timer T;
  float* d_sc;
  CK(cudaMalloc(&d_sc, 8));
  const float sc[2] = {1.0f / 0.0375f, 1.0f / 0.021f};
  CK(cudaMemcpy(d_sc, sc, 8, cudaMemcpyHostToDevice));
  bench::warm_up(T.st);
  const auto t_start = std::chrono::steady_clock::now();
  std::vector<Measured> ms;
  for (size_t i = 0; i < sizes.size(); ++i) {
    const Size& z = sizes[i];
    progress(i, 2 * sizes.size(), "h=" + std::to_string(z.h) + " s=" + std::to_string(z.s) + (z.in == MLAKV_DTYPE_BF16 ? " bf16" : " fp16"));
    ms.push_back(first_pass(T, o, prop, z, cands, d_sc));
  }
  std::map<int64_t, std::vector<Measured*>> groups;
  for (Measured& m : ms) groups[m.z.sxh()].push_back(&m);
  size_t done = sizes.size();
  for (auto& kv : groups) {
    progress(done, 2 * sizes.size(), "re-timing s*h=" + std::to_string(kv.first));
    retime_group(T, o, prop, kv.second, d_sc);
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
    f << "# mlakv dispatch table measured by mlakv-tune on " << prop.name << ", " << now_date() << "\n"
      << "# driver " << driver << ", mlakv " << mlakv_version_string() << ", memory bus " << bus << " bits at "
      << mem_khz / 1000 << " MHz, " << (o.cold ? "L2 cold" : "L2 warm") << ", " << sizes.size() << " sizes, "
      << cands.size() << " candidates\n"
      << "# rows not listed here, and calls with an amax, fall through to the built-in table\n"
      << "mlakv-table 1\n" << dev.line() << "\n" << rows.str();
  }

  // ---- the tuned table as dispatched, and its bytes against the built-in table's
  if (n_rows) check(mlakv_dispatch_table_load(MLAKV_BACKEND_CUDA, table_path.c_str()), "load the tuned table");
  size_t mismatches = 0;
  for (size_t i = 0; i < ms.size(); ++i) {
    Measured& m = ms[i];
    progress(i, ms.size(), "tuned table, h=" + std::to_string(m.z.h) + " s=" + std::to_string(m.z.s));
    Set b;
    CK(cudaMalloc(&b.kv, size_t(m.z.s * m.z.h * W * 2)));
    CK(cudaMalloc(&b.pe, size_t(m.z.s * DR * 2)));
    CK(cudaMalloc(&b.k, size_t(m.z.s * m.z.h * (DN + DR))));
    CK(cudaMalloc(&b.v, size_t(m.z.s * m.z.h * DV)));
    fill_inputs<<<1024, 256, 0, T.st>>>(static_cast<uint16_t*>(b.kv), m.z.s * m.z.h * W, 999u, 0x3C00);
    fill_inputs<<<64, 256, 0, T.st>>>(static_cast<uint16_t*>(b.pe), m.z.s * DR, 5u, 0x3C00);
    mlakv_pack_args a = make_args(m.z, b, d_sc, T.st, o.device);
    char plan[768];
    check(mlakv_pack_fp8_plan(&a, plan, sizeof plan, nullptr), "plan");
    m.tuned_plan = plan;
    const size_t nk = size_t(m.z.s * m.z.h * (DN + DR)), nv = size_t(m.z.s * m.z.h * DV);
    std::vector<uint8_t> tk(nk), tv(nv), bk(nk), bv(nv);
    check(mlakv_pack_fp8(&a), "pack");
    CK(cudaStreamSynchronize(T.st));
    CK(cudaMemcpy(tk.data(), b.k, nk, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(tv.data(), b.v, nv, cudaMemcpyDeviceToHost));
    const int calls = m.z.bytes() > 400e6 ? 3 : m.z.bytes() > 40e6 ? 8 : m.z.bytes() > 4e6 ? 20 : 40;
    m.tuned = n_rows ? T.graph_us(calls, [&](int) { check(mlakv_pack_fp8(&a), "pack"); }) : m.builtin;
    check(mlakv_dispatch_table_reset(MLAKV_BACKEND_CUDA), "reset");  // the built-in table's bytes
    check(mlakv_pack_fp8(&a), "pack");
    CK(cudaStreamSynchronize(T.st));
    CK(cudaMemcpy(bk.data(), b.k, nk, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(bv.data(), b.v, nv, cudaMemcpyDeviceToHost));
    mismatches += size_t(tk != bk) + size_t(tv != bv);
    if (n_rows) check(mlakv_dispatch_table_load(MLAKV_BACKEND_CUDA, table_path.c_str()), "load the tuned table");
    cudaFree(b.kv); cudaFree(b.pe); cudaFree(b.k); cudaFree(b.v);
  }
  progress(ms.size(), ms.size(), "done");
  check(mlakv_dispatch_table_reset(MLAKV_BACKEND_CUDA), "reset");
  CK(cudaGetLastError());
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();

  // ---- the report
  std::ofstream csv(out + "/report.csv");
  csv << "h,s,dtype,mb,builtin_us,tuned_us,copy_us,noise_pct,tuned_row\n";
  std::ostringstream md;
  md << "# mlakv-tune on " << prop.name << "\n\n" << now_date() << ", driver " << driver << ", mlakv " << mlakv_version_string()
     << "; sm_" << arch << ", " << prop.multiProcessorCount << " SMs, L2 " << (prop.l2CacheSize >> 20) << " MiB, " << bus
     << "-bit memory bus at " << mem_khz / 1000 << " MHz. DeepSeek dims, e4m3fn out, CUDA-graph replay ("
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
    const std::string title = std::string("mlakv-tune: ") + prop.name + ", " + now_date();
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
      return 1;
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
  return mismatches ? 1 : 0;
}
