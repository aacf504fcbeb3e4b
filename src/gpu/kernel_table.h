// The table of the GPU kernel instances that the host layer (src/gpu/gpu_backend.cu) launches.
// The instances are compiled in parts, one source per input type and body (plain or ext), in
// src/gpu/instances/: six translation units that a parallel build compiles at once (one source
// with all 1208 kernels took a single core most of CI's build; docs/ARCHITECTURE.md). Each part
// fills its slots of the table (fill_kernels, src/gpu/kernel_instances.cuh); gpu_backend.cu calls
// all six. Slots no instance exists for stay nullptr.
#pragma once
#include "gpu/vendor.h"  // first: the runtime's headers define what the shared headers use

#include "gpu/gpu_backend.h"
#include "gpu/pack_kernels.cuh"

namespace mlakv {
namespace gpu {

using KernelFn = void (*)(kern::Params);
constexpr int kUnits = kern::kUnitsCount;
constexpr int kUnrolls[3] = {1, 2, 4};

// [plain / ext][variant][input type][format][unit layout][unroll 1/2/4]; general ignores the unit
// layout and unroll; the split-k_pe and wide layouts (DS16S, DS32S, DS8W) exist with unroll 1 and 2
// only (nullptr for 4). ext: the bodies with per-head scales and amax (src/gpu/pack_kernels.cuh),
// for calls that ask for either.
struct KernelTable {
  KernelFn k[2][kVariantCount][3][4][kUnits][3] = {};
  // tile2d's lean plain instance (kern::pack_tile2d_lean), by grid order (token tiles first, heads
  // first), input (bf16, fp16) and format
  KernelFn lean[2][2][4] = {};
  // its ext instances (amax calls on rows with lean=1, token tiles first), by commit (block, lane),
  // input and format
  KernelFn lean_x[2][2][4] = {};
  // tile2d's lane-commit ext instance (rows with commit=lane), by input, format, units and unroll
  // (1 only: the others nullptr)
  KernelFn lane[3][4][kUnits][3] = {};
};

// Fills the slots of input type T with its plain (X = false) or ext (X = true) instances. Defined
// in src/gpu/kernel_instances.cuh; each of the six instantiated in its own source,
// src/gpu/instances/<input>_<plain|ext>.cu.
template <InType T, bool X>
void fill_kernels(KernelTable& t);

}  // namespace gpu
}  // namespace mlakv
