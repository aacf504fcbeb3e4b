#include "validate.h"

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <string>

namespace mlakv {
namespace {

constexpr int64_t kMaxHeadDim = int64_t(1) << 20;

bool mul_ok(int64_t a, int64_t b, int64_t* r) { return !__builtin_mul_overflow(a, b, r); }
bool add_ok(int64_t a, int64_t b, int64_t* r) { return !__builtin_add_overflow(a, b, r); }

int dtype_size(mlakv_dtype d) {
  switch (d) {
    case MLAKV_DTYPE_BF16:
    case MLAKV_DTYPE_FP16: return 2;
    case MLAKV_DTYPE_FP32: return 4;
    case MLAKV_DTYPE_E4M3FN:
    case MLAKV_DTYPE_E5M2:
    case MLAKV_DTYPE_E4M3FNUZ:
    case MLAKV_DTYPE_E5M2FNUZ: return 1;
    default: return 0;
  }
}

// The five tensors of the arguments in operand order.
void arg_tensors(const mlakv_pack_args& a, const mlakv_tensor* (&t)[kTensorCount]) {
  t[kKNope] = &a.k_nope; t[kKPe] = &a.k_pe; t[kV] = &a.v; t[kKOut] = &a.k_out; t[kVOut] = &a.v_out;
}

std::string dims_text(const mlakv_tensor& t) {
  std::string s = "[";
  for (int i = 0; i < t.ndim && i < MLAKV_MAX_RANK; ++i) s += (i ? ", " : "") + std::to_string(t.shape[i]);
  return s + "]";
}

// ---- geometry, by kind of check ---------------------------------------------------------------------

mlakv_status check_enums(const mlakv_pack_args& a, std::string* why) {
  if (a.backend < MLAKV_BACKEND_AUTO || a.backend > MLAKV_BACKEND_HIP) {
    *why = "backend " + std::to_string(a.backend) + " names no backend";
    return MLAKV_ERR_NO_SUCH_BACKEND;
  }
  if (a.pdl < MLAKV_PDL_AUTO || a.pdl > MLAKV_PDL_OFF) {
    *why = "pdl mode " + std::to_string(a.pdl) + " is not MLAKV_PDL_AUTO/ON/OFF";
    return MLAKV_ERR_INVALID_ARGUMENT;
  }
  if (a.flags & ~MLAKV_FLAGS_KNOWN) {
    *why = "unknown flag bits set in flags";
    return MLAKV_ERR_INVALID_ARGUMENT;
  }
  if (a.device < 0) {
    *why = "device ordinal " + std::to_string(a.device) + " is negative";
    return MLAKV_ERR_DEVICE;
  }
  return MLAKV_OK;
}

mlakv_status check_dtypes(const mlakv_pack_args& a, std::string* why) {
  const mlakv_dtype in_dt = a.k_nope.dtype, out_dt = a.k_out.dtype;
  if (in_dt != MLAKV_DTYPE_BF16 && in_dt != MLAKV_DTYPE_FP16 && in_dt != MLAKV_DTYPE_FP32) {
    *why = "k_nope.dtype " + std::to_string(in_dt) + " is not bf16, fp16 or fp32";
    return MLAKV_ERR_DTYPE;
  }
  if (a.k_pe.dtype != in_dt || a.v.dtype != in_dt) {
    *why = "k_nope, k_pe and v must share one dtype";
    return MLAKV_ERR_DTYPE;
  }
  if (out_dt < MLAKV_DTYPE_E4M3FN || out_dt > MLAKV_DTYPE_E5M2FNUZ) {
    *why = "k_out.dtype " + std::to_string(out_dt) + " is not an fp8 format";
    return MLAKV_ERR_DTYPE;
  }
  if (a.v_out.dtype != out_dt) {
    *why = "k_out and v_out must share one fp8 dtype";
    return MLAKV_ERR_DTYPE;
  }
  return MLAKV_OK;
}

// Rank, non-negative extents and strides, inner stride 1.
mlakv_status check_layout(const char* name, const mlakv_tensor& t, int rank_lo, int rank_hi, std::string* why) {
  if (t.ndim < rank_lo || t.ndim > rank_hi) {
    *why = std::string(name) + ": ndim is " + std::to_string(t.ndim) + ", expected " +
           (rank_lo == rank_hi ? std::to_string(rank_lo) : std::to_string(rank_lo) + " or " + std::to_string(rank_hi));
    return MLAKV_ERR_RANK;
  }
  for (int i = 0; i < t.ndim; ++i) {
    if (t.shape[i] < 0) {
      *why = std::string(name) + ": negative extent " + std::to_string(t.shape[i]) + " in dim " + std::to_string(i);
      return MLAKV_ERR_SHAPE;
    }
    if (t.strides[i] < 0) {
      *why = std::string(name) + ": negative stride " + std::to_string(t.strides[i]) + " in dim " + std::to_string(i);
      return MLAKV_ERR_STRIDE;
    }
  }
  const int last = t.ndim - 1;
  if (t.shape[last] > 1 && t.strides[last] != 1) {
    *why = std::string(name) + ": the innermost stride must be 1 (got " + std::to_string(t.strides[last]) + ")";
    return MLAKV_ERR_STRIDE;
  }
  return MLAKV_OK;
}

mlakv_status check_layouts(const mlakv_pack_args& a, std::string* why) {
  const mlakv_tensor* t[kTensorCount];
  arg_tensors(a, t);
  for (int i = 0; i < kTensorCount; ++i) {
    const int lo = i == kKPe ? 2 : 3;  // k_pe: [s, D_rope] or [s, 1, D_rope]
    if (mlakv_status st = check_layout(kOperandNames[i], *t[i], lo, 3, why)) return st;
  }
  return MLAKV_OK;
}

// Shapes agree with each other; fills p's extents.
mlakv_status check_shapes(const mlakv_pack_args& a, PackProblem* p, std::string* why) {
  const int64_t s = a.k_nope.shape[0], h = a.k_nope.shape[1];
  const int64_t dn = a.k_nope.shape[2], dv = a.v.shape[2];
  const bool pe3 = a.k_pe.ndim == 3;
  const int64_t dr = a.k_pe.shape[pe3 ? 2 : 1];
  auto shape_err = [&](const std::string& m) {
    *why = m + " (k_nope " + dims_text(a.k_nope) + ", k_pe " + dims_text(a.k_pe) + ", v " + dims_text(a.v) +
           ", k_out " + dims_text(a.k_out) + ", v_out " + dims_text(a.v_out) + ")";
    return MLAKV_ERR_SHAPE;
  };
  if (a.k_pe.shape[0] != s || a.v.shape[0] != s || a.k_out.shape[0] != s || a.v_out.shape[0] != s)
    return shape_err("token counts differ");
  if (pe3 && a.k_pe.shape[1] != 1) return shape_err("a 3-D k_pe must be [s, 1, D_rope]");
  if (a.v.shape[1] != h || a.k_out.shape[1] != h || a.v_out.shape[1] != h) return shape_err("head counts differ");
  if (dn < 1 || dr < 1 || dv < 1 || dn > kMaxHeadDim || dr > kMaxHeadDim || dv > kMaxHeadDim) {
    *why = "head dims (D_nope, D_rope, D_v) = (" + std::to_string(dn) + ", " + std::to_string(dr) + ", " +
           std::to_string(dv) + ") unsupported: each must be in 1.." + std::to_string(kMaxHeadDim);
    return MLAKV_ERR_UNSUPPORTED_DIMS;
  }
  if (a.k_out.shape[2] != dn + dr) return shape_err("k_out's last dim must be D_nope + D_rope");
  if (a.v_out.shape[2] != dv) return shape_err("v_out's last dim must be D_v");
  int64_t total;
  if (!mul_ok(s, h, &total) || !mul_ok(total, dn + dr + dv, &total)) {
    *why = "s * h * (D_nope + D_rope + D_v) overflows 64 bits";
    return MLAKV_ERR_SIZE_OVERFLOW;
  }
  p->s = s; p->h = h; p->d_nope = dn; p->d_rope = dr; p->d_v = dv;
  return MLAKV_OK;
}

// One operand's rows and byte span (pointer left NULL), checking the 64-bit arithmetic.
mlakv_status make_operand(OperandId id, const mlakv_tensor& t, int64_t n_t, int64_t n_h, int64_t st, int64_t sh,
                          int64_t row, Operand* o, std::string* why) {
  o->ptr = nullptr;
  o->esize = dtype_size(t.dtype);
  o->n_t = n_t;
  o->n_h = n_h;
  o->st = n_t > 1 ? st : 0;  // a stride over an extent of 1 is never used: normalised so fast paths see 0
  o->sh = n_h > 1 ? sh : 0;
  o->row = row;
  o->bytes = 0;
  if (n_t == 0 || n_h == 0) return MLAKV_OK;
  int64_t last = row, tmp = 0;  // elements from the first to one past the last
  const bool ok = mul_ok(n_t - 1, o->st, &tmp) && add_ok(last, tmp, &last) && mul_ok(n_h - 1, o->sh, &tmp) &&
                  add_ok(last, tmp, &last) && mul_ok(last, o->esize, &o->bytes) && mul_ok(o->st, o->esize, &tmp) &&
                  mul_ok(o->sh, o->esize, &tmp);
  if (!ok) {
    *why = std::string(kOperandNames[id]) + ": shape " + dims_text(t) + " with its strides spans more than 64-bit offsets";
    return MLAKV_ERR_SIZE_OVERFLOW;
  }
  return MLAKV_OK;
}

mlakv_status make_operands(const mlakv_pack_args& a, PackProblem* p, std::string* why) {
  const int64_t s = p->s, h = p->h;
  Operand* o = p->op;
  mlakv_status st;
  if ((st = make_operand(kKNope, a.k_nope, s, h, a.k_nope.strides[0], a.k_nope.strides[1], p->d_nope, &o[kKNope], why)) ||
      (st = make_operand(kKPe, a.k_pe, s, 1, a.k_pe.strides[0], 0, p->d_rope, &o[kKPe], why)) ||
      (st = make_operand(kV, a.v, s, h, a.v.strides[0], a.v.strides[1], p->d_v, &o[kV], why)) ||
      (st = make_operand(kKOut, a.k_out, s, h, a.k_out.strides[0], a.k_out.strides[1], p->d_k(), &o[kKOut], why)) ||
      (st = make_operand(kVOut, a.v_out, s, h, a.v_out.strides[0], a.v_out.strides[1], p->d_v, &o[kVOut], why)))
    return st;
  for (OperandId i : {kKScaleInv, kVScaleInv}) o[i] = Operand{nullptr, 4, 1, 1, 0, 0, 1, 4};
  return MLAKV_OK;
}

// ---- overlap ------------------------------------------------------------------------------------------

// An operand in bytes at its address: n_t x n_h rows of `row` bytes at byte strides st, sh.
struct Lattice {
  uintptr_t base;
  int64_t n_t, n_h, st, sh, row, span;
};
Lattice lattice(const Operand& o) {
  return {reinterpret_cast<uintptr_t>(o.ptr), o.n_t, o.n_h, o.st * o.esize, o.sh * o.esize, o.row * o.esize, o.bytes};
}

// Rows of one output must not alias each other: with the outer dims sorted by stride, each
// stride must cover the extent of everything inside it.
bool self_disjoint(const Lattice& r) {
  struct D { int64_t n, st; };
  D d[2] = {{r.n_t, r.st}, {r.n_h, r.sh}};
  if (d[0].st > d[1].st) std::swap(d[0], d[1]);
  int64_t covered = r.row;
  for (const D& x : d) {
    if (x.n <= 1) continue;
    if (x.st < covered) return false;
    int64_t c;
    if (!mul_ok(x.st, x.n, &c)) return false;
    covered = c;
  }
  return true;
}

int64_t gcd64(int64_t a, int64_t b) {
  while (b) { int64_t t = a % b; a = b; b = t; }
  return a;
}

int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

// Exact test for two operands with the same row lattice (same extents and strides), e.g. k_out and
// v_out as two parts of one [s, h, D_k + D_v] buffer, padded or not: a byte is shared iff some
// lattice difference di*S + dj*s (|di| < N, |dj| < n) lies in (-len_b - d, len_a - d), where d is
// the distance between the bases. Returns 1 disjoint, 0 overlapping, -1 not this case.
int same_lattice_disjoint(const Lattice& a, const Lattice& b) {
  if (a.n_t != b.n_t || a.n_h != b.n_h || a.st != b.st || a.sh != b.sh) return -1;
  int64_t S = a.n_t > 1 ? a.st : 0, N = a.n_t, s = a.n_h > 1 ? a.sh : 0, n = a.n_h;
  if (s > S) { std::swap(S, s); std::swap(N, n); }  // S: the outer (larger) stride
  const int64_t d = int64_t(b.base - a.base);       // |d| < both spans here
  const int64_t lo = -b.row - d, hi = a.row - d;    // open interval
  int64_t di_lo = 0, di_hi = 0;
  if (S > 0) {
    di_lo = std::max<int64_t>(-(N - 1), floor_div(lo - (n - 1) * s, S));
    di_hi = std::min<int64_t>(N - 1, floor_div(hi + (n - 1) * s, S) + 1);
    if (di_hi - di_lo > 64) return 0;  // not worth enumerating: call it overlap
  }
  for (int64_t di = di_lo; di <= di_hi; ++di) {
    const int64_t base = di * S;
    if (s == 0) {
      if (lo < base && base < hi) return 0;
      continue;
    }
    // dj with lo < base + dj*s < hi
    const int64_t dj_lo = std::max<int64_t>(-(n - 1), floor_div(lo - base, s) + 1);
    const int64_t dj_hi = std::min<int64_t>(n - 1, -floor_div(-(hi - base), s) - 1);
    if (dj_lo <= dj_hi) return 0;
  }
  return 1;
}

// True when no byte belongs to both. Exact when the spans are disjoint or the two share one row
// lattice; otherwise proves disjointness modulo the common period of both operands' row strides,
// and reports overlap if it cannot.
bool disjoint(const Lattice& a, const Lattice& b) {
  if (a.span == 0 || b.span == 0) return true;
  if (a.base + uint64_t(a.span) <= b.base || b.base + uint64_t(b.span) <= a.base) return true;
  const int same = same_lattice_disjoint(a, b);
  if (same >= 0) return same == 1;
  int64_t p = 0;
  if (a.n_t > 1) p = gcd64(p, a.st);
  if (a.n_h > 1) p = gcd64(p, a.sh);
  if (b.n_t > 1) p = gcd64(p, b.st);
  if (b.n_h > 1) p = gcd64(p, b.sh);
  if (p == 0 || a.row + b.row > p) return false;
  const int64_t ra = int64_t(a.base % uint64_t(p)), rb = int64_t(b.base % uint64_t(p));
  // arcs [ra, ra+la) and [rb, rb+lb) on a circle of length p
  const int64_t d = ((rb - ra) % p + p) % p;  // start of b relative to a
  return d >= a.row && d + b.row <= p;
}

mlakv_status check_outputs_self_disjoint(const PackProblem& p, std::string* why) {
  if (p.empty()) return MLAKV_OK;
  for (OperandId o : {kKOut, kVOut}) {
    const Lattice r = lattice(p.op[o]);
    if (!self_disjoint(r)) {
      *why = std::string(kOperandNames[o]) + ": its strides make rows alias each other (token stride " +
             std::to_string(r.st) + " B, head stride " + std::to_string(r.sh) + " B, row " + std::to_string(r.row) + " B)";
      return MLAKV_ERR_STRIDE;
    }
  }
  return MLAKV_OK;
}

}  // namespace

void arg_pointers(const mlakv_pack_args& a, const void* (&out)[kOperandCount]) {
  const mlakv_tensor* t[kTensorCount];
  arg_tensors(a, t);
  for (int i = 0; i < kTensorCount; ++i) out[i] = t[i]->data;
  out[kKScaleInv] = a.k_scale_inv_ptr;
  out[kVScaleInv] = a.v_scale_inv_ptr;
}

mlakv_status load_pack_args(const mlakv_pack_args* in, mlakv_pack_args* out, std::string* why) {
  if (!in) { *why = "args is NULL"; return MLAKV_ERR_NULL_POINTER; }
  const size_t n = in->struct_size;
  if (n < sizeof(mlakv_pack_args)) {
    *why = "args->struct_size is " + std::to_string(n) + ", this ABI's smallest is " +
           std::to_string(sizeof(mlakv_pack_args)) + " (initialise with MLAKV_PACK_ARGS_INIT)";
    return MLAKV_ERR_STRUCT_SIZE;
  }
  if (n > (size_t(1) << 20)) {
    *why = "args->struct_size is " + std::to_string(n) + ": not a struct size";
    return MLAKV_ERR_STRUCT_SIZE;
  }
  // A newer caller may pass fields this library does not know, provided they are all zero.
  const unsigned char* bytes = reinterpret_cast<const unsigned char*>(in);
  for (size_t i = sizeof(mlakv_pack_args); i < n; ++i)
    if (bytes[i]) {
      *why = "args has non-zero fields past this library's struct (byte " + std::to_string(i) + "): built against a newer mlakv";
      return MLAKV_ERR_STRUCT_SIZE;
    }
  std::memcpy(out, in, sizeof(mlakv_pack_args));
  out->struct_size = sizeof(mlakv_pack_args);
  return MLAKV_OK;
}

mlakv_status validate_geometry(const mlakv_pack_args& a, PackProblem* p, std::string* why) {
  *p = PackProblem();
  mlakv_status st;
  if ((st = check_enums(a, why)) || (st = check_dtypes(a, why)) || (st = check_layouts(a, why)) ||
      (st = check_shapes(a, p, why)) || (st = make_operands(a, p, why)) || (st = check_outputs_self_disjoint(*p, why)))
    return st;
  const mlakv_dtype in_dt = a.k_nope.dtype;
  p->in_type = in_dt == MLAKV_DTYPE_BF16 ? InType::BF16 : in_dt == MLAKV_DTYPE_FP16 ? InType::FP16 : InType::FP32;
  p->out_format = Fp8Format(a.k_out.dtype - MLAKV_DTYPE_E4M3FN);
  p->device = a.device;
  p->pdl = a.pdl;
  p->flags = a.flags;
  return MLAKV_OK;
}

mlakv_status validate_pointers(const mlakv_pack_args& a, PackProblem* p, std::string* why) {
  const void* ptr[kOperandCount];
  arg_pointers(a, ptr);
  Lattice r[kOperandCount];
  // ---- NULL (allowed for an empty call, and for the optional scale pointers), alignment, address space
  for (int i = 0; i < kOperandCount; ++i) {
    const Operand& o = p->op[i];
    r[i] = lattice(o);
    r[i].base = reinterpret_cast<uintptr_t>(ptr[i]);
    const bool tensor = i < kTensorCount;
    if (!ptr[i]) {
      if (!tensor || p->empty()) continue;
      *why = std::string(kOperandNames[i]) + ".data is NULL";
      return MLAKV_ERR_NULL_POINTER;
    }
    if (r[i].base & uintptr_t(o.esize - 1)) {  // esize: 1, 2 or 4
      *why = std::string(kOperandNames[i]) + (tensor ? ".data is not aligned to its " : " is not aligned to its ") +
             std::to_string(o.esize) + "-byte elements";
      return MLAKV_ERR_ALIGNMENT;
    }
    if (uint64_t(o.bytes) > UINTPTR_MAX - r[i].base) {
      *why = std::string(kOperandNames[i]) + ": its shape and strides run past the end of the address space";
      return MLAKV_ERR_SIZE_OVERFLOW;
    }
  }
  // ---- overlap: an output may share no byte with any other operand
  if (!p->empty())
    for (OperandId o : {kKOut, kVOut})
      for (int i = 0; i < kOperandCount; ++i)
        if (i != o && !(i == kKOut && o == kVOut) && ptr[i] && !disjoint(r[o], r[i])) {
          *why = std::string(kOperandNames[o]) + " overlaps " + kOperandNames[i] + " in memory";
          return MLAKV_ERR_OVERLAP;
        }
  for (int i = 0; i < kOperandCount; ++i) p->op[i].ptr = ptr[i];
  p->k_scale_inv = a.k_scale_inv;
  p->v_scale_inv = a.v_scale_inv;
  p->stream = a.stream;
  return MLAKV_OK;
}

bool same_geometry(const mlakv_pack_args& a, const mlakv_pack_args& b) {
  // every field validate_geometry reads: each tensor's bytes after its data pointer, and the
  // call's enums, device and flags (not the scales, scale pointers or stream)
  constexpr size_t kAfterData = offsetof(mlakv_tensor, dtype);
  const mlakv_tensor* ta[kTensorCount];
  const mlakv_tensor* tb[kTensorCount];
  arg_tensors(a, ta);
  arg_tensors(b, tb);
  for (int i = 0; i < kTensorCount; ++i)
    if (std::memcmp(reinterpret_cast<const char*>(ta[i]) + kAfterData, reinterpret_cast<const char*>(tb[i]) + kAfterData,
                    sizeof(mlakv_tensor) - kAfterData))
      return false;
  return a.struct_size == b.struct_size && a.backend == b.backend && a.device == b.device && a.pdl == b.pdl &&
         a.flags == b.flags;
}

}  // namespace mlakv
