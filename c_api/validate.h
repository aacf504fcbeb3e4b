// Validation of mlakv_pack_args into a PackProblem, in two phases (geometry, then pointers):
// nothing is written until both have passed.
#pragma once
#include <cstdint>
#include <string>

#include "core/problem.h"
#include "mlakv/mlakv.h"

namespace mlakv {

// Copies the caller's struct (any struct_size this or a later ABI could have written) into *out,
// with defaults for fields the caller's header did not have.
mlakv_status load_pack_args(const mlakv_pack_args* in, mlakv_pack_args* out, std::string* why);

// One tensor reduced to rows: n_t x n_h rows of `row_bytes` contiguous bytes (strides in bytes),
// `span` bytes from base to one past its last byte.
struct Rows {  // no default values: filled field by field (validation is on every call's path)
  const char* name;
  uintptr_t base;
  int64_t n_t, n_h;
  int64_t st, sh;
  int64_t row_bytes;
  int64_t span;
};

// What validation derives from the fields other than the data pointers, the scales, the scale
// pointers and the stream (the call's "geometry") and validate_pointers needs. A call that differs
// from an already validated one only in those fields needs validate_pointers alone
// (c_api/mlakv.cpp: per-layer buffers).
struct Geometry {
  Rows rows[5];        // k_nope, k_pe, v, k_out, v_out, base 0
  bool empty = false;  // s = 0 or h = 0: a successful no-op
};

// Enums, flags, dtypes, ranks, shapes, signs, inner strides, head dims, 64-bit sizes, rows of an
// output aliasing each other. Fills *g and *p's fields other than pointers, scales and stream.
mlakv_status validate_geometry(const mlakv_pack_args& a, Geometry* g, PackProblem* p, std::string* why);

// NULL and misaligned pointers, spans past the end of the address space, outputs overlapping any
// other tensor. On success sets *p's pointers, scales and stream; its other fields must already
// be what validate_geometry gave for this geometry. On failure *p is left as it was.
mlakv_status validate_pointers(const mlakv_pack_args& a, const Geometry& g, PackProblem* p, std::string* why);

// True when validate_geometry would read the same values from a and b.
bool same_geometry(const mlakv_pack_args& a, const mlakv_pack_args& b);

// Copies the fields same_geometry does not compare (data pointers, scales, scale pointers,
// stream) from src to dst: for two args of the same geometry, dst then equals src byte for byte.
void copy_pointer_fields(const mlakv_pack_args& src, mlakv_pack_args* dst);

}  // namespace mlakv
