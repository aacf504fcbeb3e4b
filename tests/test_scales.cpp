// Per-head scales and the fused amax (issue 15) on the reference backend: bytes against the test
// oracle, amax against a plain loop, accumulation, the plan text, and every bad input of the two
// features (a status, a message, nothing written: outputs and amax arrays untouched).
#include <doctest/doctest.h>

#include "test_util.h"

#include <cmath>
#include <limits>

namespace {

// A contiguous problem with bf16/fp16/fp32 inputs filled with random values and the edge values
// (inf, NaN, -0, subnormals), e4m3fn outputs, per-head arrays and amax arrays.
struct Problem {
  int64_t s, h, dn, dr, dv;
  mlakv_dtype in;
  tu::Buf kn, kp, v, ko, vo;
  std::vector<float> ks, vs;     // per head
  std::vector<float> kamax, vamax;
  mlakv_pack_args a;

  Problem(int64_t s_, int64_t h_, int64_t dn_, int64_t dr_, int64_t dv_, mlakv_dtype in_, uint64_t seed)
      : s(s_), h(h_), dn(dn_), dr(dr_), dv(dv_), in(in_) {
    const int e = tu::dtype_size(in);
    kn.reset(size_t(s * h * dn * e));
    kp.reset(size_t(s * dr * e));
    v.reset(size_t(s * h * dv * e));
    ko.reset(size_t(s * h * (dn + dr)));
    vo.reset(size_t(s * h * dv));
    tu::Rng rng(seed);
    const double edge[] = {INFINITY, -INFINITY, NAN, -0.0, 0.0, 1e-40, -3e-39, 448.0, 500.0, -1e6, 0.0625};
    auto fill = [&](tu::Buf& b, int64_t n) {
      for (int64_t i = 0; i < n; ++i) {
        const double x = rng.below(10) == 0 ? edge[rng.below(sizeof edge / sizeof edge[0])]
                                            : double(rng.range(-100000, 100000)) / 977.0;
        b.put(e, i, tu::to_raw(in, x));
      }
    };
    fill(kn, s * h * dn);
    fill(kp, s * dr);
    fill(v, s * h * dv);
    for (int64_t j = 0; j < h; ++j) {  // distinct powers of two: a wrong head shows byte by byte
      ks.push_back(std::ldexp(1.0f, int(j % 7) - 3));
      vs.push_back(std::ldexp(1.0f, 2 - int(j % 5)));
    }
    mlakv_pack_args_init(&a);
    a.k_nope = tu::tensor3(kn.data(), in, s, h, dn, h * dn, dn);
    a.k_pe = tu::tensor2(kp.data(), in, s, dr, dr);
    a.v = tu::tensor3(v.data(), in, s, h, dv, h * dv, dv);
    a.k_out = tu::tensor3(ko.data(), MLAKV_DTYPE_E4M3FN, s, h, dn + dr, h * (dn + dr), dn + dr);
    a.v_out = tu::tensor3(vo.data(), MLAKV_DTYPE_E4M3FN, s, h, dv, h * dv, dv);
    a.backend = MLAKV_BACKEND_REFERENCE;
  }
  float x(const tu::Buf& b, int64_t i) const { return tu::widen(in, b.get(tu::dtype_size(in), i)); }
  void per_head() {
    a.scale_granularity = MLAKV_SCALE_PER_HEAD;
    a.k_scale_inv_ptr = ks.data();
    a.v_scale_inv_ptr = vs.data();
  }
  // The expected outputs for multipliers km(j), vm(j) of head j.
  template <class K, class V>
  void expect_bytes(K km, V vm) const {
    const tu::Fp8Oracle o(MLAKV_DTYPE_E4M3FN);
    const int64_t dk = dn + dr;
    int bad = 0;
    for (int64_t t = 0; t < s; ++t)
      for (int64_t j = 0; j < h; ++j) {
        for (int64_t i = 0; i < dk; ++i) {
          const float in_x = i < dn ? x(kn, (t * h + j) * dn + i) : x(kp, t * dr + i - dn);
          bad += ko.data()[(t * h + j) * dk + i] != o.encode(in_x * km(j));
        }
        for (int64_t i = 0; i < dv; ++i) bad += vo.data()[(t * h + j) * dv + i] != o.encode(x(v, (t * h + j) * dv + i) * vm(j));
      }
    CHECK(bad == 0);
  }
  // The amax rule of mlakv.h, by a plain loop: per head j (or over all heads when per_head is
  // false), the largest |x| ignoring NaN, as a float (+0 when every element is NaN).
  float plain_amax(bool k, bool per_head, int64_t j) const {
    float m = 0.0f;
    auto see = [&](float y) {
      if (!std::isnan(y)) m = std::max(m, std::fabs(y));
    };
    for (int64_t hh = 0; hh < h; ++hh) {
      if (per_head && hh != j) continue;
      for (int64_t t = 0; t < s; ++t) {
        if (k) {
          for (int64_t i = 0; i < dn; ++i) see(x(kn, (t * h + hh) * dn + i));
          for (int64_t i = 0; i < dr; ++i) see(x(kp, t * dr + i));
        } else {
          for (int64_t i = 0; i < dv; ++i) see(x(v, (t * h + hh) * dv + i));
        }
      }
    }
    return m;
  }
};

std::vector<uint8_t> bytes_of(const std::vector<float>& f) {
  std::vector<uint8_t> b(f.size() * 4);
  std::memcpy(b.data(), f.data(), b.size());
  return b;
}

}  // namespace

TEST_CASE("per-head scales: each head uses its own multiplier, in both variants and every input type") {
  for (const char* variant : {"vector", "strided"})
    for (mlakv_dtype in : {MLAKV_DTYPE_BF16, MLAKV_DTYPE_FP16, MLAKV_DTYPE_FP32}) {
      tu::TableGuard restore;
      REQUIRE(mlakv_dispatch_table_set(MLAKV_BACKEND_REFERENCE, tu::force_variant_table(variant)) == MLAKV_OK);
      Problem p(5, 6, 16, 8, 24, in, 7);
      p.per_head();
      INFO(variant << " " << tu::dtype_name(in));
      REQUIRE(mlakv_pack_fp8(&p.a) == MLAKV_OK);
      p.expect_bytes([&](int64_t j) { return p.ks[size_t(j)]; }, [&](int64_t j) { return p.vs[size_t(j)]; });
      CHECK(tu::plan_text(p.a).find("scales=per-head amax=none") != std::string::npos);
    }
}

TEST_CASE("per-head scales equal to one per-tensor scale give the per-tensor bytes") {
  Problem p(7, 4, 8, 8, 8, MLAKV_DTYPE_BF16, 11);
  p.a.k_scale_inv = 0.375f;
  p.a.v_scale_inv = 3.0f;
  REQUIRE(mlakv_pack_fp8(&p.a) == MLAKV_OK);
  const std::vector<uint8_t> ko = p.ko.bytes(), vo = p.vo.bytes();
  std::fill(p.ks.begin(), p.ks.end(), 0.375f);
  std::fill(p.vs.begin(), p.vs.end(), 3.0f);
  p.per_head();
  p.ko.fill(tu::kPoison);
  p.vo.fill(tu::kPoison);
  REQUIRE(mlakv_pack_fp8(&p.a) == MLAKV_OK);
  CHECK(p.ko.bytes() == ko);
  CHECK(p.vo.bytes() == vo);
}

TEST_CASE("amax: per tensor and per head against a plain loop, accumulated across calls") {
  for (bool per_head : {false, true})
    for (mlakv_dtype in : {MLAKV_DTYPE_BF16, MLAKV_DTYPE_FP16, MLAKV_DTYPE_FP32}) {
      INFO((per_head ? "per head " : "per tensor ") << tu::dtype_name(in));
      const int64_t n = per_head ? 5 : 1;
      std::vector<float> kamax(size_t(n), 0.0f), vamax(size_t(n), 0.0f);
      std::vector<float> want_k(size_t(n), 0.0f), want_v(size_t(n), 0.0f);
      for (uint64_t call = 0; call < 3; ++call) {
        Problem p(4 + int64_t(call), 5, 8, 4, 8, in, 100 + call * 7 + uint64_t(in));
        if (per_head) p.per_head();
        p.a.k_amax = kamax.data();
        p.a.v_amax = vamax.data();
        REQUIRE(mlakv_pack_fp8(&p.a) == MLAKV_OK);
        if (call == 0) CHECK(tu::plan_text(p.a).find(per_head ? "scales=per-head amax=k,v" : "scales=per-tensor amax=k,v") !=
                             std::string::npos);
        for (int64_t j = 0; j < n; ++j) {
          want_k[size_t(j)] = std::max(want_k[size_t(j)], p.plain_amax(true, per_head, j));
          want_v[size_t(j)] = std::max(want_v[size_t(j)], p.plain_amax(false, per_head, j));
        }
        CHECK(bytes_of(kamax) == bytes_of(want_k));
        CHECK(bytes_of(vamax) == bytes_of(want_v));
        // the outputs are still right
        if (per_head) p.expect_bytes([&](int64_t j) { return p.ks[size_t(j)]; }, [&](int64_t j) { return p.vs[size_t(j)]; });
        else p.expect_bytes([](int64_t) { return 1.0f; }, [](int64_t) { return 1.0f; });
      }
    }
}

TEST_CASE("amax: NaN is ignored, infinity counts, -0 is +0, k_pe counts for every head; only K or only V") {
  Problem p(2, 3, 8, 8, 8, MLAKV_DTYPE_FP32, 5);
  for (int64_t i = 0; i < 2 * 3 * 8; ++i) {
    p.kn.put(4, i, tu::f32_bits(std::numeric_limits<float>::quiet_NaN()));
    p.v.put(4, i, tu::f32_bits(i == 17 ? -std::numeric_limits<float>::infinity() : -0.0f));
  }
  for (int64_t i = 0; i < 2 * 8; ++i) p.kp.put(4, i, tu::f32_bits(i == 9 ? -1e-45f : 0.0f));  // the smallest subnormal
  std::vector<float> kamax(3, -1.0f), vamax(3, 0.0f);  // a negative start is replaced by the call's max
  p.per_head();
  p.a.k_amax = kamax.data();
  REQUIRE(mlakv_pack_fp8(&p.a) == MLAKV_OK);
  for (float k : kamax) CHECK(tu::f32_bits(k) == 1u);  // 1e-45 from k_pe, in every head
  CHECK(vamax == std::vector<float>(3, 0.0f));          // not asked: untouched
  p.a.k_amax = nullptr;
  p.a.v_amax = vamax.data();
  REQUIRE(mlakv_pack_fp8(&p.a) == MLAKV_OK);
  CHECK(tu::f32_bits(vamax[0]) == 0u);  // -0 counts as +0
  CHECK(std::isinf(vamax[2]));          // element 17 is head 2 of token 0
  CHECK(tu::f32_bits(vamax[1]) == 0u);
}

TEST_CASE("per-head scales and amax: bad inputs get their status, nothing is written") {
  Problem p(3, 4, 8, 8, 8, MLAKV_DTYPE_BF16, 9);
  std::vector<float> amax(8, 0.0f);
  p.per_head();
  p.a.k_amax = amax.data();
  p.a.v_amax = amax.data() + 4;
  auto expect = [&](const mlakv_pack_args& a, mlakv_status want) {
    const std::vector<uint8_t> ko = p.ko.bytes(), vo = p.vo.bytes(), am = bytes_of(amax), kn = p.kn.bytes();
    const mlakv_status got = mlakv_pack_fp8(&a);
    INFO(mlakv_status_string(got) << ": " << mlakv_last_error());
    CHECK(got == want);
    CHECK(std::strlen(mlakv_last_error()) > 0);
    mlakv_status plan = MLAKV_OK;
    tu::plan_text(a, &plan);
    CHECK(plan == want);
    CHECK(p.ko.bytes() == ko);
    CHECK(p.vo.bytes() == vo);
    CHECK(bytes_of(amax) == am);
    CHECK(p.kn.bytes() == kn);
  };
  mlakv_pack_args a = p.a;
  SUBCASE("granularity out of range") { a.scale_granularity = 2; expect(a, MLAKV_ERR_INVALID_ARGUMENT); }
  SUBCASE("reserved not zero") { a.reserved = 1; expect(a, MLAKV_ERR_INVALID_ARGUMENT); }
  SUBCASE("per head without k scales") { a.k_scale_inv_ptr = nullptr; expect(a, MLAKV_ERR_NULL_POINTER); }
  SUBCASE("per head without v scales") { a.v_scale_inv_ptr = nullptr; expect(a, MLAKV_ERR_NULL_POINTER); }
  SUBCASE("misaligned scale array") {
    a.k_scale_inv_ptr = reinterpret_cast<const float*>(reinterpret_cast<const char*>(p.ks.data()) + 2);
    expect(a, MLAKV_ERR_ALIGNMENT);
  }
  SUBCASE("misaligned amax array") {
    a.v_amax = reinterpret_cast<float*>(reinterpret_cast<char*>(amax.data()) + 17);
    expect(a, MLAKV_ERR_ALIGNMENT);
  }
  SUBCASE("scale array overlapping k_out") { a.k_scale_inv_ptr = reinterpret_cast<const float*>(p.ko.data() + 8); expect(a, MLAKV_ERR_OVERLAP); }
  SUBCASE("amax overlapping an input") { a.k_amax = reinterpret_cast<float*>(p.kn.data() + 4); expect(a, MLAKV_ERR_OVERLAP); }
  SUBCASE("amax overlapping v_out") { a.v_amax = reinterpret_cast<float*>(p.vo.data()); expect(a, MLAKV_ERR_OVERLAP); }
  SUBCASE("amax arrays overlapping each other") { a.v_amax = amax.data() + 3; expect(a, MLAKV_ERR_OVERLAP); }
  SUBCASE("amax overlapping a scale array") { a.k_amax = const_cast<float*>(p.vs.data()) + 1; expect(a, MLAKV_ERR_OVERLAP); }
  SUBCASE("a 0.1 caller's struct_size gets per-tensor scales and no amax") {
    a.struct_size = MLAKV_PACK_ARGS_SIZE_0_1;
    a.k_scale_inv_ptr = nullptr;
    a.v_scale_inv_ptr = nullptr;
    REQUIRE(mlakv_pack_fp8(&a) == MLAKV_OK);
    CHECK(tu::plan_text(a).find("scales=per-tensor amax=none") != std::string::npos);
    CHECK(amax == std::vector<float>(8, 0.0f));
  }
}

TEST_CASE("mlakv_pack_args_init_sized: defaults for the size asked, zero past this library's struct") {
  std::vector<unsigned char> buf(sizeof(mlakv_pack_args) + 16, 0xEE);
  mlakv_pack_args* a = reinterpret_cast<mlakv_pack_args*>(buf.data());
  CHECK(mlakv_pack_args_init_sized(a, MLAKV_PACK_ARGS_SIZE_0_1 - 1) == MLAKV_ERR_STRUCT_SIZE);
  CHECK(buf[0] == 0xEE);
  REQUIRE(mlakv_pack_args_init_sized(a, MLAKV_PACK_ARGS_SIZE_0_1) == MLAKV_OK);
  CHECK(a->struct_size == MLAKV_PACK_ARGS_SIZE_0_1);
  CHECK(a->k_scale_inv == 1.0f);
  CHECK(buf[MLAKV_PACK_ARGS_SIZE_0_1] == 0xEE);  // nothing past the size asked
  REQUIRE(mlakv_pack_args_init_sized(a, buf.size()) == MLAKV_OK);
  CHECK(a->struct_size == buf.size());
  CHECK(a->scale_granularity == MLAKV_SCALE_PER_TENSOR);
  CHECK(a->k_amax == nullptr);
  CHECK(tu::all_bytes(buf.data() + sizeof(mlakv_pack_args), 16, 0));
  (mlakv_pack_args_init)(a);  // the 0.1 symbol: the 0.1 layout only
  CHECK(a->struct_size == MLAKV_PACK_ARGS_SIZE_0_1);
}
