"""Reading a tensor through the DLPack protocol (``__dlpack__`` / ``__dlpack_device__``).

The binding *borrows* the producer's tensor: it asks for a capsule, reads the ``DLTensor``
(data, byte_offset, shape, strides, dtype, device) through the capsule's pointer, and keeps the
capsule (and so the producer's memory) alive until the C call has returned.  It never renames
the capsule to ``used_dltensor`` and never calls the deleter: the capsule still owns the
``DLManagedTensor``, and its destructor (the producer's) releases it when the capsule is
garbage-collected, exactly as the protocol specifies for a consumer that does not take
ownership.  Versioned capsules (DLPack >= 1.0, ``"dltensor_versioned"``) are asked for first and
legacy ones (``"dltensor"``) accepted; a ``READ_ONLY`` flag on an output is refused.
"""
from __future__ import annotations

import ctypes
from typing import Any, Optional, Tuple

from ._errors import Error, InvalidArgumentError, MemorySpaceError

# DLDeviceType
KDL_CPU = 1
KDL_CUDA = 2
KDL_CUDA_HOST = 3
KDL_ROCM = 10
KDL_ROCM_HOST = 11
KDL_CUDA_MANAGED = 13

# DLManagedTensorVersioned.flags
FLAG_READ_ONLY = 1 << 0

# (code, bits) -> dtype name used by the binding (lanes must be 1)
_DL_DTYPES = {
    (4, 16): "bf16",      # kDLBfloat
    (2, 16): "fp16",      # kDLFloat
    (2, 32): "fp32",
    (10, 8): "e4m3fn",    # kDLFloat8_e4m3fn
    (12, 8): "e5m2",      # kDLFloat8_e5m2
    (11, 8): "e4m3fnuz",  # kDLFloat8_e4m3fnuz
    (13, 8): "e5m2fnuz",  # kDLFloat8_e5m2fnuz
    (1, 8): "u8",         # kDLUInt: raw bytes / bits, interpreted with an explicit dtype
    (1, 16): "u16",
}


class DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class DLTensor(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("device", DLDevice),
        ("ndim", ctypes.c_int32),
        ("dtype", DLDataType),
        ("shape", ctypes.POINTER(ctypes.c_int64)),
        ("strides", ctypes.POINTER(ctypes.c_int64)),
        ("byte_offset", ctypes.c_uint64),
    ]


class DLManagedTensor(ctypes.Structure):
    pass


DLManagedTensor._fields_ = [
    ("dl_tensor", DLTensor),
    ("manager_ctx", ctypes.c_void_p),
    ("deleter", ctypes.CFUNCTYPE(None, ctypes.POINTER(DLManagedTensor))),
]


class DLPackVersion(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint32), ("minor", ctypes.c_uint32)]


class DLManagedTensorVersioned(ctypes.Structure):
    pass


DLManagedTensorVersioned._fields_ = [
    ("version", DLPackVersion),
    ("manager_ctx", ctypes.c_void_p),
    ("deleter", ctypes.CFUNCTYPE(None, ctypes.POINTER(DLManagedTensorVersioned))),
    ("flags", ctypes.c_uint64),
    ("dl_tensor", DLTensor),
]

_api = ctypes.pythonapi
_api.PyCapsule_GetName.restype = ctypes.c_char_p
_api.PyCapsule_GetName.argtypes = [ctypes.py_object]
_api.PyCapsule_GetPointer.restype = ctypes.c_void_p
_api.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
_api.PyCapsule_IsValid.restype = ctypes.c_int
_api.PyCapsule_IsValid.argtypes = [ctypes.py_object, ctypes.c_char_p]


def _err(cls, msg: str) -> Error:
    return cls(cls.status, msg)


def device_kind(dev_type: int) -> Optional[str]:
    """'cpu' for host-accessible memory, 'cuda' / 'rocm' for device memory, None otherwise."""
    if dev_type in (KDL_CPU, KDL_CUDA_HOST, KDL_ROCM_HOST):
        return "cpu"
    if dev_type in (KDL_CUDA, KDL_CUDA_MANAGED):
        return "cuda"
    if dev_type == KDL_ROCM:
        return "rocm"
    return None


def export(obj: Any, name: str, stream: Optional[int]) -> Tuple[Any, int, int]:
    """Asks ``obj`` for a DLPack capsule: returns (capsule, device_type, device_id).

    ``stream`` is the stream the call will be launched on (an int handle; None = the legacy
    default stream); it is passed to GPU producers so that they order their pending work
    before it, as the protocol asks."""
    try:
        dev_type, dev_id = obj.__dlpack_device__()
    except Exception as e:  # noqa: BLE001 - any failure: this is not a usable producer
        raise _err(InvalidArgumentError, "%s: __dlpack_device__() failed: %s" % (name, e))
    dev_type = int(dev_type)
    kw = {}
    if dev_type in (KDL_CUDA, KDL_CUDA_MANAGED):
        kw["stream"] = 1 if not stream else int(stream)  # 1 = CUDA's legacy default stream
    elif dev_type == KDL_ROCM:
        kw["stream"] = 0 if not stream else int(stream)  # 0 = HIP's default stream
    try:
        try:
            cap = obj.__dlpack__(max_version=(1, 0), **kw)
        except TypeError:  # a producer older than DLPack 1.0: no max_version keyword
            cap = obj.__dlpack__(**kw)
    except Exception as e:  # noqa: BLE001 - BufferError (read-only, dtype ...) or the producer's own
        raise _err(InvalidArgumentError, "%s: %s.__dlpack__() refused: %s: %s"
                   % (name, type(obj).__name__, type(e).__name__, e)) from None
    return cap, dev_type, int(dev_id)


def read(cap: Any, name: str, writable: bool):
    """Reads the DLTensor of an *unconsumed* capsule without taking ownership.

    Returns (data address incl. byte_offset, dtype name or None, dtype description, shape,
    strides in elements, device_type, device_id).  The capsule must stay referenced until the
    data is no longer used."""
    cname = _api.PyCapsule_GetName(cap)
    if cname == b"dltensor_versioned":
        mt = DLManagedTensorVersioned.from_address(_api.PyCapsule_GetPointer(cap, cname))
        if mt.version.major != 1:
            raise _err(InvalidArgumentError, "%s: DLPack version %d.%d is not supported (1.x is)"
                       % (name, mt.version.major, mt.version.minor))
        if writable and (mt.flags & FLAG_READ_ONLY):
            raise _err(InvalidArgumentError, "%s: the DLPack producer marks this output read-only"
                       % name)
        t = mt.dl_tensor
    elif cname == b"dltensor":
        t = DLManagedTensor.from_address(_api.PyCapsule_GetPointer(cap, cname)).dl_tensor
    else:
        raise _err(InvalidArgumentError, "%s: __dlpack__() returned a capsule named %r (already "
                   "consumed, or not DLPack)" % (name, cname))
    ndim = int(t.ndim)
    if ndim < 0 or ndim > 64:
        raise _err(InvalidArgumentError, "%s: DLTensor.ndim = %d" % (name, ndim))
    shape = tuple(int(t.shape[i]) for i in range(ndim))
    if t.strides:
        strides = tuple(int(t.strides[i]) for i in range(ndim))
    else:  # NULL strides: compact row-major
        acc, st = 1, []
        for n in reversed(shape):
            st.append(acc)
            acc *= max(n, 1)
        strides = tuple(reversed(st))
    code, bits, lanes = int(t.dtype.code), int(t.dtype.bits), int(t.dtype.lanes)
    dname = _DL_DTYPES.get((code, bits)) if lanes == 1 else None
    desc = "DLPack dtype (code=%d, bits=%d, lanes=%d)" % (code, bits, lanes)
    data = (t.data or 0) + int(t.byte_offset)
    return data, dname, desc, shape, strides, int(t.device.device_type), int(t.device.device_id)


def consume_check(cap: Any) -> bool:
    """True while the capsule is still an unconsumed DLPack capsule (tests use this)."""
    return bool(_api.PyCapsule_IsValid(cap, b"dltensor")
                or _api.PyCapsule_IsValid(cap, b"dltensor_versioned"))


def describe_device(dev_type: int, name: str) -> str:
    kind = device_kind(dev_type)
    if kind is None:
        raise _err(MemorySpaceError, "%s: DLPack device type %d is not host, CUDA or ROCm memory"
                   % (name, dev_type))
    return kind
