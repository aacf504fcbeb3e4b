// The reference backend's row kernels, every compiled set (baseline ISA; AVX2/F16C and AVX-512F
// where this CPU runs them - a set this CPU lacks is named in a message, not run), called directly:
// every bf16 and fp16 bit pattern and a structured fp32 set, every format, several multipliers,
// every row length 0..80 at every start offset mod 32 (the 32-, 16-, 8- and 1-element loops and
// their seams), and fp32 rows of 32-element groups of one value at the encoder's seams (the AVX2
// and AVX-512 sets choose the normal branch alone per group), against the test's independent oracle.
// The sources are compiled into this test (their symbols are not exported by libmlakv).
#include <doctest/doctest.h>

#include "reference/row_kernels.h"
#include "test_util.h"

namespace {

struct KernelSet {
  const char* name;
  const mlakv::RowKernels* k;
};

std::vector<KernelSet> kernel_sets() {
  std::vector<KernelSet> sets = {{"base", &mlakv::row_kernels_base()}};
#if MLAKV_TEST_HAVE_X86_KERNELS
  if (mlakv::cpu_has_avx2_f16c()) sets.push_back({"avx2", &mlakv::row_kernels_avx2()});
  else MESSAGE("row kernel set avx2 not run: this CPU or OS lacks AVX2 + F16C");
  if (mlakv::cpu_has_avx512f()) sets.push_back({"avx512", &mlakv::row_kernels_avx512()});
  else MESSAGE("row kernel set avx512 not run: this CPU or OS lacks AVX-512F");
#endif
  return sets;
}

int in_index(mlakv_dtype in) { return in == MLAKV_DTYPE_BF16 ? 0 : in == MLAKV_DTYPE_FP16 ? 1 : 2; }

// Raw input patterns of one dtype: all 65536 for 16-bit types; for fp32 every bf16 pattern with
// its low half zero, a tie-ish pattern and random bits.
std::vector<uint32_t> patterns(mlakv_dtype in) {
  std::vector<uint32_t> p;
  tu::Rng r(3);
  for (uint32_t x = 0; x < 65536; ++x) {
    if (in != MLAKV_DTYPE_FP32) {
      p.push_back(x);
    } else {
      p.push_back(x << 16);
      p.push_back((x << 16) | 0x8000u);
      p.push_back((x << 16) | (r.u32() & 0xFFFFu));
    }
  }
  return p;
}

}  // namespace

TEST_CASE("row kernels: every 16-bit pattern (and an fp32 set), every format, every ISA set") {
  uint64_t checked = 0;
  const float scales[] = {1.0f, 1.0f / 0.0375f, 0x1p-8f, 65504.0f, 0x1.8p-140f, -3.7f};
  for (const KernelSet& ks : kernel_sets())
    for (mlakv_dtype in : tu::kInputDtypes) {
      const std::vector<uint32_t> pats = patterns(in);
      const int e = tu::dtype_size(in);
      tu::Buf x(pats.size() * size_t(e));
      for (size_t i = 0; i < pats.size(); ++i) x.put(e, int64_t(i), pats[i]);
      for (int fi = 0; fi < 4; ++fi) {
        const mlakv_dtype f = tu::kFp8Dtypes[fi];
        const tu::Fp8Oracle o(f);
        for (float m : scales) {
          tu::Buf out(pats.size() + 16);
          ks.k->k[in_index(in)][fi](x.data(), out.data(), int64_t(pats.size()), m);
          uint64_t bad = 0;
          std::string first;
          for (size_t i = 0; i < pats.size(); ++i) {
            const uint8_t want = o.encode(tu::widen(in, pats[i]) * m);
            if (out.data()[i] != want && bad++ < 4)
              first += " [" + tu::hex(pats[i], 8) + ": got " + tu::hex(out.data()[i]) + ", want " + tu::hex(want) + "]";
          }
          checked += pats.size();
          INFO("set " << std::string(ks.name) << ", " << std::string(tu::dtype_name(in)) << " -> "
                      << std::string(tu::dtype_name(f)) << ", m = " << m << ":" << first);
          CHECK(bad == 0);
          CHECK(tu::all_bytes(out.data() + pats.size(), 16, tu::kPoison));  // nothing written past n
        }
      }
    }
  MESSAGE("row kernels: " << checked << " (pattern, scale, format, ISA set) cases against the independent oracle, sets: "
          << kernel_sets().size());
}

TEST_CASE("row kernels: every length 0..80 at every start offset mod 32") {
  tu::Rng r(17);
  for (const KernelSet& ks : kernel_sets())
    for (mlakv_dtype in : tu::kInputDtypes) {
      const int e = tu::dtype_size(in);
      for (int fi = 0; fi < 4; ++fi) {
        const tu::Fp8Oracle o(tu::kFp8Dtypes[fi]);
        uint64_t bad = 0;
        for (int64_t off = 0; off < 32; ++off)
          for (int64_t n = 0; n <= 80; ++n) {
            tu::Buf x(size_t((off + n) * e) + 8), out(size_t(off + n + 8));
            for (int64_t i = 0; i < off + n; ++i) x.put(e, i, e == 4 ? r.u32() : r.u32() & 0xFFFFu);
            ks.k->k[in_index(in)][fi](x.data() + off * e, out.data() + off, n, 1.5f);
            for (int64_t i = 0; i < off + n + 8; ++i) {
              const uint8_t want = i < off || i >= off + n ? tu::kPoison : o.encode(tu::widen(in, x.get(e, i)) * 1.5f);
              bad += out.data()[i] != want;
            }
          }
        INFO("set " << std::string(ks.name) << ", " << std::string(tu::dtype_name(in)) << " -> "
                    << std::string(tu::dtype_name(tu::kFp8Dtypes[fi])));
        CHECK(bad == 0);
      }
    }
}

TEST_CASE("row kernels: the run-time choice is the widest set this CPU runs") {
  const std::vector<KernelSet> sets = kernel_sets();  // widest last
  CHECK(&mlakv::row_kernels() == sets.back().k);
  CHECK(std::string(mlakv::row_kernels_name()) == sets.back().name);
}

// fp32 rows of 32-element groups of one value each, m = 1 (the product is the input): the AVX2 and
// AVX-512 sets encode a group with the normal branch alone when all 32 products are normal in the
// format and cannot round past its largest finite value, and with the whole encoder otherwise, so
// each value here takes one branch whole. Values: every magnitude within 4096 ulps of the seams
// (0; the smallest normal and half an fp8 ulp below it; the largest finite value, half an fp8 ulp
// below it - the normal-only bound - and above it - where rounding would pass it; inf, NaNs above
// it) and a stride over all magnitudes, with alternating signs.
TEST_CASE("row kernels: 32-element groups of one fp32 value at the encoder's seams, every format") {
  struct Fmt {
    int mant, bias;
    uint32_t max_bits;
  };
  const Fmt fmts[4] = {{3, 7, 0x43E00000u}, {2, 15, 0x47600000u}, {3, 8, 0x43700000u}, {2, 16, 0x47600000u}};
  constexpr int kGroup = 32;
  for (const KernelSet& ks : kernel_sets())
    for (int fi = 0; fi < 4; ++fi) {
      const Fmt& f = fmts[fi];
      const tu::Fp8Oracle o(tu::kFp8Dtypes[fi]);
      const uint32_t min_normal = uint32_t(127 + 1 - f.bias) << 23;
      const uint32_t half = 1u << (22 - f.mant);  // half an fp8 ulp at the top binade, in fp32 ulps
      std::vector<uint32_t> mags;
      for (uint32_t seam : {0u, min_normal - half, min_normal, f.max_bits - half, f.max_bits, f.max_bits + half, 0x7F800000u})
        for (uint32_t d = 0; d <= 8192; ++d)
          if (seam + d >= 4096u && seam + d - 4096u <= 0x7FFFFFFFu) mags.push_back(seam + d - 4096u);
      for (uint32_t v = 0; v < 0x7FFFFFFFu - 4099u; v += 4099u) mags.push_back(v);
      mags.push_back(0x7FFFFFFFu);
      uint64_t bad = 0;
      std::string first;
      constexpr size_t kChunk = 4096;
      tu::Buf x(kChunk * kGroup * 4), out(kChunk * kGroup + 16);
      for (size_t c0 = 0; c0 < mags.size(); c0 += kChunk) {
        const size_t nc = std::min(kChunk, mags.size() - c0);
        for (size_t j = 0; j < nc; ++j)
          for (int e = 0; e < kGroup; ++e) x.put(4, int64_t(j * kGroup + size_t(e)), mags[c0 + j] | ((c0 + j) & 1u) << 31);
        ks.k->k[in_index(MLAKV_DTYPE_FP32)][fi](x.data(), out.data(), int64_t(nc * kGroup), 1.0f);
        for (size_t j = 0; j < nc; ++j) {
          const uint32_t v = mags[c0 + j] | ((c0 + j) & 1u) << 31;
          const uint8_t want = o.encode(tu::widen(MLAKV_DTYPE_FP32, v));
          for (int e = 0; e < kGroup; ++e)
            if (out.data()[j * kGroup + size_t(e)] != want && bad++ < 4)
              first += " [" + tu::hex(v, 8) + ": got " + tu::hex(out.data()[j * kGroup + size_t(e)]) + ", want " +
                       tu::hex(want) + "]";
        }
      }
      INFO("set " << std::string(ks.name) << ", fp32 -> " << std::string(tu::dtype_name(tu::kFp8Dtypes[fi])) << ", "
                  << mags.size() << " values:" << first);
      CHECK(bad == 0);
    }
}
