// A fake GPU vendor for the host tests of the shared GPU layer (tests/gpu_host/): the HIP backend's
// host code (src/gpu/gpu_backend.cu) and its table (src/hip/hip_table.cpp) built as plain C++ over
// fake devices whose properties the test sets (gfx942, gfx950, gfx90a ...), fake device memory (host
// memory the fake runtime calls device memory) and a launch that records what it was asked and
// runs the kernel bodies (src/gpu/pack_kernels.cuh) on the host, block by block, thread by thread,
// so their bytes can be compared with the reference backend's. Selected by
// -DMLAKV_GPU_VENDOR_HEADER="fake_vendor.h" (src/gpu/vendor.h).
#pragma once
#include <math.h>  // fabsf, as device code has it
#include <stdint.h>
#include <string.h>

#include <mutex>
#include <string>
#include <vector>

#include "core/fp8.h"
#include "mlakv/mlakv.h"

// ---- what the kernels see of a GPU: launch geometry and vector types
struct dim3 {
  unsigned x, y, z;
  dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
struct uint2 { uint32_t x, y; };
struct uint4 { uint32_t x, y, z, w; };
inline uint2 make_uint2(uint32_t x, uint32_t y) { return uint2{x, y}; }
inline uint4 make_uint4(uint32_t x, uint32_t y, uint32_t z, uint32_t w) { return uint4{x, y, z, w}; }
inline thread_local dim3 blockIdx, threadIdx, blockDim, gridDim;
#define __global__

#define MLAKV_DEVICE inline
#define MLAKV_BOUNDS_1024X2
#define MLAKV_GPU_BACKEND_ENTRY hip_backend

#include "gpu/vendors/gfx_arch.h"
#include "gpu/vendors/plain.h"

namespace mlakv {
namespace vendor {
inline void grid_dependency_wait() {}
inline void launch_dependents() {}
inline float half_bits_to_float(uint16_t h) { return fp16_to_f32(h); }
template <Fp8Format F>
inline uint32_t encode2(float lo, float hi) {
  return uint32_t(encode_fp8<F>(lo)) | (uint32_t(encode_fp8<F>(hi)) << 8);
}
inline Wide32 load32(const void* p) { return load32_pair(p); }
inline void store16(void* p, uint4 v, bool) { memcpy(p, &v, 16); }
inline void store8(void* p, uint2 v, bool) { memcpy(p, &v, 8); }
inline void store4(void* p, uint32_t v, bool) { memcpy(p, &v, 4); }
inline void store2(void* p, uint16_t v, bool) { memcpy(p, &v, 2); }
inline uint32_t umulhi(uint32_t a, uint32_t b) { return uint32_t((uint64_t(a) * b) >> 32); }
// amax: threads run one at a time, so no two lanes combine (a group of one lane: every thread
// commits its own maxima: a read, then the int32 maximum written back)
constexpr int kLanes = 1;
inline int lane() { return 0; }
template <int G>
inline uint32_t group_max(uint32_t v) { return v; }
inline uint32_t shfl_down(uint32_t v, int) { return v; }
inline uint32_t shfl_up(uint32_t v, int) { return v; }
inline int32_t amax_read(const float* p) {
  int32_t v;
  memcpy(&v, p, 4);
  return v;
}
// the device's fmaxf on magnitudes: a NaN operand gives the other one, two NaN give NaN (so a
// body that lets a NaN through to a commit fails here as on the GPU)
inline float amax_join(float a, float b) {
  if (a != a) return b;
  if (b != b) return a;
  return a > b ? a : b;
}
inline int32_t amax_read_l2(const float* p) { return amax_read(p); }
inline bool block_leader() { return true; }                  // a block of one thread, as for the warps:
inline bool block_max2(uint32_t*, uint32_t*) { return true; }  // every thread commits its own maxima
inline void amax_max(float* p, int32_t v) {
  int32_t old;
  memcpy(&old, p, 4);
  if (v > old) memcpy(p, &v, 4);
}
}  // namespace vendor

// ---- the fake runtime's state, set by the tests
namespace fake {
struct Device {
  int arch;                  // the tables' number (gfx942 -> 942)
  int units;                 // compute units
  std::string name;
  int max_threads = 1024;    // what every kernel's attributes report on this device
  int64_t l2_mib = 256;      // last-level cache
};
struct Launch {
  const void* fn;
  dim3 grid, block;
  void* stream;
  int device;
};
struct State {
  std::mutex mu;
  std::vector<Device> devices;
  std::vector<std::pair<uintptr_t, uintptr_t>> memory;  // fake device allocations [begin, end)
  std::vector<Launch> launches;
  bool run_kernels = true;
  int fail_launches = 0;  // the next n launches fail
  std::vector<std::pair<const void*, int>> kernel_max_threads;  // kernels with a lower limit than their device's
};
inline State& state() {
  static State s;
  return s;
}
inline thread_local int t_current = 0;  // the calling thread's current device
}  // namespace fake

namespace gpu {
namespace rt {

constexpr mlakv_backend kBackend = MLAKV_BACKEND_HIP;
constexpr const char* kName = "hip";
using Status = int;
constexpr Status kOk = 0;
constexpr Status kErrNoDevice = 100, kErrInvalidDevice = 101, kErrLaunch = 102;

inline const char* error_string(Status e) {
  return e == kErrNoDevice ? "no device" : e == kErrInvalidDevice ? "invalid device" : "launch failure (fake)";
}
inline void clear_error() {}
inline Status device_count(int* n) {
  *n = int(fake::state().devices.size());
  return *n ? kOk : kErrNoDevice;
}
inline Status get_device(int* d) {
  *d = fake::t_current;
  return kOk;
}
inline Status set_device(int d) {
  if (d < 0 || d >= int(fake::state().devices.size())) return kErrInvalidDevice;
  fake::t_current = d;
  return kOk;
}

struct DeviceProps {
  int arch = 0, units = 0;
  int64_t l2_bytes = 0;
  std::string name;
};
inline Status device_props(int dev, DeviceProps* p) {
  if (dev < 0 || dev >= int(fake::state().devices.size())) return kErrInvalidDevice;
  const fake::Device& d = fake::state().devices[size_t(dev)];
  p->arch = d.arch;
  p->units = d.units;
  p->l2_bytes = d.l2_mib << 20;
  p->name = d.name;
  return kOk;
}
inline Status kernel_limits(const void* fn, int* max_threads, int* image_arch) {
  *max_threads = fake::state().devices[size_t(fake::t_current)].max_threads;
  for (const auto& k : fake::state().kernel_max_threads)
    if (k.first == fn && k.second < *max_threads) *max_threads = k.second;
  *image_arch = 0;
  return kOk;
}

constexpr bool kHasPdl = false;
inline bool pdl_capable(int, int) { return false; }

// Records the launch, then runs the kernel on the host: every thread of every block in turn (the
// kernels share nothing between threads, so the order does not matter).
template <class P>
Status launch(void (*fn)(P), dim3 grid, dim3 block, const P& params, void* stream, bool) {
  fake::State& s = fake::state();
  {
    std::lock_guard<std::mutex> lock(s.mu);
    if (s.fail_launches > 0) {
      --s.fail_launches;
      return kErrLaunch;
    }
    s.launches.push_back({reinterpret_cast<const void*>(fn), grid, block, stream, fake::t_current});
  }
  if (!s.run_kernels) return kOk;
  gridDim = grid;
  blockDim = block;
  for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
      for (unsigned bx = 0; bx < grid.x; ++bx)
        for (unsigned tz = 0; tz < block.z; ++tz)
          for (unsigned ty = 0; ty < block.y; ++ty)
            for (unsigned tx = 0; tx < block.x; ++tx) {
              blockIdx = dim3(bx, by, bz);
              threadIdx = dim3(tx, ty, tz);
              fn(params);
            }
  return kOk;
}

enum class Where { Reachable, HostOnly, OtherDevice, Unknown };
inline Where classify(const void* ptr, int /*device: fake memory is every fake device's*/, uintptr_t* begin,
                      size_t* size) {
  const uintptr_t p = reinterpret_cast<uintptr_t>(ptr);
  std::lock_guard<std::mutex> lock(fake::state().mu);
  for (const auto& r : fake::state().memory)
    if (r.first <= p && p < r.second) {
      *begin = r.first;
      *size = size_t(r.second - r.first);
      return Where::Reachable;
    }
  *size = 0;
  return Where::HostOnly;
}
inline bool is_device_only(const void* ptr) {
  uintptr_t b = 0;
  size_t n = 0;
  return classify(ptr, 0, &b, &n) == Where::Reachable;
}

}  // namespace rt
}  // namespace gpu
}  // namespace mlakv
