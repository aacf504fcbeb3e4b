/* Prints the layout of the mlakv C ABI as the C compiler sees it: struct sizes and alignments,
 * every field's offset and size, and every constant, one "name value" pair per line.
 * tests/layout.rs compiles and runs this and compares each line with the Rust declarations. */
#include <mlakv/mlakv.h>
#include <stdio.h>

/* alignment of T = offset of t in struct { char c; T t; } */
#define ALIGN_PROBE(T) struct align_##T { char c; T t; };
ALIGN_PROBE(mlakv_tensor)
ALIGN_PROBE(mlakv_pack_args)
ALIGN_PROBE(mlakv_backend_info)
ALIGN_PROBE(mlakv_status)
ALIGN_PROBE(mlakv_dtype)
ALIGN_PROBE(mlakv_backend)
ALIGN_PROBE(mlakv_pdl_mode)
ALIGN_PROBE(mlakv_scale_granularity)
#define SIZE(T)                                                                                \
  printf("size %s %llu\nalign %s %llu\n", #T, (unsigned long long)sizeof(T), #T,              \
         (unsigned long long)offsetof(struct align_##T, t))
#define FIELD(T, f)                                                                            \
  printf("offset %s.%s %llu\nfsize %s.%s %llu\n", #T, #f, (unsigned long long)offsetof(T, f), \
         #T, #f, (unsigned long long)sizeof(((T*)0)->f))
#define CONST(c) printf("const %s %lld\n", #c, (long long)(c))

int main(void) {
  SIZE(mlakv_tensor);
  FIELD(mlakv_tensor, data);
  FIELD(mlakv_tensor, dtype);
  FIELD(mlakv_tensor, ndim);
  FIELD(mlakv_tensor, shape);
  FIELD(mlakv_tensor, strides);

  SIZE(mlakv_pack_args);
  FIELD(mlakv_pack_args, struct_size);
  FIELD(mlakv_pack_args, k_nope);
  FIELD(mlakv_pack_args, k_pe);
  FIELD(mlakv_pack_args, v);
  FIELD(mlakv_pack_args, k_out);
  FIELD(mlakv_pack_args, v_out);
  FIELD(mlakv_pack_args, k_scale_inv);
  FIELD(mlakv_pack_args, v_scale_inv);
  FIELD(mlakv_pack_args, k_scale_inv_ptr);
  FIELD(mlakv_pack_args, v_scale_inv_ptr);
  FIELD(mlakv_pack_args, backend);
  FIELD(mlakv_pack_args, device);
  FIELD(mlakv_pack_args, stream);
  FIELD(mlakv_pack_args, pdl);
  FIELD(mlakv_pack_args, flags);
  FIELD(mlakv_pack_args, scale_granularity);
  FIELD(mlakv_pack_args, reserved);
  FIELD(mlakv_pack_args, k_amax);
  FIELD(mlakv_pack_args, v_amax);

  SIZE(mlakv_backend_info);
  FIELD(mlakv_backend_info, struct_size);
  FIELD(mlakv_backend_info, backend);
  FIELD(mlakv_backend_info, name);
  FIELD(mlakv_backend_info, compiled);
  FIELD(mlakv_backend_info, usable);
  FIELD(mlakv_backend_info, device_count);
  FIELD(mlakv_backend_info, detail);

  SIZE(mlakv_status);
  SIZE(mlakv_dtype);
  SIZE(mlakv_backend);
  SIZE(mlakv_pdl_mode);
  SIZE(mlakv_scale_granularity);

  CONST(MLAKV_VERSION_MAJOR);
  CONST(MLAKV_VERSION_MINOR);
  CONST(MLAKV_VERSION_PATCH);
  CONST(MLAKV_VERSION);
  CONST(MLAKV_OK);
  CONST(MLAKV_ERR_NULL_POINTER);
  CONST(MLAKV_ERR_STRUCT_SIZE);
  CONST(MLAKV_ERR_DTYPE);
  CONST(MLAKV_ERR_RANK);
  CONST(MLAKV_ERR_SHAPE);
  CONST(MLAKV_ERR_STRIDE);
  CONST(MLAKV_ERR_ALIGNMENT);
  CONST(MLAKV_ERR_OVERLAP);
  CONST(MLAKV_ERR_SIZE_OVERFLOW);
  CONST(MLAKV_ERR_UNSUPPORTED_DIMS);
  CONST(MLAKV_ERR_INVALID_ARGUMENT);
  CONST(MLAKV_ERR_NO_SUCH_BACKEND);
  CONST(MLAKV_ERR_BACKEND_UNAVAILABLE);
  CONST(MLAKV_ERR_DEVICE);
  CONST(MLAKV_ERR_LAUNCH);
  CONST(MLAKV_ERR_BUFFER_TOO_SMALL);
  CONST(MLAKV_ERR_TABLE_PARSE);
  CONST(MLAKV_ERR_MEMORY_SPACE);
  CONST(MLAKV_ERR_INTERNAL);
  CONST(MLAKV_ERR_NO_TABLE_ROW);
  CONST(MLAKV_ERR_TABLE_DEVICE);
  CONST(MLAKV_ERR_OVERLAP_UNDECIDED);
  CONST(MLAKV_DTYPE_INVALID);
  CONST(MLAKV_DTYPE_BF16);
  CONST(MLAKV_DTYPE_FP16);
  CONST(MLAKV_DTYPE_FP32);
  CONST(MLAKV_DTYPE_E4M3FN);
  CONST(MLAKV_DTYPE_E5M2);
  CONST(MLAKV_DTYPE_E4M3FNUZ);
  CONST(MLAKV_DTYPE_E5M2FNUZ);
  CONST(MLAKV_BACKEND_AUTO);
  CONST(MLAKV_BACKEND_REFERENCE);
  CONST(MLAKV_BACKEND_CUDA);
  CONST(MLAKV_BACKEND_HIP);
  CONST(MLAKV_PDL_AUTO);
  CONST(MLAKV_PDL_ON);
  CONST(MLAKV_PDL_OFF);
  CONST(MLAKV_FLAG_TRUST_POINTERS);
  CONST(MLAKV_FLAGS_KNOWN);
  CONST(MLAKV_SCALE_PER_TENSOR);
  CONST(MLAKV_SCALE_PER_HEAD);
  CONST(MLAKV_PACK_ARGS_SIZE_0_1);
  CONST(MLAKV_MAX_RANK);
  return 0;
}
