// What the shared GPU host layer (src/gpu/gpu_backend.cu) and a vendor's dispatch table
// (src/cuda/cuda_table.cpp, src/hip/hip_table.cpp) share: the variants, names and numbers in one
// place, and the table of this build's GPU vendor. Plain C++: the table files need no GPU compiler.
#pragma once
#include <string>
#include <vector>

#include "core/dispatch.h"

namespace mlakv {
namespace gpu {

// tile2d  - grid (token blocks, heads): a block owns `block` tokens of one head;
// flat    - 1-D grid over all (token, head, lane) pairs, threads x unroll a block;
// persist - flat's numbering, a grid of (multiprocessors x waves) blocks striding over it;
// general - one element a thread, 64-bit indices: any dims, any alignment, any size.
enum Variant : int { kTile2d = 0, kFlat = 1, kPersist = 2, kGeneral = 3, kVariantCount = 4 };
inline std::vector<std::string> variant_names() { return {"tile2d", "flat", "persist", "general"}; }

// One table row, for the built-in tables: arch range, s band, s*h band, dims requirement,
// variant, then the launch configuration (src/core/dispatch.h LaunchConfig) and a note.
inline DispatchRow row(int a0, int a1, int64_t s0, int64_t s1, int64_t sxh0, int64_t sxh1, DimsReq dims, int variant,
                       int threads, int block, int unroll, int waves, int early, int lanes, const char* note,
                       int evict_first = 0, int split = 0, int wide = 0) {
  DispatchRow r;
  r.arch_min = a0; r.arch_max = a1;
  r.s_min = s0; r.s_max = s1; r.sxh_min = sxh0; r.sxh_max = sxh1;
  r.dims = dims; r.variant = variant;
  r.cfg.threads = threads; r.cfg.block = block; r.cfg.unroll = unroll; r.cfg.waves = waves; r.cfg.early = early;
  r.cfg.lanes = lanes; r.cfg.evict_first = evict_first; r.cfg.split = lanes == 32 ? 1 : split; r.cfg.wide = wide;
  r.note = note;
  return r;
}

// A row for devices whose L2 lies in [lo, hi] MiB only (GPUs of one arch told apart).
inline DispatchRow with_l2(DispatchRow r, int64_t lo, int64_t hi) {
  r.l2_min = lo;
  r.l2_max = hi;
  return r;
}

// The row for calls that ask for an amax (1) or that do not (0) only.
inline DispatchRow with_amax(DispatchRow r, int amax) {
  r.amax = amax;
  return r;
}
// A row for calls with per-head (1) or per-tensor (0) scales only (DispatchRow::scales).
inline DispatchRow with_scales(DispatchRow r, int per_head) {
  r.scales = per_head;
  return r;
}

// A tile2d row whose calls take its lean instance where they fit it (LaunchConfig::lean), its
// blocks numbered token tiles first or, heads_first, heads first (LaunchConfig::heads_first).
inline DispatchRow with_lean(DispatchRow r, bool heads_first = false) {
  r.cfg.lean = 1;
  r.cfg.heads_first = heads_first ? 1 : 0;
  return r;
}

// A tile2d row whose amax calls commit every thread's maxima (LaunchConfig::lane_commit).
inline DispatchRow with_lane_commit(DispatchRow r) {
  r.cfg.lane_commit = 1;
  return r;
}

// The last row of every GPU table: any arch, dims and alignment, on the general kernel.
inline DispatchRow catch_all_row() {
  return row(0, 100000, 1, kUnbounded, 1, kUnbounded, DimsReq::Any, kGeneral, 256, 1, 1, 0, 0, 16, "general path");
}

// This build's vendor table (one vendor per build): src/cuda/cuda_table.cpp or src/hip/hip_table.cpp.
DispatchTable* table();
// The parse-time check of a row (gpu_backend.cu: the unrolls the kernels are compiled for).
bool row_check(const DispatchRow& r, std::string* why);

}  // namespace gpu
}  // namespace mlakv
