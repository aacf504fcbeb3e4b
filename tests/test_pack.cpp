// mlakv_pack_fp8 on the reference backend (explicitly and through AUTO) against a plain
// nested-loop oracle written here, over sizes, head counts, head dims, input dtypes, fp8 formats,
// layouts (fused inputs, padded and head-major strides, broadcast inputs, interleaved outputs,
// 2-D and 3-D k_pe), host and pointer scales and both kernel variants. Outputs are poisoned
// before every call and every byte of every output buffer (padding and guard bytes included)
// is compared. Also: the dispatch-table API, plan text, backend listing, version and status strings.
#include <doctest/doctest.h>

#include "core/fp8.h"
#include "test_util.h"

#include <cfloat>
#include <thread>
#if defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>
#endif

namespace {

using tu::Buf;

struct Dims {
  int64_t dn, dr, dv;
};
const Dims kDims[] = {{128, 64, 128}, {64, 32, 64}, {8, 8, 8}, {96, 48, 80}, {5, 3, 7}};
const int64_t kS[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17,
                      31, 33, 64, 127, 128, 129, 384, 1000, 4096};
const int64_t kH[] = {1, 2, 8, 16, 32, 64, 128};
const float kScales[] = {1.0f, 0.5f, 2.0f, 1.0f / 0.0375f, 1.0f / 0.021f, 3.7f, 0x1p-8f, 0.0068359375f, 1e-3f};

enum class Variant { Default, Vector, Strided };
const char* variant_name(Variant v) { return v == Variant::Vector ? "vector" : v == Variant::Strided ? "strided" : "default"; }

// ---- one test case: the problem and its memory layout -------------------------------------------
struct Case {
  uint64_t seed = 0;
  int64_t s = 1, h = 1;
  Dims d{8, 8, 8};
  mlakv_dtype in = MLAKV_DTYPE_BF16, out = MLAKV_DTYPE_E4M3FN;
  mlakv_backend backend = MLAKV_BACKEND_REFERENCE;
  Variant variant = Variant::Default;
  bool fused_in = false;        // k_nope and v: the two halves of one [s, h, D_nope + D_v] tensor
  bool pe3 = false;             // k_pe is [s, 1, D_rope] (else [s, D_rope])
  int64_t pe_mid_stride = 0;    // stride of k_pe's extent-1 middle dim: any value is legal
  bool head_major_in = false;   // inputs laid out [h, s, D]: head stride > token stride
  bool broadcast_in = false;    // k_nope head stride 0 (one row for all heads), v token stride 0
  int64_t pad_in_row = 0;       // elements after each input row
  int64_t pad_in_tok = 0;       // elements after each token's (or head's) block of rows
  int64_t off_in = 0;           // elements before each input's element [0, 0, 0]
  bool interleaved_out = false; // k_out and v_out: the two parts of one [s, h, D_k + D_v] buffer
  bool head_major_out = false;
  int64_t pad_out_row = 0, pad_out_tok = 0, off_out = 0;  // bytes
  float ks = 1.0f, vs = 1.0f;
  bool scale_ptr = false;       // pass the multipliers through k/v_scale_inv_ptr (host floats)
  bool check_plan_variant = true;  // check that the plan names the variant the table should pick

  std::string text() const {
    std::ostringstream o;
    o << "seed=" << seed << " s=" << s << " h=" << h << " dims=(" << d.dn << "," << d.dr << "," << d.dv << ") "
      << tu::dtype_name(in) << "->" << tu::dtype_name(out) << " backend=" << backend
      << " variant=" << variant_name(variant) << " fused_in=" << fused_in << " pe3=" << pe3
      << " pe_mid_stride=" << pe_mid_stride << " head_major_in=" << head_major_in << " broadcast_in=" << broadcast_in
      << " pad_in=(" << pad_in_row << "," << pad_in_tok << ") off_in=" << off_in
      << " interleaved_out=" << interleaved_out << " head_major_out=" << head_major_out << " pad_out=("
      << pad_out_row << "," << pad_out_tok << ") off_out=" << off_out << " ks=" << tu::fmt_float(ks)
      << " vs=" << tu::fmt_float(vs) << " scale_ptr=" << scale_ptr;
    return o.str();
  }
};

// Random layout, scales, backend and variant for a case whose sizes and types are set.
void randomize_layout(Case& c, tu::Rng& r) {
  c.fused_in = r.below(2);
  c.pe3 = r.below(2);
  c.pe_mid_stride = r.pick({int64_t(0), int64_t(1), int64_t(7), int64_t(100000)});
  c.head_major_in = r.below(4) == 0;
  c.broadcast_in = !c.fused_in && r.below(6) == 0;
  c.pad_in_row = r.pick({int64_t(0), int64_t(0), int64_t(1), int64_t(3), int64_t(8)});
  c.pad_in_tok = r.pick({int64_t(0), int64_t(0), int64_t(5), int64_t(16)});
  c.off_in = r.pick({int64_t(0), int64_t(0), int64_t(1), int64_t(3), int64_t(8)});
  c.interleaved_out = r.below(3) == 0;
  c.head_major_out = r.below(4) == 0;
  c.pad_out_row = r.pick({int64_t(0), int64_t(0), int64_t(1), int64_t(3), int64_t(8)});
  c.pad_out_tok = r.pick({int64_t(0), int64_t(0), int64_t(7), int64_t(16)});
  // Interleaved outputs get no extra token/head-block padding here: the library rejects such
  // (disjoint) layouts as overlapping, see the test "interleaved outputs with a padded token stride".
  if (c.interleaved_out) c.pad_out_tok = 0;
  c.off_out = r.pick({int64_t(0), int64_t(0), int64_t(1), int64_t(5), int64_t(64)});
  c.scale_ptr = r.below(2);
  c.ks = r.pick(kScales);
  c.vs = r.pick(kScales);
  c.backend = r.below(3) == 0 ? MLAKV_BACKEND_AUTO : MLAKV_BACKEND_REFERENCE;
  c.variant = r.pick({Variant::Default, Variant::Default, Variant::Vector, Variant::Strided});
}

// Where a [n_t, n_h, d] view lives in its buffer: element offsets and strides.
struct View {
  int64_t off = 0, st = 0, sh = 0;
};

struct Layout {
  View kn, v, pe, ko, vo;  // inputs in elements, outputs in bytes
  int64_t kn_elems = 0, v_elems = 0, pe_elems = 0;  // buffer sizes (kn_elems only when fused)
  int64_t ko_bytes = 0, vo_bytes = 0;               // (ko_bytes only when interleaved)
};

// Strides of a [s, h, row] block of rows of `row` elements (+ padding), token- or head-major.
void block_strides(int64_t s, int64_t h, int64_t row, int64_t pad_tok, bool head_major, View* v) {
  if (head_major) {
    v->st = row;
    v->sh = s * row + pad_tok;
  } else {
    v->sh = row;
    v->st = h * row + pad_tok;
  }
}

Layout make_layout(const Case& c) {
  Layout L;
  const int64_t s = c.s, h = c.h, dn = c.d.dn, dr = c.d.dr, dv = c.d.dv, dk = dn + dr;
  const int64_t guard = 16;  // elements / bytes after the last one of each buffer
  if (c.fused_in) {
    const int64_t w = dn + dv + c.pad_in_row;
    block_strides(s, h, w, c.pad_in_tok, c.head_major_in, &L.kn);
    L.kn.off = c.off_in;
    L.v = L.kn;
    L.v.off = c.off_in + dn;
    L.kn_elems = tu::span_elems(c.off_in, s, h, w, L.kn.st, L.kn.sh) + guard;
  } else {
    block_strides(s, h, dn + c.pad_in_row, c.pad_in_tok, c.head_major_in, &L.kn);
    block_strides(s, h, dv + c.pad_in_row, c.pad_in_tok, c.head_major_in, &L.v);
    L.kn.off = L.v.off = c.off_in;
    if (c.broadcast_in) {
      L.kn.sh = 0;
      L.v.st = 0;
    }
    L.kn_elems = tu::span_elems(c.off_in, s, h, dn, L.kn.st, L.kn.sh) + guard;
    L.v_elems = tu::span_elems(c.off_in, s, h, dv, L.v.st, L.v.sh) + guard;
  }
  L.pe.off = c.off_in;
  L.pe.st = dr + c.pad_in_row + (c.pad_in_tok ? 2 : 0);
  L.pe.sh = 0;  // one rope vector per token, read by every head
  L.pe_elems = tu::span_elems(c.off_in, s, 1, dr, L.pe.st, 0) + guard;
  if (c.interleaved_out) {
    const int64_t w = dk + dv + c.pad_out_row;
    block_strides(s, h, w, c.pad_out_tok, c.head_major_out, &L.ko);
    L.ko.off = c.off_out;
    L.vo = L.ko;
    L.vo.off = c.off_out + dk;
    L.ko_bytes = tu::span_elems(c.off_out, s, h, w, L.ko.st, L.ko.sh) + guard;
  } else {
    block_strides(s, h, dk + c.pad_out_row, c.pad_out_tok, c.head_major_out, &L.ko);
    block_strides(s, h, dv + c.pad_out_row, c.pad_out_tok, c.head_major_out, &L.vo);
    L.ko.off = L.vo.off = c.off_out;
    L.ko_bytes = tu::span_elems(c.off_out, s, h, dk, L.ko.st, L.ko.sh) + guard;
    L.vo_bytes = tu::span_elems(c.off_out, s, h, dv, L.vo.st, L.vo.sh) + guard;
  }
  return L;
}

// ---- input values ------------------------------------------------------------------------------------
// Raw input elements for one (dtype, fp8 format, multiplier): uniformly random bit patterns,
// special values (zeros, infinities, NaNs, subnormals, saturating values), exact ties between
// adjacent fp8 values (when the multiplier allows them) and values spread over the fp8 range.
class ValueGen {
 public:
  ValueGen(mlakv_dtype in, mlakv_dtype fmt, float m) : in_(in) {
    if (!std::isfinite(m) || m == 0.0f) m = 1.0f;  // special multipliers: spread the inputs as for 1
    const tu::Fp8Oracle o(fmt);
    const std::vector<double>& vals = o.positive_values();
    for (size_t i = 0; i + 1 < vals.size(); ++i) {
      const double mid = (vals[i] + vals[i + 1]) / 2;
      const uint32_t raw = tu::to_raw(in, mid / m);
      if (double(tu::widen(in, raw) * m) == mid) {  // an exact tie after the fp32 multiply
        ties_.push_back(raw);
        ties_.push_back(raw | sign_bit());
      }
    }
    const double max8 = o.max_finite(), sub8 = o.min_subnormal();
    const double half_ulp_at_max = (vals.back() - vals[vals.size() - 2]) / 2;
    const double targets[] = {max8, max8 + half_ulp_at_max, max8 * 1.01, 2 * max8, 1000, 480, 464, 449, 240, 248,
                              57344, 61440, 65504, 1e6, 1e30, sub8, sub8 / 2, sub8 * 0.75, sub8 * 0.25, 1.0};
    for (double t : targets) {
      specials_.push_back(tu::to_raw(in, t / m));
      specials_.push_back(tu::to_raw(in, -t / m));
    }
    const bool wide = in == MLAKV_DTYPE_FP32;
    const uint32_t exp_all = in == MLAKV_DTYPE_FP16 ? 0x7C00u : wide ? 0x7F800000u : 0x7F80u;
    const uint32_t sgn = sign_bit();
    const uint32_t raws[] = {0u, sgn, exp_all, exp_all | sgn, exp_all | 1u, exp_all | 0x40u | sgn,
                             exp_all | (exp_all >> 1) /* quiet NaN with payload */, 1u, 1u | sgn,
                             (exp_all >> 4) /* a subnormal */, exp_all - 1u /* max finite */, (exp_all - 1u) | sgn,
                             in == MLAKV_DTYPE_FP16 ? 0x0400u : wide ? 0x00800000u : 0x0080u /* min normal */};
    specials_.insert(specials_.end(), std::begin(raws), std::end(raws));
    e_lo_ = int(std::ilogb(sub8)) - 2 - std::ilogb(m);
    e_hi_ = int(std::ilogb(max8)) + 1 - std::ilogb(m);
  }
  uint32_t sign_bit() const { return in_ == MLAKV_DTYPE_FP32 ? 0x80000000u : 0x8000u; }
  uint32_t operator()(tu::Rng& r) const {
    const uint64_t c = r.below(32);
    if (c < 4) return in_ == MLAKV_DTYPE_FP32 ? r.u32() : (r.u32() & 0xFFFFu);
    if (c < 7 || (c < 10 && ties_.empty())) return specials_[r.below(specials_.size())];
    if (c < 10) return ties_[r.below(ties_.size())];
    const int e = int(r.range(e_lo_, e_hi_));
    const uint32_t sign = r.below(2) ? sign_bit() : 0u;
    switch (in_) {
      case MLAKV_DTYPE_BF16: return sign | uint32_t(std::clamp(e + 127, 1, 254)) << 7 | (r.u32() & 0x7Fu);
      case MLAKV_DTYPE_FP16: {
        const int field = e + 15;
        if (field < 1) return sign | (r.u32() & 0x3FFu);  // fp16 subnormal
        return sign | uint32_t(std::min(field, 30)) << 10 | (r.u32() & 0x3FFu);
      }
      default: return sign | uint32_t(std::clamp(e + 127, 1, 254)) << 23 | (r.u32() & 0x7FFFFFu);
    }
  }

 private:
  mlakv_dtype in_;
  std::vector<uint32_t> specials_, ties_;
  int e_lo_ = 0, e_hi_ = 0;
};

void fill_inputs(Buf& b, mlakv_dtype in, const ValueGen& g, tu::Rng& r) {
  const int e = tu::dtype_size(in);
  const int64_t n = int64_t(b.size()) / e;
  for (int64_t i = 0; i < n; ++i) b.put(e, i, g(r));
}

// ---- the oracle: nested loops over (token, head, column) -----------------------------------------------
float widen_fast(mlakv_dtype in, uint32_t raw) {
  static const std::vector<float> fp16 = [] {
    std::vector<float> t(65536);
    for (uint32_t x = 0; x < 65536; ++x) t[x] = tu::widen_fp16(uint16_t(x));
    return t;
  }();
  if (in == MLAKV_DTYPE_FP16) return fp16[raw & 0xFFFFu];
  return tu::widen(in, raw);
}

// out[t, hh, col + i] = Q(in[t, hh, i] * m) for every t < s, hh < h, i < d.
void oracle_block(const Buf& in, mlakv_dtype dt, const View& iv, int64_t s, int64_t h, int64_t d, float m,
                  mlakv_dtype fmt, Buf& out, const View& ov, int64_t col) {
  const int e = tu::dtype_size(dt);
  const mlakv::Fp8Format f = mlakv::Fp8Format(fmt - MLAKV_DTYPE_E4M3FN);
  for (int64_t t = 0; t < s; ++t)
    for (int64_t hh = 0; hh < h; ++hh)
      for (int64_t i = 0; i < d; ++i) {
        const float x = widen_fast(dt, in.get(e, iv.off + t * iv.st + hh * iv.sh + i));
        const float p = x * m;  // one fp32 multiply (tests build with -ffp-contract=off)
        out.data()[ov.off + t * ov.st + hh * ov.sh + col + i] = mlakv::encode_fp8(p, f);
      }
}

bool gpu_backend_usable() {
  for (int i = 0; i < mlakv_backend_count(); ++i) {
    mlakv_backend_info info = MLAKV_BACKEND_INFO_INIT;
    if (mlakv_backend_get_info(i, &info) == MLAKV_OK && info.backend != MLAKV_BACKEND_REFERENCE && info.usable)
      return true;
  }
  return false;
}

// The reference table's built-in choice: "vector" when every head dim is a multiple of 8, input row
// starts are 16-byte aligned and output row starts 8-byte aligned (strides of extent-1 dims ignored).
bool expect_vector_by_default(const Case& c, const Layout& L, const void* kn, const void* pe, const void* v,
                            const void* ko, const void* vo) {
  if (c.d.dn % 8 || c.d.dr % 8 || c.d.dv % 8) return false;
  const int64_t e = tu::dtype_size(c.in);
  auto a = [](const void* p, int64_t n) { return reinterpret_cast<uintptr_t>(p) % uint64_t(n) == 0; };
  auto st = [&](int64_t x) { return c.s > 1 ? x : 0; };
  auto sh = [&](int64_t x) { return c.h > 1 ? x : 0; };
  auto in_ok = [&](const void* p, const View& w) { return a(p, 16) && (st(w.st) * e) % 16 == 0 && (sh(w.sh) * e) % 16 == 0; };
  auto out_ok = [&](const void* p, const View& w) { return a(p, 8) && st(w.st) % 8 == 0 && sh(w.sh) % 8 == 0; };
  return in_ok(kn, L.kn) && in_ok(pe, L.pe) && in_ok(v, L.v) && out_ok(ko, L.ko) && out_ok(vo, L.vo);
}

// Runs one case: builds buffers, computes the expected bytes, calls the library, compares.
void run_case(const Case& c) {
  INFO("case: " << c.text());
  const Layout L = make_layout(c);
  const int e = tu::dtype_size(c.in);
  tu::Rng rng(c.seed);
  const ValueGen kgen(c.in, c.out, c.ks), vgen(c.in, c.out, c.vs);

  // inputs: every element of every input buffer (padding too) gets a value
  Buf kn_buf(size_t(L.kn_elems * e)), v_buf, pe_buf(size_t(L.pe_elems * e));
  fill_inputs(kn_buf, c.in, kgen, rng);
  fill_inputs(pe_buf, c.in, kgen, rng);
  Buf& v_src = c.fused_in ? kn_buf : v_buf;
  if (c.fused_in) {  // the v half gets values for v's multiplier
    for (int64_t t = 0; t < c.s; ++t)
      for (int64_t hh = 0; hh < c.h; ++hh)
        for (int64_t i = 0; i < c.d.dv; ++i) kn_buf.put(e, L.v.off + t * L.v.st + hh * L.v.sh + i, vgen(rng));
  } else {
    v_buf.reset(size_t(L.v_elems * e));
    fill_inputs(v_buf, c.in, vgen, rng);
  }
  const std::vector<uint8_t> kn_before = kn_buf.bytes(), v_before = v_src.bytes(), pe_before = pe_buf.bytes();

  // outputs: poisoned, and the expected bytes start as the same poison
  Buf ko_buf(size_t(L.ko_bytes)), vo_buf;
  if (!c.interleaved_out) vo_buf.reset(size_t(L.vo_bytes));
  Buf& vo_dst = c.interleaved_out ? ko_buf : vo_buf;
  Buf ko_want(ko_buf.size()), vo_want(vo_buf.size());
  Buf& vo_want_dst = c.interleaved_out ? ko_want : vo_want;
  const int64_t dk = c.d.dn + c.d.dr;
  oracle_block(kn_buf, c.in, L.kn, c.s, c.h, c.d.dn, c.ks, c.out, ko_want, L.ko, 0);
  oracle_block(pe_buf, c.in, L.pe, c.s, c.h, c.d.dr, c.ks, c.out, ko_want, L.ko, c.d.dn);
  oracle_block(v_src, c.in, L.v, c.s, c.h, c.d.dv, c.vs, c.out, vo_want_dst, L.vo, 0);

  // the call
  mlakv_pack_args a = MLAKV_PACK_ARGS_INIT;
  void* kn = tu::at(kn_buf.data(), L.kn.off, e);
  void* v = tu::at(v_src.data(), L.v.off, e);
  void* pe = tu::at(pe_buf.data(), L.pe.off, e);
  void* ko = ko_buf.data() + L.ko.off;
  void* vo = vo_dst.data() + L.vo.off;
  a.k_nope = tu::tensor3(kn, c.in, c.s, c.h, c.d.dn, L.kn.st, L.kn.sh);
  a.v = tu::tensor3(v, c.in, c.s, c.h, c.d.dv, L.v.st, L.v.sh);
  a.k_pe = c.pe3 ? tu::tensor3(pe, c.in, c.s, 1, c.d.dr, L.pe.st, c.pe_mid_stride)
                 : tu::tensor2(pe, c.in, c.s, c.d.dr, L.pe.st);
  a.k_out = tu::tensor3(ko, c.out, c.s, c.h, dk, L.ko.st, L.ko.sh);
  a.v_out = tu::tensor3(vo, c.out, c.s, c.h, c.d.dv, L.vo.st, L.vo.sh);
  float scales[2] = {c.ks, c.vs};
  if (c.scale_ptr) {
    a.k_scale_inv_ptr = &scales[0];
    a.v_scale_inv_ptr = &scales[1];
    a.k_scale_inv = a.v_scale_inv = NAN;  // must not be used
  } else {
    a.k_scale_inv = c.ks;
    a.v_scale_inv = c.vs;
  }
  a.backend = c.backend;

  tu::TableGuard guard;
  if (c.variant != Variant::Default)
    REQUIRE(mlakv_dispatch_table_set(MLAKV_BACKEND_REFERENCE, tu::force_variant_table(variant_name(c.variant))) ==
            MLAKV_OK);

  mlakv_status st = MLAKV_OK;
  const std::string plan = tu::plan_text(a, &st);
  CHECK(st == MLAKV_OK);
  if (c.s > 0 && c.h > 0) {
    const bool on_reference = c.backend == MLAKV_BACKEND_REFERENCE || !gpu_backend_usable();
    if (on_reference && c.check_plan_variant) {
      CHECK(plan.find("backend=reference") != std::string::npos);
      const bool vector = c.variant == Variant::Vector ||
                        (c.variant == Variant::Default && expect_vector_by_default(c, L, kn, pe, v, ko, vo));
      INFO("plan: " << plan);
      CHECK(plan.find(vector ? "variant=vector" : "variant=strided") != std::string::npos);
    }
  }
  CHECK(tu::all_bytes(ko_buf.data(), ko_buf.size(), tu::kPoison));  // planning writes nothing

  st = mlakv_pack_fp8(&a);
  const std::string why = std::string("status: ") + mlakv_status_string(st) + " / " + mlakv_last_error();
  INFO(why);
  REQUIRE(st == MLAKV_OK);
  CHECK(std::string(mlakv_last_error()).empty());

  std::string where;
  const size_t bad_k = tu::diff_bytes(ko_buf.data(), ko_want.data(), ko_buf.size(), &where);
  INFO("k_out buffer (" << ko_buf.size() << " bytes) first differences:" << where);
  CHECK(bad_k == 0);
  std::string where_v;
  const size_t bad_v = tu::diff_bytes(vo_buf.data(), vo_want.data(), vo_buf.size(), &where_v);
  INFO("v_out buffer (" << vo_buf.size() << " bytes) first differences:" << where_v);
  CHECK(bad_v == 0);
  // inputs are read-only
  CHECK(kn_buf.bytes() == kn_before);
  CHECK(v_src.bytes() == v_before);
  CHECK(pe_buf.bytes() == pe_before);
}

uint64_t g_seed_counter = 1;
Case new_case(int64_t s, int64_t h, Dims d, mlakv_dtype in, mlakv_dtype out) {
  Case c;
  c.seed = g_seed_counter++;
  tu::Rng r(c.seed ^ 0xC0FFEEull);
  c.s = s;
  c.h = h;
  c.d = d;
  c.in = in;
  c.out = out;
  randomize_layout(c, r);
  return c;
}

}  // namespace

TEST_CASE("pack: small sizes, full cross product of s, h, dims, input dtype and format") {
  // s <= 33 and h in {1, 2, 8, 16}: every combination, with random layout / scales / variant / backend
  int cases = 0;
  for (int64_t s : kS) {
    if (s > 33) continue;
    for (int64_t h : {int64_t(1), int64_t(2), int64_t(8), int64_t(16)})
      for (const Dims& d : kDims)
        for (mlakv_dtype in : tu::kInputDtypes)
          for (mlakv_dtype out : tu::kFp8Dtypes) {
            run_case(new_case(s, h, d, in, out));
            ++cases;
          }
  }
  CHECK(cases == 20 * 4 * 5 * 3 * 4);
}

TEST_CASE("pack: every (s, h) pair, dims / dtypes / formats rotated, large sizes capped") {
  // Every listed s with every listed h; the other parameters rotate so that each value meets many
  // sizes. Calls over ~12M elements fall back to smaller head dims to keep the suite fast.
  const int64_t cap = 16 << 20;
  int k = 0;
  for (int pass = 0; pass < 2; ++pass)
    for (int64_t s : kS)
      for (int64_t h : kH) {
        Dims d = kDims[k % 5];
        for (int j = 0; j < 5 && s * h * (d.dn + d.dr + d.dv) > cap; ++j) d = kDims[(k + j) % 5];
        if (s * h * (d.dn + d.dr + d.dv) > cap) d = kDims[4];
        run_case(new_case(s, h, d, tu::kInputDtypes[k % 3], tu::kFp8Dtypes[(k / 3 + pass) % 4]));
        ++k;
      }
}

TEST_CASE("pack: DeepSeek V3 shapes (128, 64, 128), bf16 -> e4m3fn, k_nope/v fused") {
  const int64_t ss[] = {1, 8, 16, 129, 1000};
  const int64_t hs[] = {16, 32, 128};
  for (int64_t s : ss)
    for (int64_t h : hs) {
      if (s * h > 20000) continue;
      Case c = new_case(s, h, {128, 64, 128}, MLAKV_DTYPE_BF16, MLAKV_DTYPE_E4M3FN);
      c.fused_in = true;
      c.broadcast_in = false;
      c.ks = 1.0f / 0.0375f;
      c.vs = 1.0f / 0.021f;
      run_case(c);
    }
  // the fast path with a plain contiguous layout on every format and the fp16/fp32 inputs
  for (mlakv_dtype in : tu::kInputDtypes)
    for (mlakv_dtype out : tu::kFp8Dtypes) {
      Case c = new_case(64, 16, {128, 64, 128}, in, out);
      c.fused_in = true;
      c.broadcast_in = c.head_major_in = c.interleaved_out = c.head_major_out = false;
      c.pad_in_row = c.pad_in_tok = c.off_in = c.pad_out_row = c.pad_out_tok = c.off_out = 0;
      c.variant = Variant::Default;
      run_case(c);
    }
}

TEST_CASE("pack: every layout option on each variant") {
  // the layout switches one at a time, on an aligned (x8) and an odd shape, both variants
  for (Dims d : {Dims{64, 32, 64}, Dims{5, 3, 7}})
    for (Variant var : {Variant::Default, Variant::Vector, Variant::Strided})
      for (int opt = 0; opt < 12; ++opt) {
        Case c = new_case(9, 3, d, MLAKV_DTYPE_BF16, MLAKV_DTYPE_E4M3FN);
        c.fused_in = c.pe3 = c.head_major_in = c.broadcast_in = c.interleaved_out = c.head_major_out = c.scale_ptr = false;
        c.pad_in_row = c.pad_in_tok = c.off_in = c.pad_out_row = c.pad_out_tok = c.off_out = 0;
        c.pe_mid_stride = 0;
        c.variant = var;
        c.backend = MLAKV_BACKEND_REFERENCE;
        switch (opt) {
          case 0: break;
          case 1: c.fused_in = true; break;
          case 2: c.pe3 = true; c.pe_mid_stride = 12345; break;
          case 3: c.head_major_in = true; break;
          case 4: c.broadcast_in = true; break;
          case 5: c.pad_in_row = 3; c.pad_in_tok = 5; c.off_in = 1; break;
          case 6: c.interleaved_out = true; break;
          case 7: c.interleaved_out = true; c.pad_out_row = 8; c.off_out = 3; break;
          case 8: c.head_major_out = true; c.pad_out_tok = 7; break;
          case 9: c.pad_out_row = 1; c.pad_out_tok = 7; c.off_out = 5; break;
          case 10: c.scale_ptr = true; break;
          case 11: c.backend = MLAKV_BACKEND_AUTO; break;
        }
        run_case(c);
      }
}

namespace {
// k_nope / v rows holding the given raw patterns, k_pe too; s tokens x h heads x d columns.
struct PatternCase {
  mlakv_dtype in, out;
  float ks, vs;
  Variant variant;
};
void run_patterns(const PatternCase& pc, const std::vector<uint32_t>& pats) {
  const int64_t d = 128, h = 2, dr = 64;
  const int64_t s = int64_t((pats.size() + h * d - 1) / (h * d));
  const int e = tu::dtype_size(pc.in);
  Buf kn(size_t(s * h * d * e)), v(size_t(s * h * d * e)), pe(size_t(s * dr * e));
  for (int64_t i = 0; i < s * h * d; ++i) {
    kn.put(e, i, pats[size_t(i) % pats.size()]);
    v.put(e, i, pats[pats.size() - 1 - size_t(i) % pats.size()]);
  }
  for (int64_t i = 0; i < s * dr; ++i) pe.put(e, i, pats[size_t(i * 7 + 3) % pats.size()]);
  Buf ko(size_t(s * h * (d + dr))), vo(size_t(s * h * d)), ko_want(ko.size()), vo_want(vo.size());
  const View kv{0, h * d, d}, pv{0, dr, 0}, kov{0, h * (d + dr), d + dr};
  oracle_block(kn, pc.in, kv, s, h, d, pc.ks, pc.out, ko_want, kov, 0);
  oracle_block(pe, pc.in, pv, s, h, dr, pc.ks, pc.out, ko_want, kov, d);
  oracle_block(v, pc.in, kv, s, h, d, pc.vs, pc.out, vo_want, kv, 0);
  mlakv_pack_args a;
  mlakv_pack_args_init(&a);
  a.k_nope = tu::tensor3(kn.data(), pc.in, s, h, d, h * d, d);
  a.v = tu::tensor3(v.data(), pc.in, s, h, d, h * d, d);
  a.k_pe = tu::tensor2(pe.data(), pc.in, s, dr, dr);
  a.k_out = tu::tensor3(ko.data(), pc.out, s, h, d + dr, h * (d + dr), d + dr);
  a.v_out = tu::tensor3(vo.data(), pc.out, s, h, d, h * d, d);
  a.k_scale_inv = pc.ks;
  a.v_scale_inv = pc.vs;
  a.backend = MLAKV_BACKEND_REFERENCE;
  tu::TableGuard guard;
  if (pc.variant != Variant::Default)
    REQUIRE(mlakv_dispatch_table_set(MLAKV_BACKEND_REFERENCE, tu::force_variant_table(variant_name(pc.variant))) ==
            MLAKV_OK);
  INFO(std::string(tu::dtype_name(pc.in)) << "->" << std::string(tu::dtype_name(pc.out)) << " ks=" << pc.ks << " vs=" << pc.vs
                             << " variant=" << std::string(variant_name(pc.variant)));
  REQUIRE(mlakv_pack_fp8(&a) == MLAKV_OK);
  std::string wk, wv;
  const size_t bk = tu::diff_bytes(ko.data(), ko_want.data(), ko.size(), &wk);
  const size_t bv = tu::diff_bytes(vo.data(), vo_want.data(), vo.size(), &wv);
  INFO("k_out differences:" << wk << " v_out differences:" << wv);
  CHECK(bk == 0);
  CHECK(bv == 0);
}
}  // namespace

TEST_CASE("pack: every bf16 / fp16 bit pattern through the API, every format, both variants") {
  std::vector<uint32_t> all16(65536);
  for (uint32_t x = 0; x < 65536; ++x) all16[x] = x;
  // fp32: every bf16 pattern widened, plus each with random low bits
  std::vector<uint32_t> f32;
  tu::Rng r(77);
  for (uint32_t x = 0; x < 65536; ++x) {
    f32.push_back(x << 16);
    f32.push_back((x << 16) | (r.u32() & 0xFFFFu));
  }
  for (mlakv_dtype in : tu::kInputDtypes)
    for (mlakv_dtype out : tu::kFp8Dtypes)
      for (Variant var : {Variant::Default, Variant::Vector, Variant::Strided})
        for (float m : {1.0f, 1.0f / 0.0375f, 65504.0f, 0x1p-8f})
          run_patterns({in, out, m, 1.0f / m, var}, in == MLAKV_DTYPE_FP32 ? f32 : all16);
}

TEST_CASE("pack: MISSION.md edge values through the API") {
  // bf16 inputs, m = 1; the bytes measured on an H100 (MISSION.md)
  const float e4_in[] = {1000, -1000, 480, NAN, HUGE_VALF, -HUGE_VALF, -0.0f, 0x1p-10f, 0x1.8p-10f, 3 * 0x1p-10f,
                         1.0625f, 1.1875f};
  const uint8_t e4_want[] = {0x7E, 0xFE, 0x7E, 0x7F, 0x7E, 0xFE, 0x80, 0x00, 0x01, 0x02, 0x38, 0x3A};
  const float e5_in[] = {1000, HUGE_VALF, NAN, 61440};
  const uint8_t e5_want[] = {0x64, 0x7B, 0x7F, 0x7B};
  const float u4_in[] = {NAN, -0.0f, 240, 248, 1000, -1000, HUGE_VALF, -0x1p-11f, -0x1p-100f};
  const uint8_t u4_want[] = {0x80, 0x00, 0x7F, 0x7F, 0x7F, 0xFF, 0x7F, 0x00, 0x00};
  const float u5_in[] = {NAN, -0.0f, 57344, 61440, 0x1p20f, -HUGE_VALF, -0x1p-18f};
  const uint8_t u5_want[] = {0x80, 0x00, 0x7F, 0x7F, 0x7F, 0xFF, 0x00};
  struct Set { mlakv_dtype f; const float* in; const uint8_t* want; int n; };
  const Set sets[] = {{MLAKV_DTYPE_E4M3FN, e4_in, e4_want, 12}, {MLAKV_DTYPE_E5M2, e5_in, e5_want, 4},
                      {MLAKV_DTYPE_E4M3FNUZ, u4_in, u4_want, 9}, {MLAKV_DTYPE_E5M2FNUZ, u5_in, u5_want, 7}};
  for (const Set& set : sets)
    for (Variant var : {Variant::Default, Variant::Vector, Variant::Strided}) {
      INFO("format " << std::string(tu::dtype_name(set.f)));
      INFO("variant " << std::string(variant_name(var)));
      tu::TableGuard guard;
      if (var != Variant::Default)
        REQUIRE(mlakv_dispatch_table_set(MLAKV_BACKEND_REFERENCE, tu::force_variant_table(variant_name(var))) == MLAKV_OK);
      // one token, one head; every value in k_nope, k_pe and v
      const int64_t n = set.n;
      std::vector<uint16_t> x(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) {
        REQUIRE(tu::exact_in(MLAKV_DTYPE_BF16, set.in[i]));
        x[size_t(i)] = tu::to_bf16(set.in[i]);
      }
      std::vector<uint16_t> xn = x, xp = x, xv = x;
      std::vector<uint8_t> ko(size_t(2 * n), tu::kPoison), vo(size_t(n), tu::kPoison);
      mlakv_pack_args a = MLAKV_PACK_ARGS_INIT;
      a.k_nope = tu::tensor3(xn.data(), MLAKV_DTYPE_BF16, 1, 1, n, n, n);
      a.k_pe = tu::tensor2(xp.data(), MLAKV_DTYPE_BF16, 1, n, n);
      a.v = tu::tensor3(xv.data(), MLAKV_DTYPE_BF16, 1, 1, n, n, n);
      a.k_out = tu::tensor3(ko.data(), set.f, 1, 1, 2 * n, 2 * n, 2 * n);
      a.v_out = tu::tensor3(vo.data(), set.f, 1, 1, n, n, n);
      REQUIRE(mlakv_pack_fp8(&a) == MLAKV_OK);
      for (int64_t i = 0; i < n; ++i) {
        CAPTURE(set.in[i]);
        CHECK(int(ko[size_t(i)]) == int(set.want[i]));
        CHECK(int(ko[size_t(n + i)]) == int(set.want[i]));
        CHECK(int(vo[size_t(i)]) == int(set.want[i]));
      }
    }
}

TEST_CASE("pack: k_out and v_out interleaved as the two parts of one [s, h, D_k + D_v] buffer") {
  for (Dims d : {Dims{128, 64, 128}, Dims{5, 3, 7}})
    for (mlakv_dtype out : tu::kFp8Dtypes)
      for (int pad : {0, 8}) {
        Case c = new_case(33, 16, d, MLAKV_DTYPE_BF16, out);
        c.interleaved_out = true;
        c.head_major_out = false;
        c.pad_out_row = pad;
        c.pad_out_tok = 0;
        c.off_out = pad;
        run_case(c);
      }
}

// LIBRARY BUG (reported): k_out and v_out interleaved in one [s, h, W] buffer whose token stride
// is padded (h * W + pad) are disjoint, but c_api/validate.cpp's disjoint() proves disjointness
// only modulo the gcd of all row strides (here gcd(h * W + pad, W) < D_k + D_v) and returns
// MLAKV_ERR_OVERLAP. Minimal case: s = 2, h = 2, dims (8, 8, 8), W = 24, token stride 56
// (= 2 * 24 + 8), head stride 24, v_out = k_out + 16.
TEST_CASE("pack: interleaved outputs with a padded token stride are accepted") {
  for (int64_t pad : {int64_t(8), int64_t(1)}) {
    Case c;
    c.seed = 424242 + uint64_t(pad);
    c.s = 2;
    c.h = 2;
    c.d = {8, 8, 8};
    c.interleaved_out = true;
    c.pad_out_tok = pad;
    c.backend = MLAKV_BACKEND_REFERENCE;
    CAPTURE(pad);
    run_case(c);
  }
}

TEST_CASE("pack: pointer scales are read at call time; host scale fields are then ignored") {
  const int64_t s = 3, h = 2, dn = 8, dr = 8, dv = 8;
  std::vector<uint16_t> kn(size_t(s * h * dn)), pe(size_t(s * dr)), v(size_t(s * h * dv));
  tu::Rng r(5);
  for (auto* vec : {&kn, &pe, &v})
    for (auto& x : *vec) x = tu::to_bf16(double(int(r.below(200)) - 100) / 16);
  std::vector<uint8_t> ko(size_t(s * h * (dn + dr))), vo(size_t(s * h * dv));
  float scales[2] = {1.0f, 1.0f};
  mlakv_pack_args a = MLAKV_PACK_ARGS_INIT;
  a.k_nope = tu::tensor3(kn.data(), MLAKV_DTYPE_BF16, s, h, dn, h * dn, dn);
  a.k_pe = tu::tensor3(pe.data(), MLAKV_DTYPE_BF16, s, 1, dr, dr, 0);
  a.v = tu::tensor3(v.data(), MLAKV_DTYPE_BF16, s, h, dv, h * dv, dv);
  a.k_out = tu::tensor3(ko.data(), MLAKV_DTYPE_E4M3FN, s, h, dn + dr, h * (dn + dr), dn + dr);
  a.v_out = tu::tensor3(vo.data(), MLAKV_DTYPE_E4M3FN, s, h, dv, h * dv, dv);
  a.k_scale_inv = 1000.0f;  // ignored: the pointers win
  a.v_scale_inv = NAN;
  a.k_scale_inv_ptr = &scales[0];
  a.v_scale_inv_ptr = &scales[1];
  a.backend = MLAKV_BACKEND_REFERENCE;
  for (float ks : {1.0f, 4.0f, 1.0f / 0.0375f})
    for (float vs : {0.25f, 1.0f / 0.021f}) {
      scales[0] = ks;
      scales[1] = vs;
      std::fill(ko.begin(), ko.end(), tu::kPoison);
      std::fill(vo.begin(), vo.end(), tu::kPoison);
      REQUIRE(mlakv_pack_fp8(&a) == MLAKV_OK);
      const tu::Fp8Oracle o(MLAKV_DTYPE_E4M3FN);
      int bad = 0;
      for (int64_t t = 0; t < s; ++t)
        for (int64_t hh = 0; hh < h; ++hh) {
          const uint8_t* krow = &ko[size_t((t * h + hh) * (dn + dr))];
          for (int64_t i = 0; i < dn; ++i) bad += krow[i] != o.encode(tu::widen_bf16(kn[size_t((t * h + hh) * dn + i)]) * ks);
          for (int64_t i = 0; i < dr; ++i) bad += krow[dn + i] != o.encode(tu::widen_bf16(pe[size_t(t * dr + i)]) * ks);
          for (int64_t i = 0; i < dv; ++i)
            bad += vo[size_t((t * h + hh) * dv + i)] != o.encode(tu::widen_bf16(v[size_t((t * h + hh) * dv + i)]) * vs);
        }
      CAPTURE(ks);
      CAPTURE(vs);
      CHECK(bad == 0);
    }
}

TEST_CASE("pack: special multipliers (0, -0, +-inf, NaN, subnormal, FLT_MAX)") {
  const float specials[] = {0.0f, -0.0f, HUGE_VALF, -HUGE_VALF, NAN, 0x1p-149f, 0x1.8p-140f, FLT_MAX, -1.0f};
  int k = 0;
  for (float ks : specials)
    for (mlakv_dtype out : tu::kFp8Dtypes) {
      Case c = new_case(5, 3, kDims[k % 5], tu::kInputDtypes[k % 3], out);
      c.ks = ks;
      c.vs = specials[(k + 3) % 9];
      run_case(c);
      ++k;
    }
}

#if defined(__x86_64__) || defined(_M_X64)
TEST_CASE("pack: FTZ/DAZ set by the calling thread do not change the bytes") {
  // bf16 / fp32 subnormal inputs times a large multiplier are normal products; with DAZ they
  // would read as zero, with FTZ tiny products would flush. The library clears both while it runs.
  for (mlakv_dtype in : {MLAKV_DTYPE_BF16, MLAKV_DTYPE_FP32})
    for (Variant var : {Variant::Default, Variant::Vector, Variant::Strided}) {
      const int64_t s = 3, h = 2, d = 32;
      const int e = tu::dtype_size(in);
      Buf kn(size_t(s * h * d * e)), pe(size_t(s * d * e)), v(size_t(s * h * d * e));
      tu::Rng r(11);
      for (Buf* b : {&kn, &pe, &v})
        for (int64_t i = 0; i < int64_t(b->size()) / e; ++i) {
          const uint32_t mant = r.u32() & (in == MLAKV_DTYPE_FP32 ? 0x7FFFFFu : 0x7Fu);  // subnormal
          b->put(e, i, (r.below(2) ? (in == MLAKV_DTYPE_FP32 ? 0x80000000u : 0x8000u) : 0u) | mant);
        }
      const float ks = 0x1p120f, vs = 0x1p-10f;  // k: normal products; v: products underflow to fp32 subnormals / zero
      Buf ko(size_t(s * h * 2 * d)), vo(size_t(s * h * d)), ko_want(ko.size()), vo_want(vo.size());
      const View kv{0, h * d, d}, pv{0, d, 0}, kov{0, h * 2 * d, 2 * d};
      oracle_block(kn, in, kv, s, h, d, ks, MLAKV_DTYPE_E5M2, ko_want, kov, 0);
      oracle_block(pe, in, pv, s, h, d, ks, MLAKV_DTYPE_E5M2, ko_want, kov, d);
      oracle_block(v, in, kv, s, h, d, vs, MLAKV_DTYPE_E5M2, vo_want, kv, 0);
      mlakv_pack_args a = MLAKV_PACK_ARGS_INIT;
      a.k_nope = tu::tensor3(kn.data(), in, s, h, d, h * d, d);
      a.k_pe = tu::tensor2(pe.data(), in, s, d, d);
      a.v = tu::tensor3(v.data(), in, s, h, d, h * d, d);
      a.k_out = tu::tensor3(ko.data(), MLAKV_DTYPE_E5M2, s, h, 2 * d, h * 2 * d, 2 * d);
      a.v_out = tu::tensor3(vo.data(), MLAKV_DTYPE_E5M2, s, h, d, h * d, d);
      a.k_scale_inv = ks;
      a.v_scale_inv = vs;
      a.backend = MLAKV_BACKEND_REFERENCE;
      tu::TableGuard guard;
      if (var != Variant::Default)
        REQUIRE(mlakv_dispatch_table_set(MLAKV_BACKEND_REFERENCE, tu::force_variant_table(variant_name(var))) == MLAKV_OK);
      const unsigned saved = _mm_getcsr();
      _mm_setcsr(saved | 0x8040u);  // FTZ | DAZ, as a fast-math host application might leave them
      const mlakv_status st = mlakv_pack_fp8(&a);
      const unsigned after = _mm_getcsr();
      _mm_setcsr(saved);
      INFO("input " << std::string(tu::dtype_name(in)) << ", variant " << std::string(variant_name(var)));
      REQUIRE(st == MLAKV_OK);
      CHECK((after & 0x8040u) == 0x8040u);  // the caller's mode is restored
      CHECK(ko.bytes() == ko_want.bytes());
      CHECK(vo.bytes() == vo_want.bytes());
      CHECK(!tu::all_bytes(ko.data(), ko.size(), 0));
    }
}
#endif

TEST_CASE("pack: concurrent calls from several threads give the same bytes") {
  // each thread packs its own problems; results are compared in the main thread
  struct Job {
    Case c;
    Layout L;
    std::vector<uint8_t> got_k, got_v, want_k, want_v;
    mlakv_status st = MLAKV_OK;
    std::string err;
  };
  std::vector<Job> jobs(16);
  for (size_t i = 0; i < jobs.size(); ++i) {
    Case c = new_case(int64_t(7 + i), int64_t(1 + i % 4), kDims[i % 5], tu::kInputDtypes[i % 3], tu::kFp8Dtypes[i % 4]);
    c.variant = Variant::Default;  // the table is global: leave it alone while threads run
    c.interleaved_out = c.fused_in = false;
    c.backend = MLAKV_BACKEND_REFERENCE;
    jobs[i].c = c;
  }
  auto work = [&](size_t first) {
    for (size_t i = first; i < jobs.size(); i += 4) {
      Job& j = jobs[i];
      const Case& c = j.c;
      const Layout L = make_layout(c);
      const int e = tu::dtype_size(c.in);
      tu::Rng rng(c.seed);
      const ValueGen kg(c.in, c.out, c.ks), vg(c.in, c.out, c.vs);
      Buf kn(size_t(L.kn_elems * e)), v(size_t(L.v_elems * e)), pe(size_t(L.pe_elems * e));
      fill_inputs(kn, c.in, kg, rng);
      fill_inputs(pe, c.in, kg, rng);
      fill_inputs(v, c.in, vg, rng);
      Buf ko(size_t(L.ko_bytes)), vo(size_t(L.vo_bytes)), kw(ko.size()), vw(vo.size());
      oracle_block(kn, c.in, L.kn, c.s, c.h, c.d.dn, c.ks, c.out, kw, L.ko, 0);
      oracle_block(pe, c.in, L.pe, c.s, c.h, c.d.dr, c.ks, c.out, kw, L.ko, c.d.dn);
      oracle_block(v, c.in, L.v, c.s, c.h, c.d.dv, c.vs, c.out, vw, L.vo, 0);
      mlakv_pack_args a = MLAKV_PACK_ARGS_INIT;
      a.k_nope = tu::tensor3(tu::at(kn.data(), L.kn.off, e), c.in, c.s, c.h, c.d.dn, L.kn.st, L.kn.sh);
      a.v = tu::tensor3(tu::at(v.data(), L.v.off, e), c.in, c.s, c.h, c.d.dv, L.v.st, L.v.sh);
      a.k_pe = tu::tensor2(tu::at(pe.data(), L.pe.off, e), c.in, c.s, c.d.dr, L.pe.st);
      a.k_out = tu::tensor3(ko.data() + L.ko.off, c.out, c.s, c.h, c.d.dn + c.d.dr, L.ko.st, L.ko.sh);
      a.v_out = tu::tensor3(vo.data() + L.vo.off, c.out, c.s, c.h, c.d.dv, L.vo.st, L.vo.sh);
      a.k_scale_inv = c.ks;
      a.v_scale_inv = c.vs;
      a.backend = MLAKV_BACKEND_REFERENCE;
      for (int rep = 0; rep < 5; ++rep) j.st = j.st ? j.st : mlakv_pack_fp8(&a);
      j.err = mlakv_last_error();
      j.got_k = ko.bytes();
      j.got_v = vo.bytes();
      j.want_k = kw.bytes();
      j.want_v = vw.bytes();
    }
  };
  std::vector<std::thread> threads;
  for (size_t t = 0; t < 4; ++t) threads.emplace_back(work, t);
  for (std::thread& t : threads) t.join();
  for (const Job& j : jobs) {
    INFO("case: " << j.c.text() << " / " << j.err);
    CHECK(j.st == MLAKV_OK);
    CHECK(j.got_k == j.want_k);
    CHECK(j.got_v == j.want_v);
  }
}

TEST_CASE("pack: k_pe 2-D and 3-D (any middle stride) give the same bytes") {
  for (mlakv_dtype in : tu::kInputDtypes)
    for (int64_t mid : {int64_t(0), int64_t(1), int64_t(64), int64_t(1) << 40}) {
      Case c = new_case(17, 8, {64, 32, 64}, in, MLAKV_DTYPE_E5M2);
      c.pe3 = true;
      c.pe_mid_stride = mid;
      run_case(c);
      c.pe3 = false;
      run_case(c);
    }
}

// A DeepSeek-dims bf16 -> e4m3fn call of 6 tokens x 4 heads on the reference backend, k_nope and v
// the halves of one [s, h, 256] tensor, random inputs, outputs poisoned (the table tests' call).
struct SmallCall {
  static constexpr int64_t s = 6, h = 4;
  Buf kv{size_t(s * h * 256 * 2)}, pe{size_t(s * 64 * 2)}, ko{size_t(s * h * 192)}, vo{size_t(s * h * 128)};
  mlakv_pack_args a = MLAKV_PACK_ARGS_INIT;
  explicit SmallCall(uint64_t seed) {
    tu::Rng r(seed);
    const ValueGen g(MLAKV_DTYPE_BF16, MLAKV_DTYPE_E4M3FN, 1.0f);
    fill_inputs(kv, MLAKV_DTYPE_BF16, g, r);
    fill_inputs(pe, MLAKV_DTYPE_BF16, g, r);
    a.k_nope = tu::tensor3(kv.data(), MLAKV_DTYPE_BF16, s, h, 128, h * 256, 256);
    a.v = tu::tensor3(tu::at(kv.data(), 128, 2), MLAKV_DTYPE_BF16, s, h, 128, h * 256, 256);
    a.k_pe = tu::tensor2(pe.data(), MLAKV_DTYPE_BF16, s, 64, 64);
    a.k_out = tu::tensor3(ko.data(), MLAKV_DTYPE_E4M3FN, s, h, 192, h * 192, 192);
    a.v_out = tu::tensor3(vo.data(), MLAKV_DTYPE_E4M3FN, s, h, 128, h * 128, 128);
    a.backend = MLAKV_BACKEND_REFERENCE;
  }
};

TEST_CASE("dispatch table API on the reference backend") {
  tu::TableGuard guard;
  size_t needed = 0;
  REQUIRE(mlakv_dispatch_table_get(MLAKV_BACKEND_REFERENCE, nullptr, 0, &needed) == MLAKV_ERR_BUFFER_TOO_SMALL);
  REQUIRE(needed > 1);
  std::string builtin(needed, '\0');
  size_t needed2 = 0;
  REQUIRE(mlakv_dispatch_table_get(MLAKV_BACKEND_REFERENCE, &builtin[0], needed, &needed2) == MLAKV_OK);
  CHECK(needed2 == needed);
  builtin.resize(std::strlen(builtin.c_str()));
  CHECK(builtin.size() + 1 == needed);
  CHECK(builtin.find("variant=vector") != std::string::npos);
  CHECK(builtin.find("variant=strided") != std::string::npos);
  CHECK(builtin.find("arch=0-0") != std::string::npos);
  auto get = [] {
    char buf[4096];
    REQUIRE(mlakv_dispatch_table_get(MLAKV_BACKEND_REFERENCE, buf, sizeof buf, nullptr) == MLAKV_OK);
    return std::string(buf);
  };

  SUBCASE("a table forcing 'strided' gives the same bytes as 'vector'") {
    // a DeepSeek-shaped, aligned problem: the built-in table picks vector
    const int64_t s = 20, h = 16, dn = 128, dr = 64, dv = 128;
    Buf kv(size_t(s * h * (dn + dv) * 2)), pe(size_t(s * dr * 2));
    tu::Rng r(99);
    const ValueGen g(MLAKV_DTYPE_BF16, MLAKV_DTYPE_E4M3FN, 1.0f / 0.0375f);
    fill_inputs(kv, MLAKV_DTYPE_BF16, g, r);
    fill_inputs(pe, MLAKV_DTYPE_BF16, g, r);
    Buf ko_vec(size_t(s * h * (dn + dr))), vo_vec(size_t(s * h * dv));
    Buf ko_str(ko_vec.size()), vo_str(vo_vec.size());
    auto args = [&](Buf& ko, Buf& vo) {
      mlakv_pack_args a = MLAKV_PACK_ARGS_INIT;
      a.k_nope = tu::tensor3(kv.data(), MLAKV_DTYPE_BF16, s, h, dn, h * (dn + dv), dn + dv);
      a.v = tu::tensor3(tu::at(kv.data(), dn, 2), MLAKV_DTYPE_BF16, s, h, dv, h * (dn + dv), dn + dv);
      a.k_pe = tu::tensor2(pe.data(), MLAKV_DTYPE_BF16, s, dr, dr);
      a.k_out = tu::tensor3(ko.data(), MLAKV_DTYPE_E4M3FN, s, h, dn + dr, h * (dn + dr), dn + dr);
      a.v_out = tu::tensor3(vo.data(), MLAKV_DTYPE_E4M3FN, s, h, dv, h * dv, dv);
      a.k_scale_inv = 1.0f / 0.0375f;
      a.v_scale_inv = 1.0f / 0.0375f;
      a.backend = MLAKV_BACKEND_REFERENCE;
      return a;
    };
    const mlakv_pack_args a_vec = args(ko_vec, vo_vec), a_str = args(ko_str, vo_str);
    CHECK(tu::plan_text(a_vec).find("variant=vector") != std::string::npos);
    REQUIRE(mlakv_pack_fp8(&a_vec) == MLAKV_OK);
    REQUIRE(mlakv_dispatch_table_set(MLAKV_BACKEND_REFERENCE, tu::force_variant_table("strided")) == MLAKV_OK);
    CHECK(get().find("variant=vector") == std::string::npos);
    CHECK(get().find("test: strided everywhere") != std::string::npos);  // the note is kept
    CHECK(tu::plan_text(a_str).find("variant=strided") != std::string::npos);
    REQUIRE(mlakv_pack_fp8(&a_str) == MLAKV_OK);
    CHECK(ko_vec.bytes() == ko_str.bytes());
    CHECK(vo_vec.bytes() == vo_str.bytes());
    CHECK(!tu::all_bytes(ko_vec.data(), ko_vec.size(), tu::kPoison));
    // reset restores the built-in table
    REQUIRE(mlakv_dispatch_table_reset(MLAKV_BACKEND_REFERENCE) == MLAKV_OK);
    CHECK(get() == builtin);
    CHECK(tu::plan_text(a_vec).find("variant=vector") != std::string::npos);
  }

  SUBCASE("malformed tables return MLAKV_ERR_TABLE_PARSE and keep the current table") {
    REQUIRE(mlakv_dispatch_table_set(MLAKV_BACKEND_REFERENCE, tu::force_variant_table("strided")) == MLAKV_OK);
    const std::string current = get();
    const char* bad[] = {
        "arch=0-0 variant=bogus",
        "variant=vector",                          // no arch
        "arch=0-0",                              // no variant
        "arch=0-0 variant=vector threads=33",      // threads not a multiple of 32
        "arch=0-0 variant=vector unroll=9",
        "arch=0-0 s=5-2 variant=vector",           // empty range
        "arch=0-0 s=-1 variant=vector",
        "arch=0-0 colour=blue variant=vector",     // unknown key
        "arch=0-0 variant=vector dims=x32",
        "arch=0-0 variant=vector dims=x16",        // dims is any, x8 or ds
        "arch=0-0 variant=vector lanes=12",        // lanes is 8, 16 or 32
        "arch=0-0 variant=vector lanes=8 split=1", // 8 lanes cannot split k_pe
        "arch=0-0 variant=vector split=2",
        "arch=0-0 variant=vector lanes=16 wide=1", // wide units are 8 lanes a row
        "arch=0-0 variant=vector lanes=8 wide=2",
        "arch=0-0 variant=vector amax=2",          // amax is 0 or 1
        "arch=0-0 variant=vector amax=",
        "arch=0-0 variant=vector scales=1",        // scales is tensor or head
        "arch=0-0 variant=vector scales=heads",
        "hello",
        "",                                      // no rows
        "# only a comment\n\n",
        "arch=0-0 variant=vector\narch=x variant=vector\n",  // error on line 2
    };
    for (const char* text : bad) {
      CAPTURE(text);
      CHECK(mlakv_dispatch_table_set(MLAKV_BACKEND_REFERENCE, text) == MLAKV_ERR_TABLE_PARSE);
      CHECK(std::strlen(mlakv_last_error()) > 0);
      CHECK(get() == current);
    }
    CHECK(mlakv_dispatch_table_set(MLAKV_BACKEND_REFERENCE, "arch=0-0 variant=vector\narch=x variant=vector\n") ==
          MLAKV_ERR_TABLE_PARSE);
    CHECK(std::string(mlakv_last_error()).find("line 2") != std::string::npos);
    CHECK(mlakv_dispatch_table_set(MLAKV_BACKEND_REFERENCE, nullptr) == MLAKV_ERR_NULL_POINTER);
    CHECK(get() == current);
  }

  SUBCASE("the printed table parses back to itself") {
    REQUIRE(mlakv_dispatch_table_set(MLAKV_BACKEND_REFERENCE, builtin.c_str()) == MLAKV_OK);
    CHECK(get() == builtin);
  }

  SUBCASE("unit layouts: lanes=32 always splits k_pe, lanes=16 splits on request, lanes=8 may be wide") {
    REQUIRE(mlakv_dispatch_table_set(MLAKV_BACKEND_REFERENCE,
                                     "arch=0-0 variant=vector lanes=32\narch=0-0 variant=vector lanes=16 split=1\n"
                                     "arch=0-0 variant=vector lanes=8 wide=1\n") == MLAKV_OK);
    const std::string t = get();
    CHECK(t.find("lanes=32 split=1") != std::string::npos);
    CHECK(t.find("lanes=16 split=1") != std::string::npos);
    CHECK(t.find("lanes=8 split=0 evict_first=0 wide=1") != std::string::npos);
    REQUIRE(mlakv_dispatch_table_set(MLAKV_BACKEND_REFERENCE, t.c_str()) == MLAKV_OK);
    CHECK(get() == t);
  }

  SUBCASE("a table with no row for the call: MLAKV_ERR_NO_TABLE_ROW, nothing written; the printed row runs") {
    REQUIRE(mlakv_dispatch_table_set(MLAKV_BACKEND_REFERENCE, "arch=1-1 variant=vector  # never matches arch 0\n") ==
            MLAKV_OK);
    Buf kn(64 * 4 * 5 * 2), pe(32 * 5 * 2), v(64 * 4 * 5 * 2), ko(96 * 4 * 5), vo(64 * 4 * 5);
    mlakv_pack_args a = MLAKV_PACK_ARGS_INIT;
    a.k_nope = tu::tensor3(kn.data(), MLAKV_DTYPE_FP16, 5, 4, 64, 256, 64);
    a.k_pe = tu::tensor2(pe.data(), MLAKV_DTYPE_FP16, 5, 32, 32);
    a.v = tu::tensor3(v.data(), MLAKV_DTYPE_FP16, 5, 4, 64, 256, 64);
    a.k_out = tu::tensor3(ko.data(), MLAKV_DTYPE_E4M3FNUZ, 5, 4, 96, 384, 96);
    a.v_out = tu::tensor3(vo.data(), MLAKV_DTYPE_E4M3FNUZ, 5, 4, 64, 256, 64);
    for (mlakv_backend b : {MLAKV_BACKEND_REFERENCE, MLAKV_BACKEND_AUTO}) {
      a.backend = b;
      mlakv_status st = MLAKV_OK;
      tu::plan_text(a, &st);
      CHECK(st == MLAKV_ERR_NO_TABLE_ROW);
      CHECK(mlakv_pack_fp8(&a) == MLAKV_ERR_NO_TABLE_ROW);
      CHECK(std::string(mlakv_last_error()).find("catch-all") != std::string::npos);
      CHECK(tu::all_bytes(ko.data(), ko.size(), tu::kPoison));
      CHECK(tu::all_bytes(vo.data(), vo.size(), tu::kPoison));
    }
    // rows are tried in order; the one the plan prints is the one that runs (here: the second)
    REQUIRE(mlakv_dispatch_table_set(MLAKV_BACKEND_REFERENCE,
                                     "arch=0-0 s=1-4 variant=vector  # too few tokens for this call\n"
                                     "arch=0-0 s=5-5 sxh=20-20 dims=any variant=strided  # this one\n"
                                     "arch=0-0 variant=vector\n") == MLAKV_OK);
    a.backend = MLAKV_BACKEND_REFERENCE;
    CHECK(tu::plan_text(a).find("s=5-5 sxh=20-20 dims=any variant=strided") != std::string::npos);
    Case c = new_case(5, 4, {64, 32, 64}, MLAKV_DTYPE_FP16, MLAKV_DTYPE_E4M3FNUZ);
    c.backend = MLAKV_BACKEND_REFERENCE;
    c.variant = Variant::Default;
    c.check_plan_variant = false;  // the case's own layout may take the third row
    run_case(c);
  }

  SUBCASE("rows for calls with (amax=1) or without (amax=0) an amax; a cached plan never crosses the two") {
    REQUIRE(mlakv_dispatch_table_set(MLAKV_BACKEND_REFERENCE,
                                     "arch=0-0 amax=1 variant=strided  # amax calls\n"
                                     "arch=0-0 amax=0 variant=vector  # the others\n") == MLAKV_OK);
    const std::string t = get();
    CHECK(t.find("sxh=1-* amax=1 dims=any variant=strided") != std::string::npos);
    CHECK(t.find("sxh=1-* amax=0 dims=any variant=vector") != std::string::npos);
    REQUIRE(mlakv_dispatch_table_set(MLAKV_BACKEND_REFERENCE, t.c_str()) == MLAKV_OK);
    CHECK(get() == t);  // prints and parses back to itself
    SmallCall c(7);
    Buf &ko = c.ko;
    const mlakv_pack_args a = c.a;
    float amax[2] = {0.0f, 0.0f};
    mlakv_pack_args with = a;
    with.k_amax = &amax[0];
    with.v_amax = &amax[1];
    CHECK(tu::plan_text(a).find("amax=0 dims=any variant=vector") != std::string::npos);
    CHECK(tu::plan_text(with).find("amax=1 dims=any variant=strided") != std::string::npos);
    // only the calls without an amax have a row: a call with one, after one without on the same
    // geometry (the per-thread plan cache), is walked anew and refused, nothing written
    REQUIRE(mlakv_dispatch_table_set(MLAKV_BACKEND_REFERENCE, "arch=0-0 amax=0 variant=vector\n") == MLAKV_OK);
    REQUIRE(mlakv_pack_fp8(&a) == MLAKV_OK);
    REQUIRE(mlakv_pack_fp8(&a) == MLAKV_OK);
    std::memset(ko.data(), tu::kPoison, ko.size());
    CHECK(mlakv_pack_fp8(&with) == MLAKV_ERR_NO_TABLE_ROW);
    CHECK(tu::all_bytes(ko.data(), ko.size(), tu::kPoison));
    CHECK(amax[0] == 0.0f);
    CHECK(amax[1] == 0.0f);
    // and the other way round
    REQUIRE(mlakv_dispatch_table_set(MLAKV_BACKEND_REFERENCE, "arch=0-0 amax=1 variant=vector\n") == MLAKV_OK);
    REQUIRE(mlakv_pack_fp8(&with) == MLAKV_OK);
    CHECK(amax[0] > 0.0f);
    CHECK(amax[1] > 0.0f);
    std::memset(ko.data(), tu::kPoison, ko.size());
    CHECK(mlakv_pack_fp8(&a) == MLAKV_ERR_NO_TABLE_ROW);
    CHECK(tu::all_bytes(ko.data(), ko.size(), tu::kPoison));
  }

  SUBCASE("rows for calls with per-head (scales=head) or per-tensor (scales=tensor) scales; a cached plan never crosses the two") {
    REQUIRE(mlakv_dispatch_table_set(MLAKV_BACKEND_REFERENCE,
                                     "arch=0-0 scales=head variant=strided  # per-head calls\n"
                                     "arch=0-0 scales=tensor variant=vector  # the others\n") == MLAKV_OK);
    const std::string t = get();
    CHECK(t.find("sxh=1-* scales=head dims=any variant=strided") != std::string::npos);
    CHECK(t.find("sxh=1-* scales=tensor dims=any variant=vector") != std::string::npos);
    REQUIRE(mlakv_dispatch_table_set(MLAKV_BACKEND_REFERENCE, t.c_str()) == MLAKV_OK);
    CHECK(get() == t);  // prints and parses back to itself
    SmallCall c(11);
    Buf &ko = c.ko, &vo = c.vo;
    const mlakv_pack_args a = c.a;
    const float ks[4] = {0.5f, 1.0f, 2.0f, 4.0f}, vs[4] = {4.0f, 2.0f, 1.0f, 0.5f};
    mlakv_pack_args ph = a;
    ph.scale_granularity = MLAKV_SCALE_PER_HEAD;
    ph.k_scale_inv_ptr = ks;
    ph.v_scale_inv_ptr = vs;
    CHECK(tu::plan_text(a).find("scales=tensor dims=any variant=vector") != std::string::npos);
    CHECK(tu::plan_text(ph).find("scales=head dims=any variant=strided") != std::string::npos);
    // only per-tensor calls have a row: a per-head call after a per-tensor one on the same
    // geometry (the per-thread plan cache) is walked anew and refused, nothing written
    REQUIRE(mlakv_dispatch_table_set(MLAKV_BACKEND_REFERENCE, "arch=0-0 scales=tensor variant=vector\n") == MLAKV_OK);
    REQUIRE(mlakv_pack_fp8(&a) == MLAKV_OK);
    REQUIRE(mlakv_pack_fp8(&a) == MLAKV_OK);
    std::memset(ko.data(), tu::kPoison, ko.size());
    std::memset(vo.data(), tu::kPoison, vo.size());
    CHECK(mlakv_pack_fp8(&ph) == MLAKV_ERR_NO_TABLE_ROW);
    CHECK(tu::all_bytes(ko.data(), ko.size(), tu::kPoison));
    CHECK(tu::all_bytes(vo.data(), vo.size(), tu::kPoison));
    // and the other way round
    REQUIRE(mlakv_dispatch_table_set(MLAKV_BACKEND_REFERENCE, "arch=0-0 scales=head variant=vector\n") == MLAKV_OK);
    REQUIRE(mlakv_pack_fp8(&ph) == MLAKV_OK);
    REQUIRE(mlakv_pack_fp8(&ph) == MLAKV_OK);
    std::memset(ko.data(), tu::kPoison, ko.size());
    CHECK(mlakv_pack_fp8(&a) == MLAKV_ERR_NO_TABLE_ROW);
    CHECK(tu::all_bytes(ko.data(), ko.size(), tu::kPoison));
  }

  SUBCASE("keys renamed since the first tables are refused with their new names") {
    CHECK(mlakv_dispatch_table_set(MLAKV_BACKEND_REFERENCE, "arch=0-0 sh=1-* variant=vector") == MLAKV_ERR_TABLE_PARSE);
    CHECK(std::string(mlakv_last_error()).find("'sxh'") != std::string::npos);
    CHECK(mlakv_dispatch_table_set(MLAKV_BACKEND_REFERENCE, "arch=0-0 stream=1 variant=vector") == MLAKV_ERR_TABLE_PARSE);
    CHECK(std::string(mlakv_last_error()).find("'evict_first'") != std::string::npos);
  }

  SUBCASE("tables of backends that are not built") {
    for (int i = 0; i < mlakv_backend_count(); ++i) {
      mlakv_backend_info info = MLAKV_BACKEND_INFO_INIT;
      REQUIRE(mlakv_backend_get_info(i, &info) == MLAKV_OK);
      if (info.compiled) continue;
      INFO("backend " << std::string(info.name));
      char buf[16];
      CHECK(mlakv_dispatch_table_get(info.backend, buf, sizeof buf, nullptr) == MLAKV_ERR_BACKEND_UNAVAILABLE);
      CHECK(mlakv_dispatch_table_set(info.backend, "arch=0-0 variant=vector") == MLAKV_ERR_BACKEND_UNAVAILABLE);
      CHECK(mlakv_dispatch_table_reset(info.backend) == MLAKV_ERR_BACKEND_UNAVAILABLE);
    }
    char buf[16];
    CHECK(mlakv_dispatch_table_get(MLAKV_BACKEND_AUTO, buf, sizeof buf, nullptr) == MLAKV_ERR_NO_SUCH_BACKEND);
    CHECK(mlakv_dispatch_table_get(7, buf, sizeof buf, nullptr) == MLAKV_ERR_NO_SUCH_BACKEND);
    CHECK(mlakv_dispatch_table_set(7, "arch=0-0 variant=vector") == MLAKV_ERR_NO_SUCH_BACKEND);
    CHECK(mlakv_dispatch_table_reset(-1) == MLAKV_ERR_NO_SUCH_BACKEND);
  }
}

TEST_CASE("plan text, and the buffer-too-small path") {
  const int64_t s = 4, h = 16, dn = 128, dr = 64, dv = 128;
  Buf kn(size_t(s * h * dn * 2)), pe(size_t(s * dr * 2)), v(size_t(s * h * dv * 2));
  Buf ko(size_t(s * h * (dn + dr))), vo(size_t(s * h * dv));
  mlakv_pack_args a = MLAKV_PACK_ARGS_INIT;
  a.k_nope = tu::tensor3(kn.data(), MLAKV_DTYPE_BF16, s, h, dn, h * dn, dn);
  a.k_pe = tu::tensor2(pe.data(), MLAKV_DTYPE_BF16, s, dr, dr);
  a.v = tu::tensor3(v.data(), MLAKV_DTYPE_BF16, s, h, dv, h * dv, dv);
  a.k_out = tu::tensor3(ko.data(), MLAKV_DTYPE_E4M3FN, s, h, dn + dr, h * (dn + dr), dn + dr);
  a.v_out = tu::tensor3(vo.data(), MLAKV_DTYPE_E4M3FN, s, h, dv, h * dv, dv);
  a.backend = MLAKV_BACKEND_REFERENCE;

  mlakv_status st;
  const std::string plan = tu::plan_text(a, &st);
  REQUIRE(st == MLAKV_OK);
  INFO("plan: " << plan);
  CHECK(plan.find("backend=reference") != std::string::npos);
  CHECK(plan.find("variant=vector") != std::string::npos);
  CHECK(plan.find("s=4") != std::string::npos);
  CHECK(plan.find("h=16") != std::string::npos);
  CHECK(plan.find("bf16->e4m3fn") != std::string::npos);
  CHECK(std::string(mlakv_last_error()).empty());

  size_t needed = 0;
  char small[8];
  std::memset(small, 'x', sizeof small);
  CHECK(mlakv_pack_fp8_plan(&a, small, sizeof small, &needed) == MLAKV_ERR_BUFFER_TOO_SMALL);
  CHECK(needed == plan.size() + 1);
  CHECK(small[0] == '\0');
  CHECK(std::strlen(mlakv_last_error()) > 0);
  needed = 0;
  CHECK(mlakv_pack_fp8_plan(&a, nullptr, 0, &needed) == MLAKV_ERR_BUFFER_TOO_SMALL);
  CHECK(needed == plan.size() + 1);
  CHECK(mlakv_pack_fp8_plan(&a, nullptr, 16, &needed) == MLAKV_ERR_NULL_POINTER);
  std::vector<char> exact(plan.size() + 1, 'x');
  CHECK(mlakv_pack_fp8_plan(&a, exact.data(), exact.size(), nullptr) == MLAKV_OK);
  CHECK(std::string(exact.data()) == plan);
  CHECK(mlakv_pack_fp8_plan(&a, exact.data(), exact.size() - 1, nullptr) == MLAKV_ERR_BUFFER_TOO_SMALL);
  // planning never writes the outputs
  CHECK(tu::all_bytes(ko.data(), ko.size(), tu::kPoison));
  CHECK(tu::all_bytes(vo.data(), vo.size(), tu::kPoison));
  // AUTO names the backend it would use
  a.backend = MLAKV_BACKEND_AUTO;
  CHECK(tu::plan_text(a).find("backend=") != std::string::npos);
  if (!gpu_backend_usable()) CHECK(tu::plan_text(a).find("backend=reference") != std::string::npos);
  // odd dims: the general path
  a.backend = MLAKV_BACKEND_REFERENCE;
  a.k_nope.shape[2] = 127;
  a.k_out.shape[2] = 127 + dr;
  CHECK(tu::plan_text(a).find("variant=strided") != std::string::npos);
}

TEST_CASE("backend listing") {
  const int n = mlakv_backend_count();
  REQUIRE(n >= 1);
  int references = 0;
  for (int i = 0; i < n; ++i) {
    mlakv_backend_info info = MLAKV_BACKEND_INFO_INIT;
    REQUIRE(mlakv_backend_get_info(i, &info) == MLAKV_OK);
    REQUIRE(info.name != nullptr);
    REQUIRE(info.detail != nullptr);
    INFO("backend " << std::string(info.name));
    CHECK(info.backend >= MLAKV_BACKEND_REFERENCE);
    CHECK(info.backend <= MLAKV_BACKEND_HIP);
    if (!info.compiled) CHECK(info.usable == 0);
    if (info.backend == MLAKV_BACKEND_REFERENCE) {
      ++references;
      CHECK(std::string(info.name) == "reference");
      CHECK(info.compiled == 1);
      CHECK(info.usable == 1);
      CHECK(info.device_count == 1);
      CHECK(i == n - 1);  // the CPU fallback comes last in AUTO's order
    }
    if (info.backend == MLAKV_BACKEND_CUDA) CHECK(std::string(info.name) == "cuda");
    if (info.backend == MLAKV_BACKEND_HIP) CHECK(std::string(info.name) == "hip");
    // a GPU backend that cannot run here: requesting it fails cleanly and writes nothing
    if (info.backend != MLAKV_BACKEND_REFERENCE && !info.usable) {
      std::vector<uint16_t> kn(8), pe(8), v(8);
      std::vector<uint8_t> ko(16, tu::kPoison), vo(8, tu::kPoison);
      mlakv_pack_args a = MLAKV_PACK_ARGS_INIT;
      a.k_nope = tu::tensor3(kn.data(), MLAKV_DTYPE_BF16, 1, 1, 8, 8, 8);
      a.k_pe = tu::tensor2(pe.data(), MLAKV_DTYPE_BF16, 1, 8, 8);
      a.v = tu::tensor3(v.data(), MLAKV_DTYPE_BF16, 1, 1, 8, 8, 8);
      a.k_out = tu::tensor3(ko.data(), MLAKV_DTYPE_E4M3FN, 1, 1, 16, 16, 16);
      a.v_out = tu::tensor3(vo.data(), MLAKV_DTYPE_E4M3FN, 1, 1, 8, 8, 8);
      a.backend = info.backend;
      CHECK(mlakv_pack_fp8(&a) == MLAKV_ERR_BACKEND_UNAVAILABLE);
      CHECK(std::strlen(mlakv_last_error()) > 0);
      CHECK(tu::all_bytes(ko.data(), ko.size(), tu::kPoison));
      CHECK(tu::all_bytes(vo.data(), vo.size(), tu::kPoison));
      char buf[256];
      CHECK(mlakv_pack_fp8_plan(&a, buf, sizeof buf, nullptr) == MLAKV_ERR_BACKEND_UNAVAILABLE);
    }
  }
  CHECK(references == 1);

  mlakv_backend_info info = MLAKV_BACKEND_INFO_INIT;
  info.struct_size = sizeof(mlakv_backend_info) - 1;
  CHECK(mlakv_backend_get_info(0, &info) == MLAKV_ERR_STRUCT_SIZE);
  info.struct_size = 0;
  CHECK(mlakv_backend_get_info(0, &info) == MLAKV_ERR_STRUCT_SIZE);
  CHECK(std::strlen(mlakv_last_error()) > 0);
  info.struct_size = sizeof(mlakv_backend_info);
  CHECK(mlakv_backend_get_info(-1, &info) == MLAKV_ERR_INVALID_ARGUMENT);
  CHECK(mlakv_backend_get_info(n, &info) == MLAKV_ERR_INVALID_ARGUMENT);
  CHECK(mlakv_backend_get_info(0, nullptr) == MLAKV_ERR_NULL_POINTER);
  CHECK(mlakv_backend_get_info(0, &info) == MLAKV_OK);
  CHECK(std::string(mlakv_last_error()).empty());
}

TEST_CASE("version and status strings") {
  CHECK(mlakv_version() == MLAKV_VERSION);
  CHECK(MLAKV_VERSION == MLAKV_VERSION_MAJOR * 10000 + MLAKV_VERSION_MINOR * 100 + MLAKV_VERSION_PATCH);
  REQUIRE(mlakv_version_string() != nullptr);
  char ver[32];
  std::snprintf(ver, sizeof ver, "%d.%d.%d", MLAKV_VERSION_MAJOR, MLAKV_VERSION_MINOR, MLAKV_VERSION_PATCH);
  CHECK(std::string(mlakv_version_string()).rfind(ver, 0) == 0);
  CHECK(std::string(mlakv_version_string()).find("reference") != std::string::npos);
  std::vector<std::string> seen;
  for (mlakv_status st = 0; st <= MLAKV_ERR_TABLE_DEVICE; ++st) {
    CAPTURE(st);
    const char* s = mlakv_status_string(st);
    REQUIRE(s != nullptr);
    CHECK(std::strncmp(s, st == 0 ? "MLAKV_OK" : "MLAKV_ERR_", st == 0 ? 8 : 10) == 0);
    CHECK(std::find(seen.begin(), seen.end(), std::string(s)) == seen.end());
    seen.push_back(s);
  }
  CHECK(std::string(mlakv_status_string(MLAKV_ERR_SHAPE)).rfind("MLAKV_ERR_SHAPE", 0) == 0);
  CHECK(std::string(mlakv_status_string(MLAKV_ERR_INTERNAL)).rfind("MLAKV_ERR_INTERNAL", 0) == 0);
  for (mlakv_status st : {-1, MLAKV_ERR_TABLE_DEVICE + 1, 99, 1 << 30, INT32_MIN}) {
    CAPTURE(st);
    const char* s = mlakv_status_string(st);
    REQUIRE(s != nullptr);
    CHECK(std::strlen(s) > 0);
  }
}
