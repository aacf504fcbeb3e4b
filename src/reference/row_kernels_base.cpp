// Row loops for the baseline ISA, and the run-time choice between the compiled sets.
#include "reference/row_kernels.h"

namespace mlakv {

const RowKernels& row_kernels_base() {
  static const RowKernels k = MLAKV_ROW_KERNELS_TABLE;
  return k;
}

const RowKernels& row_kernels() {
#if defined(__x86_64__) || defined(_M_X64)
  static const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c");
  if (avx2) return row_kernels_avx2();
#endif
  return row_kernels_base();
}

}  // namespace mlakv
