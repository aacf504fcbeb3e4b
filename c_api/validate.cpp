#include "validate.h"

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <numeric>
#include <string>

namespace mlakv {
namespace {

constexpr int64_t kMaxHeadDim = int64_t(1) << 20;
// No tensor can span more bytes than this: the largest user address space of any 64-bit platform
// (x86-64 with 5-level paging: 2^56) is smaller. Byte arithmetic on spans below it cannot overflow.
constexpr int64_t kMaxSpan = int64_t(1) << 57;

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
  if (a.scale_granularity != MLAKV_SCALE_PER_TENSOR && a.scale_granularity != MLAKV_SCALE_PER_HEAD) {
    *why = "scale_granularity " + std::to_string(a.scale_granularity) + " is not MLAKV_SCALE_PER_TENSOR/PER_HEAD";
    return MLAKV_ERR_INVALID_ARGUMENT;
  }
  if (a.reserved) {
    *why = "the reserved field is not 0";
    return MLAKV_ERR_INVALID_ARGUMENT;
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

// Rank and non-negative extents.
mlakv_status check_extents(const char* name, const mlakv_tensor& t, int rank_lo, int rank_hi, std::string* why) {
  if (t.ndim < rank_lo || t.ndim > rank_hi) {
    *why = std::string(name) + ": ndim is " + std::to_string(t.ndim) + ", expected " +
           (rank_lo == rank_hi ? std::to_string(rank_lo) : std::to_string(rank_lo) + " or " + std::to_string(rank_hi));
    return MLAKV_ERR_RANK;
  }
  for (int i = 0; i < t.ndim; ++i)
    if (t.shape[i] < 0) {
      *why = std::string(name) + ": negative extent " + std::to_string(t.shape[i]) + " in dim " + std::to_string(i);
      return MLAKV_ERR_SHAPE;
    }
  return MLAKV_OK;
}

// Non-negative strides, inner stride 1 (not asked of an empty call, which reads and writes nothing).
mlakv_status check_strides(const char* name, const mlakv_tensor& t, std::string* why) {
  for (int i = 0; i < t.ndim; ++i) {
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

mlakv_status check_ranks(const mlakv_pack_args& a, std::string* why) {
  const mlakv_tensor* t[kTensorCount];
  arg_tensors(a, t);
  for (int i = 0; i < kTensorCount; ++i) {
    const int lo = i == kKPe ? 2 : 3;  // k_pe: [s, D_rope] or [s, 1, D_rope]
    if (mlakv_status st = check_extents(kOperandNames[i], *t[i], lo, 3, why)) return st;
  }
  return MLAKV_OK;
}

mlakv_status check_all_strides(const mlakv_pack_args& a, std::string* why) {
  const mlakv_tensor* t[kTensorCount];
  arg_tensors(a, t);
  for (int i = 0; i < kTensorCount; ++i)
    if (mlakv_status st = check_strides(kOperandNames[i], *t[i], why)) return st;
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
  if (o->bytes > kMaxSpan) {
    *why = std::string(kOperandNames[id]) + ": shape " + dims_text(t) + " with its strides spans " +
           std::to_string(o->bytes) + " bytes, more than any address space holds (2^57)";
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
  // scales and amax: one float, or h per head
  const int64_t n = p->per_head ? h : 1;
  for (OperandId i : {kKScaleInv, kVScaleInv, kKAmax, kVAmax}) o[i] = Operand{nullptr, 4, 1, 1, 0, 0, n, 4 * n};
  return MLAKV_OK;
}

// ---- overlap ------------------------------------------------------------------------------------------
// Exact answers. Two operands share a byte iff some difference of their row offsets falls strictly
// between -row_b and row_a: a question about a few integer variables in boxes, decided by counting
// lattice points (floor sums), not by enumerating rows.

using i128 = __int128;

// An operand in bytes at its address: n_t x n_h rows of `row` bytes at byte strides st, sh.
struct Lattice {
  uintptr_t base;
  int64_t n_t, n_h, st, sh, row, span;
};
Lattice lattice(const Operand& o) {
  return {reinterpret_cast<uintptr_t>(o.ptr), o.n_t, o.n_h, o.st * o.esize, o.sh * o.esize, o.row * o.esize, o.bytes};
}

i128 floor_div(i128 a, i128 b) {  // b > 0
  const i128 q = a / b;
  return q - (a % b != 0 && a < 0);
}
i128 pos_mod(i128 a, i128 m) { return a - floor_div(a, m) * m; }  // m > 0: in [0, m)

// Sum over k in [0, n) of floor((a*k + b) / m), for n >= 0, m > 0, 0 <= a, b < m. Each round swaps
// the roles of the two axes of the lattice points under the line (the Euclidean algorithm), so it
// takes O(log m) rounds; with spans below 2^57 every value fits in 128 bits.
i128 floor_sum(i128 n, i128 m, i128 a, i128 b) {
  i128 sum = 0;
  for (;;) {
    if (a >= m) { sum += n * (n - 1) / 2 * (a / m); a %= m; }
    if (b >= m) { sum += n * (b / m); b %= m; }
    const i128 top = a * n + b;  // the points under the line, counted from the other axis
    if (top < m) return sum;
    n = top / m;
    b = top % m;
    std::swap(m, a);
  }
}

// Some integer i in [i0, i1] with lo < i*c < hi (c >= 0)?
bool hits1(i128 c, i128 i0, i128 i1, i128 lo, i128 hi) {
  if (i0 > i1) return false;
  if (c == 0) return lo < 0 && 0 < hi;
  return std::max(i0, floor_div(lo, c) + 1) <= std::min(i1, -floor_div(-hi, c) - 1);
}

// Some integers i in [i0, i1], j in [j0, j1] with lo < i*S + j*s < hi (S, s >= 0)?
bool hits2(i128 S, i128 i0, i128 i1, i128 s, i128 j0, i128 j1, i128 lo, i128 hi) {
  if (i0 > i1 || j0 > j1 || hi - lo < 2) return false;
  if (S == 0) return hits1(s, j0, j1, lo, hi);
  if (s == 0) return hits1(S, i0, i1, lo, hi);
  // A solution on the boundary j = j0 or j = j1?
  if (hits1(S, i0, i1, lo - j0 * s, hi - j0 * s) || hits1(S, i0, i1, lo - j1 * s, hi - j1 * s)) return true;
  // Otherwise every solution has j0 < j < j1, and for an i with i*S in (lo - (j1-1)s, hi - (j0+1)s)
  // any j in the window (lo - iS, hi - iS)/s lies there (the window reaching past j0 or j1 would
  // contain j0 or j1 itself). So: is the window of some such i non-empty?
  const i128 ia = std::max(i0, floor_div(lo - (j1 - 1) * s, S) + 1);
  const i128 ib = std::min(i1, -floor_div(-(hi - (j0 + 1) * s), S) - 1);
  if (ia > ib) return false;
  // The window holds an integer iff the first value >= lo + 1 congruent to iS mod s, which is
  // lo + 1 + ((iS - (lo + 1)) mod s), is <= hi - 1.
  const i128 w = hi - lo - 2;
  if (w >= s - 1) return true;
  // count k in [0, K) with (A k + B) mod s <= w, where i = ia + k
  const i128 K = ib - ia + 1, A = pos_mod(S, s), B = pos_mod(ia * S - (lo + 1), s);
  const i128 count = floor_sum(K, s, A, B) - (floor_sum(K, s, A, B - w - 1 + s) - K);
  return count > 0;
}

// A term c*x, x in [x0, x1], of a sum of such terms.
struct Term {
  i128 c, x0, x1;
};

enum class Overlap { kNo, kYes, kUnknown };

// Some choice of each term's x with lo < sum of c*x < hi? Terms with c < 0 are mirrored, terms with
// equal c merged (their sum takes every value between its ends), fixed terms moved into lo/hi; up
// to two free terms are decided exactly, more by enumerating the smallest ones within a budget.
Overlap hits(Term* t, int n, i128 lo, i128 hi) {
  Term u[4];
  int m = 0;
  for (int i = 0; i < n; ++i) {
    Term x = t[i];
    if (x.c < 0) x = {-x.c, -x.x1, -x.x0};
    if (x.c == 0 || x.x0 == x.x1) {  // fixed contribution
      lo -= x.c * x.x0;
      hi -= x.c * x.x0;
      continue;
    }
    int j = 0;
    while (j < m && u[j].c != x.c) ++j;
    if (j < m) { u[j].x0 += x.x0; u[j].x1 += x.x1; }
    else u[m++] = x;
  }
  if (m == 0) return lo < 0 && 0 < hi ? Overlap::kYes : Overlap::kNo;
  if (m == 1) return hits1(u[0].c, u[0].x0, u[0].x1, lo, hi) ? Overlap::kYes : Overlap::kNo;
  if (m == 2) return hits2(u[0].c, u[0].x0, u[0].x1, u[1].c, u[1].x0, u[1].x1, lo, hi) ? Overlap::kYes : Overlap::kNo;
  // three or four free terms: enumerate all but the two widest
  for (int i = 1; i < m; ++i)  // by width (insertion sort of at most four)
    for (int j = i; j > 0 && u[j].x1 - u[j].x0 < u[j - 1].x1 - u[j - 1].x0; --j) std::swap(u[j], u[j - 1]);
  i128 combos = 1;
  for (int i = 0; i < m - 2; ++i) combos *= u[i].x1 - u[i].x0 + 1;
  if (combos > (i128(1) << 16)) return Overlap::kUnknown;
  const Term& p = u[m - 2];
  const Term& q = u[m - 1];
  for (i128 a = u[0].x0; a <= u[0].x1; ++a)
    for (i128 b = m == 4 ? u[1].x0 : 0; b <= (m == 4 ? u[1].x1 : 0); ++b) {
      const i128 off = u[0].c * a + (m == 4 ? u[1].c * b : 0);
      if (hits2(p.c, p.x0, p.x1, q.c, q.x0, q.x1, lo - off, hi - off)) return Overlap::kYes;
    }
  return Overlap::kNo;
}

// Two distinct rows of one output share a byte?
bool self_overlaps(const Lattice& r) {
  // rows (t, h) and (t + dt, h + dh): |dt*st + dh*sh| < row with (dt, dh) != 0; by symmetry dt > 0,
  // or dt = 0 and dh > 0
  const i128 row = r.row;
  if (hits1(r.sh, 1, r.n_h - 1, -row, row)) return true;
  return hits2(r.st, 1, r.n_t - 1, r.sh, -(r.n_h - 1), r.n_h - 1, -row, row);
}

// Whether a and b share a byte. kUnknown only for two operands with more than two independent
// dimensions between them whose smaller extents are all large (not a layout tensors have).
Overlap overlaps(const Lattice& a, const Lattice& b) {
  if (a.span == 0 || b.span == 0) return Overlap::kNo;
  if (a.base + uint64_t(a.span) <= b.base || b.base + uint64_t(b.span) <= a.base) return Overlap::kNo;
  // row (ta, ha) of a at ta*st_a + ha*sh_a, row (tb, hb) of b at d + tb*st_b + hb*sh_b: they share a
  // byte iff -row_b < d + tb*st_b + hb*sh_b - ta*st_a - ha*sh_a < row_a
  const i128 d = i128(b.base) - i128(a.base);
  Term t[4] = {{b.st, 0, b.n_t - 1}, {b.sh, 0, b.n_h - 1}, {-i128(a.st), 0, a.n_t - 1}, {-i128(a.sh), 0, a.n_h - 1}};
  const Overlap o = hits(t, 4, -i128(b.row) - d, i128(a.row) - d);
  if (o != Overlap::kUnknown) return o;
  // Undecided: still disjoint if the rows sit apart modulo the common period of all four strides.
  int64_t p = 0;
  for (int64_t x : {a.n_t > 1 ? a.st : 0, a.n_h > 1 ? a.sh : 0, b.n_t > 1 ? b.st : 0, b.n_h > 1 ? b.sh : 0})
    p = std::gcd(p, x);
  if (p == 0 || a.row + b.row > p) return Overlap::kUnknown;
  const int64_t ra = int64_t(a.base % uint64_t(p)), rb = int64_t(b.base % uint64_t(p));
  const int64_t off = ((rb - ra) % p + p) % p;  // start of b relative to a on a circle of length p
  return off >= a.row && off + b.row <= p ? Overlap::kNo : Overlap::kUnknown;
}

mlakv_status check_outputs_self_disjoint(const PackProblem& p, std::string* why) {
  if (p.empty()) return MLAKV_OK;
  for (OperandId o : {kKOut, kVOut}) {
    const Lattice r = lattice(p.op[o]);
    if (self_overlaps(r)) {
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
  out[kKAmax] = a.k_amax;
  out[kVAmax] = a.v_amax;
}

mlakv_status load_pack_args(const mlakv_pack_args* in, mlakv_pack_args* out, std::string* why) {
  if (!in) { *why = "args is NULL"; return MLAKV_ERR_NULL_POINTER; }
  const size_t n = in->struct_size;
  if (n < MLAKV_PACK_ARGS_SIZE_0_1) {
    *why = "args->struct_size is " + std::to_string(n) + ", the smallest this library accepts is " +
           std::to_string(MLAKV_PACK_ARGS_SIZE_0_1) + " (initialise with MLAKV_PACK_ARGS_INIT)";
    return MLAKV_ERR_STRUCT_SIZE;
  }
  if (n > kMaxStructSize) {
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
  // An older caller's struct ends early: the defaults stand for what it does not have.
  const mlakv_pack_args defaults = MLAKV_PACK_ARGS_INIT;
  *out = defaults;
  std::memcpy(out, in, n < sizeof(mlakv_pack_args) ? n : sizeof(mlakv_pack_args));
  out->struct_size = sizeof(mlakv_pack_args);
  return MLAKV_OK;
}

mlakv_status validate_geometry(const mlakv_pack_args& a, PackProblem* p, std::string* why) {
  *p = PackProblem();
  mlakv_status st;
  if ((st = check_enums(a, why)) || (st = check_dtypes(a, why)) || (st = check_ranks(a, why)) ||
      (st = check_shapes(a, p, why)))
    return st;
  p->per_head = a.scale_granularity == MLAKV_SCALE_PER_HEAD;
  // an empty call touches no memory: its strides (and, in validate_pointers, pointers) are not asked about
  if (!p->empty() &&
      ((st = check_all_strides(a, why)) || (st = make_operands(a, p, why)) || (st = check_outputs_self_disjoint(*p, why))))
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
  if (p->empty()) {  // touches no memory: no pointer is asked about
    for (int i = 0; i < kOperandCount; ++i) p->op[i].ptr = ptr[i];
    p->k_scale_inv = a.k_scale_inv;
    p->v_scale_inv = a.v_scale_inv;
    p->stream = a.stream;
    return MLAKV_OK;
  }
  Lattice r[kOperandCount];
  // ---- NULL (allowed for an empty call, and for the optional scale pointers), alignment, address space
  for (int i = 0; i < kOperandCount; ++i) {
    const Operand& o = p->op[i];
    r[i] = lattice(o);
    r[i].base = reinterpret_cast<uintptr_t>(ptr[i]);
    const bool tensor = i < kTensorCount;
    if (!ptr[i]) {
      if (tensor) {
        *why = std::string(kOperandNames[i]) + ".data is NULL";
        return MLAKV_ERR_NULL_POINTER;
      }
      if (p->per_head && (i == kKScaleInv || i == kVScaleInv)) {
        *why = std::string(kOperandNames[i]) + " is NULL: per-head scales (MLAKV_SCALE_PER_HEAD) are read from h floats there";
        return MLAKV_ERR_NULL_POINTER;
      }
      continue;
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
  // an output (k_out, v_out, k_amax, v_amax) may share no byte with any other operand
  for (int o = 0; o < kOperandCount; ++o)
    for (int i = 0; i < kOperandCount; ++i) {
      if (!is_output(o) || i == o || (is_output(i) && i < o) || !ptr[o] || !ptr[i]) continue;
      const Overlap x = overlaps(r[o], r[i]);
      if (x == Overlap::kYes) {
        *why = std::string(kOperandNames[o]) + " overlaps " + kOperandNames[i] + " in memory";
        return MLAKV_ERR_OVERLAP;
      }
      if (x == Overlap::kUnknown) {
        *why = std::string(kOperandNames[o]) + " and " + kOperandNames[i] +
               ": their spans interleave and mlakv could not decide whether they share a byte (both have large "
               "token and head extents with unrelated strides)";
        return MLAKV_ERR_OVERLAP_UNDECIDED;
      }
    }
  for (int i = 0; i < kOperandCount; ++i) p->op[i].ptr = ptr[i];
  p->k_scale_inv = a.k_scale_inv;
  p->v_scale_inv = a.v_scale_inv;
  p->stream = a.stream;
  return MLAKV_OK;
}

bool same_geometry(const mlakv_pack_args& a, const mlakv_pack_args& b) {
  // every field validate_geometry reads: each tensor's bytes after its data pointer, and the
  // call's enums, device and flags (not the scales, scale pointers or stream); and whether the call
  // asks for an amax, which table rows may depend on (amax=0|1)
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
         a.flags == b.flags && a.scale_granularity == b.scale_granularity && a.reserved == b.reserved &&
         (a.k_amax || a.v_amax) == (b.k_amax || b.v_amax);
}

}  // namespace mlakv
