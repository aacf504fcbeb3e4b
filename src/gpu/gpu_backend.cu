// The GPU backends' host code, one source for every vendor: compiled by nvcc it is the `cuda`
// backend, by hipcc the `hip` backend (src/gpu/vendor.h picks the runtime; each vendor's dispatch
// table is its own file, src/cuda/cuda_table.cpp and src/hip/hip_table.cpp). Device probing and
// per-device caches, the memory check, the plan (table row -> kernel + launch configuration) and
// the launch. The launch path allocates nothing, never synchronises and never reads device memory,
// so it can be captured into a CUDA / HIP graph.
#include "gpu/vendor.h"  // first: the runtime's headers define what the shared headers use

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <cstring>
#include <mutex>
#include <new>
#include <string>

#include "core/backend.h"
#include "core/table_file.h"
#include "gpu/gpu_backend.h"
#include "gpu/kernel_table.h"

namespace mlakv {
namespace gpu {
namespace {

using kern::Units;
using kern::Params;

// ---- the kernel instances (src/gpu/kernel_table.h), compiled in six parts (src/gpu/instances/)
const KernelTable& kernels() {
  static const KernelTable t = [] {
    KernelTable r;
    fill_kernels<InType::BF16, false>(r);
    fill_kernels<InType::FP16, false>(r);
    fill_kernels<InType::FP32, false>(r);
    fill_kernels<InType::BF16, true>(r);
    fill_kernels<InType::FP16, true>(r);
    fill_kernels<InType::FP32, true>(r);
    return r;
  }();
  return t;
}

// ---- the current device of the calling thread, restored when the guard goes
class DeviceGuard {
 public:
  explicit DeviceGuard(int dev) : dev_(dev) {
    if (rt::get_device(&prev_) != rt::kOk) prev_ = -1;
    ok_ = prev_ == dev || rt::set_device(dev) == rt::kOk;
    if (!ok_) rt::clear_error();
  }
  ~DeviceGuard() {
    if (ok_ && prev_ >= 0 && prev_ != dev_) (void)rt::set_device(prev_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;
  bool ok() const { return ok_; }

 private:
  int dev_, prev_ = -1;
  bool ok_ = false;
};

// ---- process-wide and per-device caches, filled once each, thread-safely
struct Global {
  bool ok = false;
  int count = 0;
  std::string detail;
};
const Global& global() {
  static const Global* const g = new Global([] {  // never destroyed: calls at exit still find it
    Global r;
    const rt::Status e = rt::device_count(&r.count);
    if (e != rt::kOk || r.count <= 0) {
      rt::clear_error();
      r.count = 0;
      r.detail = std::string("no ") + rt::kName + " device: " + (e != rt::kOk ? rt::error_string(e) : "0 devices");
      return r;
    }
    r.ok = true;
    r.detail = std::to_string(r.count) + " device(s):";
    for (int d = 0; d < r.count && d < 8; ++d) {
      rt::DeviceProps prop;
      if (rt::device_props(d, &prop) == rt::kOk) r.detail += " " + prop.name + " (" + rt::arch_name(prop.arch) + ")";
      else rt::clear_error();
    }
    return r;
  }());
  return *g;
}

constexpr int kMaxDevices = 64;
constexpr int kKernelSlots = 2 * kVariantCount * 3 * 4 * kUnits * 3;
constexpr int kLeanSlots = 2 * 2 * 4;  // KernelTable::lean, after the others
constexpr int kLaneSlots = 3 * 4 * kUnits;  // KernelTable::lane (unroll 1), after lean
constexpr int kLeanXSlots = 2 * 2 * 4;      // KernelTable::lean_x, after lane

// A table file loaded for a device (core/table_file.h). Each device owns its copy; a replaced one
// is freed once no plan() can be reading it (core/dispatch.h: ReadSection, retire).
struct DeviceTable {
  std::vector<DispatchRow> rows;
  std::string source;  // the file
};
std::mutex g_loaded_mu;  // one writer of the devices' loaded tables at a time

struct DeviceInfo {
  std::once_flag once;
  std::atomic<bool> done{false};  // set after `once` ran: the per-call path is one acquire load
  std::atomic<int> max_threads[kKernelSlots + kLeanSlots + kLaneSlots + kLeanXSlots];  // per kernel: 0 = not asked yet
  bool ok = false;
  DeviceKey key;       // arch (the vendor header's numbering) and L2 for the table walk
  int units = 0;       // multiprocessors / compute units
  int image_arch = 0;  // CUDA: the arch of the code the driver loaded for our kernels
  TableDevice table_device;                   // what a table file must name to apply here
  std::atomic<const DeviceTable*> loaded{nullptr};
  std::string table_note;                     // why the environment's table file is not in force
};
// Never destroyed (calls at exit still find them); value-initialised, so every count starts at 0.
DeviceInfo* const g_devices = new DeviceInfo[kMaxDevices]();

// Installs (or, with rows == nullptr, removes) a device's loaded table; frees the one it replaces.
void install(DeviceInfo& d, const std::vector<DispatchRow>* rows, const std::string& source) {
  const DeviceTable* t = rows ? new DeviceTable{*rows, source} : nullptr;
  std::lock_guard<std::mutex> lock(g_loaded_mu);
  retire(d.loaded.exchange(t, std::memory_order_acq_rel));
}

// Reads and parses a table file; false + *why (the file's own problem) on failure.
bool read_table(const std::string& path, TableDevice* device, std::vector<DispatchRow>* rows, std::string* why) {
  std::string text;
  if (!read_table_file(path, &text, why)) return false;
  if (!parse_table_file(text, *table(), device, rows, why)) {
    *why = path + ": " + *why;
    return false;
  }
  return true;
}

// A device's table from the environment, when it is first used: the file MLAKV_TABLE names if it
// was measured on this device, else this device's own file in the cache directory.
void load_environment_table(DeviceInfo& d) {
  std::vector<std::string> candidates;
  if (const char* env = std::getenv("MLAKV_TABLE")) if (*env) candidates.push_back(env);
  const std::string dir = table_cache_dir();
  if (!dir.empty()) candidates.push_back(dir + "/" + d.table_device.file_name());
  for (size_t i = 0; i < candidates.size(); ++i) {
    const std::string& path = candidates[i];
    const bool from_env = i == 0 && std::getenv("MLAKV_TABLE") && *std::getenv("MLAKV_TABLE");
    if (!from_env) {  // the cache directory's file need not exist
      if (std::FILE* f = std::fopen(path.c_str(), "rb")) std::fclose(f);
      else continue;
    }
    TableDevice device;
    std::vector<DispatchRow> rows;
    std::string why;
    if (!read_table(path, &device, &rows, &why)) {
      d.table_note += (d.table_note.empty() ? "" : "; ") + std::string("rejected ") + why;
      continue;
    }
    if (!(device == d.table_device)) {
      if (from_env) d.table_note += (d.table_note.empty() ? "" : "; ") + std::string("MLAKV_TABLE=") + path +
                                    " was measured on another device (" + device.line() + ")";
      continue;
    }
    install(d, &rows, path);
    return;
  }
}

DeviceInfo* device_info(int dev) {
  if (dev < 0 || dev >= kMaxDevices || dev >= global().count) return nullptr;
  DeviceInfo& d = g_devices[dev];
  if (d.done.load(std::memory_order_acquire)) return d.ok ? &d : nullptr;
  std::call_once(d.once, [&] {
    rt::DeviceProps prop;
    if (rt::device_props(dev, &prop) != rt::kOk) {
      rt::clear_error();
      return;
    }
    DeviceGuard guard(dev);
    int max_threads = 0;
    if (!guard.ok() || rt::kernel_limits(reinterpret_cast<const void*>(kernels().k[0][kFlat][0][0][0][0]), &max_threads,
                                         &d.image_arch) != rt::kOk) {
      rt::clear_error();  // no image for this device in the fat binary
      return;
    }
    d.key.arch = prop.arch;
    d.key.l2_mib = prop.l2_bytes >> 20;
    d.units = prop.units;
    d.table_device = {rt::kName, prop.arch, prop.units, d.key.l2_mib, table_device_name(prop.name)};
    load_environment_table(d);
    d.ok = true;
  });
  d.done.store(true, std::memory_order_release);
  return d.ok ? &d : nullptr;
}

// mlakv_dispatch_table_load: the file, for every device of this process it was measured on.
mlakv_status load_table(const char* path, std::string* why) {
  TableDevice device;
  std::vector<DispatchRow> rows;
  if (!read_table(path, &device, &rows, why)) return MLAKV_ERR_TABLE_PARSE;
  if (device.backend != rt::kName) {
    *why = std::string(path) + " is a table of the " + device.backend + " backend, not " + rt::kName;
    return MLAKV_ERR_TABLE_DEVICE;
  }
  bool applied = false;
  std::string here;
  for (int i = 0; i < global().count && i < kMaxDevices; ++i) {
    DeviceInfo* d = device_info(i);
    if (!d) continue;
    here += "; device " + std::to_string(i) + ": " + d->table_device.line();
    if (!(d->table_device == device)) continue;
    install(*d, &rows, path);
    applied = true;
  }
  if (!applied) {
    *why = std::string(path) + " was measured on " + device.line() + ", which this process does not have" + here;
    return MLAKV_ERR_TABLE_DEVICE;
  }
  bump_table_generation();
  return MLAKV_OK;
}

void clear_device_tables() {
  for (int i = 0; i < global().count && i < kMaxDevices; ++i)
    if (DeviceInfo* d = device_info(i)) install(*d, nullptr, "");
  bump_table_generation();
}

// ---- Backend functions
bool probe(int* count, const char** detail) {
  const Global& g = global();
  *count = g.count;
  *detail = g.detail.c_str();
  return g.ok;
}

// ---- the memory check: each operand's whole span inside one device-accessible allocation.
// Verified ranges are remembered per thread (16 most recent), so a steady stream of calls on the
// same buffers costs a few compares per pointer instead of a runtime call. The cache trades a
// residual risk for speed: a range verified as device memory, then freed and reused for something
// host-only, would be accepted until it leaves the cache (MLAKV_FLAG_TRUST_POINTERS: no checks).
struct Range {
  uintptr_t begin = 0, end = 0;
  int device = -1;  // the call's device it was verified for
};
constexpr int kRangeCache = 16;
struct RangeCache {
  Range r[kRangeCache];
  unsigned next = 0;
};
thread_local RangeCache t_ranges;  // looked up once per call: TLS access is not free in a .so

// Classifies [p, p + bytes) and remembers reachable ranges.
rt::Where classify(RangeCache& cache, const void* p, int device, int64_t bytes, bool* inside) {
  const uintptr_t b = reinterpret_cast<uintptr_t>(p), e = b + uint64_t(bytes);
  for (Range& r : cache.r)
    if (r.begin <= b && b < r.end && r.device == device) {
      if (e <= r.end) {
        *inside = true;
        return rt::Where::Reachable;
      }
      r = Range();  // stale (freed and reallocated larger?): ask the runtime again
      break;
    }
  uintptr_t begin = 0;
  size_t size = 0;
  const rt::Where w = rt::classify(p, device, &begin, &size);
  *inside = true;
  if (w == rt::Where::Reachable && size) {
    Range& slot = cache.r[cache.next++ % kRangeCache];
    slot.begin = begin;
    slot.end = begin + size;
    slot.device = device;
    *inside = b >= slot.begin && e <= slot.end;
  }
  return w;
}

mlakv_status check_memory(const PackProblem& p, uint32_t skip, std::string* why) {
  // (a device that does not exist is the call's problem, not its memory's)
  if (p.device >= global().count) {
    *why = std::string(rt::kName) + " device " + std::to_string(p.device) + " does not exist (" +
           std::to_string(global().count) + " present)";
    return MLAKV_ERR_DEVICE;
  }
  RangeCache* cache = nullptr;
  for (int i = 0; i < kOperandCount; ++i) {
    const Operand& o = p.op[i];
    if (!o.ptr || (skip >> i & 1)) continue;
    if (!cache) cache = &t_ranges;
    const char* name = kOperandNames[i];
    bool inside = true;
    switch (classify(*cache, o.ptr, p.device, o.bytes, &inside)) {
      case rt::Where::Reachable:
        if (!inside) {
          *why = std::string(name) + ": its " + std::to_string(o.bytes) + " bytes (shape and strides) run past the end of its " +
                 rt::kName + " allocation";
          return MLAKV_ERR_MEMORY_SPACE;
        }
        continue;
      case rt::Where::HostOnly:
        *why = std::string(name) + " is host memory the GPU cannot reach (register and map it, or use device memory)";
        return MLAKV_ERR_MEMORY_SPACE;
      case rt::Where::OtherDevice:
        *why = std::string(name) + " is memory of another " + rt::kName + " device than the call's (device " +
               std::to_string(p.device) + ")";
        return MLAKV_ERR_MEMORY_SPACE;
      case rt::Where::Unknown:
        *why = std::string(name) + ": the " + rt::kName + " runtime does not know this pointer";
        return MLAKV_ERR_MEMORY_SPACE;
    }
  }
  return MLAKV_OK;
}

bool is_device_only(const void* p) { return rt::is_device_only(p); }

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The most threads a block of this kernel can have on device dev (registers decide), asked once
// per device and kernel with dev current. 0: dev could not be made current.
int max_threads(DeviceInfo* d, int dev, int slot, KernelFn fn) {
  int m = d->max_threads[slot].load(std::memory_order_relaxed);
  if (m) return m;
  DeviceGuard guard(dev);
  if (!guard.ok()) return 0;
  int image = 0;
  if (rt::kernel_limits(reinterpret_cast<const void*>(fn), &m, &image) != rt::kOk) m = 256;
  rt::clear_error();
  d->max_threads[slot].store(m, std::memory_order_relaxed);
  return m;
}

// ---- choosing the row: the table walk asks can_run of each matching row -----------------------

// (lean: tile2d's lean instance runs the call, kern::pack_tile2d_lean; only ever ds16s)
const char* units_name(Units u, bool lean) {
  static const char* names[kUnits] = {"ds16", "ds8", "x8", "ds16s", "ds32s", "ds8w"};
  return lean ? "ds16s lean" : names[int(u)];
}

// The one place a unit layout is derived: DeepSeek dims take the layout the row's lanes / split /
// wide name; other dims that are multiples of 8 take x8 units. false: a vector variant cannot run
// this call (dims not multiples of 8 or rows misaligned for 16-byte loads, or wide units on rows
// that are not 32-byte aligned).
bool units_for(const LaunchConfig& cfg, const PackProblem& p, Units* u) {
  if (!dims_req_holds(DimsReq::DeepSeek, p)) {
    *u = Units::V8;
    return dims_req_holds(DimsReq::X8, p);
  }
  if (cfg.lanes == 8) {
    if (cfg.wide && !wide_units_hold(p)) return false;
    *u = cfg.wide ? Units::DS8W : Units::DS8;
  } else {
    *u = cfg.lanes == 32 ? Units::DS32S : cfg.split ? Units::DS16S : Units::DS16;
  }
  return true;
}

int unroll_index(int unroll) { return unroll >= 4 ? 2 : unroll >= 2 ? 1 : 0; }  // row_check: 1, 2 or 4

// Whether the row's plain kernel takes per-head scales: where every pair of a thread is of one head
// (tile2d; flat with one pair a thread), src/gpu/pack_kernels.cuh.
bool plain_per_head(const DispatchRow& r) {
  return r.variant == kTile2d || (r.variant == kFlat && unroll_index(r.cfg.unroll) == 0);
}
// Whether a call runs the ext instance of its row's kernel: amax, or per-head scales the plain one
// does not take.
bool wants_ext(const PackProblem& p, bool plain_ph) { return p.has_amax() || (p.per_head && !plain_ph); }

// What a row gives one call when its variant can run it.
struct Choice {
  Units units = Units::V8;
  int64_t lanes = 0, pairs = 0;  // vector variants: threads a (token, head) row; rows x lanes
  int ui = 0;
  KernelFn fn[2] = {nullptr, nullptr};  // the plain and the ext instance
  bool runs[2] = {false, false};         // whether each can run the row (its registers allow the threads)
  bool lean = false;  // the call runs tile2d's lean instance (lean_fits): the plain one, or for an amax an ext one
};

// Whether tile2d's lean instance (kern::pack_tile2d_lean) runs the call: a row with lean=1 of its
// shape (ds16s units: 16 lanes with k_pe split; one pair a thread, one pass a tile, plain stores -
// checked here too, since built-in rows are not parsed), 16-bit inputs, and 32-bit offsets: each
// tensor operand spans at most 2^32 bytes. Plain calls take its plain instance; amax calls its ext
// ones where the blocks are numbered token tiles first (can_run).
bool lean_fits(const DispatchRow& r, const PackProblem& p, Units u) {
  if (!r.cfg.lean || r.variant != kTile2d || u != Units::DS16S || r.cfg.unroll != 1 || r.cfg.evict_first ||
      int64_t(r.cfg.block) * kern::ds_lanes(u) != r.cfg.threads || p.in_type == InType::FP32)
    return false;
  if (r.cfg.heads_first && ceil_div(p.s, r.cfg.block) > 65535) return false;  // token tiles in grid y
  for (int i = 0; i < kTensorCount; ++i)
    if (p.op[i].bytes > (int64_t(1) << 32)) return false;
  return true;
}

// Whether the row's variant can run p on device d, beyond the row's own conditions: the unit
// layout, 32-bit pair indices, tile2d's grid limits, and the threads the kernel's registers allow
// (a row never runs with fewer threads than it names). The kernel is the call's instance: plain,
// or ext for per-head scales or amax (more registers: a row of many threads may hold for one and
// not the other). Fills *c, with whether the other instance could run the row too (a cached plan
// can be rebound to it: pack()). *device_error: dev could not be made current to ask a kernel's
// limits.
bool can_run(const DispatchRow& r, const PackProblem& p, DeviceInfo* d, Choice* c, bool* device_error) {
  *c = Choice();
  if (r.variant != kGeneral) {
    if (!units_for(r.cfg, p, &c->units)) return false;
    const int64_t un = p.d_nope / 8, ur = p.d_rope / 8, uv = p.d_v / 8;
    c->lanes = kern::is_ds(c->units) ? kern::ds_lanes(c->units) : std::max(un, std::max(ur, uv));
    c->pairs = p.sxh() * c->lanes;
    if (c->pairs >= (int64_t(1) << 31)) return false;
    if (r.variant == kTile2d && (p.h > 65535 || ceil_div(p.s, r.cfg.block) > INT32_MAX)) return false;
  }
  c->ui = unroll_index(r.cfg.unroll);
  const int in = int(p.in_type), fmt = int(p.out_format), u = int(c->units);
  const int want = wants_ext(p, plain_per_head(r)) ? 1 : 0;
  // rows with commit=lane: the ext instance is tile2d's lane-commit one (parse and row_check admit
  // the key with tile2d and unroll 1 only; built-in rows are not parsed, so checked here too)
  const bool lane = r.cfg.lane_commit && r.variant == kTile2d && c->ui == 0;
  for (int x : {want, 1 - want}) {
    c->fn[x] = x == 1 && lane ? kernels().lane[in][fmt][u][0] : kernels().k[x][r.variant][in][fmt][u][c->ui];
    if (!c->fn[x]) return false;  // (row_check admits unroll 4 only for the layouts compiled with it)
    const int slot = x == 1 && lane ? kKernelSlots + kLeanSlots + (in * 4 + fmt) * kUnits + u
                                    : ((((x * kVariantCount + r.variant) * 3 + in) * 4 + fmt) * kUnits + u) * 3 + c->ui;
    const int cap = max_threads(d, p.device, slot, c->fn[x]);
    c->runs[x] = cap && r.cfg.threads <= (cap & ~31);
    if (x == want && !cap) {
      *device_error = true;
      return false;
    }
    if (x == want && !c->runs[x]) return false;
  }
  if (!lean_fits(r, p, c->units)) return true;
  const int hf = r.cfg.heads_first ? 1 : 0;
  KernelFn f0 = kernels().lean[hf][in][fmt];
  const int cap0 = max_threads(d, p.device, kKernelSlots + (hf * 2 + in) * 4 + fmt, f0);
  const bool runs0 = cap0 && r.cfg.threads <= (cap0 & ~31);
  if (want == 0 && runs0) {  // the plain instance: the lean one, if its registers allow
    c->fn[0] = f0;
    c->lean = true;
    // blocks numbered heads first suit the lean instance only: a plan rebound to the ext instance
    // (amax) is made anew (pack), on the tile2d body's own grid
    if (hf) c->runs[1] = false;
  } else if (want == 1 && !hf) {  // an amax call (tile2d's plain instance takes per-head scales)
    const int lc = lane ? 1 : 0;
    KernelFn f1 = kernels().lean_x[lc][in][fmt];
    const int cap1 = max_threads(d, p.device, kKernelSlots + kLeanSlots + kLaneSlots + (lc * 2 + in) * 4 + fmt, f1);
    if (cap1 && r.cfg.threads <= (cap1 & ~31)) {  // both instances lean, or the plain one not rebound
      c->fn[1] = f1;
      c->fn[0] = f0;
      c->runs[0] = runs0;
      c->lean = true;
    }
  }
  return true;
}

// ---- the launch --------------------------------------------------------------------------------

// Everything pack() needs, computed once per distinct call.
struct Launch {
  KernelFn fn[2];  // the plain and the ext instance of the row's kernel
  bool runs[2];    // whether each can run the row (the one the plan was made for always can)
  bool plain_ph;   // the plain one takes per-head scales (plain_per_head)
  int ext;         // which one the call's arguments ask for (wants_ext)
  dim3 grid, block;
  Params P;
};
static_assert(sizeof(Launch) <= sizeof(Plan::launch), "Plan::launch too small");

// The fields of the launch that change when only the call's buffers or scales do (amax pointers
// included; the C API plans anew when they come or go - c_api/validate.cpp same_geometry - so the
// instance a rebound plan asks for is the one it was made for).
void set_pointers(const PackProblem& p, Launch* L) {
  Params* P = &L->P;
  P->k_nope = static_cast<const char*>(p.in(kKNope));
  P->k_pe = static_cast<const char*>(p.in(kKPe));
  P->v = static_cast<const char*>(p.in(kV));
  P->k_out = static_cast<uint8_t*>(p.out(kKOut));
  P->v_out = static_cast<uint8_t*>(p.out(kVOut));
  P->k_scale_inv_ptr = p.scale_ptr(kKScaleInv);
  P->v_scale_inv_ptr = p.scale_ptr(kVScaleInv);
  P->k_scale_inv = p.k_scale_inv;
  P->v_scale_inv = p.v_scale_inv;
  P->k_amax = p.amax(kKAmax);
  P->v_amax = p.amax(kVAmax);
  P->per_head = p.per_head ? 1 : 0;
  L->ext = wants_ext(p, L->plain_ph) ? 1 : 0;
}

void rebind(const PackProblem& p, Plan* plan) { set_pointers(p, reinterpret_cast<Launch*>(plan->launch)); }

// Kernel parameters, grid and block of the chosen row.
void make_launch(const PackProblem& p, const DispatchRow& r, const Choice& c, const DeviceInfo& d, Launch* L) {
  Params& P = L->P;
  P = Params();
  L->plain_ph = plain_per_head(r);
  set_pointers(p, L);
  const Operand* o = p.op;
  P.kn_st = o[kKNope].st; P.kn_sh = o[kKNope].sh; P.kp_st = o[kKPe].st;
  P.v_st = o[kV].st; P.v_sh = o[kV].sh;
  P.ko_st = o[kKOut].st; P.ko_sh = o[kKOut].sh; P.vo_st = o[kVOut].st; P.vo_sh = o[kVOut].sh;
  P.pairs = uint32_t(c.pairs);
  P.h = int32_t(p.h);
  P.lanes = int32_t(c.lanes);
  P.un = int32_t(p.d_nope / 8); P.ur = int32_t(p.d_rope / 8); P.uv = int32_t(p.d_v / 8);
  if (r.variant != kGeneral) {
    P.div_h = kern::FastDiv::make(uint32_t(p.h));
    P.div_l = kern::FastDiv::make(uint32_t(c.lanes));
  }
  P.block = r.cfg.block;
  P.early = r.cfg.early;
  P.evict_first = r.cfg.evict_first;
  P.s = p.s;
  P.d_nope = int32_t(p.d_nope); P.d_rope = int32_t(p.d_rope); P.d_v = int32_t(p.d_v);

  const int threads = r.cfg.threads;
  const int64_t per_block = int64_t(threads) * kUnrolls[c.ui];
  dim3 grid(1, 1, 1);
  switch (r.variant) {
    case kFlat: grid.x = unsigned(ceil_div(c.pairs, per_block)); break;
    case kPersist: grid.x = unsigned(std::min(ceil_div(c.pairs, per_block), int64_t(d.units) * std::max(r.cfg.waves, 1))); break;
    case kTile2d: {  // (token tiles, heads), or (heads, token tiles) for the lean instance heads first
      const unsigned tiles = unsigned(ceil_div(p.s, r.cfg.block)), heads = unsigned(p.h);
      grid = c.lean && r.cfg.heads_first ? dim3(heads, tiles, 1) : dim3(tiles, heads, 1);
      break;
    }
    default: {
      const int64_t total = p.sxh() * (p.d_nope + p.d_rope + p.d_v);
      grid.x = unsigned(std::min(ceil_div(total, threads), int64_t(d.units) * 8));
    }
  }
  L->fn[0] = c.fn[0];
  L->fn[1] = c.fn[1];
  L->runs[0] = c.runs[0];
  L->runs[1] = c.runs[1];
  L->grid = grid;
  L->block = dim3(unsigned(threads), 1, 1);
}

mlakv_status plan(const PackProblem& p, Plan* out, std::string* why) {
  DeviceInfo* d = device_info(p.device);
  if (!d) {
    *why = std::string(rt::kName) + " device " + std::to_string(p.device) +
           " does not exist or has no kernel image in this build";
    return MLAKV_ERR_DEVICE;
  }
  // the device's loaded table first (a file measured on it), then the backend's
  Choice c;
  bool device_error = false;
  auto can = [&](const DispatchRow& row) { return can_run(row, p, d, &c, &device_error); };
  bool found = false;
  {
    ReadSection rs;  // the loaded table stays alive while it is read
    const DeviceTable* dt = d->loaded.load(std::memory_order_acquire);
    const DispatchRow* r = dt ? DispatchTable::select(dt->rows, d->key, p, can) : nullptr;
    if (r) {
      out->row = *r;
      out->table = dt->source;
      found = true;
    }
  }
  if (!found) out->table.clear();
  out->table_note = d->table_note.empty() ? nullptr : d->table_note.c_str();
  if (!found && !device_error) found = table()->select_copy(d->key, p, can, &out->row);
  if (device_error) {
    *why = "cannot make " + std::string(rt::kName) + " device " + std::to_string(p.device) + " current";
    return MLAKV_ERR_DEVICE;
  }
  if (!found) {
    *why = "no row of the " + std::string(rt::kName) + " dispatch table can run this call on " + rt::arch_name(d->key.arch) +
           " (arch " + std::to_string(d->key.arch) + ", s = " + std::to_string(p.s) + ", s*h = " + std::to_string(p.sxh()) +
           "); a table should end with a catch-all row, e.g. 'arch=0-100000 s=1-* sxh=1-* dims=any variant=general "
           "threads=256'";
    return MLAKV_ERR_NO_TABLE_ROW;
  }
  const DispatchRow* r = &out->row;
  out->arch = d->key.arch;
  out->pdl = !rt::kHasPdl ? kPdlUnavailable
             : p.pdl != MLAKV_PDL_OFF && rt::pdl_capable(d->key.arch, d->image_arch) ? kPdlOn : kPdlOff;
  out->units = r->variant == kGeneral ? nullptr : units_name(c.units, c.lean);
  make_launch(p, *r, c, *d, new (out->launch) Launch);
  return MLAKV_OK;
}

mlakv_status pack(const PackProblem& p, const Plan& plan, std::string* why) {
  const Launch& L = *reinterpret_cast<const Launch*>(plan.launch);
  if (!L.runs[L.ext]) {
    // a plan rebound to pointers that ask for the other instance, which cannot run the plan's row
    // (not reached through the C API's plan cache, which plans anew when amax pointers come or go;
    // kept for any other caller of rebind): the table walk for this call, as mlakv_pack_fp8_plan
    // would print it
    Plan fresh;
    const mlakv_status st = gpu::plan(p, &fresh, why);
    return st != MLAKV_OK ? st : pack(p, fresh, why);
  }
  DeviceGuard guard(p.device);  // launch on p.device, the caller's current device restored after
  if (!guard.ok()) {
    *why = "cannot make " + std::string(rt::kName) + " device " + std::to_string(p.device) + " current";
    return MLAKV_ERR_DEVICE;
  }
  const rt::Status e = rt::launch(L.fn[L.ext], L.grid, L.block, L.P, p.stream, plan.pdl == kPdlOn);
  if (e != rt::kOk) {
    rt::clear_error();
    *why = std::string(rt::kName) + " kernel launch: " + rt::error_string(e);
    return MLAKV_ERR_LAUNCH;
  }
  return MLAKV_OK;
}

}  // namespace

bool row_check(const DispatchRow& r, std::string* why) {
  const int u = r.cfg.unroll;
  if (u != 1 && u != 2 && u != 4) {
    *why = "unroll=" + std::to_string(u) + ": the GPU kernels are compiled for unroll 1, 2 and 4";
    return false;
  }
  if (u == 4 && r.variant != kGeneral && (r.cfg.split || r.cfg.wide)) {
    *why = "unroll=4 is compiled for lanes=16 split=0 and lanes=8 wide=0 only (split and wide layouts: unroll 1 or 2)";
    return false;
  }
  return true;
}

}  // namespace gpu

const Backend& MLAKV_GPU_BACKEND_ENTRY() {
  static const Backend b = {gpu::rt::kBackend, gpu::rt::kName, true, gpu::probe, gpu::check_memory, gpu::plan,
                            gpu::pack, gpu::table(), gpu::is_device_only, gpu::rebind, gpu::load_table,
                            gpu::clear_device_tables};
  return b;
}

}  // namespace mlakv
