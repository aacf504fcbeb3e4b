// mlakv is callable for the whole life of a process: from an atexit handler registered before the
// first mlakv call (it runs after every static and thread_local object mlakv created has been
// through its destructor, had there been one), and from a thread_local destructor of a thread that
// ends after calling mlakv. Each call must succeed and write the right bytes. Prints
// "atexit_call: ok" from the handler; on failure prints why and exits with 1.
#include <mlakv/mlakv.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <unistd.h>

#include "test_util.h"

namespace {

bool g_handler_ran = false;

// Packs a small problem with a fresh table installed first (so that replaced tables exist), and
// checks the bytes against the oracle; returns an empty string or what went wrong.
std::string pack_and_check(const char* where) {
  const int64_t s = 3, h = 2, dn = 8, dr = 8, dv = 8, dk = dn + dr;
  tu::Buf kn(s * h * dn * 2), kp(s * dr * 2), v(s * h * dv * 2), ko(s * h * dk), vo(s * h * dv);
  for (int64_t i = 0; i < s * h * dn; ++i) kn.put(2, i, tu::to_bf16(double(i % 23) - 11.25));
  for (int64_t i = 0; i < s * dr; ++i) kp.put(2, i, tu::to_bf16(double(i % 7) * 3.5));
  for (int64_t i = 0; i < s * h * dv; ++i) v.put(2, i, tu::to_bf16(double(i % 5) * -40.0));
  mlakv_pack_args a = MLAKV_PACK_ARGS_INIT;
  a.k_nope = tu::tensor3(kn.data(), MLAKV_DTYPE_BF16, s, h, dn, h * dn, dn);
  a.k_pe = tu::tensor2(kp.data(), MLAKV_DTYPE_BF16, s, dr, dr);
  a.v = tu::tensor3(v.data(), MLAKV_DTYPE_BF16, s, h, dv, h * dv, dv);
  a.k_out = tu::tensor3(ko.data(), MLAKV_DTYPE_E4M3FN, s, h, dk, h * dk, dk);
  a.v_out = tu::tensor3(vo.data(), MLAKV_DTYPE_E4M3FN, s, h, dv, h * dv, dv);
  a.backend = MLAKV_BACKEND_REFERENCE;
  const std::string w = std::string(where) + ": ";
  if (mlakv_dispatch_table_set(MLAKV_BACKEND_REFERENCE, tu::force_variant_table("strided")) != MLAKV_OK)
    return w + "mlakv_dispatch_table_set failed: " + mlakv_last_error();
  for (int rep = 0; rep < 2; ++rep) {  // the second call takes the plan cache
    mlakv_status st = mlakv_pack_fp8(&a);
    if (st != MLAKV_OK) return w + "mlakv_pack_fp8: " + mlakv_status_string(st) + " (" + mlakv_last_error() + ")";
  }
  const tu::Fp8Oracle o(MLAKV_DTYPE_E4M3FN);
  for (int64_t t = 0; t < s; ++t)
    for (int64_t hh = 0; hh < h; ++hh) {
      for (int64_t i = 0; i < dk; ++i) {
        const uint32_t raw = i < dn ? kn.get(2, (t * h + hh) * dn + i) : kp.get(2, t * dr + i - dn);
        if (ko.data()[(t * h + hh) * dk + i] != o.encode(tu::widen_bf16(uint16_t(raw)))) return w + "wrong k_out byte";
      }
      for (int64_t i = 0; i < dv; ++i)
        if (vo.data()[(t * h + hh) * dv + i] != o.encode(tu::widen_bf16(uint16_t(v.get(2, (t * h + hh) * dv + i)))))
          return w + "wrong v_out byte";
    }
  char buf[4096];
  mlakv_status st = mlakv_dispatch_table_get(MLAKV_BACKEND_REFERENCE, buf, sizeof buf, nullptr);
  if (st != MLAKV_OK) return w + "mlakv_dispatch_table_get: " + mlakv_status_string(st) + " (" + mlakv_last_error() + ")";
  if (mlakv_dispatch_table_reset(MLAKV_BACKEND_REFERENCE) != MLAKV_OK) return w + "mlakv_dispatch_table_reset failed";
  st = mlakv_pack_fp8_plan(&a, buf, sizeof buf, nullptr);
  if (st != MLAKV_OK) return w + "mlakv_pack_fp8_plan: " + mlakv_status_string(st);
  a.k_nope.ndim = 7;  // a failing call sets this thread's last error
  if (mlakv_pack_fp8(&a) != MLAKV_ERR_RANK || std::string(mlakv_last_error()).find("ndim") == std::string::npos)
    return w + "a bad call did not report MLAKV_ERR_RANK with a message";
  return "";
}

void fail(const std::string& why) {
  std::fprintf(stderr, "atexit_call: FAILED: %s\n", why.c_str());
  std::fflush(stderr);
  _exit(1);  // (exit() must not be called again from an atexit handler)
}

void at_exit() {
  g_handler_ran = true;
  const std::string why = pack_and_check("atexit handler");
  if (!why.empty()) fail(why);
  std::printf("atexit_call: ok (calls from a thread_local destructor and from an atexit handler)\n");
  std::fflush(stdout);
}

// A thread_local whose destructor calls mlakv after the thread's own mlakv state may be gone.
struct LateCaller {
  std::string* result;
  ~LateCaller() { *result = pack_and_check("thread_local destructor"); }
};

}  // namespace

int main() {
  std::atexit(at_exit);  // before mlakv's first call: runs after everything mlakv set up at first use
  std::string r = pack_and_check("main");
  if (!r.empty()) fail(r);
  std::string late = "not run";
  std::thread t([&] {
    thread_local LateCaller caller{&late};
    std::string x = pack_and_check("thread");  // the thread's mlakv state exists before caller's destructor runs
    if (!x.empty()) late = x;
    (void)caller.result;
  });
  t.join();
  if (!late.empty()) fail(late);
  return 0;
}
