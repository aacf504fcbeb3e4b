/* The C ABI from C99 (built with -std=c99 -Wall -Wextra -pedantic -Werror): initialise with the
 * macro and with the function, pack a small problem on the reference backend, check known bytes,
 * check an error path. Prints one line; exits non-zero on failure. */
#include <mlakv/mlakv.h>

#include <stdio.h>
#include <string.h>

static int failures = 0;
#define EXPECT(cond)                                                        \
  do {                                                                      \
    if (!(cond)) {                                                          \
      fprintf(stderr, "c_api_test: %s:%d: FAILED: %s\n", __FILE__, __LINE__, #cond); \
      ++failures;                                                           \
    }                                                                       \
  } while (0)

static mlakv_tensor tensor3(void* data, mlakv_dtype dt, int64_t n0, int64_t n1, int64_t n2) {
  mlakv_tensor t = MLAKV_TENSOR_INIT;
  t.data = data;
  t.dtype = dt;
  t.ndim = 3;
  t.shape[0] = n0;
  t.shape[1] = n1;
  t.shape[2] = n2;
  t.strides[0] = n1 * n2;
  t.strides[1] = n2;
  t.strides[2] = 1;
  return t;
}

/* bf16 bit patterns */
#define BF16_ONE 0x3F80u     /* 1.0 */
#define BF16_M1000 0xC47Au   /* -1000 */
#define BF16_NAN 0x7FC0u
#define BF16_MZERO 0x8000u   /* -0 */
#define BF16_1_0625 0x3F88u  /* 1.0625 */

int main(void) {
  enum { S = 2, H = 2, DN = 4, DR = 2, DV = 4 };
  uint16_t k_nope[S * H * DN], k_pe[S * DR], v[S * H * DV];
  uint8_t k_out[S * H * (DN + DR)], v_out[S * H * DV];
  mlakv_pack_args a = MLAKV_PACK_ARGS_INIT;
  mlakv_pack_args b;
  mlakv_status st;
  int i;
  char plan[512];

  for (i = 0; i < S * H * DN; ++i) k_nope[i] = BF16_ONE;
  for (i = 0; i < S * DR; ++i) k_pe[i] = BF16_M1000;
  for (i = 0; i < S * H * DV; ++i) v[i] = (uint16_t)(i % 3 == 0 ? BF16_NAN : i % 3 == 1 ? BF16_MZERO : BF16_1_0625);
  memset(k_out, 0xA5, sizeof k_out);
  memset(v_out, 0xA5, sizeof v_out);

  mlakv_pack_args_init(&b);
  EXPECT(b.struct_size == sizeof(mlakv_pack_args) && a.struct_size == b.struct_size);
  EXPECT(b.k_scale_inv == 1.0f && b.backend == MLAKV_BACKEND_AUTO && b.k_scale_inv_ptr == NULL);

  a.k_nope = tensor3(k_nope, MLAKV_DTYPE_BF16, S, H, DN);
  a.v = tensor3(v, MLAKV_DTYPE_BF16, S, H, DV);
  a.k_pe = tensor3(k_pe, MLAKV_DTYPE_BF16, S, 1, DR);
  a.k_out = tensor3(k_out, MLAKV_DTYPE_E4M3FN, S, H, DN + DR);
  a.v_out = tensor3(v_out, MLAKV_DTYPE_E4M3FN, S, H, DV);
  a.backend = MLAKV_BACKEND_REFERENCE;

  st = mlakv_pack_fp8(&a);
  if (st != MLAKV_OK) fprintf(stderr, "c_api_test: %s (%s)\n", mlakv_status_string(st), mlakv_last_error());
  EXPECT(st == MLAKV_OK);
  EXPECT(mlakv_last_error()[0] == '\0');
  EXPECT(k_out[0] == 0x38);        /* 1.0 -> e4m3fn 0x38 */
  EXPECT(k_out[DN - 1] == 0x38);
  EXPECT(k_out[DN] == 0xFE);       /* -1000 -> saturates to -448 */
  EXPECT(k_out[sizeof k_out - 1] == 0xFE);
  EXPECT(v_out[0] == 0x7F);        /* NaN */
  EXPECT(v_out[1] == 0x80);        /* -0 */
  EXPECT(v_out[2] == 0x38);        /* 1.0625: tie -> even (1.0) */

  /* the plan names the backend */
  st = mlakv_pack_fp8_plan(&a, plan, sizeof plan, NULL);
  EXPECT(st == MLAKV_OK && strstr(plan, "backend=reference") != NULL);

  /* an error path: mismatched output dtypes, nothing written */
  memset(v_out, 0xA5, sizeof v_out);
  a.v_out.dtype = MLAKV_DTYPE_E5M2;
  st = mlakv_pack_fp8(&a);
  EXPECT(st == MLAKV_ERR_DTYPE);
  EXPECT(mlakv_last_error()[0] != '\0');
  EXPECT(v_out[0] == 0xA5 && v_out[sizeof v_out - 1] == 0xA5);
  EXPECT(mlakv_pack_fp8(NULL) == MLAKV_ERR_NULL_POINTER);
  EXPECT(mlakv_status_string(MLAKV_ERR_DTYPE) != NULL);
  EXPECT(mlakv_version() == MLAKV_VERSION);

  printf("c_api_test: mlakv %s, %s\n", mlakv_version_string(), failures ? "FAILED" : "ok");
  return failures ? 1 : 0;
}
