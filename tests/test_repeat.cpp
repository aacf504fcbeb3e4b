// Repeated calls with identical arguments reuse the thread's validated plan (c_api/mlakv.cpp).
// These tests make sure reuse never changes what a call computes: new input data, a new scale,
// a replaced dispatch table, a call that fails in between, and other threads.
#include <doctest/doctest.h>
#include <mlakv/mlakv.h>

#include <cstring>
#include <thread>
#include <vector>

#include "core/fp8.h"
#include "test_util.h"

namespace {

constexpr int64_t S = 5, H = 3, DN = 16, DR = 8, DV = 16, W = DN + DV;

struct Bufs {
  std::vector<uint16_t> kv = std::vector<uint16_t>(size_t(S * H * W));
  std::vector<uint16_t> pe = std::vector<uint16_t>(size_t(S * DR));
  std::vector<uint8_t> k = std::vector<uint8_t>(size_t(S * H * (DN + DR)), 0xA5);
  std::vector<uint8_t> v = std::vector<uint8_t>(size_t(S * H * DV), 0xA5);
  void fill(uint64_t seed) {
    tu::Rng r(seed);
    for (auto& x : kv) x = uint16_t(tu::to_bf16(double(int32_t(r.u32())) / double(1u << 28)));
    for (auto& x : pe) x = uint16_t(tu::to_bf16(double(int32_t(r.u32())) / double(1u << 28)));
  }
  mlakv_pack_args args(float ks, float vs) {
    mlakv_pack_args a = MLAKV_PACK_ARGS_INIT;
    a.k_nope = tu::tensor3(kv.data(), MLAKV_DTYPE_BF16, S, H, DN, H * W, W);
    a.v = tu::tensor3(kv.data() + DN, MLAKV_DTYPE_BF16, S, H, DV, H * W, W);
    a.k_pe = tu::tensor2(pe.data(), MLAKV_DTYPE_BF16, S, DR, DR);
    a.k_out = tu::tensor3(k.data(), MLAKV_DTYPE_E4M3FN, S, H, DN + DR, H * (DN + DR), DN + DR);
    a.v_out = tu::tensor3(v.data(), MLAKV_DTYPE_E4M3FN, S, H, DV, H * DV, DV);
    a.k_scale_inv = ks;
    a.v_scale_inv = vs;
    a.backend = MLAKV_BACKEND_REFERENCE;
    return a;
  }
  // the expected bytes, element by element
  void expect(float ks, float vs) const {
    for (int64_t t = 0; t < S; ++t)
      for (int64_t h = 0; h < H; ++h) {
        for (int64_t i = 0; i < DN + DR; ++i) {
          const uint16_t x = i < DN ? kv[size_t(t * H * W + h * W + i)] : pe[size_t(t * DR + i - DN)];
          const uint8_t want = mlakv::encode_fp8<mlakv::Fp8Format::E4M3FN>(tu::widen_bf16(x) * ks);
          REQUIRE(k[size_t((t * H + h) * (DN + DR) + i)] == want);
        }
        for (int64_t i = 0; i < DV; ++i) {
          const uint8_t want = mlakv::encode_fp8<mlakv::Fp8Format::E4M3FN>(tu::widen_bf16(kv[size_t(t * H * W + h * W + DN + i)]) * vs);
          REQUIRE(v[size_t((t * H + h) * DV + i)] == want);
        }
      }
  }
};

}  // namespace

TEST_CASE("repeat: identical arguments, new input data each call") {
  Bufs b;
  mlakv_pack_args a = b.args(2.0f, 0.5f);
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    b.fill(seed);
    REQUIRE(mlakv_pack_fp8(&a) == MLAKV_OK);
    b.expect(2.0f, 0.5f);
  }
}

TEST_CASE("repeat: a changed scale is a different call") {
  Bufs b;
  b.fill(7);
  for (float s : {1.0f, 3.0f, 1.0f / 64, 300.0f}) {
    mlakv_pack_args a = b.args(s, s * 2);
    REQUIRE(mlakv_pack_fp8(&a) == MLAKV_OK);
    b.expect(s, s * 2);
  }
}

TEST_CASE("repeat: replacing the dispatch table takes effect on the next identical call") {
  Bufs b;
  b.fill(9);
  mlakv_pack_args a = b.args(1.5f, 1.5f);
  tu::TableGuard guard;
  REQUIRE(mlakv_pack_fp8(&a) == MLAKV_OK);
  CHECK(tu::plan_text(a).find("variant=rows") != std::string::npos);
  REQUIRE(mlakv_dispatch_table_set(MLAKV_BACKEND_REFERENCE, tu::force_variant_table("strided")) == MLAKV_OK);
  CHECK(tu::plan_text(a).find("variant=strided") != std::string::npos);
  std::memset(b.k.data(), 0xA5, b.k.size());
  REQUIRE(mlakv_pack_fp8(&a) == MLAKV_OK);
  b.expect(1.5f, 1.5f);
}

TEST_CASE("repeat: a failing call in between does not disturb the next one; errors are reported fresh") {
  Bufs b;
  b.fill(11);
  mlakv_pack_args a = b.args(1.0f, 1.0f);
  REQUIRE(mlakv_pack_fp8(&a) == MLAKV_OK);
  mlakv_pack_args bad = a;
  bad.v_out.shape[2] = DV + 1;
  CHECK(mlakv_pack_fp8(&bad) == MLAKV_ERR_SHAPE);
  CHECK(std::strlen(mlakv_last_error()) > 0);
  std::memset(b.k.data(), 0xA5, b.k.size());
  REQUIRE(mlakv_pack_fp8(&a) == MLAKV_OK);
  CHECK(std::strlen(mlakv_last_error()) == 0);
  b.expect(1.0f, 1.0f);
  // the same bad call again is still refused (failures are never remembered as plans)
  CHECK(mlakv_pack_fp8(&bad) == MLAKV_ERR_SHAPE);
}

TEST_CASE("repeat: threads keep their own plans") {
  std::vector<std::thread> ts;
  std::vector<int> ok(4, 0);
  for (int i = 0; i < 4; ++i)
    ts.emplace_back([i, &ok] {
      Bufs b;
      const float s = 1.0f + float(i);
      mlakv_pack_args a = b.args(s, s);
      bool good = true;
      for (uint64_t r = 0; r < 20; ++r) {
        b.fill(100 * uint64_t(i) + r);
        good = good && mlakv_pack_fp8(&a) == MLAKV_OK;
        for (size_t j = 0; j < b.v.size(); ++j)
          good = good && b.v[j] == mlakv::encode_fp8<mlakv::Fp8Format::E4M3FN>(
                                       tu::widen_bf16(b.kv[(j / DV) * W + DN + j % DV]) * s);
      }
      ok[size_t(i)] = good;
    });
  for (auto& t : ts) t.join();
  for (int g : ok) CHECK(g == 1);
}
