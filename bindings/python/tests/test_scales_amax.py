"""Per-head scales and amax outputs (libmlakv 0.2) on the reference backend, host memory: numpy
arrays through mlakv.pack_fp8, the bare C API (conftest.raw_pack), and CPU torch tensors through
mlakv.torch.mla_kv_pack_quantize_fp8.

The contract (mlakv.h, above mlakv_pack_args): with MLAKV_SCALE_PER_HEAD, head j of k_out (its
k_nope part and its copy of k_pe) uses k_scale_inv_ptr[j] and head j of v_out v_scale_inv_ptr[j];
k_amax / v_amax accumulate max(old, max |x|) over the inputs before scaling (per tensor: one
float over k_nope and k_pe / over v; per head: k_amax[j] over head j of k_nope and all of k_pe,
v_amax[j] over head j of v), NaN ignored, inf counted, +0 when every element is NaN, the max
taken on int32 bit patterns.
"""
from __future__ import annotations

import ctypes

import pytest

import mlakv
from mlakv import _capi

from conftest import (FMT_CODE, IN_CODE, POISON, expected, last_error, np, poisoned, random_bits,
                      raw_pack, widen)

FORMATS = ("e4m3fn", "e5m2", "e4m3fnuz", "e5m2fnuz")
INPUTS = ("bf16", "fp16", "fp32")


def kw(in_dtype):
    return {"input_dtype": "bf16"} if in_dtype == "bf16" else {}


def to_input(x32, in_dtype):
    """float32 values -> the input representation (bf16: RNE into uint16 bits; NaN kept)."""
    x = np.asarray(x32, np.float32)
    if in_dtype == "bf16":
        u = x.view(np.uint32).astype(np.uint64)
        r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
        r[np.isnan(x)] = (x.view(np.uint32)[np.isnan(x)] >> 16).astype(np.uint16) | 0x0040
        return r
    if in_dtype == "fp16":
        with np.errstate(all="ignore"):
            return x.astype(np.float16)
    return x.copy()


def specials(in_dtype):
    """NaN (both signs), -0, +-subnormals of the input format, as float32 values that convert
    exactly (no infinities: those are placed by the tests where they want them)."""
    if in_dtype == "fp16":
        sub = [2.0 ** -20, -(2.0 ** -17), 2.0 ** -24]
    else:  # bf16 and fp32 share fp32's exponent range: 2^-130, -3 * 2^-133 are subnormal
        sub = [2.0 ** -130, -3 * 2.0 ** -133, 2.0 ** -149 if in_dtype == "fp32" else 2.0 ** -133]
    nan_neg = np.array([0xFFC00001], np.uint32).view(np.float32)[0]
    return np.array([np.nan, nan_neg, -0.0, 0.0] + sub, np.float32)


def sprinkle(rng, x32, values):
    flat = x32.reshape(-1)
    idx = rng.choice(flat.size, size=min(len(values) * 3, flat.size), replace=False)
    flat[idx] = np.resize(values, idx.size)
    return x32


def amax_loop(*arrays32):
    """max |x| over every element, NaN skipped, inf counted, +0 when none: a plain loop."""
    m = 0.0
    for a in arrays32:
        for x in np.asarray(a, np.float32).reshape(-1).tolist():
            if x != x:
                continue
            if abs(x) > m:
                m = abs(x)
    return np.float32(m)


def bits(x):
    return int(np.array([x], np.float32).view(np.int32)[0])


def accumulate(old, m):
    """The stored value after a call: max(old, m) compared as int32 bit patterns."""
    return np.array([max(bits(old), bits(m))], np.int32).view(np.float32)[0]


def assert_f32_bits(got, want, what):
    g = np.asarray(got, np.float32).reshape(-1).view(np.int32)
    w = np.asarray(want, np.float32).reshape(-1).view(np.int32)
    assert g.tolist() == w.tolist(), "%s: got %s want %s" % (what, np.asarray(got).tolist(),
                                                             np.asarray(want).tolist())


def make(rng, s, h, dn, dr, dv, in_dtype, k_factor=None, v_factor=None, sp=True):
    """k_nope and v: the two halves of one [s, h, dn + dv] array (strided views); k_pe [s, dr].
    Per-head factors scale head j's values; specials are sprinkled in. Returns the views and
    their exact float32 values."""
    x = (rng.standard_normal((s, h, dn + dv)) * 4).astype(np.float32)
    p = (rng.standard_normal((s, dr)) * 4).astype(np.float32)
    if k_factor is not None:
        x[..., :dn] *= np.asarray(k_factor, np.float32)[None, :, None]
    if v_factor is not None:
        x[..., dn:] *= np.asarray(v_factor, np.float32)[None, :, None]
    if sp:
        sprinkle(rng, x, specials(in_dtype))
        sprinkle(rng, p, specials(in_dtype))
    kv = to_input(x, in_dtype)
    kp = to_input(p, in_dtype)
    kv32, kp32 = widen(kv, in_dtype), widen(kp, in_dtype)
    return kv[..., :dn], kp, kv[..., dn:], (kv32[..., :dn], kp32, kv32[..., dn:])


def pow2_scales(h):
    """Distinct powers of two per head, K rising and V falling."""
    ks = np.array([2.0 ** (j - 3) for j in range(h)], np.float32)
    vs = np.array([2.0 ** (2 - j) for j in range(h)], np.float32)
    return ks, vs


# ---- per-head scales ---------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("in_dtype", INPUTS)
def test_per_head_scales_equal_packing_each_head_separately(fmt, in_dtype, rng):
    s, h, dn, dr, dv = 9, 6, 32, 16, 24
    kn, kp, v, (kn32, kp32, v32) = make(rng, s, h, dn, dr, dv, in_dtype)
    ks, vs = pow2_scales(h)
    ko, vo = poisoned((s, h, dn + dr)), poisoned((s, h, dv))
    mlakv.pack_fp8(kn, kp, v, ks, vs, ko, vo, fp8_dtype=fmt, **kw(in_dtype))
    for j in range(h):
        ko_j, vo_j = poisoned((s, 1, dn + dr)), poisoned((s, 1, dv))
        mlakv.pack_fp8(kn[:, j:j + 1], kp, v[:, j:j + 1], float(ks[j]), float(vs[j]), ko_j, vo_j,
                       fp8_dtype=fmt, **kw(in_dtype))
        np.testing.assert_array_equal(ko[:, j:j + 1], ko_j, err_msg="k_out head %d" % j)
        np.testing.assert_array_equal(vo[:, j:j + 1], vo_j, err_msg="v_out head %d" % j)
        # and the independent oracle
        ek, ev = expected(kn32[:, j:j + 1], kp32, v32[:, j:j + 1], ks[j], vs[j], fmt)
        np.testing.assert_array_equal(ko[:, j:j + 1], ek, err_msg="k_out head %d (oracle)" % j)
        np.testing.assert_array_equal(vo[:, j:j + 1], ev, err_msg="v_out head %d (oracle)" % j)
    # the bare C API gives the same bytes
    rko, rvo = poisoned((s, h, dn + dr)), poisoned((s, h, dv))
    st = raw_pack(kn, kp, v, rko, rvo, IN_CODE[in_dtype], fmt, ks_ptr=ks.ctypes.data,
                  vs_ptr=vs.ctypes.data, granularity=_capi.SCALE_PER_HEAD)
    assert st == 0, last_error()
    np.testing.assert_array_equal(rko, ko)
    np.testing.assert_array_equal(rvo, vo)


def test_per_head_plan_and_the_host_scalars_are_ignored(rng):
    s, h = 4, 3
    kn, kp, v, (kn32, kp32, v32) = make(rng, s, h, 16, 8, 16, "fp32")
    ks, vs = pow2_scales(h)
    p = mlakv.plan(kn, kp, v, ks, vs, k_amax=np.zeros(h, np.float32))
    assert "scales=per-head" in p and "amax=k" in p and "amax=k,v" not in p
    assert "scales=per-tensor amax=none" in mlakv.plan(kn, kp, v, 2.0, 0.5)
    # raw API: with per-head scales the host floats k_scale_inv / v_scale_inv play no part
    a, b = poisoned((s, h, 24)), poisoned((s, h, 16))
    c, d = poisoned((s, h, 24)), poisoned((s, h, 16))
    assert raw_pack(kn, kp, v, a, b, 3, "e4m3fn", ks=1.0, vs=1.0, ks_ptr=ks.ctypes.data,
                    vs_ptr=vs.ctypes.data, granularity=1) == 0
    assert raw_pack(kn, kp, v, c, d, 3, "e4m3fn", ks=123.0, vs=-7.0, ks_ptr=ks.ctypes.data,
                    vs_ptr=vs.ctypes.data, granularity=1) == 0
    np.testing.assert_array_equal(a, c)
    np.testing.assert_array_equal(b, d)


def test_per_head_scale_arrays_are_read_when_the_call_runs(rng):
    """Per-head scales are passed by pointer: changing the array changes the next call."""
    s, h = 3, 4
    kn, kp, v, (kn32, kp32, v32) = make(rng, s, h, 16, 8, 16, "bf16")
    ks = np.ones(h, np.float32)
    vs = np.ones(h, np.float32)
    ko1, vo1 = mlakv.pack_fp8(kn, kp, v, ks, vs, input_dtype="bf16")
    ks[:] = [1, 2, 4, 8]
    vs[:] = [8, 4, 2, 1]
    ko2, vo2 = mlakv.pack_fp8(kn, kp, v, ks, vs, input_dtype="bf16")
    for j in range(h):
        ek, ev = expected(kn32[:, j:j + 1], kp32, v32[:, j:j + 1], ks[j], vs[j], "e4m3fn")
        np.testing.assert_array_equal(ko2[:, j:j + 1], ek)
        np.testing.assert_array_equal(vo2[:, j:j + 1], ev)
    assert not np.array_equal(ko1, ko2)


# ---- amax ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("in_dtype", INPUTS)
def test_amax_per_tensor_accumulates_over_two_calls(in_dtype, rng):
    s, h, dn, dr, dv = 5, 4, 16, 8, 16
    ka = np.zeros(1, np.float32)
    va = np.zeros(1, np.float32)
    # call 1: finite values with NaN, -0 and subnormals
    kn, kp, v, (kn32, kp32, v32) = make(rng, s, h, dn, dr, dv, in_dtype)
    ko, vo = mlakv.pack_fp8(kn, kp, v, 2.0, 0.5, k_amax=ka, v_amax=va, **kw(in_dtype))
    m1k, m1v = amax_loop(kn32, kp32), amax_loop(v32)
    assert m1k > 0 and m1v > 0
    assert_f32_bits(ka, [m1k], "k_amax after call 1")
    assert_f32_bits(va, [m1v], "v_amax after call 1")
    # amax changes nothing in the outputs
    ek, ev = expected(kn32, kp32, v32, 2.0, 0.5, "e4m3fn")
    np.testing.assert_array_equal(ko, ek)
    np.testing.assert_array_equal(vo, ev)
    # call 2: K larger (the maximum in k_pe), V smaller but with an infinity
    kn, kp, v, (kn32, kp32, v32) = make(rng, s, h, dn, dr, dv, in_dtype,
                                        v_factor=[0.25] * h)
    kp32 = kp32.copy()
    kp = to_input(kp32, in_dtype)
    kp[1, 2] = to_input(np.array([-1000.0], np.float32), in_dtype)[0]
    kp32 = widen(kp, in_dtype)
    vv = v.copy()
    vv[2, 1, 3] = to_input(np.array([-np.inf], np.float32), in_dtype)[0]
    v32 = widen(vv, in_dtype)
    mlakv.pack_fp8(kn, kp, vv, 2.0, 0.5, k_amax=ka, v_amax=va, **kw(in_dtype))
    m2k, m2v = amax_loop(kn32, kp32), amax_loop(v32)
    assert m2k == 1000.0 and np.isinf(m2v)
    assert_f32_bits(ka, [accumulate(m1k, m2k)], "k_amax after call 2")
    assert_f32_bits(va, [accumulate(m1v, m2v)], "v_amax after call 2")
    assert ka[0] == 1000.0 and np.isposinf(va[0])


@pytest.mark.parametrize("in_dtype", INPUTS)
def test_amax_per_head_accumulates_over_two_calls(in_dtype, rng):
    s, h, dn, dr, dv = 6, 5, 16, 8, 24
    ks, vs = pow2_scales(h)
    ka = np.zeros(h, np.float32)
    va = np.zeros(h, np.float32)
    f1 = [8, 1, 1, 8, 1]
    f2 = [1, 8, 8, 1, 1]
    want_k, want_v = np.zeros(h, np.float32), np.zeros(h, np.float32)
    for call, (fk, fv) in enumerate(((f1, f2), (f2, f1))):
        kn, kp, v, (kn32, kp32, v32) = make(rng, s, h, dn, dr, dv, in_dtype, fk, fv)
        if call == 1:  # an infinity in head 2 of k_nope, -inf in head 0 of v
            kn = kn.copy()
            kn[3, 2, 5] = to_input(np.array([np.inf], np.float32), in_dtype)[0]
            kn32 = widen(kn, in_dtype)
            v = v.copy()
            v[0, 0, 0] = to_input(np.array([-np.inf], np.float32), in_dtype)[0]
            v32 = widen(v, in_dtype)
        ko, vo = mlakv.pack_fp8(kn, kp, v, ks, vs, k_amax=ka, v_amax=va, **kw(in_dtype))
        for j in range(h):
            want_k[j] = accumulate(want_k[j], amax_loop(kn32[:, j], kp32))
            want_v[j] = accumulate(want_v[j], amax_loop(v32[:, j]))
            ek, ev = expected(kn32[:, j:j + 1], kp32, v32[:, j:j + 1], ks[j], vs[j], "e4m3fn")
            np.testing.assert_array_equal(ko[:, j:j + 1], ek)
            np.testing.assert_array_equal(vo[:, j:j + 1], ev)
        assert_f32_bits(ka, want_k, "k_amax after call %d" % (call + 1))
        assert_f32_bits(va, want_v, "v_amax after call %d" % (call + 1))
    assert np.isposinf(ka[2]) and np.isposinf(va[0])
    # the second call raised heads 1 and 2 of K, kept 0 and 3 from the first
    assert ka[0] > 4 * ka[4] and ka[3] > 4 * ka[4] and ka[1] > 4 * ka[4]


def test_amax_through_the_raw_api_equals_the_binding(rng):
    s, h = 4, 3
    kn, kp, v, (kn32, kp32, v32) = make(rng, s, h, 16, 8, 16, "fp16")
    ks, vs = pow2_scales(h)
    a = np.zeros(h, np.float32), np.zeros(h, np.float32)
    b = np.zeros(h, np.float32), np.zeros(h, np.float32)
    mlakv.pack_fp8(kn, kp, v, ks, vs, k_amax=a[0], v_amax=a[1])
    st = raw_pack(kn, kp, v, poisoned((s, h, 24)), poisoned((s, h, 16)), 2, "e4m3fn",
                  ks_ptr=ks.ctypes.data, vs_ptr=vs.ctypes.data, granularity=1,
                  k_amax=b[0].ctypes.data, v_amax=b[1].ctypes.data)
    assert st == 0, last_error()
    assert_f32_bits(a[0], b[0], "k_amax")
    assert_f32_bits(a[1], b[1], "v_amax")
    # only one of the two
    c = np.zeros(1, np.float32)
    mlakv.pack_fp8(kn, kp, v, 1.0, 1.0, v_amax=c)
    assert_f32_bits(c, [amax_loop(v32)], "v_amax alone")


def test_amax_bit_pattern_rule_all_nan_and_empty_calls(rng):
    """An all-NaN tensor contributes +0; the stored value is max(old, m) on int32 bit patterns
    (a negative old value is replaced, a NaN old value stays); an empty call writes nothing."""
    s, h = 3, 2
    kn = np.full((s, h, 16), np.nan, np.float32)
    kp = np.full((s, 8), np.nan, np.float32)
    v = np.full((s, h, 16), -2.5, np.float32)
    v[0, 0, 0] = np.nan
    ka = np.array([-1.0], np.float32)            # negative: any m >= +0 replaces it
    va = np.array([np.nan], np.float32)          # 0x7FC00000 > every |x| pattern: stays
    mlakv.pack_fp8(kn, kp, v, 1.0, 1.0, k_amax=ka, v_amax=va)
    assert_f32_bits(ka, [0.0], "k_amax (all NaN)")
    assert bits(ka[0]) == 0  # +0, not -0
    assert_f32_bits(va, [np.nan], "v_amax (old NaN)")
    va[0] = 3.0
    mlakv.pack_fp8(kn, kp, v, 1.0, 1.0, k_amax=ka, v_amax=va)
    assert_f32_bits(va, [3.0], "v_amax (old larger)")
    va[0] = 1.0
    mlakv.pack_fp8(kn, kp, v, 1.0, 1.0, v_amax=va)
    assert_f32_bits(va, [2.5], "v_amax (|-2.5|)")
    # s = 0: nothing read, nothing written
    ka = np.array([-7.0], np.float32)
    ko, vo = poisoned((0, h, 24)), poisoned((0, h, 16))
    mlakv.pack_fp8(kn[:0], kp[:0], v[:0], 1.0, 1.0, ko, vo, fp8_dtype="e4m3fn", k_amax=ka)
    assert_f32_bits(ka, [-7.0], "k_amax after an empty call")
    kah = np.full(h, -7.0, np.float32)
    ks, vs = pow2_scales(h)
    mlakv.pack_fp8(kn[:0], kp[:0], v[:0], ks, vs, ko, vo, fp8_dtype="e4m3fn", k_amax=kah)
    assert_f32_bits(kah, [-7.0] * h, "per-head k_amax after an empty call")


# ---- errors ---------------------------------------------------------------------------------------
def _err_setup(rng, s=4, h=3):
    kn, kp, v, _ = make(rng, s, h, 16, 8, 16, "fp32")
    return kn, kp, v, poisoned((s, h, 24)), poisoned((s, h, 16))


def test_raw_per_head_without_scale_pointers_is_null_pointer(rng):
    kn, kp, v, ko, vo = _err_setup(rng)
    ks, vs = pow2_scales(3)
    ka = np.full(3, -5.0, np.float32)
    for kptr, vptr in ((None, None), (ks.ctypes.data, None), (None, vs.ctypes.data)):
        st = raw_pack(kn, kp, v, ko, vo, 3, "e4m3fn", ks_ptr=kptr, vs_ptr=vptr, granularity=1,
                      k_amax=ka.ctypes.data)
        assert st == 1, (kptr, vptr)
        assert "per-head" in last_error() and "NULL" in last_error()
        assert (ko == POISON).all() and (vo == POISON).all()
        assert (ka == -5.0).all()


@pytest.mark.parametrize("granularity", [2, -1, 7, 0x7FFFFFFF])
def test_raw_bad_granularity_is_invalid_argument(granularity, rng):
    kn, kp, v, ko, vo = _err_setup(rng)
    ks, vs = pow2_scales(3)
    st = raw_pack(kn, kp, v, ko, vo, 3, "e4m3fn", ks_ptr=ks.ctypes.data, vs_ptr=vs.ctypes.data,
                  granularity=granularity)
    assert st == 11 and "scale_granularity" in last_error()
    assert (ko == POISON).all() and (vo == POISON).all()


def test_raw_reserved_must_be_zero(rng):
    kn, kp, v, ko, vo = _err_setup(rng)
    assert raw_pack(kn, kp, v, ko, vo, 3, "e4m3fn", reserved=1) == 11
    assert "reserved" in last_error()
    assert (ko == POISON).all() and (vo == POISON).all()


def test_amax_overlapping_an_input_is_overlap(rng):
    kn, kp, v, ko, vo = _err_setup(rng)
    base = kn.base if kn.base is not None else kn          # the [s, h, 32] array k_nope views
    before = base.copy()
    inside_k = kn[1, 2, 3:4]                                 # one float of k_nope
    inside_v = v[0, 0, :1]
    for kwargs in ({"k_amax": inside_k}, {"v_amax": inside_v}, {"k_amax": inside_v},
                   {"v_amax": kp[0, :1]}):
        with pytest.raises(mlakv.OverlapError) as ei:
            mlakv.pack_fp8(kn, kp, v, 1.0, 1.0, ko, vo, fp8_dtype="e4m3fn", **kwargs)
        assert ei.value.status == 8 and "amax" in ei.value.message
        assert ei.value.function == "mlakv_pack_fp8"
    # the raw API too
    st = raw_pack(kn, kp, v, ko, vo, 3, "e4m3fn", k_amax=inside_k.ctypes.data)
    assert st == 8 and "k_amax overlaps" in last_error()
    np.testing.assert_array_equal(base.view(np.uint32), before.view(np.uint32))
    assert (ko == POISON).all() and (vo == POISON).all()


def test_amax_overlapping_outputs_scales_or_each_other_is_overlap(rng):
    kn, kp, v, ko, vo = _err_setup(rng)
    ks, vs = pow2_scales(3)
    two = np.zeros(2, np.float32)
    with pytest.raises(mlakv.OverlapError):          # k_amax and v_amax share a float
        mlakv.pack_fp8(kn, kp, v, 1.0, 1.0, ko, vo, fp8_dtype="e4m3fn", k_amax=two[:1],
                       v_amax=two[:1])
    with pytest.raises(mlakv.OverlapError):          # amax inside k_out's bytes
        mlakv.pack_fp8(kn, kp, v, 1.0, 1.0, ko, vo, fp8_dtype="e4m3fn",
                       k_amax=ko.reshape(-1)[:4].view(np.float32))
    with pytest.raises(mlakv.OverlapError):          # amax on a per-head scale array
        mlakv.pack_fp8(kn, kp, v, ks, vs, ko, vo, fp8_dtype="e4m3fn", v_amax=ks)
    assert (ko == POISON).all() and (vo == POISON).all()
    assert (two == 0).all()
    np.testing.assert_array_equal(ks, pow2_scales(3)[0])


def test_binding_checks_scales_and_amax_before_calling(rng):
    kn, kp, v, ko, vo = _err_setup(rng)          # h = 3
    ks, vs = pow2_scales(3)

    def call(k_scale=1.0, v_scale=1.0, **kwargs):
        return mlakv.pack_fp8(kn, kp, v, k_scale, v_scale, ko, vo, fp8_dtype="e4m3fn", **kwargs)

    cases = [
        (mlakv.ShapeError, "per head", dict(k_scale=ks)),                      # V per tensor
        (mlakv.ShapeError, "per head", dict(v_scale=vs)),                      # K per tensor
        (mlakv.ShapeError, "[3]", dict(k_scale=np.ones(4, np.float32), v_scale=vs)),
        (mlakv.ShapeError, "[3]", dict(k_scale=np.ones((3, 1), np.float32), v_scale=vs)),
        (mlakv.DtypeError, "float32", dict(k_scale=ks.astype(np.float64), v_scale=vs)),
        (mlakv.StrideError, "contiguous", dict(k_scale=np.ones(6, np.float32)[::2], v_scale=vs)),
        (mlakv.ShapeError, "[1]", dict(k_amax=np.zeros(3, np.float32))),       # per tensor: [1]
        (mlakv.ShapeError, "[3]", dict(k_scale=ks, v_scale=vs, v_amax=np.zeros(1, np.float32))),
        (mlakv.ShapeError, "[3]", dict(k_scale=ks, v_scale=vs, k_amax=np.zeros(4, np.float32))),
        (mlakv.DtypeError, "float32", dict(k_amax=np.zeros(1, np.float64))),
        (mlakv.DtypeError, "float32", dict(v_amax=np.zeros(1, np.float16))),
        (mlakv.StrideError, "contiguous", dict(k_scale=ks, v_scale=vs,
                                               k_amax=np.zeros(6, np.float32)[::2])),
        (mlakv.InvalidArgumentError, "float32 tensor", dict(k_amax=[0.0])),
        (mlakv.InvalidArgumentError, "float32 tensor", dict(v_amax=0.0)),
    ]
    for cls, needle, kwargs in cases:
        with pytest.raises(cls) as ei:
            call(**kwargs)
        assert ei.value.function is None, kwargs       # refused before the C call
        assert needle in ei.value.message, (kwargs, ei.value.message)
    ro = np.zeros(1, np.float32)
    ro.setflags(write=False)
    with pytest.raises(mlakv.InvalidArgumentError, match="read-only"):
        call(k_amax=ro)
    assert (ko == POISON).all() and (vo == POISON).all()


def test_per_head_with_h_1_and_one_element_arrays_are_per_tensor(rng):
    """A one-element array is one multiplier for all heads; with h = 1 both readings agree."""
    kn, kp, v, (kn32, kp32, v32) = make(rng, 4, 1, 16, 8, 16, "fp32")
    a = mlakv.pack_fp8(kn, kp, v, np.array([2.0], np.float32), np.array([0.5], np.float32))
    b = mlakv.pack_fp8(kn, kp, v, 2.0, 0.5)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert "scales=per-tensor" in mlakv.plan(kn, kp, v, np.array([2.0], np.float32), 0.5)


# ---- torch CPU tensors through the drop-in ---------------------------------------------------------
try:
    import torch
    import mlakv.torch as mt
except ImportError:  # pragma: no cover - torch is optional: the numpy tests above still run
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")


def tt(a, in_dtype):
    if in_dtype == "bf16":
        return torch.from_numpy(np.ascontiguousarray(a).view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(np.ascontiguousarray(a))


def tmake(rng, s, h, dn, dr, dv, in_dtype, k_factor=None, v_factor=None):
    kn, kp, v, f32 = make(rng, s, h, dn, dr, dv, in_dtype, k_factor, v_factor)
    kv = tt(np.concatenate([kn, v], axis=-1), in_dtype)
    return kv[..., :dn], tt(kp, in_dtype), kv[..., dn:], f32


def ub(t):
    return t.contiguous().view(torch.uint8).numpy()


@needs_torch
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("in_dtype", INPUTS)
def test_torch_per_head_equals_each_head_separately(fmt, in_dtype, rng):
    s, h, dn, dr, dv = 7, 4, 32, 16, 32
    kn, kp, v, (kn32, kp32, v32) = tmake(rng, s, h, dn, dr, dv, in_dtype)
    ks, vs = (torch.from_numpy(x) for x in pow2_scales(h))
    dt = getattr(torch, "float8_" + fmt)
    ko, vo = mt.mla_kv_pack_quantize_fp8(kn, kp, v, ks, vs, fp8_dtype=dt)
    for j in range(h):
        ko_j, vo_j = mt.mla_kv_pack_quantize_fp8(kn[:, j:j + 1], kp, v[:, j:j + 1],
                                                 float(ks[j]), float(vs[j]), fp8_dtype=dt)
        np.testing.assert_array_equal(ub(ko[:, j:j + 1]), ub(ko_j), err_msg="k head %d" % j)
        np.testing.assert_array_equal(ub(vo[:, j:j + 1]), ub(vo_j), err_msg="v head %d" % j)
        ek, ev = expected(kn32[:, j:j + 1], kp32, v32[:, j:j + 1], ks[j].item(), vs[j].item(),
                          fmt)
        np.testing.assert_array_equal(ub(ko[:, j:j + 1]), ek)
        np.testing.assert_array_equal(ub(vo[:, j:j + 1]), ev)
    # the generic entry point agrees
    g = mlakv.pack_fp8(kn, kp, v, ks, vs, fp8_dtype=dt)
    assert torch.equal(g[0].view(torch.uint8), ko.view(torch.uint8))
    assert torch.equal(g[1].view(torch.uint8), vo.view(torch.uint8))
    assert "scales=per-head" in mt.plan(kn, kp, v, ks, vs, fp8_dtype=dt)


@needs_torch
@pytest.mark.parametrize("in_dtype", INPUTS)
def test_torch_amax_per_tensor_and_per_head_two_calls(in_dtype, rng):
    s, h, dn, dr, dv = 5, 4, 16, 8, 16
    ks, vs = (torch.from_numpy(x) for x in pow2_scales(h))
    k1, v1 = torch.zeros(1), torch.zeros(1)          # per tensor
    kh, vh = torch.zeros(h), torch.zeros(h)          # per head
    want = [np.float32(0)] * 2
    want_h = [np.zeros(h, np.float32), np.zeros(h, np.float32)]
    for call, f in enumerate(([4, 1, 1, 2], [1, 4, 2, 1])):
        kn, kp, v, (kn32, kp32, v32) = tmake(rng, s, h, dn, dr, dv, in_dtype, f, f[::-1])
        mt.mla_kv_pack_quantize_fp8(kn, kp, v, 2.0, 0.5, k_amax=k1, v_amax=v1)
        mt.mla_kv_pack_quantize_fp8(kn, kp, v, ks, vs, k_amax=kh, v_amax=vh)
        want[0] = accumulate(want[0], amax_loop(kn32, kp32))
        want[1] = accumulate(want[1], amax_loop(v32))
        for j in range(h):
            want_h[0][j] = accumulate(want_h[0][j], amax_loop(kn32[:, j], kp32))
            want_h[1][j] = accumulate(want_h[1][j], amax_loop(v32[:, j]))
        assert_f32_bits(k1.numpy(), [want[0]], "k_amax call %d" % call)
        assert_f32_bits(v1.numpy(), [want[1]], "v_amax call %d" % call)
        assert_f32_bits(kh.numpy(), want_h[0], "per-head k_amax call %d" % call)
        assert_f32_bits(vh.numpy(), want_h[1], "per-head v_amax call %d" % call)
    # the per-tensor amax is the max of the per-head ones
    assert k1.item() == kh.max().item() and v1.item() == vh.max().item()


@needs_torch
def test_torch_cached_struct_forgets_per_head_and_amax(rng):
    """The hot path reuses one struct per shape: a per-tensor call after a per-head / amax call
    must not keep the granularity or the amax pointers."""
    s, h = 4, 3
    kn, kp, v, (kn32, kp32, v32) = tmake(rng, s, h, 16, 8, 16, "bf16")
    ks, vs = (torch.from_numpy(x) for x in pow2_scales(h))
    ka = torch.zeros(h)
    ko = torch.empty(s, h, 24, dtype=torch.float8_e4m3fn)
    vo = torch.empty(s, h, 16, dtype=torch.float8_e4m3fn)
    mt.mla_kv_pack_quantize_fp8(kn, kp, v, ks, vs, ko, vo, k_amax=ka)
    first = ka.clone()
    assert (first > 0).all()
    ka.zero_()
    for scales in ((2.0, 0.5), (torch.tensor([2.0]), torch.tensor(0.5))):
        mt.mla_kv_pack_quantize_fp8(kn, kp, v, scales[0], scales[1], ko, vo)
        ek, ev = expected(kn32, kp32, v32, 2.0, 0.5, "e4m3fn")
        np.testing.assert_array_equal(ub(ko), ek)
        np.testing.assert_array_equal(ub(vo), ev)
        assert (ka == 0).all()  # no amax written by a call that did not ask for it
        assert "scales=per-tensor amax=none" in mt.plan(kn, kp, v, *scales, ko, vo)
    # and back: per-head with amax on the same cached struct
    mt.mla_kv_pack_quantize_fp8(kn, kp, v, ks, vs, ko, vo, k_amax=ka)
    assert torch.equal(ka, first)
    # the hot path's own per-head branch (no amax), alternating with per-tensor calls
    want_ph = [expected(kn32[:, j:j + 1], kp32, v32[:, j:j + 1], ks[j].item(), vs[j].item(),
                        "e4m3fn") for j in range(h)]
    want_pt = expected(kn32, kp32, v32, 2.0, 0.5, "e4m3fn")
    for scales in ((ks, vs), (2.0, 0.5), (ks, vs), (torch.tensor([2.0]), torch.tensor([0.5])),
                   (ks, vs), (2.0, 0.5)):
        mt.mla_kv_pack_quantize_fp8(kn, kp, v, scales[0], scales[1], ko, vo)
        if isinstance(scales[0], torch.Tensor) and scales[0].numel() == h:
            for j in range(h):
                np.testing.assert_array_equal(ub(ko[:, j:j + 1]), want_ph[j][0])
                np.testing.assert_array_equal(ub(vo[:, j:j + 1]), want_ph[j][1])
        else:
            np.testing.assert_array_equal(ub(ko), want_pt[0])
            np.testing.assert_array_equal(ub(vo), want_pt[1])
    assert torch.equal(ka, first)  # no call without amax wrote it
    assert len(mt._cache) == 1


@needs_torch
def test_torch_argument_checks(rng):
    s, h = 4, 3
    kn, kp, v, _ = tmake(rng, s, h, 16, 8, 16, "fp32")
    ko = torch.full((s, h, 24), POISON, dtype=torch.uint8).view(torch.float8_e4m3fn)
    vo = torch.full((s, h, 16), POISON, dtype=torch.uint8).view(torch.float8_e4m3fn)
    ks, vs = (torch.from_numpy(x) for x in pow2_scales(h))
    f = mt.mla_kv_pack_quantize_fp8
    cases = [
        (mlakv.ShapeError, "per head", lambda: f(kn, kp, v, ks, 0.5, ko, vo)),
        (mlakv.ShapeError, "per head", lambda: f(kn, kp, v, 2.0, vs, ko, vo)),
        (mlakv.ShapeError, "[3]", lambda: f(kn, kp, v, torch.ones(4), torch.ones(4), ko, vo)),
        (mlakv.ShapeError, "[3]", lambda: f(kn, kp, v, torch.ones(1, 3), vs, ko, vo)),
        (mlakv.DtypeError, "float32", lambda: f(kn, kp, v, ks.double(), vs, ko, vo)),
        (mlakv.DtypeError, "float32", lambda: f(kn, kp, v, ks.half(), vs.half(), ko, vo)),
        (mlakv.StrideError, "contiguous", lambda: f(kn, kp, v, torch.ones(6)[::2], vs, ko, vo)),
        (mlakv.ShapeError, "[1]", lambda: f(kn, kp, v, 1.0, 1.0, ko, vo, k_amax=torch.zeros(3))),
        (mlakv.ShapeError, "[3]", lambda: f(kn, kp, v, ks, vs, ko, vo, v_amax=torch.zeros(1))),
        (mlakv.ShapeError, "[3]", lambda: f(kn, kp, v, ks, vs, ko, vo, k_amax=torch.zeros(3, 1))),
        (mlakv.DtypeError, "float32", lambda: f(kn, kp, v, 1.0, 1.0, ko, vo,
                                                k_amax=torch.zeros(1, dtype=torch.float64))),
        (mlakv.DtypeError, "float32", lambda: f(kn, kp, v, ks, vs, ko, vo,
                                                v_amax=torch.zeros(3, dtype=torch.bfloat16))),
        (mlakv.StrideError, "contiguous", lambda: f(kn, kp, v, ks, vs, ko, vo,
                                                    k_amax=torch.zeros(6)[::2])),
        (mlakv.InvalidArgumentError, "float32 tensor", lambda: f(kn, kp, v, k_amax=[0.0])),
    ]
    for cls, needle, fn in cases:
        with pytest.raises(cls) as ei:
            fn()
        assert ei.value.function is None
        assert needle in ei.value.message, ei.value.message
    with pytest.raises(mlakv.OverlapError) as ei:   # the library: amax inside an input
        f(kn, kp, v, 1.0, 1.0, ko, vo, k_amax=kn.reshape(-1)[:1] if kn.is_contiguous()
          else kn[0, 0, :1])
    assert ei.value.status == 8 and ei.value.function == "mlakv_pack_fp8"
    with pytest.raises(mlakv.OverlapError):
        f(kn, kp, v, ks, vs, ko, vo, v_amax=ks)
    assert (ko.view(torch.uint8) == POISON).all() and (vo.view(torch.uint8) == POISON).all()
    if torch.cuda.is_available():  # device checks: CUDA scale / amax tensors with CPU inputs
        with pytest.raises(mlakv.MemorySpaceError, match="cpu"):
            f(kn, kp, v, ks.cuda(), vs.cuda(), ko, vo)
        with pytest.raises(mlakv.MemorySpaceError, match="cpu"):
            f(kn, kp, v, 1.0, 1.0, ko, vo, k_amax=torch.zeros(1, device="cuda"))
