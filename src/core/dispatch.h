// Hybrid dispatch tables: data that says which kernel variant and launch configuration a call
// gets, chosen by (arch, L2 size, s, s*h, whether the call asks for an amax, its scale granularity,
// dims/alignment). Every backend registers one (see
// src/<backend>/*_table.cpp); rows are tried top to bottom and the first row that holds runs:
// its own conditions (arch, s band, s*h band, dims requirement) and its variant's limits for this
// call (asked of the backend inside the walk: register limits, grid limits, alignment of the unit
// layout), so the row a plan prints is the row that runs. Tables end with a catch-all row on the
// backend's general path. A table prints as text and parses back from the same text, so a user
// can replace it with one measured on their own GPU (mlakv_dispatch_table_set).
#pragma once
#include <stdint.h>

#include <atomic>
#include <mutex>
#include <string>
#include <vector>

#include "core/problem.h"

namespace mlakv {

// What a row asks of the call's shapes and pointers before it may be used (text: dims=any|x8|ds).
enum class DimsReq : int {
  Any = 0,       // every shape and stride (the general path)
  X8 = 1,        // all head dims multiples of 8, every row start 16-byte aligned on input, 8 on output
  DeepSeek = 2,  // X8 and (D_nope, D_rope, D_v) = (128, 64, 128): compile-time dims
};
constexpr int kDimsReqCount = 3;
const char* dims_req_name(DimsReq r);

// Whether the problem satisfies a requirement (shapes, strides and pointer alignment).
bool dims_req_holds(DimsReq r, const PackProblem& p);

// Whether a DeepSeek-dims problem can take 32-byte input loads and 16-byte output stores (the
// `wide` units): every k_nope and v row start 32-byte aligned, every k_out and v_out row start
// 16-byte aligned (k_pe as for DimsReq::X8).
bool wide_units_hold(const PackProblem& p);

struct LaunchConfig {
  int threads = 128;    // threads per block
  int block = 1;        // tokens per block (tile2d)
  int unroll = 1;       // independent vector units per thread, loads issued together
  int waves = 0;        // persist: blocks per SM
  int early = 0;        // PDL: 1 = trigger dependents at kernel start, 0 = after the stores
  int lanes = 16;       // DeepSeek dims: threads per (token, head) row: 8 (two 8-element units of
                        // k_nope and of v each), 16 (one 8-element unit each) or 32 (4-element units)
  int split = 0;        // DeepSeek dims: 1 = k_pe split over all lanes in half-width units (16 lanes:
                        // 4 elements each; lanes = 32 always splits, 2 each), 0 = 8-element units
  int evict_first = 0;  // 1 = evict-first (streaming) stores: outputs do not displace inputs in L2,
                        // but a consumer that runs next finds them in DRAM, not L2
  int wide = 0;         // DeepSeek dims, lanes = 8: 1 = one 16-element unit of k_nope and of v a lane,
                        // loaded 32 bytes at a time (a single 256-bit load on Blackwell); the row
                        // holds only where wide_units_hold
  int lean = 0;         // tile2d with lanes = 16, split = 1, unroll = 1, threads = 16 x block, plain
                        // stores: 1 = its lean instance runs the calls it fits (16-bit inputs,
                        // no amax, every operand under 4 GiB: 32-bit offsets), the general body
                        // the others (GPU backends; the plan says "units=ds16s lean")
  int heads_first = 0;  // lean = 1 only: 1 = the lean instance's blocks are numbered heads first
                        // (grid x = heads, y = token tiles: blocks launched together take the same
                        // tokens of neighbouring heads); row key order=heads (default order=tokens)
  int lane_commit = 0;  // tile2d, unroll = 1, calls with an amax: 1 = every thread commits its own
                        // maxima (an atomic a thread, no combine: for small grids; GPU backends'
                        // third tile2d instance), 0 = one commit a block; row key commit=lane|block
};

constexpr int64_t kUnbounded = INT64_MAX;

// What rows may ask of the device a call runs on: its arch number (SM major*10+minor for CUDA,
// gfx major*100+minor*10+stepping for HIP, 0 for the host) and its last-level cache in MiB (which
// tells GPUs of one arch apart: an H100's 50 MiB from an H200's 60).
struct DeviceKey {
  int arch = 0;
  int64_t l2_mib = 0;
};

struct DispatchRow {
  int arch_min = 0, arch_max = 0;
  int64_t s_min = 1, s_max = kUnbounded;
  int64_t sxh_min = 1, sxh_max = kUnbounded;  // s*h band
  int64_t l2_min = 0, l2_max = kUnbounded;    // the device's L2 in MiB (text: l2=, printed when set)
  int amax = -1;  // -1: any call; 1: calls that ask for an amax (k_amax or v_amax set); 0: calls
                  // that do not (text: amax=0|1, printed when set)
  int scales = -1;  // -1: any call; 1: calls with per-head scales (MLAKV_SCALE_PER_HEAD); 0: per-tensor
                    // calls (text: scales=head|tensor, printed when set)
  DimsReq dims = DimsReq::Any;
  int variant = 0;  // index into the backend's variant names
  LaunchConfig cfg;
  std::string note;  // free text after '#', printed back (e.g. "measured H100 2026-11-24")

  // The row's own conditions (not its variant's limits).
  bool matches(const DeviceKey& d, const PackProblem& p) const {
    return d.arch >= arch_min && d.arch <= arch_max && d.l2_mib >= l2_min && d.l2_mib <= l2_max && p.s >= s_min &&
           p.s <= s_max && p.sxh() >= sxh_min && p.sxh() <= sxh_max && (amax < 0 || amax == (p.has_amax() ? 1 : 0)) &&
           (scales < 0 || scales == (p.per_head ? 1 : 0)) && dims_req_holds(dims, p);
  }
};

// Incremented whenever any backend's table (or a device's loaded table) changes: cached plans
// compare it.
uint64_t table_generation();
void bump_table_generation();

// Replaceable tables (a backend's current rows, a device's loaded file) are read without locks:
// a reader holds a ReadSection for the few microseconds it walks one, and a writer that replaced
// one calls retire() to free the old copy once every reader that could have seen it has left. Two
// reader counts alternate by epoch, so a steady stream of new readers cannot hold a writer up.
// A ReadSection must not call retire() (set, reset and load never run inside one).
class ReadSection {
 public:
  ReadSection();
  ~ReadSection();
  ReadSection(const ReadSection&) = delete;
  ReadSection& operator=(const ReadSection&) = delete;

 private:
  unsigned parity_;
};
// Waits until no reader that started before the call can still hold what its caller unpublished.
void wait_for_readers();
// Deletes `old` once no reader can hold it (the caller has already published its replacement).
template <class T>
void retire(const T* old) {
  if (!old) return;
  wait_for_readers();
  delete old;
}

// A backend's table: the built-in rows plus the replaceable current ones. Readers are lock-free
// (an atomic pointer to an immutable vector, read inside a ReadSection); a replaced table is freed
// as soon as no reader can hold it. The object itself is never destroyed (see the backends'
// table() functions): calls made while the process exits still find it.
class DispatchTable {
 public:
  // A backend's parse-time check of a row's variant and configuration (e.g. the unrolls its kernels
  // are compiled for); false with *why set rejects the row. nullptr: every row is accepted.
  using RowCheck = bool (*)(const DispatchRow& r, std::string* why);
  DispatchTable(std::vector<std::string> variant_names, RowCheck check, std::vector<DispatchRow> builtin);
  const std::vector<std::string>& variant_names() const { return names_; }
  bool is_builtin() const { return current_.load(std::memory_order_acquire) == &builtin_; }
  // The first row of `rows` that matches and whose variant can run the call (can_run(row) ->
  // bool: the backend's limits); nullptr if none. The caller keeps `rows` alive.
  template <class CanRun>
  static const DispatchRow* select(const std::vector<DispatchRow>& rows, const DeviceKey& d, const PackProblem& p,
                                   CanRun&& can_run) {
    for (const DispatchRow& r : rows)
      if (r.matches(d, p) && can_run(r)) return &r;
    return nullptr;
  }
  // select() on the current rows, copying the chosen row into *out (false: none).
  template <class CanRun>
  bool select_copy(const DeviceKey& d, const PackProblem& p, CanRun&& can_run, DispatchRow* out) const {
    ReadSection rs;
    const DispatchRow* r = select(*current_.load(std::memory_order_acquire), d, p, can_run);
    if (r) *out = *r;
    return r != nullptr;
  }
  std::string to_text() const;
  std::string row_text(const DispatchRow& r) const;
  // Parses rows in this table's format (its variants, its backend's row check); lines are numbered
  // from first_line in error messages. false with *error on the first bad line.
  bool parse_rows(const std::string& text, std::vector<DispatchRow>* rows, std::string* error, int first_line = 1) const;
  // Parses text; on success replaces the rows, on failure leaves them and fills *error.
  bool set_from_text(const char* text, std::string* error);
  void reset();

 private:
  bool parse_row(const std::string& line, DispatchRow* r, bool* empty, std::string* why) const;
  void replace(const std::vector<DispatchRow>* rows);

  std::vector<std::string> names_;
  RowCheck check_;
  std::vector<DispatchRow> builtin_;
  std::atomic<const std::vector<DispatchRow>*> current_;
  std::mutex mu_;  // one writer at a time
};

}  // namespace mlakv
