// The reference backend's dispatch table. The host has no arch bands (arch = 0) and no launch
// configuration; the table only picks the variant: the vectorised row loops where every head dim
// is a multiple of 8 and rows are aligned, the element-wise path otherwise.
#include "reference/reference_table.h"

namespace mlakv {
namespace reference {

DispatchTable* table() {
  static DispatchTable t(variant_names(), nullptr,
                         {
                             {0, 0, 1, kUnbounded, 1, kUnbounded, DimsReq::X8, kVector, {}, "vectorised row loops"},
                             {0, 0, 1, kUnbounded, 1, kUnbounded, DimsReq::Any, kStrided, {}, "general path"},
                         });
  return &t;
}

}  // namespace reference
}  // namespace mlakv
