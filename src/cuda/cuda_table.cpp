// THE FILE THAT DECIDES THE CUDA LAUNCH CONFIGURATION: the CUDA backend's hybrid dispatch table.
// Rows are tried top to bottom; the first whose arch range, s band, s*h band and dims requirement
// all hold, and whose variant can run the call (src/gpu/gpu_backend.cu can_run: unit layout
// alignment, grid and register limits), picks the kernel variant and its launch configuration
// (src/core/dispatch.h). Print it
// with mlakv_dispatch_table_get(MLAKV_BACKEND_CUDA, ...) or replace it at run time with
// mlakv_dispatch_table_set (e.g. with a table measured by bench/ on your own GPU).
//
//   sm_90  (H100/H200): chosen from bench/ measurements on an H100 (bench/results/h100.md; the
//          evidence for each band in docs/perf-notes.md); at ~2-8 MB, ~15-37 MB and beyond ~48 MB,
//          rows for GPUs with an L2 of 55 MiB or more (the H200's 60; the H100 has 50) measured on
//          an H200 (bench/results/h200-tune.md, docs/perf-notes.md); rows of their own for calls
//          that ask for an amax (amax=1) or have per-head scales (scales=head) where another
//          configuration is faster for them (measured on an H200);
//   sm_100 / sm_103 (B200, GB300): the upstream sglang GB300 bands (PR #25333 for s > 8 on s*h,
//          the later s-only bands for s <= 8), translated to this kernel family (Triton num_warps
//          -> threads = 32 * num_warps; a flat BLOCK of (token, head) rows -> unroll =
//          BLOCK * 20 units / threads, clamped to 1..4; 2-D BLOCK_S -> block), with Blackwell's
//          32-byte loads (wide units) in the band beyond L2; NOT measured here;
//   others (sm_80, sm_89, sm_120): one generic flat row.
// Every arch ends on the general path, which takes any dims and alignment.
#include "gpu/gpu_backend.h"

namespace mlakv {
namespace gpu {
namespace {

constexpr int64_t U = kUnbounded;

std::vector<DispatchRow> builtin_rows() {
  const DimsReq X8 = DimsReq::X8;
  const char* h100 = "sm_90: H100 sweep, docs/perf-notes.md";
  const char* h200 = "sm_90, L2 >= 55 MiB: mlakv-tune on an H200, bench/results/h200-tune.md";
  const char* amax = "sm_90, calls with an amax: measured on an H200, docs/perf-notes.md";
  const char* h200mid = "sm_90, L2 >= 55 MiB: beside the Triton baseline on an H200, docs/perf-notes.md";
  const char* h200lean = "sm_90, L2 >= 55 MiB: tile2d's lean instance beside the Triton baseline on an H200, docs/perf-notes.md";
  const char* h200ph = "sm_90, L2 >= 55 MiB, per-head calls: measured on an H200, docs/perf-notes.md";
  const char* gb300 = "sm_100/103: upstream GB300 band, not measured here";
  const char* gb300w = "sm_100/103: upstream GB300 band, 32-byte (256-bit) loads; not measured here";
  return {
      // ---- sm_90 (Hopper): bands on s*h at the midpoints between measured sizes; each row is the
      // best of the same-run comparisons on an H100 (docs/perf-notes.md)
      // calls with an amax, s*h <= 9728: one head a block, so per-head maxima combine per block as
      // per tensor (flat's per-row commits cost +0.4-0.5 us there), in tiles that grow with s*h:
      // the per-block atomics, all on one line, cost as much as the tiles' barriers (one-warp tiles
      // have none: +0.08-0.11 us at h=16 s <= 8; 32-token tiles at h=128 s=64 +0.16-0.21, where
      // 16-token tiles took +0.32-0.45; 21 sizes x 5 tiles, docs/perf-notes.md)
      // ... and where the grid is a few thousand threads, every thread commits its own maxima
      // (commit=lane: no redux, no barrier; an atomic a thread): s*h <= 256 in one-warp tiles (H200:
      // h=16 s 1-8 and h=64 s=2 +0.05-0.08 us against +0.10-0.13; h=16 s=16 +0.14-0.15 against +0.20;
      // h=128 s=1 +0.11-0.16 against +0.15-0.22), and per-head calls at s*h 257-512 and s <= 8 in
      // 8-token tiles (h=64 s=8 +0.09-0.10 against +0.18, h=128 s=4 +0.08 against +0.21; at h=16 s=32
      // +0.20 against +0.18, 512 atomics a float; per tensor, all on one float: h=64 s=8 +0.21 against
      // +0.18, not there). Candidate tables, one process, two runs, 3 placements
      with_lane_commit(with_amax(row(90, 99, 1, U, 1, 256, X8, kTile2d, 32, 2, 1, 0, 1, 16, amax, 0, 1), 1)),
      with_scales(with_lane_commit(with_amax(row(90, 99, 3, 8, 257, 512, X8, kTile2d, 128, 8, 1, 0, 1, 16, amax, 0, 1), 1)), 1),
      with_amax(row(90, 99, 1, 2, 1, 2048, X8, kTile2d, 32, 2, 1, 0, 1, 16, amax, 0, 1), 1),
      with_amax(row(90, 99, 3, U, 257, 512, X8, kTile2d, 128, 8, 1, 0, 1, 16, amax, 0, 1), 1),
      // ... at s*h 1281-2048 on tile2d's lean amax instance (A/B against the same row without lean=1,
      // one process, two runs, 5 placements: h=64 s=32 / h=128 s=16 / h=32 s=64 / h=16 s=128 per
      // tensor +0.32 / +0.34 / +0.29 / +0.33 us against +0.42 / +0.42 / +0.40 / +0.37, h=128 s=12
      // +0.36 against +0.38, per head + amax 0.05-0.13 less; at s*h 1024 0.01-0.05 more, and with
      // 32-token tiles at s*h 4096-8192 +0.18-0.33 more, so not there)
      with_amax(row(90, 99, 3, U, 513, 1280, X8, kTile2d, 256, 16, 1, 0, 1, 16, amax, 0, 1), 1),
      with_amax(with_lean(row(90, 99, 3, U, 1281, 2048, X8, kTile2d, 256, 16, 1, 0, 1, 16, amax, 0, 1)), 1),
      // ... and from s*h 8193 on it too: there the tile2d body's 32-token tiles, more than 256 blocks
      // of 512 threads, take a second wave (two blocks an SM); A/B against the table without this
      // row, one process, two runs, 3 placements: per tensor +0.53-0.61 us against +0.81-1.21 at
      // h=128 s=68 / 72 / 76, h=64 s=144, h=32 s=300, h=16 s=520 / 600 (lean 32-token tiles
      // +0.55-0.63); at s*h <= 8192 lean tiles cost +0.4-0.7 us where the row above +0.19-0.31
      with_amax(row(90, 99, 3, U, 2049, 8192, X8, kTile2d, 512, 32, 1, 0, 1, 16, amax, 0, 1), 1),
      with_amax(with_lean(row(90, 99, 3, U, 8193, 9728, X8, kTile2d, 256, 16, 1, 0, 1, 16, amax, 0, 1)), 1),
      // H200 (L2 >= 55 MiB), per-head calls without an amax at s*h 3457-4480 (~3 MB): lean tiles of 8
      // tokens x one head (a block reads one multiplier of each array) instead of the flat 256-thread
      // row below, where every block reads 16 heads' multipliers after the PDL wait. Per-head cost
      // against per-tensor on the flat row, median of 5 placements, two processes: h=64 s=64
      // +0.017-0.029 us against +0.062-0.070, h=128 s=32 +0.022-0.026 against +0.056-0.058, h=32
      // s=128 +0.017-0.020 against +0.057; 8-token tiles lost at s*h 3072 and 4608 (+0.03-0.09 us)
      with_scales(with_amax(with_lean(with_l2(row(90, 99, 1, U, 3457, 4480, X8, kTile2d, 128, 8, 1, 0, 1, 16, h200ph, 0, 1), 55, U)), 0), 1),
      // tiny: 16 lanes a row, 8-element units, trigger the next kernel at once
      row(90, 99, 1, U, 1, 512, X8, kFlat, 128, 1, 1, 0, 1, 16, h100),
      // from here on, 16 lanes a row with k_pe split over all of them
      row(90, 99, 1, U, 513, 2048, X8, kFlat, 256, 1, 1, 0, 1, 16, h100, 0, 1),
      // H200 (L2 >= 55 MiB), ~2-8 MB: 256-thread blocks to s*h 7094, then 512 (mlakv-tune's bands;
      // the Triton harness, two processes, 2026-11-30: h=16 s=256 / h=128 s=32 / h=64 s=48 1.22-1.23
      // / 1.22-1.23 / 1.14-1.15 us against 1.35-1.36 / 1.34-1.35 / 1.25 for the H100 rows; h=16 s=384
      // / h=128 s=48 1.37-1.38 / 1.37-1.39 against 1.43-1.45; h=16 s=512 / h=128 s=64 / h=64 s=128
      // 1.56-1.57 / 1.42-1.43 / 1.52-1.54 against 1.57-1.62 / 1.57-1.58 / 1.60-1.62)
      with_l2(row(90, 99, 1, U, 2509, 7094, X8, kFlat, 256, 1, 1, 0, 1, 16, h200mid, 0, 1), 55, U),
      with_l2(row(90, 99, 1, U, 7095, 10033, X8, kFlat, 512, 1, 1, 0, 1, 16, h200mid, 0, 1), 55, U),
      row(90, 99, 1, U, 2049, 5632, X8, kFlat, 128, 1, 1, 0, 1, 16, h100, 0, 1),
      // 2-D tiles of 8, then 16 tokens x one head, one pass a block (block x lanes = threads)
      row(90, 99, 1, U, 5633, 6656, X8, kTile2d, 128, 8, 1, 0, 1, 16, h100, 0, 1),
      row(90, 99, 1, U, 6657, 9728, X8, kTile2d, 256, 16, 1, 0, 1, 16, h100, 0, 1),
      // calls with an amax, ~8-80 MB on the H200 (the persist band aside): 256-thread blocks, 8
      // lanes a row - the fastest of six configurations for per-tensor and per-head amax at s*h
      // 16384, 32768 and 65536 (per-head amax 14-22% below the per-tensor rows' ext kernels)
      with_amax(with_l2(row(90, 99, 1, U, 9729, 37888, X8, kFlat, 256, 1, 1, 0, 1, 8, amax), 55, U), 1),
      with_amax(with_l2(row(90, 99, 1, U, 57345, 92681, X8, kFlat, 256, 1, 1, 0, 1, 8, amax), 55, U), 1),
      // H200 (L2 >= 55 MiB), ~15-19 MB: 512-thread blocks, 16 lanes a row with k_pe split (the
      // Triton harness, two processes: s*h 20480 / 24576 2.63-2.65 / 3.05-3.06 us against 2.71-2.72 /
      // 3.16-3.17 for the H100 row; at 20480 2.66 against 2.71-2.76 for the lean tiles below)
      with_l2(row(90, 99, 1, U, 18433, 22528, X8, kFlat, 512, 1, 1, 0, 1, 16, h200mid, 0, 1), 55, U),
      // H200 (L2 >= 55 MiB), ~19-37 MB: tiles of 32 tokens x one head on tile2d's lean instance,
      // blocks numbered heads first (the Triton harness, one process, h 16-128 at s*h 24576-40960:
      // 3.05-3.06 / 3.32-3.33 / 3.47-3.50 / 3.59-3.64 / 4.05-4.06 / 4.51-4.60 us at s*h 24576 / 28672 /
      // 30720 / 32768 / 36864 / 40960 against Triton's v0 16/8 re-timed 3.06-3.12 / 3.42-3.47 /
      // 3.60-3.63 / 3.74-3.82 / 4.36-4.39 / 4.77, and against the rows they replace (flat 512;
      // the same tiles token tiles first; persist 256) 3.10-3.11 / 3.49-3.52 / 3.78 / 3.62-3.78 /
      // 4.08-4.11 / 4.86-4.91; docs/perf-notes.md). Calls without an amax only: those with one keep
      // their rows (above, and the persist rows beyond s*h 37888)
      with_amax(with_lean(with_l2(row(90, 99, 1, U, 22529, 43008, X8, kTile2d, 512, 32, 1, 0, 1, 16, h200lean, 0, 1), 55, U), true), 0),
      row(90, 99, 1, U, 9729, 24576, X8, kFlat, 256, 1, 1, 0, 1, 16, h100, 0, 1),
      row(90, 99, 1, U, 24577, 37888, X8, kFlat, 512, 1, 1, 0, 1, 16, h100, 0, 1),
      // near the L2 size (about 32-48 MB moved): persistent grids of SMs x waves blocks striding
      // over flat's numbering, 8 lanes a row, trigger after the stores; 4 waves of unroll 1 at the
      // edges of the band, 2 waves of unroll 2 in the middle (perf-notes 28)
      row(90, 99, 1, U, 37889, 43008, X8, kPersist, 256, 1, 1, 4, 0, 8, h100),
      row(90, 99, 1, U, 43009, 55296, X8, kPersist, 256, 1, 2, 2, 0, 8, h100),
      row(90, 99, 1, U, 55297, 57344, X8, kPersist, 256, 1, 1, 4, 0, 8, h100),
      // H200 (L2 >= 55 MiB), ~48-80 MB: 512-thread blocks, 16 lanes a row with k_pe split (three
      // processes of the Triton harness, s*h 65536 at h 16, 32, 64, 128: 12.80-12.94 us against
      // 12.90-13.00 for the H100's flat 256 row below)
      with_l2(row(90, 99, 1, U, 57345, 92681, X8, kFlat, 512, 1, 1, 0, 1, 16, h200mid, 0, 1), 55, U),
      // H200 (L2 >= 55 MiB) beyond ~80 MB, calls with an amax: 256-thread blocks (a block's maxima
      // combine behind a barrier, which 1024-thread blocks wait at far longer: +7% at 109 MB)
      with_amax(with_l2(row(90, 99, 1, U, 92682, 370727, X8, kFlat, 256, 1, 1, 0, 1, 16, amax, 0, 1), 55, U), 1),
      with_amax(with_l2(row(90, 99, 1, U, 370728, U, X8, kFlat, 256, 1, 1, 0, 1, 8, amax), 55, U), 1),
      // H200 (L2 >= 55 MiB) beyond ~80 MB: 1024-thread blocks, 16 then 8 lanes a row (mlakv-tune)
      with_l2(row(90, 99, 1, U, 92682, 185363, X8, kFlat, 1024, 1, 1, 0, 1, 16, h200), 55, U),
      with_l2(row(90, 99, 1, U, 185364, 370727, X8, kFlat, 1024, 1, 1, 0, 1, 16, h200, 0, 1), 55, U),
      with_l2(row(90, 99, 1, U, 370728, U, X8, kFlat, 1024, 1, 1, 0, 1, 8, h200), 55, U),
      row(90, 99, 1, U, 57345, 98304, X8, kFlat, 256, 1, 1, 0, 1, 16, h100),
      // beyond L2: a warp a row with 4-element units (8-byte loads, 4-byte stores), 256 threads
      row(90, 99, 1, U, 98305, U, X8, kFlat, 256, 1, 1, 0, 1, 32, h100),
      // ---- sm_100 / sm_103 (Blackwell): s <= 8 on s alone, s > 8 on s*h
      row(100, 109, 1, 2, 1, U, X8, kTile2d, 32, 1, 1, 0, 1, 16, gb300),
      row(100, 109, 3, 8, 1, U, X8, kTile2d, 64, 4, 1, 0, 1, 16, gb300),
      row(100, 109, 9, U, 1, 64, X8, kFlat, 32, 1, 1, 0, 1, 16, gb300),
      row(100, 109, 9, U, 65, 512, X8, kFlat, 128, 1, 1, 0, 1, 16, gb300),
      row(100, 109, 9, U, 513, 2048, X8, kFlat, 256, 1, 1, 0, 1, 16, gb300),
      row(100, 109, 9, U, 2049, 16384, X8, kFlat, 256, 1, 1, 0, 0, 16, gb300),
      row(100, 109, 9, U, 16385, 49152, X8, kFlat, 256, 1, 2, 0, 0, 16, gb300),
      // beyond L2: 8 lanes a row with 16-element units, one 256-bit load each (Blackwell has
      // them): 24 load instructions a (token, head) row instead of 40, where rows are 32-byte
      // aligned (the row holds only there); otherwise the same row with 8-element units
      row(100, 109, 9, U, 49153, U, X8, kFlat, 256, 1, 1, 0, 0, 8, gb300w, 0, 0, 1),
      row(100, 109, 9, U, 49153, U, X8, kFlat, 256, 1, 1, 0, 0, 8, gb300, 0, 0, 0),
      // ---- generic: sm_80, sm_89, sm_120 and anything newer
      row(80, 100000, 1, U, 1, U, X8, kFlat, 256, 1, 2, 0, 0, 16, "generic"),
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
