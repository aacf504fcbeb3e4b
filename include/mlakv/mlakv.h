/*
 * mlakv: fused MLA "concat k_nope with broadcast k_pe, then FP8-quantize K and V".
 *
 * The whole public C ABI. C99, no C++ types. Stability rules:
 *   - status codes and dtype / backend / mode codes are never renumbered; new ones are appended;
 *   - every argument struct starts with `struct_size`; new fields are only ever appended;
 *     a caller built against an older header passes a smaller struct_size and gets the
 *     defaults for the fields it does not know; a caller built against a newer header may
 *     pass a larger struct_size as long as every byte this library does not know is zero.
 *   - initialise argument structs with the *_INIT macros or the *_init functions.
 */
#ifndef MLAKV_MLAKV_H
#define MLAKV_MLAKV_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32) && !defined(MLAKV_STATIC)
#  if defined(MLAKV_BUILDING_LIBRARY)
#    define MLAKV_API __declspec(dllexport)
#  else
#    define MLAKV_API __declspec(dllimport)
#  endif
#elif defined(__GNUC__) || defined(__clang__)
#  define MLAKV_API __attribute__((visibility("default")))
#else
#  define MLAKV_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define MLAKV_VERSION_MAJOR 0
#define MLAKV_VERSION_MINOR 2
#define MLAKV_VERSION_PATCH 0
/* MAJOR*10000 + MINOR*100 + PATCH, as returned by mlakv_version(). */
#define MLAKV_VERSION (MLAKV_VERSION_MAJOR * 10000 + MLAKV_VERSION_MINOR * 100 + MLAKV_VERSION_PATCH)

/* ---- status codes (never renumbered) --------------------------------------------------- */
typedef int32_t mlakv_status;
#define MLAKV_OK                       0
#define MLAKV_ERR_NULL_POINTER         1  /* a required pointer is NULL                          */
#define MLAKV_ERR_STRUCT_SIZE          2  /* struct_size too small, or unknown trailing bytes set */
#define MLAKV_ERR_DTYPE                3  /* unsupported or mismatched dtype                      */
#define MLAKV_ERR_RANK                 4  /* a tensor has the wrong number of dimensions          */
#define MLAKV_ERR_SHAPE                5  /* shapes disagree with each other                      */
#define MLAKV_ERR_STRIDE               6  /* negative stride, inner stride != 1, two rows of an output share a byte */
#define MLAKV_ERR_ALIGNMENT            7  /* a pointer is not aligned to its element size         */
#define MLAKV_ERR_OVERLAP              8  /* an output shares a byte with an input, a scale or the other output */
#define MLAKV_ERR_SIZE_OVERFLOW        9  /* a size or offset does not fit in 64 bits / address space */
#define MLAKV_ERR_UNSUPPORTED_DIMS    10  /* a head dimension is zero or too large                */
#define MLAKV_ERR_INVALID_ARGUMENT    11  /* an enum value or flag is out of range                */
#define MLAKV_ERR_NO_SUCH_BACKEND     12  /* the backend code names no backend of this library    */
#define MLAKV_ERR_BACKEND_UNAVAILABLE 13  /* the backend exists but was not built or cannot run here */
#define MLAKV_ERR_DEVICE              14  /* bad device ordinal or device/runtime failure         */
#define MLAKV_ERR_LAUNCH              15  /* the kernel launch failed                             */
#define MLAKV_ERR_BUFFER_TOO_SMALL    16  /* a text buffer is too small; *needed says how large   */
#define MLAKV_ERR_TABLE_PARSE         17  /* a dispatch table text does not parse                 */
#define MLAKV_ERR_MEMORY_SPACE        18  /* a pointer is not accessible from the chosen backend  */
#define MLAKV_ERR_INTERNAL            19  /* a bug in mlakv; please report it                     */
#define MLAKV_ERR_NO_TABLE_ROW        20  /* no row of the backend's dispatch table can run the call */
#define MLAKV_ERR_TABLE_DEVICE        21  /* a table file was measured on a device this backend does not have */
#define MLAKV_ERR_OVERLAP_UNDECIDED   22  /* an output and another operand interleave in a way mlakv cannot
                                             decide (more than two large, unrelated strides): not proven
                                             disjoint, so refused; no overlap was found */

/* ---- data types ------------------------------------------------------------------------ */
typedef int32_t mlakv_dtype;
#define MLAKV_DTYPE_INVALID   0
#define MLAKV_DTYPE_BF16      1
#define MLAKV_DTYPE_FP16      2
#define MLAKV_DTYPE_FP32      3
#define MLAKV_DTYPE_E4M3FN    4  /* OCP e4m3fn: max 448, NaN 0x7F, -0 = 0x80        */
#define MLAKV_DTYPE_E5M2      5  /* OCP e5m2:   max 57344, NaN 0x7F, -0 = 0x80      */
#define MLAKV_DTYPE_E4M3FNUZ  6  /* AMD gfx942: max 240, NaN 0x80, no negative zero  */
#define MLAKV_DTYPE_E5M2FNUZ  7  /* AMD gfx942: max 57344, NaN 0x80, no negative zero */

/* ---- backends ---------------------------------------------------------------------------- */
typedef int32_t mlakv_backend;
#define MLAKV_BACKEND_AUTO      0  /* the first usable backend that can reach the memory */
#define MLAKV_BACKEND_REFERENCE 1  /* Kokkos on the host: the oracle and the CPU fallback */
#define MLAKV_BACKEND_CUDA      2
#define MLAKV_BACKEND_HIP       3

/* ---- programmatic dependent launch (CUDA sm_90+) -------------------------------------------- */
typedef int32_t mlakv_pdl_mode;
#define MLAKV_PDL_AUTO 0  /* on where the device supports it */
#define MLAKV_PDL_ON   1  /* on where the device supports it; ignored elsewhere */
#define MLAKV_PDL_OFF  2

/* ---- flags (mlakv_pack_args.flags) -------------------------------------------------------- */
/* Skip the GPU backends' check that every pointer is device-accessible (saves a few hundred
 * ns of host time per call; a host pointer then faults on the device instead of failing here).
 * With MLAKV_BACKEND_AUTO a call is still routed by where its memory lives, except one that
 * differs from this thread's previous successful call only in pointers, scales or stream: it
 * goes to the same backend unchecked. */
#define MLAKV_FLAG_TRUST_POINTERS 0x1u
#define MLAKV_FLAGS_KNOWN         0x1u

/* ---- scale granularity (mlakv_pack_args.scale_granularity, since 0.2) ---------------------- */
typedef int32_t mlakv_scale_granularity;
#define MLAKV_SCALE_PER_TENSOR 0  /* one multiplier for K and one for V (the default) */
#define MLAKV_SCALE_PER_HEAD   1  /* h multipliers for K and h for V, through k_scale_inv_ptr and
                                     v_scale_inv_ptr; k_amax / v_amax then hold h floats each */

/* ---- tensors --------------------------------------------------------------------------- */
/* mlakv_tensor has no struct_size and is embedded by value: its layout and MLAKV_MAX_RANK are fixed
 * for this major version. */
#define MLAKV_MAX_RANK 4
/* A strided view, with DLPack DLTensor's meaning: `data` is the address of element [0,...,0]
 * (add a DLTensor's byte_offset to it), shape[i] elements along dim i, strides[i] counted in
 * elements (not bytes). Only the first `ndim` entries of shape and strides are read. */
typedef struct mlakv_tensor {
  void* data;
  mlakv_dtype dtype;
  int32_t ndim;
  int64_t shape[MLAKV_MAX_RANK];
  int64_t strides[MLAKV_MAX_RANK];
} mlakv_tensor;

/* ---- the operation -------------------------------------------------------------------- */
/* Inputs (same dtype, bf16 | fp16 | fp32; inner stride 1, other strides any non-negative):
 *   k_nope [s, h, D_nope]; k_pe [s, D_rope] or [s, 1, D_rope] (one rope vector per token);
 *   v [s, h, D_v].
 * Outputs (caller-allocated, same fp8 dtype, inner stride 1):
 *   k_out [s, h, D_nope + D_rope]: [.., :D_nope] = Q(k_nope * ks), [.., D_nope:] = Q(k_pe * ks);
 *   v_out [s, h, D_v] = Q(v * vs).
 * ks / vs are fp32 multipliers (1/scale): k_scale_inv_ptr / v_scale_inv_ptr when non-NULL
 * (memory the backend reads: device memory for GPU backends, read when the kernel runs, so a
 * captured CUDA graph sees later values), otherwise the host floats k_scale_inv / v_scale_inv.
 * Q is: widen to fp32 exactly, one fp32 round-to-nearest-even multiply, then round to nearest
 * even into the fp8 format with gradual underflow, saturating to +-max (inf included),
 * NaN -> the format's NaN. Every backend produces identical bytes.
 * Per-head scales (scale_granularity = MLAKV_SCALE_PER_HEAD): k_scale_inv_ptr and v_scale_inv_ptr
 * (required) each point to h fp32 multipliers; head j of k_out (its k_nope part and its copy of
 * k_pe) uses k_scale_inv_ptr[j], head j of v_out uses v_scale_inv_ptr[j].
 * Amax (k_amax / v_amax non-NULL; memory the backend writes, like the outputs): the absolute
 * maximum of the inputs, widened to fp32, before scaling, accumulated across calls:
 *   per tensor: k_amax[0] over all of k_nope and k_pe, v_amax[0] over all of v;
 *   per head:   k_amax[j] over head j of k_nope and all of k_pe, v_amax[j] over head j of v.
 * NaN inputs are ignored, an infinity counts. With m the call's maximum (+0 if every element is
 * NaN), the stored value a becomes max(a, m) compared as int32 bit patterns: for a >= +0 (zero the
 * buffers once before calibrating) that is the float maximum, exact and independent of the order
 * in which a GPU combines its threads. An empty call (s = 0 or h = 0) reads and writes nothing. */
typedef struct mlakv_pack_args {
  size_t struct_size;               /* = sizeof(mlakv_pack_args) */
  mlakv_tensor k_nope;
  mlakv_tensor k_pe;
  mlakv_tensor v;
  mlakv_tensor k_out;
  mlakv_tensor v_out;
  float k_scale_inv;                /* default 1 */
  float v_scale_inv;                /* default 1 */
  const float* k_scale_inv_ptr;     /* default NULL: use k_scale_inv */
  const float* v_scale_inv_ptr;     /* default NULL: use v_scale_inv */
  mlakv_backend backend;            /* default MLAKV_BACKEND_AUTO */
  int32_t device;                   /* device ordinal for GPU backends; default 0 */
  void* stream;                     /* cudaStream_t / hipStream_t; NULL = legacy default stream */
  mlakv_pdl_mode pdl;               /* default MLAKV_PDL_AUTO */
  uint32_t flags;                   /* MLAKV_FLAG_*; default 0 */
  /* ---- since 0.2 (a 0.1 caller's struct_size, 456, ends here: it gets the defaults below) */
  mlakv_scale_granularity scale_granularity;  /* default MLAKV_SCALE_PER_TENSOR */
  uint32_t reserved;                /* must be 0 */
  float* k_amax;                    /* default NULL: no amax of K */
  float* v_amax;                    /* default NULL: no amax of V */
} mlakv_pack_args;
/* The struct_size of a caller built against mlakv 0.1 (the smallest this library accepts). */
#define MLAKV_PACK_ARGS_SIZE_0_1 456

#define MLAKV_TENSOR_INIT {NULL, MLAKV_DTYPE_INVALID, 0, {0, 0, 0, 0}, {0, 0, 0, 0}}
#define MLAKV_PACK_ARGS_INIT                                                                   \
  {sizeof(mlakv_pack_args), MLAKV_TENSOR_INIT, MLAKV_TENSOR_INIT, MLAKV_TENSOR_INIT,            \
   MLAKV_TENSOR_INIT, MLAKV_TENSOR_INIT, 1.0f, 1.0f, NULL, NULL, MLAKV_BACKEND_AUTO, 0, NULL,   \
   MLAKV_PDL_AUTO, 0u, MLAKV_SCALE_PER_TENSOR, 0u, NULL, NULL}

/* Fills the first struct_size bytes of *args with the defaults above (what MLAKV_PACK_ARGS_INIT
 * gives; bytes past this library's struct are zeroed) and sets args->struct_size = struct_size,
 * for callers that cannot use the macro (FFI): pass the size of the struct you allocated.
 * MLAKV_ERR_STRUCT_SIZE (nothing written) below MLAKV_PACK_ARGS_SIZE_0_1 or above 1 MiB. */
MLAKV_API mlakv_status mlakv_pack_args_init_sized(mlakv_pack_args* args, size_t struct_size);
/* mlakv 0.1's spelling, kept for the binaries built against it: fills the 0.1 layout (456 bytes,
 * struct_size = MLAKV_PACK_ARGS_SIZE_0_1), so it never writes past an older caller's struct. Code
 * compiled against this header calls mlakv_pack_args_init_sized with its own sizeof instead,
 * through this macro. */
MLAKV_API void mlakv_pack_args_init(mlakv_pack_args* args);
#define mlakv_pack_args_init(args) ((void)mlakv_pack_args_init_sized((args), sizeof(mlakv_pack_args)))

/* The operation. Everything is validated before anything is written: on any status other than
 * MLAKV_OK no output byte has been touched (for GPU backends, a status other than MLAKV_OK means
 * nothing was enqueued). s = 0 (or h = 0) is a successful no-op that touches no memory: it checks
 * struct_size, the enums, dtypes, ranks, extents, that the shapes agree and the head dims, and that
 * an explicit backend is compiled in, but no pointer and no stride. GPU backends are asynchronous
 * with respect to the host, like any kernel launch on `stream`. Thread-safe, and callable for the
 * whole life of the process (docs/RELIABILITY.md). */
MLAKV_API mlakv_status mlakv_pack_fp8(const mlakv_pack_args* args);

/* Which backend, kernel variant and launch configuration mlakv_pack_fp8(args) would use, as one
 * line of text, after the same validation. Writes at most buf_size bytes including the NUL;
 * *needed (if non-NULL) receives the size needed including the NUL. buf may be NULL when
 * buf_size is 0. Returns MLAKV_ERR_BUFFER_TOO_SMALL if the text did not fit. */
MLAKV_API mlakv_status mlakv_pack_fp8_plan(const mlakv_pack_args* args, char* buf,
                                           size_t buf_size, size_t* needed);

/* ---- errors, version -------------------------------------------------------------------- */
/* A static string naming the status ("MLAKV_ERR_SHAPE: shapes disagree ..."). Never NULL. */
MLAKV_API const char* mlakv_status_string(mlakv_status status);
/* The message of the last failing call on this thread ("" if none): which argument and why.
 * Valid until the next mlakv call on the same thread. */
MLAKV_API const char* mlakv_last_error(void);
/* MLAKV_VERSION of the library actually linked. */
MLAKV_API int32_t mlakv_version(void);
/* e.g. "0.1.0 (reference, cuda)". */
MLAKV_API const char* mlakv_version_string(void);

/* ---- backends and their dispatch tables ----------------------------------------------------- */
typedef struct mlakv_backend_info {
  size_t struct_size;        /* = sizeof(mlakv_backend_info), set by the caller */
  mlakv_backend backend;     /* MLAKV_BACKEND_* */
  const char* name;          /* "reference", "cuda", "hip" */
  int32_t compiled;          /* 1 if this library was built with it */
  int32_t usable;            /* 1 if it can run here now (runtime and a device present) */
  int32_t device_count;      /* devices it sees (1 for the reference backend) */
  const char* detail;        /* why it is not usable, or what it found ("2 devices: sm_90 ...") */
} mlakv_backend_info;
#define MLAKV_BACKEND_INFO_INIT {sizeof(mlakv_backend_info), 0, NULL, 0, 0, 0, NULL}

/* Number of backends known to this library (compiled or not). */
MLAKV_API int32_t mlakv_backend_count(void);
/* Information on backend number `index` (0 <= index < mlakv_backend_count()), in priority order:
 * AUTO picks the first usable one that can reach the memory. Strings are static. */
MLAKV_API mlakv_status mlakv_backend_get_info(int32_t index, mlakv_backend_info* info);

/* The backend's hybrid dispatch table as text: one row per line, tried top to bottom, the first
 * row whose conditions hold (arch, s band, s*h band, dims/alignment requirement) picks the kernel
 * variant and launch configuration. Same buffer convention as mlakv_pack_fp8_plan. */
MLAKV_API mlakv_status mlakv_dispatch_table_get(mlakv_backend backend, char* buf,
                                                size_t buf_size, size_t* needed);
/* Replaces the backend's table (for every arch the text covers; all of it) with rows parsed from
 * text in the format mlakv_dispatch_table_get prints. On a parse error the old table stays and
 * mlakv_last_error() names the line. Thread-safe with respect to concurrent mlakv_pack_fp8. */
MLAKV_API mlakv_status mlakv_dispatch_table_set(mlakv_backend backend, const char* text);
/* Restores the built-in table (and forgets every device's loaded table file). */
MLAKV_API mlakv_status mlakv_dispatch_table_reset(mlakv_backend backend);

/* GPU backends: per-device tables. Loads a table file written by mlakv-tune (its header names the
 * device it was measured on: backend, arch, SM/CU count, L2 size, name) and applies it to every
 * device of this process that matches; rows are tried in the file first, then the backend's table.
 * A malformed or hostile file is MLAKV_ERR_TABLE_PARSE and a file for another device
 * MLAKV_ERR_TABLE_DEVICE; either way nothing changes. Without a call, each device looks once, when
 * first used, for the file MLAKV_TABLE names, then for its own file in MLAKV_TABLE_DIR (default
 * $XDG_CACHE_HOME/mlakv, else $HOME/.cache/mlakv), where `mlakv-tune --install` puts it; a file
 * that does not apply is ignored for it, and the plan text says why. mlakv_dispatch_table_set and
 * _reset forget loaded tables. Plans name the table they use (table=built-in, set, or the file). */
MLAKV_API mlakv_status mlakv_dispatch_table_load(mlakv_backend backend, const char* path);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* MLAKV_MLAKV_H */
