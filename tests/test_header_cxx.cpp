// The public header compiled alone as C++ (nothing is included before it; built with
// -Wall -Wextra -Wpedantic -Werror), twice (include guard), plus checks that the C-style
// initialisers and the init function agree.
#include <mlakv/mlakv.h>
#include <mlakv/mlakv.h>

#include <cstring>
#include <type_traits>

static_assert(std::is_standard_layout<mlakv_pack_args>::value, "C layout");
static_assert(std::is_trivially_copyable<mlakv_pack_args>::value, "C layout");
static_assert(std::is_standard_layout<mlakv_backend_info>::value, "C layout");
static_assert(std::is_same<mlakv_status, int32_t>::value, "fixed-width status");
static_assert(offsetof(mlakv_pack_args, struct_size) == 0, "struct_size comes first");
static_assert(offsetof(mlakv_backend_info, struct_size) == 0, "struct_size comes first");
static_assert(MLAKV_MAX_RANK == 4, "ABI");

#include <doctest/doctest.h>

namespace {
bool same_tensor(const mlakv_tensor& x, const mlakv_tensor& y) {
  return x.data == y.data && x.dtype == y.dtype && x.ndim == y.ndim &&
         std::memcmp(x.shape, y.shape, sizeof x.shape) == 0 && std::memcmp(x.strides, y.strides, sizeof x.strides) == 0;
}
}  // namespace

TEST_CASE("header alone as C++: MLAKV_PACK_ARGS_INIT == mlakv_pack_args_init") {
  const mlakv_pack_args m = MLAKV_PACK_ARGS_INIT;
  mlakv_pack_args f;
  std::memset(&f, 0x5A, sizeof f);
  mlakv_pack_args_init(&f);
  CHECK(m.struct_size == sizeof(mlakv_pack_args));
  CHECK(f.struct_size == sizeof(mlakv_pack_args));
  CHECK(same_tensor(m.k_nope, f.k_nope));
  CHECK(same_tensor(m.k_pe, f.k_pe));
  CHECK(same_tensor(m.v, f.v));
  CHECK(same_tensor(m.k_out, f.k_out));
  CHECK(same_tensor(m.v_out, f.v_out));
  CHECK(m.k_nope.dtype == MLAKV_DTYPE_INVALID);
  CHECK(m.k_scale_inv == 1.0f);
  CHECK(m.v_scale_inv == 1.0f);
  CHECK(f.k_scale_inv == 1.0f);
  CHECK(f.v_scale_inv == 1.0f);
  CHECK(f.k_scale_inv_ptr == nullptr);
  CHECK(f.v_scale_inv_ptr == nullptr);
  CHECK(f.backend == MLAKV_BACKEND_AUTO);
  CHECK(f.device == 0);
  CHECK(f.stream == nullptr);
  CHECK(f.pdl == MLAKV_PDL_AUTO);
  CHECK(f.flags == 0u);
  mlakv_pack_args_init(nullptr);  // tolerated
  const mlakv_backend_info bi = MLAKV_BACKEND_INFO_INIT;
  CHECK(bi.struct_size == sizeof(mlakv_backend_info));
}
