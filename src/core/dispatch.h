// Hybrid dispatch tables: data that says which kernel variant and launch configuration a call
// gets, chosen by (arch, s, s*h, dims/alignment). Every backend registers one (see
// src/<backend>/*_table.cpp); rows are tried top to bottom and the first match wins, so each
// table ends with a catch-all row on the backend's general path. A table prints as text and
// parses back from the same text, so a user can replace it with one measured on their own GPU
// (mlakv_dispatch_table_set).
#pragma once
#include <stdint.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/problem.h"

namespace mlakv {

// What a row asks of the call's shapes and pointers before it may be used.
enum class DimsReq : int {
  Any = 0,       // every shape and stride (the general path)
  X8 = 1,        // all head dims multiples of 8, every row start 16-byte aligned on input, 8 on output
  X16 = 2,       // multiples of 16; input rows 16-byte aligned, output rows 16-byte aligned
  DeepSeek = 3,  // X8 and (D_nope, D_rope, D_v) = (128, 64, 128): compile-time dims
};
const char* dims_req_name(DimsReq r);

// Whether the problem satisfies a requirement (shapes, strides and pointer alignment).
bool dims_req_holds(DimsReq r, const PackProblem& p);

// Whether a DeepSeek-dims problem can take 32-byte input loads and 16-byte output stores (the
// `wide` units): every k_nope and v row start 32-byte aligned, every k_out and v_out row start
// 16-byte aligned (k_pe as for DimsReq::X8). Assumes dims_req_holds(DimsReq::DeepSeek, p).
bool wide_units_hold(const PackProblem& p);

struct LaunchConfig {
  int threads = 128;  // threads per block
  int block = 1;      // tokens per block (2-D variants) or (token, head) rows per block (flat)
  int unroll = 1;     // independent vector units per thread, loads issued together
  int waves = 0;      // persistent variants: blocks per SM (0 = not persistent)
  int early = 0;      // PDL: 1 = trigger dependents at kernel start, 0 = after the stores
  int lanes = 16;     // DeepSeek dims: threads per (token, head) row: 8 (two 8-element units of
                      // k_nope and of v each), 16 (one 8-element unit each) or 32 (4-element units)
  int split = 0;      // DeepSeek dims: 1 = k_pe split over all lanes in half-width units (16 lanes:
                      // 4 elements each; lanes = 32 always splits, 2 each), 0 = 8-element units
  int stream = 0;     // 1 = streaming (evict-first) stores: outputs do not displace inputs in L2,
                      // but a consumer that runs next finds them in DRAM, not L2
  int wide = 0;       // DeepSeek dims, lanes = 8: 1 = one 16-element unit of k_nope and of v a lane,
                      // loaded 32 bytes at a time (a single 256-bit load on Blackwell) where
                      // wide_units_hold; 0 (or not holding) = two 8-element units
};

constexpr int64_t kUnbounded = INT64_MAX;

struct DispatchRow {
  int arch_min = 0, arch_max = 0;  // SM version major*10+minor (90 = sm_90); reference: 0-0
  int64_t s_min = 1, s_max = kUnbounded;
  int64_t sh_min = 1, sh_max = kUnbounded;
  DimsReq dims = DimsReq::Any;
  int variant = 0;  // index into the backend's variant names
  LaunchConfig cfg;
  std::string note;  // free text after '#', printed back (e.g. "measured H100 2026-11-24")
};

// A backend's table: the built-in rows plus the replaceable current ones. Readers are lock-free
// (an atomic pointer to an immutable vector); replaced tables are kept alive until exit so a
// concurrent reader never sees freed memory.
// Incremented whenever any backend's table is replaced or reset (cached plans compare it).
uint64_t table_generation();

class DispatchTable {
 public:
  DispatchTable(std::vector<std::string> variant_names, std::vector<DispatchRow> builtin);
  const std::vector<DispatchRow>& rows() const { return *current_.load(std::memory_order_acquire); }
  const std::vector<std::string>& variant_names() const { return names_; }
  // First row matching; nullptr if none (tables end with a catch-all, so only for foreign arch).
  const DispatchRow* select(int arch, const PackProblem& p) const;
  std::string to_text() const;
  // Parses text; on success replaces the rows, on failure leaves them and fills *error.
  bool set_from_text(const char* text, std::string* error);
  void reset();
  static std::string row_text(const DispatchRow& r, const std::vector<std::string>& names);

 private:
  std::vector<std::string> names_;
  std::vector<DispatchRow> builtin_;
  std::atomic<const std::vector<DispatchRow>*> current_;
  std::mutex mu_;
  std::vector<std::unique_ptr<std::vector<DispatchRow>>> kept_;
};

}  // namespace mlakv
