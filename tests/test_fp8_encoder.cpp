// The FP8 encoder of src/core/fp8.h, exhaustively: every bf16 and every fp16 bit pattern, widened,
// multiplied by several fp32 scales and encoded into each of the four formats, against
//   (a) NVIDIA's host __nv_cvt_float_to_fp8(x, __NV_SATFINITE, ...) from cuda_fp8.h (e4m3fn, e5m2),
//   (b) the independent derivation in test_util.h (all four formats),
//   (c) ml_dtypes vectors committed under tests/data (the fnuz formats; gen_fnuz_vectors.py),
// plus a structured + random set of fp32 products and every edge value MISSION.md lists.
#include <doctest/doctest.h>

#include "core/fp8.h"
#include "test_util.h"

#if MLAKV_TEST_HAVE_CUDA_FP8
#include <cuda_fp8.h>
#endif

#include <fstream>
#include <iterator>

namespace {

using mlakv::Fp8Format;

Fp8Format lib_format(mlakv_dtype d) { return Fp8Format(d - MLAKV_DTYPE_E4M3FN); }

// The library's encoder, compile-time format (what the kernels instantiate); the runtime-format
// entry point must agree with it, which encode() checks on every call.
uint8_t lib_encode_ct(mlakv_dtype d, float p) {
  switch (d) {
    case MLAKV_DTYPE_E4M3FN: return mlakv::encode_fp8<Fp8Format::E4M3FN>(p);
    case MLAKV_DTYPE_E5M2: return mlakv::encode_fp8<Fp8Format::E5M2>(p);
    case MLAKV_DTYPE_E4M3FNUZ: return mlakv::encode_fp8<Fp8Format::E4M3FNUZ>(p);
    default: return mlakv::encode_fp8<Fp8Format::E5M2FNUZ>(p);
  }
}

// The scales of the exhaustive sweeps (fp32 multipliers = 1/scale).
const float kScales[] = {
    1.0f, 0.5f, 3.7f, 1.0f / 0.0375f, 0x1p-8f, 1e-30f, 65504.0f,
    0x1.8p-140f,  // a subnormal fp32 multiplier: products are tiny, their signs must survive
    -1.75f,       // a negative multiplier
};

float lib_widen(mlakv_dtype in, uint16_t x) {
  return in == MLAKV_DTYPE_BF16 ? mlakv::bf16_to_f32(x) : mlakv::fp16_to_f32(x);
}

// One mismatch log per sweep: counts and the first few cases, for the failure message.
struct Mismatches {
  uint64_t checked = 0, bad = 0;
  std::string text;
  void add(const std::string& what) {
    if (bad++ < 6) text += "\n  " + what;
  }
};

std::string case_text(const char* in, uint32_t pattern, float m, float p, mlakv_dtype f, uint8_t got, uint8_t want) {
  return std::string(in) + " " + tu::hex(pattern, 4) + " * " + tu::fmt_float(m) + " = " + tu::fmt_float(p) +
         " -> " + tu::dtype_name(f) + ": mlakv " + tu::hex(got) + ", oracle " + tu::hex(want);
}

// Structured fp32 values: for every sign and exponent field, mantissas whose low k bits are
// 0, 1, half-1, half, half+1, all-ones (round-down, tie, round-up at every possible bit position),
// then random fp32 bit patterns.
std::vector<float> fp32_probe_values() {
  std::vector<float> v;
  for (uint32_t se = 0; se < 512; ++se)
    for (int k = 1; k <= 23; ++k) {
      const uint32_t half = 1u << (k - 1);
      const uint32_t lows[] = {0u, 1u, half - 1u, half, half + 1u, (1u << k) - 1u};
      const uint32_t tops = k == 23 ? 1u : std::min(16u, 1u << (23 - k));
      for (uint32_t t = 0; t < tops; ++t)
        for (uint32_t low : lows) {
          const uint32_t top = (t < 8 ? t : (1u << (23 - k)) - 16u + t) << k;  // lowest and highest tops
          v.push_back(tu::bits_f32((se << 23) | ((top | low) & 0x7FFFFFu)));
        }
    }
  tu::Rng rng(20260516);
  for (int i = 0; i < (1 << 20); ++i) v.push_back(tu::bits_f32(rng.u32()));
  return v;
}

}  // namespace

TEST_CASE("fp8 formats decoded from their definitions match MISSION.md") {
  for (mlakv_dtype f : tu::kFp8Dtypes) {
    INFO("format " << std::string(tu::dtype_name(f)));
    const tu::Fp8Oracle o(f);
    const tu::Fp8Def& d = o.def();
    CHECK(o.max_finite() == d.max_finite);
    CHECK(std::isnan(tu::fp8_decode(d, d.nan_code)));
    CHECK(o.positive_values().size() == (d.fnuz ? 128u : (d.exp_bits == 4 ? 127u : 124u)));
    int nans = 0;
    for (int c = 0; c < 256; ++c) nans += std::isnan(tu::fp8_decode(d, uint8_t(c)));
    CHECK(nans == (d.fnuz ? 1 : (d.exp_bits == 4 ? 2 : 6)));
    // the library's own constants agree with the definitions
    CHECK(lib_encode_ct(f, float(d.max_finite)) == (d.fnuz ? 0x7F : (d.exp_bits == 4 ? 0x7E : 0x7B)));
    CHECK(lib_encode_ct(f, NAN) == d.nan_code);
  }
}

TEST_CASE("widening bf16 and fp16 to fp32 is exact for every bit pattern") {
  uint64_t bad = 0, checked = 0;
  std::string first;
  for (uint32_t x = 0; x < 65536; ++x)
    for (mlakv_dtype in : {MLAKV_DTYPE_BF16, MLAKV_DTYPE_FP16}) {
      const float got = lib_widen(in, uint16_t(x)), want = tu::widen(in, x);
      const bool ok = std::isnan(want) ? std::isnan(got) : tu::f32_bits(got) == tu::f32_bits(want);
      ++checked;
      if (!ok && bad++ < 4) first += " " + std::string(tu::dtype_name(in)) + " " + tu::hex(x, 4);
    }
  INFO("mismatching patterns:" << first);
  CHECK(bad == 0);
  CHECK(checked == 131072);
  // fp16 subnormals are widened, never flushed
  CHECK(mlakv::fp16_to_f32(0x0001) == 0x1p-24f);
  CHECK(mlakv::fp16_to_f32(0x8001) == -0x1p-24f);
  CHECK(mlakv::fp16_to_f32(0x03FF) == 1023 * 0x1p-24f);
  CHECK(mlakv::fp16_to_f32(0x0200) == 0x1p-15f);
  CHECK(mlakv::fp16_to_f32(0x0400) == 0x1p-14f);  // smallest normal
  CHECK(tu::f32_bits(mlakv::fp16_to_f32(0x8000)) == 0x80000000u);
  CHECK(mlakv::fp16_to_f32(0x7C00) == HUGE_VALF);
  CHECK(std::isnan(mlakv::fp16_to_f32(0x7C01)));
  // bf16 subnormals too
  CHECK(mlakv::bf16_to_f32(0x0001) == 0x1p-133f);
}

TEST_CASE("exhaustive: every bf16/fp16 pattern x scale x format vs the independent derivation") {
  Mismatches mm;
  const tu::Fp8Oracle oracles[4] = {tu::Fp8Oracle(MLAKV_DTYPE_E4M3FN), tu::Fp8Oracle(MLAKV_DTYPE_E5M2),
                                    tu::Fp8Oracle(MLAKV_DTYPE_E4M3FNUZ), tu::Fp8Oracle(MLAKV_DTYPE_E5M2FNUZ)};
  for (mlakv_dtype in : {MLAKV_DTYPE_BF16, MLAKV_DTYPE_FP16})
    for (float m : kScales)
      for (uint32_t x = 0; x < 65536; ++x) {
        const float p_lib = mlakv::scale_mul(lib_widen(in, uint16_t(x)), m);
        const float p = tu::widen(in, x) * m;  // the test's own product (-ffp-contract=off)
        for (int fi = 0; fi < 4; ++fi) {
          const mlakv_dtype f = tu::kFp8Dtypes[fi];
          const uint8_t got = lib_encode_ct(f, p_lib);
          const uint8_t got_rt = mlakv::encode_fp8(p_lib, lib_format(f));
          const uint8_t want = oracles[fi].encode(p);
          ++mm.checked;
          if (got != want || got_rt != want)
            mm.add(case_text(tu::dtype_name(in), x, m, p, f, got, want) + " (runtime-format entry " +
                   tu::hex(got_rt) + ")");
        }
      }
  {
    INFO("mismatches (first few):" << mm.text);
    CHECK(mm.bad == 0);
    CHECK(mm.checked == 2ull * 65536 * (sizeof kScales / sizeof kScales[0]) * 4);
  }

  // fp32 products directly (fp32 inputs, multiplier 1): structured boundaries + random patterns
  Mismatches m32;
  for (float p : fp32_probe_values())
    for (int fi = 0; fi < 4; ++fi) {
      const mlakv_dtype f = tu::kFp8Dtypes[fi];
      const uint8_t got = lib_encode_ct(f, mlakv::scale_mul(p, 1.0f));
      const uint8_t want = oracles[fi].encode(p);
      ++m32.checked;
      if (got != want) m32.add(case_text("fp32", tu::f32_bits(p), 1.0f, p, f, got, want));
    }
  {
    INFO("fp32 mismatches (first few):" << m32.text);
    CHECK(m32.bad == 0);
  }
  MESSAGE("exhaustive vs independent derivation: " << mm.checked << " (pattern, scale, format) cases from all 65536 bf16 + "
          "65536 fp16 patterns x " << (sizeof kScales / sizeof kScales[0]) << " scales x 4 formats, plus "
          << m32.checked << " fp32 (value, format) cases");
}

#if MLAKV_TEST_HAVE_CUDA_FP8
TEST_CASE("exhaustive: e4m3fn and e5m2 vs NVIDIA __nv_cvt_float_to_fp8(..., __NV_SATFINITE, ...)") {
  Mismatches mm;
  auto nv = [](float p, mlakv_dtype f) {
    return uint8_t(__nv_cvt_float_to_fp8(p, __NV_SATFINITE, f == MLAKV_DTYPE_E4M3FN ? __NV_E4M3 : __NV_E5M2));
  };
  const mlakv_dtype fmts[2] = {MLAKV_DTYPE_E4M3FN, MLAKV_DTYPE_E5M2};
  for (mlakv_dtype in : {MLAKV_DTYPE_BF16, MLAKV_DTYPE_FP16})
    for (float m : kScales)
      for (uint32_t x = 0; x < 65536; ++x) {
        const float p = tu::widen(in, x) * m;
        const float p_lib = mlakv::scale_mul(lib_widen(in, uint16_t(x)), m);
        for (mlakv_dtype f : fmts) {
          const uint8_t got = lib_encode_ct(f, p_lib), want = nv(p, f);
          ++mm.checked;
          if (got != want) mm.add(case_text(tu::dtype_name(in), x, m, p, f, got, want));
        }
      }
  const uint64_t patterns = mm.checked;
  for (float p : fp32_probe_values())
    for (mlakv_dtype f : fmts) {
      const uint8_t got = lib_encode_ct(f, p), want = nv(p, f);
      ++mm.checked;
      if (got != want) mm.add(case_text("fp32", tu::f32_bits(p), 1.0f, p, f, got, want));
    }
  {
    INFO("mismatches (first few):" << mm.text);
    CHECK(mm.bad == 0);
  }
  MESSAGE("exhaustive vs NVIDIA cuda_fp8.h: " << patterns << " (pattern, scale, format) cases, plus "
          << (mm.checked - patterns) << " fp32 (value, format) cases");
}
#else
TEST_CASE("exhaustive: e4m3fn and e5m2 vs NVIDIA cuda_fp8.h (skipped)") {
  MESSAGE("cuda_fp8.h was not found at configure time: the NVIDIA oracle is skipped");
}
#endif

// ml_dtypes does not saturate: beyond the largest finite value (and for +-inf) it returns NaN (0x80)
// where mlakv saturates to +-max. So the comparison covers every pattern whose product is NaN or
// rounds to a finite value, i.e. |p| < max + half an ulp at max (248 for e4m3fnuz, 61440 for
// e5m2fnuz); the others are checked by the independent derivation above.
TEST_CASE("exhaustive: fnuz formats vs ml_dtypes vectors (tests/data)") {
  const float scales[] = {1.0f, 1.0f / 0.0375f};  // as in gen_fnuz_vectors.py
  const mlakv_dtype fmts[2] = {MLAKV_DTYPE_E4M3FNUZ, MLAKV_DTYPE_E5M2FNUZ};
  Mismatches mm;
  uint64_t skipped = 0;
  for (mlakv_dtype in : {MLAKV_DTYPE_BF16, MLAKV_DTYPE_FP16})
    for (float m : scales)
      for (mlakv_dtype f : fmts) {
        char name[96];
        std::snprintf(name, sizeof name, "%s/fnuz_%s_%s_%08x.bin", MLAKV_TEST_DATA_DIR, tu::dtype_name(in),
                      tu::dtype_name(f), tu::f32_bits(m));
        std::ifstream file(name, std::ios::binary);
        const std::vector<uint8_t> ref((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
        INFO("vector file " << name);
        REQUIRE(ref.size() == 65536);
        const double bound = f == MLAKV_DTYPE_E4M3FNUZ ? 248.0 : 61440.0;
        for (uint32_t x = 0; x < 65536; ++x) {
          const float p = mlakv::scale_mul(lib_widen(in, uint16_t(x)), m);
          if (!std::isnan(p) && !(std::fabs(double(p)) < bound)) {
            ++skipped;
            continue;
          }
          const uint8_t got = lib_encode_ct(f, p);
          ++mm.checked;
          if (got != ref[x]) mm.add(case_text(tu::dtype_name(in), x, m, p, f, got, ref[x]) + " (ml_dtypes)");
        }
      }
  {
    INFO("mismatches (first few):" << mm.text);
    CHECK(mm.bad == 0);
    CHECK(mm.checked + skipped == 2ull * 2 * 2 * 65536);
  }
  MESSAGE("exhaustive vs ml_dtypes: " << mm.checked << " (pattern, scale, format) cases compared, " << skipped
          << " skipped (product beyond the fnuz range or infinite: ml_dtypes does not saturate)");
}

namespace {
// bf16 input -> widen -> * m -> format, through the library's compile-time encoder, and through the
// oracle (and NVIDIA's when present) so that the quoted bytes cannot disagree with either.
uint8_t q_bf16(float v, mlakv_dtype f, float m = 1.0f) {
  const uint16_t x = tu::to_bf16(v);
  REQUIRE(tu::exact_in(MLAKV_DTYPE_BF16, v));
  const uint8_t got = lib_encode_ct(f, mlakv::scale_mul(mlakv::bf16_to_f32(x), m));
  CHECK(got == tu::Fp8Oracle(f).encode(tu::widen_bf16(x) * m));
  return got;
}
uint8_t q_f32(float p, mlakv_dtype f) {
  const uint8_t got = lib_encode_ct(f, p);
  CHECK(got == tu::Fp8Oracle(f).encode(p));
  return got;
}
}  // namespace

TEST_CASE("MISSION.md edge values (measured on an H100, bf16 inputs, m = 1)") {
  const mlakv_dtype E4 = MLAKV_DTYPE_E4M3FN, E5 = MLAKV_DTYPE_E5M2;
  CHECK(q_bf16(1000.0f, E4) == 0x7E);
  CHECK(q_bf16(-1000.0f, E4) == 0xFE);
  CHECK(q_bf16(480.0f, E4) == 0x7E);
  CHECK(q_bf16(NAN, E4) == 0x7F);
  CHECK(q_bf16(-NAN, E4) == 0x7F);
  CHECK(q_bf16(HUGE_VALF, E4) == 0x7E);
  CHECK(q_bf16(-HUGE_VALF, E4) == 0xFE);
  CHECK(q_bf16(-0.0f, E4) == 0x80);
  CHECK(q_bf16(0.0f, E4) == 0x00);
  CHECK(q_bf16(0x1p-10f, E4) == 0x00);
  CHECK(q_bf16(0x1.8p-10f, E4) == 0x01);
  CHECK(q_bf16(3 * 0x1p-10f, E4) == 0x02);
  CHECK(q_bf16(1.0625f, E4) == 0x38);
  CHECK(q_bf16(1.1875f, E4) == 0x3A);
  CHECK(q_bf16(1.0f, E4) == 0x38);
  CHECK(q_bf16(448.0f, E4) == 0x7E);
  CHECK(q_bf16(464.0f, E4) == 0x7E);  // halfway to the NaN code's would-be value: saturates
  CHECK(q_bf16(0x1p-9f, E4) == 0x01);   // smallest e4m3fn subnormal
  CHECK(q_bf16(1000.0f, E5) == 0x64);
  CHECK(q_bf16(HUGE_VALF, E5) == 0x7B);
  CHECK(q_bf16(-HUGE_VALF, E5) == 0xFB);
  CHECK(q_bf16(NAN, E5) == 0x7F);
  CHECK(q_bf16(61440.0f, E5) == 0x7B);
  CHECK(q_bf16(57344.0f, E5) == 0x7B);
  CHECK(q_bf16(-0.0f, E5) == 0x80);
  CHECK(q_bf16(1.0f, E5) == 0x3C);
  CHECK(q_bf16(0x1p-16f, E5) == 0x01);  // smallest e5m2 subnormal
  CHECK(q_bf16(0x1p-17f, E5) == 0x00);  // tie with zero -> even (zero)
  CHECK(q_bf16(-0x1p-17f, E5) == 0x80);  // fn formats keep the sign of a zero
  CHECK(q_bf16(-0x1p-12f, E4) == 0x80);
  // the same through the DeepSeek-style multiplier 1/0.0375 (p computed in fp32)
  CHECK(q_bf16(16.875f, E4, 1.0f / 0.0375f) == 0x7E);  // 450 -> saturates at 448
  CHECK(q_bf16(-16.875f, E4, 1.0f / 0.0375f) == 0xFE);
  CHECK(q_bf16(1.0f, E4, 1.0f / 0.0375f) == 0x5D);     // 26.67 -> 26 (quantum 2 in [16, 32))
#if MLAKV_TEST_HAVE_CUDA_FP8
  for (float v : {1000.0f, -1000.0f, 480.0f, NAN, HUGE_VALF, -HUGE_VALF, -0.0f, 0x1p-10f, 0x1.8p-10f, 3 * 0x1p-10f,
                  1.0625f, 1.1875f, 61440.0f})
    for (mlakv_dtype f : {E4, E5}) {
      CAPTURE(v);
      CHECK(lib_encode_ct(f, v) ==
            uint8_t(__nv_cvt_float_to_fp8(v, __NV_SATFINITE, f == E4 ? __NV_E4M3 : __NV_E5M2)));
    }
#endif
}

TEST_CASE("fnuz edge values: NaN 0x80, no negative zero, saturation at 240 / 57344") {
  const mlakv_dtype U4 = MLAKV_DTYPE_E4M3FNUZ, U5 = MLAKV_DTYPE_E5M2FNUZ;
  for (mlakv_dtype f : {U4, U5}) {
    INFO("format " << std::string(tu::dtype_name(f)));
    CHECK(q_bf16(NAN, f) == 0x80);
    CHECK(q_bf16(-NAN, f) == 0x80);
    CHECK(q_f32(tu::bits_f32(0x7F800001u), f) == 0x80);  // signalling NaN
    CHECK(q_bf16(-0.0f, f) == 0x00);
    CHECK(q_bf16(0.0f, f) == 0x00);
    CHECK(q_bf16(HUGE_VALF, f) == 0x7F);
    CHECK(q_bf16(-HUGE_VALF, f) == 0xFF);
    CHECK(q_bf16(0x1p100f, f) == 0x7F);
    CHECK(q_bf16(-0x1p100f, f) == 0xFF);
    CHECK(q_bf16(65536.0f, f) == 0x7F);
    // tiny negatives round to zero, which is 0x00 (there is no -0)
    CHECK(q_bf16(-0x1p-30f, f) == 0x00);
    CHECK(q_bf16(-0x1p-100f, f) == 0x00);
    CHECK(q_f32(-0x1p-149f, f) == 0x00);  // smallest fp32 subnormal
    CHECK(q_f32(-1e-40f, f) == 0x00);
    CHECK(q_bf16(1.0f, f) == 0x40);     // bias 8 / 16: 1.0 has exponent field 8 / 16
    CHECK(q_bf16(-1.0f, f) == 0xC0);
  }
  CHECK(q_bf16(240.0f, U4) == 0x7F);
  CHECK(q_bf16(-240.0f, U4) == 0xFF);
  CHECK(q_bf16(244.0f, U4) == 0x7F);
  CHECK(q_bf16(248.0f, U4) == 0x7F);  // ml_dtypes gives NaN here (no saturation); mlakv saturates
  CHECK(q_bf16(256.0f, U4) == 0x7F);
  CHECK(q_bf16(1000.0f, U4) == 0x7F);
  CHECK(q_bf16(-1000.0f, U4) == 0xFF);
  CHECK(q_bf16(0x1p-10f, U4) == 0x01);   // smallest e4m3fnuz subnormal
  CHECK(q_bf16(0x1p-11f, U4) == 0x00);   // tie with zero
  CHECK(q_bf16(-0x1p-11f, U4) == 0x00);  // ... and its negative: no -0
  CHECK(q_bf16(-0x1p-10f, U4) == 0x81);
  CHECK(q_bf16(57344.0f, U5) == 0x7F);
  CHECK(q_bf16(-57344.0f, U5) == 0xFF);
  CHECK(q_bf16(61440.0f, U5) == 0x7F);
  CHECK(q_bf16(1000.0f, U5) == 0x68);
  CHECK(q_bf16(0x1p-17f, U5) == 0x01);   // smallest e5m2fnuz subnormal
  CHECK(q_bf16(-0x1p-18f, U5) == 0x00);
}

TEST_CASE("fp16 subnormal inputs are widened exactly, then scaled and encoded") {
  struct Case { uint16_t x; float m; mlakv_dtype f; uint8_t want; };
  const Case cases[] = {
      {0x0200, 0x1p12f, MLAKV_DTYPE_E4M3FN, 0x20},   // 2^-15 * 2^12 = 2^-3: exponent field 4
      {0x8200, 0x1p12f, MLAKV_DTYPE_E4M3FN, 0xA0},
      {0x0001, 0x1p20f, MLAKV_DTYPE_E4M3FN, 0x18},   // 2^-24 * 2^20 = 2^-4
      {0x0003, 0x1p22f, MLAKV_DTYPE_E4M3FN, 0x34},   // 3 * 2^-2 = 0.75 = 1.5 * 2^-1
      {0x0001, 1.0f, MLAKV_DTYPE_E4M3FN, 0x00},      // 2^-24: far below the smallest subnormal
      {0x8001, 1.0f, MLAKV_DTYPE_E4M3FN, 0x80},      // ... keeps its sign
      {0x8001, 1.0f, MLAKV_DTYPE_E4M3FNUZ, 0x00},
      {0x0001, 0x1p8f, MLAKV_DTYPE_E5M2, 0x01},      // 2^-16: smallest e5m2 subnormal
      {0x0001, 0x1p7f, MLAKV_DTYPE_E5M2FNUZ, 0x01},  // 2^-17: smallest e5m2fnuz subnormal
      {0x03FF, 0x1p24f, MLAKV_DTYPE_E5M2, 0x64},     // 1023 -> 1024 = 2^10
  };
  for (const Case& c : cases) {
    CAPTURE(tu::hex(c.x, 4));
    CAPTURE(c.m);
    const float p = mlakv::scale_mul(mlakv::fp16_to_f32(c.x), c.m);
    CHECK(lib_encode_ct(c.f, p) == c.want);
    CHECK(tu::Fp8Oracle(c.f).encode(tu::widen_fp16(c.x) * c.m) == c.want);
  }
}
