// Row loops for the baseline ISA, and the run-time choice between the compiled sets.
#include "reference/row_kernels.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#endif

namespace mlakv {

const RowKernels& row_kernels_base() {
  static const RowKernels k = MLAKV_ROW_KERNELS_TABLE_OF(encode_row);
  return k;
}

// AVX2 and F16C by CPUID, and the OS saving the AVX (ymm) state by XGETBV. (Asked directly: clang
// before 15 rejects __builtin_cpu_supports("f16c").)
bool cpu_has_avx2_f16c() {
#if defined(__x86_64__) || defined(_M_X64)
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
  const bool f16c = c & (1u << 29), avx = c & (1u << 28), osxsave = c & (1u << 27);
  if (!f16c || !avx || !osxsave) return false;
  unsigned xcr0_lo = 0, xcr0_hi = 0;
  __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  if ((xcr0_lo & 0x6u) != 0x6u) return false;  // XMM and YMM state enabled by the OS
  if (__get_cpuid_max(0, nullptr) < 7) return false;
  __cpuid_count(7, 0, a, b, c, d);
  return b & (1u << 5);  // AVX2
#else
  return false;
#endif
}

// AVX-512F by CPUID, and the OS saving the opmask and zmm state (XCR0 bits 5-7) besides xmm / ymm.
bool cpu_has_avx512f() {
#if defined(__x86_64__) || defined(_M_X64)
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return false;  // OSXSAVE
  unsigned xcr0_lo = 0, xcr0_hi = 0;
  __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  if ((xcr0_lo & 0xE6u) != 0xE6u) return false;
  if (__get_cpuid_max(0, nullptr) < 7) return false;
  __cpuid_count(7, 0, a, b, c, d);
  return b & (1u << 16);  // AVX512F
#else
  return false;
#endif
}

namespace {
struct Chosen {
  const RowKernels* k;
  const char* name;
};
Chosen choose() {
#if defined(__x86_64__) || defined(_M_X64)
  if (cpu_has_avx512f()) return {&row_kernels_avx512(), "avx512"};
  if (cpu_has_avx2_f16c()) return {&row_kernels_avx2(), "avx2"};
#endif
  return {&row_kernels_base(), "base"};
}
const Chosen& chosen() {
  static const Chosen c = choose();
  return c;
}
}  // namespace

const RowKernels& row_kernels() { return *chosen().k; }
const char* row_kernels_name() { return chosen().name; }

}  // namespace mlakv
