/* KV-scale calibration with the fused amax, then per-head scales (reference backend, host memory).
 *   1. zero one amax float per head for K and for V;
 *   2. pack a few calibration batches with unit scales, k_amax / v_amax set: each call folds the
 *      absolute maximum of its inputs into them, in the same pass (no extra launch on a GPU);
 *   3. per head, scale = amax / fp8_max (448 for e4m3fn), multiplier = 1 / scale;
 *   4. pack with MLAKV_SCALE_PER_HEAD: each head's largest value lands on +-448.
 * On a GPU backend the amax and scale arrays are device memory and the same calls apply.
 * Build: cc -std=c99 calibrate.c $(pkg-config --cflags --libs mlakv) -lm */
#include <mlakv/mlakv.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { S = 32, H = 4, DN = 128, DR = 64, DV = 128 };

static uint16_t to_bf16(float x) { /* round to nearest even */
  uint32_t u;
  memcpy(&u, &x, 4);
  return (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

static int check(mlakv_status st) {
  if (st != MLAKV_OK) fprintf(stderr, "mlakv: %s: %s\n", mlakv_status_string(st), mlakv_last_error());
  return st == MLAKV_OK;
}

int main(void) {
  static uint16_t k_nope[S * H * DN], k_pe[S * DR], v[S * H * DV];
  static uint8_t k_out[S * H * (DN + DR)], v_out[S * H * DV];
  float k_amax[H] = {0}, v_amax[H] = {0}; /* 1. zeroed once */
  float k_mult[H], v_mult[H];
  mlakv_pack_args a = MLAKV_PACK_ARGS_INIT;
  int batch, i, j;
  a.k_nope = (mlakv_tensor){k_nope, MLAKV_DTYPE_BF16, 3, {S, H, DN}, {H * DN, DN, 1}};
  a.k_pe = (mlakv_tensor){k_pe, MLAKV_DTYPE_BF16, 2, {S, DR}, {DR, 1}};
  a.v = (mlakv_tensor){v, MLAKV_DTYPE_BF16, 3, {S, H, DV}, {H * DV, DV, 1}};
  a.k_out = (mlakv_tensor){k_out, MLAKV_DTYPE_E4M3FN, 3, {S, H, DN + DR}, {H * (DN + DR), DN + DR, 1}};
  a.v_out = (mlakv_tensor){v_out, MLAKV_DTYPE_E4M3FN, 3, {S, H, DV}, {H * DV, DV, 1}};
  a.backend = MLAKV_BACKEND_REFERENCE;
  a.scale_granularity = MLAKV_SCALE_PER_HEAD;
  a.k_amax = k_amax;
  a.v_amax = v_amax;
  for (j = 0; j < H; ++j) k_mult[j] = v_mult[j] = 1.0f;
  a.k_scale_inv_ptr = k_mult;
  a.v_scale_inv_ptr = v_mult;
  /* 2. calibration batches: head j's values grow with j (and k_pe's stay small) */
  for (batch = 0; batch < 3; ++batch) {
    for (i = 0; i < S * H * DN; ++i) k_nope[i] = to_bf16((float)((i * 7 + batch) % 101 - 50) * (float)(1 + (i / DN) % H));
    for (i = 0; i < S * DR; ++i) k_pe[i] = to_bf16((float)(i % 13) - 6.0f);
    for (i = 0; i < S * H * DV; ++i) v[i] = to_bf16((float)((i * 3 + batch) % 61 - 30) * 0.25f * (float)(1 + (i / DV) % H));
    if (!check(mlakv_pack_fp8(&a))) return 1;
  }
  /* 3. scales from the amax (no amax for the packing pass itself) */
  for (j = 0; j < H; ++j) {
    k_mult[j] = 448.0f / k_amax[j]; /* 1 / (amax / 448) */
    v_mult[j] = 448.0f / v_amax[j];
    printf("head %d: k_amax %g -> k_scale %g, v_amax %g -> v_scale %g\n", j, k_amax[j], k_amax[j] / 448.0f, v_amax[j],
           v_amax[j] / 448.0f);
  }
  a.k_amax = NULL;
  a.v_amax = NULL;
  /* 4. pack with the calibrated per-head scales */
  if (!check(mlakv_pack_fp8(&a))) return 1;
  {
    int full = 1;
    for (j = 0; j < H; ++j) { /* each head's largest magnitude reaches the top code 0x7E (448) or 0xFE (-448) */
      int top = 0;
      for (i = 0; i < S; ++i) {
        int e;
        for (e = 0; e < DN; ++e) top |= (k_out[(i * H + j) * (DN + DR) + e] & 0x7F) == 0x7E;
      }
      full &= top;
    }
    printf("calibrated: every head's K reaches +-448: %s\n", full ? "yes" : "no");
    return full ? 0 : 1;
  }
}
