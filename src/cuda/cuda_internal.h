// Shared between the CUDA backend's sources: variant numbering and its dispatch table.
#pragma once
#include "core/dispatch.h"

namespace mlakv {
namespace cuda {

// Variant indices, in the order of the names the table prints (cuda_table.cpp).
enum Variant : int { kTile2d = 0, kFlat = 1, kPersist = 2, kGeneral = 3, kVariantCount = 4 };

DispatchTable* table();

}  // namespace cuda
}  // namespace mlakv
