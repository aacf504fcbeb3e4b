// Shared between the CUDA backend's sources: variant numbering and its dispatch table.
#pragma once
#include <string>

#include "core/dispatch.h"
#include "mlakv/mlakv.h"

namespace mlakv {
namespace cuda {

// Variant indices, in the order of the names the table prints (cuda_table.cpp).
enum Variant : int { kTile2d = 0, kFlat = 1, kPersist = 2, kGeneral = 3, kVariantCount = 4 };

DispatchTable* table();

// cuda_memory.cpp: whether every tensor of the call lies in device-accessible memory.
mlakv_status check_memory(const PackProblem& p, uint32_t skip, std::string* why);
bool is_device_only(const void* p);

}  // namespace cuda
}  // namespace mlakv
