//! Raw FFI declarations of the mlakv C ABI (`include/mlakv/mlakv.h`, version 0.2).
//!
//! mlakv fuses "concatenate `k_nope [s, h, D_nope]` with the broadcast `k_pe [s, D_rope]`, then
//! FP8-quantize K and V" for MLA chunked prefill into one call, [`mlakv_pack_fp8`]. This crate
//! mirrors the header one to one, by hand (no bindgen): the `#[repr(C)]` structs
//! [`mlakv_tensor`], [`mlakv_pack_args`], [`mlakv_backend_info`], every constant and every
//! function. A test (`tests/layout.rs`) compiles a C program against the installed header and
//! compares every struct size, field offset and constant with these declarations.
//!
//! Use the safe `mlakv` crate unless you need the raw calls. Everything here is `unsafe` to call
//! and follows the header's documentation; in short:
//!
//! * initialise argument structs with [`MLAKV_PACK_ARGS_INIT`] / [`MLAKV_TENSOR_INIT`] /
//!   [`MLAKV_BACKEND_INFO_INIT`] (Rust constants equal to the C macros), or, for
//!   [`mlakv_pack_args`], with [`mlakv_pack_args_init_sized`]`(args, size_of::<mlakv_pack_args>())`
//!   (what the C header's `mlakv_pack_args_init` macro does). The exported function
//!   [`mlakv_pack_args_init`] is mlakv 0.1's entry point: it fills only the 456-byte 0.1 layout
//!   ([`MLAKV_PACK_ARGS_SIZE_0_1`]) and sets `struct_size` to 456, leaving the 0.2 fields of a
//!   0.2 struct untouched;
//! * on any status other than [`MLAKV_OK`] no output byte was written; [`mlakv_last_error`] says
//!   which argument failed and why, for the calling thread, until its next mlakv call;
//! * every function is thread-safe.
//!
//! Linking: the build script finds `libmlakv` through `MLAKV_LIB_DIR` / `MLAKV_INCLUDE_DIR` or
//! `pkg-config` (see the crate's `build.rs`) and exports `DEP_MLAKV_INCLUDE` and
//! `DEP_MLAKV_LIB_DIR` to the build scripts of crates that depend on this one.
#![allow(non_camel_case_types)]
#![warn(missing_docs)]

use std::os::raw::{c_char, c_void};

// ---- version --------------------------------------------------------------------------------

/// Major version of the header these declarations mirror.
pub const MLAKV_VERSION_MAJOR: i32 = 0;
/// Minor version of the header these declarations mirror.
pub const MLAKV_VERSION_MINOR: i32 = 2;
/// Patch version of the header these declarations mirror.
pub const MLAKV_VERSION_PATCH: i32 = 0;
/// `MAJOR * 10000 + MINOR * 100 + PATCH`, the encoding [`mlakv_version`] returns.
pub const MLAKV_VERSION: i32 =
    MLAKV_VERSION_MAJOR * 10000 + MLAKV_VERSION_MINOR * 100 + MLAKV_VERSION_PATCH;

// ---- status codes ---------------------------------------------------------------------------

/// A status code (`int32_t`): [`MLAKV_OK`] or one of the `MLAKV_ERR_*` values. Never renumbered.
pub type mlakv_status = i32;
/// Success.
pub const MLAKV_OK: mlakv_status = 0;
/// A required pointer is NULL.
pub const MLAKV_ERR_NULL_POINTER: mlakv_status = 1;
/// `struct_size` too small, or unknown trailing bytes set.
pub const MLAKV_ERR_STRUCT_SIZE: mlakv_status = 2;
/// Unsupported or mismatched dtype.
pub const MLAKV_ERR_DTYPE: mlakv_status = 3;
/// A tensor has the wrong number of dimensions.
pub const MLAKV_ERR_RANK: mlakv_status = 4;
/// Shapes disagree with each other.
pub const MLAKV_ERR_SHAPE: mlakv_status = 5;
/// Negative stride, inner stride != 1, self-aliasing output.
pub const MLAKV_ERR_STRIDE: mlakv_status = 6;
/// A pointer is not aligned to its element size.
pub const MLAKV_ERR_ALIGNMENT: mlakv_status = 7;
/// An output (`k_out`, `v_out`, an amax array) shares a byte with an input, a scale or another
/// output.
pub const MLAKV_ERR_OVERLAP: mlakv_status = 8;
/// A size or offset does not fit in 64 bits / the address space.
pub const MLAKV_ERR_SIZE_OVERFLOW: mlakv_status = 9;
/// A head dimension is zero or too large.
pub const MLAKV_ERR_UNSUPPORTED_DIMS: mlakv_status = 10;
/// An enum value or flag is out of range.
pub const MLAKV_ERR_INVALID_ARGUMENT: mlakv_status = 11;
/// The backend code names no backend of this library.
pub const MLAKV_ERR_NO_SUCH_BACKEND: mlakv_status = 12;
/// The backend exists but was not built or cannot run here.
pub const MLAKV_ERR_BACKEND_UNAVAILABLE: mlakv_status = 13;
/// Bad device ordinal or device/runtime failure.
pub const MLAKV_ERR_DEVICE: mlakv_status = 14;
/// The kernel launch failed.
pub const MLAKV_ERR_LAUNCH: mlakv_status = 15;
/// A text buffer is too small; `*needed` says how large.
pub const MLAKV_ERR_BUFFER_TOO_SMALL: mlakv_status = 16;
/// A dispatch table text does not parse.
pub const MLAKV_ERR_TABLE_PARSE: mlakv_status = 17;
/// A pointer is not accessible from the chosen backend.
pub const MLAKV_ERR_MEMORY_SPACE: mlakv_status = 18;
/// A bug in mlakv; please report it.
pub const MLAKV_ERR_INTERNAL: mlakv_status = 19;
/// No row of the backend's dispatch table can run the call.
pub const MLAKV_ERR_NO_TABLE_ROW: mlakv_status = 20;
/// A table file was measured on a device this backend does not have.
pub const MLAKV_ERR_TABLE_DEVICE: mlakv_status = 21;
/// An output and another operand interleave in a way mlakv cannot decide (more than two large,
/// unrelated strides): not proven disjoint, so refused; no overlap was found.
pub const MLAKV_ERR_OVERLAP_UNDECIDED: mlakv_status = 22;

// ---- data types -----------------------------------------------------------------------------

/// A data type code (`int32_t`), `MLAKV_DTYPE_*`.
pub type mlakv_dtype = i32;
/// Not a data type (the value of an unset tensor).
pub const MLAKV_DTYPE_INVALID: mlakv_dtype = 0;
/// bfloat16 (input).
pub const MLAKV_DTYPE_BF16: mlakv_dtype = 1;
/// IEEE binary16 (input).
pub const MLAKV_DTYPE_FP16: mlakv_dtype = 2;
/// IEEE binary32 (input).
pub const MLAKV_DTYPE_FP32: mlakv_dtype = 3;
/// OCP e4m3fn (output): max 448, NaN 0x7F, -0 = 0x80.
pub const MLAKV_DTYPE_E4M3FN: mlakv_dtype = 4;
/// OCP e5m2 (output): max 57344, NaN 0x7F, -0 = 0x80.
pub const MLAKV_DTYPE_E5M2: mlakv_dtype = 5;
/// AMD gfx942 e4m3fnuz (output): max 240, NaN 0x80, no negative zero.
pub const MLAKV_DTYPE_E4M3FNUZ: mlakv_dtype = 6;
/// AMD gfx942 e5m2fnuz (output): max 57344, NaN 0x80, no negative zero.
pub const MLAKV_DTYPE_E5M2FNUZ: mlakv_dtype = 7;

// ---- backends -------------------------------------------------------------------------------

/// A backend code (`int32_t`), `MLAKV_BACKEND_*`.
pub type mlakv_backend = i32;
/// The first usable backend that can reach the memory.
pub const MLAKV_BACKEND_AUTO: mlakv_backend = 0;
/// Kokkos on the host: the oracle and the CPU fallback.
pub const MLAKV_BACKEND_REFERENCE: mlakv_backend = 1;
/// NVIDIA CUDA.
pub const MLAKV_BACKEND_CUDA: mlakv_backend = 2;
/// AMD HIP.
pub const MLAKV_BACKEND_HIP: mlakv_backend = 3;

// ---- programmatic dependent launch ----------------------------------------------------------

/// A PDL mode (`int32_t`), `MLAKV_PDL_*` (CUDA sm_90+).
pub type mlakv_pdl_mode = i32;
/// On where the device supports it.
pub const MLAKV_PDL_AUTO: mlakv_pdl_mode = 0;
/// On where the device supports it; ignored elsewhere.
pub const MLAKV_PDL_ON: mlakv_pdl_mode = 1;
/// Off.
pub const MLAKV_PDL_OFF: mlakv_pdl_mode = 2;

// ---- flags ----------------------------------------------------------------------------------

/// Skip the GPU backends' check that every pointer is device-accessible (see the header).
pub const MLAKV_FLAG_TRUST_POINTERS: u32 = 0x1;
/// Every flag this version knows.
pub const MLAKV_FLAGS_KNOWN: u32 = 0x1;

// ---- scale granularity (since 0.2) ----------------------------------------------------------

/// `mlakv_pack_args.scale_granularity` (`int32_t`), `MLAKV_SCALE_*`.
pub type mlakv_scale_granularity = i32;
/// One multiplier for K and one for V (the default).
pub const MLAKV_SCALE_PER_TENSOR: mlakv_scale_granularity = 0;
/// `h` multipliers for K and `h` for V, through `k_scale_inv_ptr` and `v_scale_inv_ptr`;
/// `k_amax` / `v_amax` then hold `h` floats each.
pub const MLAKV_SCALE_PER_HEAD: mlakv_scale_granularity = 1;

// ---- tensors --------------------------------------------------------------------------------

/// The largest rank of a [`mlakv_tensor`].
pub const MLAKV_MAX_RANK: usize = 4;

/// A strided view, with DLPack `DLTensor`'s meaning: `data` is the address of element
/// `[0, ..., 0]`, `shape[i]` elements along dim `i`, `strides[i]` counted in elements (not
/// bytes). Only the first `ndim` entries of `shape` and `strides` are read.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct mlakv_tensor {
    /// Address of element `[0, ..., 0]`.
    pub data: *mut c_void,
    /// `MLAKV_DTYPE_*`.
    pub dtype: mlakv_dtype,
    /// Number of dimensions (1..=[`MLAKV_MAX_RANK`]).
    pub ndim: i32,
    /// Elements along each dim.
    pub shape: [i64; MLAKV_MAX_RANK],
    /// Element (not byte) strides.
    pub strides: [i64; MLAKV_MAX_RANK],
}

/// `MLAKV_TENSOR_INIT`: NULL data, invalid dtype, rank 0.
pub const MLAKV_TENSOR_INIT: mlakv_tensor = mlakv_tensor {
    data: std::ptr::null_mut(),
    dtype: MLAKV_DTYPE_INVALID,
    ndim: 0,
    shape: [0; MLAKV_MAX_RANK],
    strides: [0; MLAKV_MAX_RANK],
};

impl Default for mlakv_tensor {
    /// [`MLAKV_TENSOR_INIT`].
    fn default() -> Self {
        MLAKV_TENSOR_INIT
    }
}

// ---- the operation --------------------------------------------------------------------------

/// The arguments of [`mlakv_pack_fp8`] (see the header for every field's meaning). Starts with
/// `struct_size`; new fields are only ever appended: the 0.1 layout ends at byte
/// [`MLAKV_PACK_ARGS_SIZE_0_1`] (456), where the 0.2 fields begin.
///
/// Per-head scales ([`MLAKV_SCALE_PER_HEAD`]): `k_scale_inv_ptr` and `v_scale_inv_ptr` (required)
/// each point to `h` fp32 multipliers; head `j` of `k_out` (its `k_nope` part and its copy of
/// `k_pe`) uses `k_scale_inv_ptr[j]`, head `j` of `v_out` uses `v_scale_inv_ptr[j]`.
///
/// Amax (`k_amax` / `v_amax` non-NULL; memory the backend writes, like the outputs): the absolute
/// maximum of the inputs, widened to fp32, before scaling, accumulated across calls: per tensor
/// `k_amax[0]` over all of `k_nope` and `k_pe`, `v_amax[0]` over all of `v`; per head `k_amax[j]`
/// over head `j` of `k_nope` and all of `k_pe`, `v_amax[j]` over head `j` of `v`. NaN inputs are
/// ignored, an infinity counts; with `m` the call's maximum (+0 if every element is NaN), the
/// stored value `a` becomes `max(a, m)` compared as `i32` bit patterns (for `a >= +0` the float
/// maximum). An empty call (s = 0 or h = 0) reads and writes nothing.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct mlakv_pack_args {
    /// `size_of::<mlakv_pack_args>()`.
    pub struct_size: usize,
    /// Input `[s, h, D_nope]`, bf16 | fp16 | fp32, inner stride 1.
    pub k_nope: mlakv_tensor,
    /// Input `[s, D_rope]` or `[s, 1, D_rope]`: one rope vector per token, shared by all heads.
    pub k_pe: mlakv_tensor,
    /// Input `[s, h, D_v]`.
    pub v: mlakv_tensor,
    /// Output `[s, h, D_nope + D_rope]`, fp8, inner stride 1.
    pub k_out: mlakv_tensor,
    /// Output `[s, h, D_v]`, the same fp8 dtype as `k_out`.
    pub v_out: mlakv_tensor,
    /// Multiplier (1 / scale) of K; default 1.
    pub k_scale_inv: f32,
    /// Multiplier (1 / scale) of V; default 1.
    pub v_scale_inv: f32,
    /// When non-NULL, the K multiplier is read from here (memory the backend reads) instead.
    pub k_scale_inv_ptr: *const f32,
    /// When non-NULL, the V multiplier is read from here (memory the backend reads) instead.
    pub v_scale_inv_ptr: *const f32,
    /// `MLAKV_BACKEND_*`; default [`MLAKV_BACKEND_AUTO`].
    pub backend: mlakv_backend,
    /// Device ordinal for GPU backends; default 0.
    pub device: i32,
    /// `cudaStream_t` / `hipStream_t`; NULL = the legacy default stream.
    pub stream: *mut c_void,
    /// `MLAKV_PDL_*`; default [`MLAKV_PDL_AUTO`].
    pub pdl: mlakv_pdl_mode,
    /// `MLAKV_FLAG_*`; default 0.
    pub flags: u32,
    // ---- since 0.2 (a 0.1 caller's struct_size, 456, ends here: it gets the defaults below)
    /// `MLAKV_SCALE_*`; default [`MLAKV_SCALE_PER_TENSOR`].
    pub scale_granularity: mlakv_scale_granularity,
    /// Must be 0.
    pub reserved: u32,
    /// Default NULL: no amax of K. Else 1 float (per tensor) or `h` (per head), accumulated.
    pub k_amax: *mut f32,
    /// Default NULL: no amax of V. Else 1 float (per tensor) or `h` (per head), accumulated.
    pub v_amax: *mut f32,
}

/// The `struct_size` of a caller built against mlakv 0.1 (the smallest the library accepts): the
/// offset of `scale_granularity`, the first field appended by 0.2.
pub const MLAKV_PACK_ARGS_SIZE_0_1: usize = 456;

/// `MLAKV_PACK_ARGS_INIT`: the defaults, with `struct_size` of these declarations.
pub const MLAKV_PACK_ARGS_INIT: mlakv_pack_args = mlakv_pack_args {
    struct_size: std::mem::size_of::<mlakv_pack_args>(),
    k_nope: MLAKV_TENSOR_INIT,
    k_pe: MLAKV_TENSOR_INIT,
    v: MLAKV_TENSOR_INIT,
    k_out: MLAKV_TENSOR_INIT,
    v_out: MLAKV_TENSOR_INIT,
    k_scale_inv: 1.0,
    v_scale_inv: 1.0,
    k_scale_inv_ptr: std::ptr::null(),
    v_scale_inv_ptr: std::ptr::null(),
    backend: MLAKV_BACKEND_AUTO,
    device: 0,
    stream: std::ptr::null_mut(),
    pdl: MLAKV_PDL_AUTO,
    flags: 0,
    scale_granularity: MLAKV_SCALE_PER_TENSOR,
    reserved: 0,
    k_amax: std::ptr::null_mut(),
    v_amax: std::ptr::null_mut(),
};

impl Default for mlakv_pack_args {
    /// [`MLAKV_PACK_ARGS_INIT`].
    fn default() -> Self {
        MLAKV_PACK_ARGS_INIT
    }
}

// ---- backends -------------------------------------------------------------------------------

/// What [`mlakv_backend_get_info`] reports on one backend. The strings are static.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct mlakv_backend_info {
    /// `size_of::<mlakv_backend_info>()`, set by the caller.
    pub struct_size: usize,
    /// `MLAKV_BACKEND_*`.
    pub backend: mlakv_backend,
    /// `"reference"`, `"cuda"`, `"hip"`.
    pub name: *const c_char,
    /// 1 if this library was built with it.
    pub compiled: i32,
    /// 1 if it can run here now (runtime and a device present).
    pub usable: i32,
    /// Devices it sees (1 for the reference backend).
    pub device_count: i32,
    /// Why it is not usable, or what it found.
    pub detail: *const c_char,
}

/// `MLAKV_BACKEND_INFO_INIT`.
pub const MLAKV_BACKEND_INFO_INIT: mlakv_backend_info = mlakv_backend_info {
    struct_size: std::mem::size_of::<mlakv_backend_info>(),
    backend: 0,
    name: std::ptr::null(),
    compiled: 0,
    usable: 0,
    device_count: 0,
    detail: std::ptr::null(),
};

impl Default for mlakv_backend_info {
    /// [`MLAKV_BACKEND_INFO_INIT`].
    fn default() -> Self {
        MLAKV_BACKEND_INFO_INIT
    }
}

// The link directive (`-l mlakv`) comes from build.rs.
extern "C" {
    /// Fills the first `struct_size` bytes of `*args` with the defaults
    /// ([`MLAKV_PACK_ARGS_INIT`]; bytes past the library's own struct are zeroed) and sets
    /// `args.struct_size = struct_size`. Pass the size of the struct you allocated:
    /// `size_of::<mlakv_pack_args>()`. [`MLAKV_ERR_STRUCT_SIZE`] (nothing written) below
    /// [`MLAKV_PACK_ARGS_SIZE_0_1`] or above 1 MiB; [`MLAKV_ERR_NULL_POINTER`] for NULL.
    /// Since 0.2 (symbol version `MLAKV_0.2`).
    pub fn mlakv_pack_args_init_sized(
        args: *mut mlakv_pack_args,
        struct_size: usize,
    ) -> mlakv_status;

    /// mlakv 0.1's entry point, kept for binaries built against 0.1: fills only the 0.1 layout
    /// ([`MLAKV_PACK_ARGS_SIZE_0_1`] = 456 bytes, `struct_size` = 456), so the 0.2 fields of a
    /// struct of these declarations are left as they were. Use [`mlakv_pack_args_init_sized`].
    pub fn mlakv_pack_args_init(args: *mut mlakv_pack_args);

    /// The operation. Everything is validated before anything is written. Thread-safe.
    pub fn mlakv_pack_fp8(args: *const mlakv_pack_args) -> mlakv_status;

    /// Which backend, kernel variant and launch configuration [`mlakv_pack_fp8`] would use, as one
    /// line of text (at most `buf_size` bytes including the NUL; `*needed`, if non-NULL, receives
    /// the size needed). Returns [`MLAKV_ERR_BUFFER_TOO_SMALL`] if it did not fit.
    pub fn mlakv_pack_fp8_plan(
        args: *const mlakv_pack_args,
        buf: *mut c_char,
        buf_size: usize,
        needed: *mut usize,
    ) -> mlakv_status;

    /// A static string naming the status. Never NULL.
    pub fn mlakv_status_string(status: mlakv_status) -> *const c_char;

    /// The message of the last failing call on this thread (`""` if none). Valid until the next
    /// mlakv call on the same thread.
    pub fn mlakv_last_error() -> *const c_char;

    /// `MLAKV_VERSION` of the library actually linked.
    pub fn mlakv_version() -> i32;

    /// e.g. `"0.2.0 (reference, cuda)"`. Static.
    pub fn mlakv_version_string() -> *const c_char;

    /// Number of backends known to this library (compiled or not).
    pub fn mlakv_backend_count() -> i32;

    /// Information on backend number `index`, in priority order. `info.struct_size` must be set.
    pub fn mlakv_backend_get_info(index: i32, info: *mut mlakv_backend_info) -> mlakv_status;

    /// The backend's dispatch table as text; same buffer convention as [`mlakv_pack_fp8_plan`].
    pub fn mlakv_dispatch_table_get(
        backend: mlakv_backend,
        buf: *mut c_char,
        buf_size: usize,
        needed: *mut usize,
    ) -> mlakv_status;

    /// Replaces the backend's dispatch table with rows parsed from `text` (NUL-terminated).
    pub fn mlakv_dispatch_table_set(backend: mlakv_backend, text: *const c_char) -> mlakv_status;

    /// Restores the backend's built-in dispatch table (and forgets every device's loaded table
    /// file).
    pub fn mlakv_dispatch_table_reset(backend: mlakv_backend) -> mlakv_status;

    /// GPU backends: loads a table file written by `mlakv-tune` (`path` NUL-terminated) and
    /// applies it to every device of this process it was measured on. A malformed file is
    /// [`MLAKV_ERR_TABLE_PARSE`], a file for another device [`MLAKV_ERR_TABLE_DEVICE`].
    pub fn mlakv_dispatch_table_load(backend: mlakv_backend, path: *const c_char) -> mlakv_status;
}
