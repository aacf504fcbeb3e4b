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

#if defined(__x86_64__) || defined(_M_X64)
namespace {
// CPUID leaf 1's ecx, and leaf 7's ebx (0 where the CPU has no leaf 7).
unsigned cpuid1_ecx() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  return __get_cpuid(1, &a, &b, &c, &d) ? c : 0u;
}
unsigned cpuid7_ebx() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid_max(0, nullptr) < 7) return 0u;
  __cpuid_count(7, 0, a, b, c, d);
  return b;
}
// Whether the OS saves every register state in `mask` (XCR0 by XGETBV, which needs OSXSAVE).
bool os_saves(unsigned mask) {
  if (!(cpuid1_ecx() & (1u << 27))) return false;  // OSXSAVE
  unsigned xcr0_lo = 0, xcr0_hi = 0;
  __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  return (xcr0_lo & mask) == mask;
}
}  // namespace
#endif

// AVX2 and F16C by CPUID, and the OS saving the xmm / ymm state (XCR0 bits 1-2). (Asked directly:
// clang before 15 rejects __builtin_cpu_supports("f16c").)
bool cpu_has_avx2_f16c() {
#if defined(__x86_64__) || defined(_M_X64)
  const unsigned c = cpuid1_ecx();
  const bool f16c = c & (1u << 29), avx = c & (1u << 28);
  return f16c && avx && os_saves(0x6u) && (cpuid7_ebx() & (1u << 5));  // AVX2
#else
  return false;
#endif
}

// AVX-512F by CPUID, and the OS saving the opmask and zmm state (XCR0 bits 5-7) besides xmm / ymm.
bool cpu_has_avx512f() {
#if defined(__x86_64__) || defined(_M_X64)
  return os_saves(0xE6u) && (cpuid7_ebx() & (1u << 16));  // AVX512F
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
