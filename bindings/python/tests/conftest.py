"""Shared helpers of the mlakv Python tests.

The library under test is the one MLAKV_LIBRARY names (run_tests.sh sets it); when the package
is not installed, bindings/python/src is put on sys.path.  A missing library is a failure, not
a skip: every test here needs it.

Helpers:
  * ``oracle(x, m, fmt)``: an independent numpy/ml_dtypes model of the numerics (fp32 multiply,
    saturate, RNE into the format, canonical NaN, no -0 in fnuz);
  * ``raw_pack(...)``: the C API called directly (a hand-filled ``mlakv_pack_args``, reference
    backend), the "C library's own output" that binding results are compared with;
  * ``POISON``: the byte outputs are filled with before a call.
"""
from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
try:
    import mlakv  # noqa: F401
except ImportError:
    sys.path.insert(0, str(SRC))
    import mlakv  # noqa: F401

from mlakv import _capi  # noqa: E402

np = pytest.importorskip("numpy")

POISON = 0xAA
FORMATS = ("e4m3fn", "e5m2", "e4m3fnuz", "e5m2fnuz")
FMT_CODE = {"e4m3fn": 4, "e5m2": 5, "e4m3fnuz": 6, "e5m2fnuz": 7}
FMT_MAX = {"e4m3fn": 448.0, "e5m2": 57344.0, "e4m3fnuz": 240.0, "e5m2fnuz": 57344.0}
FMT_NAN = {"e4m3fn": 0x7F, "e5m2": 0x7F, "e4m3fnuz": 0x80, "e5m2fnuz": 0x80}
IN_CODE = {"bf16": 1, "fp16": 2, "fp32": 3}


def ml_dtypes_or_skip():
    return pytest.importorskip("ml_dtypes", reason="ml_dtypes (PyPI) is needed for this test")


def widen(bits_or_values: "np.ndarray", in_dtype: str) -> "np.ndarray":
    """Inputs as exact float32: bf16 bits (uint16), fp16 or fp32 arrays."""
    if in_dtype == "bf16":
        b = np.ascontiguousarray(bits_or_values).view(np.uint16).astype(np.uint32) << 16
        return b.view(np.float32)
    return np.asarray(bits_or_values).astype(np.float32)


def oracle(x32: "np.ndarray", m: float, fmt: str) -> "np.ndarray":
    """Q(x*m) as mlakv defines it, computed with numpy float32 and ml_dtypes."""
    mld = ml_dtypes_or_skip()
    with np.errstate(all="ignore"):
        p = (np.asarray(x32, np.float32) * np.float32(m)).astype(np.float32)
        c = np.clip(p, -FMT_MAX[fmt], FMT_MAX[fmt])
        q = c.astype(getattr(mld, "float8_" + fmt)).view(np.uint8).copy()
    q[np.isnan(p)] = FMT_NAN[fmt]
    if fmt.endswith("fnuz"):
        q[(q == 0x80) & ~np.isnan(p)] = 0x00  # no negative zero
    return q


def expected(kn32, kp32, v32, ks, vs, fmt):
    """k_out, v_out of the operation from float32 inputs (k_pe [s, D_rope] or [s, 1, D_rope])."""
    s, h, _ = kn32.shape
    kp2 = kp32.reshape(s, kp32.shape[-1])
    k = np.concatenate([oracle(kn32, ks, fmt),
                        np.broadcast_to(oracle(kp2, ks, fmt)[:, None, :], (s, h, kp2.shape[-1]))],
                       axis=-1)
    return k, oracle(v32, vs, fmt)


def _fill_tensor(t, arr, code):
    item = arr.dtype.itemsize
    t.data = arr.__array_interface__["data"][0]
    t.dtype = code
    t.ndim = arr.ndim
    for i in range(arr.ndim):
        t.shape[i] = arr.shape[i]
        t.strides[i] = arr.strides[i] // item


def raw_pack(k_nope, k_pe, v, k_out, v_out, in_code, fmt, ks=1.0, vs=1.0,
             ks_ptr=None, vs_ptr=None, backend=1, granularity=None, k_amax=None, v_amax=None,
             reserved=None):
    """Calls mlakv_pack_fp8 through the bare C API on numpy arrays; returns the status. The
    struct is initialised by mlakv_pack_args_init_sized with the ctypes struct's size; the 0.2
    fields (granularity, reserved, amax addresses) are set when given."""
    L = _capi.lib()
    a = _capi.PackArgs()
    assert L.pack_args_size == ctypes.sizeof(a)
    st = L.lib.mlakv_pack_args_init_sized(ctypes.addressof(a), ctypes.sizeof(a))
    assert st == 0 and a.struct_size == ctypes.sizeof(a)
    for name, arr in zip(_capi.TENSOR_FIELDS, (k_nope, k_pe, v, k_out, v_out)):
        _fill_tensor(getattr(a, name), arr, in_code if name in ("k_nope", "k_pe", "v")
                     else FMT_CODE[fmt])
    a.k_scale_inv = ks
    a.v_scale_inv = vs
    if ks_ptr is not None:
        a.k_scale_inv_ptr = ks_ptr
    if vs_ptr is not None:
        a.v_scale_inv_ptr = vs_ptr
    if granularity is not None:
        a.scale_granularity = granularity
    if reserved is not None:
        a.reserved = reserved
    if k_amax is not None:
        a.k_amax = k_amax
    if v_amax is not None:
        a.v_amax = v_amax
    a.backend = backend
    return int(L.lib.mlakv_pack_fp8(ctypes.addressof(a)))


def header_paths():
    """mlakv.h files to compare the binding with: the one installed beside the library under
    test (<prefix>/include) and the source tree's, where they exist."""
    out = []
    lib = Path(_capi.lib().path).resolve()
    for prefix in (lib.parent.parent, lib.parent.parent.parent):
        h = prefix / "include" / "mlakv" / "mlakv.h"
        if h.is_file():
            out.append(h)
            break
    src = HERE.parents[2] / "include" / "mlakv" / "mlakv.h"
    if src.is_file():
        out.append(src)
    return out


def last_error() -> str:
    return (_capi.lib().lib.mlakv_last_error() or b"").decode()


def poisoned(shape, dtype=None):
    return np.full(shape, POISON, dtype=dtype or np.uint8)


def random_bits(rng, shape, in_dtype, scale=4.0, specials=True):
    """Random inputs (bf16 as uint16 bits, fp16, fp32) with special values sprinkled in."""
    x = (rng.standard_normal(shape) * scale).astype(np.float32)
    if specials and x.size >= 16:
        flat = x.reshape(-1)
        sp = np.array([1000.0, -1000.0, np.inf, -np.inf, np.nan, -0.0, 2.0 ** -10, 2.0 ** -14,
                       -1.5 * 2.0 ** -14, 2.0 ** -20, 448.0, 464.0, -465.0, 57344.0, 61440.0,
                       1e-30], np.float32)
        idx = rng.choice(flat.size, size=min(len(sp) * 2, flat.size), replace=False)
        flat[idx] = np.resize(sp, idx.size)
    if in_dtype == "bf16":
        # round to nearest even into bf16 bits
        u = x.view(np.uint32).astype(np.uint64)
        r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
        r[np.isnan(x)] = 0x7FC0
        return r
    if in_dtype == "fp16":
        with np.errstate(all="ignore"):
            return x.astype(np.float16)
    return x


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(autouse=True)
def _fresh_cache():
    mlakv.clear_cache()
    yield


def lib_path() -> str:
    return _capi.lib().path


def env_without_library():
    env = dict(os.environ)
    for k in ("MLAKV_LIBRARY", "LD_LIBRARY_PATH"):
        env.pop(k, None)
    return env
