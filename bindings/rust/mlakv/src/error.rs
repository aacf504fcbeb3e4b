//! [`Error`] and [`Status`]: what a failing call returns.

use std::ffi::CStr;
use std::fmt;

use mlakv_sys as sys;

/// Why a call failed: the C library's status code (`MLAKV_ERR_*`), by name.
///
/// Codes are never renumbered and new ones are only appended, so a status this version of the
/// crate does not know arrives as [`Status::Unknown`] with its code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Status {
    /// 1, `MLAKV_ERR_NULL_POINTER`: a required pointer is NULL (or a builder argument is unset).
    NullPointer,
    /// 2, `MLAKV_ERR_STRUCT_SIZE`: `struct_size` too small, or unknown trailing bytes set.
    StructSize,
    /// 3, `MLAKV_ERR_DTYPE`: unsupported or mismatched dtype.
    Dtype,
    /// 4, `MLAKV_ERR_RANK`: a tensor has the wrong number of dimensions.
    Rank,
    /// 5, `MLAKV_ERR_SHAPE`: shapes disagree with each other, or a view does not fit its slice.
    Shape,
    /// 6, `MLAKV_ERR_STRIDE`: bad strides (inner stride != 1, self-aliasing output, ...).
    Stride,
    /// 7, `MLAKV_ERR_ALIGNMENT`: a pointer is not aligned to its element size.
    Alignment,
    /// 8, `MLAKV_ERR_OVERLAP`: an output (`k_out`, `v_out`, an amax array) shares a byte with an
    /// input, a scale or another output.
    Overlap,
    /// 9, `MLAKV_ERR_SIZE_OVERFLOW`: a size or offset does not fit in 64 bits / the address space.
    SizeOverflow,
    /// 10, `MLAKV_ERR_UNSUPPORTED_DIMS`: a head dimension is zero or too large.
    UnsupportedDims,
    /// 11, `MLAKV_ERR_INVALID_ARGUMENT`: an enum value or flag is out of range.
    InvalidArgument,
    /// 12, `MLAKV_ERR_NO_SUCH_BACKEND`: the backend code names no backend of this library.
    NoSuchBackend,
    /// 13, `MLAKV_ERR_BACKEND_UNAVAILABLE`: the backend was not built or cannot run here.
    BackendUnavailable,
    /// 14, `MLAKV_ERR_DEVICE`: bad device ordinal or device/runtime failure.
    Device,
    /// 15, `MLAKV_ERR_LAUNCH`: the kernel launch failed.
    Launch,
    /// 16, `MLAKV_ERR_BUFFER_TOO_SMALL`: a text buffer is too small (handled inside this crate).
    BufferTooSmall,
    /// 17, `MLAKV_ERR_TABLE_PARSE`: a dispatch table text does not parse.
    TableParse,
    /// 18, `MLAKV_ERR_MEMORY_SPACE`: a pointer is not accessible from the chosen backend.
    MemorySpace,
    /// 19, `MLAKV_ERR_INTERNAL`: a bug in mlakv; please report it.
    Internal,
    /// 20, `MLAKV_ERR_NO_TABLE_ROW`: no row of the backend's dispatch table can run the call.
    NoTableRow,
    /// 21, `MLAKV_ERR_TABLE_DEVICE`: a table file was measured on a device this backend does not
    /// have.
    TableDevice,
    /// 22, `MLAKV_ERR_OVERLAP_UNDECIDED`: an output and another operand interleave in a way mlakv
    /// cannot decide (more than two large, unrelated strides): not proven disjoint, so refused;
    /// no overlap was found.
    OverlapUndecided,
    /// A code this version of the crate does not know.
    Unknown(i32),
}

impl Status {
    /// The status for a C status code. `0` (`MLAKV_OK`) is not an error: it maps to
    /// `Unknown(0)`, which no [`Error`] of this crate carries.
    pub fn from_code(code: i32) -> Status {
        match code {
            sys::MLAKV_ERR_NULL_POINTER => Status::NullPointer,
            sys::MLAKV_ERR_STRUCT_SIZE => Status::StructSize,
            sys::MLAKV_ERR_DTYPE => Status::Dtype,
            sys::MLAKV_ERR_RANK => Status::Rank,
            sys::MLAKV_ERR_SHAPE => Status::Shape,
            sys::MLAKV_ERR_STRIDE => Status::Stride,
            sys::MLAKV_ERR_ALIGNMENT => Status::Alignment,
            sys::MLAKV_ERR_OVERLAP => Status::Overlap,
            sys::MLAKV_ERR_SIZE_OVERFLOW => Status::SizeOverflow,
            sys::MLAKV_ERR_UNSUPPORTED_DIMS => Status::UnsupportedDims,
            sys::MLAKV_ERR_INVALID_ARGUMENT => Status::InvalidArgument,
            sys::MLAKV_ERR_NO_SUCH_BACKEND => Status::NoSuchBackend,
            sys::MLAKV_ERR_BACKEND_UNAVAILABLE => Status::BackendUnavailable,
            sys::MLAKV_ERR_DEVICE => Status::Device,
            sys::MLAKV_ERR_LAUNCH => Status::Launch,
            sys::MLAKV_ERR_BUFFER_TOO_SMALL => Status::BufferTooSmall,
            sys::MLAKV_ERR_TABLE_PARSE => Status::TableParse,
            sys::MLAKV_ERR_MEMORY_SPACE => Status::MemorySpace,
            sys::MLAKV_ERR_INTERNAL => Status::Internal,
            sys::MLAKV_ERR_NO_TABLE_ROW => Status::NoTableRow,
            sys::MLAKV_ERR_TABLE_DEVICE => Status::TableDevice,
            sys::MLAKV_ERR_OVERLAP_UNDECIDED => Status::OverlapUndecided,
            other => Status::Unknown(other),
        }
    }

    /// The C status code (`MLAKV_ERR_*`).
    pub fn code(self) -> i32 {
        match self {
            Status::NullPointer => sys::MLAKV_ERR_NULL_POINTER,
            Status::StructSize => sys::MLAKV_ERR_STRUCT_SIZE,
            Status::Dtype => sys::MLAKV_ERR_DTYPE,
            Status::Rank => sys::MLAKV_ERR_RANK,
            Status::Shape => sys::MLAKV_ERR_SHAPE,
            Status::Stride => sys::MLAKV_ERR_STRIDE,
            Status::Alignment => sys::MLAKV_ERR_ALIGNMENT,
            Status::Overlap => sys::MLAKV_ERR_OVERLAP,
            Status::SizeOverflow => sys::MLAKV_ERR_SIZE_OVERFLOW,
            Status::UnsupportedDims => sys::MLAKV_ERR_UNSUPPORTED_DIMS,
            Status::InvalidArgument => sys::MLAKV_ERR_INVALID_ARGUMENT,
            Status::NoSuchBackend => sys::MLAKV_ERR_NO_SUCH_BACKEND,
            Status::BackendUnavailable => sys::MLAKV_ERR_BACKEND_UNAVAILABLE,
            Status::Device => sys::MLAKV_ERR_DEVICE,
            Status::Launch => sys::MLAKV_ERR_LAUNCH,
            Status::BufferTooSmall => sys::MLAKV_ERR_BUFFER_TOO_SMALL,
            Status::TableParse => sys::MLAKV_ERR_TABLE_PARSE,
            Status::MemorySpace => sys::MLAKV_ERR_MEMORY_SPACE,
            Status::Internal => sys::MLAKV_ERR_INTERNAL,
            Status::NoTableRow => sys::MLAKV_ERR_NO_TABLE_ROW,
            Status::TableDevice => sys::MLAKV_ERR_TABLE_DEVICE,
            Status::OverlapUndecided => sys::MLAKV_ERR_OVERLAP_UNDECIDED,
            Status::Unknown(code) => code,
        }
    }

    /// The C constant's name, e.g. `"MLAKV_ERR_SHAPE"` (`"MLAKV_ERR_UNKNOWN"` for
    /// [`Status::Unknown`]).
    pub fn name(self) -> &'static str {
        match self {
            Status::NullPointer => "MLAKV_ERR_NULL_POINTER",
            Status::StructSize => "MLAKV_ERR_STRUCT_SIZE",
            Status::Dtype => "MLAKV_ERR_DTYPE",
            Status::Rank => "MLAKV_ERR_RANK",
            Status::Shape => "MLAKV_ERR_SHAPE",
            Status::Stride => "MLAKV_ERR_STRIDE",
            Status::Alignment => "MLAKV_ERR_ALIGNMENT",
            Status::Overlap => "MLAKV_ERR_OVERLAP",
            Status::SizeOverflow => "MLAKV_ERR_SIZE_OVERFLOW",
            Status::UnsupportedDims => "MLAKV_ERR_UNSUPPORTED_DIMS",
            Status::InvalidArgument => "MLAKV_ERR_INVALID_ARGUMENT",
            Status::NoSuchBackend => "MLAKV_ERR_NO_SUCH_BACKEND",
            Status::BackendUnavailable => "MLAKV_ERR_BACKEND_UNAVAILABLE",
            Status::Device => "MLAKV_ERR_DEVICE",
            Status::Launch => "MLAKV_ERR_LAUNCH",
            Status::BufferTooSmall => "MLAKV_ERR_BUFFER_TOO_SMALL",
            Status::TableParse => "MLAKV_ERR_TABLE_PARSE",
            Status::MemorySpace => "MLAKV_ERR_MEMORY_SPACE",
            Status::Internal => "MLAKV_ERR_INTERNAL",
            Status::NoTableRow => "MLAKV_ERR_NO_TABLE_ROW",
            Status::TableDevice => "MLAKV_ERR_TABLE_DEVICE",
            Status::OverlapUndecided => "MLAKV_ERR_OVERLAP_UNDECIDED",
            Status::Unknown(_) => "MLAKV_ERR_UNKNOWN",
        }
    }

    /// The library's description, `mlakv_status_string()`: e.g.
    /// `"MLAKV_ERR_SHAPE: shapes disagree with each other"`.
    pub fn description(self) -> String {
        // SAFETY: mlakv_status_string returns a static NUL-terminated string for any code.
        unsafe { cstr_to_string(sys::mlakv_status_string(self.code())) }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.description())
    }
}

/// A failed call: the [`Status`] and a message saying which argument failed and why.
///
/// For errors of the C library the message is its `mlakv_last_error()` text, read on the calling
/// thread right after the failing call. Some errors are found by this crate before anything is
/// passed to C (a view that does not fit its slice, an unset builder argument, a slice with a GPU
/// backend); they carry the matching status and a message of their own.
///
/// Whatever the error, no output byte has been written and nothing has been enqueued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    status: Status,
    message: String,
}

impl Error {
    /// An error with this status and message.
    pub fn new(status: Status, message: impl Into<String>) -> Error {
        Error {
            status,
            message: message.into(),
        }
    }

    /// The error of a failed C call: `code` with this thread's `mlakv_last_error()`. Call it right
    /// after the failing call, before any other mlakv call on this thread.
    pub(crate) fn from_last_call(code: i32) -> Error {
        // SAFETY: mlakv_last_error returns a NUL-terminated string that stays valid until the
        // next mlakv call on this thread; it is copied at once.
        let message = unsafe { cstr_to_string(sys::mlakv_last_error()) };
        Error {
            status: Status::from_code(code),
            message,
        }
    }

    /// Why the call failed.
    pub fn status(&self) -> Status {
        self.status
    }

    /// The C status code, `self.status().code()`.
    pub fn code(&self) -> i32 {
        self.status.code()
    }

    /// Which argument failed and why (may be empty).
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    /// `"<status description>: <message>"`, e.g.
    /// `"MLAKV_ERR_SHAPE: shapes disagree with each other: v.shape[1] = 8 ..."`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            write!(f, "{}", self.status)
        } else {
            write!(f, "{}: {}", self.status, self.message)
        }
    }
}

impl std::error::Error for Error {}

/// `Result<T, mlakv::Error>`.
pub type Result<T> = std::result::Result<T, Error>;

/// Turns a C status into a `Result`, reading the message on failure.
pub(crate) fn check(code: i32) -> Result<()> {
    if code == sys::MLAKV_OK {
        Ok(())
    } else {
        Err(Error::from_last_call(code))
    }
}

/// Copies a C string; NULL gives "".
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string valid for the duration of the call.
pub(crate) unsafe fn cstr_to_string(ptr: *const std::os::raw::c_char) -> String {
    if ptr.is_null() {
        String::new()
    } else {
        CStr::from_ptr(ptr).to_string_lossy().into_owned()
    }
}
