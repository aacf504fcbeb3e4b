// Shared between the CUDA backend's sources: its variants (names and numbers in one place), its
// dispatch table and its memory check.
#pragma once
#include <string>
#include <vector>

#include "core/dispatch.h"
#include "mlakv/mlakv.h"

namespace mlakv {
namespace cuda {

// tile2d  - grid (token blocks, heads): a block owns `block` tokens of one head;
// flat    - 1-D grid over all (token, head, lane) pairs, threads x unroll a block;
// persist - flat's numbering, a grid of (SMs x waves) blocks striding over it;
// general - one element a thread, 64-bit indices: any dims, any alignment, any size.
enum Variant : int { kTile2d = 0, kFlat = 1, kPersist = 2, kGeneral = 3, kVariantCount = 4 };
inline std::vector<std::string> variant_names() { return {"tile2d", "flat", "persist", "general"}; }

// The table (cuda_table.cpp) and the parse-time check of its rows (cuda_backend.cu: which
// unrolls the kernels are compiled for).
DispatchTable* table();
bool row_check(const DispatchRow& r, std::string* why);

// cuda_memory.cpp: whether every operand of the call lies in device-accessible memory.
mlakv_status check_memory(const PackProblem& p, uint32_t skip, std::string* why);
bool is_device_only(const void* p);

}  // namespace cuda
}  // namespace mlakv
