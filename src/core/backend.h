// The backend interface and the registry. A backend is a plain struct of function pointers and
// its dispatch table; src/core/registry.cpp lists the compiled-in backends explicitly, in
// priority order (no static-initialisation tricks).
#pragma once
#include <string>

#include "core/dispatch.h"
#include "core/problem.h"
#include "mlakv/mlakv.h"

namespace mlakv {

// Programmatic dependent launch for one call: off, on, or not a thing this backend has (HIP).
enum PdlState : int { kPdlOff = 0, kPdlOn = 1, kPdlUnavailable = 2 };

// What a backend decided for one call: filled by Backend::plan, consumed by Backend::pack.
struct Plan {
  DispatchRow row;              // the table row that runs (a copy: the plan outlives table changes)
  int arch = 0;
  PdlState pdl = kPdlOff;
  const char* units = nullptr;  // GPU vector variants: the unit layout the row gives this call
  std::string table;            // the file of the device's loaded table the row came from (empty: the
                                // backend's table); a copy, like the row
  const char* table_note = nullptr;  // why a device's table file is not in force (nullptr: nothing to
                                     // say); static storage of the backend, never freed
  // Backend-private launch data computed by plan() (GPU backends: kernel, grid, parameters), so
  // pack() only launches; a repeated call reuses the whole plan (c_api/mlakv.cpp).
  alignas(16) unsigned char launch[512];
};

struct Backend {
  mlakv_backend id;
  const char* name;
  bool compiled;
  // Usable here now? Cheap after the first call (cached). *detail gets a static description.
  bool (*probe)(int* device_count, const char** detail);
  // Whether the call's memory is reachable from this backend (AUTO routing; and, unless the
  // caller set MLAKV_FLAG_TRUST_POINTERS, a check on an explicit choice). Sets *why on failure.
  // skip: bit i set = operand i (OperandId) is the one this thread's previous call had there,
  // with the same span, and was checked then: it need not be asked about again.
  mlakv_status (*check_memory)(const PackProblem& p, uint32_t skip, std::string* why);
  // Chooses the table row (the first that holds, its variant's limits included) and computes
  // the launch; MLAKV_ERR_NO_TABLE_ROW when no row can run the call. No side effects.
  mlakv_status (*plan)(const PackProblem& p, Plan* out, std::string* why);
  // Runs (or, for GPU backends, enqueues) the call on the plan.
  mlakv_status (*pack)(const PackProblem& p, const Plan& plan, std::string* why);
  DispatchTable* table;
  // GPU backends: true if p is memory of theirs that the host cannot read (lets the reference
  // backend refuse device pointers instead of faulting on them). nullptr for host backends.
  bool (*is_device_only)(const void* p);
  // Puts p's pointers and scales into a plan that plan() made for a call of the same geometry
  // and pointer alignment (c_api/mlakv.cpp reuses plans across calls that differ only in those).
  // nullptr: the backend's plans hold no pointers (pack() reads them from p).
  void (*rebind)(const PackProblem& p, Plan* plan);
  // GPU backends: installs a table file (core/table_file.h) for the devices it was measured on
  // (MLAKV_ERR_TABLE_DEVICE when none is here), and forgets every device's loaded table.
  // nullptr for backends without per-device tables.
  mlakv_status (*load_table)(const char* path, std::string* why);
  void (*clear_device_tables)();
};

// True if any compiled, usable GPU backend says the pointer is device-only memory.
bool device_only_memory(const void* p);

// The compiled-in backends in priority order (AUTO tries them in this order): cuda, hip, reference.
int backend_count();
const Backend& backend_at(int index);
const Backend* backend_by_id(mlakv_backend id);

// Per-backend entry points, defined in each backend's own sources; a backend that was not built
// contributes a Backend with compiled = false (src/core/registry.cpp).
const Backend& reference_backend();
#ifdef MLAKV_WITH_CUDA
const Backend& cuda_backend();
#endif
#ifdef MLAKV_WITH_HIP
const Backend& hip_backend();
#endif

// Text helpers shared by backends' plan descriptions.
std::string describe_plan(const Backend& b, const PackProblem& p, const Plan& plan);

}  // namespace mlakv
