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
  CHECK(tu::plan_text(a).find("variant=vector") != std::string::npos);
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

// Calls that differ only in buffers, scales or scale pointers (a layer loop over per-layer
// buffers) reuse the geometry's validation and the plan, and re-check only the pointers.
TEST_CASE("repeat: per-layer buffers of the same shapes each get their own results") {
  for (mlakv_backend be : {MLAKV_BACKEND_REFERENCE, MLAKV_BACKEND_AUTO}) {
    std::vector<Bufs> layers(3);
    for (size_t l = 0; l < layers.size(); ++l) layers[l].fill(200 + l);
    for (int round = 0; round < 3; ++round)
      for (size_t l = 0; l < layers.size(); ++l) {
        Bufs& b = layers[l];
        std::memset(b.k.data(), 0xA5, b.k.size());
        std::memset(b.v.data(), 0xA5, b.v.size());
        const float ks = 1.0f + float(l) + 0.25f * float(round), vs = 0.5f * ks;
        mlakv_pack_args a = b.args(ks, vs);
        a.backend = be;
        REQUIRE(mlakv_pack_fp8(&a) == MLAKV_OK);
        b.expect(ks, vs);
      }
  }
}

TEST_CASE("repeat: scale pointers that change between calls are read from the new place") {
  Bufs b;
  b.fill(21);
  float scales[4] = {2.0f, 0.25f, 8.0f, 1.0f / 32};
  for (int i = 0; i < 4; ++i) {
    mlakv_pack_args a = b.args(1.0f, 1.0f);
    a.k_scale_inv_ptr = &scales[i];
    a.v_scale_inv_ptr = &scales[3 - i];
    REQUIRE(mlakv_pack_fp8(&a) == MLAKV_OK);
    b.expect(scales[i], scales[3 - i]);
  }
}

TEST_CASE("repeat: new pointers of a known geometry are validated like any call") {
  Bufs b, c;
  b.fill(31);
  c.fill(32);
  mlakv_pack_args good = b.args(1.0f, 1.0f);
  auto again = [&] {  // a valid call of the same geometry first, so the next one may take the fast path
    REQUIRE(mlakv_pack_fp8(&good) == MLAKV_OK);
    std::memset(c.k.data(), 0xA5, c.k.size());
    std::memset(c.v.data(), 0xA5, c.v.size());
  };
  auto untouched = [&] {
    for (uint8_t x : c.k) REQUIRE(x == 0xA5);
    for (uint8_t x : c.v) REQUIRE(x == 0xA5);
  };
  mlakv_pack_args a;
  again();
  a = c.args(1.0f, 1.0f);
  a.k_out.data = nullptr;
  CHECK(mlakv_pack_fp8(&a) == MLAKV_ERR_NULL_POINTER);
  CHECK(std::string(mlakv_last_error()).find("k_out") != std::string::npos);
  untouched();

  again();
  a = c.args(1.0f, 1.0f);
  a.v_out.data = c.k.data();  // both outputs on one buffer
  CHECK(mlakv_pack_fp8(&a) == MLAKV_ERR_OVERLAP);
  untouched();

  again();
  a = c.args(1.0f, 1.0f);
  a.k_out.data = c.kv.data();  // an output on an input
  const std::vector<uint16_t> kv_before = c.kv;
  CHECK(mlakv_pack_fp8(&a) == MLAKV_ERR_OVERLAP);
  CHECK(c.kv == kv_before);
  untouched();

  again();
  a = c.args(1.0f, 1.0f);
  a.v_scale_inv_ptr = reinterpret_cast<const float*>(c.v.data() + 4);  // a scale inside an output
  CHECK(mlakv_pack_fp8(&a) == MLAKV_ERR_OVERLAP);
  untouched();

  again();
  a = c.args(1.0f, 1.0f);
  a.k_pe.data = reinterpret_cast<char*>(c.pe.data()) + 1;  // a bf16 tensor on an odd address
  CHECK(mlakv_pack_fp8(&a) == MLAKV_ERR_ALIGNMENT);
  untouched();

  again();
  a = c.args(1.0f, 1.0f);
  a.v.data = reinterpret_cast<void*>(UINTPTR_MAX - 127);  // its span wraps around the address space
  CHECK(mlakv_pack_fp8(&a) == MLAKV_ERR_SIZE_OVERFLOW);
  untouched();

  // and the valid call of the same geometry on c still works after all these refusals
  a = c.args(1.0f, 1.0f);
  REQUIRE(mlakv_pack_fp8(&a) == MLAKV_OK);
  c.expect(1.0f, 1.0f);
}

TEST_CASE("repeat: buffers with a different alignment are planned afresh") {
  // the same shapes at an offset of one element (2-byte aligned): a plan may depend on alignment
  // up to 32 bytes (the CUDA backend's wide units), so these calls must not reuse the aligned
  // call's plan (results checked either way)
  Bufs b;
  b.fill(41);
  mlakv_pack_args a = b.args(1.0f, 1.0f);
  REQUIRE(mlakv_pack_fp8(&a) == MLAKV_OK);
  b.expect(1.0f, 1.0f);
  std::vector<uint16_t> pe2(b.pe.size() + 1);
  std::memcpy(pe2.data() + 1, b.pe.data(), b.pe.size() * 2);
  std::memset(b.k.data(), 0xA5, b.k.size());
  mlakv_pack_args m = a;
  m.k_pe.data = pe2.data() + 1;
  REQUIRE(mlakv_pack_fp8(&m) == MLAKV_OK);
  b.expect(1.0f, 1.0f);
}
