// Where the CUDA backend's pointers live. Each tensor's whole byte span must lie inside one
// device-accessible allocation (device, managed, or host memory registered and mapped), asked of
// the driver (cuPointerGetAttributes: memory type and the allocation's address range). Verified
// ranges are remembered per thread (16 most recent), so a steady stream of calls on the same
// buffers costs a few compares per pointer instead of a driver call.
//
// The cache trades a residual risk for speed: a range verified as device memory, then freed and
// reused by the driver for something host-only, would be accepted until it leaves the cache.
// Callers who want no checks at all set MLAKV_FLAG_TRUST_POINTERS.
#include <cuda.h>
#include <cuda_runtime.h>

#include <mutex>
#include <string>

#include "core/backend.h"
#include "cuda/cuda_internal.h"

namespace mlakv {
namespace cuda {
namespace {

using PointerGetAttributes = CUresult (*)(unsigned, CUpointer_attribute*, void**, CUdeviceptr);

PointerGetAttributes driver_fn() {
  static PointerGetAttributes fn = [] {
    void* p = nullptr;
    cudaDriverEntryPointQueryResult q;
    if (cudaGetDriverEntryPointByVersion("cuPointerGetAttributes", &p, 12000, cudaEnableDefault, &q) != cudaSuccess ||
        q != cudaDriverEntryPointSuccess)
      p = nullptr;
    cudaGetLastError();
    return reinterpret_cast<PointerGetAttributes>(p);
  }();
  return fn;
}

struct Range {
  uintptr_t begin = 0, end = 0;  // a verified device-accessible allocation
};
constexpr int kCache = 16;
struct RangeCache {
  Range r[kCache];
  unsigned next = 0;
};
thread_local RangeCache t_cache;  // looked up once per call: TLS access is not free in a .so

enum class Where { Reachable, HostOnly, Unknown };

// Classifies [p, p + bytes) and remembers reachable ranges.
Where classify(RangeCache& cache, const void* p, int64_t bytes, bool* inside) {
  const uintptr_t b = reinterpret_cast<uintptr_t>(p), e = b + uint64_t(bytes);
  for (Range& r : cache.r)
    if (r.begin <= b && b < r.end) {
      if (e <= r.end) {
        *inside = true;
        return Where::Reachable;
      }
      r = Range();  // stale (freed and reallocated larger?): ask the driver again
      break;
    }
  PointerGetAttributes fn = driver_fn();
  if (!fn) return Where::Unknown;
  unsigned type = 0;
  CUdeviceptr devptr = 0, start = 0;
  size_t size = 0;
  CUpointer_attribute attrs[] = {CU_POINTER_ATTRIBUTE_MEMORY_TYPE, CU_POINTER_ATTRIBUTE_DEVICE_POINTER,
                                 CU_POINTER_ATTRIBUTE_RANGE_START_ADDR, CU_POINTER_ATTRIBUTE_RANGE_SIZE};
  void* out[] = {&type, &devptr, &start, &size};
  if (fn(4, attrs, out, CUdeviceptr(b)) != CUDA_SUCCESS) return Where::Unknown;
  if (type == 0) return Where::HostOnly;  // not known to CUDA: plain host memory
  const bool reachable = type == CU_MEMORYTYPE_DEVICE || type == CU_MEMORYTYPE_UNIFIED ||
                         (type == CU_MEMORYTYPE_HOST && devptr == CUdeviceptr(b));
  if (!reachable) return type == CU_MEMORYTYPE_HOST ? Where::HostOnly : Where::Unknown;
  if (size) {
    Range& slot = cache.r[cache.next++ % kCache];
    slot.begin = uintptr_t(start);
    slot.end = uintptr_t(start) + size;
    *inside = e <= slot.end;
  } else {
    *inside = true;
  }
  return Where::Reachable;
}

}  // namespace

mlakv_status check_memory(const PackProblem& p, uint32_t skip, std::string* why) {
  RangeCache* cache = nullptr;  // looked up only when a pointer must be asked about
  for (int i = 0; i < kOperandCount; ++i) {
    const Operand& o = p.op[i];
    if (!o.ptr || (skip >> i & 1)) continue;
    if (!cache) cache = &t_cache;
    const char* name = kOperandNames[i];
    bool inside = true;
    switch (classify(*cache, o.ptr, o.bytes, &inside)) {
      case Where::Reachable:
        if (!inside) {
          *why = std::string(name) + ": its " + std::to_string(o.bytes) +
                 " bytes (shape and strides) run past the end of its CUDA allocation";
          return MLAKV_ERR_MEMORY_SPACE;
        }
        continue;
      case Where::HostOnly:
        *why = std::string(name) + " is host memory the GPU cannot reach (register and map it, or use device memory)";
        return MLAKV_ERR_MEMORY_SPACE;
      case Where::Unknown:
        *why = std::string(name) + ": the CUDA driver does not know this pointer";
        return MLAKV_ERR_MEMORY_SPACE;
    }
  }
  return MLAKV_OK;
}

bool is_device_only(const void* ptr) {
  PointerGetAttributes fn = driver_fn();
  if (!fn) return false;
  unsigned type = 0;
  CUpointer_attribute a = CU_POINTER_ATTRIBUTE_MEMORY_TYPE;
  void* out = &type;
  if (fn(1, &a, &out, CUdeviceptr(reinterpret_cast<uintptr_t>(ptr))) != CUDA_SUCCESS) return false;
  return type == CU_MEMORYTYPE_DEVICE;
}

}  // namespace cuda
}  // namespace mlakv
