// The C API from C++: the same header and calls; a small helper builds the strided views and an
// exception carries a failed status. Packs a DeepSeek-shaped bf16 K/V on the host.
#include <mlakv/mlakv.h>

#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <vector>

static mlakv_tensor view(void* data, mlakv_dtype dt, std::initializer_list<int64_t> shape,
                         std::initializer_list<int64_t> strides) {
  mlakv_tensor t = MLAKV_TENSOR_INIT;
  t.data = data;
  t.dtype = dt;
  t.ndim = int32_t(shape.size());
  int i = 0;
  for (int64_t n : shape) t.shape[i++] = n;
  i = 0;
  for (int64_t st : strides) t.strides[i++] = st;
  return t;
}

static void check(mlakv_status st) {
  if (st != MLAKV_OK) throw std::runtime_error(std::string(mlakv_status_string(st)) + ": " + mlakv_last_error());
}

int main() {
  const int64_t s = 64, h = 16;
  std::vector<uint16_t> kv(size_t(s * h * 256), 0x3F80), k_pe(size_t(s * 64), 0xC47A);  // bf16 1.0, -1000
  std::vector<uint8_t> k_out(size_t(s * h * 192)), v_out(size_t(s * h * 128));
  mlakv_pack_args a = MLAKV_PACK_ARGS_INIT;
  a.k_nope = view(kv.data(), MLAKV_DTYPE_BF16, {s, h, 128}, {h * 256, 256, 1});
  a.v = view(kv.data() + 128, MLAKV_DTYPE_BF16, {s, h, 128}, {h * 256, 256, 1});
  a.k_pe = view(k_pe.data(), MLAKV_DTYPE_BF16, {s, 64}, {64, 1});
  a.k_out = view(k_out.data(), MLAKV_DTYPE_E4M3FN, {s, h, 192}, {h * 192, 192, 1});
  a.v_out = view(v_out.data(), MLAKV_DTYPE_E4M3FN, {s, h, 128}, {h * 128, 128, 1});
  a.k_scale_inv = 1.0f / 0.0375f;
  a.v_scale_inv = 1.0f / 0.021f;
  try {
    check(mlakv_pack_fp8(&a));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  std::printf("k_out[0] = 0x%02X, k_out[128] = 0x%02X, v_out[0] = 0x%02X\n", k_out[0], k_out[128], v_out[0]);
  return 0;
}
