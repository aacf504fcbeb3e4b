// Validation of mlakv_pack_args into a PackProblem: nothing is written until this has passed.
#pragma once
#include <string>

#include "core/problem.h"
#include "mlakv/mlakv.h"

namespace mlakv {

// Copies the caller's struct (any struct_size this or a later ABI could have written) into *out,
// with defaults for fields the caller's header did not have.
mlakv_status load_pack_args(const mlakv_pack_args* in, mlakv_pack_args* out, std::string* why);

// Checks everything the bad-input list names (null and misaligned pointers, dtypes, ranks,
// shapes, strides, 64-bit overflow, dims, overlaps, enum values) and fills *p. *empty is set
// when the call has no elements (s = 0 or h = 0), which is a successful no-op.
mlakv_status validate_pack_args(const mlakv_pack_args& a, PackProblem* p, bool* empty,
                                std::string* why);

}  // namespace mlakv
