"""mlakv: fused MLA "concat k_nope with the broadcast k_pe, then FP8-quantize K and V".

Python binding of the mlakv C library (pure Python over ctypes: nothing is compiled at install).

    import numpy as np, ml_dtypes, mlakv
    k_out, v_out = mlakv.pack_fp8(k_nope, k_pe, v, k_scale_inv=1 / 0.0375, v_scale_inv=1 / 0.021)

``pack_fp8`` takes numpy arrays (host memory: the reference backend), torch tensors (CPU or
CUDA) and any DLPack producer, reads their shapes and strides itself, and raises a subclass of
:class:`mlakv.Error` per status.  For PyTorch serving code, :mod:`mlakv.torch` has the drop-in
``mla_kv_pack_quantize_fp8`` with the low-overhead cached call path.

The shared library is found through ``MLAKV_LIBRARY``, then a copy bundled in the package, then
the system's (``ctypes.util.find_library``, the loader, pkg-config's libdir); it is loaded on
first use, so ``import mlakv`` never fails for want of it.
"""
from __future__ import annotations

import os
from collections import namedtuple
from typing import Any, List, Union

from . import _capi, _core
from ._capi import (BACKEND_AUTO, BACKEND_CUDA, BACKEND_HIP, BACKEND_REFERENCE, DTYPE_BF16,
                    DTYPE_E4M3FN, DTYPE_E4M3FNUZ, DTYPE_E5M2, DTYPE_E5M2FNUZ, DTYPE_FP16,
                    DTYPE_FP32, FLAG_TRUST_POINTERS, PDL_AUTO, PDL_OFF, PDL_ON, SCALE_PER_HEAD,
                    SCALE_PER_TENSOR)
from ._core import clear_cache, pack_fp8, plan
from ._errors import (AlignmentError, BackendUnavailableError, BufferTooSmallError, DeviceError,
                      DtypeError, Error, InternalError, InvalidArgumentError, LaunchError,
                      LibraryError, LibraryNotFoundError, MemorySpaceError, NoSuchBackendError,
                      NoTableRowError, NullPointerError, OverlapError, OverlapUndecidedError,
                      RankError, ShapeError, SizeOverflowError, STATUS_NAMES, StrideError,
                      StructSizeError, TableDeviceError, TableParseError, UnsupportedDimsError,
                      error_class)

__version__ = "0.2.0"

__all__ = [
    "pack_fp8", "plan", "backends", "version", "version_string", "library_path", "load_library",
    "get_dispatch_table", "set_dispatch_table", "reset_dispatch_table", "load_dispatch_table",
    "clear_cache",
    "BackendInfo", "status_string", "STATUS_NAMES",
    "Error", "LibraryError", "LibraryNotFoundError", "NullPointerError", "StructSizeError",
    "DtypeError", "RankError", "ShapeError", "StrideError", "AlignmentError", "OverlapError",
    "SizeOverflowError", "UnsupportedDimsError", "InvalidArgumentError", "NoSuchBackendError",
    "BackendUnavailableError", "DeviceError", "LaunchError", "BufferTooSmallError",
    "TableParseError", "MemorySpaceError", "InternalError", "NoTableRowError",
    "TableDeviceError", "OverlapUndecidedError", "error_class",
    "BACKEND_AUTO", "BACKEND_REFERENCE", "BACKEND_CUDA", "BACKEND_HIP",
    "DTYPE_BF16", "DTYPE_FP16", "DTYPE_FP32", "DTYPE_E4M3FN", "DTYPE_E5M2", "DTYPE_E4M3FNUZ",
    "DTYPE_E5M2FNUZ", "PDL_AUTO", "PDL_ON", "PDL_OFF", "FLAG_TRUST_POINTERS",
    "SCALE_PER_TENSOR", "SCALE_PER_HEAD",
]

#: One backend of the library, as ``mlakv_backend_get_info`` describes it.
BackendInfo = namedtuple("BackendInfo", "backend name compiled usable device_count detail")


def version() -> int:
    """``mlakv_version()`` of the loaded library: MAJOR*10000 + MINOR*100 + PATCH."""
    return _capi.lib().version


def version_string() -> str:
    """``mlakv_version_string()``, e.g. ``"0.2.0 (reference, cuda)"``."""
    return _capi.lib().version_string


def library_path() -> str:
    """Where the loaded library came from (loading it if needed)."""
    return _capi.lib().path


def load_library(path: str) -> str:
    """Loads (and ABI-checks) the library at ``path`` and uses it from now on, instead of the
    ``MLAKV_LIBRARY`` / bundled / system search. Returns its version string."""
    return _capi.set_library(path).version_string


def status_string(status: int) -> str:
    """``mlakv_status_string(status)``: the status' name and meaning."""
    return (_capi.lib().lib.mlakv_status_string(int(status)) or b"").decode("utf-8", "replace")


def backends() -> List[BackendInfo]:
    """Every backend the library knows, in the order ``auto`` tries them: which are compiled in,
    which can run here, how many devices each sees, and why one is not usable."""
    L = _capi.lib()
    out = []
    for i in range(int(L.lib.mlakv_backend_count())):
        info = _capi.BackendInfo()
        info.struct_size = _capi.ctypes.sizeof(_capi.BackendInfo)
        L.check(L.lib.mlakv_backend_get_info(i, _capi.ctypes.byref(info)), "mlakv_backend_get_info")
        out.append(BackendInfo(int(info.backend), (info.name or b"").decode("utf-8", "replace"),
                               bool(info.compiled), bool(info.usable), int(info.device_count),
                               (info.detail or b"").decode("utf-8", "replace")))
    return out


def get_dispatch_table(backend: Any = "cuda") -> str:
    """The backend's hybrid dispatch table as text (one row per line, tried top to bottom)."""
    L = _capi.lib()
    b = _core.backend_code(backend)
    return L.text(lambda buf, n, needed: L.lib.mlakv_dispatch_table_get(b, buf, n, needed),
                  "mlakv_dispatch_table_get")


def set_dispatch_table(backend: Any, text: str) -> None:
    """Replaces the backend's dispatch table with rows parsed from ``text`` (the format
    :func:`get_dispatch_table` prints). On a parse error (:class:`TableParseError`, whose message
    names the line) the old table stays."""
    L = _capi.lib()
    b = _core.backend_code(backend)
    L.check(L.lib.mlakv_dispatch_table_set(b, text.encode("utf-8")), "mlakv_dispatch_table_set")


def reset_dispatch_table(backend: Any = "cuda") -> None:
    """Restores the backend's built-in dispatch table."""
    L = _capi.lib()
    L.check(L.lib.mlakv_dispatch_table_reset(_core.backend_code(backend)),
            "mlakv_dispatch_table_reset")


def load_dispatch_table(backend: Any, path: Union[str, "os.PathLike[str]"]) -> None:
    """Loads a per-device table file written by ``mlakv-tune`` (its header names the device it
    was measured on) and applies it to every device of this process that matches (GPU backends;
    the reference backend has none: :class:`InvalidArgumentError`). A malformed file is
    :class:`TableParseError`, a file for another device :class:`TableDeviceError`; either way
    nothing changes. :func:`set_dispatch_table` and :func:`reset_dispatch_table` forget loaded
    tables."""
    L = _capi.lib()
    b = _core.backend_code(backend)
    raw = os.fsencode(path)
    if b"\0" in raw:
        raise _core.err(InvalidArgumentError, "path %r contains a NUL byte" % (path,))
    L.check(L.lib.mlakv_dispatch_table_load(b, raw), "mlakv_dispatch_table_load")


# documentation of the generic entry points (defined in _core)
pack_fp8.__doc__ = """Packs and quantizes: k_out = [Q(k_nope*ks) | Q(k_pe*ks) broadcast over heads],
    v_out = Q(v*vs). Returns ``(k_out, v_out)``.

    Args:
        k_nope: ``[s, h, D_nope]`` bf16 / fp16 / fp32 (numpy: ``ml_dtypes.bfloat16``, float16,
            float32, or uint16 bf16 bits with ``input_dtype="bf16"``); torch tensor, numpy array
            or any ``__dlpack__`` producer; any non-negative strides, inner stride 1.
        k_pe: ``[s, D_rope]`` or ``[s, 1, D_rope]``, same dtype: one rope vector per token.
        v: ``[s, h, D_v]``, same dtype.
        k_scale_inv, v_scale_inv: fp32 multipliers (``1/scale``): numbers, or one-element
            float32 arrays/tensors passed by pointer (read when the backend runs; on a GPU: a
            captured CUDA graph sees later values). Per-head scales (libmlakv 0.2): both as
            ``[h]`` float32 arrays/tensors (contiguous, in the memory the backend reads: host
            arrays for the reference backend, the inputs' GPU otherwise); head ``j`` of
            ``k_out`` (its ``k_nope`` part and its copy of ``k_pe``) uses ``k_scale_inv[j]``,
            head ``j`` of ``v_out`` ``v_scale_inv[j]``.
        k_out, v_out: outputs ``[s, h, D_nope + D_rope]`` / ``[s, h, D_v]``, an FP8 dtype
            (ml_dtypes / torch float8_*) or uint8 (then ``fp8_dtype`` says the format); any
            strides with inner stride 1.  Allocated (contiguous) when None, for numpy and torch
            inputs: numpy outputs are uint8 unless ``fp8_dtype`` is an ml_dtypes dtype.
        fp8_dtype: "e4m3fn" (default), "e5m2", "e4m3fnuz", "e5m2fnuz", an ml_dtypes / torch
            dtype, or a code 4..7; taken from typed outputs when None.
        input_dtype: keyword; what uint16 inputs hold ("bf16" or "fp16"); checked otherwise.
        backend: keyword; "auto" (default: the first usable backend that reaches the memory),
            "reference", "cuda", "hip", or a code.
        pdl: keyword; None/"auto", True/"on", False/"off".
        stream: keyword; the CUDA/HIP stream (int handle, torch.cuda.Stream, ...). Default: torch's
            current stream of the device for torch CUDA tensors, else the legacy default stream.
        device: keyword; the GPU ordinal (default: k_nope's device).
        trust_pointers: keyword; set MLAKV_FLAG_TRUST_POINTERS.
        k_amax, v_amax: keyword; optional float32 arrays/tensors (``[1]`` with per-tensor scales,
            ``[h]`` with per-head scales; writable, in the backend's memory) into which the call
            accumulates the absolute maximum of the inputs before scaling: ``k_amax`` over
            ``k_nope`` and ``k_pe`` (per head: head ``j`` of ``k_nope`` and all of ``k_pe``),
            ``v_amax`` over ``v``; NaN is ignored, an infinity counts; the stored value becomes
            ``max(old, this call's max)``. Zero them once before calibrating.

    Raises:
        mlakv.Error: a subclass per status (``ShapeError``, ``OverlapError``, ...); the outputs
        are untouched (nothing was enqueued).
    """

plan.__doc__ = """The one-line plan (backend, arch, PDL, dispatch-table row, launch
    configuration) that :func:`pack_fp8` would use for these arguments, after the same
    validation; nothing runs. Takes :func:`pack_fp8`'s arguments (missing outputs are allocated
    for the question)."""
