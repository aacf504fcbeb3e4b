// The validated, normalised form of one mlakv_pack_fp8 call, handed from c_api/ to a backend.
// Everything in here has been checked (c_api/validate.cpp): shapes agree, strides are
// non-negative, every byte offset fits in 64 bits, outputs overlap nothing.
#pragma once
#include <stdint.h>

#include "core/fp8.h"

namespace mlakv {

enum class InType : int { BF16 = 0, FP16 = 1, FP32 = 2 };

inline int in_type_size(InType t) { return t == InType::FP32 ? 4 : 2; }

// The call's memory: one list, in this order, built once from the arguments (validate.cpp) and
// used by validation (NULL, alignment, spans, overlap), the memory-space check, the per-thread
// plan cache (which pointers changed) and the rebind of new pointers into a cached plan.
// Outputs are the operands the call writes: k_out, v_out and the optional amax arrays.
enum OperandId : int { kKNope, kKPe, kV, kKOut, kVOut, kKScaleInv, kVScaleInv, kKAmax, kVAmax, kOperandCount };
constexpr int kTensorCount = 5;  // the first five are tensors; the scale and amax pointers may be NULL
inline constexpr const char* kOperandNames[kOperandCount] = {"k_nope", "k_pe", "v", "k_out", "v_out",
                                                             "k_scale_inv_ptr", "v_scale_inv_ptr", "k_amax", "v_amax"};
inline constexpr bool is_output(int id) { return id == kKOut || id == kVOut || id == kKAmax || id == kVAmax; }

// One operand as n_t x n_h rows (one row per (token, head); k_pe: one per token, n_h = 1; a scale or
// amax array: one row of 1 float, or of h floats per head) of `row` contiguous elements of `esize` bytes, at element strides st (token)
// and sh (head). A stride whose extent is 1 is normalised to 0.
struct Operand {
  const void* ptr;
  int64_t esize;
  int64_t n_t, n_h;
  int64_t st, sh;
  int64_t row;
  int64_t bytes;  // from ptr to one past the last byte (0 when n_t or n_h is 0)
};

struct PackProblem {
  int64_t s = 0, h = 0;
  int64_t d_nope = 0, d_rope = 0, d_v = 0;
  InType in_type = InType::BF16;
  Fp8Format out_format = Fp8Format::E4M3FN;
  Operand op[kOperandCount] = {};
  // multipliers (1/scale), used where the matching scale pointer (op[kKScaleInv/kVScaleInv]) is NULL
  float k_scale_inv = 1.0f, v_scale_inv = 1.0f;
  bool per_head = false;  // MLAKV_SCALE_PER_HEAD: h multipliers (and h amax floats) per tensor
  // op[kKAmax] / op[kVAmax]: where this call accumulates its amax (NULL: not asked)
  float* amax(OperandId i) const { return static_cast<float*>(const_cast<void*>(op[i].ptr)); }
  bool has_amax() const { return op[kKAmax].ptr || op[kVAmax].ptr; }
  int device = 0;
  void* stream = nullptr;  // the caller's cudaStream_t / hipStream_t
  int pdl = 0;             // MLAKV_PDL_*
  uint32_t flags = 0;

  int64_t sxh() const { return s * h; }
  bool empty() const { return s == 0 || h == 0; }
  int64_t d_k() const { return d_nope + d_rope; }
  const void* in(OperandId i) const { return op[i].ptr; }
  void* out(OperandId i) const { return const_cast<void*>(op[i].ptr); }
  const float* scale_ptr(OperandId i) const { return static_cast<const float*>(op[i].ptr); }
  // bytes the op must move at least: every input element read once (k_pe once per token),
  // every output byte written once
  int64_t min_bytes() const {
    const int64_t e = in_type_size(in_type);
    return sxh() * (d_nope + d_v) * e + s * d_rope * e + sxh() * (d_nope + d_rope + d_v);
  }
};

}  // namespace mlakv
