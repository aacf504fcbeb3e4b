// The reference backend's dispatch table. The host has no arch bands (arch = 0) and no launch
// configuration; the table only picks the variant: the vectorised row loops where every head dim
// is a multiple of 8 and rows are aligned, the element-wise general path otherwise.
#include "core/dispatch.h"

namespace mlakv {

DispatchTable* reference_table() {
  static DispatchTable table(
      {"rows", "strided"},
      {
          {0, 0, 1, kUnbounded, 1, kUnbounded, DimsReq::X8, 0, {}, "vectorised row loops"},
          {0, 0, 1, kUnbounded, 1, kUnbounded, DimsReq::Any, 1, {}, "general path"},
      });
  return &table;
}

}  // namespace mlakv
