// The host application owns Kokkos: it initialises it, mlakv uses it, the application finalises
// it. After that the reference backend must refuse (MLAKV_ERR_BACKEND_UNAVAILABLE, a message that
// says why), write nothing, and say it is not usable; running Kokkos after finalize is undefined.
#include <Kokkos_Core.hpp>
#include <mlakv/mlakv.h>

#include <cstdio>
#include <string>

#include "test_util.h"

int main(int argc, char** argv) {
  Kokkos::initialize(argc, argv);
  const int64_t s = 2, h = 2, d = 8;
  tu::Buf kn(s * h * d * 2, 0, 0), kp(s * d * 2, 0, 0), v(s * h * d * 2, 0, 0), ko(s * h * 2 * d), vo(s * h * d);
  mlakv_pack_args a = MLAKV_PACK_ARGS_INIT;
  a.k_nope = tu::tensor3(kn.data(), MLAKV_DTYPE_BF16, s, h, d, h * d, d);
  a.k_pe = tu::tensor2(kp.data(), MLAKV_DTYPE_BF16, s, d, d);
  a.v = tu::tensor3(v.data(), MLAKV_DTYPE_BF16, s, h, d, h * d, d);
  a.k_out = tu::tensor3(ko.data(), MLAKV_DTYPE_E4M3FN, s, h, 2 * d, h * 2 * d, 2 * d);
  a.v_out = tu::tensor3(vo.data(), MLAKV_DTYPE_E4M3FN, s, h, d, h * d, d);
  int bad = 0;
  if (mlakv_pack_fp8(&a) != MLAKV_OK || ko.data()[0] != 0) {
    std::printf("kokkos_finalized: FAILED: the call before finalize: %s\n", mlakv_last_error());
    bad++;
  }
  Kokkos::finalize();
  for (mlakv_backend b : {MLAKV_BACKEND_REFERENCE, MLAKV_BACKEND_AUTO}) {
    ko.fill(tu::kPoison);
    vo.fill(tu::kPoison);
    a.backend = b;
    const mlakv_status st = mlakv_pack_fp8(&a);
    const std::string why = mlakv_last_error();
    const bool untouched = tu::all_bytes(ko.data(), ko.size(), tu::kPoison) && tu::all_bytes(vo.data(), vo.size(), tu::kPoison);
    // (AUTO in a CPU-only build: no backend can run; with a GPU backend, none can reach host memory)
    const bool ok_status = st == MLAKV_ERR_BACKEND_UNAVAILABLE || (b == MLAKV_BACKEND_AUTO && st == MLAKV_ERR_MEMORY_SPACE);
    if (!ok_status || !untouched || why.find("finalised") == std::string::npos) {
      std::printf("kokkos_finalized: FAILED: backend %d after finalize: %s (%s), outputs %s\n", int(b),
                  mlakv_status_string(st), why.c_str(), untouched ? "untouched" : "WRITTEN");
      bad++;
    }
  }
  mlakv_backend_info info = MLAKV_BACKEND_INFO_INIT;
  for (int i = 0; i < mlakv_backend_count(); ++i)
    if (mlakv_backend_get_info(i, &info) == MLAKV_OK && info.backend == MLAKV_BACKEND_REFERENCE &&
        (info.usable || std::string(info.detail).find("finalised") == std::string::npos)) {
      std::printf("kokkos_finalized: FAILED: backend info says usable=%d (%s)\n", info.usable, info.detail);
      bad++;
    }
  if (bad) return 1;
  std::printf("kokkos_finalized: ok\n");
  return 0;
}
