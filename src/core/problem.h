// The validated, normalised form of one mlakv_pack_fp8 call, handed from c_api/ to a backend.
// Everything in here has been checked (c_api/validate.cpp): shapes agree, strides are
// non-negative, every byte offset fits in 64 bits, outputs overlap nothing.
#pragma once
#include <stdint.h>

#include "core/fp8.h"

namespace mlakv {

enum class InType : int { BF16 = 0, FP16 = 1, FP32 = 2 };

inline int in_type_size(InType t) { return t == InType::FP32 ? 4 : 2; }

struct PackProblem {
  int64_t s = 0, h = 0;
  int64_t d_nope = 0, d_rope = 0, d_v = 0;
  InType in_type = InType::BF16;
  Fp8Format out_format = Fp8Format::E4M3FN;

  // strides in elements of the tensor's own dtype: token (t) and head (h)
  const void* k_nope = nullptr;
  int64_t k_nope_st = 0, k_nope_sh = 0;
  const void* k_pe = nullptr;
  int64_t k_pe_st = 0;
  const void* v = nullptr;
  int64_t v_st = 0, v_sh = 0;
  void* k_out = nullptr;
  int64_t k_out_st = 0, k_out_sh = 0;
  void* v_out = nullptr;
  int64_t v_out_st = 0, v_out_sh = 0;

  float k_scale = 1.0f, v_scale = 1.0f;
  const float* k_scale_ptr = nullptr;  // when non-null, read by the backend instead
  const float* v_scale_ptr = nullptr;

  int device = 0;
  void* stream = nullptr;
  int pdl = 0;  // MLAKV_PDL_*
  uint32_t flags = 0;

  int64_t rows() const { return s * h; }
  int64_t d_k() const { return d_nope + d_rope; }
  // bytes the op must move at least: every input element read once (k_pe once per token),
  // every output byte written once
  int64_t min_bytes() const {
    const int64_t e = in_type_size(in_type);
    return rows() * (d_nope + d_v) * e + s * d_rope * e + rows() * (d_nope + d_rope + d_v);
  }
  // The call's memory, in one fixed order (Backend::check_memory's skip bits refer to it).
  static constexpr int kPointers = 7;
  void pointers(const void* (&out)[kPointers]) const {
    out[0] = k_nope; out[1] = k_pe; out[2] = v; out[3] = k_out; out[4] = v_out;
    out[5] = k_scale_ptr; out[6] = v_scale_ptr;
  }
};
inline constexpr const char* kPointerNames[PackProblem::kPointers] = {
    "k_nope", "k_pe", "v", "k_out", "v_out", "k_scale_inv_ptr", "v_scale_inv_ptr"};

}  // namespace mlakv
