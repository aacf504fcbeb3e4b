// The reference backend's variants (names and numbers in one place) and its dispatch table.
#pragma once
#include "core/dispatch.h"

namespace mlakv {
namespace reference {

// vector  - per (token, head) row, a contiguous loop (row_kernels.h), one instance per
//           (input type, fp8 format), vectorised, AVX2 where the CPU has it;
// strided - element by element with the format chosen at run time.
// Both are correct for every shape, stride and alignment; vector is the fast one.
enum Variant : int { kVector = 0, kStrided = 1, kVariantCount };
inline std::vector<std::string> variant_names() { return {"vector", "strided"}; }

DispatchTable* table();

}  // namespace reference
}  // namespace mlakv
