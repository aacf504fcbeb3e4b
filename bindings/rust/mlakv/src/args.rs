//! The arguments of one pack call: [`PackArgs`] and its builder.

use std::fmt;
use std::marker::PhantomData;
use std::mem::{size_of, MaybeUninit};
use std::os::raw::{c_char, c_void};

use mlakv_sys as sys;

use crate::error::{check, Error, Result, Status};
use crate::tensor::{Tensor, TensorMut};
use crate::types::{Backend, Pdl, ScaleGranularity};

/// Where a scale multiplier (or, per head, the `h` multipliers) comes from.
#[derive(Clone, Copy, Debug)]
enum Scale {
    Value(f32),
    /// Host memory borrowed from a `&'a f32` or `&'a [f32]` (address, length): read by the
    /// reference backend when the call runs.
    Host(*const f32, usize),
    /// Memory the backend reads (device memory for GPU backends), from the unsafe setters.
    Raw(*const f32),
}

/// Where an amax output goes.
#[derive(Clone, Copy, Debug)]
enum Amax {
    None,
    /// Host memory borrowed from a `&'a mut [f32]` (address, length).
    Host(*mut f32, usize),
    /// Memory the backend writes (device memory for GPU backends), from the unsafe setters.
    Raw(*mut f32),
}

/// Builds [`PackArgs`]: set the five views, optionally the scales (per tensor or per head),
/// amax outputs, backend, device, stream and PDL mode, then [`build`](PackArgsBuilder::build).
/// Made by [`PackArgs::builder`].
///
/// Defaults: scale multipliers 1 ([`ScaleGranularity::PerTensor`]), no amax outputs,
/// [`Backend::Auto`], device 0, the default stream, [`Pdl::Auto`], no flags.
pub struct PackArgsBuilder<'a> {
    k_nope: Option<Tensor<'a>>,
    k_pe: Option<Tensor<'a>>,
    v: Option<Tensor<'a>>,
    k_out: Option<TensorMut<'a>>,
    v_out: Option<TensorMut<'a>>,
    k_scale: Scale,
    v_scale: Scale,
    granularity: ScaleGranularity,
    k_amax: Amax,
    v_amax: Amax,
    backend: Backend,
    device: i32,
    stream: *mut c_void,
    pdl: Pdl,
    flags: u32,
    _borrow: PhantomData<(&'a f32, &'a mut [f32])>,
}

impl<'a> PackArgsBuilder<'a> {
    fn new() -> Self {
        PackArgsBuilder {
            k_nope: None,
            k_pe: None,
            v: None,
            k_out: None,
            v_out: None,
            k_scale: Scale::Value(1.0),
            v_scale: Scale::Value(1.0),
            granularity: ScaleGranularity::PerTensor,
            k_amax: Amax::None,
            v_amax: Amax::None,
            backend: Backend::Auto,
            device: 0,
            stream: std::ptr::null_mut(),
            pdl: Pdl::Auto,
            flags: 0,
            _borrow: PhantomData,
        }
    }

    /// `k_nope [s, h, D_nope]` (input).
    pub fn k_nope(mut self, t: Tensor<'a>) -> Self {
        self.k_nope = Some(t);
        self
    }

    /// `k_pe [s, D_rope]` or `[s, 1, D_rope]` (input): one rope vector per token, broadcast to
    /// every head.
    pub fn k_pe(mut self, t: Tensor<'a>) -> Self {
        self.k_pe = Some(t);
        self
    }

    /// `v [s, h, D_v]` (input).
    pub fn v(mut self, t: Tensor<'a>) -> Self {
        self.v = Some(t);
        self
    }

    /// `k_out [s, h, D_nope + D_rope]` (FP8 output).
    pub fn k_out(mut self, t: TensorMut<'a>) -> Self {
        self.k_out = Some(t);
        self
    }

    /// `v_out [s, h, D_v]` (FP8 output, the same format as `k_out`).
    pub fn v_out(mut self, t: TensorMut<'a>) -> Self {
        self.v_out = Some(t);
        self
    }

    /// The K multiplier `1 / k_scale` (default 1): `k_out = Q(k * k_scale_inv)`.
    pub fn k_scale_inv(mut self, multiplier: f32) -> Self {
        self.k_scale = Scale::Value(multiplier);
        self
    }

    /// The V multiplier `1 / v_scale` (default 1): `v_out = Q(v * v_scale_inv)`.
    pub fn v_scale_inv(mut self, multiplier: f32) -> Self {
        self.v_scale = Scale::Value(multiplier);
        self
    }

    /// Reads the K multiplier from host memory when the call runs (reference backend only, like
    /// every slice view).
    pub fn k_scale_inv_host(mut self, multiplier: &'a f32) -> Self {
        self.k_scale = Scale::Host(multiplier, 1);
        self
    }

    /// Reads the V multiplier from host memory when the call runs (reference backend only).
    pub fn v_scale_inv_host(mut self, multiplier: &'a f32) -> Self {
        self.v_scale = Scale::Host(multiplier, 1);
        self
    }

    /// Reads the K multiplier from memory the backend reads when the kernel runs (a device
    /// `float*` for GPU backends, so a captured CUDA graph sees later values).
    ///
    /// # Safety
    /// `ptr` must point to an `f32`, aligned, accessible from the chosen backend, valid and not
    /// written while any call made with these arguments runs (on a GPU: until the stream's work
    /// has finished).
    pub unsafe fn k_scale_inv_ptr(mut self, ptr: *const f32) -> Self {
        self.k_scale = Scale::Raw(ptr);
        self
    }

    /// Reads the V multiplier from memory the backend reads when the kernel runs.
    ///
    /// # Safety
    /// As for [`k_scale_inv_ptr`](PackArgsBuilder::k_scale_inv_ptr).
    pub unsafe fn v_scale_inv_ptr(mut self, ptr: *const f32) -> Self {
        self.v_scale = Scale::Raw(ptr);
        self
    }

    /// Per-head K multipliers from host memory (reference backend only, like every slice view):
    /// head `j` of `k_out` (its `k_nope` part and its copy of `k_pe`) is quantized with
    /// `multipliers[j]`, read when the call runs. Sets [`ScaleGranularity::PerHead`], which
    /// needs per-head V multipliers too ([`v_scale_inv_per_head`](Self::v_scale_inv_per_head)
    /// or [`v_scale_inv_per_head_ptr`](Self::v_scale_inv_per_head_ptr)); `build` checks that
    /// the slice holds exactly `h` (k_nope's second dimension) floats.
    pub fn k_scale_inv_per_head(mut self, multipliers: &'a [f32]) -> Self {
        self.k_scale = Scale::Host(multipliers.as_ptr(), multipliers.len());
        self.granularity = ScaleGranularity::PerHead;
        self
    }

    /// Per-head V multipliers from host memory: head `j` of `v_out` uses `multipliers[j]`.
    /// Sets [`ScaleGranularity::PerHead`]; see [`k_scale_inv_per_head`](Self::k_scale_inv_per_head).
    pub fn v_scale_inv_per_head(mut self, multipliers: &'a [f32]) -> Self {
        self.v_scale = Scale::Host(multipliers.as_ptr(), multipliers.len());
        self.granularity = ScaleGranularity::PerHead;
        self
    }

    /// Per-head K multipliers from memory the backend reads when the kernel runs (a device
    /// `float*` of `h` floats for GPU backends; a captured CUDA graph sees later values). Sets
    /// [`ScaleGranularity::PerHead`].
    ///
    /// # Safety
    /// `ptr` must point to `h` `f32`s (h: k_nope's second dimension), aligned, accessible from
    /// the chosen backend, valid and not written while any call made with these arguments runs
    /// (on a GPU: until the stream's work has finished).
    pub unsafe fn k_scale_inv_per_head_ptr(mut self, ptr: *const f32) -> Self {
        self.k_scale = Scale::Raw(ptr);
        self.granularity = ScaleGranularity::PerHead;
        self
    }

    /// Per-head V multipliers from memory the backend reads when the kernel runs. Sets
    /// [`ScaleGranularity::PerHead`].
    ///
    /// # Safety
    /// As for [`k_scale_inv_per_head_ptr`](Self::k_scale_inv_per_head_ptr).
    pub unsafe fn v_scale_inv_per_head_ptr(mut self, ptr: *const f32) -> Self {
        self.v_scale = Scale::Raw(ptr);
        self.granularity = ScaleGranularity::PerHead;
        self
    }

    /// The scale granularity as the C struct gets it (`scale_granularity`). The per-head setters
    /// set [`ScaleGranularity::PerHead`] themselves; this setter (called after them) overrides.
    /// With `PerHead` the K and V multipliers must both come from memory (per-head setters, or
    /// the `*_ptr` setters): a multiplier given by value leaves the library's pointer NULL, and
    /// the call fails with [`Status::NullPointer`].
    pub fn scale_granularity(mut self, granularity: ScaleGranularity) -> Self {
        self.granularity = granularity;
        self
    }

    /// An amax output for K, in host memory (reference backend only): each call stores
    /// `amax = max(amax, max |x|)` over `k_nope` and `k_pe` before scaling (NaN ignored, an
    /// infinity counts; the maximum of the `i32` bit patterns, the float maximum for values
    /// `>= +0`). One float with per-tensor scales; `h` floats with per-head scales (`amax[j]`
    /// over head `j` of `k_nope` and all of `k_pe`). Zero it before calibrating; `build` checks
    /// its length.
    pub fn k_amax(mut self, amax: &'a mut [f32]) -> Self {
        self.k_amax = Amax::Host(amax.as_mut_ptr(), amax.len());
        self
    }

    /// An amax output for V, in host memory: `amax = max(amax, max |v|)` (per head: `amax[j]`
    /// over head `j` of `v`). See [`k_amax`](Self::k_amax).
    pub fn v_amax(mut self, amax: &'a mut [f32]) -> Self {
        self.v_amax = Amax::Host(amax.as_mut_ptr(), amax.len());
        self
    }

    /// An amax output for K in memory the backend writes (a device `float*` for GPU backends,
    /// accumulated by the kernel when it runs).
    ///
    /// # Safety
    /// `ptr` must point to 1 `f32` (per-tensor scales) or `h` (per-head), aligned, writable from
    /// the chosen backend, and neither read nor written by anything else while a call made with
    /// these arguments runs (on a GPU: until the stream's work has finished). The library
    /// refuses one that overlaps another operand ([`Status::Overlap`]).
    pub unsafe fn k_amax_ptr(mut self, ptr: *mut f32) -> Self {
        self.k_amax = Amax::Raw(ptr);
        self
    }

    /// An amax output for V in memory the backend writes.
    ///
    /// # Safety
    /// As for [`k_amax_ptr`](Self::k_amax_ptr).
    pub unsafe fn v_amax_ptr(mut self, ptr: *mut f32) -> Self {
        self.v_amax = Amax::Raw(ptr);
        self
    }

    /// The backend (default [`Backend::Auto`]: the first usable backend that can reach the
    /// memory). Views of Rust slices run on [`Backend::Reference`]; see [`build`](Self::build).
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// The device ordinal for GPU backends (default 0).
    pub fn device(mut self, device: i32) -> Self {
        self.device = device;
        self
    }

    /// The programmatic-dependent-launch mode (default [`Pdl::Auto`]).
    pub fn pdl(mut self, pdl: Pdl) -> Self {
        self.pdl = pdl;
        self
    }

    /// The `cudaStream_t` / `hipStream_t` to launch on (default NULL, the legacy default stream).
    ///
    /// # Safety
    /// `stream` must be NULL or a live stream of the chosen backend's runtime and device, for
    /// as long as calls are made with these arguments.
    pub unsafe fn stream(mut self, stream: *mut c_void) -> Self {
        self.stream = stream;
        self
    }

    /// `MLAKV_FLAG_TRUST_POINTERS`: skip the GPU backends' check that every pointer is
    /// device-accessible (a few hundred ns per call). Raw views already promise that their
    /// memory suits the backend; slice views always run on the reference backend.
    pub fn trust_pointers(mut self, trust: bool) -> Self {
        if trust {
            self.flags |= sys::MLAKV_FLAG_TRUST_POINTERS;
        } else {
            self.flags &= !sys::MLAKV_FLAG_TRUST_POINTERS;
        }
        self
    }

    /// Checks that every view is set and assembles the C argument struct. Nothing is passed to
    /// the C library yet: it validates the arguments in [`PackArgs::run`] and [`PackArgs::plan`].
    ///
    /// Fails with [`Status::NullPointer`] when a view is unset. When any view (or scale, or amax
    /// output) borrows Rust memory, the call must run on the host, synchronously:
    /// [`Backend::Auto`] then means [`Backend::Reference`], and another backend fails with
    /// [`Status::MemorySpace`] (a GPU backend could still be writing after `run` returns; use
    /// `from_raw` views for device memory).
    ///
    /// Slices of multipliers and amax outputs are checked against what the library will read
    /// and write: per-head multipliers and per-head amax outputs must hold exactly `h` floats
    /// (`h`: k_nope's second dimension; [`Status::Shape`] otherwise, [`Status::Rank`] when
    /// k_nope is not 3-D), a per-tensor amax output exactly 1.
    ///
    /// The C struct is initialised by the library, `mlakv_pack_args_init_sized` with this
    /// crate's `size_of::<mlakv_pack_args>()`.
    pub fn build(self) -> Result<PackArgs<'a>> {
        fn missing(name: &str) -> Error {
            Error::new(
                Status::NullPointer,
                format!(
                    "PackArgs: `{}` is not set (call .{}(...) on the builder)",
                    name, name
                ),
            )
        }
        let (k_nope, h1) = self.k_nope.ok_or_else(|| missing("k_nope"))?.into_raw();
        let (k_pe, h2) = self.k_pe.ok_or_else(|| missing("k_pe"))?.into_raw();
        let (v, h3) = self.v.ok_or_else(|| missing("v"))?.into_raw();
        let (k_out, h4) = self.k_out.ok_or_else(|| missing("k_out"))?.into_raw();
        let (v_out, h5) = self.v_out.ok_or_else(|| missing("v_out"))?.into_raw();

        // Bounds of the host memory the library will read (scales) and write (amax): checked
        // before anything reaches C.
        let h = if k_nope.ndim == 3 {
            Some(k_nope.shape[1] as usize)
        } else {
            None
        };
        let per_head = self.granularity == ScaleGranularity::PerHead;
        let per_tensor = self.granularity == ScaleGranularity::PerTensor;
        let expect = |what: &str, len: usize, head_sized: bool| -> Result<()> {
            let want = if head_sized {
                match h {
                    Some(h) => h,
                    None => {
                        return Err(Error::new(
                            Status::Rank,
                            format!(
                                "PackArgs: `{}` holds one float per head, but k_nope has {} \
                                 dimensions, not 3 ([s, h, D_nope]), so h is unknown",
                                what, k_nope.ndim
                            ),
                        ))
                    }
                }
            } else {
                1
            };
            if len == want {
                Ok(())
            } else {
                Err(Error::new(
                    Status::Shape,
                    format!(
                        "PackArgs: `{}` holds {} floats; {} needs {} ({})",
                        what,
                        len,
                        if head_sized {
                            "ScaleGranularity::PerHead"
                        } else {
                            "ScaleGranularity::PerTensor"
                        },
                        want,
                        if head_sized {
                            "one per head: h = k_nope's second dimension"
                        } else {
                            "one for all heads"
                        }
                    ),
                ))
            }
        };
        for (what, scale) in [("k_scale_inv", self.k_scale), ("v_scale_inv", self.v_scale)] {
            if let Scale::Host(_, len) = scale {
                if per_head {
                    expect(what, len, true)?;
                } else if per_tensor && len == 0 {
                    expect(what, len, false)?;
                }
            }
        }
        for (what, amax) in [("k_amax", self.k_amax), ("v_amax", self.v_amax)] {
            if let Amax::Host(_, len) = amax {
                if per_head || per_tensor {
                    expect(what, len, per_head)?;
                }
            }
        }

        let mut raw = MaybeUninit::<sys::mlakv_pack_args>::uninit();
        // SAFETY: raw has room for size_of::<mlakv_pack_args>() bytes, which the library fills
        // (every field) when it returns MLAKV_OK.
        let mut raw = unsafe {
            let status = sys::mlakv_pack_args_init_sized(
                raw.as_mut_ptr(),
                size_of::<sys::mlakv_pack_args>(),
            );
            if status != sys::MLAKV_OK {
                return Err(Error::new(
                    Status::from_code(status),
                    format!(
                        "mlakv_pack_args_init_sized(args, {}) failed",
                        size_of::<sys::mlakv_pack_args>()
                    ),
                ));
            }
            raw.assume_init()
        };
        raw.k_nope = k_nope;
        raw.k_pe = k_pe;
        raw.v = v;
        raw.k_out = k_out;
        raw.v_out = v_out;
        let mut host = [h1, h2, h3, h4, h5].iter().any(|&h| h);
        match self.k_scale {
            Scale::Value(x) => raw.k_scale_inv = x,
            Scale::Host(p, _) => {
                raw.k_scale_inv_ptr = p;
                host = true;
            }
            Scale::Raw(p) => raw.k_scale_inv_ptr = p,
        }
        match self.v_scale {
            Scale::Value(x) => raw.v_scale_inv = x,
            Scale::Host(p, _) => {
                raw.v_scale_inv_ptr = p;
                host = true;
            }
            Scale::Raw(p) => raw.v_scale_inv_ptr = p,
        }
        raw.scale_granularity = self.granularity.code();
        match self.k_amax {
            Amax::None => {}
            Amax::Host(p, _) => {
                raw.k_amax = p;
                host = true;
            }
            Amax::Raw(p) => raw.k_amax = p,
        }
        match self.v_amax {
            Amax::None => {}
            Amax::Host(p, _) => {
                raw.v_amax = p;
                host = true;
            }
            Amax::Raw(p) => raw.v_amax = p,
        }
        raw.backend = match (host, self.backend) {
            (true, Backend::Auto) | (true, Backend::Reference) => sys::MLAKV_BACKEND_REFERENCE,
            (true, other) => {
                return Err(Error::new(
                    Status::MemorySpace,
                    format!(
                        "PackArgs: views of Rust slices (host memory) run on the reference \
                         backend only, not {:?}; make device views with Tensor::from_raw / \
                         TensorMut::from_raw",
                        other
                    ),
                ))
            }
            (false, b) => b.code(),
        };
        raw.device = self.device;
        raw.stream = self.stream;
        raw.pdl = self.pdl.code();
        raw.flags = self.flags;
        Ok(PackArgs {
            raw,
            _borrow: PhantomData,
        })
    }
}

impl fmt::Debug for PackArgsBuilder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PackArgsBuilder")
            .field("k_nope", &self.k_nope)
            .field("k_pe", &self.k_pe)
            .field("v", &self.v)
            .field("k_out", &self.k_out)
            .field("v_out", &self.v_out)
            .field("k_scale", &self.k_scale)
            .field("v_scale", &self.v_scale)
            .field("granularity", &self.granularity)
            .field("k_amax", &self.k_amax)
            .field("v_amax", &self.v_amax)
            .field("backend", &self.backend)
            .field("device", &self.device)
            .field("stream", &self.stream)
            .field("pdl", &self.pdl)
            .field("flags", &self.flags)
            .finish()
    }
}

/// The arguments of one pack call, ready to [`run`](PackArgs::run) (any number of times) or to
/// [`plan`](PackArgs::plan). Borrows its inputs shared and its outputs exclusively for `'a`.
///
/// `PackArgs` is `Send`: it can be built on one thread and run on another. The C library is
/// thread-safe, and different threads may run different `PackArgs` at the same time.
pub struct PackArgs<'a> {
    raw: sys::mlakv_pack_args,
    _borrow: PhantomData<(&'a [u8], &'a mut [u8])>,
}

// SAFETY: the views are borrows of Send/Sync data (slices) or raw memory whose from_raw contract
// covers use from any thread; the stream handle is valid from any thread (CUDA/HIP streams are),
// per stream()'s contract; the C library is thread-safe.
unsafe impl Send for PackArgs<'_> {}

impl<'a> PackArgs<'a> {
    /// A builder with the defaults.
    pub fn builder() -> PackArgsBuilder<'a> {
        PackArgsBuilder::new()
    }

    /// Runs `mlakv_pack_fp8`. Everything is validated first: on an error no output byte has been
    /// written (and on a GPU backend nothing was enqueued). On the reference backend the outputs
    /// are complete when this returns; on a GPU backend the work is enqueued on the stream.
    pub fn run(&mut self) -> Result<()> {
        // SAFETY: raw holds views that are in bounds (slice views, checked) or promised valid
        // (raw views, from_raw's contract), borrowed for 'a, which outlives &mut self.
        check(unsafe { sys::mlakv_pack_fp8(&self.raw) })
    }

    /// The backend, kernel variant and launch configuration [`run`](PackArgs::run) would use, as
    /// one line of text (`mlakv_pack_fp8_plan`), after the same validation. Writes nothing.
    pub fn plan(&self) -> Result<String> {
        // SAFETY: as for run; mlakv_pack_fp8_plan reads the arguments and writes only `buf`.
        read_text(|buf, size, needed| unsafe {
            sys::mlakv_pack_fp8_plan(&self.raw, buf, size, needed)
        })
    }

    /// The C argument struct.
    pub fn as_raw(&self) -> &sys::mlakv_pack_args {
        &self.raw
    }

    /// The backend code the call asks for (after the slice-view rule of
    /// [`PackArgsBuilder::build`]).
    pub fn backend(&self) -> Backend {
        Backend::from_code(self.raw.backend)
    }

    /// The scale granularity the call asks for.
    pub fn scale_granularity(&self) -> ScaleGranularity {
        ScaleGranularity::from_code(self.raw.scale_granularity)
    }
}

impl fmt::Debug for PackArgs<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PackArgs").field(&self.raw).finish()
    }
}

/// Calls a C function with the text-buffer convention (`buf`, `buf_size`, `*needed`;
/// `MLAKV_ERR_BUFFER_TOO_SMALL` when it did not fit) until the text fits, and returns it.
pub(crate) fn read_text<F>(mut call: F) -> Result<String>
where
    F: FnMut(*mut c_char, usize, *mut usize) -> i32,
{
    let mut buf = vec![0u8; 512];
    loop {
        let mut needed: usize = 0;
        let status = call(buf.as_mut_ptr() as *mut c_char, buf.len(), &mut needed);
        if status == sys::MLAKV_OK {
            let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
            buf.truncate(end);
            return Ok(match String::from_utf8(buf) {
                Ok(text) => text,
                Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
            });
        }
        if status == sys::MLAKV_ERR_BUFFER_TOO_SMALL && needed > buf.len() {
            // The text may grow between two calls (another thread sets a table): loop.
            buf.resize(needed, 0);
            continue;
        }
        return Err(Error::from_last_call(status));
    }
}
