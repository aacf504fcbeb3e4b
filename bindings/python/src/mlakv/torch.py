"""PyTorch front end: a drop-in for sglang's ``mla_kv_pack_quantize_fp8``.

    from mlakv.torch import mla_kv_pack_quantize_fp8
    k_fp8, v_fp8 = mla_kv_pack_quantize_fp8(k_nope, k_pe, v, k_scale_inv, v_scale_inv)

has the signature and behaviour of ``sglang/jit_kernel/mla_kv_pack_quantize_fp8.py``
(sglang PR #25333): inputs ``k_nope [s, h, D_nope]``, ``k_pe [s, 1, D_rope]`` or
``[s, D_rope]``, ``v [s, h, D_v]`` (strided views allowed, inner stride 1); outputs
``k_out [s, h, D_nope + D_rope]`` and ``v_out [s, h, D_v]`` of ``fp8_dtype``, allocated
(contiguous, ``torch.empty`` on the inputs' device) when not given; returns ``(k_out, v_out)``.
A serving engine switches by changing one import.

Differences from the upstream function (all supersets or stricter errors):

* every check raises an :class:`mlakv.Error` subclass (``DtypeError``, ``ShapeError``,
  ``RankError``, ``StrideError`` ... which are also ``TypeError`` / ``ValueError``) with the
  library's explanation; upstream uses ``assert`` (gone under ``python -O``) and does not check
  the outputs at all (mlakv checks their shapes, strides, dtype and overlap with the inputs);
* fp32 inputs are accepted besides bf16 / fp16;
* ``fp8_dtype`` may also be ``torch.float8_e4m3fnuz`` / ``torch.float8_e5m2fnuz`` (AMD MI300
  formats, computed exactly on every backend), and outputs may be ``torch.uint8`` tensors
  (their bytes get ``fp8_dtype``'s encoding); given outputs of another FP8 dtype are refused;
* conversion saturates to the format's largest finite value (``inf`` too) and writes the
  format's canonical NaN on every backend (upstream on Hopper/Blackwell: the same for
  e4m3fn/e5m2, through ``cvt.rn.satfinite``);
* ``k_scale_inv`` / ``v_scale_inv`` may be one-element float32 CUDA tensors: the kernel reads
  them from device memory when it runs, so a captured CUDA graph sees later values (upstream
  calls ``float()`` on them: a device sync, impossible under graph capture).  A one-element CPU
  tensor is read at call time;
* per-head scales (mlakv 0.2): ``k_scale_inv`` and ``v_scale_inv`` as ``[h]`` float32 tensors on
  the inputs' device (CPU tensors for CPU inputs) scale head ``j`` of ``k_out`` (its ``k_nope``
  part and its copy of ``k_pe``) by ``k_scale_inv[j]`` and head ``j`` of ``v_out`` by
  ``v_scale_inv[j]`` (both or neither: a number or a one-element tensor is one multiplier for
  all heads); read by the kernel when it runs, like one-element tensors;
* keyword-only ``k_amax`` / ``v_amax`` (mlakv 0.2): float32 tensors on the inputs' device,
  ``[1]`` with per-tensor scales, ``[h]`` with per-head scales, into which the kernel
  accumulates ``max(old, max |x|)`` of the inputs before scaling (``k_amax`` over ``k_nope``
  and ``k_pe``; NaN ignored, inf counts); zero them once, run calibration batches, then
  ``scale = amax / fp8_max``;
* CPU tensors work too (the reference backend);
* ``enable_pdl``: ``None`` = ``MLAKV_PDL_AUTO`` (on where the GPU supports it, as upstream's
  ``is_arch_support_pdl()``), ``True`` = ``MLAKV_PDL_ON``, ``False`` = ``MLAKV_PDL_OFF``;
* keyword-only extras ``backend=`` ("auto" default, "cuda", "reference", "hip") and
  ``trust_pointers=`` (``MLAKV_FLAG_TRUST_POINTERS``).

Scale and amax tensors are checked (dtype float32, shape, contiguity, device) before the call,
with an :class:`mlakv.Error` subclass naming the argument.

The call is launched on ``torch.cuda.current_stream(device)`` *at call time* (read through
``torch._C._cuda_getCurrentRawStream``), on the device of ``k_nope``; inside
``torch.cuda.graph(...)`` capture that is the capture stream, so the kernel is captured.

Host cost: the ``mlakv_pack_args`` struct is cached per (dtypes, shapes, strides, device,
fp8_dtype, enable_pdl, backend, flags, thread); a call that hits the cache reads each tensor's
metadata once, writes five pointers, two scales and the stream into the cached struct and makes
one ctypes call.  Calls with outputs given allocate nothing.  Per-head ``[h]`` scale tensors on
the call's device take the same path; calls with amax outputs (calibration) and scales of other
kinds take a slower one that checks everything each time (several microseconds more).
"""
from __future__ import annotations

import threading
from typing import Any, Optional, Tuple

try:
    import torch
except ImportError as _e:  # pragma: no cover - exercised only without torch
    raise ImportError("mlakv.torch needs PyTorch (pip install torch); the rest of mlakv works "
                      "without it (mlakv.pack_fp8 takes numpy arrays and DLPack producers)") from _e

from . import _capi, _core
from ._core import (F_K, F_V, I_GRAN, Q_KAMAX, Q_KN, Q_KO, Q_KP, Q_KPTR, Q_STREAM, Q_V, Q_VAMAX,
                    Q_VO, Q_VPTR, err)

# The hot path writes these slots as literals; the ctypes layout must agree.
if (Q_KN, Q_KP, Q_V, Q_KO, Q_VO, Q_KPTR, Q_VPTR, Q_STREAM, F_K, F_V, I_GRAN, Q_KAMAX,
        Q_VAMAX) != (1, 11, 21, 31, 41, 52, 53, 55, 102, 103, 114, 58, 59):  # pragma: no cover
    raise ImportError("mlakv.torch: unexpected mlakv_pack_args layout")
from ._errors import DtypeError, InvalidArgumentError, RankError

__all__ = ["mla_kv_pack_quantize_fp8", "pack_fp8", "plan", "FP8_DTYPES", "clear_cache"]

#: The torch FP8 dtypes mlakv writes, with their mlakv codes (those this torch has).
FP8_DTYPES = {}
for _name, _code in _core.FP8_CODES.items():
    _dt = getattr(torch, "float8_" + _name, None)
    if _dt is not None:
        FP8_DTYPES[_dt] = _code
_INPUT_DTYPES = {torch.bfloat16: _capi.DTYPE_BF16, torch.float16: _capi.DTYPE_FP16,
                 torch.float32: _capi.DTYPE_FP32}
_TORCH_BY_CODE = {c: d for d, c in FP8_DTYPES.items()}
_DEFAULT_FP8 = getattr(torch, "float8_e4m3fn", "e4m3fn")

_Tensor = torch.Tensor
_f32 = torch.float32
_cache: dict = {}      # ((metadata key), thread id) -> entry
_last: dict = {}       # thread id -> (metadata key, entry) of that thread's previous call
_core.register_cache(_cache)
_core.register_cache(_last)
_get_ident = threading.get_ident
_cache_get = _cache.get
_last_get = _last.get

_raw_stream = getattr(torch._C, "_cuda_getCurrentRawStream", None)
if _raw_stream is None:  # pragma: no cover - very old torch
    def _raw_stream(device: int) -> int:
        return torch.cuda.current_stream(device).cuda_stream


def clear_cache() -> None:
    """Forgets every cached argument struct."""
    _core.clear_cache()


def _fail(status: int):
    return _capi.lib().error(status, "mlakv_pack_fp8")


def _kind(x: Any, name: str) -> str:
    if not isinstance(x, torch.Tensor):
        raise err(InvalidArgumentError, "%s: mlakv.torch takes torch tensors, got %s (mlakv.pack_fp8 "
                  "takes numpy arrays and DLPack producers)" % (name, type(x).__name__))
    if x.layout != torch.strided:
        raise err(InvalidArgumentError, "%s: a %s tensor; mlakv needs a strided one" % (name, x.layout))
    return _core.torch_device_kind(x.device)


def _fp8_torch_dtype(fp8_dtype: Any):
    if fp8_dtype in FP8_DTYPES:
        return fp8_dtype
    code = _core.fp8_code(fp8_dtype)
    dt = _TORCH_BY_CODE.get(code)
    if dt is None:
        raise err(DtypeError, "this torch (%s) has no float8_%s dtype"
                  % (torch.__version__, _core.CODE_NAMES[code]))
    return dt


def _allocate(k_nope, k_pe, v, k_out, v_out, fp8_dtype):
    """Outputs as upstream allocates them: contiguous torch.empty on k_nope's / v's device.
    (Ranks beyond what sizing needs are the library's to check.)"""
    try:
        s, h, d_nope = k_nope.shape
        d_rope = k_pe.shape[-1]
        d_v = v.shape[-1]
        dt = fp8_dtype if fp8_dtype in FP8_DTYPES else _fp8_torch_dtype(fp8_dtype)
    except (AttributeError, TypeError, ValueError, IndexError):
        for x, name in ((k_nope, "k_nope"), (k_pe, "k_pe"), (v, "v")):
            _kind(x, name)
        if k_nope.dim() != 3:
            raise err(RankError, "k_nope must be [s, h, qk_nope], got shape %s"
                      % list(k_nope.shape)) from None
        if k_pe.dim() not in (2, 3):
            raise err(RankError, "k_pe must be [s, 1, qk_rope] or [s, qk_rope], got shape %s"
                      % list(k_pe.shape)) from None
        if v.dim() != 3:
            raise err(RankError, "v must be [s, h, v_head], got shape %s" % list(v.shape)) from None
        raise
    if k_out is None:
        k_out = torch.empty(s, h, d_nope + d_rope, dtype=dt, device=k_nope.device)
    if v_out is None:
        v_out = torch.empty(s, h, d_v, dtype=dt, device=v.device)
    return k_out, v_out


def _strides(x) -> Tuple[int, ...]:
    """The strides the struct gets. For a contiguous tensor they are derived from the shape (the
    hot path's key only records "contiguous" for k_pe / k_out / v_out); they differ from
    x.stride() at most in dims of size 1, whose stride no address depends on."""
    if x.is_contiguous():
        return _core.contiguous_strides(x.shape)
    return tuple(x.stride())


def _pdl(enable_pdl) -> int:
    """Upstream's meaning: None = auto; otherwise its truth value (on / off)."""
    if enable_pdl is None:
        return _capi.PDL_AUTO
    return _capi.PDL_ON if enable_pdl else _capi.PDL_OFF


def _build(key, k_nope, k_pe, v, k_out, v_out, fp8_dtype, enable_pdl, backend, trust_pointers):
    """A cache miss: checks the tensors, builds the mlakv_pack_args struct, caches it."""
    names = _capi.TENSOR_FIELDS
    tensors = (k_nope, k_pe, v, k_out, v_out)
    kinds = [_kind(x, n) for x, n in zip(tensors, names)]
    in_code = _INPUT_DTYPES.get(k_nope.dtype)
    if in_code is None:
        raise err(DtypeError, "k_nope must be bf16/fp16/fp32, got %s" % k_nope.dtype)
    if k_pe.dtype != k_nope.dtype or v.dtype != k_nope.dtype:
        raise err(DtypeError, "k_nope, k_pe, v must share dtype (got %s, %s, %s)"
                  % (k_nope.dtype, k_pe.dtype, v.dtype))
    fp8 = _core.fp8_code(fp8_dtype)
    for x, name in ((k_out, "k_out"), (v_out, "v_out")):
        if x.dtype == torch.uint8:
            continue  # raw bytes: they get fp8_dtype's encoding
        c = FP8_DTYPES.get(x.dtype)
        if c is None:
            raise err(DtypeError, "%s must be an FP8 tensor (or uint8), got %s" % (name, x.dtype))
        if c != fp8:
            raise err(DtypeError, "%s is %s but fp8_dtype is %s" % (name, x.dtype, fp8_dtype))
    if kinds[0] != "cpu":
        index = k_nope.get_device()
    else:
        index = -1
    # k_nope and v: their own strides (the key has them); k_pe, k_out, v_out: see _strides
    metas = [(in_code, tuple(k_nope.shape), tuple(k_nope.stride())),
             (in_code, tuple(k_pe.shape), _strides(k_pe)),
             (in_code, tuple(v.shape), tuple(v.stride())),
             (fp8, tuple(k_out.shape), _strides(k_out)),
             (fp8, tuple(v_out.shape), _strides(v_out))]
    flags = _capi.FLAG_TRUST_POINTERS if trust_pointers else 0
    e = _core.make_entry(metas, _core.backend_code(backend), _pdl(enable_pdl),
                         max(index, 0), flags)
    # (q, f, address, pack, device index or -1, args, i, ext): ext[0] says whether the struct's
    # 0.2 fields (granularity, amax pointers) may hold non-default values
    entry = e[:4] + (index, e[4], e[5], [False])
    _core.cache_put(_cache, key, entry)
    return entry


def _general(entry, k_nope, k_scale_inv, v_scale_inv, k_amax, v_amax) -> None:
    """Scales and amax outputs of every kind (numbers, one-element and [h] tensors, numpy or
    DLPack arrays, amax tensors): checked, then written into the struct. Nothing is written
    before every check has passed."""
    q, f, gpu, i32, ext = entry[0], entry[1], entry[4], entry[6], entry[7]
    kind = "cpu" if gpu < 0 else _core.torch_device_kind(k_nope.device)
    h = k_nope.shape[1] if k_nope.dim() == 3 else None
    ks, vs, ksp, vsp, gran, kap, vap, _ = _core.scales_and_amax(
        k_scale_inv, v_scale_inv, k_amax, v_amax, h, kind, max(gpu, 0), None)
    f[102] = _core.to_f32(ks)
    f[103] = _core.to_f32(vs)
    q[52] = ksp
    q[53] = vsp
    i32[114] = gran
    q[58] = kap
    q[59] = vap
    ext[0] = bool(gran or kap or vap)


def mla_kv_pack_quantize_fp8(
    k_nope: torch.Tensor,
    k_pe: torch.Tensor,
    v: torch.Tensor,
    k_scale_inv: Any = 1.0,
    v_scale_inv: Any = 1.0,
    k_out: Optional[torch.Tensor] = None,
    v_out: Optional[torch.Tensor] = None,
    fp8_dtype: torch.dtype = _DEFAULT_FP8,
    enable_pdl: Optional[bool] = None,
    *,
    backend: Any = None,
    trust_pointers: bool = False,
    k_amax: Optional[torch.Tensor] = None,
    v_amax: Optional[torch.Tensor] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Fused ``cat(k_nope, broadcast k_pe) + FP8 quantize`` for K and ``FP8 quantize`` for V.

    Args:
        k_nope: bf16/fp16/fp32 ``[s, h, qk_nope]``; may be a strided view (inner stride 1).
        k_pe:   same dtype, ``[s, 1, qk_rope]`` or ``[s, qk_rope]``; shared across heads.
        v:      same dtype, ``[s, h, v_head]``; may be a strided view.
        k_scale_inv, v_scale_inv: multipliers applied before the FP8 cast (``1/scale``): a
            number, or a one-element float32 tensor (on the inputs' GPU: read by the kernel);
            or, both, ``[h]`` float32 tensors on the inputs' device: one multiplier per head.
        k_out, v_out: optional preallocated outputs (``fp8_dtype`` or ``torch.uint8``; any
            strides with inner stride 1).
        fp8_dtype: ``torch.float8_e4m3fn`` (default), ``float8_e5m2``, ``float8_e4m3fnuz``,
            ``float8_e5m2fnuz``.
        enable_pdl: ``None`` auto, ``True`` on, ``False`` off (programmatic dependent launch).
        backend: keyword-only; "auto" (default), "cuda", "reference", "hip".
        trust_pointers: keyword-only; skip the backend's pointer-accessibility check.
        k_amax, v_amax: keyword-only; float32 tensors on the inputs' device (``[1]``, or ``[h]``
            with per-head scales) into which the kernel accumulates the inputs' absolute maximum
            (before scaling; ``k_amax`` over ``k_nope`` and ``k_pe``, ``v_amax`` over ``v``;
            NaN ignored, inf counts): ``amax = max(amax, max|x|)``. Zero them before
            calibrating.

    Returns:
        ``(k_out [s, h, qk_nope + qk_rope], v_out [s, h, v_head])``.

    Raises:
        mlakv.Error: a subclass per mlakv status (nothing was written or enqueued).
    """
    if k_out is None or v_out is None:
        k_out, v_out = _allocate(k_nope, k_pe, v, k_out, v_out, fp8_dtype)
    # The key: everything in the struct that is not rewritten per call. A contiguous k_pe /
    # k_out / v_out is keyed by True (is_contiguous() is cheaper than stride()).
    # This thread's previous call is checked first (one tuple comparison), then the cache.
    try:
        key = (k_nope.shape, k_nope.stride(), k_pe.shape, k_pe.is_contiguous() or k_pe.stride(),
               v.shape, v.stride(), k_out.shape, k_out.is_contiguous() or k_out.stride(),
               v_out.shape, v_out.is_contiguous() or v_out.stride(), k_nope.dtype, k_pe.dtype,
               v.dtype, k_out.dtype, v_out.dtype, k_nope.get_device(), fp8_dtype, enable_pdl,
               backend, trust_pointers)
    except (AttributeError, TypeError):
        for x, n in zip((k_nope, k_pe, v, k_out, v_out), _capi.TENSOR_FIELDS):
            _kind(x, n)
        raise
    ident = _get_ident()
    last = _last_get(ident)
    if last is not None and last[0] == key:
        entry = last[1]
    else:
        entry = _cache_get((key, ident))
        if entry is None:
            entry = _build((key, ident), k_nope, k_pe, v, k_out, v_out, fp8_dtype, enable_pdl,
                           backend, trust_pointers)
        if len(_last) > 4096:  # threads come and go
            _last.clear()
        _last[ident] = (key, entry)
    q, f, addr, pack, gpu, _, i32, ext = entry
    # uint64 / float32 slots of the struct (checked against the ctypes layout at import)
    q[1] = k_nope.data_ptr()
    q[11] = k_pe.data_ptr()
    q[21] = v.data_ptr()
    q[31] = k_out.data_ptr()
    q[41] = v_out.data_ptr()
    # Scales: a Python float is written by value; a one-element float32 tensor on the right
    # side (the GPU for GPU calls) by pointer; [h] float32 tensors on the call's device (both K
    # and V) by pointer as per-head scales; anything else (amax outputs, numbers of other types,
    # tensors elsewhere or of other shapes, ...) goes through _general, which checks it all.
    fast = k_amax is None and v_amax is None
    per_head = False
    try:
        if fast:
            t = type(k_scale_inv)
            if t is float:
                f[102] = k_scale_inv
                q[52] = 0
            elif t is _Tensor and k_scale_inv.dtype is _f32:
                n = k_scale_inv.numel()
                if n == 1 and (gpu < 0 or k_scale_inv.is_cuda):
                    f[102] = 1.0
                    q[52] = k_scale_inv.data_ptr()
                elif (n > 1 and k_scale_inv.dim() == 1 and k_scale_inv.stride(0) == 1
                      and k_nope.dim() == 3 and n == k_nope.shape[1]
                      and k_scale_inv.get_device() == gpu):
                    f[102] = 1.0
                    q[52] = k_scale_inv.data_ptr()
                    per_head = True
                else:
                    fast = False
            else:
                fast = False
        if fast:
            t = type(v_scale_inv)
            if t is float and not per_head:
                f[103] = v_scale_inv
                q[53] = 0
            elif t is _Tensor and v_scale_inv.dtype is _f32:
                n = v_scale_inv.numel()
                if n == 1 and not per_head and (gpu < 0 or v_scale_inv.is_cuda):
                    f[103] = 1.0
                    q[53] = v_scale_inv.data_ptr()
                elif (per_head and n == k_nope.shape[1] and v_scale_inv.dim() == 1
                      and (n == 1 or v_scale_inv.stride(0) == 1)
                      and v_scale_inv.get_device() == gpu):
                    f[103] = 1.0
                    q[53] = v_scale_inv.data_ptr()
                else:
                    fast = False
            else:
                fast = False
    except OverflowError:  # a float beyond the fp32 range: C's conversion (+-inf), in _general
        fast = False
    if fast:
        if per_head:
            i32[114] = 1
            q[58] = 0
            q[59] = 0
            ext[0] = True
        elif ext[0]:  # an earlier call with this struct set per-head scales or amax outputs
            i32[114] = 0
            q[58] = 0
            q[59] = 0
            ext[0] = False
    else:
        _general(entry, k_nope, k_scale_inv, v_scale_inv, k_amax, v_amax)
    q[55] = _raw_stream(gpu) if gpu >= 0 else 0
    status = pack(addr)
    if status:
        raise _fail(status)
    return k_out, v_out


def pack_fp8(k_nope, k_pe, v, k_scale_inv=1.0, v_scale_inv=1.0, k_out=None, v_out=None,
             fp8_dtype=None, **kw):
    """:func:`mlakv.pack_fp8` (the framework-neutral call), re-exported for convenience."""
    return _core.pack_fp8(k_nope, k_pe, v, k_scale_inv, v_scale_inv, k_out, v_out, fp8_dtype, **kw)


def plan(k_nope, k_pe, v, k_scale_inv=1.0, v_scale_inv=1.0, k_out=None, v_out=None,
         fp8_dtype=_DEFAULT_FP8, enable_pdl=None, *, backend=None, trust_pointers=False,
         k_amax=None, v_amax=None) -> str:
    """The plan line (backend, arch, PDL, dispatch-table row) the library would use for this
    :func:`mla_kv_pack_quantize_fp8` call, with the same arguments; nothing is run."""
    if k_out is None or v_out is None:
        k_out, v_out = _allocate(k_nope, k_pe, v, k_out, v_out, fp8_dtype)
    return _core.plan(k_nope, k_pe, v, k_scale_inv, v_scale_inv, k_out, v_out, fp8_dtype,
                      backend=backend, pdl=_pdl(enable_pdl), trust_pointers=trust_pointers,
                      k_amax=k_amax, v_amax=v_amax)
