// The reference backend: Kokkos on the host. It is the oracle every other backend is compared
// with byte for byte, and the CPU fallback, so its fast path is written to vectorise.
//
// Variants (its dispatch table is in reference_table.cpp):
//   rows     - per (token, head) row, a contiguous loop (row_kernels.h), one instance per
//              (input type, fp8 format), vectorised, AVX2 where the CPU has it;
//   strided  - element by element with the format chosen at run time: any dims, any alignment.
#include <Kokkos_Core.hpp>
#include <cstring>
#if defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>
#endif
#include <mutex>
#include <string>

#include "core/backend.h"
#include "core/fp8.h"
#include "reference/row_kernels.h"

namespace mlakv {

DispatchTable* reference_table();  // reference_table.cpp

namespace {

enum Variant { kRows = 0, kStrided = 1 };

// ---- Kokkos lifetime: initialise only if the host application has not; finalise only ours.
std::once_flag g_init_once;
bool g_kokkos_ok = false;
bool g_we_started = false;
std::string g_detail_text = "Kokkos (host)";
const char* g_detail = "Kokkos (host)";

void set_detail(const char* who) {
  g_detail_text = "Kokkos " + std::to_string(KOKKOS_VERSION / 10000) + "." +
                  std::to_string(KOKKOS_VERSION / 100 % 100) + "." + std::to_string(KOKKOS_VERSION % 100) +
                  ", " + Kokkos::DefaultHostExecutionSpace::name() + " (" + who + ")";
  g_detail = g_detail_text.c_str();
}

void finalize_if_ours() {
  if (g_we_started && Kokkos::is_initialized()) Kokkos::finalize();
}

bool ensure_kokkos() {
  std::call_once(g_init_once, [] {
    if (Kokkos::is_initialized()) {
      g_kokkos_ok = true;
      set_detail("initialised by the application");
      return;
    }
#if defined(KOKKOS_VERSION) && KOKKOS_VERSION >= 30700
    if (Kokkos::is_finalized()) {
      g_detail = "Kokkos was finalised by the application; it cannot be restarted";
      return;
    }
    Kokkos::initialize(Kokkos::InitializationSettings().set_disable_warnings(true));
#else
    Kokkos::InitArguments args;
    args.disable_warnings = true;
    Kokkos::initialize(args);
#endif
    g_we_started = true;
    g_kokkos_ok = true;
    set_detail("initialised by mlakv");
    std::atexit(finalize_if_ours);
  });
  return g_kokkos_ok;
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

float read_scale(const float* ptr, float value) {
  if (!ptr) return value;
  float v;
  std::memcpy(&v, ptr, sizeof v);
  return v;
}

template <InType T>
void run_rows(const PackProblem& p, float ks, float vs) {
  using R = typename HostIn<T>::raw;
  const RowKernel enc = row_kernels().k[int(T)][int(p.out_format)];
  const R* kn = static_cast<const R*>(p.k_nope);
  const R* kp = static_cast<const R*>(p.k_pe);
  const R* vv = static_cast<const R*>(p.v);
  uint8_t* ko = static_cast<uint8_t*>(p.k_out);
  uint8_t* vo = static_cast<uint8_t*>(p.v_out);
  const PackProblem q = p;
  Kokkos::parallel_for(
      "mlakv_reference_rows", Kokkos::RangePolicy<Kokkos::DefaultHostExecutionSpace>(0, q.s),
      [=](const int64_t t) {
        ExactFloatMode exact;
        // k_pe is encoded once per token, then copied to every head
        uint8_t* ko0 = ko + t * q.k_out_st;
        enc(kp + t * q.k_pe_st, ko0 + q.d_nope, q.d_rope, ks);
        for (int64_t hh = 0; hh < q.h; ++hh) {
          uint8_t* krow = ko0 + hh * q.k_out_sh;
          enc(kn + t * q.k_nope_st + hh * q.k_nope_sh, krow, q.d_nope, ks);
          if (hh) std::memcpy(krow + q.d_nope, ko0 + q.d_nope, size_t(q.d_rope));
          enc(vv + t * q.v_st + hh * q.v_sh, vo + t * q.v_out_st + hh * q.v_out_sh, q.d_v, vs);
        }
      });
}

// The general path: element by element, format chosen per call at run time.
template <InType T>
void run_strided(const PackProblem& p, float ks, float vs) {
  using R = typename HostIn<T>::raw;
  const R* kn = static_cast<const R*>(p.k_nope);
  const R* kp = static_cast<const R*>(p.k_pe);
  const R* vv = static_cast<const R*>(p.v);
  uint8_t* ko = static_cast<uint8_t*>(p.k_out);
  uint8_t* vo = static_cast<uint8_t*>(p.v_out);
  const PackProblem q = p;
  Kokkos::parallel_for(
      "mlakv_reference_strided", Kokkos::RangePolicy<Kokkos::DefaultHostExecutionSpace>(0, q.s),
      [=](const int64_t t) {
        ExactFloatMode exact;
        for (int64_t hh = 0; hh < q.h; ++hh) {
          uint8_t* krow = ko + t * q.k_out_st + hh * q.k_out_sh;
          for (int64_t i = 0; i < q.d_nope; ++i)
            krow[i] = encode_fp8(scale_mul(HostIn<T>::widen(kn[t * q.k_nope_st + hh * q.k_nope_sh + i]), ks), q.out_format);
          for (int64_t i = 0; i < q.d_rope; ++i)
            krow[q.d_nope + i] = encode_fp8(scale_mul(HostIn<T>::widen(kp[t * q.k_pe_st + i]), ks), q.out_format);
          for (int64_t i = 0; i < q.d_v; ++i)
            vo[t * q.v_out_st + hh * q.v_out_sh + i] =
                encode_fp8(scale_mul(HostIn<T>::widen(vv[t * q.v_st + hh * q.v_sh + i]), vs), q.out_format);
        }
      });
}

// ---- the Backend functions
std::mutex g_run_mutex;  // one host execution at a time: Kokkos execution spaces are not re-entrant

bool probe(int* count, const char** detail) {
  const bool ok = ensure_kokkos();
  *count = ok ? 1 : 0;
  *detail = g_detail;
  return ok;
}

mlakv_status check_memory(const PackProblem& p, uint32_t skip, std::string* why) {
  const void* ptrs[PackProblem::kPointers];
  p.pointers(ptrs);
  for (int i = 0; i < PackProblem::kPointers; ++i)
    if (ptrs[i] && !(skip >> i & 1) && device_only_memory(ptrs[i])) {
      *why = std::string(kPointerNames[i]) + " is device memory; the reference backend needs host-accessible memory";
      return MLAKV_ERR_MEMORY_SPACE;
    }
  return MLAKV_OK;
}

mlakv_status plan(const PackProblem& p, Plan* out, std::string*) {
  out->arch = 0;
  out->pdl = false;
  out->row = reference_table()->select(0, p);
  out->fallback.variant = kStrided;
  return MLAKV_OK;
}

mlakv_status pack(const PackProblem& p, const Plan& plan, std::string* why) {
  if (!ensure_kokkos()) { *why = g_detail; return MLAKV_ERR_BACKEND_UNAVAILABLE; }
  const float ks = read_scale(p.k_scale_ptr, p.k_scale);
  const float vs = read_scale(p.v_scale_ptr, p.v_scale);
  // both variants are correct for every shape and stride; rows is the fast one
  const bool use_rows = plan.chosen().variant == kRows;
  std::lock_guard<std::mutex> lock(g_run_mutex);
  if (use_rows) {
    switch (p.in_type) {
      case InType::BF16: run_rows<InType::BF16>(p, ks, vs); break;
      case InType::FP16: run_rows<InType::FP16>(p, ks, vs); break;
      case InType::FP32: run_rows<InType::FP32>(p, ks, vs); break;
    }
  } else {
    switch (p.in_type) {
      case InType::BF16: run_strided<InType::BF16>(p, ks, vs); break;
      case InType::FP16: run_strided<InType::FP16>(p, ks, vs); break;
      case InType::FP32: run_strided<InType::FP32>(p, ks, vs); break;
    }
  }
  Kokkos::fence();
  return MLAKV_OK;
}

}  // namespace

const Backend& reference_backend() {
  static const Backend b = {MLAKV_BACKEND_REFERENCE, "reference", true, probe, check_memory,
                            plan, pack, reference_table(), nullptr, nullptr};
  return b;
}

}  // namespace mlakv
