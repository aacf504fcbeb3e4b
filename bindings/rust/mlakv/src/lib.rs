//! Safe Rust API of **mlakv**: fused MLA "concatenate `k_nope` with the broadcast `k_pe`, then
//! FP8-quantize K and V" in one pass, on a CUDA, HIP or CPU reference backend.
//!
//! In MLA (DeepSeek V2/V3, Kimi K2, GLM ...) chunked prefill, every prefix chunk rebuilds per-head
//! K and V from the latent cache for an FP8 attention kernel. One call computes
//!
//! ```text
//! k_out[t, h, :D_nope] = Q(k_nope[t, h, :] * k_scale_inv)     k_nope [s, h, D_nope]
//! k_out[t, h, D_nope:] = Q(k_pe[t, :] * k_scale_inv)          k_pe   [s, D_rope] (or [s, 1, D_rope])
//! v_out[t, h, :]       = Q(v[t, h, :] * v_scale_inv)          v      [s, h, D_v]
//! ```
//!
//! from bf16, fp16 or fp32 inputs into one of four FP8 formats ([`Fp8Format`]). `Q` widens to
//! fp32 exactly, multiplies once in fp32 (round to nearest even), then rounds to nearest even
//! into FP8 with gradual underflow, saturating to ±max (infinities too), NaN to the format's NaN.
//! Every backend gives identical bytes.
//!
//! Since mlakv 0.2 the multipliers may be per head ([`PackArgsBuilder::k_scale_inv_per_head`],
//! [`ScaleGranularity::PerHead`]: head `j` uses `k_scale_inv[j]` / `v_scale_inv[j]`), and a call
//! can accumulate the inputs' absolute maximum into amax outputs for calibration
//! ([`PackArgsBuilder::k_amax`], [`PackArgsBuilder::v_amax`]; one float, or `h` per head):
//!
//! ```
//! use mlakv::{Backend, Fp8Format, PackArgs, Tensor, TensorMut};
//!
//! # fn main() -> Result<(), mlakv::Error> {
//! let (s, h) = (4, 2);
//! let k_nope = vec![1.5f32; s * h * 16];
//! let k_pe = vec![-3.0f32; s * 8];
//! let v = vec![0.25f32; s * h * 16];
//! let (mut k_out, mut v_out) = (vec![0u8; s * h * 24], vec![0u8; s * h * 16]);
//! let (mut k_amax, mut v_amax) = ([0f32; 2], [0f32; 2]); // zeroed once, per head
//! let (k_mult, v_mult) = ([1.0f32, 2.0], [4.0f32, 8.0]); // per-head multipliers (1 / scale)
//! PackArgs::builder()
//!     .k_nope(Tensor::contiguous(&k_nope, &[s, h, 16])?)
//!     .k_pe(Tensor::contiguous(&k_pe, &[s, 8])?)
//!     .v(Tensor::contiguous(&v, &[s, h, 16])?)
//!     .k_out(TensorMut::contiguous(&mut k_out, Fp8Format::E4m3fn, &[s, h, 24])?)
//!     .v_out(TensorMut::contiguous(&mut v_out, Fp8Format::E4m3fn, &[s, h, 16])?)
//!     .k_scale_inv_per_head(&k_mult)
//!     .v_scale_inv_per_head(&v_mult)
//!     .k_amax(&mut k_amax)
//!     .v_amax(&mut v_amax)
//!     .backend(Backend::Reference)
//!     .build()?
//!     .run()?;
//! assert_eq!(k_amax, [3.0, 3.0]); // |k_pe| counts for every head
//! assert_eq!(v_amax, [0.25, 0.25]);
//! assert_eq!(Fp8Format::E4m3fn.to_f32(k_out[24]), 3.0); // head 1: 1.5 * 2
//! assert_eq!(Fp8Format::E4m3fn.to_f32(v_out[16]), 2.0); // head 1: 0.25 * 8
//! # Ok(())
//! # }
//! ```
//!
//! # Example
//!
//! DeepSeek V3 dimensions (D_nope = 128, D_rope = 64, D_v = 128), `k_nope` and `v` the two halves
//! of one bf16 `[s, h, 256]` tensor, on the host:
//!
//! ```
//! use mlakv::{Backend, Bf16, Fp8Format, PackArgs, Tensor, TensorMut};
//!
//! # fn main() -> Result<(), mlakv::Error> {
//! let (s, h) = (4, 16);
//! let kv = vec![Bf16::from_f32(1.0); s * h * 256];     // [s, h, 128 + 128] = k_nope | v
//! let k_pe = vec![Bf16::from_f32(-1000.0); s * 64];    // [s, 64], shared by all heads
//! let mut k_out = vec![0u8; s * h * 192];              // e4m3fn [s, h, 192]
//! let mut v_out = vec![0u8; s * h * 128];              // e4m3fn [s, h, 128]
//!
//! let mut args = PackArgs::builder()
//!     .k_nope(Tensor::new(&kv, &[s, h, 128], &[h * 256, 256, 1])?)
//!     .v(Tensor::new(&kv[128..], &[s, h, 128], &[h * 256, 256, 1])?)
//!     .k_pe(Tensor::contiguous(&k_pe, &[s, 64])?)
//!     .k_out(TensorMut::contiguous(&mut k_out, Fp8Format::E4m3fn, &[s, h, 192])?)
//!     .v_out(TensorMut::contiguous(&mut v_out, Fp8Format::E4m3fn, &[s, h, 128])?)
//!     .k_scale_inv(2.0) // multipliers: 1 / scale
//!     .v_scale_inv(1.0)
//!     .backend(Backend::Reference)
//!     .build()?;
//! assert!(args.plan()?.starts_with("backend=reference"));
//! args.run()?;
//!
//! assert_eq!(k_out[0], 0x40);   // 1.0 * 2 = 2.0 in e4m3fn
//! assert_eq!(k_out[128], 0xFE); // -1000 * 2 saturates to -448
//! assert_eq!(v_out[0], 0x38);   // 1.0
//! assert_eq!(Fp8Format::E4m3fn.to_f32(k_out[0]), 2.0);
//! # Ok(())
//! # }
//! ```
//!
//! # Memory, views and safety
//!
//! * Host memory is passed as slices: inputs as `&[Bf16]`, `&[F16]` or `&[f32]` ([`Bf16`] and
//!   [`F16`] are `#[repr(transparent)]` `u16` bit patterns; `&[u16]` works through
//!   [`Tensor::from_bits`]), outputs as `&mut [u8]`. Shapes and strides count elements. Every
//!   view is checked against its slice when it is made ([`Tensor::new`]): a view that reaches
//!   past the end is an [`Error`] with [`Status::Shape`], before anything reaches the C library.
//!   The borrow checker keeps outputs from aliasing each other or an input. Slice views run on
//!   the reference backend, synchronously.
//! * Device memory is passed through the `unsafe` constructors [`Tensor::from_raw`] and
//!   [`TensorMut::from_raw`] (and [`PackArgsBuilder::k_scale_inv_ptr`],
//!   [`PackArgsBuilder::k_scale_inv_per_head_ptr`], [`PackArgsBuilder::k_amax_ptr`],
//!   [`PackArgsBuilder::stream`]): the caller promises that the memory is valid for the
//!   backend. The library still checks alignment, overlaps between outputs and inputs
//!   ([`Status::Overlap`]) and, unless told to trust pointers, that every pointer is reachable
//!   from the backend ([`Status::MemorySpace`]). GPU calls are asynchronous on the stream.
//! * The library validates everything before it writes: on any error no output byte has been
//!   touched and nothing was enqueued. [`Error`] carries the [`Status`] and the library's
//!   message naming the argument.
//!
//! # Threads
//!
//! The C library is thread-safe: calls may run concurrently from any threads, and dispatch
//! tables may be replaced while calls run. [`PackArgs`] is `Send`. Error messages are per thread
//! and are read right after the failing call, so they never mix between threads.
//!
//! # Linking
//!
//! The `mlakv-sys` crate links `libmlakv`; its build script reads `MLAKV_LIB_DIR` and
//! `MLAKV_INCLUDE_DIR`, or asks `pkg-config` (see the README of `bindings/rust`). Programs built
//! outside `cargo run` / `cargo test` need `libmlakv.so` on the loader's path
//! (`LD_LIBRARY_PATH=<prefix>/lib`, or a system directory).
#![warn(missing_docs)]

mod args;
mod error;
mod tensor;
mod types;

pub use args::{PackArgs, PackArgsBuilder};
pub use error::{Error, Result, Status};
pub use tensor::{contiguous_strides, Element, Tensor, TensorMut};
pub use types::{Backend, Bf16, Dtype, Fp8Format, Pdl, ScaleGranularity, F16};

/// The raw FFI declarations (the `mlakv-sys` crate), for what the safe API does not cover.
pub use mlakv_sys as sys;

use std::ffi::CString;
use std::fmt;
use std::path::Path;

use error::{check, cstr_to_string};

/// A library version, `major.minor.patch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Incremented for incompatible ABI changes.
    pub major: u32,
    /// Incremented for additions.
    pub minor: u32,
    /// Incremented for fixes.
    pub patch: u32,
}

impl Version {
    fn from_code(code: i32) -> Version {
        let code = code.max(0) as u32;
        Version {
            major: code / 10000,
            minor: code / 100 % 100,
            patch: code % 100,
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The version of the library actually linked (`mlakv_version()`).
pub fn version() -> Version {
    // SAFETY: no arguments, no preconditions.
    Version::from_code(unsafe { sys::mlakv_version() })
}

/// The version of the header this crate was written against (0.2.0).
pub fn header_version() -> Version {
    Version::from_code(sys::MLAKV_VERSION)
}

/// The linked library's version and backends, e.g. `"0.2.0 (reference, cuda)"`.
pub fn version_string() -> String {
    // SAFETY: returns a static NUL-terminated string.
    unsafe { cstr_to_string(sys::mlakv_version_string()) }
}

/// What the library knows about one backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendInfo {
    /// Which backend.
    pub backend: Backend,
    /// `"reference"`, `"cuda"`, `"hip"`.
    pub name: String,
    /// Whether the library was built with it.
    pub compiled: bool,
    /// Whether it can run here now (runtime and a device present).
    pub usable: bool,
    /// Devices it sees (1 for the reference backend).
    pub device_count: i32,
    /// Why it is not usable, or what it found (e.g. `"2 devices: sm_90 ..."`).
    pub detail: String,
}

/// Every backend the library knows (compiled or not), in priority order: [`Backend::Auto`]
/// picks the first usable one that can reach the memory.
pub fn backends() -> Result<Vec<BackendInfo>> {
    // SAFETY: no arguments.
    let count = unsafe { sys::mlakv_backend_count() };
    let mut out = Vec::with_capacity(count.max(0) as usize);
    for index in 0..count {
        let mut info = sys::MLAKV_BACKEND_INFO_INIT;
        // SAFETY: info is a valid mlakv_backend_info with struct_size set; the strings it
        // receives are static.
        unsafe {
            check(sys::mlakv_backend_get_info(index, &mut info))?;
            out.push(BackendInfo {
                backend: Backend::from_code(info.backend),
                name: cstr_to_string(info.name),
                compiled: info.compiled != 0,
                usable: info.usable != 0,
                device_count: info.device_count,
                detail: cstr_to_string(info.detail),
            });
        }
    }
    Ok(out)
}

/// The backend's hybrid dispatch table as text, one row per line (tried top to bottom; the
/// first row whose conditions hold picks the kernel variant and launch configuration).
pub fn dispatch_table(backend: Backend) -> Result<String> {
    // SAFETY: buf is valid for `size` bytes and needed for one usize (read_text's contract).
    args::read_text(|buf, size, needed| unsafe {
        sys::mlakv_dispatch_table_get(backend.code(), buf, size, needed)
    })
}

/// Replaces the backend's dispatch table (every arch the text covers) with rows parsed from
/// `text`, in the format [`dispatch_table`] prints. On a parse error the old table stays and
/// the error ([`Status::TableParse`]) names the line. Safe to call while other threads run packs.
pub fn set_dispatch_table(backend: Backend, text: &str) -> Result<()> {
    let text = CString::new(text).map_err(|e| {
        Error::new(
            Status::InvalidArgument,
            format!(
                "set_dispatch_table: the text holds a NUL byte at offset {}",
                e.nul_position()
            ),
        )
    })?;
    // SAFETY: text is NUL-terminated and outlives the call.
    check(unsafe { sys::mlakv_dispatch_table_set(backend.code(), text.as_ptr()) })
}

/// Restores the backend's built-in dispatch table (and forgets every device's loaded table
/// file).
pub fn reset_dispatch_table(backend: Backend) -> Result<()> {
    // SAFETY: no pointers.
    check(unsafe { sys::mlakv_dispatch_table_reset(backend.code()) })
}

/// GPU backends: per-device tables. Loads a table file written by `mlakv-tune` (its header names
/// the device it was measured on) and applies it to every device of this process that matches;
/// their rows are tried first, then the backend's table. A malformed file is
/// [`Status::TableParse`], a file for another device [`Status::TableDevice`]; either way nothing
/// changes. The reference backend has no per-device tables ([`Status::InvalidArgument`]).
/// [`set_dispatch_table`] and [`reset_dispatch_table`] forget loaded tables.
pub fn load_dispatch_table(backend: Backend, path: &Path) -> Result<()> {
    let path = CString::new(path_bytes(path)?).map_err(|e| {
        Error::new(
            Status::InvalidArgument,
            format!(
                "load_dispatch_table: the path holds a NUL byte at offset {}",
                e.nul_position()
            ),
        )
    })?;
    // SAFETY: path is NUL-terminated and outlives the call.
    check(unsafe { sys::mlakv_dispatch_table_load(backend.code(), path.as_ptr()) })
}

/// The bytes of a path as the C library receives them.
#[cfg(unix)]
fn path_bytes(path: &Path) -> Result<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    Ok(path.as_os_str().as_bytes().to_vec())
}

/// The bytes of a path as the C library receives them (UTF-8 outside Unix).
#[cfg(not(unix))]
fn path_bytes(path: &Path) -> Result<Vec<u8>> {
    match path.to_str() {
        Some(text) => Ok(text.as_bytes().to_vec()),
        None => Err(Error::new(
            Status::InvalidArgument,
            format!(
                "load_dispatch_table: the path {:?} is not valid UTF-8",
                path
            ),
        )),
    }
}

/// Compiles the Rust code blocks of `bindings/rust/README.md` as doc-tests, so that the README's
/// example stays correct.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
