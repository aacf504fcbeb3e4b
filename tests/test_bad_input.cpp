// Every bad input of mlakv_pack_fp8 gets its exact status, a message in mlakv_last_error(), and
// no byte of memory is touched (outputs poisoned before the call and compared after). The same
// arguments through mlakv_pack_fp8_plan give the same status and write nothing to its buffer.
#include <doctest/doctest.h>

#include "test_util.h"

#include <thread>

namespace {

// A small valid problem, every tensor in one arena (so that overlapping and out-of-place pointers
// stay inside one allocation): s = 2, h = 3, (D_nope, D_rope, D_v) = (8, 4, 8), bf16 -> e4m3fn,
// contiguous, multipliers through pointers.
struct Fixture {
  static constexpr int64_t s = 2, h = 3, dn = 8, dr = 4, dv = 8, dk = dn + dr;
  static constexpr size_t kKn = 0, kPe = 256, kV = 512, kKo = 768, kVo = 1024, kSc = 1280, kArena = 2048;
  tu::Buf arena{kArena, 0, tu::kPoison};
  mlakv_pack_args a;

  Fixture() {
    for (int64_t i = 0; i < 128; ++i) put_bf16(kKn, i, float(i % 17 - 8) * 0.375f);
    for (int64_t i = 0; i < 64; ++i) put_bf16(kPe, i, float(i % 5) * 1.5f - 2.0f);
    for (int64_t i = 0; i < 128; ++i) put_bf16(kV, i, float(i % 13) * -0.25f + 1.0f);
    const float scales[2] = {2.0f, 1.0f / 0.0375f};
    std::memcpy(arena.data() + kSc, scales, sizeof scales);
    mlakv_pack_args_init(&a);
    a.k_nope = tu::tensor3(p(kKn), MLAKV_DTYPE_BF16, s, h, dn, h * dn, dn);
    a.k_pe = tu::tensor2(p(kPe), MLAKV_DTYPE_BF16, s, dr, dr);
    a.v = tu::tensor3(p(kV), MLAKV_DTYPE_BF16, s, h, dv, h * dv, dv);
    a.k_out = tu::tensor3(p(kKo), MLAKV_DTYPE_E4M3FN, s, h, dk, h * dk, dk);
    a.v_out = tu::tensor3(p(kVo), MLAKV_DTYPE_E4M3FN, s, h, dv, h * dv, dv);
    a.k_scale_inv_ptr = reinterpret_cast<const float*>(p(kSc));
    a.v_scale_inv_ptr = reinterpret_cast<const float*>(p(kSc + 4));
    a.backend = MLAKV_BACKEND_REFERENCE;
  }
  uint8_t* p(size_t off) { return arena.data() + off; }
  void put_bf16(size_t off, int64_t i, float x) {
    const uint16_t b = tu::to_bf16(x);
    std::memcpy(arena.data() + off + 2 * size_t(i), &b, 2);
  }
  // The outputs of the valid problem, from the test's own oracle.
  void expected(std::vector<uint8_t>* ko, std::vector<uint8_t>* vo) {
    const tu::Fp8Oracle o(MLAKV_DTYPE_E4M3FN);
    auto in = [&](size_t off, int64_t i) {
      uint16_t b;
      std::memcpy(&b, arena.data() + off + 2 * size_t(i), 2);
      return tu::widen_bf16(b);
    };
    float ks, vs;
    std::memcpy(&ks, p(kSc), 4);
    std::memcpy(&vs, p(kSc + 4), 4);
    ko->assign(size_t(s * h * dk), 0);
    vo->assign(size_t(s * h * dv), 0);
    for (int64_t t = 0; t < s; ++t)
      for (int64_t hh = 0; hh < h; ++hh) {
        for (int64_t i = 0; i < dn; ++i) (*ko)[size_t((t * h + hh) * dk + i)] = o.encode(in(kKn, (t * h + hh) * dn + i) * ks);
        for (int64_t i = 0; i < dr; ++i) (*ko)[size_t((t * h + hh) * dk + dn + i)] = o.encode(in(kPe, t * dr + i) * ks);
        for (int64_t i = 0; i < dv; ++i) (*vo)[size_t((t * h + hh) * dv + i)] = o.encode(in(kV, (t * h + hh) * dv + i) * vs);
      }
  }
};

// A valid call succeeds and clears mlakv_last_error().
void check_success_clears_error() {
  Fixture ok;
  CHECK(mlakv_pack_fp8(&ok.a) == MLAKV_OK);
  CHECK(std::string(mlakv_last_error()).empty());
}

// The call fails with `want`, leaves a message, touches no byte of the arena; plan agrees.
void expect_rejected(const mlakv_pack_args* a, mlakv_status want, const tu::Buf& arena) {
  const std::vector<uint8_t> before = arena.bytes();
  const mlakv_status got = mlakv_pack_fp8(a);
  const std::string why = std::string("want ") + mlakv_status_string(want) + ", got " + mlakv_status_string(got) + " (" +
                          mlakv_last_error() + ")";
  INFO(why);
  CHECK(got == want);
  CHECK(std::strlen(mlakv_last_error()) > 0);
  CHECK(arena.bytes() == before);

  char buf[512];
  std::memset(buf, 'z', sizeof buf);
  const mlakv_status got_plan = mlakv_pack_fp8_plan(a, buf, sizeof buf, nullptr);
  const std::string why_plan = std::string("plan: got ") + mlakv_status_string(got_plan) + " (" + mlakv_last_error() + ")";
  INFO(why_plan);
  CHECK(got_plan == want);
  CHECK(std::strlen(mlakv_last_error()) > 0);
  CHECK(tu::all_bytes(reinterpret_cast<const uint8_t*>(buf), sizeof buf, 'z'));
  CHECK(arena.bytes() == before);

  check_success_clears_error();
}
void expect_rejected(Fixture& f, mlakv_status want) { expect_rejected(&f.a, want, f.arena); }

// The call succeeds; outputs hold exactly the expected bytes (or stay poisoned for empty calls).
void expect_ok(const mlakv_pack_args* a, Fixture& f, bool writes) {
  std::vector<uint8_t> ko, vo;
  f.expected(&ko, &vo);
  const std::vector<uint8_t> before = f.arena.bytes();
  const mlakv_status st = mlakv_pack_fp8(a);
  const std::string why = std::string("got ") + mlakv_status_string(st) + " (" + mlakv_last_error() + ")";
  INFO(why);
  REQUIRE(st == MLAKV_OK);
  CHECK(std::string(mlakv_last_error()).empty());
  std::vector<uint8_t> want = before;
  if (writes) {
    std::copy(ko.begin(), ko.end(), want.begin() + Fixture::kKo);
    std::copy(vo.begin(), vo.end(), want.begin() + Fixture::kVo);
  }
  CHECK(f.arena.bytes() == want);
  char buf[512];
  CHECK(mlakv_pack_fp8_plan(a, buf, sizeof buf, nullptr) == MLAKV_OK);
}

}  // namespace

TEST_CASE("bad input: NULL pointers -> MLAKV_ERR_NULL_POINTER") {
  Fixture f;
  SUBCASE("args") {
    CHECK(mlakv_pack_fp8(nullptr) == MLAKV_ERR_NULL_POINTER);
    CHECK(std::strlen(mlakv_last_error()) > 0);
    char buf[64];
    std::memset(buf, 'z', sizeof buf);
    CHECK(mlakv_pack_fp8_plan(nullptr, buf, sizeof buf, nullptr) == MLAKV_ERR_NULL_POINTER);
    CHECK(std::strlen(mlakv_last_error()) > 0);
    CHECK(buf[0] == 'z');
    check_success_clears_error();
  }
  SUBCASE("k_nope.data") { f.a.k_nope.data = nullptr; expect_rejected(f, MLAKV_ERR_NULL_POINTER); }
  SUBCASE("k_pe.data") { f.a.k_pe.data = nullptr; expect_rejected(f, MLAKV_ERR_NULL_POINTER); }
  SUBCASE("v.data") { f.a.v.data = nullptr; expect_rejected(f, MLAKV_ERR_NULL_POINTER); }
  SUBCASE("k_out.data") { f.a.k_out.data = nullptr; expect_rejected(f, MLAKV_ERR_NULL_POINTER); }
  SUBCASE("v_out.data") { f.a.v_out.data = nullptr; expect_rejected(f, MLAKV_ERR_NULL_POINTER); }
}

TEST_CASE("bad input: misaligned pointers -> MLAKV_ERR_ALIGNMENT") {
  Fixture f;
  SUBCASE("bf16 k_nope at an odd address") { f.a.k_nope.data = f.p(Fixture::kKn + 1); expect_rejected(f, MLAKV_ERR_ALIGNMENT); }
  SUBCASE("bf16 k_pe at an odd address") { f.a.k_pe.data = f.p(Fixture::kPe + 1); expect_rejected(f, MLAKV_ERR_ALIGNMENT); }
  SUBCASE("bf16 v at an odd address") { f.a.v.data = f.p(Fixture::kV + 3); expect_rejected(f, MLAKV_ERR_ALIGNMENT); }
  SUBCASE("fp32 k_nope 2 bytes off") {
    f.a.k_nope.dtype = f.a.k_pe.dtype = f.a.v.dtype = MLAKV_DTYPE_FP32;
    f.a.k_nope.data = f.p(Fixture::kKn + 2);
    expect_rejected(f, MLAKV_ERR_ALIGNMENT);
  }
  SUBCASE("fp32 v 2 bytes off") {
    f.a.k_nope.dtype = f.a.k_pe.dtype = f.a.v.dtype = MLAKV_DTYPE_FP32;
    f.a.v.data = f.p(Fixture::kV + 2);
    expect_rejected(f, MLAKV_ERR_ALIGNMENT);
  }
  SUBCASE("k_scale_inv_ptr") {
    f.a.k_scale_inv_ptr = reinterpret_cast<const float*>(f.p(Fixture::kSc + 2));
    expect_rejected(f, MLAKV_ERR_ALIGNMENT);
  }
  SUBCASE("v_scale_inv_ptr") {
    f.a.v_scale_inv_ptr = reinterpret_cast<const float*>(f.p(Fixture::kSc + 5));
    expect_rejected(f, MLAKV_ERR_ALIGNMENT);
  }
}

TEST_CASE("bad input: dtypes -> MLAKV_ERR_DTYPE") {
  Fixture f;
  SUBCASE("fp8 as input dtype") {
    f.a.k_nope.dtype = f.a.k_pe.dtype = f.a.v.dtype = MLAKV_DTYPE_E4M3FN;
    expect_rejected(f, MLAKV_ERR_DTYPE);
  }
  SUBCASE("invalid input code 99") {
    f.a.k_nope.dtype = f.a.k_pe.dtype = f.a.v.dtype = 99;
    expect_rejected(f, MLAKV_ERR_DTYPE);
  }
  SUBCASE("MLAKV_DTYPE_INVALID input") {
    f.a.k_nope.dtype = f.a.k_pe.dtype = f.a.v.dtype = MLAKV_DTYPE_INVALID;
    expect_rejected(f, MLAKV_ERR_DTYPE);
  }
  SUBCASE("negative input code") { f.a.k_nope.dtype = -1; expect_rejected(f, MLAKV_ERR_DTYPE); }
  SUBCASE("k_pe dtype differs") { f.a.k_pe.dtype = MLAKV_DTYPE_FP16; expect_rejected(f, MLAKV_ERR_DTYPE); }
  SUBCASE("v dtype differs") { f.a.v.dtype = MLAKV_DTYPE_FP32; expect_rejected(f, MLAKV_ERR_DTYPE); }
  SUBCASE("k_nope dtype differs from k_pe and v") { f.a.k_nope.dtype = MLAKV_DTYPE_FP16; expect_rejected(f, MLAKV_ERR_DTYPE); }
  SUBCASE("output bf16") { f.a.k_out.dtype = f.a.v_out.dtype = MLAKV_DTYPE_BF16; expect_rejected(f, MLAKV_ERR_DTYPE); }
  SUBCASE("output fp32") { f.a.k_out.dtype = f.a.v_out.dtype = MLAKV_DTYPE_FP32; expect_rejected(f, MLAKV_ERR_DTYPE); }
  SUBCASE("output code 99") { f.a.k_out.dtype = f.a.v_out.dtype = 99; expect_rejected(f, MLAKV_ERR_DTYPE); }
  SUBCASE("output MLAKV_DTYPE_INVALID") { f.a.k_out.dtype = f.a.v_out.dtype = 0; expect_rejected(f, MLAKV_ERR_DTYPE); }
  SUBCASE("k_out e4m3fn, v_out e5m2") { f.a.v_out.dtype = MLAKV_DTYPE_E5M2; expect_rejected(f, MLAKV_ERR_DTYPE); }
  SUBCASE("k_out e5m2fnuz, v_out e4m3fnuz") {
    f.a.k_out.dtype = MLAKV_DTYPE_E5M2FNUZ;
    f.a.v_out.dtype = MLAKV_DTYPE_E4M3FNUZ;
    expect_rejected(f, MLAKV_ERR_DTYPE);
  }
  SUBCASE("v_out not fp8") { f.a.v_out.dtype = MLAKV_DTYPE_BF16; expect_rejected(f, MLAKV_ERR_DTYPE); }
}

TEST_CASE("bad input: wrong ndim -> MLAKV_ERR_RANK") {
  Fixture f;
  SUBCASE("k_nope 2-D") { f.a.k_nope.ndim = 2; expect_rejected(f, MLAKV_ERR_RANK); }
  SUBCASE("k_nope 4-D") { f.a.k_nope.ndim = 4; f.a.k_nope.shape[3] = 1; f.a.k_nope.strides[3] = 1; expect_rejected(f, MLAKV_ERR_RANK); }
  SUBCASE("k_nope 0-D") { f.a.k_nope.ndim = 0; expect_rejected(f, MLAKV_ERR_RANK); }
  SUBCASE("k_nope ndim -1") { f.a.k_nope.ndim = -1; expect_rejected(f, MLAKV_ERR_RANK); }
  SUBCASE("k_nope ndim 99 (beyond MLAKV_MAX_RANK)") { f.a.k_nope.ndim = 99; expect_rejected(f, MLAKV_ERR_RANK); }
  SUBCASE("k_pe 1-D") { f.a.k_pe.ndim = 1; expect_rejected(f, MLAKV_ERR_RANK); }
  SUBCASE("k_pe 4-D") { f.a.k_pe.ndim = 4; expect_rejected(f, MLAKV_ERR_RANK); }
  SUBCASE("v 2-D") { f.a.v.ndim = 2; expect_rejected(f, MLAKV_ERR_RANK); }
  SUBCASE("v 4-D") { f.a.v.ndim = 4; expect_rejected(f, MLAKV_ERR_RANK); }
  SUBCASE("k_out 2-D") { f.a.k_out.ndim = 2; expect_rejected(f, MLAKV_ERR_RANK); }
  SUBCASE("k_out 4-D") { f.a.k_out.ndim = 4; expect_rejected(f, MLAKV_ERR_RANK); }
  SUBCASE("v_out 2-D") { f.a.v_out.ndim = 2; expect_rejected(f, MLAKV_ERR_RANK); }
  SUBCASE("v_out 1-D") { f.a.v_out.ndim = 1; expect_rejected(f, MLAKV_ERR_RANK); }
}

TEST_CASE("bad input: shapes that disagree -> MLAKV_ERR_SHAPE") {
  Fixture f;
  SUBCASE("3-D k_pe with middle dim 2") {
    f.a.k_pe = tu::tensor3(f.p(Fixture::kPe), MLAKV_DTYPE_BF16, Fixture::s, 2, Fixture::dr, 2 * Fixture::dr, Fixture::dr);
    expect_rejected(f, MLAKV_ERR_SHAPE);
  }
  SUBCASE("3-D k_pe with middle dim 0") {
    f.a.k_pe = tu::tensor3(f.p(Fixture::kPe), MLAKV_DTYPE_BF16, Fixture::s, 0, Fixture::dr, Fixture::dr, Fixture::dr);
    expect_rejected(f, MLAKV_ERR_SHAPE);
  }
  SUBCASE("k_pe s differs") { f.a.k_pe.shape[0] = 1; expect_rejected(f, MLAKV_ERR_SHAPE); }
  SUBCASE("v s differs") { f.a.v.shape[0] = 1; expect_rejected(f, MLAKV_ERR_SHAPE); }
  SUBCASE("k_out s differs") { f.a.k_out.shape[0] = 3; expect_rejected(f, MLAKV_ERR_SHAPE); }
  SUBCASE("v_out s differs") { f.a.v_out.shape[0] = 1; expect_rejected(f, MLAKV_ERR_SHAPE); }
  SUBCASE("v h differs") { f.a.v.shape[1] = 2; expect_rejected(f, MLAKV_ERR_SHAPE); }
  SUBCASE("k_out h differs") { f.a.k_out.shape[1] = 2; expect_rejected(f, MLAKV_ERR_SHAPE); }
  SUBCASE("v_out h differs") { f.a.v_out.shape[1] = 1; expect_rejected(f, MLAKV_ERR_SHAPE); }
  SUBCASE("k_out last dim D_nope + D_rope + 1") { f.a.k_out.shape[2] = Fixture::dk + 1; expect_rejected(f, MLAKV_ERR_SHAPE); }
  SUBCASE("k_out last dim D_nope") { f.a.k_out.shape[2] = Fixture::dn; expect_rejected(f, MLAKV_ERR_SHAPE); }
  SUBCASE("v_out last dim != D_v") { f.a.v_out.shape[2] = Fixture::dv - 1; expect_rejected(f, MLAKV_ERR_SHAPE); }
  SUBCASE("negative s in k_nope") { f.a.k_nope.shape[0] = -2; expect_rejected(f, MLAKV_ERR_SHAPE); }
  SUBCASE("negative s everywhere") {
    f.a.k_nope.shape[0] = f.a.k_pe.shape[0] = f.a.v.shape[0] = f.a.k_out.shape[0] = f.a.v_out.shape[0] = -1;
    expect_rejected(f, MLAKV_ERR_SHAPE);
  }
  SUBCASE("negative D_v") { f.a.v.shape[2] = -8; expect_rejected(f, MLAKV_ERR_SHAPE); }
  SUBCASE("negative h in k_out") { f.a.k_out.shape[1] = -3; expect_rejected(f, MLAKV_ERR_SHAPE); }
  SUBCASE("negative D_rope in k_pe") { f.a.k_pe.shape[1] = -4; expect_rejected(f, MLAKV_ERR_SHAPE); }
}

TEST_CASE("bad input: strides -> MLAKV_ERR_STRIDE") {
  Fixture f;
  SUBCASE("negative token stride of k_nope") { f.a.k_nope.strides[0] = -24; expect_rejected(f, MLAKV_ERR_STRIDE); }
  SUBCASE("negative head stride of v") { f.a.v.strides[1] = -8; expect_rejected(f, MLAKV_ERR_STRIDE); }
  SUBCASE("negative token stride of k_pe") { f.a.k_pe.strides[0] = -4; expect_rejected(f, MLAKV_ERR_STRIDE); }
  SUBCASE("negative token stride of k_out") { f.a.k_out.strides[0] = -36; expect_rejected(f, MLAKV_ERR_STRIDE); }
  SUBCASE("negative head stride of v_out") { f.a.v_out.strides[1] = -8; expect_rejected(f, MLAKV_ERR_STRIDE); }
  SUBCASE("negative inner stride") { f.a.k_nope.strides[2] = -1; expect_rejected(f, MLAKV_ERR_STRIDE); }
  SUBCASE("inner stride 2 in k_nope") { f.a.k_nope.strides[2] = 2; expect_rejected(f, MLAKV_ERR_STRIDE); }
  SUBCASE("inner stride 2 in 2-D k_pe") { f.a.k_pe.strides[1] = 2; expect_rejected(f, MLAKV_ERR_STRIDE); }
  SUBCASE("inner stride 0 in v") { f.a.v.strides[2] = 0; expect_rejected(f, MLAKV_ERR_STRIDE); }
  SUBCASE("inner stride 0 in k_out") { f.a.k_out.strides[2] = 0; expect_rejected(f, MLAKV_ERR_STRIDE); }
  SUBCASE("inner stride 3 in v_out") { f.a.v_out.strides[2] = 3; expect_rejected(f, MLAKV_ERR_STRIDE); }
  // outputs whose rows alias each other
  SUBCASE("k_out token stride 0") { f.a.k_out.strides[0] = 0; expect_rejected(f, MLAKV_ERR_STRIDE); }
  SUBCASE("k_out head stride 0") { f.a.k_out.strides[1] = 0; expect_rejected(f, MLAKV_ERR_STRIDE); }
  SUBCASE("k_out head stride one byte short of a row") { f.a.k_out.strides[1] = Fixture::dk - 1; expect_rejected(f, MLAKV_ERR_STRIDE); }
  SUBCASE("k_out token stride == head stride") { f.a.k_out.strides[0] = Fixture::dk; expect_rejected(f, MLAKV_ERR_STRIDE); }
  SUBCASE("k_out token stride too small for its heads") {
    f.a.k_out.strides[0] = Fixture::h * Fixture::dk - 1;
    expect_rejected(f, MLAKV_ERR_STRIDE);
  }
  SUBCASE("k_out head-major, head stride too small for its tokens") {
    f.a.k_out.strides[0] = Fixture::dk;
    f.a.k_out.strides[1] = Fixture::s * Fixture::dk - 1;
    expect_rejected(f, MLAKV_ERR_STRIDE);
  }
  SUBCASE("v_out token stride 0") { f.a.v_out.strides[0] = 0; expect_rejected(f, MLAKV_ERR_STRIDE); }
  SUBCASE("v_out head stride 0") { f.a.v_out.strides[1] = 0; expect_rejected(f, MLAKV_ERR_STRIDE); }
  SUBCASE("v_out head stride short of a row") { f.a.v_out.strides[1] = Fixture::dv - 1; expect_rejected(f, MLAKV_ERR_STRIDE); }
}

TEST_CASE("bad input: overlapping memory -> MLAKV_ERR_OVERLAP") {
  Fixture f;
  SUBCASE("k_out on k_nope") { f.a.k_out.data = f.p(Fixture::kKn); expect_rejected(f, MLAKV_ERR_OVERLAP); }
  SUBCASE("k_out's first byte on k_nope's last") {
    f.a.k_out.data = f.p(Fixture::kKn + 2 * Fixture::s * Fixture::h * Fixture::dn - 1);
    expect_rejected(f, MLAKV_ERR_OVERLAP);
  }
  SUBCASE("k_out ends on k_pe's first byte") {
    f.a.k_out.data = f.p(Fixture::kPe - (Fixture::s * Fixture::h * Fixture::dk - 1));
    expect_rejected(f, MLAKV_ERR_OVERLAP);
  }
  SUBCASE("v_out on v") { f.a.v_out.data = f.p(Fixture::kV + 16); expect_rejected(f, MLAKV_ERR_OVERLAP); }
  SUBCASE("v_out on k_nope") { f.a.v_out.data = f.p(Fixture::kKn + 40); expect_rejected(f, MLAKV_ERR_OVERLAP); }
  SUBCASE("k_out on v_out") { f.a.v_out.data = f.p(Fixture::kKo + 1); expect_rejected(f, MLAKV_ERR_OVERLAP); }
  SUBCASE("k_out and v_out the same memory") { f.a.v_out.data = f.a.k_out.data; expect_rejected(f, MLAKV_ERR_OVERLAP); }
  SUBCASE("interleaved outputs one byte too close") {
    // one [s, h, D_k + D_v] buffer, v_out starting one byte inside k_out's rows
    const int64_t w = Fixture::dk + Fixture::dv;
    f.a.k_out.strides[0] = f.a.v_out.strides[0] = Fixture::h * w;
    f.a.k_out.strides[1] = f.a.v_out.strides[1] = w;
    f.a.k_out.data = f.p(Fixture::kKo);
    f.a.v_out.data = f.p(Fixture::kKo + Fixture::dk - 1);
    expect_rejected(f, MLAKV_ERR_OVERLAP);
  }
  SUBCASE("k_scale_inv_ptr inside k_out") {
    f.a.k_scale_inv_ptr = reinterpret_cast<const float*>(f.p(Fixture::kKo + 4));
    expect_rejected(f, MLAKV_ERR_OVERLAP);
  }
  SUBCASE("v_scale_inv_ptr inside v_out") {
    f.a.v_scale_inv_ptr = reinterpret_cast<const float*>(f.p(Fixture::kVo + 8));
    expect_rejected(f, MLAKV_ERR_OVERLAP);
  }
  SUBCASE("k_scale_inv_ptr inside v_out") {
    f.a.k_scale_inv_ptr = reinterpret_cast<const float*>(f.p(Fixture::kVo));
    expect_rejected(f, MLAKV_ERR_OVERLAP);
  }
}

TEST_CASE("bad input: sizes that overflow 64 bits -> MLAKV_ERR_SIZE_OVERFLOW (memory untouched)") {
  // real small buffers, huge strides or shapes: validation must fail before touching memory
  Fixture f;
  const int64_t big = INT64_MAX;
  SUBCASE("k_nope token stride * element size") { f.a.k_nope.strides[0] = big / 2 + 1; expect_rejected(f, MLAKV_ERR_SIZE_OVERFLOW); }
  SUBCASE("k_nope head stride") { f.a.k_nope.strides[1] = big / 2; expect_rejected(f, MLAKV_ERR_SIZE_OVERFLOW); }
  SUBCASE("v token stride") { f.a.v.strides[0] = big; expect_rejected(f, MLAKV_ERR_SIZE_OVERFLOW); }
  SUBCASE("k_pe token stride") { f.a.k_pe.strides[0] = int64_t(1) << 62; expect_rejected(f, MLAKV_ERR_SIZE_OVERFLOW); }
  SUBCASE("k_out token stride") { f.a.k_out.strides[0] = big; expect_rejected(f, MLAKV_ERR_SIZE_OVERFLOW); }
  SUBCASE("v_out head stride") { f.a.v_out.strides[1] = int64_t(1) << 62; expect_rejected(f, MLAKV_ERR_SIZE_OVERFLOW); }
  SUBCASE("s = 2^62 everywhere") {
    for (mlakv_tensor* t : {&f.a.k_nope, &f.a.k_pe, &f.a.v, &f.a.k_out, &f.a.v_out}) t->shape[0] = int64_t(1) << 62;
    expect_rejected(f, MLAKV_ERR_SIZE_OVERFLOW);
  }
  SUBCASE("s * h * (D_nope + D_rope + D_v) overflows") {
    for (mlakv_tensor* t : {&f.a.k_nope, &f.a.k_pe, &f.a.v, &f.a.k_out, &f.a.v_out}) t->shape[0] = int64_t(1) << 40;
    for (mlakv_tensor* t : {&f.a.k_nope, &f.a.v, &f.a.k_out, &f.a.v_out}) t->shape[1] = int64_t(1) << 20;
    expect_rejected(f, MLAKV_ERR_SIZE_OVERFLOW);
  }
  SUBCASE("huge s with zero strides still overflows the element count") {
    for (mlakv_tensor* t : {&f.a.k_nope, &f.a.k_pe, &f.a.v}) t->strides[0] = 0;
    for (mlakv_tensor* t : {&f.a.k_nope, &f.a.k_pe, &f.a.v, &f.a.k_out, &f.a.v_out}) t->shape[0] = big / 4;
    expect_rejected(f, MLAKV_ERR_SIZE_OVERFLOW);
  }
}

TEST_CASE("bad input: head dims -> MLAKV_ERR_UNSUPPORTED_DIMS") {
  Fixture f;
  SUBCASE("D_nope = 0") {
    f.a.k_nope.shape[2] = 0;
    f.a.k_out.shape[2] = Fixture::dr;
    expect_rejected(f, MLAKV_ERR_UNSUPPORTED_DIMS);
  }
  SUBCASE("D_rope = 0") {
    f.a.k_pe.shape[1] = 0;
    f.a.k_out.shape[2] = Fixture::dn;
    expect_rejected(f, MLAKV_ERR_UNSUPPORTED_DIMS);
  }
  SUBCASE("D_v = 0") {
    f.a.v.shape[2] = 0;
    f.a.v_out.shape[2] = 0;
    expect_rejected(f, MLAKV_ERR_UNSUPPORTED_DIMS);
  }
  SUBCASE("D_nope = 2^20 + 1 (too large)") {
    f.a.k_nope.shape[2] = (int64_t(1) << 20) + 1;
    f.a.k_out.shape[2] = f.a.k_nope.shape[2] + Fixture::dr;
    expect_rejected(f, MLAKV_ERR_UNSUPPORTED_DIMS);
  }
}

TEST_CASE("bad input: struct_size -> MLAKV_ERR_STRUCT_SIZE") {
  Fixture f;
  SUBCASE("0") { f.a.struct_size = 0; expect_rejected(f, MLAKV_ERR_STRUCT_SIZE); }
  SUBCASE("one byte short of 0.1's struct") { f.a.struct_size = MLAKV_PACK_ARGS_SIZE_0_1 - 1; expect_rejected(f, MLAKV_ERR_STRUCT_SIZE); }
  SUBCASE("8 bytes") { f.a.struct_size = 8; expect_rejected(f, MLAKV_ERR_STRUCT_SIZE); }
  SUBCASE("absurdly large") { f.a.struct_size = size_t(1) << 40; expect_rejected(f, MLAKV_ERR_STRUCT_SIZE); }

  struct Newer {  // what a caller built against a future header with more fields passes
    mlakv_pack_args a;
    unsigned char more[64];
  };
  Newer n;
  std::memset(&n, 0, sizeof n);
  n.a = f.a;
  n.a.struct_size = sizeof n;
  SUBCASE("larger, unknown trailing bytes zero -> OK") { expect_ok(&n.a, f, true); }
  SUBCASE("one byte larger, zero -> OK") {
    n.a.struct_size = sizeof(mlakv_pack_args) + 1;
    expect_ok(&n.a, f, true);
  }
  SUBCASE("larger, a non-zero trailing byte") {
    n.more[17] = 1;
    expect_rejected(&n.a, MLAKV_ERR_STRUCT_SIZE, f.arena);
  }
  SUBCASE("larger, the last trailing byte non-zero") {
    n.more[63] = 0x80;
    expect_rejected(&n.a, MLAKV_ERR_STRUCT_SIZE, f.arena);
  }
  SUBCASE("larger, a non-zero byte beyond struct_size is not read") {
    n.a.struct_size = sizeof(mlakv_pack_args) + 8;
    n.more[8] = 1;
    expect_ok(&n.a, f, true);
  }
}

TEST_CASE("bad input: enums, flags, device") {
  Fixture f;
  SUBCASE("backend 7 -> NO_SUCH_BACKEND") { f.a.backend = 7; expect_rejected(f, MLAKV_ERR_NO_SUCH_BACKEND); }
  SUBCASE("backend 4 -> NO_SUCH_BACKEND") { f.a.backend = 4; expect_rejected(f, MLAKV_ERR_NO_SUCH_BACKEND); }
  SUBCASE("backend -1 -> NO_SUCH_BACKEND") { f.a.backend = -1; expect_rejected(f, MLAKV_ERR_NO_SUCH_BACKEND); }
  SUBCASE("pdl 5 -> INVALID_ARGUMENT") { f.a.pdl = 5; expect_rejected(f, MLAKV_ERR_INVALID_ARGUMENT); }
  SUBCASE("pdl 3 -> INVALID_ARGUMENT") { f.a.pdl = 3; expect_rejected(f, MLAKV_ERR_INVALID_ARGUMENT); }
  SUBCASE("pdl -1 -> INVALID_ARGUMENT") { f.a.pdl = -1; expect_rejected(f, MLAKV_ERR_INVALID_ARGUMENT); }
  SUBCASE("unknown flag 0x2 -> INVALID_ARGUMENT") { f.a.flags = 0x2u; expect_rejected(f, MLAKV_ERR_INVALID_ARGUMENT); }
  SUBCASE("unknown flag 0x80000000 -> INVALID_ARGUMENT") {
    f.a.flags = MLAKV_FLAG_TRUST_POINTERS | 0x80000000u;
    expect_rejected(f, MLAKV_ERR_INVALID_ARGUMENT);
  }
  SUBCASE("device -1 -> DEVICE") { f.a.device = -1; expect_rejected(f, MLAKV_ERR_DEVICE); }
  SUBCASE("device INT32_MIN -> DEVICE") { f.a.device = INT32_MIN; expect_rejected(f, MLAKV_ERR_DEVICE); }
}

TEST_CASE("accepted edge cases") {
  Fixture f;
  SUBCASE("s = 0 is a no-op") {
    for (mlakv_tensor* t : {&f.a.k_nope, &f.a.k_pe, &f.a.v, &f.a.k_out, &f.a.v_out}) t->shape[0] = 0;
    expect_ok(&f.a, f, false);
    char buf[256];
    CHECK(mlakv_pack_fp8_plan(&f.a, buf, sizeof buf, nullptr) == MLAKV_OK);
    CHECK(std::string(buf).find("empty") != std::string::npos);
  }
  SUBCASE("s = 0 with NULL data pointers") {
    for (mlakv_tensor* t : {&f.a.k_nope, &f.a.k_pe, &f.a.v, &f.a.k_out, &f.a.v_out}) {
      t->shape[0] = 0;
      t->data = nullptr;
    }
    expect_ok(&f.a, f, false);
  }
  SUBCASE("h = 0 with NULL data pointers") {
    for (mlakv_tensor* t : {&f.a.k_nope, &f.a.v, &f.a.k_out, &f.a.v_out}) {
      t->shape[1] = 0;
      t->data = nullptr;
    }
    f.a.k_pe.data = nullptr;
    expect_ok(&f.a, f, false);
  }
  SUBCASE("s = 0 is still validated") {
    for (mlakv_tensor* t : {&f.a.k_nope, &f.a.k_pe, &f.a.v, &f.a.k_out, &f.a.v_out}) t->shape[0] = 0;
    f.a.v_out.dtype = MLAKV_DTYPE_E5M2;
    expect_rejected(f, MLAKV_ERR_DTYPE);
  }
  SUBCASE("s = 0 with a GPU backend that is not built") {
    for (mlakv_tensor* t : {&f.a.k_nope, &f.a.k_pe, &f.a.v, &f.a.k_out, &f.a.v_out}) t->shape[0] = 0;
    for (int i = 0; i < mlakv_backend_count(); ++i) {
      mlakv_backend_info info = MLAKV_BACKEND_INFO_INIT;
      REQUIRE(mlakv_backend_get_info(i, &info) == MLAKV_OK);
      if (info.compiled) continue;
      INFO("backend " << std::string(info.name));
      f.a.backend = info.backend;
      expect_rejected(f, MLAKV_ERR_BACKEND_UNAVAILABLE);
    }
  }
  SUBCASE("the valid fixture, host multipliers") {
    f.a.k_scale_inv = 2.0f;
    f.a.v_scale_inv = 1.0f / 0.0375f;
    f.a.k_scale_inv_ptr = f.a.v_scale_inv_ptr = nullptr;
    expect_ok(&f.a, f, true);
  }
  SUBCASE("MLAKV_FLAG_TRUST_POINTERS, pdl on / off, AUTO") {
    f.a.flags = MLAKV_FLAG_TRUST_POINTERS;
    f.a.pdl = MLAKV_PDL_ON;
    expect_ok(&f.a, f, true);
    f.a.pdl = MLAKV_PDL_OFF;
    f.a.backend = MLAKV_BACKEND_AUTO;
    f.a.flags = 0;
    expect_ok(&f.a, f, true);
  }
  SUBCASE("inputs with zero strides (broadcast) are legal") {
    f.a.k_nope.strides[0] = 0;  // every token reads token 0's rows
    f.a.k_pe.strides[0] = 0;
    f.a.v.strides[1] = 0;       // every head reads head 0's row
    REQUIRE(mlakv_pack_fp8(&f.a) == MLAKV_OK);
    const uint8_t* ko = f.p(Fixture::kKo);
    const uint8_t* vo = f.p(Fixture::kVo);
    CHECK(std::memcmp(ko, ko + Fixture::h * Fixture::dk, size_t(Fixture::h * Fixture::dk)) == 0);
    for (int64_t t = 0; t < Fixture::s; ++t)
      for (int64_t hh = 1; hh < Fixture::h; ++hh)
        CHECK(std::memcmp(vo + (t * Fixture::h + hh) * Fixture::dv, vo + t * Fixture::h * Fixture::dv, Fixture::dv) == 0);
  }
  SUBCASE("a size-1 innermost dim may have any stride") {
    f.a.k_pe.shape[1] = 1;
    f.a.k_pe.strides[1] = 7;
    f.a.k_out.shape[2] = Fixture::dn + 1;
    REQUIRE(mlakv_pack_fp8(&f.a) == MLAKV_OK);
  }
  SUBCASE("interleaved outputs exactly adjacent") {
    const int64_t w = Fixture::dk + Fixture::dv;
    f.a.k_out.strides[0] = f.a.v_out.strides[0] = Fixture::h * w;
    f.a.k_out.strides[1] = f.a.v_out.strides[1] = w;
    f.a.v_out.data = f.p(Fixture::kKo + Fixture::dk);
    REQUIRE(mlakv_pack_fp8(&f.a) == MLAKV_OK);
    CHECK(f.arena.data()[Fixture::kKo + Fixture::s * Fixture::h * w] == tu::kPoison);
  }
}

TEST_CASE("mlakv_last_error: empty after success, a message after failure, per thread") {
  Fixture f;
  REQUIRE(mlakv_pack_fp8(&f.a) == MLAKV_OK);
  CHECK(std::string(mlakv_last_error()).empty());
  f.a.k_nope.ndim = 2;
  CHECK(mlakv_pack_fp8(&f.a) == MLAKV_ERR_RANK);
  const std::string msg = mlakv_last_error();
  CHECK(msg.find("k_nope") != std::string::npos);
  f.a.k_nope.ndim = 3;
  CHECK(mlakv_pack_fp8(&f.a) == MLAKV_OK);
  CHECK(std::string(mlakv_last_error()).empty());
}

TEST_CASE("mlakv_last_error is per thread") {
  std::string in_thread_after_failure, in_thread_after_success;
  mlakv_status in_thread = MLAKV_OK;
  {
    Fixture f;
    REQUIRE(mlakv_pack_fp8(&f.a) == MLAKV_OK);  // this thread: no error
  }
  std::thread t([&] {
    Fixture f;
    f.a.v_out.dtype = MLAKV_DTYPE_E5M2;
    in_thread = mlakv_pack_fp8(&f.a);
    in_thread_after_failure = mlakv_last_error();
  });
  t.join();
  CHECK(in_thread == MLAKV_ERR_DTYPE);
  CHECK(!in_thread_after_failure.empty());
  CHECK(std::string(mlakv_last_error()).empty());  // the other thread's failure is not ours
  Fixture f;
  f.a.device = -1;
  CHECK(mlakv_pack_fp8(&f.a) == MLAKV_ERR_DEVICE);
  std::thread t2([&] { in_thread_after_success = mlakv_last_error(); });
  t2.join();
  CHECK(in_thread_after_success.empty());  // a fresh thread starts with no message
  CHECK(std::strlen(mlakv_last_error()) > 0);
}
