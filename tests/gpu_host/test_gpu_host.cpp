// The shared GPU host layer (src/gpu/gpu_backend.cu) as the HIP backend, with the HIP table
// (src/hip/hip_table.cpp), over fake AMD devices (fake_vendor.h): table selection per gfx target,
// routing by where memory lives, the PDL rule, plan text, register limits, launch failures, the
// caller's current device, and - since the fake launch runs the kernel bodies on the host - the
// bytes of every built-in row, compared with the reference backend's.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>
#include <mlakv/mlakv.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "fake_vendor.h"
#include "gpu/pack_kernels.cuh"  // a kernel instance's address (its register limit, faked)
#include "gpu/ext_cases.h"  // per-head scales and amax cases, shared with the CUDA suite
#include "test_util.h"

namespace {

using tu::Buf;

// The fake machine: the devices every test sees (the backend caches them on first use).
enum FakeDev { kMi300 = 0, kMi355 = 1, kMi250 = 2, kMi300Small = 3 };
void install_devices() {
  auto& s = mlakv::fake::state();
  s.devices = {{942, 304, "AMD Instinct MI300X", 1024},
               {950, 256, "AMD Instinct MI355X", 1024},
               {910, 110, "AMD Instinct MI250X", 1024},
               {942, 304, "MI300X with a 256-thread register limit", 256}};
}

// Host memory the fake runtime calls device memory. Never freed: the backend remembers verified
// device ranges per thread (as it does for real device memory), and host memory that malloc handed
// out again at a freed fake-device address would pass for device memory.
struct DeviceBuf {
  Buf& buf;
  explicit DeviceBuf(size_t bytes) : buf(*new Buf(bytes)) {
    auto& s = mlakv::fake::state();
    std::lock_guard<std::mutex> lock(s.mu);
    s.memory.push_back({reinterpret_cast<uintptr_t>(buf.data()), reinterpret_cast<uintptr_t>(buf.data()) + bytes});
  }
  uint8_t* data() { return buf.data(); }
};

// One DeepSeek-shaped (or other dims) call: k_nope and v the halves of one [s, h, dn + dv] tensor.
struct Call {
  int64_t s = 8, h = 16, dn = 128, dr = 64, dv = 128;
  mlakv_dtype in = MLAKV_DTYPE_BF16, out = MLAKV_DTYPE_E4M3FN;
  size_t misalign = 0;  // bytes added to the input base, whole elements (misaligned: the general path)
  int device = kMi300;
  mlakv_backend backend = MLAKV_BACKEND_AUTO;
  int pdl = MLAKV_PDL_AUTO;
  void* stream = nullptr;
};

struct Result {
  mlakv_status st = MLAKV_OK;
  std::string plan, error;
  size_t bad = 0;
  bool outputs_untouched = false;
};

// Runs c on the fake device (inputs and outputs in fake device memory) and on the reference backend
// (host copies of the same inputs), and compares every output byte, padding past the end included.
Result run(const Call& c) {
  const int e = tu::dtype_size(c.in);
  const int64_t w = c.dn + c.dv, dk = c.dn + c.dr;
  const size_t n_kv = size_t(c.s * c.h * w), n_pe = size_t(c.s * c.dr);
  const size_t n_ko = size_t(c.s * c.h * dk), n_vo = size_t(c.s * c.h * c.dv);
  DeviceBuf kv(n_kv * size_t(e) + c.misalign), pe(n_pe * size_t(e)), ko(n_ko + 1), vo(n_vo + 1);
  tu::Rng rng(uint64_t(c.s * 1000003 + c.h * 7 + c.dn + c.device));
  for (size_t i = 0; i < n_kv; ++i) kv.buf.put(e, int64_t(i) + int64_t(c.misalign) / e, tu::to_raw(c.in, double(int32_t(rng.u32())) / double(1 << 24)));
  for (size_t i = 0; i < n_pe; ++i) pe.buf.put(e, int64_t(i), tu::to_raw(c.in, double(int32_t(rng.u32())) / double(1 << 22)));
  std::vector<uint8_t> kv_host(kv.data(), kv.data() + kv.buf.size()), pe_host(pe.data(), pe.data() + pe.buf.size());
  auto make = [&](void* kvp, void* pep, void* kop, void* vop, mlakv_backend b) {
    mlakv_pack_args a = MLAKV_PACK_ARGS_INIT;
    uint8_t* base = static_cast<uint8_t*>(kvp) + c.misalign;
    a.k_nope = tu::tensor3(base, c.in, c.s, c.h, c.dn, c.h * w, w);
    a.v = tu::tensor3(base + c.dn * e, c.in, c.s, c.h, c.dv, c.h * w, w);
    a.k_pe = tu::tensor2(pep, c.in, c.s, c.dr, c.dr);
    a.k_out = tu::tensor3(kop, c.out, c.s, c.h, dk, c.h * dk, dk);
    a.v_out = tu::tensor3(vop, c.out, c.s, c.h, c.dv, c.h * c.dv, c.dv);
    a.k_scale_inv = 1.0f / 0.0375f;
    a.v_scale_inv = 1.0f / 0.021f;
    a.backend = b;
    a.device = c.device;
    a.pdl = c.pdl;
    a.stream = c.stream;
    return a;
  };
  const mlakv_pack_args g = make(kv.data(), pe.data(), ko.data(), vo.data(), c.backend);
  Result r;
  r.plan = tu::plan_text(g);
  r.st = mlakv_pack_fp8(&g);
  r.error = mlakv_last_error();
  r.outputs_untouched = tu::all_bytes(ko.data(), n_ko + 1, tu::kPoison) && tu::all_bytes(vo.data(), n_vo + 1, tu::kPoison);
  if (r.st != MLAKV_OK) return r;
  std::vector<uint8_t> rk(n_ko + 1, tu::kPoison), rv(n_vo + 1, tu::kPoison);
  const mlakv_pack_args ra = make(kv_host.data(), pe_host.data(), rk.data(), rv.data(), MLAKV_BACKEND_REFERENCE);
  REQUIRE_MESSAGE(mlakv_pack_fp8(&ra) == MLAKV_OK, mlakv_last_error());
  r.bad = tu::diff_bytes(ko.data(), rk.data(), n_ko + 1, nullptr) + tu::diff_bytes(vo.data(), rv.data(), n_vo + 1, nullptr);
  return r;
}

// The built-in HIP table's rows, as printed.
struct Row {
  long a0, a1, s0, s1, x0, x1;  // -1: unbounded
  std::string dims, line;
};
std::vector<Row> builtin_rows() {
  REQUIRE(mlakv_dispatch_table_reset(MLAKV_BACKEND_HIP) == MLAKV_OK);
  size_t need = 0;
  mlakv_dispatch_table_get(MLAKV_BACKEND_HIP, nullptr, 0, &need);
  std::string text(need, '\0');
  REQUIRE(mlakv_dispatch_table_get(MLAKV_BACKEND_HIP, &text[0], text.size(), nullptr) == MLAKV_OK);
  std::vector<Row> rows;
  std::istringstream in(text.c_str());
  std::string line;
  while (std::getline(in, line)) {
    Row r{};
    char s1[24] = {0}, x1[24] = {0}, dims[8] = {0};
    if (std::sscanf(line.c_str(), "arch=%ld-%ld s=%ld-%23s sxh=%ld-%23s dims=%7s", &r.a0, &r.a1, &r.s0, s1, &r.x0, x1, dims) != 7)
      continue;
    r.s1 = s1[0] == '*' ? -1 : std::atol(s1);
    r.x1 = x1[0] == '*' ? -1 : std::atol(x1);
    r.dims = dims;
    r.line = line;
    rows.push_back(r);
  }
  return rows;
}

}  // namespace

// ---- per-device table files (the environment's are found when a device is first used) -----------------------------------------------------------------------
namespace {

std::string g_dir;  // the test's table directory (MLAKV_TABLE_DIR)

std::string write_file(const std::string& name, const std::string& text) {
  const std::string path = g_dir + "/" + name;
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

const char* kRowsMarked =  // a distinctive row, then the catch-all
    "arch=900-1000 s=1-* sxh=1-* dims=x8 variant=flat threads=320 lanes=16 split=1  # %s\n"
    "arch=0-100000 s=1-* sxh=1-* dims=any variant=general threads=256\n";

std::string table_text(const std::string& device_line, const char* mark) {
  char rows[512];
  std::snprintf(rows, sizeof rows, kRowsMarked, mark);
  return "# measured by a test\nmlakv-table 1\n" + device_line + "\n" + rows;
}

// Files the devices find on their own when first used (written before any mlakv call): MI355X's
// through MLAKV_TABLE, MI250X's in MLAKV_TABLE_DIR under its own name, and a broken one for the
// MI300X with the register limit.
void install_environment_tables() {
  char tmpl[] = "/tmp/mlakv-gpu-host-XXXXXX";
  g_dir = mkdtemp(tmpl);
  const std::string mi355 = write_file("mi355.table", table_text("device backend=hip arch=950 units=256 l2=256 name=AMD_Instinct_MI355X", "from MLAKV_TABLE"));
  write_file("hip-AMD_Instinct_MI250X-arch910-110u-256mib.table",
             table_text("device backend=hip arch=910 units=110 l2=256 name=AMD_Instinct_MI250X", "from the cache directory"));
  write_file("hip-MI300X_with_a_256-thread_register_limit-arch942-304u-256mib.table",
             "mlakv-table 1\ndevice backend=hip arch=942 units=304 l2=256 name=MI300X_with_a_256-thread_register_limit\n"
             "arch=942-942 variant=flat threads=33\n");
  setenv("MLAKV_TABLE", mi355.c_str(), 1);
  setenv("MLAKV_TABLE_DIR", g_dir.c_str(), 1);
}

}  // namespace

TEST_CASE("table files from the environment apply to the device they were measured on") {
  Call c;
  c.s = 8;
  c.h = 4;
  c.device = kMi355;
  Result r = run(c);
  REQUIRE(r.st == MLAKV_OK);
  CHECK(r.bad == 0);
  CHECK(r.plan.find("table=" + g_dir + "/mi355.table") != std::string::npos);
  CHECK(r.plan.find("# from MLAKV_TABLE") != std::string::npos);
  c.device = kMi250;
  r = run(c);
  REQUIRE(r.st == MLAKV_OK);
  CHECK(r.bad == 0);
  CHECK(r.plan.find("# from the cache directory") != std::string::npos);
  c.device = kMi300;  // no file of its own; MLAKV_TABLE's is for another device: the built-in table
  r = run(c);
  REQUIRE(r.st == MLAKV_OK);
  CHECK(r.plan.find("table=built-in (MLAKV_TABLE=") != std::string::npos);
  CHECK(r.plan.find("was measured on another device") != std::string::npos);
  CHECK(r.plan.find("gfx942 (MI300X)") != std::string::npos);
  c.device = kMi300Small;  // its file is broken: rejected, the built-in table stays, the plan says why
  r = run(c);
  REQUIRE(r.st == MLAKV_OK);
  CHECK(r.plan.find("table=built-in") != std::string::npos);
  CHECK(r.plan.find("rejected") != std::string::npos);
  CHECK(r.plan.find("bad value in 'threads=33'") != std::string::npos);
}

TEST_CASE("fake AMD devices: the hip backend is listed, usable, with its gfx targets") {
  bool found = false;
  for (int i = 0; i < mlakv_backend_count(); ++i) {
    mlakv_backend_info info = MLAKV_BACKEND_INFO_INIT;
    REQUIRE(mlakv_backend_get_info(i, &info) == MLAKV_OK);
    if (info.backend != MLAKV_BACKEND_HIP) continue;
    found = true;
    CHECK(std::string(info.name) == "hip");
    CHECK(info.compiled == 1);
    CHECK(info.usable == 1);
    CHECK(info.device_count == 4);
    const std::string detail = info.detail;
    CHECK(detail.find("AMD Instinct MI300X (gfx942)") != std::string::npos);
    CHECK(detail.find("(gfx950)") != std::string::npos);
    CHECK(detail.find("AMD Instinct MI250X (gfx90a)") != std::string::npos);
  }
  CHECK(found);
  CHECK(std::string(mlakv_version_string()).find("hip") != std::string::npos);
}

TEST_CASE("gfx target names and the tables' arch numbers") {
  using mlakv::gpu::rt::arch_name;
  using mlakv::gpu::rt::gfx_arch;
  CHECK(gfx_arch("gfx942:sramecc+:xnack-") == 942);
  CHECK(gfx_arch("gfx950") == 950);
  CHECK(gfx_arch("gfx90a:sramecc+:xnack-") == 910);
  CHECK(gfx_arch("gfx1030") == 1030);
  CHECK(gfx_arch("gfx1100") == 1100);
  CHECK(gfx_arch("sm_90") == 0);
  CHECK(gfx_arch("gfx") == 0);
  for (const char* n : {"gfx942", "gfx950", "gfx90a", "gfx90c", "gfx908", "gfx1030", "gfx1100", "gfx1201"}) {
    CAPTURE(n);
    CHECK(arch_name(gfx_arch(n)) == n);
  }
}

TEST_CASE("every built-in HIP row at both ends of its band, on the device it is for: plan and bytes") {
  const std::vector<Row> rows = builtin_rows();
  REQUIRE(rows.size() >= 4);
  struct Dev { int index, arch; } devs[] = {{kMi300, 942}, {kMi355, 950}, {kMi250, 910}};
  int runs = 0;
  for (const Dev& d : devs)
    for (size_t i = 0; i < rows.size(); ++i) {
      const Row& r = rows[i];
      if (r.dims != "x8" || d.arch < r.a0 || d.arch > r.a1) continue;
      for (long sxh : {r.x0, r.x1}) {
        if (sxh < 1 || sxh > 200000) sxh = sxh < 1 ? r.x0 : 200000;  // the last band: a size inside it
        long h = 0;
        for (long cand : {16L, 8L, 4L, 2L, 1L})
          if (sxh % cand == 0) { h = cand; break; }
        const long s = sxh / h;
        if (s < r.s0 || (r.s1 >= 0 && s > r.s1)) continue;
        size_t first = 0;  // the row the walk takes at this size (an earlier one may shadow it)
        while (first < rows.size() && !(d.arch >= rows[first].a0 && d.arch <= rows[first].a1 && s >= rows[first].s0 &&
                                         (rows[first].s1 < 0 || s <= rows[first].s1) && sxh >= rows[first].x0 &&
                                         (rows[first].x1 < 0 || sxh <= rows[first].x1)))
          ++first;
        if (first != i) continue;
        Call c;
        c.s = s;
        c.h = h;
        c.device = d.index;
        const Result res = run(c);
        INFO("row: " << r.line << "\ndevice arch " << d.arch << " s=" << s << " h=" << h << "\nplan: " << res.plan);
        REQUIRE(res.st == MLAKV_OK);
        CHECK(res.bad == 0);
        CHECK(res.plan.find("backend=hip arch=" + std::to_string(d.arch)) != std::string::npos);
        CHECK(res.plan.find("pdl=n/a") != std::string::npos);
        const std::string band = "sxh=" + std::to_string(r.x0) + "-" + (r.x1 < 0 ? std::string("*") : std::to_string(r.x1));
        CHECK(res.plan.find(band) != std::string::npos);
        CHECK(res.plan.find(d.arch == 910 ? "generic AMD" : d.arch == 942 ? "gfx942" : "gfx950") != std::string::npos);
        ++runs;
      }
    }
  MESSAGE(runs << " sizes run on fake gfx942 / gfx950 / gfx90a");
  CHECK(runs >= 8);
}

TEST_CASE("odd dims, misaligned pointers, other dtypes and formats: the general path or x8 units, same bytes") {
  Call c;
  c.s = 5;
  c.h = 3;
  SUBCASE("dims not multiples of 8: the general kernel") {
    c.dn = 12; c.dr = 6; c.dv = 10;
    const Result r = run(c);
    REQUIRE(r.st == MLAKV_OK);
    CHECK(r.bad == 0);
    CHECK(r.plan.find("variant=general") != std::string::npos);
  }
  SUBCASE("a misaligned input base (2 bytes past 16): the general kernel") {
    c.misalign = 2;
    const Result r = run(c);
    REQUIRE(r.st == MLAKV_OK);
    CHECK(r.bad == 0);
    CHECK(r.plan.find("variant=general") != std::string::npos);
  }
  SUBCASE("other x8 dims: x8 units") {
    c.dn = 64; c.dr = 32; c.dv = 64;
    const Result r = run(c);
    REQUIRE(r.st == MLAKV_OK);
    CHECK(r.bad == 0);
    CHECK(r.plan.find("units=x8") != std::string::npos);
  }
  for (mlakv_dtype in : tu::kInputDtypes)
    for (mlakv_dtype out : tu::kFp8Dtypes) {
      CAPTURE(tu::dtype_name(in));
      CAPTURE(tu::dtype_name(out));
      Call d;
      d.s = 33;
      d.h = 4;
      d.in = in;
      d.out = out;
      const Result r = run(d);
      REQUIRE(r.st == MLAKV_OK);
      CHECK(r.bad == 0);
    }
}

TEST_CASE("routing: fake device memory goes to hip, host memory to the reference backend") {
  Call c;
  c.s = 4;
  c.h = 2;
  const Result on_device = run(c);
  REQUIRE(on_device.st == MLAKV_OK);
  CHECK(on_device.plan.rfind("backend=hip", 0) == 0);
  // the same call on host memory: AUTO takes the reference backend; explicit hip refuses it
  Buf kv(size_t(4 * 2 * 256 * 2)), pe(size_t(4 * 64 * 2)), ko(size_t(4 * 2 * 192)), vo(size_t(4 * 2 * 128));
  mlakv_pack_args a = MLAKV_PACK_ARGS_INIT;
  a.k_nope = tu::tensor3(kv.data(), MLAKV_DTYPE_BF16, 4, 2, 128, 512, 256);
  a.v = tu::tensor3(kv.data() + 256, MLAKV_DTYPE_BF16, 4, 2, 128, 512, 256);
  a.k_pe = tu::tensor2(pe.data(), MLAKV_DTYPE_BF16, 4, 64, 64);
  a.k_out = tu::tensor3(ko.data(), MLAKV_DTYPE_E4M3FN, 4, 2, 192, 384, 192);
  a.v_out = tu::tensor3(vo.data(), MLAKV_DTYPE_E4M3FN, 4, 2, 128, 256, 128);
  CHECK(tu::plan_text(a).rfind("backend=reference", 0) == 0);
  a.backend = MLAKV_BACKEND_HIP;
  CHECK(mlakv_pack_fp8(&a) == MLAKV_ERR_MEMORY_SPACE);
  CHECK(std::string(mlakv_last_error()).find("host memory the GPU cannot reach") != std::string::npos);
  CHECK(tu::all_bytes(ko.data(), ko.size(), tu::kPoison));
  // device memory, but k_out's allocation is shorter than its span: refused before anything runs
  DeviceBuf dkv(kv.size()), dpe(pe.size()), dko(64), dvo(vo.size());
  a.k_nope.data = dkv.data();
  a.v.data = dkv.data() + 256;
  a.k_pe.data = dpe.data();
  a.k_out.data = dko.data();
  a.v_out.data = dvo.data();
  CHECK(mlakv_pack_fp8(&a) == MLAKV_ERR_MEMORY_SPACE);
  CHECK(std::string(mlakv_last_error()).find("k_out: its 1536 bytes") != std::string::npos);
  CHECK(tu::all_bytes(dko.data(), 64, tu::kPoison));
}

TEST_CASE("PDL does not exist on AMD: every mode is accepted and the plan says n/a") {
  for (int pdl : {MLAKV_PDL_AUTO, MLAKV_PDL_ON, MLAKV_PDL_OFF}) {
    Call c;
    c.s = 3;
    c.h = 2;
    c.pdl = pdl;
    c.backend = MLAKV_BACKEND_HIP;
    const Result r = run(c);
    REQUIRE(r.st == MLAKV_OK);
    CHECK(r.plan.find("pdl=n/a") != std::string::npos);
  }
}

TEST_CASE("a row asking for more threads than the device's kernels allow does not hold") {
  // device 3 reports a 256-thread limit for every kernel: a 1024-thread row is passed over
  REQUIRE(mlakv_dispatch_table_set(MLAKV_BACKEND_HIP,
                                   "arch=0-100000 s=1-* sxh=1-* dims=x8 variant=flat threads=1024 lanes=16  # too many\n"
                                   "arch=0-100000 s=1-* sxh=1-* dims=x8 variant=flat threads=192 lanes=16  # runs\n") ==
          MLAKV_OK);
  Call c;
  c.s = 6;
  c.h = 4;
  c.device = kMi300Small;
  Result r = run(c);
  REQUIRE(r.st == MLAKV_OK);
  CHECK(r.bad == 0);
  CHECK(r.plan.find("threads=192") != std::string::npos);
  CHECK(r.plan.find("# runs") != std::string::npos);
  c.device = kMi300;  // no such limit there: the first row runs
  r = run(c);
  REQUIRE(r.st == MLAKV_OK);
  CHECK(r.bad == 0);
  CHECK(r.plan.find("threads=1024") != std::string::npos);
  // and where no row holds: MLAKV_ERR_NO_TABLE_ROW, nothing written or launched
  REQUIRE(mlakv_dispatch_table_set(MLAKV_BACKEND_HIP, "arch=0-100000 variant=flat threads=1024 lanes=16\n") == MLAKV_OK);
  const size_t launches = mlakv::fake::state().launches.size();
  c.device = kMi300Small;
  r = run(c);
  CHECK(r.st == MLAKV_ERR_NO_TABLE_ROW);
  CHECK(r.error.find("gfx942") != std::string::npos);
  CHECK(r.outputs_untouched);
  CHECK(mlakv::fake::state().launches.size() == launches);
  REQUIRE(mlakv_dispatch_table_reset(MLAKV_BACKEND_HIP) == MLAKV_OK);
}

TEST_CASE("a failed launch is MLAKV_ERR_LAUNCH with the runtime's message; the caller's device is restored") {
  mlakv::fake::t_current = kMi250;  // the caller's current device
  mlakv::fake::state().fail_launches = 1;
  Call c;
  c.s = 2;
  c.h = 2;
  c.device = kMi300;
  const Result r = run(c);
  CHECK(r.st == MLAKV_ERR_LAUNCH);
  CHECK(r.error.find("hip kernel launch") != std::string::npos);
  CHECK(r.outputs_untouched);
  CHECK(mlakv::fake::t_current == kMi250);
  const Result ok = run(c);  // the next one launches, on device 0, and the caller's device stays
  CHECK(ok.st == MLAKV_OK);
  CHECK(ok.bad == 0);
  CHECK(mlakv::fake::state().launches.back().device == kMi300);
  CHECK(mlakv::fake::t_current == kMi250);
  mlakv::fake::t_current = 0;
}

TEST_CASE("the launch path: one launch on the caller's stream") {
  const size_t before = mlakv::fake::state().launches.size();
  int stream_tag = 0;
  Call c;
  c.s = 64;
  c.h = 8;
  c.stream = &stream_tag;  // an opaque stream handle, handed through untouched
  const Result r = run(c);  // the reference comparison runs on the host: no launch
  REQUIRE(r.st == MLAKV_OK);
  REQUIRE(mlakv::fake::state().launches.size() == before + 1);
  CHECK(mlakv::fake::state().launches.back().stream == &stream_tag);
}

TEST_CASE("mlakv_dispatch_table_load: the device's file applies to it alone; bad files change nothing") {
  const std::string mi300 = "device backend=hip arch=942 units=304 l2=256 name=AMD_Instinct_MI300X";
  const std::string good = write_file("mi300.table", table_text(mi300, "loaded for the MI300X"));
  REQUIRE(mlakv_dispatch_table_load(MLAKV_BACKEND_HIP, good.c_str()) == MLAKV_OK);
  Call c;
  c.s = 8;
  c.h = 4;
  c.device = kMi300;
  Result r = run(c);
  REQUIRE(r.st == MLAKV_OK);
  CHECK(r.bad == 0);
  CHECK(r.plan.find("table=" + good) != std::string::npos);
  CHECK(r.plan.find("# loaded for the MI300X") != std::string::npos);
  // a call the file has no row for (its rows end on a catch-all, so none here): the walk goes on
  c.dn = 12; c.dr = 6; c.dv = 10;
  r = run(c);
  REQUIRE(r.st == MLAKV_OK);
  CHECK(r.bad == 0);

  struct Bad { const char* what; std::string text; mlakv_status st; };
  const std::string endless(5000, 'x');
  const Bad bad[] = {
      {"empty", "", MLAKV_ERR_TABLE_PARSE},
      {"no header", mi300 + "\narch=0-100000 variant=general\n", MLAKV_ERR_TABLE_PARSE},
      {"another version", "mlakv-table 2\n" + mi300 + "\narch=0-100000 variant=general\n", MLAKV_ERR_TABLE_PARSE},
      {"no device line", "mlakv-table 1\narch=0-100000 variant=general\n", MLAKV_ERR_TABLE_PARSE},
      {"a device field missing", "mlakv-table 1\ndevice backend=hip arch=942 units=304 name=X\narch=0-100000 variant=general\n", MLAKV_ERR_TABLE_PARSE},
      {"an absurd number", "mlakv-table 1\ndevice backend=hip arch=99999999999999999999 units=304 l2=256 name=X\narch=0-100000 variant=general\n", MLAKV_ERR_TABLE_PARSE},
      {"an absurd row", "mlakv-table 1\n" + mi300 + "\narch=0-100000 s=1-99999999999999999999999 variant=general\n", MLAKV_ERR_TABLE_PARSE},
      {"an unknown key", "mlakv-table 1\n" + mi300 + "\narch=0-100000 colour=blue variant=general\n", MLAKV_ERR_TABLE_PARSE},
      {"no rows", "mlakv-table 1\n" + mi300 + "\n# nothing\n", MLAKV_ERR_TABLE_PARSE},
      {"an endless line", "mlakv-table 1\n" + mi300 + "\n" + endless + "\n", MLAKV_ERR_TABLE_PARSE},
      {"binary", std::string("mlakv-table 1\n\0\x01\xff", 17), MLAKV_ERR_TABLE_PARSE},
      {"huge", "mlakv-table 1\n" + mi300 + "\n" + std::string(1 << 21, '#'), MLAKV_ERR_TABLE_PARSE},
      {"another device", table_text("device backend=hip arch=942 units=228 l2=256 name=AMD_Instinct_MI300A", "x"), MLAKV_ERR_TABLE_DEVICE},
      {"another backend", table_text("device backend=cuda arch=90 units=132 l2=60 name=NVIDIA_H200", "x"), MLAKV_ERR_TABLE_DEVICE},
  };
  for (const Bad& b : bad) {
    CAPTURE(b.what);
    const std::string path = write_file("bad.table", b.text);
    CHECK(mlakv_dispatch_table_load(MLAKV_BACKEND_HIP, path.c_str()) == b.st);
    CHECK(std::strlen(mlakv_last_error()) > 0);
  }
  CHECK(mlakv_dispatch_table_load(MLAKV_BACKEND_HIP, (g_dir + "/missing.table").c_str()) == MLAKV_ERR_TABLE_PARSE);
  CHECK(mlakv_dispatch_table_load(MLAKV_BACKEND_HIP, nullptr) == MLAKV_ERR_NULL_POINTER);
  CHECK(mlakv_dispatch_table_load(MLAKV_BACKEND_REFERENCE, good.c_str()) == MLAKV_ERR_INVALID_ARGUMENT);
  c = Call();
  c.s = 8;
  c.h = 4;
  r = run(c);  // the good file is still in force
  CHECK(r.plan.find("table=" + good) != std::string::npos);
  // reset forgets loaded tables (the environment's too)
  REQUIRE(mlakv_dispatch_table_reset(MLAKV_BACKEND_HIP) == MLAKV_OK);
  r = run(c);
  CHECK(r.plan.find("table=built-in") != std::string::npos);
  c.device = kMi355;
  r = run(c);
  CHECK(r.plan.find("table=built-in") != std::string::npos);
}

TEST_CASE("rows on the device's L2 size") {
  // MI300X here reports 256 MiB: a row for l2=0-128 does not hold, one for l2=200-300 does
  REQUIRE(mlakv_dispatch_table_set(MLAKV_BACKEND_HIP,
                                   "arch=942-942 l2=0-128 variant=flat threads=128 lanes=16  # small cache\n"
                                   "arch=942-942 l2=200-300 variant=flat threads=256 lanes=16  # large cache\n"
                                   "arch=0-100000 variant=general\n") == MLAKV_OK);
  Call c;
  c.s = 8;
  c.h = 4;
  const Result r = run(c);
  REQUIRE(r.st == MLAKV_OK);
  CHECK(r.bad == 0);
  CHECK(r.plan.find("arch=942-942 l2=200-300 s=1-*") != std::string::npos);
  CHECK(r.plan.find("table=set") != std::string::npos);
  REQUIRE(mlakv_dispatch_table_reset(MLAKV_BACKEND_HIP) == MLAKV_OK);
}

// ---- per-head scales and amax (issue 15) over fake devices -------------------------------------------------------
namespace {

struct FakeMem : ext::Mem {
  void* alloc(size_t bytes) override { return (new DeviceBuf(bytes))->data(); }
  void put(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
  void get(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
  void sync() override {}
};

// Runs c on the hip backend of the fake MI300X and checks everything ext::run checks.
ext::Result check_ext(ext::Case c) {
  FakeMem mem;
  c.backend = MLAKV_BACKEND_HIP;
  c.device = kMi300;
  const ext::Result r = ext::run(mem, c);
  INFO(ext::describe(c) << "\nplan: " << r.plan << "\n" << r.detail);
  REQUIRE_MESSAGE(r.st == MLAKV_OK, r.error);
  CHECK(r.bad_bytes == 0);
  CHECK(r.bad_bytes_heads == 0);
  CHECK(r.bad_amax == 0);
  if (c.table) CHECK(r.plan.find("# catch-all") == std::string::npos);  // the forced row ran
  return r;
}

// A table forcing one variant, unit layout and unroll (hip rows: lanes, split, wide).
std::string ext_row(const char* variant, int threads, int block, int unroll, int waves, int lanes, int split, int wide,
                    const char* dims = "x8") {
  char row[256];
  std::snprintf(row, sizeof row,
                "arch=0-100000 s=1-* sxh=1-* dims=%s variant=%s threads=%d block=%d unroll=%d waves=%d early=0 lanes=%d "
                "split=%d evict_first=0 wide=%d\n",
                dims, variant, threads, block, unroll, waves, lanes, split, wide);
  return row;
}

}  // namespace

TEST_CASE("per-head scales and amax: every variant, unit layout and unroll, bytes and amax as the reference and a host loop; per head without amax too") {
  struct L { int lanes, split, wide; } layouts[] = {{16, 0, 0}, {8, 0, 0}, {16, 1, 0}, {32, 1, 0}, {8, 0, 1}};
  uint64_t seed = 100;
  int k = 0;
  for (const char* v : {"tile2d", "flat", "persist"})
    for (const L& l : layouts)
      for (int unroll : {1, 2, 4}) {
        if (unroll == 4 && (l.split || l.wide)) continue;  // compiled with unroll 1 and 2 only
        ++k;
        const std::string table = ext_row(v, k % 2 ? 64 : 128, k % 3 ? 4 : 3, unroll, 2, l.lanes, l.split, l.wide);
        ext::Case c;
        c.s = 5 + k % 7;
        c.h = k % 2 ? 16 : 3;
        c.in = tu::kInputDtypes[k % 3];
        c.out = tu::kFp8Dtypes[k % 4];
        c.per_head = k % 4 != 3;
        c.k_amax = k % 5 != 1;
        c.v_amax = k % 5 != 2;
        c.inf = k % 3 == 0;
        c.inf_pe = k % 7 == 0;
        c.nan_head = k % 4 == 1;
        c.pad_out = k % 3 == 1 ? 16 : 0;
        c.table = table.c_str();
        c.seed = seed++;
        check_ext(c);
        // per head without amax: the plain instance where a thread's pairs share a head (tile2d,
        // flat with unroll 1), the ext one elsewhere
        c.per_head = true;
        c.k_amax = c.v_amax = false;
        c.scales = k % 2 ? ext::kPow2 : ext::kRandom;
        c.seed = seed++;
        check_ext(c);
      }
  // the general kernel, and x8 units of other dims (lanes = the largest unit count: 8, 12, 4)
  struct D { int64_t dn, dr, dv; } dims[] = {{128, 64, 128}, {64, 32, 64}, {96, 48, 80}, {16, 16, 32}, {5, 3, 7}};
  for (const D& d : dims)
    for (const char* v : {"general", "flat", "tile2d", "persist"}) {
      const bool vec = std::strcmp(v, "general") != 0;
      if (vec && d.dn % 8) continue;
      ++k;
      const std::string table = ext_row(v, 64, 2, 1 + k % 2, 1, 16, 0, 0, vec ? "x8" : "any");
      ext::Case c;
      c.dn = d.dn; c.dr = d.dr; c.dv = d.dv;
      c.s = 3 + k % 5;
      c.h = k % 2 ? 5 : 2;
      c.in = tu::kInputDtypes[k % 3];
      c.nan_head = k % 2 == 0;
      c.inf_pe = k % 3 == 0;
      c.per_head = k % 3 != 2;
      c.table = table.c_str();
      c.seed = seed++;
      check_ext(c);
    }
}

TEST_CASE("tile2d's lean instance: rows with lean=1 run it where the call fits it, with the same bytes") {
  // (the kernel bodies run on the host: the lean instance's bytes against the reference's)
  ext::check_lean_instance({2, 4, 16}, [](const ext::Case& c) { return check_ext(c); });
}

TEST_CASE("tile2d's lean amax instances: amax calls on lean=1 rows (commit=block and commit=lane), the reference's bytes and the host loop's maxima") {
  ext::check_lean_amax({2, 8, 16}, [](const ext::Case& c) { return check_ext(c); });
}

TEST_CASE("lean=1 rows: the shape is checked when the table is parsed") {
  const char* bad[] = {
      "variant=flat threads=256 block=16 lanes=16 split=1",      // not tile2d
      "variant=tile2d threads=128 block=16 lanes=16 split=1",    // a tile in several passes
      "variant=tile2d threads=256 block=16 lanes=16 split=0",    // k_pe not split
      "variant=tile2d threads=128 block=8 lanes=8",              // 8 lanes
      "variant=tile2d threads=128 block=16 unroll=2 lanes=16 split=1",
      "variant=tile2d threads=256 block=16 lanes=16 split=1 evict_first=1",
  };
  for (const char* b : bad) {
    const std::string t = std::string("arch=0-100000 s=1-* sxh=1-* dims=x8 ") + b + " lean=1\n" +
                          "arch=0-100000 s=1-* sxh=1-* dims=any variant=general threads=256\n";
    CAPTURE(b);
    CHECK(mlakv_dispatch_table_set(MLAKV_BACKEND_HIP, t.c_str()) == MLAKV_ERR_TABLE_PARSE);
    CHECK(std::string(mlakv_last_error()).find("lean=1 needs") != std::string::npos);
  }
  const std::string ok = "arch=0-100000 s=1-* sxh=1-* dims=x8 variant=tile2d threads=512 block=32 lanes=16 split=1 lean=1\n"
                         "arch=0-100000 s=1-* sxh=1-* dims=any variant=general threads=256\n";
  REQUIRE(mlakv_dispatch_table_set(MLAKV_BACKEND_HIP, ok.c_str()) == MLAKV_OK);
  size_t n = 0;
  mlakv_dispatch_table_get(MLAKV_BACKEND_HIP, nullptr, 0, &n);  // (MLAKV_ERR_BUFFER_TOO_SMALL: the size)
  std::string text(n, '\0');
  REQUIRE(mlakv_dispatch_table_get(MLAKV_BACKEND_HIP, &text[0], n, &n) == MLAKV_OK);
  CHECK(text.find("split=1 evict_first=0 wide=0 lean=1") != std::string::npos);
  CHECK(text.find("order=heads") == std::string::npos);  // order=tokens, the default, is not printed
  // order=heads: lean rows only, and printed back
  const std::string heads = "arch=0-100000 s=1-* sxh=1-* dims=x8 variant=tile2d threads=512 block=32 lanes=16 split=1 "
                            "lean=1 order=heads\narch=0-100000 s=1-* sxh=1-* dims=any variant=general threads=256\n";
  REQUIRE(mlakv_dispatch_table_set(MLAKV_BACKEND_HIP, heads.c_str()) == MLAKV_OK);
  REQUIRE(mlakv_dispatch_table_get(MLAKV_BACKEND_HIP, nullptr, 0, &n) == MLAKV_ERR_BUFFER_TOO_SMALL);
  text.assign(n, '\0');
  REQUIRE(mlakv_dispatch_table_get(MLAKV_BACKEND_HIP, &text[0], n, &n) == MLAKV_OK);
  CHECK(text.find("wide=0 lean=1 order=heads") != std::string::npos);
  for (const char* b : {"variant=tile2d threads=512 block=32 lanes=16 split=1 order=heads",  // not lean
                        "variant=tile2d threads=512 block=32 lanes=16 split=1 lean=1 order=head",
                        "variant=tile2d threads=512 block=32 lanes=16 split=1 lean=1 order=1"}) {
    const std::string t = std::string("arch=0-100000 s=1-* sxh=1-* dims=x8 ") + b + "\n" +
                          "arch=0-100000 s=1-* sxh=1-* dims=any variant=general threads=256\n";
    CAPTURE(b);
    CHECK(mlakv_dispatch_table_set(MLAKV_BACKEND_HIP, t.c_str()) == MLAKV_ERR_TABLE_PARSE);
    const std::string e = mlakv_last_error();
    CHECK((e.find("order=heads needs lean=1") != std::string::npos || e.find("bad value in 'order=") != std::string::npos));
  }
  CHECK(mlakv_dispatch_table_reset(MLAKV_BACKEND_HIP) == MLAKV_OK);
}

TEST_CASE("commit=lane rows: tile2d's lane-commit instance gives the reference's bytes and the host loop's maxima") {
  // (the kernel bodies run on the host: the atomics of every thread against one block's commit)
  ext::check_lane_commit([](const ext::Case& c) { return check_ext(c); });
}

TEST_CASE("commit=lane rows: tile2d with unroll 1 only, checked when the table is parsed, printed back") {
  const std::string tail = "\narch=0-100000 s=1-* sxh=1-* dims=any variant=general threads=256\n";
  const char* bad[] = {
      "variant=flat threads=256 lanes=16 commit=lane",                     // not tile2d
      "variant=persist threads=256 waves=2 lanes=16 commit=lane",          // not tile2d
      "variant=tile2d threads=128 block=8 unroll=2 lanes=16 commit=lane",  // unroll 2
  };
  for (const char* b : bad) {
    const std::string t = std::string("arch=0-100000 s=1-* sxh=1-* dims=x8 ") + b + tail;
    CAPTURE(b);
    CHECK(mlakv_dispatch_table_set(MLAKV_BACKEND_HIP, t.c_str()) == MLAKV_ERR_TABLE_PARSE);
    CHECK(std::string(mlakv_last_error()).find("commit=lane needs variant=tile2d unroll=1") != std::string::npos);
  }
  for (const char* v : {"commit=warp", "commit=1", "commit="}) {
    const std::string t = std::string("arch=0-100000 s=1-* sxh=1-* dims=x8 variant=tile2d threads=32 block=2 ") + v + tail;
    CAPTURE(v);
    CHECK(mlakv_dispatch_table_set(MLAKV_BACKEND_HIP, t.c_str()) == MLAKV_ERR_TABLE_PARSE);
    CHECK(std::string(mlakv_last_error()).find("bad value in 'commit=") != std::string::npos);
  }
  const std::string ok = "arch=0-100000 s=1-* sxh=1-* amax=1 dims=x8 variant=tile2d threads=32 block=2 commit=lane\n"
                         "arch=0-100000 s=1-* sxh=1-* dims=x8 variant=tile2d threads=32 block=2 commit=block" + tail;
  REQUIRE(mlakv_dispatch_table_set(MLAKV_BACKEND_HIP, ok.c_str()) == MLAKV_OK);
  size_t n = 0;
  mlakv_dispatch_table_get(MLAKV_BACKEND_HIP, nullptr, 0, &n);  // (MLAKV_ERR_BUFFER_TOO_SMALL: the size)
  std::string text(n, '\0');
  REQUIRE(mlakv_dispatch_table_get(MLAKV_BACKEND_HIP, &text[0], n, &n) == MLAKV_OK);
  CHECK(text.find("evict_first=0 wide=0 commit=lane\n") != std::string::npos);  // printed, and parsed back below
  CHECK(text.find("commit=block") == std::string::npos);  // the default is not printed
  REQUIRE(mlakv_dispatch_table_set(MLAKV_BACKEND_HIP, text.c_str()) == MLAKV_OK);
  std::string again(n, '\0');
  REQUIRE(mlakv_dispatch_table_get(MLAKV_BACKEND_HIP, &again[0], n, &n) == MLAKV_OK);
  CHECK(again == text);
  CHECK(mlakv_dispatch_table_reset(MLAKV_BACKEND_HIP) == MLAKV_OK);
}

TEST_CASE("per-head scales: equal multipliers give the per-tensor bytes; powers of two, every input type and format") {
  uint64_t seed = 500;
  for (mlakv_dtype in : tu::kInputDtypes)
    for (mlakv_dtype out : tu::kFp8Dtypes)
      for (ext::Scales sc : {ext::kEqual, ext::kPow2, ext::kRandom}) {
        ext::Case c;
        c.s = 9;
        c.h = 4;
        c.in = in;
        c.out = out;
        c.scales = sc;
        c.k_amax = c.v_amax = sc == ext::kRandom;
        c.seed = seed++;
        check_ext(c);  // the built-in table's rows
      }
  // misaligned and padded layouts: the general path or the vector ones, per head
  for (int64_t m : {0, 1, 3}) {
    ext::Case c;
    c.s = 6;
    c.h = 5;
    c.misalign_in = m;
    c.pad_in = 8;
    c.pad_out = 8;
    c.fused_kv = m != 1;
    c.seed = seed++;
    check_ext(c);
  }
}

TEST_CASE("amax accumulates across calls: per tensor and per head, from below and from above") {
  uint64_t seed = 900;
  for (bool per_head : {false, true})
    for (const char* v : {"flat", "tile2d", "persist", "general"}) {
      const std::string table = ext_row(v, 128, 2, 1, 1, 16, 0, 0, std::strcmp(v, "general") ? "x8" : "any");
      ext::Case c;
      c.s = 4;
      c.h = 6;
      c.per_head = per_head;
      c.scales = ext::kEqual;
      c.calls = 3;
      c.inf = false;
      c.table = table.c_str();
      c.seed = seed++;
      check_ext(c);
    }
}

TEST_CASE("amax through a cached plan: pointers that come and go between calls of one geometry") {
  // the same arguments but for the amax pointers: c_api rebinds the cached plan (pointers only), so
  // the kernels' ext body must follow the pointers that are set now
  const int64_t s = 3, h = 2;
  DeviceBuf kv(size_t(s * h * 256 * 2)), pe(size_t(s * 64 * 2)), ko(size_t(s * h * 192)), vo(size_t(s * h * 128)), am(8);
  for (int64_t i = 0; i < s * h * 256; ++i) kv.buf.put(2, i, tu::to_bf16(double(i % 97) - 40.0));
  for (int64_t i = 0; i < s * 64; ++i) pe.buf.put(2, i, tu::to_bf16(double(i % 13) * 0.5));
  mlakv_pack_args a = MLAKV_PACK_ARGS_INIT;
  a.k_nope = tu::tensor3(kv.data(), MLAKV_DTYPE_BF16, s, h, 128, h * 256, 256);
  a.v = tu::tensor3(kv.data() + 256, MLAKV_DTYPE_BF16, s, h, 128, h * 256, 256);
  a.k_pe = tu::tensor2(pe.data(), MLAKV_DTYPE_BF16, s, 64, 64);
  a.k_out = tu::tensor3(ko.data(), MLAKV_DTYPE_E4M3FN, s, h, 192, h * 192, 192);
  a.v_out = tu::tensor3(vo.data(), MLAKV_DTYPE_E4M3FN, s, h, 128, h * 128, 128);
  a.backend = MLAKV_BACKEND_HIP;
  float* amax = reinterpret_cast<float*>(am.data());
  amax[0] = amax[1] = 0.0f;
  REQUIRE(mlakv_pack_fp8(&a) == MLAKV_OK);  // no amax
  CHECK(amax[0] == 0.0f);
  a.k_amax = amax;
  a.v_amax = amax + 1;
  REQUIRE(mlakv_pack_fp8(&a) == MLAKV_OK);
  float want_k = 0, want_v = 0;
  for (int64_t t = 0; t < s; ++t)
    for (int64_t j = 0; j < h; ++j)
      for (int64_t i = 0; i < 128; ++i) {
        want_k = std::max(want_k, std::fabs(tu::widen_bf16(uint16_t(kv.buf.get(2, t * h * 256 + j * 256 + i)))));
        want_v = std::max(want_v, std::fabs(tu::widen_bf16(uint16_t(kv.buf.get(2, t * h * 256 + j * 256 + 128 + i)))));
      }
  for (int64_t i = 0; i < s * 64; ++i) want_k = std::max(want_k, std::fabs(tu::widen_bf16(uint16_t(pe.buf.get(2, i)))));
  CHECK(amax[0] == want_k);
  CHECK(amax[1] == want_v);
  amax[0] = amax[1] = -1.0f;
  a.k_amax = a.v_amax = nullptr;
  REQUIRE(mlakv_pack_fp8(&a) == MLAKV_OK);  // pointers gone again: nothing written
  CHECK(amax[0] == -1.0f);
  CHECK(amax[1] == -1.0f);
  a.v_amax = amax + 1;  // only V
  REQUIRE(mlakv_pack_fp8(&a) == MLAKV_OK);
  CHECK(amax[0] == -1.0f);
  CHECK(amax[1] == want_v);
}

TEST_CASE("a row the ext kernel cannot run: skipped for amax calls, also after a cached plan without amax") {
  // the ext instance (amax) of flat fp16 -> e5m2fnuz, 16 lanes with k_pe split, unroll 1 reports a
  // 256-thread limit on the MI250X; its plain instance runs 1024. A per-tensor call takes the
  // 1024-thread row; the same call with amax (the same geometry: planned anew) takes the next row,
  // as its plan says; a per-head call without amax runs the plain instance (unroll 1: per-head
  // scales there), so the 1024-thread row, and with amax the next row
  mlakv::fake::state().kernel_max_threads.push_back(
      {reinterpret_cast<const void*>(&mlakv::kern::pack_flat<mlakv::InType::FP16, mlakv::Fp8Format::E5M2FNUZ, mlakv::kern::Units::DS16S, 1, true>), 256});
  REQUIRE(mlakv_dispatch_table_set(MLAKV_BACKEND_HIP,
                                   "arch=0-100000 s=1-* sxh=1-* dims=x8 variant=flat threads=1024 lanes=16 split=1  # wide\n"
                                   "arch=0-100000 s=1-* sxh=1-* dims=x8 variant=flat threads=128 lanes=16 split=1  # narrow\n") == MLAKV_OK);
  const int64_t s = 5, h = 3;
  DeviceBuf kv(size_t(s * h * 256 * 2)), pe(size_t(s * 64 * 2)), ko(size_t(s * h * 192)), vo(size_t(s * h * 128)), am(8), sc(size_t(2 * h * 4));
  for (int64_t i = 0; i < s * h * 256; ++i) kv.buf.put(2, i, tu::to_fp16(double(i % 89) - 30.0));
  for (int64_t i = 0; i < s * 64; ++i) pe.buf.put(2, i, tu::to_fp16(double(i % 7)));
  float* scales = reinterpret_cast<float*>(sc.data());
  for (int64_t j = 0; j < 2 * h; ++j) scales[j] = 0.5f;
  mlakv_pack_args a = MLAKV_PACK_ARGS_INIT;
  a.k_nope = tu::tensor3(kv.data(), MLAKV_DTYPE_FP16, s, h, 128, h * 256, 256);
  a.v = tu::tensor3(kv.data() + 256, MLAKV_DTYPE_FP16, s, h, 128, h * 256, 256);
  a.k_pe = tu::tensor2(pe.data(), MLAKV_DTYPE_FP16, s, 64, 64);
  a.k_out = tu::tensor3(ko.data(), MLAKV_DTYPE_E5M2FNUZ, s, h, 192, h * 192, 192);
  a.v_out = tu::tensor3(vo.data(), MLAKV_DTYPE_E5M2FNUZ, s, h, 128, h * 128, 128);
  a.k_scale_inv_ptr = scales;
  a.v_scale_inv_ptr = scales + h;
  a.backend = MLAKV_BACKEND_HIP;
  a.device = kMi250;
  auto& launches = mlakv::fake::state().launches;
  CHECK(tu::plan_text(a).find("# wide") != std::string::npos);
  REQUIRE(mlakv_pack_fp8(&a) == MLAKV_OK);
  CHECK(launches.back().block.x == 1024);
  float* amax = reinterpret_cast<float*>(am.data());
  amax[0] = amax[1] = 0.0f;
  a.k_amax = amax;
  a.v_amax = amax + 1;
  CHECK(tu::plan_text(a).find("# narrow") != std::string::npos);
  REQUIRE(mlakv_pack_fp8(&a) == MLAKV_OK);  // pointers only changed, but an amax now: walked anew
  CHECK(launches.back().block.x == 128);
  CHECK(amax[0] == 58.0f);  // |k_nope| up to 58, |k_pe| up to 6
  CHECK(amax[1] == 58.0f);
  REQUIRE(mlakv_pack_fp8(&a) == MLAKV_OK);  // the same arguments again
  CHECK(launches.back().block.x == 128);
  a.k_amax = a.v_amax = nullptr;
  REQUIRE(mlakv_pack_fp8(&a) == MLAKV_OK);
  CHECK(launches.back().block.x == 1024);
  a.scale_granularity = MLAKV_SCALE_PER_HEAD;  // per head, no amax: the plain instance
  CHECK(tu::plan_text(a).find("# wide") != std::string::npos);
  REQUIRE(mlakv_pack_fp8(&a) == MLAKV_OK);
  CHECK(launches.back().block.x == 1024);
  DeviceBuf amh(size_t(2 * h * 4));  // per head with amax: the ext instance
  a.k_amax = reinterpret_cast<float*>(amh.data());
  a.v_amax = a.k_amax + h;
  for (int64_t j = 0; j < 2 * h; ++j) a.k_amax[j] = 0.0f;
  CHECK(tu::plan_text(a).find("# narrow") != std::string::npos);
  REQUIRE(mlakv_pack_fp8(&a) == MLAKV_OK);
  CHECK(launches.back().block.x == 128);
  REQUIRE(mlakv_dispatch_table_reset(MLAKV_BACKEND_HIP) == MLAKV_OK);
}

int main(int argc, char** argv) {
  install_devices();
  install_environment_tables();
  doctest::Context ctx(argc, argv);
  return ctx.run();
}
