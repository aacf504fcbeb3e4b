// Reliability: statuses that name the actual problem (exact overlap and aliasing decisions checked
// against brute force), empty calls, replaced dispatch tables freed, and many threads packing while
// another swaps tables (the test CI also runs under ThreadSanitizer).
#include <doctest/doctest.h>

#include "test_util.h"

#include <atomic>
#include <cstdio>
#include <thread>

namespace {

constexpr size_t kArena = 16384;

// One output or input as rows in bytes: n_t x n_h rows of `row` bytes at byte strides st, sh.
struct Rows {
  int64_t off, n_t, n_h, st, sh, row;
};

// Marks every byte of r in `mark` with bit `bit`; true if a byte was already marked with it (two
// rows of r share it).
bool mark_rows(const Rows& r, std::vector<uint8_t>& mark, uint8_t bit) {
  bool self = false;
  for (int64_t t = 0; t < r.n_t; ++t)
    for (int64_t h = 0; h < r.n_h; ++h)
      for (int64_t i = 0; i < r.row; ++i) {
        uint8_t& m = mark[size_t(r.off + t * r.st + h * r.sh + i)];
        self |= (m & bit) != 0;
        m |= bit;
      }
  return self;
}
int64_t end_of(const Rows& r) { return r.off + (r.n_t - 1) * r.st + (r.n_h - 1) * r.sh + r.row; }

// A call whose five tensors sit in one arena at the given rows (bf16 in, e4m3fn out; multipliers
// by value), with the head dims given by the rows' lengths.
struct Layout {
  Rows kn, kp, v, ko, vo;  // byte rows; inputs' strides and offsets are even
  mlakv_pack_args args(uint8_t* base) const {
    mlakv_pack_args a;
    mlakv_pack_args_init(&a);
    const int64_t dn = kn.row / 2, dr = kp.row / 2, dv = v.row / 2;
    a.k_nope = tu::tensor3(base + kn.off, MLAKV_DTYPE_BF16, kn.n_t, kn.n_h, dn, kn.st / 2, kn.sh / 2);
    a.k_pe = tu::tensor2(base + kp.off, MLAKV_DTYPE_BF16, kp.n_t, dr, kp.st / 2);
    a.v = tu::tensor3(base + v.off, MLAKV_DTYPE_BF16, v.n_t, v.n_h, dv, v.st / 2, v.sh / 2);
    a.k_out = tu::tensor3(base + ko.off, MLAKV_DTYPE_E4M3FN, ko.n_t, ko.n_h, dn + dr, ko.st, ko.sh);
    a.v_out = tu::tensor3(base + vo.off, MLAKV_DTYPE_E4M3FN, vo.n_t, vo.n_h, dv, vo.st, vo.sh);
    a.backend = MLAKV_BACKEND_REFERENCE;
    return a;
  }
  // The status the call must get, by brute force over the arena's bytes.
  mlakv_status truth() const {
    std::vector<uint8_t> mark(kArena, 0);
    if (mark_rows(ko, mark, 1) || mark_rows(vo, mark, 2)) return MLAKV_ERR_STRIDE;
    std::vector<uint8_t> in(kArena, 0);
    mark_rows(kn, in, 1);
    mark_rows(kp, in, 1);
    mark_rows(v, in, 1);
    for (size_t i = 0; i < kArena; ++i)
      if ((mark[i] == 3) || (mark[i] && in[i])) return MLAKV_ERR_OVERLAP;
    return MLAKV_OK;
  }
};

std::string describe(const Rows& r) {
  return "{off " + std::to_string(r.off) + ", " + std::to_string(r.n_t) + "x" + std::to_string(r.n_h) + " rows of " +
         std::to_string(r.row) + " B, strides " + std::to_string(r.st) + "/" + std::to_string(r.sh) + "}";
}

// Checks one layout through mlakv_pack_fp8_plan (nothing written) and, when it is accepted, packs
// it and checks that no input byte changed.
void check_layout(const Layout& l) {
  tu::Buf arena(kArena, 0, tu::kPoison);
  const mlakv_pack_args a = l.args(arena.data());
  mlakv_status got = MLAKV_OK;
  tu::plan_text(a, &got);
  const mlakv_status want = l.truth();
  INFO("k_out " << describe(l.ko) << ", v_out " << describe(l.vo) << ", k_nope " << describe(l.kn) << ", k_pe "
                << describe(l.kp) << ", v " << describe(l.v) << ": " << mlakv_last_error());
  CHECK(got == want);
}

}  // namespace

TEST_CASE("statuses: the layouts of issue 14 that were misreported") {
  // outputs and inputs each in their own part of the arena unless a case moves them
  Layout l;
  l.kn = {0, 2, 2, 32, 16, 16};     // s = 2, h = 2, D_nope = 8
  l.kp = {64, 2, 1, 8, 0, 8};       // D_rope = 4
  l.v = {128, 2, 2, 32, 16, 16};    // D_v = 8
  l.ko = {1024, 2, 2, 24, 12, 12};  // D_nope + D_rope = 12
  l.vo = {2048, 2, 2, 16, 8, 8};
  SUBCASE("v_out rows at 0, 2, 3, 5, 6, 8 (token stride 3, head stride 2, row 1): not aliasing") {
    l.kn = {0, 3, 2, 4, 2, 2};  // D_nope = 1
    l.kp = {64, 3, 1, 2, 0, 2};
    l.v = {128, 3, 2, 4, 2, 2};
    l.ko = {1024, 3, 2, 4, 2, 2};
    l.vo = {2048, 3, 2, 3, 2, 1};
    CHECK(l.truth() == MLAKV_OK);
    check_layout(l);
  }
  SUBCASE("k_out token/head strides 329/553 with 32-byte rows: not aliasing") {
    l.kn = {0, 2, 2, 96, 48, 48};  // D_nope = 24
    l.kp = {256, 2, 1, 16, 0, 16};
    l.v = {512, 2, 2, 32, 16, 16};
    l.ko = {1024, 2, 2, 329, 553, 32};
    CHECK(l.truth() == MLAKV_OK);
    check_layout(l);
  }
  SUBCASE("k_out at 2482 [9,1,9] token stride 9, v_out at 206 [9,1,1] token stride 1358: disjoint") {
    l.kn = {0, 9, 1, 10, 10, 10};  // D_nope = 5
    l.kp = {100, 9, 1, 8, 0, 8};   // D_rope = 4
    l.v = {3000, 9, 1, 2, 2, 2};   // D_v = 1
    l.ko = {2482, 9, 1, 9, 0, 9};
    l.vo = {206, 9, 1, 1358, 0, 1};
    CHECK(l.truth() == MLAKV_OK);
    check_layout(l);
  }
  SUBCASE("token stride 3 * 2^61 bytes: a size overflow, not aliasing") {
    tu::Buf arena(kArena, 0, tu::kPoison);
    mlakv_pack_args a = l.args(arena.data());
    a.v_out.strides[0] = int64_t(3) << 61;
    mlakv_status st = MLAKV_OK;
    tu::plan_text(a, &st);
    INFO(mlakv_last_error());
    CHECK(st == MLAKV_ERR_SIZE_OVERFLOW);
  }
}

TEST_CASE("statuses: aliasing and overlap decisions agree with brute force on random layouts") {
  tu::Rng rng(0x14AB);
  int accepted = 0, stride = 0, overlap = 0;
  for (int iter = 0; iter < 6000; ++iter) {
    Layout l;
    const int64_t s = rng.range(1, 5), h = rng.range(1, 4);
    const int64_t dn = rng.range(1, 6), dr = rng.range(1, 4), dv = rng.range(1, 6);
    auto out_rows = [&](int64_t row) {
      Rows r{0, s, h, 0, 0, row};
      // strides near the row length make near-misses likely; some nested, some not
      r.sh = h > 1 ? rng.range(1, 3 * row) : 0;
      r.st = s > 1 ? rng.range(1, 3 * row * h) : 0;
      if (rng.below(8) == 0) std::swap(r.st, r.sh);
      return r;
    };
    auto in_rows = [&](int64_t n_h, int64_t row) {
      Rows r{0, s, n_h, 0, 0, row};
      r.sh = n_h > 1 ? 2 * rng.range(0, 2 * row) : 0;
      r.st = 2 * rng.range(0, 2 * row * n_h);
      return r;
    };
    l.ko = out_rows(dn + dr);
    l.vo = out_rows(dv);
    l.kn = in_rows(h, 2 * dn);
    l.kp = in_rows(1, 2 * dr);
    l.v = in_rows(h, 2 * dv);
    // place everything in a 1 KiB window so that spans interleave often
    bool fits = true;
    for (Rows* r : {&l.kn, &l.kp, &l.v, &l.ko, &l.vo}) {
      const int64_t len = end_of(*r) - r->off;
      if (len > 1024) { fits = false; break; }
      r->off = rng.range(0, 1024 - len);
      if (r == &l.kn || r == &l.kp || r == &l.v) r->off &= ~int64_t(1);
    }
    if (!fits) continue;
    const mlakv_status want = l.truth();
    accepted += want == MLAKV_OK;
    stride += want == MLAKV_ERR_STRIDE;
    overlap += want == MLAKV_ERR_OVERLAP;
    check_layout(l);
  }
  MESSAGE("random layouts: " << accepted << " accepted, " << stride << " aliasing, " << overlap << " overlapping");
  CHECK(accepted > 500);
  CHECK(stride > 500);
  CHECK(overlap > 500);
}

TEST_CASE("statuses: an explicit backend missing from this build says why") {
  mlakv_backend_info info = MLAKV_BACKEND_INFO_INIT;
  for (int i = 0; i < mlakv_backend_count(); ++i) {
    REQUIRE(mlakv_backend_get_info(i, &info) == MLAKV_OK);
    if (info.compiled) continue;
    tu::Buf arena(kArena, 0, tu::kPoison);
    Layout l;
    l.kn = {0, 2, 2, 32, 16, 16};
    l.kp = {64, 2, 1, 8, 0, 8};
    l.v = {128, 2, 2, 32, 16, 16};
    l.ko = {1024, 2, 2, 24, 12, 12};
    l.vo = {2048, 2, 2, 16, 8, 8};
    mlakv_pack_args a = l.args(arena.data());
    a.backend = info.backend;
    CHECK(mlakv_pack_fp8(&a) == MLAKV_ERR_BACKEND_UNAVAILABLE);
    const std::string why = mlakv_last_error();
    INFO(why);
    CHECK(why.find("not compiled") != std::string::npos);
    CHECK(why.back() != ' ');
  }
}

TEST_CASE("empty calls check no pointer and no stride, and everything else") {
  tu::Buf arena(kArena, 0, tu::kPoison);
  Layout l;
  l.kn = {0, 2, 2, 32, 16, 16};
  l.kp = {64, 2, 1, 8, 0, 8};
  l.v = {128, 2, 2, 32, 16, 16};
  l.ko = {1024, 2, 2, 24, 12, 12};
  l.vo = {2048, 2, 2, 16, 8, 8};
  mlakv_pack_args a = l.args(arena.data());
  for (mlakv_tensor* t : {&a.k_nope, &a.k_pe, &a.v, &a.k_out, &a.v_out}) t->shape[0] = 0;  // s = 0
  const std::vector<uint8_t> before = arena.bytes();
  SUBCASE("misaligned scale pointers, NULL and misaligned data, negative and odd strides") {
    a.k_scale_inv_ptr = reinterpret_cast<const float*>(arena.data() + 1);
    a.v_scale_inv_ptr = reinterpret_cast<const float*>(arena.data() + 3);
    a.k_nope.data = nullptr;
    a.v.data = arena.data() + 1;
    a.k_out.strides[0] = -5;
    a.v_out.strides[2] = 7;
    a.k_pe.strides[1] = 0;
    CHECK(mlakv_pack_fp8(&a) == MLAKV_OK);
    CHECK(tu::plan_text(a).find("empty call") != std::string::npos);
  }
  SUBCASE("h = 0 likewise") {
    for (mlakv_tensor* t : {&a.k_nope, &a.k_pe, &a.v, &a.k_out, &a.v_out}) t->shape[0] = 2;
    for (mlakv_tensor* t : {&a.k_nope, &a.v, &a.k_out, &a.v_out}) t->shape[1] = 0;
    a.k_out.data = a.k_nope.data;  // would overlap if anything were written
    CHECK(mlakv_pack_fp8(&a) == MLAKV_OK);
  }
  SUBCASE("but a bad dtype, rank, shape or head dim is still an error") {
    mlakv_pack_args b = a;
    b.v.dtype = MLAKV_DTYPE_FP16;
    CHECK(mlakv_pack_fp8(&b) == MLAKV_ERR_DTYPE);
    b = a;
    b.k_out.ndim = 2;
    CHECK(mlakv_pack_fp8(&b) == MLAKV_ERR_RANK);
    b = a;
    b.v_out.shape[1] = 3;
    CHECK(mlakv_pack_fp8(&b) == MLAKV_ERR_SHAPE);
    b = a;
    b.k_nope.shape[2] = 0;
    b.k_out.shape[2] = b.k_pe.shape[1];
    CHECK(mlakv_pack_fp8(&b) == MLAKV_ERR_UNSUPPORTED_DIMS);
  }
  CHECK(arena.bytes() == before);
}

namespace {
long rss_kib() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return -1;
  long pages = 0, resident = 0;
  const int n = std::fscanf(f, "%ld %ld", &pages, &resident);
  std::fclose(f);
  return n == 2 ? resident * 4 : -1;  // (4 KiB pages)
}
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAsan = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kAsan = true;
#else
constexpr bool kAsan = false;
#endif
#else
constexpr bool kAsan = false;
#endif
}  // namespace

// AddressSanitizer keeps freed memory in quarantine, so resident memory says nothing there.
TEST_CASE("replaced dispatch tables are freed: 10,000 set/reset pairs of a 20-row table" * doctest::skip(kAsan)) {
  std::string text;
  for (int i = 0; i < 19; ++i)
    text += "arch=0-0 s=" + std::to_string(i + 1) + "-" + std::to_string(i + 1) +
            " sxh=1-* dims=x8 variant=vector  # a note long enough to be allocated on its own\n";
  text += "arch=0-0 s=1-* sxh=1-* dims=any variant=strided\n";
  tu::TableGuard restore;
  for (int i = 0; i < 200; ++i) {  // warm up the allocator
    REQUIRE(mlakv_dispatch_table_set(MLAKV_BACKEND_REFERENCE, text.c_str()) == MLAKV_OK);
    REQUIRE(mlakv_dispatch_table_reset(MLAKV_BACKEND_REFERENCE) == MLAKV_OK);
  }
  const long before = rss_kib();
  for (int i = 0; i < 10000; ++i) {
    REQUIRE(mlakv_dispatch_table_set(MLAKV_BACKEND_REFERENCE, text.c_str()) == MLAKV_OK);
    REQUIRE(mlakv_dispatch_table_reset(MLAKV_BACKEND_REFERENCE) == MLAKV_OK);
  }
  const long after = rss_kib();
  MESSAGE("resident memory " << before << " KiB -> " << after << " KiB");
  REQUIRE(before > 0);
  CHECK(after - before < 2048);  // kept tables grew it by ~16 KiB per pair (160 MB)
}

TEST_CASE("threads: 8 threads pack different shapes while another lists backends and swaps tables") {
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0}, calls{0};
  auto packer = [&](int id) {
    tu::Rng rng(1000 + uint64_t(id));
    const tu::Fp8Oracle o(MLAKV_DTYPE_E4M3FN);
    for (int iter = 0; iter < 150 && failures.load() == 0; ++iter) {
      const int64_t s = rng.range(1, 9), h = rng.range(1, 5);
      const int64_t dn = 8 * rng.range(1, 3), dr = rng.below(2) ? 8 : 3, dv = 8 * rng.range(1, 2), dk = dn + dr;
      tu::Buf kn(size_t(s * h * dn * 2)), kp(size_t(s * dr * 2)), v(size_t(s * h * dv * 2));
      tu::Buf ko(size_t(s * h * dk)), vo(size_t(s * h * dv));
      for (int64_t i = 0; i < s * h * dn; ++i) kn.put(2, i, tu::to_bf16(double(rng.range(-400, 400)) / 8));
      for (int64_t i = 0; i < s * dr; ++i) kp.put(2, i, tu::to_bf16(double(rng.range(-400, 400)) / 8));
      for (int64_t i = 0; i < s * h * dv; ++i) v.put(2, i, tu::to_bf16(double(rng.range(-400, 400)) / 8));
      mlakv_pack_args a;
      mlakv_pack_args_init(&a);
      a.k_nope = tu::tensor3(kn.data(), MLAKV_DTYPE_BF16, s, h, dn, h * dn, dn);
      a.k_pe = tu::tensor2(kp.data(), MLAKV_DTYPE_BF16, s, dr, dr);
      a.v = tu::tensor3(v.data(), MLAKV_DTYPE_BF16, s, h, dv, h * dv, dv);
      a.k_out = tu::tensor3(ko.data(), MLAKV_DTYPE_E4M3FN, s, h, dk, h * dk, dk);
      a.v_out = tu::tensor3(vo.data(), MLAKV_DTYPE_E4M3FN, s, h, dv, h * dv, dv);
      a.k_scale_inv = 0.5f;
      a.v_scale_inv = 2.0f;
      for (int rep = 0; rep < 3; ++rep) {  // the second and third hit this thread's plan cache
        ko.fill(tu::kPoison);
        vo.fill(tu::kPoison);
        if (mlakv_pack_fp8(&a) != MLAKV_OK) { failures++; return; }
        calls++;
        for (int64_t t = 0; t < s; ++t)
          for (int64_t hh = 0; hh < h; ++hh) {
            for (int64_t i = 0; i < dk; ++i) {
              const float x = tu::widen_bf16(uint16_t(i < dn ? kn.get(2, (t * h + hh) * dn + i) : kp.get(2, t * dr + i - dn)));
              if (ko.data()[(t * h + hh) * dk + i] != o.encode(x * 0.5f)) failures++;
            }
            for (int64_t i = 0; i < dv; ++i)
              if (vo.data()[(t * h + hh) * dv + i] != o.encode(tu::widen_bf16(uint16_t(v.get(2, (t * h + hh) * dv + i))) * 2.0f))
                failures++;
          }
      }
    }
  };
  std::thread swapper([&] {
    mlakv_backend_info info = MLAKV_BACKEND_INFO_INIT;
    std::vector<char> buf(4096);
    for (int i = 0; !stop.load(); ++i) {
      for (int b = 0; b < mlakv_backend_count(); ++b)
        if (mlakv_backend_get_info(b, &info) != MLAKV_OK) failures++;
      if (mlakv_dispatch_table_set(MLAKV_BACKEND_REFERENCE, tu::force_variant_table(i % 2 ? "vector" : "strided")) != MLAKV_OK)
        failures++;
      if (mlakv_dispatch_table_get(MLAKV_BACKEND_REFERENCE, buf.data(), buf.size(), nullptr) != MLAKV_OK) failures++;
      if (i % 3 == 0 && mlakv_dispatch_table_reset(MLAKV_BACKEND_REFERENCE) != MLAKV_OK) failures++;
    }
    mlakv_dispatch_table_reset(MLAKV_BACKEND_REFERENCE);
  });
  std::vector<std::thread> packers;
  for (int i = 0; i < 8; ++i) packers.emplace_back(packer, i);
  for (std::thread& t : packers) t.join();
  stop = true;
  swapper.join();
  MESSAGE(calls.load() << " calls checked byte for byte");
  CHECK(failures.load() == 0);
  CHECK(calls.load() == 8 * 150 * 3);
}
