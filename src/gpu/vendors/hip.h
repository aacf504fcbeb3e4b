// The HIP vendor layer (included through src/gpu/vendor.h): the same interface as
// src/gpu/vendors/cuda.h, so the kernel bodies (src/gpu/pack_kernels.cuh) and the host layer
// (src/gpu/gpu_backend.cu) compile for AMD GPUs unchanged.
//
// Differences from CUDA, and why:
//  - no programmatic dependent launch on AMD: the PDL controls are no-ops (stream order alone),
//    the host never asks for it and plans say pdl=n/a;
//  - FP8 encoding always uses the shared software encoder (src/core/fp8.h). CDNA3's packed fp8
//    conversions would have to be proven identical over all 2^32 inputs first, as the CUDA
//    backend's were (tests/gpu/encoder_exhaustive.cu);
//  - streaming stores are non-temporal stores; 32-byte loads are two 16-byte loads;
//  - the tables' arch number of a gfx target is major*100 + minor*10 + stepping, the stepping a hex
//    digit's value: gfx90a = 910, gfx942 = 942, gfx950 = 950, gfx1100 = 1100.
#pragma once
#include <hip/hip_fp16.h>
#include <hip/hip_runtime.h>
#include <stdint.h>

#include <cstdlib>
#include <string>

#include "core/fp8.h"
#include "mlakv/mlakv.h"

#define MLAKV_DEVICE __device__ __forceinline__
#define MLAKV_BOUNDS_1024X2  // (CUDA: two 1024-thread blocks an SM; HIP's second parameter means another thing)
#define MLAKV_GPU_BACKEND_ENTRY hip_backend  // the Backend this build's GPU host layer defines

#include "gpu/vendors/gfx_arch.h"  // gfx_arch, arch_name
#include "gpu/vendors/plain.h"     // load16/8/4, Wide32, load32_pair

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

// ---- amax (src/gpu/pack_kernels.cuh): lanes combine in groups of 32 (half a wave64, or a wave32;
// the kernels' blocks are whole groups of 32, not always whole waves), xor / down / up shuffles
// within width 32
constexpr int kLanes = 32;
MLAKV_DEVICE int lane() { return int(threadIdx.x & 31u); }
template <int G>
MLAKV_DEVICE uint32_t group_max(uint32_t v) {
#pragma unroll
  for (int d = G / 2; d > 0; d >>= 1) {
    const uint32_t o = uint32_t(__shfl_xor(int(v), d, G));
    v = o > v ? o : v;
  }
  return v;
}
MLAKV_DEVICE uint32_t shfl_down(uint32_t v, int d) { return uint32_t(__shfl_down(int(v), unsigned(d), kLanes)); }
MLAKV_DEVICE uint32_t shfl_up(uint32_t v, int d) { return uint32_t(__shfl_up(int(v), unsigned(d), kLanes)); }
// the larger of two magnitudes, either of which may be NaN (ignored), on the bit patterns (not left
// to v_max_f32's NaN rules)
MLAKV_DEVICE float amax_join(float a, float b) {
  uint32_t x = f32_bits(a), y = f32_bits(b);
  x = x <= 0x7F800000u ? x : 0u;
  y = y <= 0x7F800000u ? y : 0u;
  return bits_f32(x > y ? x : y);
}
MLAKV_DEVICE int32_t amax_read(const float* p) { return *reinterpret_cast<const int*>(p); }
MLAKV_DEVICE int32_t amax_read_l2(const float* p) { return __atomic_load_n(reinterpret_cast<const int*>(p), __ATOMIC_RELAXED); }
MLAKV_DEVICE void amax_max(float* p, int32_t v) { atomicMax(reinterpret_cast<int*>(p), v); }
// as in vendors/cuda.h: groups of 32 lanes, then across them through shared memory
MLAKV_DEVICE bool block_leader() { return threadIdx.x == 0; }
MLAKV_DEVICE bool block_max2(uint32_t* a, uint32_t* b) {
  __shared__ uint32_t group_maxima[2][32];
  const unsigned g = threadIdx.x >> 5, groups = (blockDim.x + 31) >> 5;
  uint32_t x = group_max<32>(*a), y = group_max<32>(*b);
  if (groups == 1) {
    *a = x;
    *b = y;
    return threadIdx.x == 0;
  }
  if (lane() == 0) {
    group_maxima[0][g] = x;
    group_maxima[1][g] = y;
  }
  __syncthreads();
  if (g == 0) {
    x = unsigned(lane()) < groups ? group_maxima[0][lane()] : 0u;
    y = unsigned(lane()) < groups ? group_maxima[1][lane()] : 0u;
    x = group_max<32>(x);
    y = group_max<32>(y);
  }
  *a = x;
  *b = y;
  return threadIdx.x == 0;
}

}  // namespace vendor
}  // namespace mlakv

// ---- host side -------------------------------------------------------------------------------------
namespace mlakv {
namespace gpu {
namespace rt {

constexpr mlakv_backend kBackend = MLAKV_BACKEND_HIP;
constexpr const char* kName = "hip";
using Status = hipError_t;
constexpr Status kOk = hipSuccess;

inline const char* error_string(Status e) { return hipGetErrorString(e); }
inline void clear_error() { (void)hipGetLastError(); }
inline Status device_count(int* n) { return hipGetDeviceCount(n); }
inline Status get_device(int* d) { return hipGetDevice(d); }
inline Status set_device(int d) { return hipSetDevice(d); }

struct DeviceProps {
  int arch = 0, units = 0;  // units: compute units
  int64_t l2_bytes = 0;
  std::string name;
};
inline Status device_props(int dev, DeviceProps* p) {
  hipDeviceProp_t prop;
  const Status e = hipGetDeviceProperties(&prop, dev);
  if (e != kOk) return e;
  p->arch = gfx_arch(prop.gcnArchName);
  p->units = prop.multiProcessorCount;
  p->l2_bytes = prop.l2CacheSize;
  p->name = prop.name;
  return kOk;
}

inline Status kernel_limits(const void* fn, int* max_threads, int* image_arch) {
  hipFuncAttributes fa;
  const Status e = hipFuncGetAttributes(&fa, fn);
  if (e == kOk) {
    *max_threads = fa.maxThreadsPerBlock;
    *image_arch = 0;
  }
  return e;
}

// No programmatic dependent launch on AMD GPUs.
constexpr bool kHasPdl = false;
inline bool pdl_capable(int, int) { return false; }

template <class P>
Status launch(void (*fn)(P), dim3 grid, dim3 block, const P& params, void* stream, bool) {
  void* args[] = {const_cast<P*>(&params)};
  return hipLaunchKernel(reinterpret_cast<const void*>(fn), grid, block, args, 0, static_cast<hipStream_t>(stream));
}

enum class Where { Reachable, HostOnly, OtherDevice, Unknown };
inline hipMemoryType memory_type(const hipPointerAttribute_t& a) {
#if HIP_VERSION_MAJOR >= 6
  return a.type;
#else
  return a.memoryType;
#endif
}
// Memory of `device`, managed memory, or host memory registered and mapped at the same address:
// Reachable, with the allocation's range in *begin / *size (size 0 if the runtime does not say);
// device memory of another GPU: OtherDevice (as in vendors/cuda.h).
inline Where classify(const void* ptr, int device, uintptr_t* begin, size_t* size) {
  hipPointerAttribute_t a;
  *size = 0;
  if (hipPointerGetAttributes(&a, ptr) != hipSuccess) {
    (void)hipGetLastError();
    return Where::HostOnly;  // not known to HIP: plain host memory
  }
  const hipMemoryType t = memory_type(a);
  if (t == hipMemoryTypeDevice && !a.isManaged && a.device != device) return Where::OtherDevice;
  const bool reachable = t == hipMemoryTypeDevice || a.isManaged || (t == hipMemoryTypeHost && a.devicePointer == ptr);
  if (!reachable) return t == hipMemoryTypeHost ? Where::HostOnly : Where::Unknown;
  hipDeviceptr_t base = nullptr;
  size_t bytes = 0;
  if (hipMemGetAddressRange(&base, &bytes, const_cast<void*>(ptr)) == hipSuccess) {
    *begin = reinterpret_cast<uintptr_t>(base);
    *size = bytes;
  } else {
    (void)hipGetLastError();
  }
  return Where::Reachable;
}
inline bool is_device_only(const void* ptr) {
  hipPointerAttribute_t a;
  if (hipPointerGetAttributes(&a, ptr) != hipSuccess) {
    (void)hipGetLastError();
    return false;
  }
  return memory_type(a) == hipMemoryTypeDevice && !a.isManaged;
}

}  // namespace rt
}  // namespace gpu
}  // namespace mlakv
