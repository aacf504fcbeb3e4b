// The reference backend's dispatch table. The host has no arch bands (arch = 0) and no launch
// configuration; the table only picks the variant: the vectorised row loops where every head dim
// is a multiple of 8 and rows are aligned, the element-wise path otherwise.
#include "reference/reference_table.h"

namespace mlakv {
namespace reference {

namespace {
DispatchRow row(DimsReq dims, Variant v, const char* note) {  // arch 0-0, every s and s*h
  DispatchRow r;
  r.dims = dims;
  r.variant = v;
  r.note = note;
  return r;
}
}  // namespace

DispatchTable* table() {
  static DispatchTable* const t = new DispatchTable(  // never destroyed: calls at exit still find it
      variant_names(), nullptr,
      {row(DimsReq::X8, kVector, "vectorised row loops"), row(DimsReq::Any, kStrided, "general path")});
  return t;
}

}  // namespace reference
}  // namespace mlakv
