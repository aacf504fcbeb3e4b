// The CUDA backend: device probing and per-device caches, the memory check, the plan (table row ->
// kernel + launch configuration) and the launch. The launch path allocates nothing, never
// synchronises and never reads device memory, so it can be captured into a CUDA graph.
#include <cuda_runtime.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <new>
#include <string>

#include "core/backend.h"
#include "cuda/cuda_internal.h"
#include "cuda/vendor.cuh"
#include "kernels/pack_kernels.cuh"

namespace mlakv {
namespace cuda {
namespace {

using kern::Dims;
using kern::Params;
using KernelFn = void (*)(Params);

// ---- kernel instances: [variant][input type][format][dims][unroll 1/2/4]; general ignores the last
// two; the split-k_pe and wide layouts (DS16S, DS32S, DS8W) exist with unroll 1 and 2 only
// (nullptr for 4)
constexpr int kUnrolls[3] = {1, 2, 4};
constexpr int kDims = kern::kDimsCount;

template <InType T, Fp8Format F, Dims D, int U>
struct FlatK { static constexpr KernelFn fn = kern::pack_flat<T, F, D, U>; };
template <InType T, Fp8Format F, Dims D, int U>
struct PersistK { static constexpr KernelFn fn = kern::pack_persist<T, F, D, U>; };
template <InType T, Fp8Format F, Dims D, int U>
struct Tile2dK { static constexpr KernelFn fn = kern::pack_tile2d<T, F, D, U>; };
template <InType T, Fp8Format F, Dims D, int U>
struct GeneralK { static constexpr KernelFn fn = kern::pack_general<T, F>; };

struct KernelTable {
  KernelFn k[kVariantCount][3][4][kDims][3];
  KernelTable() {
    fill<FlatK>(kFlat);
    fill<PersistK>(kPersist);
    fill<Tile2dK>(kTile2d);
    fill<GeneralK>(kGeneral);
  }
  template <template <InType, Fp8Format, Dims, int> class K>
  void fill(int v) {
    fill_t<K, InType::BF16>(k[v][0]);
    fill_t<K, InType::FP16>(k[v][1]);
    fill_t<K, InType::FP32>(k[v][2]);
  }
  template <template <InType, Fp8Format, Dims, int> class K, InType T>
  void fill_t(KernelFn (&o)[4][kDims][3]) {
    fill_f<K, T, Fp8Format::E4M3FN>(o[0]);
    fill_f<K, T, Fp8Format::E5M2>(o[1]);
    fill_f<K, T, Fp8Format::E4M3FNUZ>(o[2]);
    fill_f<K, T, Fp8Format::E5M2FNUZ>(o[3]);
  }
  template <template <InType, Fp8Format, Dims, int> class K, InType T, Fp8Format F>
  void fill_f(KernelFn (&o)[kDims][3]) {
    fill_d<K, T, F, Dims::DS16, true>(o[int(Dims::DS16)]);
    fill_d<K, T, F, Dims::DS8, true>(o[int(Dims::DS8)]);
    fill_d<K, T, F, Dims::V8, true>(o[int(Dims::V8)]);
    fill_d<K, T, F, Dims::DS16S, false>(o[int(Dims::DS16S)]);
    fill_d<K, T, F, Dims::DS32S, false>(o[int(Dims::DS32S)]);
    fill_d<K, T, F, Dims::DS8W, false>(o[int(Dims::DS8W)]);
  }
  template <template <InType, Fp8Format, Dims, int> class K, InType T, Fp8Format F, Dims D, bool U4>
  void fill_d(KernelFn (&o)[3]) {
    o[0] = K<T, F, D, 1>::fn;
    o[1] = K<T, F, D, 2>::fn;
    if constexpr (U4) o[2] = K<T, F, D, 4>::fn;
    else o[2] = nullptr;
  }
};

const KernelTable& kernels() {
  static const KernelTable t;
  return t;
}

// ---- process-wide and per-device caches, filled once each, thread-safely
struct Global {
  bool ok = false;
  int count = 0;
  std::string detail;
};
const Global& global() {
  static const Global g = [] {
    Global r;
    cudaError_t e = cudaGetDeviceCount(&r.count);
    if (e != cudaSuccess || r.count <= 0) {
      cudaGetLastError();
      r.count = 0;
      r.detail = std::string("no CUDA device: ") + (e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
      return r;
    }
    r.ok = true;
    r.detail = std::to_string(r.count) + " device(s):";
    for (int d = 0; d < r.count && d < 8; ++d) {
      cudaDeviceProp prop;
      if (cudaGetDeviceProperties(&prop, d) == cudaSuccess)
        r.detail += std::string(" ") + prop.name + " (sm_" + std::to_string(prop.major * 10 + prop.minor) + ")";
    }
    return r;
  }();
  return g;
}

constexpr int kMaxDevices = 64;
constexpr int kKernelSlots = kVariantCount * 3 * 4 * kDims * 3;
struct DeviceInfo {
  std::once_flag once;
  std::atomic<bool> done{false};  // set after `once` ran: the per-call path is one acquire load
  std::atomic<int> max_threads[kKernelSlots];  // per kernel: 0 = not asked yet
  bool ok = false;
  int arch = 0;        // SM version major*10+minor
  int sms = 0;
  int image_arch = 0;  // the arch of the code the driver loaded for our kernels (PDL needs >= 90)
};
DeviceInfo g_devices[kMaxDevices];

DeviceInfo* device_info(int dev) {
  if (dev < 0 || dev >= kMaxDevices || dev >= global().count) return nullptr;
  DeviceInfo& d = g_devices[dev];
  if (d.done.load(std::memory_order_acquire)) return d.ok ? &d : nullptr;
  std::call_once(d.once, [&] {
    int major = 0, minor = 0, sms = 0;
    if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) {
      cudaGetLastError();
      return;
    }
    int prev = 0;
    cudaGetDevice(&prev);
    cudaSetDevice(dev);
    cudaFuncAttributes fa;
    const cudaError_t e = cudaFuncGetAttributes(&fa, kernels().k[kFlat][0][0][0][0]);
    cudaSetDevice(prev);
    if (e != cudaSuccess) {  // no image for this arch in the fat binary
      cudaGetLastError();
      return;
    }
    d.arch = major * 10 + minor;
    d.sms = sms;
    d.image_arch = fa.binaryVersion;
    d.ok = true;
  });
  d.done.store(true, std::memory_order_release);
  return d.ok ? &d : nullptr;
}

// ---- Backend functions
bool probe(int* count, const char** detail) {
  const Global& g = global();
  *count = g.count;
  *detail = g.detail.c_str();
  return g.ok;
}

Dims best_dims(const PackProblem& p, const LaunchConfig& cfg, bool* any) {
  *any = true;
  if (dims_req_holds(DimsReq::DeepSeek, p)) {
    if (cfg.lanes == 8) return cfg.wide && wide_units_hold(p) ? Dims::DS8W : Dims::DS8;
    if (cfg.lanes == 32) return Dims::DS32S;
    return cfg.split ? Dims::DS16S : Dims::DS16;
  }
  if (dims_req_holds(DimsReq::X8, p)) return Dims::V8;
  *any = false;
  return Dims::V8;
}

const char* dims_name(Dims d) {
  static const char* names[kDims] = {"ds16", "ds8", "x8", "ds16s", "ds32s", "ds8w"};
  return names[int(d)];
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The most threads a block of this kernel can have on device dev (registers decide), asked once
// per device and kernel with dev current (the caller's current device is restored). 0: dev could
// not be made current.
int max_threads(DeviceInfo* d, int dev, int slot, KernelFn fn) {
  int m = d->max_threads[slot].load(std::memory_order_relaxed);
  if (m) return m;
  int prev = -1;
  if (cudaGetDevice(&prev) != cudaSuccess) prev = -1;
  if (prev != dev && cudaSetDevice(dev) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  cudaFuncAttributes fa;
  m = cudaFuncGetAttributes(&fa, fn) == cudaSuccess ? fa.maxThreadsPerBlock : 256;
  cudaGetLastError();
  if (prev >= 0 && prev != dev) cudaSetDevice(prev);
  d->max_threads[slot].store(m, std::memory_order_relaxed);
  return m;
}

// Everything pack() needs, computed once per distinct call.
struct Launch {
  KernelFn fn;
  dim3 grid, block;
  Params P;
};
static_assert(sizeof(Launch) <= sizeof(Plan::launch), "Plan::launch too small");

// The fields of Params that change when only the call's buffers or scales do.
void set_pointers(const PackProblem& p, Params* P) {
  P->k_nope = static_cast<const char*>(p.k_nope);
  P->k_pe = static_cast<const char*>(p.k_pe);
  P->v = static_cast<const char*>(p.v);
  P->k_out = static_cast<uint8_t*>(p.k_out);
  P->v_out = static_cast<uint8_t*>(p.v_out);
  P->k_scale_ptr = p.k_scale_ptr; P->v_scale_ptr = p.v_scale_ptr;
  P->k_scale = p.k_scale; P->v_scale = p.v_scale;
}

void rebind(const PackProblem& p, Plan* plan) { set_pointers(p, &reinterpret_cast<Launch*>(plan->launch)->P); }

mlakv_status plan(const PackProblem& p, Plan* out, std::string* why) {
  DeviceInfo* d = device_info(p.device);
  if (!d) {
    *why = "CUDA device " + std::to_string(p.device) + " does not exist or has no kernel image in this build";
    return MLAKV_ERR_DEVICE;
  }
  out->arch = d->arch;
  out->pdl = p.pdl != MLAKV_PDL_OFF && d->arch >= 90 && d->image_arch >= 90;
  out->row = table()->select(d->arch, p);
  out->fallback = DispatchRow();
  out->fallback.variant = kGeneral;
  out->fallback.cfg.threads = 256;
  out->fallback.note = "general path";
  const DispatchRow& row = out->chosen();
  int variant = row.variant;
  const LaunchConfig& cfg = row.cfg;
  bool vec_ok = false;
  const Dims dims = best_dims(p, cfg, &vec_ok);
  const int64_t un = p.d_nope / 8, ur = p.d_rope / 8, uv = p.d_v / 8;
  const int64_t lanes = kern::is_ds(dims) ? kern::ds_lanes(dims)
                                           : (un > uv ? (un > ur ? un : ur) : (uv > ur ? uv : ur));
  const int64_t pairs = p.rows() * lanes;
  // vector variants need dims multiple of 8 (aligned) and 32-bit pair indices; tile2d needs h
  // within grid.y and the token blocks within grid.x
  if (variant != kGeneral && (!vec_ok || pairs >= (int64_t(1) << 31))) variant = kGeneral;
  if (variant == kTile2d && (p.h > 65535 || ceil_div(p.s, cfg.block < 1 ? 1 : cfg.block) > INT32_MAX))
    variant = kGeneral;
  int ui = cfg.unroll >= 4 ? 2 : (cfg.unroll >= 2 ? 1 : 0);
  if (!kernels().k[variant][int(p.in_type)][int(p.out_format)][int(dims)][ui]) ui = 1;  // no unroll 4 here
  const int unroll = kUnrolls[ui];

  Params P;
  set_pointers(p, &P);
  P.kn_st = p.k_nope_st; P.kn_sh = p.k_nope_sh; P.kp_st = p.k_pe_st;
  P.v_st = p.v_st; P.v_sh = p.v_sh;
  P.ko_st = p.k_out_st; P.ko_sh = p.k_out_sh; P.vo_st = p.v_out_st; P.vo_sh = p.v_out_sh;
  P.pairs = variant == kGeneral ? 0u : uint32_t(pairs);
  P.h = int32_t(p.h);
  P.lanes = int32_t(lanes); P.un = int32_t(un); P.ur = int32_t(ur); P.uv = int32_t(uv);
  if (variant != kGeneral) {
    P.div_h = kern::FastDiv::make(uint32_t(p.h));
    P.div_l = kern::FastDiv::make(uint32_t(lanes));
  }
  P.block = cfg.block < 1 ? 1 : cfg.block;
  P.early = cfg.early;
  P.stream = cfg.stream;
  P.s = p.s;
  P.d_nope = int32_t(p.d_nope); P.d_rope = int32_t(p.d_rope); P.d_v = int32_t(p.d_v);

  const int slot = (((variant * 3 + int(p.in_type)) * 4 + int(p.out_format)) * kDims + int(dims)) * 3 + ui;
  const KernelFn fn = kernels().k[variant][int(p.in_type)][int(p.out_format)][int(dims)][ui];
  // a table may ask for more threads than this kernel's registers allow: clamp (multiple of 32)
  const int cap_all = max_threads(d, p.device, slot, fn);
  if (!cap_all) {
    *why = "cudaSetDevice(" + std::to_string(p.device) + ") failed";
    return MLAKV_ERR_DEVICE;
  }
  const int cap = cap_all & ~31;
  const int threads = cfg.threads < cap ? cfg.threads : cap;
  dim3 grid(1, 1, 1);
  const int64_t per_block = int64_t(threads) * unroll;
  switch (variant) {
    case kFlat: grid.x = unsigned(ceil_div(pairs, per_block)); break;
    case kPersist: {
      const int64_t need = ceil_div(pairs, per_block);
      const int64_t cap = int64_t(d->sms) * (cfg.waves > 0 ? cfg.waves : 1);
      grid.x = unsigned(need < cap ? need : cap);
      break;
    }
    case kTile2d: grid = dim3(unsigned(ceil_div(p.s, P.block)), unsigned(p.h), 1); break;
    default: {
      const int64_t total = p.rows() * (p.d_nope + p.d_rope + p.d_v);
      const int64_t cap = int64_t(d->sms) * 8;
      const int64_t need = ceil_div(total, threads);
      grid = dim3(unsigned(need < cap ? need : cap), 1, 1);
    }
  }
  out->variant = variant;
  out->units = variant == kGeneral ? nullptr : dims_name(dims);
  Launch* L = new (out->launch) Launch;
  L->fn = fn;
  L->grid = grid;
  L->block = dim3(unsigned(threads), 1, 1);
  L->P = P;
  return MLAKV_OK;
}

mlakv_status pack(const PackProblem& p, const Plan& plan, std::string* why) {
  const Launch& L = *reinterpret_cast<const Launch*>(plan.launch);
  cudaLaunchConfig_t lc;
  std::memset(&lc, 0, sizeof lc);
  lc.gridDim = L.grid;
  lc.blockDim = L.block;
  lc.stream = static_cast<cudaStream_t>(p.stream);
  cudaLaunchAttribute attr[1];
  if (plan.pdl) {
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    lc.attrs = attr;
    lc.numAttrs = 1;
  }
  // launch on p.device, restoring the caller's device (of this library's runtime) afterwards
  int prev = -1;
  if (cudaGetDevice(&prev) != cudaSuccess) prev = -1;
  if (prev != p.device && cudaSetDevice(p.device) != cudaSuccess) {
    cudaGetLastError();
    *why = "cudaSetDevice(" + std::to_string(p.device) + ") failed";
    return MLAKV_ERR_DEVICE;
  }
  const cudaError_t e = cudaLaunchKernelEx(&lc, L.fn, L.P);
  if (prev >= 0 && prev != p.device) cudaSetDevice(prev);
  if (e != cudaSuccess) {
    cudaGetLastError();
    *why = std::string("cudaLaunchKernelEx: ") + cudaGetErrorString(e);
    return MLAKV_ERR_LAUNCH;
  }
  return MLAKV_OK;
}

}  // namespace

}  // namespace cuda

const Backend& cuda_backend() {
  static const Backend b = {MLAKV_BACKEND_CUDA, "cuda", true, cuda::probe, cuda::check_memory,
                            cuda::plan, cuda::pack, cuda::table(), cuda::is_device_only,
                            cuda::rebind};
  return b;
}

}  // namespace mlakv
