// The explicit, compiled-in list of backends, in the order AUTO tries them.
#include <sstream>

#include "core/backend.h"

namespace mlakv {
namespace {

bool probe_absent(int* count, const char** detail) {
  *count = 0;
  *detail = "not compiled into this build of mlakv";
  return false;
}
mlakv_status absent_memory(const PackProblem&, uint32_t, std::string* why) {
  *why = "backend not compiled into this build";
  return MLAKV_ERR_BACKEND_UNAVAILABLE;
}
mlakv_status absent_plan(const PackProblem&, Plan*, std::string* why) { return absent_memory({}, 0, why); }
mlakv_status absent_pack(const PackProblem&, const Plan&, std::string* why) { return absent_memory({}, 0, why); }

#ifndef MLAKV_WITH_CUDA
const Backend kCudaAbsent = {MLAKV_BACKEND_CUDA, "cuda", false, probe_absent, absent_memory,
                             absent_plan, absent_pack, nullptr, nullptr, nullptr, nullptr, nullptr};
#endif
#ifndef MLAKV_WITH_HIP
const Backend kHipAbsent = {MLAKV_BACKEND_HIP, "hip", false, probe_absent, absent_memory,
                            absent_plan, absent_pack, nullptr, nullptr, nullptr, nullptr, nullptr};
#endif

const Backend* const* list() {
  // Function-local static: initialised on first use, thread-safe (C++11), no cross-TU order issue.
  static const Backend* const backends[] = {
#ifdef MLAKV_WITH_CUDA
      &cuda_backend(),
#else
      &kCudaAbsent,
#endif
#ifdef MLAKV_WITH_HIP
      &hip_backend(),
#else
      &kHipAbsent,
#endif
      &reference_backend(),
  };
  return backends;
}

}  // namespace

int backend_count() { return 3; }
const Backend& backend_at(int index) { return *list()[index]; }
const Backend* backend_by_id(mlakv_backend id) {
  for (int i = 0; i < backend_count(); ++i)
    if (backend_at(i).id == id) return &backend_at(i);
  return nullptr;
}

bool device_only_memory(const void* p) {
  for (int i = 0; i < backend_count(); ++i) {
    const Backend& b = backend_at(i);
    int n = 0;
    const char* detail = "";
    if (b.compiled && b.is_device_only && b.probe(&n, &detail) && b.is_device_only(p)) return true;
  }
  return false;
}

std::string describe_plan(const Backend& b, const PackProblem& p, const Plan& plan) {
  static const char* in_names[] = {"bf16", "fp16", "fp32"};
  static const char* out_names[] = {"e4m3fn", "e5m2", "e4m3fnuz", "e5m2fnuz"};
  std::ostringstream o;
  o << "backend=" << b.name << " arch=" << plan.arch << " s=" << p.s << " h=" << p.h
    << " dims=" << p.d_nope << "," << p.d_rope << "," << p.d_v << " " << in_names[int(p.in_type)]
    << "->" << out_names[int(p.out_format)] << " scales=" << (p.per_head ? "per-head" : "per-tensor") << " amax="
    << (p.op[kKAmax].ptr ? (p.op[kVAmax].ptr ? "k,v" : "k") : p.op[kVAmax].ptr ? "v" : "none") << " pdl=" << (plan.pdl == kPdlOn ? "on" : plan.pdl == kPdlOff ? "off" : "n/a") << " table="
    << (!plan.table.empty() ? plan.table.c_str() : b.table->is_builtin() ? "built-in" : "set");
  if (plan.table_note) o << " (" << plan.table_note << ")";
  o << " | " << b.table->row_text(plan.row);
  if (plan.units) o << " | units=" << plan.units;
  return o.str();
}

}  // namespace mlakv
