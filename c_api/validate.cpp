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

std::string dims_text(const mlakv_tensor& t) {
  std::string s = "[";
  for (int i = 0; i < t.ndim && i < MLAKV_MAX_RANK; ++i) s += (i ? ", " : "") + std::to_string(t.shape[i]);
  return s + "]";
}

// Rank, non-negative shape and strides, inner stride; extents are returned in shape order.
mlakv_status check_layout(const char* name, const mlakv_tensor& t, int rank_lo, int rank_hi,
                          std::string* why) {
  if (t.ndim < rank_lo || t.ndim > rank_hi) {
    *why = std::string(name) + ": ndim is " + std::to_string(t.ndim) + ", expected " +
           (rank_lo == rank_hi ? std::to_string(rank_lo)
                               : std::to_string(rank_lo) + " or " + std::to_string(rank_hi));
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

// Fills r's byte geometry (base excluded), checking 64-bit arithmetic.
mlakv_status make_rows(Rows* r, const mlakv_tensor& t, int64_t n_t, int64_t n_h, int64_t st,
                       int64_t sh, int64_t row_elems, std::string* why) {
  const int64_t e = dtype_size(t.dtype);
  r->base = 0;
  r->span = r->st = r->sh = r->row_bytes = 0;
  r->n_t = n_t;
  r->n_h = n_h;
  int64_t last = 0, tmp = 0;  // element offset of the last element
  const bool ok = mul_ok(n_t > 0 ? n_t - 1 : 0, st, &tmp) && add_ok(last, tmp, &last) &&
                  mul_ok(n_h > 0 ? n_h - 1 : 0, sh, &tmp) && add_ok(last, tmp, &last) &&
                  add_ok(last, row_elems, &last) && mul_ok(last, e, &r->span) && mul_ok(st, e, &r->st) &&
                  mul_ok(sh, e, &r->sh) && mul_ok(row_elems, e, &r->row_bytes);
  if (!ok) {
    *why = std::string(r->name) + ": shape " + dims_text(t) + " with its strides spans more than 64-bit offsets";
    return MLAKV_ERR_SIZE_OVERFLOW;
  }
  return MLAKV_OK;
}

// Rows of one output must not alias each other: with the outer dims sorted by stride, each
// stride must cover the extent of everything inside it.
bool self_disjoint(const Rows& r) {
  struct D { int64_t n, st; };
  D d[2] = {{r.n_t, r.st}, {r.n_h, r.sh}};
  if (d[0].st > d[1].st) std::swap(d[0], d[1]);
  int64_t covered = r.row_bytes;
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

// Exact test for two tensors with the same row lattice (same extents and strides), e.g. k_out and
// v_out as two parts of one [s, h, D_k + D_v] buffer, padded or not: a byte is shared iff some
// lattice difference di*S + dj*s (|di| < N, |dj| < n) lies in (-len_b - d, len_a - d), where d is
// the distance between the bases. Returns 1 disjoint, 0 overlapping, -1 not this case.
int same_lattice_disjoint(const Rows& a, const Rows& b) {
  if (a.n_t != b.n_t || a.n_h != b.n_h || a.st != b.st || a.sh != b.sh) return -1;
  int64_t S = a.n_t > 1 ? a.st : 0, N = a.n_t, s = a.n_h > 1 ? a.sh : 0, n = a.n_h;
  if (s > S) { std::swap(S, s); std::swap(N, n); }  // S: the outer (larger) stride
  const int64_t d = int64_t(b.base - a.base);       // |d| < both spans here
  const int64_t lo = -b.row_bytes - d, hi = a.row_bytes - d;  // open interval
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
// lattice; otherwise proves disjointness modulo the common period of both tensors' row strides,
// and reports overlap if it cannot.
bool disjoint(const Rows& a, const Rows& b) {
  if (a.span == 0 || b.span == 0) return true;
  if (a.base + uint64_t(a.span) <= b.base || b.base + uint64_t(b.span) <= a.base) return true;
  const int same = same_lattice_disjoint(a, b);
  if (same >= 0) return same == 1;
  int64_t p = 0;
  if (a.n_t > 1) p = gcd64(p, a.st);
  if (a.n_h > 1) p = gcd64(p, a.sh);
  if (b.n_t > 1) p = gcd64(p, b.st);
  if (b.n_h > 1) p = gcd64(p, b.sh);
  if (p == 0 || a.row_bytes + b.row_bytes > p) return false;
  const int64_t ra = int64_t(a.base % uint64_t(p)), rb = int64_t(b.base % uint64_t(p));
  // arcs [ra, ra+la) and [rb, rb+lb) on a circle of length p
  const int64_t d = ((rb - ra) % p + p) % p;  // start of b relative to a
  return d >= a.row_bytes && d + b.row_bytes <= p;
}

}  // namespace

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

mlakv_status validate_geometry(const mlakv_pack_args& a, Geometry* g, PackProblem* p, std::string* why) {
  mlakv_status st;
  // ---- enums and flags
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

  // ---- dtypes
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

  // ---- ranks, signs, inner strides
  if ((st = check_layout("k_nope", a.k_nope, 3, 3, why)) ||
      (st = check_layout("k_pe", a.k_pe, 2, 3, why)) || (st = check_layout("v", a.v, 3, 3, why)) ||
      (st = check_layout("k_out", a.k_out, 3, 3, why)) || (st = check_layout("v_out", a.v_out, 3, 3, why)))
    return st;

  // ---- shapes
  const int64_t s = a.k_nope.shape[0], h = a.k_nope.shape[1];
  const int64_t dn = a.k_nope.shape[2], dv = a.v.shape[2];
  const bool pe3 = a.k_pe.ndim == 3;
  const int64_t dr = a.k_pe.shape[pe3 ? 2 : 1];
  auto shape_err = [&](const std::string& m) {
    *why = m + " (k_nope " + dims_text(a.k_nope) + ", k_pe " + dims_text(a.k_pe) + ", v " +
           dims_text(a.v) + ", k_out " + dims_text(a.k_out) + ", v_out " + dims_text(a.v_out) + ")";
    return MLAKV_ERR_SHAPE;
  };
  if (a.k_pe.shape[0] != s || a.v.shape[0] != s || a.k_out.shape[0] != s || a.v_out.shape[0] != s)
    return shape_err("token counts differ");
  if (pe3 && a.k_pe.shape[1] != 1) return shape_err("a 3-D k_pe must be [s, 1, D_rope]");
  if (a.v.shape[1] != h || a.k_out.shape[1] != h || a.v_out.shape[1] != h)
    return shape_err("head counts differ");
  if (dn < 1 || dr < 1 || dv < 1 || dn > kMaxHeadDim || dr > kMaxHeadDim || dv > kMaxHeadDim) {
    *why = "head dims (D_nope, D_rope, D_v) = (" + std::to_string(dn) + ", " + std::to_string(dr) +
           ", " + std::to_string(dv) + ") unsupported: each must be in 1.." + std::to_string(kMaxHeadDim);
    return MLAKV_ERR_UNSUPPORTED_DIMS;
  }
  if (a.k_out.shape[2] != dn + dr) return shape_err("k_out's last dim must be D_nope + D_rope");
  if (a.v_out.shape[2] != dv) return shape_err("v_out's last dim must be D_v");

  // ---- sizes, aliasing within an output
  int64_t rows;
  if (!mul_ok(s, h, &rows) || !mul_ok(rows, dn + dr + dv, &rows)) {
    *why = "s * h * (D_nope + D_rope + D_v) overflows 64 bits";
    return MLAKV_ERR_SIZE_OVERFLOW;
  }
  Rows* r = g->rows;
  const int64_t pe_st = a.k_pe.strides[0];
  for (int i = 0; i < 5; ++i) r[i].name = kPointerNames[i];
  if ((st = make_rows(&r[0], a.k_nope, s, h, a.k_nope.strides[0], a.k_nope.strides[1], dn, why)) ||
      (st = make_rows(&r[1], a.k_pe, s, 1, pe_st, 0, dr, why)) ||
      (st = make_rows(&r[2], a.v, s, h, a.v.strides[0], a.v.strides[1], dv, why)) ||
      (st = make_rows(&r[3], a.k_out, s, h, a.k_out.strides[0], a.k_out.strides[1], dn + dr, why)) ||
      (st = make_rows(&r[4], a.v_out, s, h, a.v_out.strides[0], a.v_out.strides[1], dv, why)))
    return st;
  g->empty = s == 0 || h == 0;
  if (!g->empty)
    for (int o = 3; o <= 4; ++o)
      if (!self_disjoint(r[o])) {
        *why = std::string(r[o].name) + ": its strides make rows alias each other (token stride " +
               std::to_string(r[o].st) + " B, head stride " + std::to_string(r[o].sh) + " B, row " +
               std::to_string(r[o].row_bytes) + " B)";
        return MLAKV_ERR_STRIDE;
      }

  // ---- the normalised problem, pointers and scales left for validate_pointers
  *p = PackProblem();
  p->s = s; p->h = h; p->d_nope = dn; p->d_rope = dr; p->d_v = dv;
  p->in_type = in_dt == MLAKV_DTYPE_BF16 ? InType::BF16 : in_dt == MLAKV_DTYPE_FP16 ? InType::FP16 : InType::FP32;
  p->out_format = Fp8Format(out_dt - MLAKV_DTYPE_E4M3FN);
  p->k_nope_st = a.k_nope.strides[0]; p->k_nope_sh = a.k_nope.strides[1];
  p->k_pe_st = pe_st;
  p->v_st = a.v.strides[0]; p->v_sh = a.v.strides[1];
  p->k_out_st = a.k_out.strides[0]; p->k_out_sh = a.k_out.strides[1];
  p->v_out_st = a.v_out.strides[0]; p->v_out_sh = a.v_out.strides[1];
  p->device = a.device; p->pdl = a.pdl; p->flags = a.flags;
  // extents of 1 make their stride irrelevant; normalise so fast paths see aligned strides
  if (s == 1) { p->k_nope_st = p->k_pe_st = p->v_st = p->k_out_st = p->v_out_st = 0; }
  if (h == 1) { p->k_nope_sh = p->v_sh = p->k_out_sh = p->v_out_sh = 0; }
  return MLAKV_OK;
}

mlakv_status validate_pointers(const mlakv_pack_args& a, const Geometry& g, PackProblem* p, std::string* why) {
  // ---- pointers (NULL allowed only for an empty call), element alignment, address space
  const mlakv_tensor* all[5] = {&a.k_nope, &a.k_pe, &a.v, &a.k_out, &a.v_out};
  Rows r[7];
  for (int i = 0; i < 5; ++i) {
    r[i] = g.rows[i];
    r[i].base = reinterpret_cast<uintptr_t>(all[i]->data);
    if (!all[i]->data) {
      if (g.empty) continue;
      *why = std::string(kPointerNames[i]) + ".data is NULL";
      return MLAKV_ERR_NULL_POINTER;
    }
    const int e = dtype_size(all[i]->dtype);
    if (r[i].base & uintptr_t(e - 1)) {  // e: 1, 2 or 4
      *why = std::string(kPointerNames[i]) + ".data is not aligned to its " + std::to_string(e) + "-byte elements";
      return MLAKV_ERR_ALIGNMENT;
    }
    if (uint64_t(r[i].span) > UINTPTR_MAX - r[i].base) {
      *why = std::string(kPointerNames[i]) + ": shape " + dims_text(*all[i]) +
             " with its strides runs past the end of the address space";
      return MLAKV_ERR_SIZE_OVERFLOW;
    }
  }
  const float* sp[2] = {a.k_scale_inv_ptr, a.v_scale_inv_ptr};
  for (int i = 0; i < 2; ++i)
    if (sp[i] && reinterpret_cast<uintptr_t>(sp[i]) % alignof(float)) {
      *why = std::string(kPointerNames[5 + i]) + " is not 4-byte aligned";
      return MLAKV_ERR_ALIGNMENT;
    }

  // ---- overlap: an output may share no byte with any other tensor
  if (!g.empty) {
    int n = 5;
    for (int i = 0; i < 2; ++i)
      if (sp[i]) {
        Rows& x = r[n++];
        x.name = kPointerNames[5 + i];
        x.base = reinterpret_cast<uintptr_t>(sp[i]);
        x.n_t = x.n_h = 1; x.st = x.sh = 0; x.row_bytes = 4; x.span = 4;
      }
    for (int o = 3; o <= 4; ++o)
      for (int i = 0; i < n; ++i)
        if (i != o && !(i == 3 && o == 4) && !disjoint(r[o], r[i])) {
          *why = std::string(r[o].name) + " overlaps " + r[i].name + " in memory";
          return MLAKV_ERR_OVERLAP;
        }
  }
  p->k_nope = a.k_nope.data; p->k_pe = a.k_pe.data; p->v = a.v.data;
  p->k_out = a.k_out.data; p->v_out = a.v_out.data;
  p->k_scale = a.k_scale_inv; p->v_scale = a.v_scale_inv;
  p->k_scale_ptr = a.k_scale_inv_ptr; p->v_scale_ptr = a.v_scale_inv_ptr;
  p->stream = a.stream;
  return MLAKV_OK;
}

void copy_pointer_fields(const mlakv_pack_args& src, mlakv_pack_args* dst) {
  dst->k_nope.data = src.k_nope.data; dst->k_pe.data = src.k_pe.data; dst->v.data = src.v.data;
  dst->k_out.data = src.k_out.data; dst->v_out.data = src.v_out.data;
  dst->k_scale_inv = src.k_scale_inv; dst->v_scale_inv = src.v_scale_inv;
  dst->k_scale_inv_ptr = src.k_scale_inv_ptr; dst->v_scale_inv_ptr = src.v_scale_inv_ptr;
  dst->stream = src.stream;
}

bool same_geometry(const mlakv_pack_args& a, const mlakv_pack_args& b) {
  // every field validate_geometry reads: each tensor's bytes after its data pointer, and the
  // call's enums, device and flags (not the scales, scale pointers or stream)
  constexpr size_t kAfterData = offsetof(mlakv_tensor, dtype);
  const mlakv_tensor* ta[5] = {&a.k_nope, &a.k_pe, &a.v, &a.k_out, &a.v_out};
  const mlakv_tensor* tb[5] = {&b.k_nope, &b.k_pe, &b.v, &b.k_out, &b.v_out};
  for (int i = 0; i < 5; ++i)
    if (std::memcmp(reinterpret_cast<const char*>(ta[i]) + kAfterData,
                    reinterpret_cast<const char*>(tb[i]) + kAfterData, sizeof(mlakv_tensor) - kAfterData))
      return false;
  return a.struct_size == b.struct_size && a.backend == b.backend && a.device == b.device && a.pdl == b.pdl &&
         a.flags == b.flags;
}

}  // namespace mlakv
