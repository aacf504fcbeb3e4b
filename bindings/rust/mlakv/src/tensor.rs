//! Views of memory: [`Tensor`] (an input, read) and [`TensorMut`] (an output, written).
//!
//! A view is a data pointer, a dtype, a shape and element strides, the C library's
//! `mlakv_tensor` (DLPack `DLTensor` meaning). Views of Rust slices are checked when they are
//! made: every element the shape and strides reach must lie inside the slice, with overflow
//! checks, so that no call can read or write outside it. Views of raw (device) pointers are made
//! with the `unsafe` `from_raw` constructors; the C library validates those as far as it can
//! (alignment, overlap, memory space).

use std::fmt;
use std::marker::PhantomData;
use std::os::raw::c_void;

use mlakv_sys as sys;

use crate::error::{Error, Result, Status};
use crate::types::{Bf16, Dtype, Fp8Format, F16};

mod sealed {
    pub trait Sealed {}
    impl Sealed for crate::Bf16 {}
    impl Sealed for crate::F16 {}
    impl Sealed for f32 {}
}

/// An input element type: [`Bf16`], [`F16`] or `f32`. Sealed: no other type implements it.
pub trait Element: sealed::Sealed + Copy + 'static {
    /// The dtype of a slice of this type.
    const DTYPE: Dtype;
}

impl Element for Bf16 {
    const DTYPE: Dtype = Dtype::Bf16;
}

impl Element for F16 {
    const DTYPE: Dtype = Dtype::Fp16;
}

impl Element for f32 {
    const DTYPE: Dtype = Dtype::Fp32;
}

/// Checked shape and strides.
struct Geometry {
    ndim: i32,
    shape: [i64; sys::MLAKV_MAX_RANK],
    strides: [i64; sys::MLAKV_MAX_RANK],
    /// The element offset of the last element reached, `None` for an empty view.
    last: Option<usize>,
}

fn geometry(what: &str, shape: &[usize], strides: &[usize]) -> Result<Geometry> {
    if shape.is_empty() || shape.len() > sys::MLAKV_MAX_RANK {
        return Err(Error::new(
            Status::Rank,
            format!(
                "{}: a view has 1 to {} dimensions, this shape has {}",
                what,
                sys::MLAKV_MAX_RANK,
                shape.len()
            ),
        ));
    }
    if strides.len() != shape.len() {
        return Err(Error::new(
            Status::Stride,
            format!(
                "{}: {} strides for a shape of {} dimensions",
                what,
                strides.len(),
                shape.len()
            ),
        ));
    }
    let overflow = || {
        Error::new(
            Status::SizeOverflow,
            format!(
                "{}: shape {:?} with strides {:?} reaches an element offset that does not fit in \
                 64 bits",
                what, shape, strides
            ),
        )
    };
    let mut g = Geometry {
        ndim: shape.len() as i32,
        shape: [0; sys::MLAKV_MAX_RANK],
        strides: [0; sys::MLAKV_MAX_RANK],
        last: Some(0),
    };
    let mut last: usize = 0;
    for (i, (&n, &st)) in shape.iter().zip(strides).enumerate() {
        if n > i64::MAX as usize || st > i64::MAX as usize {
            return Err(overflow());
        }
        g.shape[i] = n as i64;
        g.strides[i] = st as i64;
        if n == 0 {
            g.last = None;
        } else {
            last = (n - 1)
                .checked_mul(st)
                .and_then(|step| last.checked_add(step))
                .ok_or_else(overflow)?;
        }
    }
    if last > i64::MAX as usize {
        return Err(overflow());
    }
    if g.last.is_some() {
        g.last = Some(last);
    }
    Ok(g)
}

/// Checks a view of a slice of `len` elements.
fn slice_geometry(what: &str, len: usize, shape: &[usize], strides: &[usize]) -> Result<Geometry> {
    let g = geometry(what, shape, strides)?;
    if let Some(last) = g.last {
        if last >= len {
            return Err(Error::new(
                Status::Shape,
                format!(
                    "{}: shape {:?} with strides {:?} reaches element {}, past the end of a slice \
                     of {} elements",
                    what, shape, strides, last, len
                ),
            ));
        }
    }
    Ok(g)
}

/// Row-major (C-contiguous) strides of a shape, in elements.
pub fn contiguous_strides(shape: &[usize]) -> Result<Vec<usize>> {
    let mut strides = vec![0usize; shape.len()];
    let mut step: usize = 1;
    for i in (0..shape.len()).rev() {
        strides[i] = step;
        step = step.checked_mul(shape[i].max(1)).ok_or_else(|| {
            Error::new(
                Status::SizeOverflow,
                format!("shape {:?}: the element count overflows", shape),
            )
        })?;
    }
    Ok(strides)
}

fn raw_tensor(data: *mut c_void, dtype: Dtype, g: &Geometry) -> sys::mlakv_tensor {
    sys::mlakv_tensor {
        data,
        dtype: dtype.code(),
        ndim: g.ndim,
        shape: g.shape,
        strides: g.strides,
    }
}

/// The read-only accessors and `Debug` that `Tensor` and `TensorMut` share (both wrap a
/// `sys::mlakv_tensor` in `raw` and remember whether it views a Rust slice).
macro_rules! view_common {
    ($ty:ident) => {
        impl $ty<'_> {
            /// The element type.
            pub fn dtype(&self) -> Option<Dtype> {
                Dtype::from_code(self.raw.dtype)
            }

            /// The shape (`ndim` entries).
            pub fn shape(&self) -> &[i64] {
                &self.raw.shape[..self.raw.ndim as usize]
            }

            /// The strides in elements (`ndim` entries).
            pub fn strides(&self) -> &[i64] {
                &self.raw.strides[..self.raw.ndim as usize]
            }

            /// Whether this is a view of a Rust slice (host memory) rather than of a raw pointer.
            pub fn is_slice_view(&self) -> bool {
                self.host_slice
            }

            /// The C view.
            pub fn as_raw(&self) -> &sys::mlakv_tensor {
                &self.raw
            }

            pub(crate) fn into_raw(self) -> (sys::mlakv_tensor, bool) {
                (self.raw, self.host_slice)
            }
        }

        impl fmt::Debug for $ty<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("data", &self.raw.data)
                    .field("dtype", &self.dtype())
                    .field("shape", &self.shape())
                    .field("strides", &self.strides())
                    .field("slice_view", &self.host_slice)
                    .finish()
            }
        }
    };
}

/// An input view (`k_nope`, `k_pe` or `v`): borrowed, read-only memory of bf16, fp16 or fp32.
///
/// Made from a slice ([`Tensor::new`], [`Tensor::contiguous`], [`Tensor::from_bits`]), which is
/// checked against the shape and strides, or from a raw pointer ([`Tensor::from_raw`], e.g.
/// device memory). Shapes and strides are in elements; the innermost stride must be 1 (the
/// library checks that).
#[derive(Clone, Copy)]
pub struct Tensor<'a> {
    raw: sys::mlakv_tensor,
    host_slice: bool,
    _borrow: PhantomData<&'a [u8]>,
}

// SAFETY: a Tensor is a shared borrow of its memory (like `&'a [T]`, which is Send + Sync for
// the Sync element types here); views from raw pointers are covered by from_raw's contract.
unsafe impl Send for Tensor<'_> {}
unsafe impl Sync for Tensor<'_> {}

impl<'a> Tensor<'a> {
    /// A view of `data` with this shape and these strides (in elements). Fails with
    /// [`Status::Rank`] for a rank outside 1..=4, [`Status::Stride`] when `strides` and `shape`
    /// differ in length, [`Status::Shape`] when the view reaches past the end of `data`, and
    /// [`Status::SizeOverflow`] when an offset overflows.
    pub fn new<T: Element>(data: &'a [T], shape: &[usize], strides: &[usize]) -> Result<Self> {
        let g = slice_geometry("Tensor::new", data.len(), shape, strides)?;
        Ok(Tensor {
            raw: raw_tensor(data.as_ptr() as *mut c_void, T::DTYPE, &g),
            host_slice: true,
            _borrow: PhantomData,
        })
    }

    /// A row-major view of `data` with this shape (it may be shorter than the slice).
    pub fn contiguous<T: Element>(data: &'a [T], shape: &[usize]) -> Result<Self> {
        Tensor::new(data, shape, &contiguous_strides(shape)?)
    }

    /// A view of 16-bit values held as raw bits: `dtype` is [`Dtype::Bf16`] or [`Dtype::Fp16`]
    /// (anything else fails with [`Status::Dtype`]).
    pub fn from_bits(
        data: &'a [u16],
        dtype: Dtype,
        shape: &[usize],
        strides: &[usize],
    ) -> Result<Self> {
        match dtype {
            Dtype::Bf16 => Tensor::new(Bf16::from_bits_slice(data), shape, strides),
            Dtype::Fp16 => Tensor::new(F16::from_bits_slice(data), shape, strides),
            other => Err(Error::new(
                Status::Dtype,
                format!(
                    "Tensor::from_bits: u16 data is bf16 or fp16, not {}",
                    other.name()
                ),
            )),
        }
    }

    /// A view of memory this crate cannot see: device memory, or host memory not held in a
    /// slice. Rank and offset overflow are checked here; dtype, alignment, overlaps and the
    /// memory space are checked by the library when the call runs.
    ///
    /// # Safety
    ///
    /// For as long as the view (and any `PackArgs` made from it) is used, every element that
    /// `shape` and `strides` reach from `data` must be readable memory of `dtype` that the chosen
    /// backend can access (device memory for a GPU backend, host memory for the reference
    /// backend), and nothing may write it while a call reads it (for a GPU backend: until the
    /// work enqueued on the stream has finished). The lifetime `'a` is unbounded: tie it to the
    /// owner of the memory.
    pub unsafe fn from_raw(
        data: *const c_void,
        dtype: Dtype,
        shape: &[usize],
        strides: &[usize],
    ) -> Result<Self> {
        let g = geometry("Tensor::from_raw", shape, strides)?;
        Ok(Tensor {
            raw: raw_tensor(data as *mut c_void, dtype, &g),
            host_slice: false,
            _borrow: PhantomData,
        })
    }
}

view_common!(Tensor);

/// An output view (`k_out` or `v_out`): borrowed, writable FP8 memory, one byte per element.
///
/// Made from a `&mut [u8]` ([`TensorMut::new`], [`TensorMut::contiguous`]), which is checked
/// against the shape and strides, or from a raw pointer ([`TensorMut::from_raw`]). Because each
/// view holds a mutable borrow, two slice views cannot alias; `k_out` and `v_out` may be two
/// parts of one buffer through `split_at_mut`.
pub struct TensorMut<'a> {
    raw: sys::mlakv_tensor,
    host_slice: bool,
    _borrow: PhantomData<&'a mut [u8]>,
}

// SAFETY: a TensorMut is an exclusive borrow of its memory (like `&'a mut [u8]`); it gives no
// access through `&TensorMut`. Views from raw pointers are covered by from_raw's contract.
unsafe impl Send for TensorMut<'_> {}
unsafe impl Sync for TensorMut<'_> {}

impl<'a> TensorMut<'a> {
    /// A view of `data` holding `format` values with this shape and these strides (in
    /// elements = bytes). Fails like [`Tensor::new`].
    pub fn new(
        data: &'a mut [u8],
        format: Fp8Format,
        shape: &[usize],
        strides: &[usize],
    ) -> Result<Self> {
        let g = slice_geometry("TensorMut::new", data.len(), shape, strides)?;
        Ok(TensorMut {
            raw: raw_tensor(data.as_mut_ptr() as *mut c_void, format.dtype(), &g),
            host_slice: true,
            _borrow: PhantomData,
        })
    }

    /// A row-major view of `data` with this shape (it may be shorter than the slice).
    pub fn contiguous(data: &'a mut [u8], format: Fp8Format, shape: &[usize]) -> Result<Self> {
        TensorMut::new(data, format, shape, &contiguous_strides(shape)?)
    }

    /// A view of writable memory this crate cannot see (device memory, usually). Rank and offset
    /// overflow are checked here; the rest by the library when the call runs (which rejects
    /// outputs that overlap an input or each other, [`Status::Overlap`]).
    ///
    /// # Safety
    ///
    /// For as long as the view (and any `PackArgs` made from it) is used, every element that
    /// `shape` and `strides` reach from `data` must be writable memory that the chosen backend
    /// can access, and nothing else may read or write it while a call runs (for a GPU backend:
    /// until the work enqueued on the stream has finished). The lifetime `'a` is unbounded: tie
    /// it to the owner of the memory.
    pub unsafe fn from_raw(
        data: *mut c_void,
        dtype: Dtype,
        shape: &[usize],
        strides: &[usize],
    ) -> Result<Self> {
        let g = geometry("TensorMut::from_raw", shape, strides)?;
        Ok(TensorMut {
            raw: raw_tensor(data, dtype, &g),
            host_slice: false,
            _borrow: PhantomData,
        })
    }
}

view_common!(TensorMut);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_views_against_the_slice() {
        let data = vec![0f32; 24];
        assert!(Tensor::contiguous(&data, &[2, 3, 4]).is_ok());
        assert!(Tensor::new(&data, &[2, 3, 4], &[12, 4, 1]).is_ok());
        // the last element reached is 1*12 + 2*4 + 4 = 24: one past the end
        let e = Tensor::new(&data, &[2, 3, 5], &[12, 4, 1]).unwrap_err();
        assert_eq!(e.status(), Status::Shape);
        assert!(e.message().contains("element 24"), "{}", e);
        assert!(e.message().contains("24 elements"), "{}", e);
        // empty views reach nothing, whatever the strides
        assert!(Tensor::new(&data, &[0, 3, 4], &[1000, 4, 1]).is_ok());
        assert!(Tensor::new(&data[..0], &[0, 1], &[1, 1]).is_ok());
        // broadcasting strides of 0 are fine as far as the bounds go
        assert!(Tensor::new(&data, &[5, 4], &[0, 1]).is_ok());
        assert_eq!(
            Tensor::contiguous(&data, &[]).unwrap_err().status(),
            Status::Rank
        );
        assert_eq!(
            Tensor::contiguous(&data, &[1, 1, 1, 1, 1])
                .unwrap_err()
                .status(),
            Status::Rank
        );
        assert_eq!(
            Tensor::new(&data, &[2, 3], &[3]).unwrap_err().status(),
            Status::Stride
        );
        assert_eq!(
            Tensor::new(&data, &[2, 3], &[usize::MAX / 2, 1])
                .unwrap_err()
                .status(),
            Status::SizeOverflow
        );
        assert_eq!(
            Tensor::new(&data, &[usize::MAX, 1], &[1, 1])
                .unwrap_err()
                .status(),
            Status::SizeOverflow
        );
        assert_eq!(
            Tensor::new(&data, &[3, 3], &[1 << 62, 1])
                .unwrap_err()
                .status(),
            Status::SizeOverflow
        );
        let bits = vec![0u16; 8];
        assert_eq!(
            Tensor::from_bits(&bits, Dtype::Fp32, &[8], &[1])
                .unwrap_err()
                .status(),
            Status::Dtype
        );
        let t = Tensor::from_bits(&bits, Dtype::Fp16, &[2, 4], &[4, 1]).unwrap();
        assert_eq!(t.dtype(), Some(Dtype::Fp16));
        assert_eq!(t.shape(), &[2, 4]);
        assert_eq!(t.strides(), &[4, 1]);
        assert!(t.is_slice_view());

        let mut out = vec![0u8; 10];
        let e = TensorMut::contiguous(&mut out, Fp8Format::E4m3fn, &[11]).unwrap_err();
        assert_eq!(e.status(), Status::Shape);
        let o = TensorMut::contiguous(&mut out, Fp8Format::E5m2, &[2, 5]).unwrap();
        assert_eq!(o.dtype(), Some(Dtype::E5m2));
    }

    #[test]
    fn contiguous_strides_are_row_major() {
        assert_eq!(
            contiguous_strides(&[4, 16, 192]).unwrap(),
            vec![3072, 192, 1]
        );
        assert_eq!(
            contiguous_strides(&[0, 16, 192]).unwrap(),
            vec![3072, 192, 1]
        );
        assert_eq!(
            contiguous_strides(&[usize::MAX, 4, 4])
                .unwrap_err()
                .status(),
            Status::SizeOverflow
        );
    }
}
