"""DLPack producers: numpy's own __dlpack__ (legacy and versioned capsules) and a hand-made
producer whose capsule and deleter the test controls (bf16 / fp8 type codes, NULL strides,
byte_offset, and the capsule's lifetime)."""
from __future__ import annotations

import ctypes
import gc
import weakref

import pytest

import mlakv
from mlakv import _dlpack

from conftest import POISON, expected, np, poisoned, random_bits, widen


class NumpyProducer:
    """Exposes only the DLPack protocol of a numpy array; ``legacy`` refuses max_version like a
    pre-1.0 producer. Records the keyword arguments of every __dlpack__ call."""

    def __init__(self, arr, legacy=False):
        self.arr = arr
        self.legacy = legacy
        self.calls = []

    def __dlpack_device__(self):
        return self.arr.__dlpack_device__()

    def __dlpack__(self, **kw):
        self.calls.append(kw)
        if self.legacy:
            if "max_version" in kw:
                raise TypeError("__dlpack__() got an unexpected keyword argument 'max_version'")
            return self.arr.__dlpack__()
        return self.arr.__dlpack__(**kw)


def _numpy_versioned() -> bool:
    """Whether this numpy exports DLPack 1.0 (versioned) capsules."""
    try:
        np.zeros(1).__dlpack__(max_version=(1, 0))
        return True
    except TypeError:
        return False


def _numpy_dlpack_or_skip():
    if not hasattr(np.ndarray, "__dlpack__"):
        pytest.skip("numpy < 1.22 has no __dlpack__")


@pytest.mark.parametrize("legacy", [False, True])
def test_numpy_producer_fp16_fp32_and_uint8_outputs(legacy, rng):
    _numpy_dlpack_or_skip()
    for in_dtype in ("fp16", "fp32"):
        kv = random_bits(rng, (5, 3, 40), in_dtype)
        kn, v = kv[..., :24], kv[..., 24:]
        kp = random_bits(rng, (5, 1, 8), in_dtype)
        ko, vo = poisoned((5, 3, 32)), poisoned((5, 3, 16))
        prods = [NumpyProducer(a, legacy) for a in (kn, kp, v, ko, vo)]
        r = mlakv.pack_fp8(*prods[:3], 2.0, 0.5, prods[3], prods[4], fp8_dtype="e4m3fnuz")
        assert r[0] is prods[3] and r[1] is prods[4]
        ek, ev = expected(widen(kn, in_dtype), widen(kp, in_dtype), widen(v, in_dtype), 2.0, 0.5,
                          "e4m3fnuz")
        np.testing.assert_array_equal(ko, ek)
        np.testing.assert_array_equal(vo, ev)
        for p in prods:
            assert p.calls and all("stream" not in c for c in p.calls)  # host memory: no stream


def test_capsule_kinds_asked_for():
    """A DLPack >= 1.0 producer is asked for a versioned capsule; a legacy one gets a retry
    without max_version."""
    _numpy_dlpack_or_skip()
    arr = np.zeros((2, 3), np.float32)
    new, old = NumpyProducer(arr), NumpyProducer(arr, legacy=True)
    cap, dev_type, dev_id = _dlpack.export(old, "x", None)
    assert _dlpack._api.PyCapsule_GetName(cap) == b"dltensor" and (dev_type, dev_id) == (1, 0)
    assert [sorted(c) for c in old.calls] == [["max_version"], []]
    assert _dlpack.consume_check(cap)
    cap2, _, _ = _dlpack.export(new, "x", None)
    name = _dlpack._api.PyCapsule_GetName(cap2)
    assert name == (b"dltensor_versioned" if _numpy_versioned() else b"dltensor")
    data, dname, _, shape, strides, _, _ = _dlpack.read(cap2, "x", writable=True)
    assert (data, dname, shape, strides) == (arr.__array_interface__["data"][0], "fp32", (2, 3),
                                             (3, 1))
    assert _dlpack.consume_check(cap2)  # reading does not consume


def test_numpy_producer_uint16_bf16_bits(rng):
    _numpy_dlpack_or_skip()
    kn = random_bits(rng, (2, 2, 16), "bf16")
    kp = random_bits(rng, (2, 8), "bf16")
    v = random_bits(rng, (2, 2, 8), "bf16")
    ko, vo = poisoned((2, 2, 24)), poisoned((2, 2, 8))
    with pytest.raises(mlakv.DtypeError, match="input_dtype"):
        mlakv.pack_fp8(NumpyProducer(kn), NumpyProducer(kp), NumpyProducer(v),
                       k_out=NumpyProducer(ko), v_out=NumpyProducer(vo), fp8_dtype="e4m3fn")
    mlakv.pack_fp8(NumpyProducer(kn), NumpyProducer(kp), NumpyProducer(v), k_out=NumpyProducer(ko),
                   v_out=NumpyProducer(vo), fp8_dtype="e4m3fn", input_dtype="bf16")
    ek, ev = expected(widen(kn, "bf16"), widen(kp, "bf16"), widen(v, "bf16"), 1.0, 1.0, "e4m3fn")
    np.testing.assert_array_equal(ko, ek)
    np.testing.assert_array_equal(vo, ev)


def test_numpy_producer_errors(rng):
    _numpy_dlpack_or_skip()
    kn = random_bits(rng, (2, 2, 16), "fp32")
    kp = random_bits(rng, (2, 8), "fp32")
    ko, vo = poisoned((2, 2, 24)), poisoned((2, 2, 16))
    # outputs cannot be allocated for a generic producer
    with pytest.raises(mlakv.InvalidArgumentError, match="must be given"):
        mlakv.pack_fp8(NumpyProducer(kn), NumpyProducer(kp), NumpyProducer(kn))
    # a read-only output: refused (versioned: READ_ONLY flag; legacy: numpy refuses to export)
    for legacy in (False, True):
        ro = poisoned((2, 2, 24))
        ro.flags.writeable = False
        with pytest.raises(mlakv.InvalidArgumentError, match="read-only|refused"):
            mlakv.pack_fp8(NumpyProducer(kn), NumpyProducer(kp), NumpyProducer(kn),
                           k_out=NumpyProducer(ro, legacy), v_out=NumpyProducer(vo),
                           fp8_dtype="e4m3fn")
    # a read-only input is fine where the producer can say "read-only" (DLPack >= 1.0 capsules:
    # numpy >= 2.1); an older numpy refuses to export it at all
    rin = kn.copy()
    rin.flags.writeable = False
    if _numpy_versioned():
        mlakv.pack_fp8(NumpyProducer(rin), NumpyProducer(kp), NumpyProducer(kn), k_out=ko,
                       v_out=vo, fp8_dtype="e4m3fn")
        np.testing.assert_array_equal(ko, expected(kn, kp, kn, 1.0, 1.0, "e4m3fn")[0])
    else:
        with pytest.raises(mlakv.InvalidArgumentError, match="refused"):
            mlakv.pack_fp8(NumpyProducer(rin), NumpyProducer(kp), NumpyProducer(kn), k_out=ko,
                           v_out=vo, fp8_dtype="e4m3fn")
    # an integer input dtype
    with pytest.raises(mlakv.DtypeError):
        mlakv.pack_fp8(NumpyProducer(np.ones(kn.shape, np.int32)), NumpyProducer(kp), NumpyProducer(kn),
                       k_out=ko, v_out=vo, fp8_dtype="e4m3fn")
    # a library error through DLPack arguments: outputs untouched
    ko2, vo2 = poisoned((2, 2, 24)), poisoned((2, 2, 16))
    with pytest.raises(mlakv.ShapeError):
        mlakv.pack_fp8(NumpyProducer(kn), NumpyProducer(kp[:1]), NumpyProducer(kn),
                       k_out=NumpyProducer(ko2), v_out=NumpyProducer(vo2), fp8_dtype="e4m3fn")
    assert (ko2 == POISON).all() and (vo2 == POISON).all()


def test_numpy_producer_scale_by_pointer(rng):
    _numpy_dlpack_or_skip()
    kn = random_bits(rng, (3, 2, 16), "fp32")
    kp = random_bits(rng, (3, 8), "fp32")
    ks = np.array([3.0], np.float32)
    ko, vo = mlakv.pack_fp8(kn, kp, kn, NumpyProducer(ks), 0.5)
    np.testing.assert_array_equal(ko, expected(kn, kp, kn, 3.0, 0.5, "e4m3fn")[0])


def test_numpy_capsule_is_released_after_the_call(rng):
    """The binding borrows the capsule (never renames it) and drops it after the call: numpy's
    capsule destructor then runs the deleter, which releases the array."""
    _numpy_dlpack_or_skip()
    arrs = [random_bits(rng, sh, "fp32") for sh in ((2, 2, 16), (2, 8), (2, 2, 16))]
    outs = [poisoned((2, 2, 24)), poisoned((2, 2, 16))]
    refs = [weakref.ref(a) for a in arrs + outs]
    want = expected(*arrs, 1.0, 1.0, "e4m3fn")
    prods = [NumpyProducer(a) for a in arrs + outs]
    mlakv.pack_fp8(*prods[:3], 1.0, 1.0, prods[3], prods[4], fp8_dtype="e4m3fn")
    np.testing.assert_array_equal(outs[0], want[0])
    del prods, arrs, outs
    gc.collect()
    assert all(r() is None for r in refs), "a DLPack capsule (and so its array) was leaked"


# ---- a hand-made producer --------------------------------------------------------------------
_pyapi = ctypes.PyDLL(None)  # separate function objects: prototypes of our own
_pyapi.PyCapsule_New.restype = ctypes.py_object
_DESTRUCTOR = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_pyapi.PyCapsule_New.argtypes = [ctypes.c_void_p, ctypes.c_char_p, _DESTRUCTOR]
_pyapi.PyCapsule_IsValid.restype = ctypes.c_int
_pyapi.PyCapsule_IsValid.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
_pyapi.PyCapsule_GetPointer.restype = ctypes.c_void_p
_pyapi.PyCapsule_GetPointer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
_NAME = b"dltensor"
_NAME_V = b"dltensor_versioned"
_DELETER = ctypes.CFUNCTYPE(None, ctypes.POINTER(_dlpack.DLManagedTensor))
_DELETER_V = ctypes.CFUNCTYPE(None, ctypes.POINTER(_dlpack.DLManagedTensorVersioned))


@_DESTRUCTOR
def _capsule_destructor(p):
    """What a producer's capsule destructor does: call the deleter unless consumed."""
    if _pyapi.PyCapsule_IsValid(p, _NAME):
        mt = _dlpack.DLManagedTensor.from_address(_pyapi.PyCapsule_GetPointer(p, _NAME))
        mt.deleter(ctypes.pointer(mt))
    elif _pyapi.PyCapsule_IsValid(p, _NAME_V):
        mt = _dlpack.DLManagedTensorVersioned.from_address(_pyapi.PyCapsule_GetPointer(p, _NAME_V))
        mt.deleter(ctypes.pointer(mt))


class HandMadeProducer:
    """A DLPack producer over a numpy array's memory with any (code, bits), optional NULL
    strides, a non-zero byte_offset and a deleter that counts its calls."""

    def __init__(self, arr, code, bits, null_strides=False, versioned=False, read_only=False,
                 device=(1, 0)):
        self.arr = arr
        self.device = device
        self.versioned = versioned
        self.deleted = 0
        self.exported = 0
        nd = arr.ndim
        self._shape = (ctypes.c_int64 * max(nd, 1))(*arr.shape)
        self._strides = None if null_strides else (ctypes.c_int64 * max(nd, 1))(
            *[s // arr.itemsize for s in arr.strides])
        if versioned:
            self.mt = _dlpack.DLManagedTensorVersioned()
            self.mt.version.major, self.mt.version.minor = 1, 0
            self.mt.flags = _dlpack.FLAG_READ_ONLY if read_only else 0
            self._del = _DELETER_V(self._deleter)
        else:
            self.mt = _dlpack.DLManagedTensor()
            self._del = _DELETER(self._deleter)
        t = self.mt.dl_tensor
        ptr = arr.__array_interface__["data"][0]
        t.data = ptr - 64          # the element [0, ...] is at data + byte_offset
        t.byte_offset = 64
        t.device.device_type, t.device.device_id = device
        t.ndim = nd
        t.dtype.code, t.dtype.bits, t.dtype.lanes = code, bits, 1
        t.shape = ctypes.cast(self._shape, ctypes.POINTER(ctypes.c_int64))
        t.strides = (ctypes.cast(self._strides, ctypes.POINTER(ctypes.c_int64))
                     if self._strides is not None else None)
        self.mt.deleter = self._del

    def _deleter(self, _p):
        self.deleted += 1

    def __dlpack_device__(self):
        return self.device

    def __dlpack__(self, stream=None, max_version=None):
        self.exported += 1
        self.stream = stream
        name = _NAME_V if self.versioned else _NAME
        return _pyapi.PyCapsule_New(ctypes.addressof(self.mt), name, _capsule_destructor)


FP8_DL_CODES = {"e4m3fn": 10, "e4m3fnuz": 11, "e5m2": 12, "e5m2fnuz": 13}


@pytest.mark.parametrize("versioned", [False, True])
@pytest.mark.parametrize("fmt", list(FP8_DL_CODES))
def test_hand_made_bf16_and_fp8_codes_and_deleter(fmt, versioned, rng):
    kn = random_bits(rng, (3, 2, 16), "bf16")
    kp = random_bits(rng, (3, 1, 8), "bf16")
    v = random_bits(rng, (3, 2, 8), "bf16")
    ko, vo = poisoned((3, 2, 24)), poisoned((3, 2, 8))
    prods = [HandMadeProducer(a, 4, 16, versioned=versioned) for a in (kn, kp, v)]  # kDLBfloat
    prods += [HandMadeProducer(a, FP8_DL_CODES[fmt], 8, null_strides=True, versioned=versioned)
              for a in (ko, vo)]
    mlakv.pack_fp8(*prods[:3], 0.5, 4.0, prods[3], prods[4])  # the format comes from the dtype
    ek, ev = expected(widen(kn, "bf16"), widen(kp, "bf16"), widen(v, "bf16"), 0.5, 4.0, fmt)
    np.testing.assert_array_equal(ko, ek)
    np.testing.assert_array_equal(vo, ev)
    gc.collect()
    for p in prods:
        assert p.exported == 1 and p.deleted == 1, (p.exported, p.deleted)


def test_hand_made_errors(rng):
    x = random_bits(rng, (2, 2, 8), "fp32")
    kp = random_bits(rng, (2, 8), "fp32")
    ko, vo = poisoned((2, 2, 16)), poisoned((2, 2, 8))
    ro = HandMadeProducer(ko, 10, 8, versioned=True, read_only=True)
    with pytest.raises(mlakv.InvalidArgumentError, match="read-only"):
        mlakv.pack_fp8(x, kp, x, k_out=ro, v_out=vo, fp8_dtype="e4m3fn")
    gc.collect()
    assert ro.deleted == 1
    bad = HandMadeProducer(x, 2, 64)  # float64
    with pytest.raises(mlakv.DtypeError, match="code=2, bits=64"):
        mlakv.pack_fp8(bad, kp, x, k_out=ko, v_out=vo, fp8_dtype="e4m3fn")
    vulkan = HandMadeProducer(x, 2, 32, device=(7, 0))
    with pytest.raises(mlakv.MemorySpaceError, match="device type 7"):
        mlakv.pack_fp8(vulkan, kp, x, k_out=ko, v_out=vo, fp8_dtype="e4m3fn")
    assert (ko == POISON).all() and (vo == POISON).all()


def test_hand_made_fp8_dtype_must_agree(rng):
    x = random_bits(rng, (2, 2, 8), "fp32")
    kp = random_bits(rng, (2, 8), "fp32")
    ko = HandMadeProducer(poisoned((2, 2, 16)), 12, 8)  # e5m2
    vo = HandMadeProducer(poisoned((2, 2, 8)), 12, 8)
    with pytest.raises(mlakv.DtypeError, match="FP8 format is e4m3fn"):
        mlakv.pack_fp8(x, kp, x, k_out=ko, v_out=vo, fp8_dtype="e4m3fn")
    assert _dlpack.device_kind(13) == "cuda" and _dlpack.device_kind(10) == "rocm"
    assert _dlpack.device_kind(3) == "cpu" and _dlpack.device_kind(7) is None
