"""The exception hierarchy: one :class:`Error` subclass per mlakv status code.

Every failing call raises a subclass of :class:`mlakv.Error` that names the status
(``.status``, the number; ``.name``, e.g. ``"MLAKV_ERR_SHAPE"``) and carries the library's own
explanation (``.message``, what ``mlakv_last_error()`` said: which argument and why).  Checks
that the binding itself makes before calling the library (an array type it cannot read, a
missing ``fp8_dtype`` for ``uint8`` outputs ...) raise the same classes, with the status the
library would have given, so one ``except mlakv.DtypeError`` catches both.

Argument errors also derive from the matching built-in exception (``ValueError`` for shapes,
strides, overlaps ...; ``TypeError`` for dtypes), so generic handlers keep working.
"""
from __future__ import annotations

from typing import Dict, Optional, Type

__all__ = [
    "Error", "LibraryError", "LibraryNotFoundError",
    "NullPointerError", "StructSizeError", "DtypeError", "RankError", "ShapeError",
    "StrideError", "AlignmentError", "OverlapError", "SizeOverflowError",
    "UnsupportedDimsError", "InvalidArgumentError", "NoSuchBackendError",
    "BackendUnavailableError", "DeviceError", "LaunchError", "BufferTooSmallError",
    "TableParseError", "MemorySpaceError", "InternalError", "NoTableRowError",
    "TableDeviceError", "OverlapUndecidedError", "STATUS_NAMES", "error_class",
]


class Error(Exception):
    """A failed mlakv call.

    Attributes:
        status:  the mlakv status code (``int``, 1..22 today; see ``mlakv.h``).
        name:    the status' name, e.g. ``"MLAKV_ERR_SHAPE"``.
        message: what went wrong: ``mlakv_last_error()``'s text for a failure reported by the
                 library, the binding's own text for one found before the call.
        function: the C function that failed (``"mlakv_pack_fp8"`` ...), or ``None`` when the
                 binding refused the arguments before calling the library.
    """

    status: int = -1

    def __init__(self, status: int, message: str, name: Optional[str] = None,
                 function: Optional[str] = None) -> None:
        self.status = int(status)
        self.name = name or STATUS_NAMES.get(self.status, "MLAKV_STATUS_%d" % self.status)
        self.message = message
        self.function = function
        super().__init__(str(self))

    def __str__(self) -> str:
        where = "%s: " % self.function if self.function else ""
        return "%s%s (%d): %s" % (where, self.name, self.status, self.message or "(no message)")

    def __reduce__(self):  # picklable (multiprocessing, pytest-xdist)
        return (_rebuild, (type(self), self.status, self.message, self.name, self.function))


def _rebuild(cls, status, message, name, function):
    return cls(status, message, name, function)


class NullPointerError(Error):
    """1 MLAKV_ERR_NULL_POINTER: a required pointer is NULL."""
    status = 1


class StructSizeError(Error):
    """2 MLAKV_ERR_STRUCT_SIZE: struct_size too small, or unknown trailing bytes set."""
    status = 2


class DtypeError(Error, TypeError):
    """3 MLAKV_ERR_DTYPE: an unsupported or mismatched dtype."""
    status = 3


class RankError(Error, ValueError):
    """4 MLAKV_ERR_RANK: a tensor has the wrong number of dimensions."""
    status = 4


class ShapeError(Error, ValueError):
    """5 MLAKV_ERR_SHAPE: shapes disagree with each other."""
    status = 5


class StrideError(Error, ValueError):
    """6 MLAKV_ERR_STRIDE: negative stride, inner stride != 1, or a self-aliasing output."""
    status = 6


class AlignmentError(Error, ValueError):
    """7 MLAKV_ERR_ALIGNMENT: a pointer is not aligned to its element size."""
    status = 7


class OverlapError(Error, ValueError):
    """8 MLAKV_ERR_OVERLAP: an output (k_out, v_out, an amax array) shares a byte with an input,
    a scale or another output."""
    status = 8


class SizeOverflowError(Error, ValueError):
    """9 MLAKV_ERR_SIZE_OVERFLOW: a size or offset does not fit in 64 bits / the address space."""
    status = 9


class UnsupportedDimsError(Error, ValueError):
    """10 MLAKV_ERR_UNSUPPORTED_DIMS: a head dimension is zero or too large."""
    status = 10


class InvalidArgumentError(Error, ValueError):
    """11 MLAKV_ERR_INVALID_ARGUMENT: an enum value or flag is out of range."""
    status = 11


class NoSuchBackendError(Error, ValueError):
    """12 MLAKV_ERR_NO_SUCH_BACKEND: the backend code names no backend of this library."""
    status = 12


class BackendUnavailableError(Error):
    """13 MLAKV_ERR_BACKEND_UNAVAILABLE: the backend was not built or cannot run here."""
    status = 13


class DeviceError(Error):
    """14 MLAKV_ERR_DEVICE: a bad device ordinal or a device/runtime failure."""
    status = 14


class LaunchError(Error):
    """15 MLAKV_ERR_LAUNCH: the kernel launch failed."""
    status = 15


class BufferTooSmallError(Error):
    """16 MLAKV_ERR_BUFFER_TOO_SMALL: a text buffer is too small (the binding retries)."""
    status = 16


class TableParseError(Error, ValueError):
    """17 MLAKV_ERR_TABLE_PARSE: a dispatch table text does not parse."""
    status = 17


class MemorySpaceError(Error, ValueError):
    """18 MLAKV_ERR_MEMORY_SPACE: a pointer is not accessible from the chosen backend."""
    status = 18


class InternalError(Error):
    """19 MLAKV_ERR_INTERNAL: a bug in mlakv; please report it."""
    status = 19


class NoTableRowError(Error):
    """20 MLAKV_ERR_NO_TABLE_ROW: no row of the backend's dispatch table can run the call."""
    status = 20


class TableDeviceError(Error):
    """21 MLAKV_ERR_TABLE_DEVICE: a table file was measured on a device this backend does not
    have."""
    status = 21


class OverlapUndecidedError(Error, ValueError):
    """22 MLAKV_ERR_OVERLAP_UNDECIDED: an output and another operand interleave in a way mlakv
    cannot decide (more than two large, unrelated strides): not proven disjoint, so refused; no
    overlap was found. (Not a subclass of :class:`OverlapError`: nothing was found to overlap;
    ``except (mlakv.OverlapError, mlakv.OverlapUndecidedError)`` catches both.)"""
    status = 22


class LibraryError(OSError):
    """The shared library could not be loaded, or it does not match this binding (ABI)."""


class LibraryNotFoundError(LibraryError):
    """No libmlakv was found; the message lists every place that was tried."""


STATUS_NAMES: Dict[int, str] = {
    0: "MLAKV_OK",
    1: "MLAKV_ERR_NULL_POINTER",
    2: "MLAKV_ERR_STRUCT_SIZE",
    3: "MLAKV_ERR_DTYPE",
    4: "MLAKV_ERR_RANK",
    5: "MLAKV_ERR_SHAPE",
    6: "MLAKV_ERR_STRIDE",
    7: "MLAKV_ERR_ALIGNMENT",
    8: "MLAKV_ERR_OVERLAP",
    9: "MLAKV_ERR_SIZE_OVERFLOW",
    10: "MLAKV_ERR_UNSUPPORTED_DIMS",
    11: "MLAKV_ERR_INVALID_ARGUMENT",
    12: "MLAKV_ERR_NO_SUCH_BACKEND",
    13: "MLAKV_ERR_BACKEND_UNAVAILABLE",
    14: "MLAKV_ERR_DEVICE",
    15: "MLAKV_ERR_LAUNCH",
    16: "MLAKV_ERR_BUFFER_TOO_SMALL",
    17: "MLAKV_ERR_TABLE_PARSE",
    18: "MLAKV_ERR_MEMORY_SPACE",
    19: "MLAKV_ERR_INTERNAL",
    20: "MLAKV_ERR_NO_TABLE_ROW",
    21: "MLAKV_ERR_TABLE_DEVICE",
    22: "MLAKV_ERR_OVERLAP_UNDECIDED",
}

_CLASSES: Dict[int, Type[Error]] = {
    c.status: c for c in (
        NullPointerError, StructSizeError, DtypeError, RankError, ShapeError, StrideError,
        AlignmentError, OverlapError, SizeOverflowError, UnsupportedDimsError,
        InvalidArgumentError, NoSuchBackendError, BackendUnavailableError, DeviceError,
        LaunchError, BufferTooSmallError, TableParseError, MemorySpaceError, InternalError,
        NoTableRowError, TableDeviceError, OverlapUndecidedError)
}


def error_class(status: int) -> Type[Error]:
    """The :class:`Error` subclass for a status code (:class:`Error` itself for a code this
    binding does not know, e.g. one appended by a newer library)."""
    return _CLASSES.get(int(status), Error)
