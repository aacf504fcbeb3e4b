/* The smallest complete C caller: pack a DeepSeek-shaped bf16 K/V on the host (reference backend),
 * print the plan and a few output bytes. Build: cc -std=c99 pack.c $(pkg-config --cflags --libs mlakv) */
#include <mlakv/mlakv.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int main(void) {
  enum { s = 64, h = 16 };                              /* DeepSeek V3 dims: 128 / 64 / 128 */
  uint16_t* kv = calloc((size_t)s * h * 256, 2);        /* bf16 [s, h, 256] = k_nope | v */
  uint16_t* k_pe = calloc((size_t)s * 64, 2);           /* bf16 [s, 64], one vector a token */
  uint8_t* k_out = malloc((size_t)s * h * 192);         /* e4m3fn [s, h, 192] */
  uint8_t* v_out = malloc((size_t)s * h * 128);         /* e4m3fn [s, h, 128] */
  mlakv_pack_args a = MLAKV_PACK_ARGS_INIT;
  mlakv_status st;
  char plan[512];
  size_t i;
  if (!kv || !k_pe || !k_out || !v_out) return 1;
  for (i = 0; i < (size_t)s * h * 256; ++i) kv[i] = 0x3F80; /* 1.0 */
  for (i = 0; i < (size_t)s * 64; ++i) k_pe[i] = 0xC47A;    /* -1000: saturates */
  a.k_nope = (mlakv_tensor){kv, MLAKV_DTYPE_BF16, 3, {s, h, 128}, {h * 256, 256, 1}};
  a.v = (mlakv_tensor){kv + 128, MLAKV_DTYPE_BF16, 3, {s, h, 128}, {h * 256, 256, 1}};
  a.k_pe = (mlakv_tensor){k_pe, MLAKV_DTYPE_BF16, 2, {s, 64}, {64, 1}};
  a.k_out = (mlakv_tensor){k_out, MLAKV_DTYPE_E4M3FN, 3, {s, h, 192}, {h * 192, 192, 1}};
  a.v_out = (mlakv_tensor){v_out, MLAKV_DTYPE_E4M3FN, 3, {s, h, 128}, {h * 128, 128, 1}};
  a.k_scale_inv = 1.0f / 0.0375f; /* multipliers: 1 / scale */
  a.v_scale_inv = 1.0f / 0.021f;
  st = mlakv_pack_fp8_plan(&a, plan, sizeof plan, NULL);
  if (st == MLAKV_OK) st = mlakv_pack_fp8(&a);
  if (st != MLAKV_OK) {
    fprintf(stderr, "mlakv: %s: %s\n", mlakv_status_string(st), mlakv_last_error());
    return 1;
  }
  /* 1.0 / 0.0375 = 26.67 -> e4m3fn 0x5D; -1000 / 0.0375 saturates to -448 (0xFE); 1.0 / 0.021 -> 0x64 */
  printf("%s\nk_out[0] = 0x%02X, k_out[128] = 0x%02X, v_out[0] = 0x%02X\n", plan, k_out[0], k_out[128], v_out[0]);
  free(kv); free(k_pe); free(k_out); free(v_out);
  return 0;
}
