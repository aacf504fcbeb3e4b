// The CUDA side of the small vendor layer under src/kernels/pack_kernels.cuh: PDL controls,
// the hardware FP8 conversion where the arch has it, global loads (up to 32 bytes) and stores.
// src/hip/vendor_hip.h is the same interface for HIP.
#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "core/fp8.h"

#define MLAKV_DEVICE __device__ __forceinline__

#include "kernels/vendor_plain.h"  // load16/8/4, Wide32, load32_pair

namespace mlakv {
namespace vendor {

// PDL (sm_90+): block until the grids this one depends on have completed and their memory is
// visible; a no-op when the kernel was launched without the programmatic-serialization attribute.
MLAKV_DEVICE void grid_dependency_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
// PDL: let the next grid in the stream start launching (it still waits in its own
// grid_dependency_wait for this grid to complete before reading anything).
MLAKV_DEVICE void launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

MLAKV_DEVICE float half_bits_to_float(uint16_t h) { return __half2float(__ushort_as_half(h)); }

// Two fp32 values to two fp8 codes (lo in bits 0-7, hi in bits 8-15) with the hardware's
// cvt.rn.satfinite where the arch has it for this format (identical to encode_fp8 for e4m3fn and
// e5m2; the GPU script checks all 2^32 inputs), the shared software encoder otherwise.
template <Fp8Format F>
MLAKV_DEVICE uint32_t encode2(float lo, float hi) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
  if (F == Fp8Format::E4M3FN) {
    uint16_t r;
    asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(r) : "f"(hi), "f"(lo));
    return r;
  }
  if (F == Fp8Format::E5M2) {
    uint16_t r;
    asm("cvt.rn.satfinite.e5m2x2.f32 %0, %1, %2;" : "=h"(r) : "f"(hi), "f"(lo));
    return r;
  }
#endif
  return uint32_t(encode_fp8<F>(lo)) | (uint32_t(encode_fp8<F>(hi)) << 8);
}

// 32 bytes, 32-byte aligned: one 256-bit load on Blackwell (sm_100 and newer: ld.global.v8.b32,
// SASS LDG.E.ENL2.256), two 16-byte loads on older archs. volatile + "memory": never moved above
// the PDL wait (an asm the compiler saw as pure could be).
MLAKV_DEVICE Wide32 load32(const void* p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 1000
  Wide32 r;
  asm volatile("ld.global.v8.b32 {%0, %1, %2, %3, %4, %5, %6, %7}, [%8];"
               : "=r"(r.lo.x), "=r"(r.lo.y), "=r"(r.lo.z), "=r"(r.lo.w), "=r"(r.hi.x), "=r"(r.hi.y), "=r"(r.hi.z), "=r"(r.hi.w)
               : "l"(p)
               : "memory");
  return r;
#else
  return load32_pair(p);
#endif
}
// 16-, 8-, 4- and 2-byte stores of an output; `evict_first` marks them evict-first (st.global.cs).
MLAKV_DEVICE void store16(void* p, uint4 v, bool evict_first) {
  if (evict_first) asm volatile("st.global.cs.v4.u32 [%0], {%1, %2, %3, %4};" ::"l"(p), "r"(v.x), "r"(v.y), "r"(v.z), "r"(v.w) : "memory");
  else *static_cast<uint4*>(p) = v;
}
MLAKV_DEVICE void store8(void* p, uint2 v, bool evict_first) {
  if (evict_first) asm volatile("st.global.cs.v2.u32 [%0], {%1, %2};" ::"l"(p), "r"(v.x), "r"(v.y) : "memory");
  else *static_cast<uint2*>(p) = v;
}
MLAKV_DEVICE void store4(void* p, uint32_t v, bool evict_first) {
  if (evict_first) asm volatile("st.global.cs.u32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
  else *static_cast<uint32_t*>(p) = v;
}
MLAKV_DEVICE void store2(void* p, uint16_t v, bool evict_first) {
  if (evict_first) asm volatile("st.global.cs.u16 [%0], %1;" ::"l"(p), "h"(v) : "memory");
  else *static_cast<uint16_t*>(p) = v;
}

MLAKV_DEVICE uint32_t umulhi(uint32_t a, uint32_t b) { return __umulhi(a, b); }

}  // namespace vendor
}  // namespace mlakv
