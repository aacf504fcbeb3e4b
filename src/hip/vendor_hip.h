// The HIP side of the small vendor layer under src/kernels/pack_kernels.cuh: the same interface as
// src/cuda/vendor.cuh (MLAKV_DEVICE and mlakv::vendor::{grid_dependency_wait, launch_dependents,
// half_bits_to_float, encode2, load32/16/8/4, store16/8/4/2, umulhi}), so the kernel bodies compile for
// AMD GPUs unchanged. tests/hip/hip_compile_check.hip compiles every kernel through it for gfx940
// (CDNA3) and gfx1030 (RDNA2, 32-lane waves); the HIP backend's launch code is not written yet.
//
// Differences from CUDA, and why:
//  - no programmatic dependent launch on AMD: the PDL controls are no-ops (stream order alone);
//  - FP8 encoding always uses the shared software encoder (src/core/fp8.h). CDNA3's packed fp8
//    conversions would have to be proven identical over all 2^32 inputs first, as the CUDA
//    backend's were (tests/gpu/encoder_exhaustive.cu);
//  - streaming stores are non-temporal stores.
#pragma once
#include <hip/hip_fp16.h>
#include <hip/hip_runtime.h>
#include <stdint.h>

#include "core/fp8.h"

#define MLAKV_DEVICE __device__ __forceinline__

#include "kernels/vendor_plain.h"  // load16/8/4, Wide32, load32_pair

namespace mlakv {
namespace vendor {

MLAKV_DEVICE void grid_dependency_wait() {}
MLAKV_DEVICE void launch_dependents() {}

MLAKV_DEVICE float half_bits_to_float(uint16_t h) {
  __half x;
  __builtin_memcpy(&x, &h, sizeof h);
  return __half2float(x);
}

template <Fp8Format F>
MLAKV_DEVICE uint32_t encode2(float lo, float hi) {
  return uint32_t(encode_fp8<F>(lo)) | (uint32_t(encode_fp8<F>(hi)) << 8);
}

// 32 bytes as two 16-byte loads (AMD's widest global load is 16 bytes)
MLAKV_DEVICE Wide32 load32(const void* p) { return load32_pair(p); }

MLAKV_DEVICE void store16(void* p, uint4 v, bool evict_first) {
  if (evict_first) {
    typedef uint32_t u32x4 __attribute__((ext_vector_type(4)));
    const u32x4 w = {v.x, v.y, v.z, v.w};
    __builtin_nontemporal_store(w, static_cast<u32x4*>(p));
  } else {
    *static_cast<uint4*>(p) = v;
  }
}
MLAKV_DEVICE void store8(void* p, uint2 v, bool evict_first) {
  uint64_t w = uint64_t(v.x) | (uint64_t(v.y) << 32);
  if (evict_first) __builtin_nontemporal_store(w, static_cast<uint64_t*>(p));
  else *static_cast<uint64_t*>(p) = w;
}
MLAKV_DEVICE void store4(void* p, uint32_t v, bool evict_first) {
  if (evict_first) __builtin_nontemporal_store(v, static_cast<uint32_t*>(p));
  else *static_cast<uint32_t*>(p) = v;
}
MLAKV_DEVICE void store2(void* p, uint16_t v, bool evict_first) {
  if (evict_first) __builtin_nontemporal_store(v, static_cast<uint16_t*>(p));
  else *static_cast<uint16_t*>(p) = v;
}

MLAKV_DEVICE uint32_t umulhi(uint32_t a, uint32_t b) { return __umulhi(a, b); }

}  // namespace vendor
}  // namespace mlakv
