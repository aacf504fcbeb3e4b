// THE FILE THAT DECIDES THE HIP LAUNCH CONFIGURATION: the HIP backend's hybrid dispatch table, the
// same format and walk as the CUDA table (src/cuda/cuda_table.cpp; src/core/dispatch.h): rows are
// tried top to bottom, and the first whose own conditions hold and whose variant can run the call
// (src/gpu/gpu_backend.cu can_run) runs. Arch numbers of AMD targets: gfx major*100 + minor*10 +
// stepping (gfx90a = 910, gfx942 = 942, gfx950 = 950; src/gpu/vendors/hip.h).
//
// ESTIMATES, NOT MEASURED ON AMD HARDWARE (none was available): written for 64-lane wavefronts
// (block sizes multiples of 64; 16 lanes a (token, head) row = 4 rows a wavefront), 16-byte loads
// (no wide units: AMD's widest global load is 16 bytes), no PDL, and each device's bandwidth and
// last-level cache:
//   gfx942 (MI300X/MI325X): 304 CUs, 256 MB Infinity Cache, 5.3 TB/s HBM3;
//   gfx950 (MI350X/MI355X): 256 CUs, 256 MB Infinity Cache, 8 TB/s HBM3E;
//   others (gfx90a, RDNA, ...): one generic row.
// Small calls are launch-bound (few rows, 128-thread blocks spread them over more CUs); large ones
// bandwidth-bound (256-thread blocks, two units in flight a lane). Every arch ends on the general
// path, which takes any dims and alignment. Replace rows with measured ones through
// mlakv_dispatch_table_set.
#include "gpu/gpu_backend.h"

namespace mlakv {
namespace gpu {
namespace {

constexpr int64_t U = kUnbounded;

std::vector<DispatchRow> builtin_rows() {
  const DimsReq X8 = DimsReq::X8;
  const char* mi300 = "gfx942 (MI300X): estimate, not measured on AMD hardware";
  const char* mi355 = "gfx950 (MI355X): estimate, not measured on AMD hardware";
  return {
      // ---- gfx942: up to ~1 MB a call, 128-thread blocks, k_pe split over 16 lanes
      row(942, 942, 1, U, 1, 2048, X8, kFlat, 128, 1, 1, 0, 0, 16, mi300, 0, 1),
      // up to ~40 MB (well inside the Infinity Cache): 256-thread blocks
      row(942, 942, 1, U, 2049, 65536, X8, kFlat, 256, 1, 1, 0, 0, 16, mi300, 0, 1),
      // beyond: 8 lanes a row (two 8-element units of k_nope and of v a lane), two rows in flight
      row(942, 942, 1, U, 65537, U, X8, kFlat, 256, 1, 2, 0, 0, 8, mi300),
      // ---- gfx950: the same shape, the large band from an earlier size (more bandwidth, fewer CUs)
      row(950, 950, 1, U, 1, 2048, X8, kFlat, 128, 1, 1, 0, 0, 16, mi355, 0, 1),
      row(950, 950, 1, U, 2049, 32768, X8, kFlat, 256, 1, 1, 0, 0, 16, mi355, 0, 1),
      row(950, 950, 1, U, 32769, U, X8, kFlat, 256, 1, 2, 0, 0, 8, mi355),
      // ---- generic: gfx90a, gfx940/941, RDNA and anything newer
      row(0, 100000, 1, U, 1, U, X8, kFlat, 256, 1, 1, 0, 0, 16, "generic AMD: estimate, not measured on AMD hardware"),
      catch_all_row(),
  };
}

}  // namespace

DispatchTable* table() {
  static DispatchTable* const t = new DispatchTable(variant_names(), row_check, builtin_rows());  // never destroyed
  return t;
}

}  // namespace gpu
}  // namespace mlakv
