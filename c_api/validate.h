// Validation of mlakv_pack_args into a PackProblem, in two phases (geometry, then pointers):
// nothing is written until both have passed.
#pragma once
#include <string>

#include "core/problem.h"
#include "mlakv/mlakv.h"

namespace mlakv {

// No argument struct is larger than this (a bigger struct_size is garbage, not a newer header).
constexpr size_t kMaxStructSize = size_t(1) << 20;
// mlakv_backend_info's struct_size in 0.1 (the smallest accepted).
constexpr size_t kBackendInfoSize01 = 48;

// Copies the caller's struct (any struct_size from 0.1's, MLAKV_PACK_ARGS_SIZE_0_1, up) into *out,
// with defaults for the fields the caller's header did not have; a newer caller's unknown trailing
// bytes must be zero.
mlakv_status load_pack_args(const mlakv_pack_args* in, mlakv_pack_args* out, std::string* why);

// The data pointers of the arguments in PackProblem's operand order (the one place that maps the
// argument struct's fields to kOperandNames).
void arg_pointers(const mlakv_pack_args& a, const void* (&out)[kOperandCount]);

// Everything but the data pointers, the scales, the scale pointers and the stream (the call's
// "geometry"): enums, flags, dtypes, ranks, shapes, signs, inner strides, head dims, 64-bit sizes,
// rows of an output aliasing each other. Fills *p except those fields (operand pointers NULL).
mlakv_status validate_geometry(const mlakv_pack_args& a, PackProblem* p, std::string* why);

// NULL and misaligned pointers, spans past the end of the address space, outputs overlapping any
// other operand. *p must hold what validate_geometry gave for a's geometry; on success its
// pointers, scales and stream are set, on failure it is left as it was. A call that differs from
// an already validated one only in those fields needs this phase alone (c_api/mlakv.cpp).
mlakv_status validate_pointers(const mlakv_pack_args& a, PackProblem* p, std::string* why);

// True when validate_geometry would read the same values from a and b.
bool same_geometry(const mlakv_pack_args& a, const mlakv_pack_args& b);

}  // namespace mlakv
