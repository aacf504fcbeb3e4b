/* Prints the layout of the public structs of include/mlakv/mlakv.h, one line per struct and per
 * field, for tests/abi/check_abi.sh (which builds it with -std=c99 -Wall -Wextra -pedantic -Werror).
 *
 *   model LP64
 *   struct <name> size <sizeof> align <alignment> padding <bytes no field covers>
 *   field <struct> <field> offset <offsetof> size <sizeof> type <type>
 *   unlisted <struct> offset <o> size <n>     (only when the struct has bytes past its last listed field)
 *
 * Every field is listed here by hand, in declaration order. The FIELD macro also checks the
 * field's type at compile time (comparing pointers to distinct types is a constraint violation,
 * an error under -Werror), so a field whose type changes breaks this build with a message naming
 * it. A field appended to the header but not listed here shows as an "unlisted" line and a
 * larger size; check_abi.sh refuses to bless that until the field is listed below. The
 * signatures of the functions are checked the same way (check_signatures). */
#include <mlakv/mlakv.h>

#include <stdio.h>
#include <stdlib.h>

/* C99 has no alignof: the offset of a member placed after a char is its alignment. */
struct align_mlakv_tensor { char c; mlakv_tensor t; };
struct align_mlakv_pack_args { char c; mlakv_pack_args t; };
struct align_mlakv_backend_info { char c; mlakv_backend_info t; };
#define ALIGNOF(T) offsetof(struct align_##T, t)

typedef int64_t abi_dims[MLAKV_MAX_RANK];

#define FIELD(S, f, T, name)                                                               \
  do {                                                                                     \
    (void)sizeof(&((S*)0)->f == (T*)0); /* "distinct pointer types" if f is not a T */   \
    field(#S, #f, offsetof(S, f), sizeof(((S*)0)->f), name);                               \
  } while (0)

#define MAX_FIELDS 64
static const char* cur_struct;
static size_t cur_size, cur_align;
static size_t n_fields, f_offset[MAX_FIELDS], f_size[MAX_FIELDS];
static char lines[MAX_FIELDS][160]; /* the field lines of the current struct, printed after its struct line */
static int failures;

static void begin(const char* s, size_t size, size_t align) {
  cur_struct = s;
  cur_size = size;
  cur_align = align;
  n_fields = 0;
}

static void field(const char* s, const char* f, size_t offset, size_t size, const char* type) {
  if (n_fields == MAX_FIELDS) {
    fprintf(stderr, "abi_layout: more than %d fields in %s\n", MAX_FIELDS, s);
    exit(1);
  }
  f_offset[n_fields] = offset;
  f_size[n_fields] = size;
  sprintf(lines[n_fields++], "field    %-20s %-16s offset %4lu size %3lu type %s\n", s, f, (unsigned long)offset,
          (unsigned long)size, type);
}

/* Prints the struct line (with the bytes no field covers, known once every field was seen), then
 * the fields in the order they are listed (the header's declaration order when this list was
 * written: a reordered header shows as changed offsets). */
static void end(void) {
  size_t order[MAX_FIELDS], i, j, covered = 0, padding = 0, rounded;
  int unlisted;
  for (i = 0; i < n_fields; ++i) { /* by offset */
    for (j = i; j > 0 && f_offset[order[j - 1]] > f_offset[i]; --j) order[j] = order[j - 1];
    order[j] = i;
  }
  for (i = 0; i < n_fields; ++i) {
    const size_t o = f_offset[order[i]], z = f_size[order[i]];
    if (o < covered) {
      fprintf(stderr, "abi_layout: two listed fields of %s overlap at offset %lu (listed twice?)\n", cur_struct,
              (unsigned long)o);
      ++failures;
    } else {
      padding += o - covered;
    }
    if (o + z > covered) covered = o + z;
  }
  rounded = (covered + cur_align - 1) / cur_align * cur_align;
  unlisted = rounded < cur_size;
  if (!unlisted) padding += cur_size - covered;
  printf("struct   %-20s size %4lu align %lu padding %lu\n", cur_struct, (unsigned long)cur_size,
         (unsigned long)cur_align, (unsigned long)padding);
  for (i = 0; i < n_fields; ++i) fputs(lines[i], stdout);
  /* bytes past the last listed field: a field was appended to the header and is not listed here */
  if (unlisted)
    printf("unlisted %-20s offset %4lu size %3lu (list the new fields in tests/abi/abi_layout.c)\n", cur_struct,
           (unsigned long)covered, (unsigned long)(cur_size - covered));
}

static void describe_tensor(void) {
  begin("mlakv_tensor", sizeof(mlakv_tensor), ALIGNOF(mlakv_tensor));
  FIELD(mlakv_tensor, data, void*, "void*");
  FIELD(mlakv_tensor, dtype, mlakv_dtype, "mlakv_dtype");
  FIELD(mlakv_tensor, ndim, int32_t, "int32_t");
  FIELD(mlakv_tensor, shape, abi_dims, "int64_t[MLAKV_MAX_RANK]");
  FIELD(mlakv_tensor, strides, abi_dims, "int64_t[MLAKV_MAX_RANK]");
  end();
}

static void describe_pack_args(void) {
  begin("mlakv_pack_args", sizeof(mlakv_pack_args), ALIGNOF(mlakv_pack_args));
  FIELD(mlakv_pack_args, struct_size, size_t, "size_t");
  FIELD(mlakv_pack_args, k_nope, mlakv_tensor, "mlakv_tensor");
  FIELD(mlakv_pack_args, k_pe, mlakv_tensor, "mlakv_tensor");
  FIELD(mlakv_pack_args, v, mlakv_tensor, "mlakv_tensor");
  FIELD(mlakv_pack_args, k_out, mlakv_tensor, "mlakv_tensor");
  FIELD(mlakv_pack_args, v_out, mlakv_tensor, "mlakv_tensor");
  FIELD(mlakv_pack_args, k_scale_inv, float, "float");
  FIELD(mlakv_pack_args, v_scale_inv, float, "float");
  FIELD(mlakv_pack_args, k_scale_inv_ptr, const float*, "const float*");
  FIELD(mlakv_pack_args, v_scale_inv_ptr, const float*, "const float*");
  FIELD(mlakv_pack_args, backend, mlakv_backend, "mlakv_backend");
  FIELD(mlakv_pack_args, device, int32_t, "int32_t");
  FIELD(mlakv_pack_args, stream, void*, "void*");
  FIELD(mlakv_pack_args, pdl, mlakv_pdl_mode, "mlakv_pdl_mode");
  FIELD(mlakv_pack_args, flags, uint32_t, "uint32_t");
  FIELD(mlakv_pack_args, scale_granularity, mlakv_scale_granularity, "mlakv_scale_granularity");
  FIELD(mlakv_pack_args, reserved, uint32_t, "uint32_t");
  FIELD(mlakv_pack_args, k_amax, float*, "float*");
  FIELD(mlakv_pack_args, v_amax, float*, "float*");
  end();
}

static void describe_backend_info(void) {
  begin("mlakv_backend_info", sizeof(mlakv_backend_info), ALIGNOF(mlakv_backend_info));
  FIELD(mlakv_backend_info, struct_size, size_t, "size_t");
  FIELD(mlakv_backend_info, backend, mlakv_backend, "mlakv_backend");
  FIELD(mlakv_backend_info, name, const char*, "const char*");
  FIELD(mlakv_backend_info, compiled, int32_t, "int32_t");
  FIELD(mlakv_backend_info, usable, int32_t, "int32_t");
  FIELD(mlakv_backend_info, device_count, int32_t, "int32_t");
  FIELD(mlakv_backend_info, detail, const char*, "const char*");
  end();
}

/* The signature of every function of the C ABI, checked at compile time like the field types
 * above (a changed parameter or return type is "distinct pointer types"): mlakv.abi records the
 * names and version nodes, this keeps their types from changing under the same names. */
#define SIGNATURE(fn, type) (void)sizeof(&fn == (type)0)
static void check_signatures(void) {
  SIGNATURE(mlakv_pack_args_init, void (*)(mlakv_pack_args*));
  SIGNATURE(mlakv_pack_args_init_sized, mlakv_status (*)(mlakv_pack_args*, size_t));
  SIGNATURE(mlakv_pack_fp8, mlakv_status (*)(const mlakv_pack_args*));
  SIGNATURE(mlakv_pack_fp8_plan, mlakv_status (*)(const mlakv_pack_args*, char*, size_t, size_t*));
  SIGNATURE(mlakv_status_string, const char* (*)(mlakv_status));
  SIGNATURE(mlakv_last_error, const char* (*)(void));
  SIGNATURE(mlakv_version, int32_t (*)(void));
  SIGNATURE(mlakv_version_string, const char* (*)(void));
  SIGNATURE(mlakv_backend_count, int32_t (*)(void));
  SIGNATURE(mlakv_backend_get_info, mlakv_status (*)(int32_t, mlakv_backend_info*));
  SIGNATURE(mlakv_dispatch_table_get, mlakv_status (*)(mlakv_backend, char*, size_t, size_t*));
  SIGNATURE(mlakv_dispatch_table_set, mlakv_status (*)(mlakv_backend, const char*));
  SIGNATURE(mlakv_dispatch_table_reset, mlakv_status (*)(mlakv_backend));
  SIGNATURE(mlakv_dispatch_table_load, mlakv_status (*)(mlakv_backend, const char*));
}

int main(void) {
  /* The data model the layouts below hold for (mlakv.abi describes LP64: Linux x86_64, aarch64). */
  const char* model = sizeof(int) == 4 && sizeof(long) == 8 && sizeof(void*) == 8   ? "LP64"
                      : sizeof(int) == 4 && sizeof(long) == 4 && sizeof(void*) == 4 ? "ILP32"
                      : sizeof(int) == 4 && sizeof(long) == 4 && sizeof(void*) == 8 ? "LLP64"
                                                                                    : "other";
  check_signatures();
  printf("model    %s\n", model);
  /* in the order check_abi.sh sorts them: by struct name */
  describe_backend_info();
  describe_pack_args();
  describe_tensor();
  return failures ? 1 : 0;
}
