"""The framework-neutral call path: numpy arrays, torch tensors and DLPack producers.

``pack_fp8`` reads each argument's data pointer, dtype, shape and strides itself (numpy's array
interface, torch's tensor attributes, or the DLTensor of a DLPack capsule), resolves the dtypes
(``uint16`` bf16 bits and ``uint8`` FP8 bytes need an explicit ``input_dtype`` / ``fp8_dtype``),
allocates missing outputs (numpy or torch, like ``k_nope``), and calls ``mlakv_pack_fp8``.

The ``mlakv_pack_args`` struct is cached per thread, keyed by everything in it that does not
change from call to call (dtypes, shapes, strides, backend, PDL mode, device, flags); a call
whose key was seen before only writes the five data pointers, the two scales, the two scale
pointers, the stream, the scale granularity and the two amax pointers into the cached struct.
``mlakv.torch`` uses the same entries from its own, leaner front end.

Scales and amax (:func:`scales_and_amax`): a number or a one-element float32 array is one
multiplier for all heads (``MLAKV_SCALE_PER_TENSOR``); a ``[h]`` float32 array is one per head
(``MLAKV_SCALE_PER_HEAD``, both K and V then).  ``k_amax`` / ``v_amax`` are optional float32
arrays the backend accumulates ``max |x|`` into: ``[1]`` per tensor, ``[h]`` per head.
"""
from __future__ import annotations

import ctypes
import sys
import threading
from typing import Any, Dict, List, Optional, Sequence, Tuple

from . import _capi
from . import _dlpack
from ._capi import (BACKEND_AUTO, BACKEND_CUDA, BACKEND_HIP, BACKEND_REFERENCE, DTYPE_BF16,
                    DTYPE_E4M3FN, DTYPE_E4M3FNUZ, DTYPE_E5M2, DTYPE_E5M2FNUZ, DTYPE_FP16,
                    DTYPE_FP32, FLAG_TRUST_POINTERS, MAX_RANK, PDL_AUTO, PDL_OFF, PDL_ON,
                    SCALE_PER_HEAD, SCALE_PER_TENSOR)
from ._errors import (DtypeError, Error, InvalidArgumentError, MemorySpaceError, RankError,
                      ShapeError, StrideError, StructSizeError)

get_ident = threading.get_ident

# ---- dtype names ---------------------------------------------------------------------------
FP8_CODES = {"e4m3fn": DTYPE_E4M3FN, "e5m2": DTYPE_E5M2, "e4m3fnuz": DTYPE_E4M3FNUZ,
             "e5m2fnuz": DTYPE_E5M2FNUZ}
INPUT_CODES = {"bf16": DTYPE_BF16, "fp16": DTYPE_FP16, "fp32": DTYPE_FP32}
_ALIASES = {
    "float8_e4m3fn": "e4m3fn", "fp8_e4m3fn": "e4m3fn",
    "float8_e5m2": "e5m2", "fp8_e5m2": "e5m2",
    "float8_e4m3fnuz": "e4m3fnuz", "fp8_e4m3fnuz": "e4m3fnuz",
    "float8_e5m2fnuz": "e5m2fnuz", "fp8_e5m2fnuz": "e5m2fnuz",
    "bfloat16": "bf16", "float16": "fp16", "half": "fp16", "float32": "fp32", "float": "fp32",
    "uint8": "u8", "uint16": "u16",
}
CODE_NAMES = {v: k for k, v in list(FP8_CODES.items()) + list(INPUT_CODES.items())}
# numpy / ml_dtypes dtype names of the array itself
_NP_NAMES = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32", "float8_e4m3fn": "e4m3fn",
             "float8_e5m2": "e5m2", "float8_e4m3fnuz": "e4m3fnuz", "float8_e5m2fnuz": "e5m2fnuz",
             "uint8": "u8", "uint16": "u16"}
# torch dtypes by str(): "torch.bfloat16" ...
_TORCH_NAMES = {"torch.bfloat16": "bf16", "torch.float16": "fp16", "torch.float32": "fp32",
                "torch.float8_e4m3fn": "e4m3fn", "torch.float8_e5m2": "e5m2",
                "torch.float8_e4m3fnuz": "e4m3fnuz", "torch.float8_e5m2fnuz": "e5m2fnuz",
                "torch.uint8": "u8", "torch.uint16": "u16"}
_BACKENDS = {"auto": BACKEND_AUTO, "reference": BACKEND_REFERENCE, "ref": BACKEND_REFERENCE,
             "cpu": BACKEND_REFERENCE, "cuda": BACKEND_CUDA, "hip": BACKEND_HIP,
             "rocm": BACKEND_HIP}


def err(cls, msg: str) -> Error:
    """A binding-side error of class ``cls`` (its status is the class' status)."""
    return cls(cls.status, msg)


def dtype_name(spec: Any) -> str:
    """Normalises a dtype given as a string, a numpy / ml_dtypes dtype or type, or a torch dtype
    to the binding's short name ("bf16", "e4m3fn", "u8" ...); unknown ones keep their text."""
    if isinstance(spec, str):
        s = spec.strip().lower()
    elif type(spec).__module__ == "torch" or str(type(spec)) == "<class 'torch.dtype'>":
        s = str(spec)
    else:
        np = sys.modules.get("numpy")
        s = None
        if np is not None:
            try:
                s = np.dtype(spec).name
            except TypeError:
                s = None
        if s is None:
            s = getattr(spec, "__name__", None) or str(spec)
        s = s.lower()
    for prefix in ("torch.", "numpy.", "np.", "ml_dtypes."):
        if s.startswith(prefix):
            s = s[len(prefix):]
    return _ALIASES.get(s, s)


def fp8_code(spec: Any) -> int:
    """The mlakv FP8 dtype code of ``spec`` (a code 4..7, a name like "e4m3fn", an ml_dtypes
    dtype, a torch float8 dtype); DtypeError otherwise."""
    if isinstance(spec, int) and not isinstance(spec, bool):
        if spec in CODE_NAMES and spec in FP8_CODES.values():
            return spec
        raise err(DtypeError, "fp8_dtype %d is not an FP8 dtype code (4..7)" % spec)
    code = FP8_CODES.get(dtype_name(spec))
    if code is None:
        raise err(DtypeError, "fp8_dtype %r is not an FP8 format mlakv writes (e4m3fn, e5m2, "
                  "e4m3fnuz, e5m2fnuz)" % (spec,))
    return code


def input_code(spec: Any) -> int:
    """The mlakv input dtype code of ``spec`` ("bf16", "fp16", "fp32", codes 1..3, numpy or torch
    dtypes); DtypeError otherwise."""
    if isinstance(spec, int) and not isinstance(spec, bool):
        if spec in INPUT_CODES.values():
            return spec
        raise err(DtypeError, "input_dtype %d is not an input dtype code (1..3)" % spec)
    code = INPUT_CODES.get(dtype_name(spec))
    if code is None:
        raise err(DtypeError, "input_dtype %r is not bf16, fp16 or fp32" % (spec,))
    return code


def backend_code(spec: Any) -> int:
    if spec is None:
        return BACKEND_AUTO
    if isinstance(spec, int) and not isinstance(spec, bool):
        return spec  # the library says MLAKV_ERR_NO_SUCH_BACKEND for unknown codes
    code = _BACKENDS.get(str(spec).strip().lower())
    if code is None:
        raise err(InvalidArgumentError, "backend %r is not one of auto, reference, cuda, hip" % (spec,))
    return code


def pdl_code(spec: Any) -> int:
    """None/"auto" -> MLAKV_PDL_AUTO, True/"on" -> MLAKV_PDL_ON, False/"off" -> MLAKV_PDL_OFF
    (or the code itself)."""
    if spec is None:
        return PDL_AUTO
    if spec is True:
        return PDL_ON
    if spec is False:
        return PDL_OFF
    if isinstance(spec, int):
        return spec  # out-of-range codes: MLAKV_ERR_INVALID_ARGUMENT from the library
    s = str(spec).strip().lower()
    if s in ("auto", "on", "off"):
        return {"auto": PDL_AUTO, "on": PDL_ON, "off": PDL_OFF}[s]
    raise err(InvalidArgumentError, "pdl %r is not None/'auto', True/'on' or False/'off'" % (spec,))


def stream_handle(stream: Any) -> int:
    """An int cudaStream_t/hipStream_t from an int, a torch.cuda.Stream (``.cuda_stream``), a
    cupy stream (``.ptr``) or a ctypes pointer; 0 for None."""
    if stream is None:
        return 0
    if isinstance(stream, int):
        return stream
    for attr in ("cuda_stream", "ptr", "handle", "value"):
        h = getattr(stream, attr, None)
        if isinstance(h, int):
            return h
        if attr == "value" and h is None and isinstance(stream, ctypes.c_void_p):
            return 0
    raise err(InvalidArgumentError, "stream %r is not an int handle or a stream object with "
              "cuda_stream/ptr" % (stream,))


# ---- describing arrays -------------------------------------------------------------------------
def contiguous_strides(shape) -> Tuple[int, ...]:
    """Row-major strides (elements) of a compact tensor of this shape (torch's convention for
    dims of size 0 or 1)."""
    out, acc = [], 1
    for n in reversed(shape):
        out.append(acc)
        acc *= max(int(n), 1)
    return tuple(reversed(out))


class Desc:
    """What the binding read from one array: data address, dtype, shape, strides (elements),
    memory kind ('cpu', 'cuda', 'rocm'), device ordinal, and what keeps the memory alive."""
    __slots__ = ("ptr", "dname", "ddesc", "shape", "strides", "kind", "device", "keep", "lib",
                 "obj")

    def __init__(self, ptr, dname, ddesc, shape, strides, kind, device, keep, lib, obj):
        self.ptr = ptr
        self.dname = dname
        self.ddesc = ddesc
        self.shape = shape
        self.strides = strides
        self.kind = kind
        self.device = device
        self.keep = keep
        self.lib = lib
        self.obj = obj


def _torch_module():
    return sys.modules.get("torch")


def is_torch_tensor(x: Any) -> bool:
    t = _torch_module()
    return t is not None and isinstance(x, t.Tensor)


def _is_numpy(x: Any) -> bool:
    np = sys.modules.get("numpy")
    return np is not None and isinstance(x, np.ndarray)


def torch_device_kind(dev) -> str:
    if dev.type == "cpu":
        return "cpu"
    if dev.type == "cuda":
        t = _torch_module()
        return "rocm" if getattr(getattr(t, "version", None), "hip", None) else "cuda"
    raise err(MemorySpaceError, "tensors on torch device %r are not reachable by any mlakv "
              "backend (cpu, cuda)" % str(dev))


def describe(x: Any, name: str, stream: Optional[int], writable: bool) -> Desc:
    """Reads pointer, dtype, shape and strides of a torch tensor, numpy array or DLPack producer."""
    if is_torch_tensor(x):
        t = _torch_module()
        if x.layout != t.strided:
            raise err(InvalidArgumentError, "%s: a %s tensor; mlakv needs a strided (dense) one"
                      % (name, x.layout))
        dev = x.device
        kind = torch_device_kind(dev)
        return Desc(x.data_ptr(), _TORCH_NAMES.get(str(x.dtype)), str(x.dtype), tuple(x.shape),
                    tuple(x.stride()), kind, (dev.index or 0) if kind != "cpu" else 0, x, "torch", x)
    if _is_numpy(x):
        ai = x.__array_interface__
        ptr, readonly = ai["data"]
        if writable and readonly:
            raise err(InvalidArgumentError, "%s: the numpy array is read-only" % name)
        dt = x.dtype
        if dt.byteorder == ">" or (dt.byteorder == "=" and sys.byteorder != "little"):
            raise err(DtypeError, "%s: big-endian dtype %s" % (name, dt.str))
        item = dt.itemsize
        strides = []
        for i, b in enumerate(x.strides):
            if b % item:
                raise err(StrideError, "%s: stride %d bytes of dim %d is not a multiple of the "
                          "element size %d" % (name, b, i, item))
            strides.append(b // item)
        if x.size == 0:  # numpy reports zero strides for empty arrays; no element is addressed
            strides = contiguous_strides(x.shape)
        return Desc(ptr, _NP_NAMES.get(dt.name), "numpy %s" % dt.name, tuple(x.shape),
                    tuple(strides), "cpu", 0, x, "numpy", x)
    if hasattr(x, "__dlpack__") and hasattr(x, "__dlpack_device__"):
        cap, _, _ = _dlpack.export(x, name, stream)
        data, dname, ddesc, shape, strides, dev_type, dev_id = _dlpack.read(cap, name, writable)
        kind = _dlpack.describe_device(dev_type, name)
        if 0 in shape:
            strides = contiguous_strides(shape)
        return Desc(data, dname, ddesc, shape, strides, kind, dev_id if kind != "cpu" else 0,
                    (x, cap), "dlpack", x)
    raise err(InvalidArgumentError, "%s: expected a numpy array, a torch tensor or a DLPack "
              "producer (__dlpack__), got %s" % (name, type(x).__name__))


# ---- scales and amax ----------------------------------------------------------------------------
def _is_array(x: Any) -> bool:
    return is_torch_tensor(x) or _is_numpy(x) or (hasattr(x, "__dlpack__")
                                                   and hasattr(x, "__dlpack_device__"))


def _numel(shape) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def _where(kind: str, device: int) -> str:
    return "the host (cpu)" if kind == "cpu" else "%s:%d" % (kind, device)


def _check_space(d: Desc, name: str, what: str, kind: str, device: int) -> None:
    """Per-head scales and amax arrays are memory the backend itself reads / writes: host memory
    for a host call (reference backend), the call's own GPU otherwise."""
    if d.kind == kind and (kind == "cpu" or d.device == device):
        return
    if kind == "cpu":
        fix = "pass a CPU tensor / host array"
    else:
        fix = "move it there, e.g. .to(k_nope.device)"
    raise err(MemorySpaceError, "%s: %s must be where the backend %s them: %s, like the inputs; "
              "this one is in %s (%s)" % (name, what, "writes" if "amax" in what else "reads",
                                          _where(kind, device), _where(d.kind, d.device), fix))


def scale_arg(value: Any, name: str, gpu: bool, stream: Optional[int]) -> Tuple[float, int, Any]:
    """(host multiplier, pointer, keep-alive) for one per-tensor scale argument.

    A number is passed by value.  A one-element float32 array/tensor is passed by pointer (the
    backend reads it when the kernel runs: graph-safe); a host one with GPU inputs is read now
    (its value, not its address, goes to the GPU backend)."""
    g, ks, ptr, keep = scale_parts(value, name, None, "cuda" if gpu else "cpu", 0, stream,
                                   per_head_ok=False)
    return ks, ptr, keep


def scale_parts(value: Any, name: str, h: Optional[int], kind: str, device: int,
                stream: Optional[int], per_head_ok: bool = True) -> Tuple[int, float, int, Any]:
    """(granularity, host multiplier, pointer, keep-alive) for one scale argument: a number or a
    one-element float32 array is per tensor; a float32 array of h elements (shape [h]) holds one
    multiplier per head. ``kind`` / ``device``: where the call runs ('cpu' or the GPU's kind)."""
    if isinstance(value, (float, int)) and not isinstance(value, bool):
        return SCALE_PER_TENSOR, float(value), 0, None
    if _is_array(value):
        d = describe(value, name, stream, writable=False)
        n = _numel(d.shape)
        if d.dname != "fp32":
            raise err(DtypeError, "%s: a scale array must be float32 (the backend reads fp32 "
                      "multipliers), got %s" % (name, d.ddesc))
        if n == 1:
            if d.kind == "cpu" and kind != "cpu":
                return SCALE_PER_TENSOR, float(ctypes.c_float.from_address(d.ptr).value), 0, d.keep
            return SCALE_PER_TENSOR, 1.0, d.ptr, d.keep
        if not per_head_ok:
            raise err(ShapeError, "%s: a scale array must have exactly one element, this one has "
                      "shape %s" % (name, list(d.shape)))
        want = "[h] = [%d]" % h if h is not None else "[h]"
        if len(d.shape) != 1 or (h is not None and d.shape[0] != h):
            raise err(ShapeError, "%s: a scale is a number or a one-element float32 array (one "
                      "multiplier for all heads) or a float32 array of shape %s (one per head); "
                      "got shape %s" % (name, want, list(d.shape)))
        if d.strides[0] != 1:
            raise err(StrideError, "%s: per-head scales must be contiguous (stride 1): the "
                      "backend reads %d consecutive floats; got stride %d"
                      % (name, d.shape[0], d.strides[0]))
        _check_space(d, name, "per-head scales", kind, device)
        return SCALE_PER_HEAD, 1.0, d.ptr, d.keep
    try:
        return SCALE_PER_TENSOR, float(value), 0, None
    except (TypeError, ValueError):
        raise err(InvalidArgumentError, "%s: expected a number, a one-element float32 array/tensor "
                  "or a [h] float32 array/tensor (per-head), got %s"
                  % (name, type(value).__name__)) from None


def amax_arg(value: Any, name: str, granularity: int, h: Optional[int], kind: str, device: int,
             stream: Optional[int]) -> Tuple[int, Any]:
    """(pointer, keep-alive) of an amax output: None, or a float32 array of shape [1] (per-tensor
    scales; a 0-d array is accepted too) or [h] (per-head scales), in the call's memory."""
    if value is None:
        return 0, None
    if not _is_array(value):
        raise err(InvalidArgumentError, "%s: expected None or a float32 tensor/array (shape [1] "
                  "with per-tensor scales, [h] with per-head scales), got %s"
                  % (name, type(value).__name__))
    d = describe(value, name, stream, writable=True)
    if d.dname != "fp32":
        raise err(DtypeError, "%s: an amax array must be float32 (the backend writes fp32), got %s"
                  % (name, d.ddesc))
    if granularity == SCALE_PER_HEAD:
        if len(d.shape) != 1 or (h is not None and d.shape[0] != h):
            raise err(ShapeError, "%s: with per-head scales the amax array has one float per head, "
                      "shape %s; got shape %s" % (name, "[%d]" % h if h is not None else "[h]",
                                                  list(d.shape)))
        if d.shape[0] > 1 and d.strides[0] != 1:
            raise err(StrideError, "%s: the amax array must be contiguous (stride 1), got stride %d"
                      % (name, d.strides[0]))
    elif len(d.shape) > 1 or _numel(d.shape) != 1:
        raise err(ShapeError, "%s: with per-tensor scales the amax array holds one float, shape [1]"
                  " (per-head scales, [h] arrays as k_scale_inv and v_scale_inv, take [h]); got "
                  "shape %s" % (name, list(d.shape)))
    _check_space(d, name, "amax arrays", kind, device)
    return d.ptr, d.keep


def scales_and_amax(k_scale_inv: Any, v_scale_inv: Any, k_amax: Any, v_amax: Any,
                    h: Optional[int], kind: str, device: int, stream: Optional[int]) -> tuple:
    """Reads and checks both scales and both amax outputs of one call; returns
    (ks, vs, ks_ptr, vs_ptr, granularity, k_amax_ptr, v_amax_ptr, keep-alive list).
    ``h``: the head count (None when k_nope is not 3-D: the library reports that);
    ``kind`` / ``device``: where the call runs."""
    gk, ks, ksp, keep_k = scale_parts(k_scale_inv, "k_scale_inv", h, kind, device, stream)
    gv, vs, vsp, keep_v = scale_parts(v_scale_inv, "v_scale_inv", h, kind, device, stream)
    if gk != gv:
        one, other = ("v_scale_inv", "k_scale_inv") if gk == SCALE_PER_HEAD else ("k_scale_inv",
                                                                                 "v_scale_inv")
        raise err(ShapeError, "%s is per head (a [h] float32 array) but %s is one multiplier for "
                  "all heads: per-head scales take both as [h] float32 arrays on the same memory "
                  "(for one common V scale x: torch.full((h,), x))" % (other, one))
    kap, keep_ka = amax_arg(k_amax, "k_amax", gk, h, kind, device, stream)
    vap, keep_va = amax_arg(v_amax, "v_amax", gk, h, kind, device, stream)
    if (gk != SCALE_PER_TENSOR or kap or vap) and not _capi.lib().has_0_2_fields:
        raise err(StructSizeError, "per-head scales and amax outputs need libmlakv 0.2 or newer; "
                  "the loaded library is %s (%s)" % (_capi.lib().version_string, _capi.lib().path))
    return ks, vs, ksp, vsp, gk, kap, vap, [keep_k, keep_v, keep_ka, keep_va]


# ---- the struct cache ---------------------------------------------------------------------------
_Q_TENSOR = tuple(off // 8 for off in _capi.OFFSET_TENSOR)
Q_KN, Q_KP, Q_V, Q_KO, Q_VO = _Q_TENSOR
Q_KPTR = _capi.OFFSET_K_SCALE_PTR // 8
Q_VPTR = _capi.OFFSET_V_SCALE_PTR // 8
Q_STREAM = _capi.OFFSET_STREAM // 8
Q_KAMAX = _capi.OFFSET_K_AMAX // 8
Q_VAMAX = _capi.OFFSET_V_AMAX // 8
F_K = _capi.OFFSET_K_SCALE // 4
F_V = _capi.OFFSET_V_SCALE // 4
I_GRAN = _capi.OFFSET_GRANULARITY // 4
CACHE_MAX = 256  # entries per cache; a full cache is emptied (shapes seen in serving are few)

_generic_cache: Dict[tuple, tuple] = {}
_caches: List[Dict[tuple, tuple]] = [_generic_cache]


def register_cache(c: Dict[tuple, tuple]) -> None:
    _caches.append(c)


def clear_cache() -> None:
    """Forgets every cached argument struct (mlakv.torch's too)."""
    for c in _caches:
        c.clear()


def cache_size() -> int:
    return sum(len(c) for c in _caches)


def new_args() -> _capi.PackArgs:
    """A PackArgs with MLAKV_PACK_ARGS_INIT's values and this binding's struct_size, filled by
    the library (``mlakv_pack_args_init_sized(args, sizeof)``: a newer library gives its
    defaults to the fields this binding does not know)."""
    return _capi.lib().init_args(_capi.PackArgs())


def make_entry(metas: Sequence[Tuple[int, Sequence[int], Sequence[int]]], backend: int, pdl: int,
               device: int, flags: int, names: Sequence[str] = _capi.TENSOR_FIELDS) -> tuple:
    """Builds a cache entry from five (dtype code, shape, strides): returns
    (q, f, address, pack function, args, i) where q / f / i are uint64 / float32 / int32 views
    of the struct's memory used to write pointers, scales and the scale granularity."""
    L = _capi.lib()
    a = new_args()
    for field, name, (code, shape, strides) in zip(_capi.TENSOR_FIELDS, names, metas):
        if len(shape) > MAX_RANK:
            raise err(RankError, "%s has %d dimensions; mlakv tensors have at most %d (k_nope, v, "
                      "k_out, v_out: 3; k_pe: 2 or 3)" % (name, len(shape), MAX_RANK))
        t = getattr(a, field)
        t.dtype = code
        t.ndim = len(shape)
        for i, (n, s) in enumerate(zip(shape, strides)):
            t.shape[i] = n
            t.strides[i] = s
    a.backend = backend
    a.pdl = pdl
    a.device = device
    a.flags = flags
    mem = memoryview(a).cast("B")
    return (mem.cast("Q"), mem.cast("f"), ctypes.addressof(a), L.pack_fp8, a, mem.cast("i"))


def cache_put(cache: Dict[tuple, tuple], key: tuple, entry: tuple) -> None:
    if len(cache) >= CACHE_MAX:
        cache.clear()
    cache[key] = entry


def to_f32(x: float) -> float:
    """``(float)x`` as C converts a double (beyond the fp32 range: +-inf)."""
    return ctypes.c_float(x).value


def fill(entry: tuple, ptrs: Sequence[int], ks: float, vs: float, ksp: int, vsp: int,
         stream: int, granularity: int = SCALE_PER_TENSOR, kap: int = 0, vap: int = 0) -> None:
    q, f = entry[0], entry[1]
    q[Q_KN], q[Q_KP], q[Q_V], q[Q_KO], q[Q_VO] = ptrs
    try:
        f[F_K] = ks
        f[F_V] = vs
    except OverflowError:  # a double beyond the fp32 range: C's conversion (+-inf), as ctypes does
        f[F_K] = to_f32(ks)
        f[F_V] = to_f32(vs)
    q[Q_KPTR] = ksp
    q[Q_VPTR] = vsp
    q[Q_STREAM] = stream
    entry[5][I_GRAN] = granularity
    q[Q_KAMAX] = kap
    q[Q_VAMAX] = vap


# ---- the generic call ----------------------------------------------------------------------------
def _resolve_inputs(descs: Sequence[Desc], names: Sequence[str], input_dtype: Any) -> List[int]:
    explicit = input_code(input_dtype) if input_dtype is not None else None
    codes = []
    for d, name in zip(descs, names):
        if d.dname in INPUT_CODES:
            code = INPUT_CODES[d.dname]
            if explicit is not None and code != explicit:
                raise err(DtypeError, "%s is %s but input_dtype is %s" % (name, d.ddesc,
                                                                          CODE_NAMES[explicit]))
        elif d.dname == "u16":
            if explicit not in (DTYPE_BF16, DTYPE_FP16):
                raise err(DtypeError, "%s holds uint16 values: say what they are with "
                          "input_dtype='bf16' (or 'fp16')" % name)
            code = explicit
        else:
            raise err(DtypeError, "%s: %s is not an input dtype mlakv reads (bfloat16, float16, "
                      "float32; or uint16 bits with input_dtype='bf16')" % (name, d.ddesc))
        codes.append(code)
    return codes


def _resolve_fp8(outs: Sequence[Optional[Desc]], names: Sequence[str], fp8_dtype: Any) -> int:
    explicit = fp8_code(fp8_dtype) if fp8_dtype is not None else None
    typed = []
    for d, name in zip(outs, names):
        if d is None:
            continue
        if d.dname in FP8_CODES:
            typed.append((name, d, FP8_CODES[d.dname]))
        elif d.dname != "u8":
            raise err(DtypeError, "%s: %s is not an FP8 output dtype (float8_e4m3fn, float8_e5m2, "
                      "float8_e4m3fnuz, float8_e5m2fnuz; or uint8 with fp8_dtype=...)"
                      % (name, d.ddesc))
    if explicit is not None:
        code = explicit
    elif typed:
        code = typed[0][2]
    elif all(d is None for d in outs):
        code = DTYPE_E4M3FN
    else:
        raise err(DtypeError, "uint8 outputs carry no FP8 format: pass fp8_dtype='e4m3fn' (or "
                  "'e5m2', 'e4m3fnuz', 'e5m2fnuz')")
    for name, d, c in typed:
        if c != code:
            raise err(DtypeError, "%s is %s but the FP8 format is %s" % (name, d.ddesc,
                                                                         CODE_NAMES[code]))
    return code


def _shape3(d: Desc, name: str) -> Tuple[int, ...]:
    if len(d.shape) != 3:
        raise err(RankError, "%s must be 3-D [s, h, D] to size the outputs, it has shape %s"
                  % (name, list(d.shape)))
    return d.shape


def _allocate(d_kn: Desc, d_kp: Desc, d_v: Desc, want_k: bool, want_v: bool, fp8: int,
              fp8_dtype: Any):
    s, h, dn = _shape3(d_kn, "k_nope")
    if len(d_kp.shape) not in (2, 3):
        raise err(RankError, "k_pe must be [s, D_rope] or [s, 1, D_rope], it has shape %s"
                  % list(d_kp.shape))
    dr = d_kp.shape[-1]
    dv = _shape3(d_v, "v")[2]
    shapes = [(s, h, dn + dr) if want_k else None, (s, h, dv) if want_v else None]
    if d_kn.lib == "torch":
        t = _torch_module()
        tdt = getattr(t, "float8_" + CODE_NAMES[fp8], None)
        if tdt is None:
            raise err(DtypeError, "this torch has no float8_%s dtype" % CODE_NAMES[fp8])
        src = [d_kn.obj, d_v.obj]
        return [t.empty(sh, dtype=tdt, device=src[i].device) if sh else None
                for i, sh in enumerate(shapes)]
    if d_kn.lib == "numpy":
        import numpy as np
        npdt = np.uint8
        if fp8_dtype is not None and not isinstance(fp8_dtype, (str, int)):
            try:
                cand = np.dtype(fp8_dtype)
                if _NP_NAMES.get(cand.name) in FP8_CODES:
                    npdt = cand
            except TypeError:
                pass
        return [np.empty(sh, dtype=npdt) if sh else None for sh in shapes]
    raise err(InvalidArgumentError, "k_out and v_out must be given for inputs of type %s (mlakv "
              "allocates outputs only for numpy arrays and torch tensors)" % type(d_kn.obj).__name__)


def torch_raw_stream(device: int) -> int:
    """The current CUDA/HIP stream of torch on ``device``, as an int handle (no Stream object)."""
    t = _torch_module()
    f = getattr(t._C, "_cuda_getCurrentRawStream", None)
    if f is not None:
        return int(f(device))
    return int(t.cuda.current_stream(device).cuda_stream)


def prepare(k_nope, k_pe, v, k_scale_inv, v_scale_inv, k_out, v_out, fp8_dtype, input_dtype,
            backend, pdl, stream, device, trust_pointers, k_amax=None, v_amax=None):
    """Reads and checks every argument; returns (entry, pointers, (ks, vs, ksp, vsp, stream,
    granularity, k_amax pointer, v_amax pointer), keep-alive list, k_out, v_out)."""
    explicit_stream = None if stream is None else stream_handle(stream)
    names = _capi.TENSOR_FIELDS
    d_in = [describe(x, n, explicit_stream, False) for x, n in zip((k_nope, k_pe, v), names[:3])]
    in_codes = _resolve_inputs(d_in, names[:3], input_dtype)
    d_out = [None if x is None else describe(x, n, explicit_stream, True)
             for x, n in zip((k_out, v_out), names[3:])]
    fp8 = _resolve_fp8(d_out, names[3:], fp8_dtype)
    if d_out[0] is None or d_out[1] is None:
        new = _allocate(d_in[0], d_in[1], d_in[2], d_out[0] is None, d_out[1] is None, fp8,
                        fp8_dtype)
        if d_out[0] is None:
            k_out = new[0]
            d_out[0] = describe(k_out, "k_out", explicit_stream, True)
        if d_out[1] is None:
            v_out = new[1]
            d_out[1] = describe(v_out, "v_out", explicit_stream, True)
    descs = d_in + d_out
    lead = d_in[0]
    gpu = any(d.kind != "cpu" for d in descs)
    dev = int(device) if device is not None else (lead.device if lead.kind != "cpu" else 0)
    if explicit_stream is not None:
        st = explicit_stream
    elif lead.lib == "torch" and lead.kind != "cpu":
        st = torch_raw_stream(dev)
    else:
        st = 0
    kind = next((d.kind for d in descs if d.kind != "cpu"), "cpu")
    h = d_in[0].shape[1] if len(d_in[0].shape) == 3 else None
    ks, vs, ksp, vsp, gran, kap, vap, keep_s = scales_and_amax(
        k_scale_inv, v_scale_inv, k_amax, v_amax, h, kind, dev, explicit_stream)
    codes = in_codes + [fp8, fp8]
    metas = [(c, d.shape, d.strides) for c, d in zip(codes, descs)]
    b = backend_code(backend)
    p = pdl_code(pdl)
    flags = FLAG_TRUST_POINTERS if trust_pointers else 0
    key = (tuple(metas), b, p, dev, flags, get_ident())
    entry = _generic_cache.get(key)
    if entry is None:
        entry = make_entry(metas, b, p, dev, flags)
        cache_put(_generic_cache, key, entry)
    keep = [d.keep for d in descs] + keep_s
    return (entry, [d.ptr for d in descs], (ks, vs, ksp, vsp, st, gran, kap, vap), keep, k_out,
            v_out)


def pack_fp8(k_nope, k_pe, v, k_scale_inv=1.0, v_scale_inv=1.0, k_out=None, v_out=None,
             fp8_dtype=None, *, input_dtype=None, backend=None, pdl=None, stream=None,
             device=None, trust_pointers=False, k_amax=None, v_amax=None):
    entry, ptrs, sc, keep, k_out, v_out = prepare(
        k_nope, k_pe, v, k_scale_inv, v_scale_inv, k_out, v_out, fp8_dtype, input_dtype, backend,
        pdl, stream, device, trust_pointers, k_amax, v_amax)
    fill(entry, ptrs, *sc)
    status = entry[3](entry[2])
    del keep  # the producers' memory (and DLPack capsules) stayed alive through the call
    if status:
        raise _capi.lib().error(status, "mlakv_pack_fp8")
    return k_out, v_out


def plan(k_nope, k_pe, v, k_scale_inv=1.0, v_scale_inv=1.0, k_out=None, v_out=None,
         fp8_dtype=None, *, input_dtype=None, backend=None, pdl=None, stream=None, device=None,
         trust_pointers=False, k_amax=None, v_amax=None) -> str:
    entry, ptrs, sc, keep, k_out, v_out = prepare(
        k_nope, k_pe, v, k_scale_inv, v_scale_inv, k_out, v_out, fp8_dtype, input_dtype, backend,
        pdl, stream, device, trust_pointers, k_amax, v_amax)
    fill(entry, ptrs, *sc)
    L = _capi.lib()
    addr = entry[2]
    text = L.text(lambda buf, n, needed: L.lib.mlakv_pack_fp8_plan(addr, buf, n, needed),
                  "mlakv_pack_fp8_plan")
    del keep
    return text


__all__ = ["pack_fp8", "plan", "clear_cache", "cache_size", "err", "fp8_code", "input_code",
           "backend_code", "pdl_code", "scales_and_amax"]
