// The reference backend: Kokkos on the host. It is the oracle every other backend is compared
// with byte for byte, and the CPU fallback, so its fast path is written to vectorise.
//
// Its variants and dispatch table: reference_table.h / reference_table.cpp.
#include <Kokkos_Core.hpp>
#include <cstring>
#if defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>
#endif
#include <atomic>
#include <cstdio>
#include <algorithm>
#include <mutex>
#include <vector>
#include <string>

#include "core/backend.h"
#include "core/fp8.h"
#include "reference/reference_table.h"
#include "reference/row_kernels.h"

namespace mlakv {
namespace {

using reference::kStrided;
using reference::kVector;

// ---- Kokkos lifetime. mlakv initialises Kokkos on first use if the host application has not, and
// never finalises it: the process may call mlakv until its end (atexit handlers, static destructors
// of other libraries). An application that finalises Kokkos itself ends the reference backend: its
// calls then fail with MLAKV_ERR_BACKEND_UNAVAILABLE (running Kokkos after finalize is undefined).
// Every string here is static storage that is never destroyed.
std::once_flag g_init_once;
std::atomic<bool> g_kokkos_ok{false};
char g_detail[160] = "Kokkos (host)";
constexpr const char* kFinalized =
    "Kokkos was finalised by the application (Kokkos::finalize()); the reference backend cannot run after it";

void set_detail(const char* who) {
  std::snprintf(g_detail, sizeof g_detail, "Kokkos %d.%d.%d, %s (%s), %s row loops", KOKKOS_VERSION / 10000,
                KOKKOS_VERSION / 100 % 100, KOKKOS_VERSION % 100, Kokkos::DefaultHostExecutionSpace::name(), who,
                row_kernels_name());
}

// Whether Kokkos can run now; *why: the reason when not.
bool ensure_kokkos(const char** why) {
  std::call_once(g_init_once, [] {
    if (Kokkos::is_initialized()) {
      set_detail("initialised by the application");
      g_kokkos_ok.store(true);
      return;
    }
#if defined(KOKKOS_VERSION) && KOKKOS_VERSION >= 30700
    if (Kokkos::is_finalized()) {
      std::snprintf(g_detail, sizeof g_detail, "%s", kFinalized);
      return;
    }
    Kokkos::initialize(Kokkos::InitializationSettings().set_disable_warnings(true));
#else
    Kokkos::InitArguments args;
    args.disable_warnings = true;
    Kokkos::initialize(args);
#endif
    set_detail("initialised by mlakv");
    g_kokkos_ok.store(true);
  });
  if (!g_kokkos_ok.load(std::memory_order_acquire)) {
    *why = g_detail;
    return false;
  }
  if (!Kokkos::is_initialized()) {  // finalised since (only the application does that)
    *why = kFinalized;
    return false;
  }
  return true;
}

// The numerics forbid flushing subnormals: a host application built with fast-math may have set
// FTZ/DAZ in MXCSR, so each worker clears them for the duration of its chunk.
struct ExactFloatMode {
#if defined(__x86_64__) || defined(_M_X64)
  unsigned saved = _mm_getcsr();
  ExactFloatMode() { _mm_setcsr(saved & ~0x8040u); }  // clear FTZ (bit 15) and DAZ (bit 6)
  ~ExactFloatMode() { _mm_setcsr(saved); }
#endif
};

// The call's multipliers: one per tensor, or h per head (read from the caller's arrays).
struct Scales {
  std::vector<float> k, v;
  Scales(const PackProblem& p) : k(p.per_head ? size_t(p.h) : 1), v(k.size()) {
    read(p.scale_ptr(kKScaleInv), p.k_scale_inv, &k);
    read(p.scale_ptr(kVScaleInv), p.v_scale_inv, &v);
  }
  static void read(const float* ptr, float value, std::vector<float>* out) {
    if (ptr) std::memcpy(out->data(), ptr, out->size() * sizeof(float));
    else (*out)[0] = value;
  }
};

// The call's five tensors as typed pointers with their element strides, copied into the loops.
template <InType T>
struct Tensors {
  using R = typename HostIn<T>::raw;
  const R *kn, *kp, *vv;
  uint8_t *ko, *vo;
  int64_t kn_t, kn_h, kp_t, v_t, v_h, ko_t, ko_h, vo_t, vo_h;
  explicit Tensors(const PackProblem& p)
      : kn(static_cast<const R*>(p.in(kKNope))), kp(static_cast<const R*>(p.in(kKPe))),
        vv(static_cast<const R*>(p.in(kV))), ko(static_cast<uint8_t*>(p.out(kKOut))),
        vo(static_cast<uint8_t*>(p.out(kVOut))), kn_t(p.op[kKNope].st), kn_h(p.op[kKNope].sh),
        kp_t(p.op[kKPe].st), v_t(p.op[kV].st), v_h(p.op[kV].sh), ko_t(p.op[kKOut].st),
        ko_h(p.op[kKOut].sh), vo_t(p.op[kVOut].st), vo_h(p.op[kVOut].sh) {}
};

template <InType T>
void run_vector(const PackProblem& p, const Scales& sc) {
  const RowKernel enc = row_kernels().k[int(T)][int(p.out_format)];
  const Tensors<T> x(p);
  const int64_t h = p.h, dn = p.d_nope, dr = p.d_rope, dv = p.d_v;
  const float* ks = sc.k.data();
  const float* vs = sc.v.data();
  const bool per_head = p.per_head;
  Kokkos::parallel_for(
      "mlakv_reference_vector", Kokkos::RangePolicy<Kokkos::DefaultHostExecutionSpace>(0, p.s),
      [=](const int64_t t) {
        ExactFloatMode exact;
        // per tensor, k_pe is encoded once per token, then copied to every head
        uint8_t* ko0 = x.ko + t * x.ko_t;
        enc(x.kp + t * x.kp_t, ko0 + dn, dr, ks[0]);
        for (int64_t hh = 0; hh < h; ++hh) {
          const int64_t j = per_head ? hh : 0;
          uint8_t* krow = ko0 + hh * x.ko_h;
          enc(x.kn + t * x.kn_t + hh * x.kn_h, krow, dn, ks[j]);
          if (per_head) {
            if (hh) enc(x.kp + t * x.kp_t, krow + dn, dr, ks[j]);
          } else if (hh) {
            std::memcpy(krow + dn, ko0 + dn, size_t(dr));
          }
          enc(x.vv + t * x.v_t + hh * x.v_h, x.vo + t * x.vo_t + hh * x.vo_h, dv, vs[j]);
        }
      });
}

// Element by element, format chosen per call at run time.
template <InType T>
void run_strided(const PackProblem& p, const Scales& sc) {
  const Tensors<T> x(p);
  const int64_t h = p.h, dn = p.d_nope, dr = p.d_rope, dv = p.d_v;
  const Fp8Format f = p.out_format;
  const float* ks = sc.k.data();
  const float* vs = sc.v.data();
  const bool per_head = p.per_head;
  Kokkos::parallel_for(
      "mlakv_reference_strided", Kokkos::RangePolicy<Kokkos::DefaultHostExecutionSpace>(0, p.s),
      [=](const int64_t t) {
        ExactFloatMode exact;
        auto q = [&](auto raw, float m) { return encode_fp8(scale_mul(HostIn<T>::widen(raw), m), f); };
        for (int64_t hh = 0; hh < h; ++hh) {
          const float km = ks[per_head ? hh : 0], vm = vs[per_head ? hh : 0];
          uint8_t* krow = x.ko + t * x.ko_t + hh * x.ko_h;
          uint8_t* vrow = x.vo + t * x.vo_t + hh * x.vo_h;
          for (int64_t i = 0; i < dn; ++i) krow[i] = q(x.kn[t * x.kn_t + hh * x.kn_h + i], km);
          for (int64_t i = 0; i < dr; ++i) krow[dn + i] = q(x.kp[t * x.kp_t + i], km);
          for (int64_t i = 0; i < dv; ++i) vrow[i] = q(x.vv[t * x.v_t + hh * x.v_h + i], vm);
        }
      });
}

// The amax of the call (mlakv.h): per head j, the int32 maximum of amax_bits over head j's k_nope
// rows and all of k_pe (for K), head j's v rows (for V), one head per Kokkos iteration; per tensor,
// the maximum over heads. Then combined with the stored values.
template <InType T>
void run_amax(const PackProblem& p) {
  const Tensors<T> x(p);
  const int64_t s = p.s, h = p.h, dn = p.d_nope, dr = p.d_rope, dv = p.d_v;
  std::vector<int32_t> km(size_t(h), 0), vm(size_t(h), 0);
  int32_t* kmp = km.data();
  int32_t* vmp = vm.data();
  const bool want_k = p.amax(kKAmax) != nullptr, want_v = p.amax(kVAmax) != nullptr;
  int32_t pe = 0;  // k_pe counts for every head
  if (want_k)
    for (int64_t t = 0; t < s; ++t)
      for (int64_t i = 0; i < dr; ++i) pe = std::max(pe, amax_bits(HostIn<T>::widen(x.kp[t * x.kp_t + i])));
  Kokkos::parallel_for(
      "mlakv_reference_amax", Kokkos::RangePolicy<Kokkos::DefaultHostExecutionSpace>(0, h), [=](const int64_t hh) {
        int32_t k = pe, v = 0;
        for (int64_t t = 0; t < s; ++t) {
          if (want_k)
            for (int64_t i = 0; i < dn; ++i) k = std::max(k, amax_bits(HostIn<T>::widen(x.kn[t * x.kn_t + hh * x.kn_h + i])));
          if (want_v)
            for (int64_t i = 0; i < dv; ++i) v = std::max(v, amax_bits(HostIn<T>::widen(x.vv[t * x.v_t + hh * x.v_h + i])));
        }
        kmp[hh] = k;
        vmp[hh] = v;
      });
  Kokkos::fence();
  auto store = [&](float* out, const std::vector<int32_t>& m) {
    if (!out) return;
    const int64_t n = p.per_head ? h : 1;
    for (int64_t j = 0; j < n; ++j) {
      int32_t call = m[size_t(j)];
      if (!p.per_head)
        for (int32_t x2 : m) call = std::max(call, x2);
      int32_t stored;
      std::memcpy(&stored, out + j, 4);
      stored = std::max(stored, call);
      std::memcpy(out + j, &stored, 4);
    }
  };
  store(p.amax(kKAmax), km);
  store(p.amax(kVAmax), vm);
}

template <InType T>
void run(const PackProblem& p, int variant, const Scales& sc) {
  if (variant == kVector) run_vector<T>(p, sc);
  else run_strided<T>(p, sc);
  if (p.has_amax()) {
    Kokkos::fence();
    run_amax<T>(p);
  }
}

// ---- the Backend functions
std::mutex g_run_mutex;  // one host execution at a time: Kokkos execution spaces are not re-entrant

bool probe(int* count, const char** detail) {
  const char* why = nullptr;
  const bool ok = ensure_kokkos(&why);
  *count = ok ? 1 : 0;
  *detail = ok ? g_detail : why;
  return ok;
}

mlakv_status check_memory(const PackProblem& p, uint32_t skip, std::string* why) {
  for (int i = 0; i < kOperandCount; ++i)
    if (p.op[i].ptr && !(skip >> i & 1) && device_only_memory(p.op[i].ptr)) {
      *why = std::string(kOperandNames[i]) + " is device memory; the reference backend needs host-accessible memory";
      return MLAKV_ERR_MEMORY_SPACE;
    }
  return MLAKV_OK;
}

mlakv_status plan(const PackProblem& p, Plan* out, std::string* why) {
  out->arch = 0;
  out->pdl = kPdlOff;
  out->units = nullptr;
  out->table.clear();
  out->table_note = nullptr;
  // both variants run every shape, stride and alignment: the first matching row runs
  if (!reference::table()->select_copy(DeviceKey(), p, [](const DispatchRow&) { return true; }, &out->row)) {
    *why = "no row of the reference dispatch table matches this call (arch 0, s = " + std::to_string(p.s) +
           ", s*h = " + std::to_string(p.sxh()) + "); a table should end with a catch-all row, e.g. "
           "'arch=0-0 s=1-* sxh=1-* dims=any variant=strided'";
    return MLAKV_ERR_NO_TABLE_ROW;
  }
  return MLAKV_OK;
}

mlakv_status pack(const PackProblem& p, const Plan& plan, std::string* why) {
  const char* down = nullptr;
  if (!ensure_kokkos(&down)) { *why = down; return MLAKV_ERR_BACKEND_UNAVAILABLE; }
  const Scales sc(p);
  const int variant = plan.row.variant;
  std::lock_guard<std::mutex> lock(g_run_mutex);
  switch (p.in_type) {
    case InType::BF16: run<InType::BF16>(p, variant, sc); break;
    case InType::FP16: run<InType::FP16>(p, variant, sc); break;
    case InType::FP32: run<InType::FP32>(p, variant, sc); break;
  }
  Kokkos::fence();
  return MLAKV_OK;
}

}  // namespace

const Backend& reference_backend() {
  static const Backend b = {MLAKV_BACKEND_REFERENCE, "reference", true, probe, check_memory,
                            plan, pack, reference::table(), nullptr, nullptr, nullptr, nullptr};
  return b;
}

}  // namespace mlakv
