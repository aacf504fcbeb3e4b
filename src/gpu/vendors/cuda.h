// The CUDA vendor layer (included through src/gpu/vendor.h; src/gpu/vendors/hip.h is the same
// interface for HIP):
//   device side, under the kernel bodies (src/gpu/pack_kernels.cuh): PDL controls, the hardware
//     FP8 conversion where the arch has it, global loads (up to 32 bytes) and stores;
//   host side, under the shared host layer (src/gpu/gpu_backend.cu): the runtime calls it makes
//     (devices, kernel limits, the launch, pointer classification), namespace mlakv::gpu::rt.
#pragma once
#include <cuda.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include <cstring>
#include <string>

#include "core/fp8.h"
#include "mlakv/mlakv.h"

#define MLAKV_DEVICE __device__ __forceinline__
#define MLAKV_BOUNDS_1024X2 __launch_bounds__(1024, 2)  // at most 32 registers a thread
#define MLAKV_GPU_BACKEND_ENTRY cuda_backend  // the Backend this build's GPU host layer defines

#include "gpu/vendors/plain.h"  // load16/8/4, Wide32, load32_pair

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

// ---- amax (per-head scales and amax, src/gpu/pack_kernels.cuh): lanes that combine their maxima
// before one of them touches memory (a warp; the kernels' blocks are 1-D and whole warps)
constexpr int kLanes = 32;
MLAKV_DEVICE int lane() { return int(threadIdx.x & 31u); }
// The maximum over each aligned group of G lanes (G a power of two <= kLanes), every lane of the
// warp taking part: one redux.sync a group of 16 or 32 lanes on sm_80+ (as cooperative groups do),
// xor shuffles otherwise.
template <int G>
MLAKV_DEVICE uint32_t group_max(uint32_t v) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  constexpr bool kRedux = G >= 16;
#else
  constexpr bool kRedux = false;
#endif
  if constexpr (kRedux) {
    const uint32_t mask = G == 32 ? 0xFFFFFFFFu : ((1u << G) - 1u) << (lane() & ~(G - 1));
    return __reduce_max_sync(mask, v);
  } else {
#pragma unroll
    for (int d = G / 2; d > 0; d >>= 1) {
      const uint32_t o = __shfl_xor_sync(0xFFFFFFFFu, v, d, G);
      v = o > v ? o : v;
    }
    return v;
  }
}
MLAKV_DEVICE uint32_t shfl_down(uint32_t v, int d) { return __shfl_down_sync(0xFFFFFFFFu, v, unsigned(d)); }
MLAKV_DEVICE uint32_t shfl_up(uint32_t v, int d) { return __shfl_up_sync(0xFFFFFFFFu, v, unsigned(d)); }
// The larger of two magnitudes (|x|: -0 as +0, inf counts), either of which may be NaN (ignored:
// max.f32 returns the other; two NaNs give NaN, which a later join with a number drops); denormals
// kept (the library builds with -ftz=false)
MLAKV_DEVICE float amax_join(float a, float b) { return fmaxf(a, b); }
// A destination's current value (int32 bit pattern): amax_read through L1 (cheap where many
// lanes ask for the same few floats; possibly stale, which only costs an atomic), amax_read_l2
// through L2 (the freshest copy, for one read a block)
MLAKV_DEVICE int32_t amax_read(const float* p) { return *reinterpret_cast<const int*>(p); }
MLAKV_DEVICE int32_t amax_read_l2(const float* p) { return __ldcg(reinterpret_cast<const int*>(p)); }
MLAKV_DEVICE void amax_max(float* p, int32_t v) { atomicMax(reinterpret_cast<int*>(p), v); }
// The block's maxima of *a and *b, every thread of the (1-D) block calling it once, at its end:
// true (with the maxima) for one thread. A redux / shuffles a warp, then the warps' through shared
// memory (a block of one warp - the tiny amax rows - needs neither: -0.05 us at s <= 2 on the H200).
MLAKV_DEVICE bool block_leader() { return threadIdx.x == 0; }
MLAKV_DEVICE bool block_max2(uint32_t* a, uint32_t* b) {
  __shared__ uint32_t warp_max[2][32];
  const unsigned w = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  uint32_t x = group_max<32>(*a), y = group_max<32>(*b);
  if (warps == 1) {
    *a = x;
    *b = y;
    return threadIdx.x == 0;
  }
  if (lane() == 0) {
    warp_max[0][w] = x;
    warp_max[1][w] = y;
  }
  __syncthreads();
  if (w == 0) {
    x = unsigned(lane()) < warps ? warp_max[0][lane()] : 0u;
    y = unsigned(lane()) < warps ? warp_max[1][lane()] : 0u;
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

constexpr mlakv_backend kBackend = MLAKV_BACKEND_CUDA;
constexpr const char* kName = "cuda";
using Status = cudaError_t;
constexpr Status kOk = cudaSuccess;

inline const char* error_string(Status e) { return cudaGetErrorString(e); }
inline void clear_error() { (void)cudaGetLastError(); }
inline Status device_count(int* n) { return cudaGetDeviceCount(n); }
inline Status get_device(int* d) { return cudaGetDevice(d); }
inline Status set_device(int d) { return cudaSetDevice(d); }

// A device as the tables see it: arch = SM major*10 + minor (sm_90 -> 90), units = multiprocessors.
struct DeviceProps {
  int arch = 0, units = 0;
  int64_t l2_bytes = 0;
  std::string name;
};
inline Status device_props(int dev, DeviceProps* p) {
  cudaDeviceProp prop;
  const Status e = cudaGetDeviceProperties(&prop, dev);
  if (e != kOk) return e;
  p->arch = prop.major * 10 + prop.minor;
  p->units = prop.multiProcessorCount;
  p->l2_bytes = prop.l2CacheSize;
  p->name = prop.name;
  return kOk;
}
inline std::string arch_name(int arch) { return "sm_" + std::to_string(arch); }

// A kernel's limits on the current device: threads a block (its registers decide) and the arch of
// the image the driver loaded for it (an error: no image for this device in the fat binary).
inline Status kernel_limits(const void* fn, int* max_threads, int* image_arch) {
  cudaFuncAttributes fa;
  const Status e = cudaFuncGetAttributes(&fa, fn);
  if (e == kOk) {
    *max_threads = fa.maxThreadsPerBlock;
    *image_arch = fa.binaryVersion;
  }
  return e;
}

// Programmatic dependent launch: sm_90 and newer, with code built for them.
constexpr bool kHasPdl = true;
inline bool pdl_capable(int arch, int image_arch) { return arch >= 90 && image_arch >= 90; }

template <class P>
Status launch(void (*fn)(P), dim3 grid, dim3 block, const P& params, void* stream, bool pdl) {
  cudaLaunchConfig_t lc;
  std::memset(&lc, 0, sizeof lc);
  lc.gridDim = grid;
  lc.blockDim = block;
  lc.stream = static_cast<cudaStream_t>(stream);
  cudaLaunchAttribute attr[1];
  if (pdl) {
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    lc.attrs = attr;
    lc.numAttrs = 1;
  }
  return cudaLaunchKernelEx(&lc, fn, params);
}

// ---- where a pointer lives (the driver's cuPointerGetAttributes, found through the runtime)
enum class Where { Reachable, HostOnly, OtherDevice, Unknown };
using PointerGetAttributes = CUresult (*)(unsigned, CUpointer_attribute*, void**, CUdeviceptr);
inline PointerGetAttributes driver_pointer_attributes() {
  static PointerGetAttributes fn = [] {
    void* p = nullptr;
    cudaDriverEntryPointQueryResult q;
    if (cudaGetDriverEntryPointByVersion("cuPointerGetAttributes", &p, 12000, cudaEnableDefault, &q) != cudaSuccess ||
        q != cudaDriverEntryPointSuccess)
      p = nullptr;
    (void)cudaGetLastError();
    return reinterpret_cast<PointerGetAttributes>(p);
  }();
  return fn;
}
// Memory of `device`, managed memory, or host memory registered and mapped at the same address:
// Reachable, with the allocation's range in *begin / *size (size 0 if the driver does not say).
// Device memory of another GPU is OtherDevice (refused even where peer access is enabled: whether
// it is cannot be asked of the driver, and a kernel reading memory it cannot reach takes the
// device's context down).
inline Where classify(const void* ptr, int device, uintptr_t* begin, size_t* size) {
  PointerGetAttributes fn = driver_pointer_attributes();
  if (!fn) return Where::Unknown;
  unsigned type = 0;
  int ordinal = -1;
  CUdeviceptr devptr = 0, start = 0;
  CUpointer_attribute attrs[] = {CU_POINTER_ATTRIBUTE_MEMORY_TYPE, CU_POINTER_ATTRIBUTE_DEVICE_POINTER,
                                 CU_POINTER_ATTRIBUTE_RANGE_START_ADDR, CU_POINTER_ATTRIBUTE_RANGE_SIZE,
                                 CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL};
  void* out[] = {&type, &devptr, &start, size, &ordinal};
  *size = 0;
  if (fn(5, attrs, out, CUdeviceptr(reinterpret_cast<uintptr_t>(ptr))) != CUDA_SUCCESS) return Where::Unknown;
  if (type == 0) return Where::HostOnly;  // not known to CUDA: plain host memory
  if (type == CU_MEMORYTYPE_DEVICE && ordinal != device) return Where::OtherDevice;
  const bool reachable = type == CU_MEMORYTYPE_DEVICE || type == CU_MEMORYTYPE_UNIFIED ||
                         (type == CU_MEMORYTYPE_HOST && devptr == CUdeviceptr(reinterpret_cast<uintptr_t>(ptr)));
  if (!reachable) return type == CU_MEMORYTYPE_HOST ? Where::HostOnly : Where::Unknown;
  *begin = uintptr_t(start);
  return Where::Reachable;
}
// Memory the host cannot read (device memory proper).
inline bool is_device_only(const void* ptr) {
  PointerGetAttributes fn = driver_pointer_attributes();
  if (!fn) return false;
  unsigned type = 0;
  CUpointer_attribute a = CU_POINTER_ATTRIBUTE_MEMORY_TYPE;
  void* out = &type;
  if (fn(1, &a, &out, CUdeviceptr(reinterpret_cast<uintptr_t>(ptr))) != CUDA_SUCCESS) return false;
  return type == CU_MEMORYTYPE_DEVICE;
}

}  // namespace rt
}  // namespace gpu
}  // namespace mlakv
