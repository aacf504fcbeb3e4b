"""mlakv.pack_fp8 on numpy arrays (host memory, the reference backend)."""
from __future__ import annotations

import threading

import pytest

import mlakv
from mlakv import _capi

from conftest import (FMT_CODE, FORMATS, IN_CODE, POISON, expected, last_error,
                      ml_dtypes_or_skip, np, oracle, poisoned, random_bits, raw_pack, widen)

# ---- fixed vectors ------------------------------------------------------------------------------
# (bf16 bits, fp16 bits, float value) and the byte each format gives at m = 1, derived by hand
# from the format definitions (see shared/MISSION.md "Exact numerics"):
#   e4m3fn: bias 7, max 448 = 0x7E, NaN 0x7F, subnormals m * 2^-9
#   e5m2:   bias 15, max 57344 = 0x7B, NaN 0x7F
#   e4m3fnuz: bias 8, max 240 = 0x7F, NaN 0x80, subnormals m * 2^-10, no -0
#   e5m2fnuz: bias 16, max 57344 = 0x7F, NaN 0x80, no -0
FIXED = [
    # bf16,  fp16,   value,        e4m3fn e5m2  e4m3fnuz e5m2fnuz
    (0x3F80, 0x3C00, 1.0,          0x38, 0x3C, 0x40, 0x40),
    (0xBF80, 0xBC00, -1.0,         0xB8, 0xBC, 0xC0, 0xC0),
    (0x447A, 0x63D0, 1000.0,       0x7E, 0x64, 0x7F, 0x68),   # saturates in the e4m3 formats
    (0xC47A, 0xE3D0, -1000.0,      0xFE, 0xE4, 0xFF, 0xE8),
    (0x7F80, 0x7C00, float("inf"), 0x7E, 0x7B, 0x7F, 0x7F),   # inf saturates to +max
    (0xFF80, 0xFC00, float("-inf"), 0xFE, 0xFB, 0xFF, 0xFF),
    (0x7FC0, 0x7E00, float("nan"), 0x7F, 0x7F, 0x80, 0x80),   # canonical NaN
    (0x8000, 0x8000, -0.0,         0x80, 0x80, 0x00, 0x00),   # fnuz has no -0
    (0x3A80, 0x1400, 2.0 ** -10,   0x00, 0x14, 0x01, 0x18),   # e4m3fn: a tie, to even (0)
    (0x3AC0, 0x1600, 1.5 * 2 ** -10, 0x01, 0x16, 0x02, 0x1A),
    (0x3B00, 0x1800, 2.0 ** -9,    0x01, 0x18, 0x02, 0x1C),   # e4m3fn's smallest subnormal
    (0x3B40, 0x1A00, 3 * 2.0 ** -10, 0x02, 0x1A, 0x03, 0x1E),
    (0x3F88, 0x3C40, 1.0625,       0x38, 0x3C, 0x40, 0x40),   # ties/rounding of the mantissa
    (0x3F98, 0x3CC0, 1.1875,       0x3A, 0x3D, 0x42, 0x41),
    (0x43F0, 0x5F80, 480.0,        0x7E, 0x60, 0x7F, 0x64),   # e5m2: 1.875*2^8, the tie goes to even: 512
]
COLS = {"e4m3fn": 3, "e5m2": 4, "e4m3fnuz": 5, "e5m2fnuz": 6}


def _fixed_inputs(in_dtype, s=2, h=3, dn=16, dr=8, dv=16):
    n = len(FIXED)
    idx_kn = (np.arange(s * h * dn).reshape(s, h, dn)) % n
    idx_kp = (np.arange(s * dr).reshape(s, dr) + 5) % n
    idx_v = (np.arange(s * h * dv).reshape(s, h, dv) + 9) % n
    col = {"bf16": 0, "fp16": 1, "fp32": 2}[in_dtype]
    table = np.array([r[col] for r in FIXED], dtype=np.uint16 if col < 2 else np.float32)
    arrs = [table[i] for i in (idx_kn, idx_kp, idx_v)]
    if in_dtype == "fp16":
        arrs = [a.view(np.float16) for a in arrs]
    return arrs, (idx_kn, idx_kp, idx_v)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("in_dtype", ["bf16", "fp16", "fp32"])
def test_fixed_vectors(fmt, in_dtype):
    (kn, kp, v), (ikn, ikp, iv) = _fixed_inputs(in_dtype)
    s, h, dn = kn.shape
    dr, dv = kp.shape[1], v.shape[2]
    ko, vo = poisoned((s, h, dn + dr)), poisoned((s, h, dv))
    kw = {"input_dtype": "bf16"} if in_dtype == "bf16" else {}
    r = mlakv.pack_fp8(kn, kp, v, 1.0, 1.0, ko, vo, fp8_dtype=fmt, **kw)
    assert r[0] is ko and r[1] is vo
    want = np.array([row[COLS[fmt]] for row in FIXED], np.uint8)
    np.testing.assert_array_equal(ko[..., :dn], want[ikn])
    np.testing.assert_array_equal(ko[..., dn:], np.broadcast_to(want[ikp][:, None, :], (s, h, dr)))
    np.testing.assert_array_equal(vo, want[iv])


def test_fixed_scale_multiply():
    """m = 2: 1.0 -> 2.0 -> 0x40 (e4m3fn); m = 0.5 on v: 1.0 -> 0.5 -> 0x30; m = 448 saturates
    at exactly 448 (0x7E) and 1.0 * 500 -> 0x7E."""
    one = np.full((1, 2, 8), 0x3F80, np.uint16)
    kp = np.full((1, 8), 0x3F80, np.uint16)
    for ks, vs, kb, vb in ((2.0, 0.5, 0x40, 0x30), (448.0, 500.0, 0x7E, 0x7E),
                           (-2.0, 1.0, 0xC0, 0x38)):
        ko, vo = poisoned((1, 2, 16)), poisoned((1, 2, 8))
        mlakv.pack_fp8(one, kp, one, ks, vs, ko, vo, fp8_dtype="e4m3fn", input_dtype="bf16")
        assert (ko == kb).all() and (vo == vb).all(), (ks, vs, ko, vo)


def test_fp16_subnormal_input_is_widened_exactly():
    # fp16 0x0200 = 512 * 2^-24 = 2^-15 (an fp16 subnormal); * 2^6 = 2^-9 -> e4m3fn 0x01
    x = np.full((1, 1, 8), 0x0200, np.uint16).view(np.float16)
    kp = np.full((1, 8), 0x0200, np.uint16).view(np.float16)
    ko, vo = poisoned((1, 1, 16)), poisoned((1, 1, 8))
    mlakv.pack_fp8(x, kp, x, 64.0, 32.0, ko, vo, fp8_dtype="e4m3fn")
    assert (ko == 0x01).all()
    assert (vo == 0x00).all()  # 2^-10: the tie between 0 and 2^-9 goes to even (0)


# ---- random inputs against the C API and the numpy oracle -------------------------------------
CASES = [
    # s, h, d_nope, d_rope, d_v, k_pe rank
    (1, 16, 128, 64, 128, 3),
    (7, 5, 128, 64, 128, 2),
    (3, 4, 24, 8, 16, 3),
    (5, 3, 9, 3, 5, 2),       # dims that are no multiple of 8 (the general path)
    (33, 2, 64, 32, 64, 3),
]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("in_dtype", ["bf16", "fp16", "fp32"])
@pytest.mark.parametrize("case", CASES)
def test_random_matches_c_api_and_oracle(case, in_dtype, fmt, rng):
    s, h, dn, dr, dv, kp_rank = case
    kv = random_bits(rng, (s, h, dn + dv), in_dtype)
    kn, v = kv[..., :dn], kv[..., dn:]                 # strided halves of one tensor
    kp = random_bits(rng, (s, 1, dr) if kp_rank == 3 else (s, dr), in_dtype)
    ks, vs = float(np.float32(1 / 0.0375)), float(np.float32(1 / 0.021))
    ko, vo = poisoned((s, h, dn + dr)), poisoned((s, h, dv))
    kw = {"input_dtype": "bf16"} if in_dtype == "bf16" else {}
    mlakv.pack_fp8(kn, kp, v, ks, vs, ko, vo, fp8_dtype=fmt, **kw)
    # the C library called directly (reference backend forced)
    rko, rvo = poisoned(ko.shape), poisoned(vo.shape)
    assert raw_pack(kn, kp, v, rko, rvo, IN_CODE[in_dtype], fmt, ks, vs) == 0, last_error()
    np.testing.assert_array_equal(ko, rko)
    np.testing.assert_array_equal(vo, rvo)
    # an independent model of the numerics
    ek, ev = expected(widen(kn, in_dtype), widen(kp, in_dtype), widen(v, in_dtype), ks, vs, fmt)
    np.testing.assert_array_equal(ko, ek)
    np.testing.assert_array_equal(vo, ev)


def test_strided_outputs_and_inputs(rng):
    s, h, dn, dr, dv = 6, 4, 32, 16, 32
    big = random_bits(rng, (s, h + 2, 3 * (dn + dv)), "fp32")
    kn = big[:, 1:h + 1, 5:5 + dn]                       # token and head strides of a bigger tensor
    v = big[:, 1:h + 1, 100:100 + dv]
    kp = random_bits(rng, (s, 2, dr), "fp32")[:, :1, :]  # [s, 1, dr] view with token stride 2*dr
    kbuf = poisoned((s, h, 2 * (dn + dr)))
    ko = kbuf[:, :, 7:7 + dn + dr]                        # strided output, odd offset
    vbuf = poisoned((s, 2 * h, dv))
    vo = vbuf[:, ::2, :]
    mlakv.pack_fp8(kn, kp, v, 3.0, 0.25, ko, vo, fp8_dtype="e5m2")
    ek, ev = expected(kn, kp, v, 3.0, 0.25, "e5m2")
    np.testing.assert_array_equal(ko, ek)
    np.testing.assert_array_equal(vo, ev)
    # bytes outside the views are untouched
    assert (kbuf[:, :, :7] == POISON).all() and (kbuf[:, :, 7 + dn + dr:] == POISON).all()
    assert (vbuf[:, 1::2, :] == POISON).all()


# ---- dtypes -------------------------------------------------------------------------------------
def test_ml_dtypes_inputs_and_outputs(rng):
    mld = ml_dtypes_or_skip()
    s, h = 4, 3
    bits = random_bits(rng, (s, h, 24), "bf16")
    kv = bits.view(mld.bfloat16)
    kp = random_bits(rng, (s, 8), "bf16").view(mld.bfloat16)
    for fmt in FORMATS:
        dt = np.dtype(getattr(mld, "float8_" + fmt))
        ko = np.full((s, h, 16), POISON, np.uint8).view(dt)
        vo = np.full((s, h, 16), POISON, np.uint8).view(dt)
        mlakv.pack_fp8(kv[..., :8], kp, kv[..., 8:], 2.0, 0.5, ko, vo)  # format from the dtype
        ek, ev = expected(widen(bits[..., :8], "bf16"), widen(kp.view(np.uint16), "bf16"),
                          widen(bits[..., 8:], "bf16"), 2.0, 0.5, fmt)
        np.testing.assert_array_equal(ko.view(np.uint8), ek)
        np.testing.assert_array_equal(vo.view(np.uint8), ev)
        # the same through uint16 bits + input_dtype
        ko2, vo2 = mlakv.pack_fp8(bits[..., :8], kp.view(np.uint16), bits[..., 8:], 2.0, 0.5,
                                  fp8_dtype=dt, input_dtype="bf16")
        assert ko2.dtype == dt and vo2.dtype == dt  # allocated with the ml_dtypes dtype
        np.testing.assert_array_equal(ko2.view(np.uint8), ek)


def test_output_allocation_numpy(rng):
    kn = random_bits(rng, (3, 2, 16), "fp32")
    kp = random_bits(rng, (3, 1, 8), "fp32")
    v = random_bits(rng, (3, 2, 24), "fp32")
    ko, vo = mlakv.pack_fp8(kn, kp, v)
    assert ko.dtype == np.uint8 and ko.shape == (3, 2, 24) and ko.flags.c_contiguous
    assert vo.dtype == np.uint8 and vo.shape == (3, 2, 24)
    ek, ev = expected(kn, kp, v, 1.0, 1.0, "e4m3fn")  # the default format
    np.testing.assert_array_equal(ko, ek)
    np.testing.assert_array_equal(vo, ev)
    ko, vo = mlakv.pack_fp8(kn, kp, v, fp8_dtype="e5m2fnuz")
    np.testing.assert_array_equal(ko, expected(kn, kp, v, 1.0, 1.0, "e5m2fnuz")[0])
    ko, vo = mlakv.pack_fp8(kn, kp, v, fp8_dtype=mlakv.DTYPE_E5M2)
    np.testing.assert_array_equal(vo, expected(kn, kp, v, 1.0, 1.0, "e5m2")[1])
    # one output given, the other allocated
    vo_given = poisoned((3, 2, 24))
    ko, vo = mlakv.pack_fp8(kn, kp, v, v_out=vo_given, fp8_dtype="e4m3fn")
    assert vo is vo_given and ko.shape == (3, 2, 24)


def test_dtype_errors(rng):
    kn = random_bits(rng, (2, 2, 8), "bf16")
    kp = random_bits(rng, (2, 8), "bf16")
    ko, vo = poisoned((2, 2, 16)), poisoned((2, 2, 8))
    with pytest.raises(mlakv.DtypeError, match="input_dtype='bf16'"):
        mlakv.pack_fp8(kn, kp, kn, k_out=ko, v_out=vo, fp8_dtype="e4m3fn")
    with pytest.raises(mlakv.DtypeError, match="fp8_dtype"):
        mlakv.pack_fp8(kn, kp, kn, k_out=ko, v_out=vo, input_dtype="bf16")  # uint8 outputs
    with pytest.raises(mlakv.DtypeError):
        mlakv.pack_fp8(kn.astype(np.int16), kp, kn, k_out=ko, v_out=vo, fp8_dtype="e4m3fn",
                       input_dtype="bf16")
    with pytest.raises(mlakv.DtypeError, match="not an FP8 format"):
        mlakv.pack_fp8(kn, kp, kn, k_out=ko, v_out=vo, fp8_dtype="e4m3", input_dtype="bf16")
    with pytest.raises(mlakv.DtypeError):
        mlakv.pack_fp8(kn, kp, kn, k_out=ko, v_out=vo, fp8_dtype=9, input_dtype="bf16")
    with pytest.raises(mlakv.DtypeError, match="not bf16, fp16 or fp32"):
        mlakv.pack_fp8(kn, kp, kn, k_out=ko, v_out=vo, fp8_dtype="e5m2", input_dtype="int16")
    f32 = kn.astype(np.float32)
    with pytest.raises(mlakv.DtypeError, match="input_dtype is bf16"):
        mlakv.pack_fp8(f32, kp, kn, k_out=ko, v_out=vo, fp8_dtype="e5m2", input_dtype="bf16")
    with pytest.raises(mlakv.DtypeError):
        mlakv.pack_fp8(f32, f32[:, 0, :], f32, k_out=ko.astype(np.int8), v_out=vo,
                       fp8_dtype="e5m2")
    with pytest.raises(mlakv.DtypeError, match="big-endian"):
        mlakv.pack_fp8(f32.astype(">f4"), f32[:, 0, :], f32, k_out=ko, v_out=vo, fp8_dtype="e5m2")
    # the library's own dtype check: inputs of different dtypes
    with pytest.raises(mlakv.DtypeError) as ei:
        mlakv.pack_fp8(f32, f32[:, 0, :].astype(np.float16), f32, k_out=ko, v_out=vo,
                       fp8_dtype="e5m2")
    assert ei.value.status == 3 and ei.value.function == "mlakv_pack_fp8"
    assert (ko == POISON).all() and (vo == POISON).all()


def test_ml_dtypes_output_disagreeing_with_fp8_dtype():
    mld = ml_dtypes_or_skip()
    x = np.ones((1, 1, 8), np.float32)
    ko = np.zeros((1, 1, 16), mld.float8_e5m2)
    vo = np.zeros((1, 1, 8), mld.float8_e5m2)
    with pytest.raises(mlakv.DtypeError, match="FP8 format is e4m3fn"):
        mlakv.pack_fp8(x, x[:, 0, :], x, k_out=ko, v_out=vo, fp8_dtype="e4m3fn")
    vo8 = np.zeros((1, 1, 8), mld.float8_e4m3fn)
    with pytest.raises(mlakv.DtypeError):  # two typed outputs that disagree
        mlakv.pack_fp8(x, x[:, 0, :], x, k_out=ko, v_out=vo8)


# ---- scales -------------------------------------------------------------------------------------
def test_scale_by_value_and_by_pointer_agree(rng):
    kn = random_bits(rng, (5, 3, 16), "fp16")
    kp = random_bits(rng, (5, 8), "fp16")
    v = random_bits(rng, (5, 3, 16), "fp16")
    ks, vs = np.float32(1 / 0.0375), np.float32(1 / 0.021)
    a = mlakv.pack_fp8(kn, kp, v, float(ks), float(vs), fp8_dtype="e4m3fn")
    ksa, vsa = np.array([ks], np.float32), np.array(vs, np.float32)  # 1-D and 0-d
    b = mlakv.pack_fp8(kn, kp, v, ksa, vsa, fp8_dtype="e4m3fn")
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    # by pointer: the value at call time is what counts
    ksa[0] = 2.0
    c = mlakv.pack_fp8(kn, kp, v, ksa, vsa, fp8_dtype="e4m3fn")
    np.testing.assert_array_equal(c[0], expected(kn, kp, v, 2.0, vs, "e4m3fn")[0])
    # numpy scalars and ints are values
    d = mlakv.pack_fp8(kn, kp, v, np.float32(2.0), 1, fp8_dtype="e4m3fn")
    np.testing.assert_array_equal(d[0], c[0])
    np.testing.assert_array_equal(d[1], expected(kn, kp, v, 2.0, 1.0, "e4m3fn")[1])
    # the same through the raw C API's scale pointers
    rk, rv = poisoned(a[0].shape), poisoned(a[1].shape)
    assert raw_pack(kn, kp, v, rk, rv, 2, "e4m3fn", ks_ptr=ksa.ctypes.data,
                    vs_ptr=vsa.ctypes.data) == 0
    np.testing.assert_array_equal(rk, c[0])


def test_scale_errors(rng):
    x = np.ones((1, 1, 8), np.float32)
    with pytest.raises(mlakv.DtypeError, match="float32"):
        mlakv.pack_fp8(x, x[:, 0, :], x, np.array([2.0]))  # float64
    with pytest.raises(mlakv.ShapeError, match=r"one-element .* shape \[h\] = \[1\]"):
        mlakv.pack_fp8(x, x[:, 0, :], x, np.ones(2, np.float32))  # h = 1: 1 element, not 2
    with pytest.raises(mlakv.InvalidArgumentError):
        mlakv.pack_fp8(x, x[:, 0, :], x, "2.0x")
    # a double beyond the fp32 range becomes inf, as C's (float) conversion makes it
    a = mlakv.pack_fp8(x, x[:, 0, :], x, 1e300, -1e300)
    b = mlakv.pack_fp8(x, x[:, 0, :], x, float("inf"), float("-inf"))
    assert (a[0] == 0x7E).all() and (a[1] == 0xFE).all()
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


# ---- errors from the library: status, message, outputs untouched --------------------------------
def _args(rng, s=4, h=3, dn=16, dr=8, dv=16):
    kv = random_bits(rng, (s, h, dn + dv), "fp32")
    return kv[..., :dn], random_bits(rng, (s, 1, dr), "fp32"), kv[..., dn:]


def _assert_fails(cls, status, call, *outs):
    with pytest.raises(cls) as ei:
        call()
    e = ei.value
    assert isinstance(e, mlakv.Error)
    assert e.status == status and e.name == mlakv.STATUS_NAMES[status]
    assert e.message and e.message == last_error()
    for o in outs:
        assert (np.asarray(o).view(np.uint8) == POISON).all(), "an output was written"
    return e


def test_shape_mismatch(rng):
    kn, kp, v = _args(rng)
    ko, vo = poisoned((4, 3, 24)), poisoned((4, 3, 16))
    e = _assert_fails(mlakv.ShapeError, 5, lambda: mlakv.pack_fp8(kn, kp, v[:3], 1.0, 1.0, ko, vo,
                                                                  fp8_dtype="e4m3fn"), ko, vo)
    assert "token" in e.message
    _assert_fails(mlakv.ShapeError, 5, lambda: mlakv.pack_fp8(kn, kp, v, 1.0, 1.0, ko[:, :, :20],
                                                              vo, fp8_dtype="e4m3fn"), ko, vo)
    kp2 = np.concatenate([kp, kp], axis=1)  # [s, 2, dr]: not one rope vector per token
    _assert_fails(mlakv.ShapeError, 5, lambda: mlakv.pack_fp8(kn, kp2, v, 1.0, 1.0, ko, vo,
                                                              fp8_dtype="e4m3fn"), ko, vo)


def test_overlapping_outputs(rng):
    kn, kp, v = _args(rng)
    buf = poisoned(4 * 3 * 24 + 8)
    ko = buf[:4 * 3 * 24].reshape(4, 3, 24)
    vo = buf[8:8 + 4 * 3 * 16].reshape(4, 3, 16)    # inside k_out
    e = _assert_fails(mlakv.OverlapError, 8, lambda: mlakv.pack_fp8(kn, kp, v, 1.0, 1.0, ko, vo,
                                                                    fp8_dtype="e4m3fn"), buf)
    assert "overlap" in e.message


def test_output_overlapping_an_input(rng):
    # one byte buffer: the inputs are float32 views of it, k_out a uint8 view of its start
    raw = np.full(4 * 3 * 32 * 4, POISON, np.uint8)
    f32 = raw.view(np.float32).reshape(4, 3, 32)
    kn, v = f32[..., :16], f32[..., 16:]
    kp = random_bits(rng, (4, 8), "fp32")
    ko = raw[:4 * 3 * 24].reshape(4, 3, 24)         # aliases k_nope's memory
    vo = poisoned((4, 3, 16))
    _assert_fails(mlakv.OverlapError, 8, lambda: mlakv.pack_fp8(kn, kp, v, 1.0, 1.0, ko, vo,
                                                                fp8_dtype="e4m3fn"), raw, vo)


def test_other_library_errors(rng):
    kn, kp, v = _args(rng)
    ko, vo = poisoned((4, 3, 24)), poisoned((4, 3, 16))

    def call(**kw):
        a = dict(k_out=ko, v_out=vo, fp8_dtype="e4m3fn")
        a.update(kw)
        return lambda: mlakv.pack_fp8(a.pop("k_nope", kn), a.pop("k_pe", kp), a.pop("v", v), **a)

    _assert_fails(mlakv.RankError, 4, call(k_nope=kn[:, 0, :]), ko, vo)
    _assert_fails(mlakv.StrideError, 6, call(k_nope=np.ascontiguousarray(
        np.repeat(kn, 2, axis=2))[..., ::2]), ko, vo)
    _assert_fails(mlakv.StrideError, 6, call(k_nope=kn[::-1]), ko, vo)  # negative stride
    _assert_fails(mlakv.NoSuchBackendError, 12, call(backend=42), ko, vo)
    _assert_fails(mlakv.InvalidArgumentError, 11, call(pdl=7), ko, vo)
    _assert_fails(mlakv.AlignmentError, 7, call(k_nope=_misaligned(kn)), ko, vo)
    _assert_fails(mlakv.UnsupportedDimsError, 10, call(
        k_nope=kn[..., :0], k_out=ko[..., :8]), ko, vo)
    cuda = next(b for b in mlakv.backends() if b.name == "cuda")
    if not cuda.usable:
        e = _assert_fails(mlakv.BackendUnavailableError, 13, call(backend="cuda"), ko, vo)
        assert "cuda" in e.message
    else:  # host memory is not reachable by the CUDA backend
        _assert_fails(mlakv.MemorySpaceError, 18, call(backend="cuda"), ko, vo)


def _misaligned(kn):
    """A float32 view whose data pointer is 2 bytes off a 4-byte boundary."""
    raw = np.zeros(kn.size * 4 + 8, np.uint8)
    base = raw.__array_interface__["data"][0]
    off = (2 - base) % 4
    arr = np.ndarray(kn.shape, dtype=np.float32, buffer=raw, offset=off,
                     strides=tuple(4 * s for s in (kn.shape[1] * kn.shape[2], kn.shape[2], 1)))
    assert arr.__array_interface__["data"][0] % 4 == 2
    return arr


def test_binding_side_errors(rng):
    kn, kp, v = _args(rng)
    with pytest.raises(mlakv.InvalidArgumentError, match="expected a numpy array"):
        mlakv.pack_fp8([[1.0]], kp, v)
    ro = poisoned((4, 3, 24))
    ro.flags.writeable = False
    with pytest.raises(mlakv.InvalidArgumentError, match="read-only"):
        mlakv.pack_fp8(kn, kp, v, k_out=ro, fp8_dtype="e4m3fn")
    with pytest.raises(mlakv.RankError, match="3-D"):
        mlakv.pack_fp8(kn[:, 0, :], kp, v)  # outputs cannot be sized
    with pytest.raises(mlakv.RankError, match="at most 4"):
        mlakv.pack_fp8(kn.reshape(4, 3, 16, 1, 1), kp, v, k_out=poisoned((4, 3, 24)),
                       v_out=poisoned((4, 3, 16)), fp8_dtype="e4m3fn")
    with pytest.raises(mlakv.InvalidArgumentError):
        mlakv.pack_fp8(kn, kp, v, backend="tpu")
    with pytest.raises(mlakv.InvalidArgumentError):
        mlakv.pack_fp8(kn, kp, v, pdl="sometimes")


def test_empty_call_is_a_no_op():
    kn = np.zeros((0, 3, 16), np.float32)
    ko, vo = mlakv.pack_fp8(kn, np.zeros((0, 8), np.float32), np.zeros((0, 3, 16), np.float32))
    assert ko.shape == (0, 3, 24) and vo.shape == (0, 3, 16)
    assert "nothing to do" in mlakv.plan(kn, np.zeros((0, 8), np.float32), kn)


def test_plan_writes_nothing(rng):
    kn, kp, v = _args(rng)
    ko, vo = poisoned((4, 3, 24)), poisoned((4, 3, 16))
    p = mlakv.plan(kn, kp, v, 2.0, 3.0, ko, vo, fp8_dtype="e4m3fnuz", backend="reference",
                   pdl=False)
    assert p.startswith("backend=reference") and "s=4 h=3 dims=16,8,16 fp32->e4m3fnuz" in p
    assert "pdl=off" in p
    assert (ko == POISON).all() and (vo == POISON).all()
    with pytest.raises(mlakv.ShapeError):
        mlakv.plan(kn, kp, v[:2], k_out=ko, v_out=vo, fp8_dtype="e4m3fn")


# ---- the struct cache -----------------------------------------------------------------------------
def test_cache_new_pointers_and_new_shapes(rng):
    from mlakv import _core
    mlakv.clear_cache()
    results = []
    for it in range(3):  # same shapes, new buffers: one cache entry, right results every time
        kn, kp, v = _args(rng, s=5, h=2)
        ko, vo = mlakv.pack_fp8(kn, kp, v, 2.0 + it, 0.5, fp8_dtype="e4m3fn")
        ek, ev = expected(kn, kp, v, 2.0 + it, 0.5, "e4m3fn")
        np.testing.assert_array_equal(ko, ek)
        np.testing.assert_array_equal(vo, ev)
        results.append(ko)
    assert _core.cache_size() == 1
    for (s, h, dn) in ((5, 3, 16), (1, 2, 16), (5, 2, 24), (5, 2, 16)):
        kn, kp, v = _args(rng, s=s, h=h, dn=dn)
        ko, vo = mlakv.pack_fp8(kn, kp, v, 1.5, 0.5, fp8_dtype="e4m3fn")
        np.testing.assert_array_equal(ko, expected(kn, kp, v, 1.5, 0.5, "e4m3fn")[0])
        np.testing.assert_array_equal(vo, expected(kn, kp, v, 1.5, 0.5, "e4m3fn")[1])
    assert _core.cache_size() == 4  # the last shape was seen before
    # same shapes, other strides: a new entry, right results
    kv = random_bits(rng, (5, 2, 40), "fp32")
    ko, vo = mlakv.pack_fp8(kv[..., :16], kv[:, :1, 32:], kv[..., 16:32], fp8_dtype="e4m3fn")
    np.testing.assert_array_equal(ko, expected(kv[..., :16], kv[:, :1, 32:], kv[..., 16:32], 1.0,
                                               1.0, "e4m3fn")[0])
    assert _core.cache_size() == 5
    mlakv.clear_cache()
    assert _core.cache_size() == 0


def test_cache_is_bounded(rng, monkeypatch):
    from mlakv import _core
    monkeypatch.setattr(_core, "CACHE_MAX", 3)
    for s in range(1, 8):
        kn, kp, v = _args(rng, s=s, h=1)
        ko, vo = mlakv.pack_fp8(kn, kp, v, fp8_dtype="e4m3fn")
        np.testing.assert_array_equal(ko, expected(kn, kp, v, 1.0, 1.0, "e4m3fn")[0])
        assert _core.cache_size() <= 3


def test_threads_share_nothing(rng):
    """Concurrent calls with one shape from several threads: each gets its own struct."""
    inputs = [_args(np.random.default_rng(i), s=64, h=4) for i in range(4)]
    wants = [expected(*x, 1.0, 1.0, "e4m3fn") for x in inputs]
    errors = []

    def work(i):
        try:
            for _ in range(50):
                ko, vo = mlakv.pack_fp8(*inputs[i], fp8_dtype="e4m3fn")
                if not (np.array_equal(ko, wants[i][0]) and np.array_equal(vo, wants[i][1])):
                    errors.append(i)
                    return
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors


def test_backend_and_code_arguments(rng):
    kn, kp, v = _args(rng)
    a = mlakv.pack_fp8(kn, kp, v, backend="reference", pdl=True, fp8_dtype=FMT_CODE["e5m2"])
    b = mlakv.pack_fp8(kn, kp, v, backend=mlakv.BACKEND_AUTO, pdl="off", fp8_dtype="float8_e5m2",
                       trust_pointers=True)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert oracle is not None and _capi.FLAG_TRUST_POINTERS == 1
