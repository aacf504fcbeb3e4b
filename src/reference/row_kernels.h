// The reference backend's vectorisable row loops: one contiguous row of n elements, one
// instance per (input type, fp8 format). Compiled in up to three sets (row_kernels_base.cpp for
// the baseline ISA; on x86-64 row_kernels_avx2.cpp with -mavx2 -mf16c and row_kernels_avx512.cpp
// with -mavx512f) and chosen once at run time, the widest this CPU and OS run; all give identical
// bytes (integer and IEEE fp32 operations only, no contraction).
#pragma once
#include <stdint.h>

#include "core/fp8.h"
#include "core/problem.h"

namespace mlakv {

using RowKernel = void (*)(const void* x, uint8_t* out, int64_t n, float m);

// [input type][format]
struct RowKernels {
  RowKernel k[3][4];
};

const RowKernels& row_kernels_base();
#if defined(__x86_64__) || defined(_M_X64)
const RowKernels& row_kernels_avx2();
const RowKernels& row_kernels_avx512();
// Whether this CPU and OS run the AVX2 + F16C set, the AVX-512F set (x86-64 only).
bool cpu_has_avx2_f16c();
bool cpu_has_avx512f();
#endif
// The name of the set row_kernels() returns: "avx512", "avx2" or "base".
const char* row_kernels_name();
// The best set this CPU runs.
const RowKernels& row_kernels();

template <InType T> struct HostIn;
template <> struct HostIn<InType::BF16> {
  using raw = uint16_t;
  static float widen(raw x) { return bf16_to_f32(x); }
};
template <> struct HostIn<InType::FP16> {
  using raw = uint16_t;
  static float widen(raw x) { return fp16_to_f32(x); }
};
template <> struct HostIn<InType::FP32> {
  using raw = float;
  static float widen(raw x) { return x; }
};

template <InType T, Fp8Format F>
void encode_row(const void* xv, uint8_t* __restrict out, int64_t n, float m) {
  const typename HostIn<T>::raw* __restrict x = static_cast<const typename HostIn<T>::raw*>(xv);
  for (int64_t i = 0; i < n; ++i) out[i] = encode_fp8<F>(scale_mul(HostIn<T>::widen(x[i]), m));
}

// The 12 instances of a row-loop template `fn`, as a RowKernels initialiser.
#define MLAKV_ROW_KERNELS_TABLE_OF(fn)                                                                  \
  {{{fn<InType::BF16, Fp8Format::E4M3FN>, fn<InType::BF16, Fp8Format::E5M2>,                              \
     fn<InType::BF16, Fp8Format::E4M3FNUZ>, fn<InType::BF16, Fp8Format::E5M2FNUZ>},                        \
    {fn<InType::FP16, Fp8Format::E4M3FN>, fn<InType::FP16, Fp8Format::E5M2>,                              \
     fn<InType::FP16, Fp8Format::E4M3FNUZ>, fn<InType::FP16, Fp8Format::E5M2FNUZ>},                        \
    {fn<InType::FP32, Fp8Format::E4M3FN>, fn<InType::FP32, Fp8Format::E5M2>,                              \
     fn<InType::FP32, Fp8Format::E4M3FNUZ>, fn<InType::FP32, Fp8Format::E5M2FNUZ>}}}

}  // namespace mlakv
