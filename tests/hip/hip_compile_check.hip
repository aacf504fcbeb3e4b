// Compiles the shared kernel bodies (src/kernels/pack_kernels.cuh) for AMD GPUs through the HIP
// vendor header, every variant x input type x format x unit layout x unroll that the CUDA backend
// instantiates. Compile-only (no AMD GPU here): it proves the "one kernel source for CUDA and HIP"
// rule holds, and fails the build when a CUDA-only construct slips into the kernels.
#include "hip/vendor_hip.h"
#include "kernels/pack_kernels.cuh"

namespace {
using namespace mlakv;
using kern::Units;
using KernelFn = void (*)(kern::Params);

template <InType T, Fp8Format F, Units D>
void add_units(KernelFn*& out) {
  *out++ = kern::pack_flat<T, F, D, 1>;
  *out++ = kern::pack_flat<T, F, D, 2>;
  *out++ = kern::pack_persist<T, F, D, 1>;
  *out++ = kern::pack_persist<T, F, D, 2>;
  *out++ = kern::pack_tile2d<T, F, D, 1>;
  *out++ = kern::pack_tile2d<T, F, D, 2>;
  if (D == Units::DS16 || D == Units::DS8 || D == Units::V8) {
    *out++ = kern::pack_flat<T, F, D, 4>;
    *out++ = kern::pack_persist<T, F, D, 4>;
    *out++ = kern::pack_tile2d<T, F, D, 4>;
  }
}
template <InType T, Fp8Format F>
void add_format(KernelFn*& out) {
  add_units<T, F, Units::DS16>(out);
  add_units<T, F, Units::DS8>(out);
  add_units<T, F, Units::V8>(out);
  add_units<T, F, Units::DS16S>(out);
  add_units<T, F, Units::DS32S>(out);
  *out++ = kern::pack_general<T, F>;
}
template <InType T>
void add_type(KernelFn*& out) {
  add_format<T, Fp8Format::E4M3FN>(out);
  add_format<T, Fp8Format::E5M2>(out);
  add_format<T, Fp8Format::E4M3FNUZ>(out);
  add_format<T, Fp8Format::E5M2FNUZ>(out);
}
}  // namespace

// The table keeps every instance alive; main() reports how many there are.
KernelFn g_kernels[3 * 4 * (3 * 9 + 2 * 6 + 1)];

int main() {
  KernelFn* out = g_kernels;
  add_type<InType::BF16>(out);
  add_type<InType::FP16>(out);
  add_type<InType::FP32>(out);
  return out - g_kernels == sizeof g_kernels / sizeof g_kernels[0] ? 0 : 1;
}
