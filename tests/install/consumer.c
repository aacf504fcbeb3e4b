/* A consumer of an installed mlakv: found with find_package(mlakv) or pkg-config (tests/install/
 * check_install.sh builds it both ways). Packs two tokens on the reference backend and checks the
 * bytes. Prints one line; exits non-zero on failure. */
#include <mlakv/mlakv.h>

#include <stdio.h>
#include <string.h>

static mlakv_tensor view3(void* data, mlakv_dtype dt, int64_t n0, int64_t n1, int64_t n2) {
  mlakv_tensor t = MLAKV_TENSOR_INIT;
  t.data = data; t.dtype = dt; t.ndim = 3;
  t.shape[0] = n0; t.shape[1] = n1; t.shape[2] = n2;
  t.strides[0] = n1 * n2; t.strides[1] = n2; t.strides[2] = 1;
  return t;
}

int main(void) {
  enum { S = 2, H = 3, DN = 8, DR = 8, DV = 8 };
  uint16_t k_nope[S * H * DN], k_pe[S * DR], v[S * H * DV];
  uint8_t k_out[S * H * (DN + DR)], v_out[S * H * DV];
  mlakv_pack_args a;
  mlakv_status st;
  int i, bad = 0;

  for (i = 0; i < S * H * DN; ++i) k_nope[i] = 0x3F80; /* bf16 1.0 -> e4m3fn 0x38 (scale 1) */
  for (i = 0; i < S * DR; ++i) k_pe[i] = 0xC47A;       /* bf16 -1000 -> saturates to 0xFE */
  for (i = 0; i < S * H * DV; ++i) v[i] = 0x3F80;      /* 1.0 * 2 -> 0x40 */
  memset(k_out, 0xAA, sizeof k_out);
  memset(v_out, 0xAA, sizeof v_out);
  mlakv_pack_args_init(&a);
  a.k_nope = view3(k_nope, MLAKV_DTYPE_BF16, S, H, DN);
  a.k_pe = view3(k_pe, MLAKV_DTYPE_BF16, S, 1, DR);
  a.v = view3(v, MLAKV_DTYPE_BF16, S, H, DV);
  a.k_out = view3(k_out, MLAKV_DTYPE_E4M3FN, S, H, DN + DR);
  a.v_out = view3(v_out, MLAKV_DTYPE_E4M3FN, S, H, DV);
  a.v_scale_inv = 2.0f;
  a.backend = MLAKV_BACKEND_REFERENCE;
  st = mlakv_pack_fp8(&a);
  if (st != MLAKV_OK) {
    fprintf(stderr, "consumer: %s: %s\n", mlakv_status_string(st), mlakv_last_error());
    return 1;
  }
  for (i = 0; i < S * H * (DN + DR); ++i) bad += k_out[i] != (i % (DN + DR) < DN ? 0x38 : 0xFE);
  for (i = 0; i < S * H * DV; ++i) bad += v_out[i] != 0x40;
  if (mlakv_version() / 10000 != MLAKV_VERSION_MAJOR) ++bad;
  printf("consumer: mlakv %s, %d wrong bytes\n", mlakv_version_string(), bad);
  return bad != 0;
}
