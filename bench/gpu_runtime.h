// bench/'s one mapping of the GPU runtime: the runtime calls and types bench_util.cuh and
// mlakv_tune.cu use, as gpu* names, to CUDA (nvcc) or HIP (hipcc), the backend they drive
// (kBackend, kName: what the library's vendor header says for the same build) and the device
// identity a table file names (device_identity). Host code only; no src/gpu header is included
// except the plain-C++ gfx arch numbering (src/gpu/vendors/gfx_arch.h), so the tuner's arch
// number for an AMD device is the library's by construction.
//
// The vendor is chosen as src/gpu/vendor.h chooses it (__HIP__ or __HIPCC__: HIP, else CUDA), so a
// bench program and the library it links were built for the same one.
#pragma once
#include <stdint.h>

#include <string>

#include <mlakv/mlakv.h>

#if defined(__HIP__) || defined(__HIPCC__)
#include <hip/hip_runtime.h>

#include "gpu/vendors/gfx_arch.h"  // gfx_arch, arch_name: the tables' arch number of a gfx target
#define MLAKV_BENCH_HIP 1
#define MLAKV_RT_(x) hip##x
#else
#include <cuda_runtime.h>
#define MLAKV_BENCH_HIP 0
#define MLAKV_RT_(x) cuda##x
#endif

// ---- names that differ only in the prefix (cudaX <-> hipX, same arguments)
#define gpuError_t MLAKV_RT_(Error_t)
#define gpuSuccess MLAKV_RT_(Success)
#define gpuGetErrorString MLAKV_RT_(GetErrorString)
#define gpuGetLastError MLAKV_RT_(GetLastError)
#define gpuGetDeviceCount MLAKV_RT_(GetDeviceCount)
#define gpuSetDevice MLAKV_RT_(SetDevice)
#define gpuGetDeviceProperties MLAKV_RT_(GetDeviceProperties)
#define gpuDeviceGetAttribute MLAKV_RT_(DeviceGetAttribute)
#define gpuDriverGetVersion MLAKV_RT_(DriverGetVersion)
#define gpuRuntimeGetVersion MLAKV_RT_(RuntimeGetVersion)
#define gpuMalloc MLAKV_RT_(Malloc)
#define gpuFree MLAKV_RT_(Free)
#define gpuMemcpy MLAKV_RT_(Memcpy)
#define gpuMemcpyAsync MLAKV_RT_(MemcpyAsync)
#define gpuMemsetAsync MLAKV_RT_(MemsetAsync)
#define gpuMemcpyHostToDevice MLAKV_RT_(MemcpyHostToDevice)
#define gpuMemcpyDeviceToHost MLAKV_RT_(MemcpyDeviceToHost)
#define gpuMemcpyDeviceToDevice MLAKV_RT_(MemcpyDeviceToDevice)
#define gpuStream_t MLAKV_RT_(Stream_t)
#define gpuStreamCreateWithFlags MLAKV_RT_(StreamCreateWithFlags)
#define gpuStreamNonBlocking MLAKV_RT_(StreamNonBlocking)
#define gpuStreamSynchronize MLAKV_RT_(StreamSynchronize)
#define gpuEvent_t MLAKV_RT_(Event_t)
#define gpuEventCreate MLAKV_RT_(EventCreate)
#define gpuEventRecord MLAKV_RT_(EventRecord)
#define gpuEventSynchronize MLAKV_RT_(EventSynchronize)
#define gpuEventElapsedTime MLAKV_RT_(EventElapsedTime)
#define gpuGraph_t MLAKV_RT_(Graph_t)
#define gpuGraphExec_t MLAKV_RT_(GraphExec_t)
#define gpuStreamBeginCapture MLAKV_RT_(StreamBeginCapture)
#define gpuStreamCaptureModeThreadLocal MLAKV_RT_(StreamCaptureModeThreadLocal)
#define gpuStreamEndCapture MLAKV_RT_(StreamEndCapture)
#define gpuGraphLaunch MLAKV_RT_(GraphLaunch)
#define gpuGraphExecDestroy MLAKV_RT_(GraphExecDestroy)
#define gpuGraphDestroy MLAKV_RT_(GraphDestroy)

// ---- names and calls that differ in more than the prefix
#if MLAKV_BENCH_HIP
#define gpuDeviceProp hipDeviceProp_t
#define gpuDevAttrMemoryClockRate hipDeviceAttributeMemoryClockRate
#define gpuDevAttrMemoryBusWidth hipDeviceAttributeMemoryBusWidth
// hipGraphInstantiate takes (exec, graph, error node, log, log size); the flags form is CUDA's
inline hipError_t gpuGraphInstantiate(hipGraphExec_t* e, hipGraph_t g) { return hipGraphInstantiateWithFlags(e, g, 0); }
#else
#define gpuDeviceProp cudaDeviceProp
#define gpuDevAttrMemoryClockRate cudaDevAttrMemoryClockRate
#define gpuDevAttrMemoryBusWidth cudaDevAttrGlobalMemoryBusWidth
inline cudaError_t gpuGraphInstantiate(cudaGraphExec_t* e, cudaGraph_t g) { return cudaGraphInstantiate(e, g, 0); }
#endif

namespace bench {

#if MLAKV_BENCH_HIP
constexpr mlakv_backend kBackend = MLAKV_BACKEND_HIP;
constexpr const char* kName = "hip";    // = the library's rt::kName: a table file's backend=
constexpr const char* kVendor = "HIP";  // in messages and reports
constexpr const char* kUnitsWord = "CUs";
constexpr bool kHasPdl = false;          // no programmatic dependent launch on AMD: no `early` rows
#else
constexpr mlakv_backend kBackend = MLAKV_BACKEND_CUDA;
constexpr const char* kName = "cuda";
constexpr const char* kVendor = "CUDA";
constexpr const char* kUnitsWord = "SMs";
constexpr bool kHasPdl = true;
#endif

// What the tuner says about a device. arch, units, l2_bytes and name are read exactly as the
// library's vendor header reads them (src/gpu/vendors/cuda.h / hip.h, rt::device_props), and a
// table file's device line is built from them as src/gpu/gpu_backend.cu builds the device's own
// (device_info: backend, arch, units, l2 >> 20 MiB, table_device_name(name)). The rest is only
// reported (the file's comments, the report): 0 where the runtime does not say.
struct DeviceIdentity {
  std::string name;      // prop.name
  int arch = 0;          // the tables' arch: CUDA major*10+minor; HIP gfx_arch(gcnArchName) (gfx942 = 942)
  std::string arch_text; // "sm_90"; "gfx942:sramecc+:xnack-" (HIP: the full target name)
  int units = 0;         // prop.multiProcessorCount: SMs / CUs
  int64_t l2_bytes = 0;  // prop.l2CacheSize (HIP on CDNA3: the L2, not the Infinity Cache behind it)
  int warp = 0;          // prop.warpSize: 32 / 64 (wave64 on CDNA)
  int bus_bits = 0;      // memory bus width (0: unknown)
  int mem_khz = 0;       // memory clock, kHz (0: unknown)
  int driver = 0;        // cudaDriverGetVersion / hipDriverGetVersion (0: unknown)
  int runtime = 0;       // cudaRuntimeGetVersion / hipRuntimeGetVersion (0: unknown)
};

inline gpuError_t device_identity(int dev, DeviceIdentity* id) {
  gpuDeviceProp prop;
  const gpuError_t e = gpuGetDeviceProperties(&prop, dev);
  if (e != gpuSuccess) return e;
  id->name = prop.name;
#if MLAKV_BENCH_HIP
  id->arch = mlakv::gpu::rt::gfx_arch(prop.gcnArchName);
  id->arch_text = prop.gcnArchName;
#else
  id->arch = prop.major * 10 + prop.minor;
  id->arch_text = "sm_" + std::to_string(id->arch);
#endif
  id->units = prop.multiProcessorCount;
  id->l2_bytes = prop.l2CacheSize;
  id->warp = prop.warpSize;
  // reported only: a failing query leaves 0 ("unknown") and clears the runtime's error
  if (gpuDeviceGetAttribute(&id->mem_khz, gpuDevAttrMemoryClockRate, dev) != gpuSuccess) {
    id->mem_khz = 0;
    (void)gpuGetLastError();
  }
  if (gpuDeviceGetAttribute(&id->bus_bits, gpuDevAttrMemoryBusWidth, dev) != gpuSuccess) {
    id->bus_bits = 0;
    (void)gpuGetLastError();
  }
  if (gpuDriverGetVersion(&id->driver) != gpuSuccess) {
    id->driver = 0;
    (void)gpuGetLastError();
  }
  if (gpuRuntimeGetVersion(&id->runtime) != gpuSuccess) {
    id->runtime = 0;
    (void)gpuGetLastError();
  }
  return gpuSuccess;
}

}  // namespace bench
