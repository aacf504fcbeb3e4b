// The part of the vendor layer that is plain C++ on every GPU: naturally aligned loads of an input
// (never written by the kernel) through ordinary pointers. Included by every vendor header
// (src/gpu/vendors/) after it defines MLAKV_DEVICE and the uint2/uint4 vector types.
#pragma once
#include <stdint.h>

namespace mlakv {
namespace vendor {

MLAKV_DEVICE uint4 load16(const void* p) { return *static_cast<const uint4*>(p); }
MLAKV_DEVICE uint2 load8(const void* p) { return *static_cast<const uint2*>(p); }
MLAKV_DEVICE uint32_t load4(const void* p) { return *static_cast<const uint32_t*>(p); }

// 32 bytes, 32-byte aligned (the wide units); load32 is each vendor's, load32_pair the fallback
struct Wide32 {
  uint4 lo, hi;
};
MLAKV_DEVICE Wide32 load32_pair(const void* p) {
  return Wide32{static_cast<const uint4*>(p)[0], static_cast<const uint4*>(p)[1]};
}

}  // namespace vendor
}  // namespace mlakv
