"""mlakv.torch on CPU tensors (reference backend). Skipped when torch is not installed."""
from __future__ import annotations

import inspect

import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed")

import mlakv  # noqa: E402
import mlakv.torch as mt  # noqa: E402
from mlakv.torch import mla_kv_pack_quantize_fp8  # noqa: E402

from conftest import POISON, expected, np, random_bits, widen  # noqa: E402

FP8 = {"e4m3fn": torch.float8_e4m3fn, "e5m2": torch.float8_e5m2,
       "e4m3fnuz": torch.float8_e4m3fnuz, "e5m2fnuz": torch.float8_e5m2fnuz}
INPUT = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def to_torch(a, in_dtype):
    """numpy test data (bf16 as uint16 bits) -> a torch tensor of the input dtype, same bytes."""
    if in_dtype == "bf16":
        return torch.from_numpy(np.ascontiguousarray(a).view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(np.ascontiguousarray(a))


def ubytes(t):
    return t.contiguous().view(torch.uint8).numpy() if t.dtype != torch.uint8 else t.numpy()


def poison_like(shape, dtype):
    return torch.full(shape, POISON, dtype=torch.uint8).view(dtype)


def make(rng, s, h, dn, dr, dv, in_dtype, kp_rank=3):
    kvb = random_bits(rng, (s, h, dn + dv), in_dtype)
    kpb = random_bits(rng, (s, 1, dr) if kp_rank == 3 else (s, dr), in_dtype)
    kv = to_torch(kvb, in_dtype)
    kp = to_torch(kpb, in_dtype)
    f32 = (widen(kvb, in_dtype), widen(kpb, in_dtype))
    return kv[..., :dn], kp, kv[..., dn:], f32


def test_signature_matches_upstream():
    sig = inspect.signature(mla_kv_pack_quantize_fp8)
    params = list(sig.parameters.values())
    names = [p.name for p in params if p.kind == p.POSITIONAL_OR_KEYWORD]
    assert names == ["k_nope", "k_pe", "v", "k_scale_inv", "v_scale_inv", "k_out", "v_out",
                     "fp8_dtype", "enable_pdl"]
    d = {p.name: p.default for p in params}
    assert d["k_scale_inv"] == 1.0 and d["v_scale_inv"] == 1.0
    assert d["k_out"] is None and d["v_out"] is None and d["enable_pdl"] is None
    assert d["fp8_dtype"] is torch.float8_e4m3fn
    assert [p.name for p in params if p.kind == p.KEYWORD_ONLY] == ["backend", "trust_pointers",
                                                                    "k_amax", "v_amax"]
    assert d["k_amax"] is None and d["v_amax"] is None


@pytest.mark.parametrize("fmt", list(FP8))
@pytest.mark.parametrize("in_dtype", list(INPUT))
@pytest.mark.parametrize("kp_rank", [2, 3])
def test_allocated_outputs_match_oracle(fmt, in_dtype, kp_rank, rng):
    s, h, dn, dr, dv = 7, 3, 128, 64, 128
    kn, kp, v, (kv32, kp32) = make(rng, s, h, dn, dr, dv, in_dtype, kp_rank)
    ks, vs = float(np.float32(1 / 0.0375)), float(np.float32(1 / 0.021))
    ko, vo = mla_kv_pack_quantize_fp8(kn, kp, v, ks, vs, fp8_dtype=FP8[fmt])
    assert ko.dtype == FP8[fmt] and vo.dtype == FP8[fmt]
    assert ko.shape == (s, h, dn + dr) and vo.shape == (s, h, dv)
    assert ko.is_contiguous() and vo.is_contiguous()
    assert ko.device == kn.device and vo.device == v.device
    ek, ev = expected(kv32[..., :dn], kp32, kv32[..., dn:], ks, vs, fmt)
    np.testing.assert_array_equal(ubytes(ko), ek)
    np.testing.assert_array_equal(ubytes(vo), ev)


def test_given_outputs_are_returned_and_strided_ok(rng):
    s, h, dn, dr, dv = 5, 4, 32, 16, 32
    kn, kp, v, (kv32, kp32) = make(rng, s, h, dn, dr, dv, "bf16")
    kbuf = poison_like((s, h, 2 * (dn + dr)), torch.float8_e5m2)
    ko = kbuf[:, :, 3:3 + dn + dr]           # a strided output
    vo = poison_like((s, h, dv), torch.float8_e5m2)
    r = mla_kv_pack_quantize_fp8(kn, kp, v, 2.0, 0.5, ko, vo, torch.float8_e5m2, False)
    assert r[0] is ko and r[1] is vo
    ek, ev = expected(kv32[..., :dn], kp32, kv32[..., dn:], 2.0, 0.5, "e5m2")
    np.testing.assert_array_equal(ubytes(ko), ek)
    np.testing.assert_array_equal(ubytes(vo), ev)
    kb = kbuf.view(torch.uint8)
    assert (kb[:, :, :3] == POISON).all() and (kb[:, :, 3 + dn + dr:] == POISON).all()


def test_uint8_outputs_take_fp8_dtype(rng):
    kn, kp, v, (kv32, kp32) = make(rng, 3, 2, 16, 8, 16, "fp16")
    ko = torch.full((3, 2, 24), POISON, dtype=torch.uint8)
    vo = torch.full((3, 2, 16), POISON, dtype=torch.uint8)
    mla_kv_pack_quantize_fp8(kn, kp, v, 1.0, 1.0, ko, vo, fp8_dtype=torch.float8_e4m3fnuz)
    ek, ev = expected(kv32[..., :16], kp32, kv32[..., 16:], 1.0, 1.0, "e4m3fnuz")
    np.testing.assert_array_equal(ko.numpy(), ek)
    np.testing.assert_array_equal(vo.numpy(), ev)


def test_scales_numbers_and_tensors(rng):
    kn, kp, v, (kv32, kp32) = make(rng, 4, 2, 16, 8, 16, "bf16")
    want = expected(kv32[..., :16], kp32, kv32[..., 16:], 3.0, 0.25, "e4m3fn")
    forms = [(3.0, 0.25), (3, 0.25), (torch.tensor([3.0]), torch.tensor(0.25)),
             (np.float32(3.0), torch.tensor([[0.25]])), (torch.tensor(3.0), 0.25)]
    for ks, vs in forms:
        ko, vo = mla_kv_pack_quantize_fp8(kn, kp, v, ks, vs)
        np.testing.assert_array_equal(ubytes(ko), want[0], err_msg=repr((ks, vs)))
        np.testing.assert_array_equal(ubytes(vo), want[1], err_msg=repr((ks, vs)))
    # a CPU scale tensor is read when the reference backend runs (by pointer)
    kst = torch.tensor([1.0])
    ko1, _ = mla_kv_pack_quantize_fp8(kn, kp, v, kst, 0.25)
    kst.fill_(3.0)
    ko3, _ = mla_kv_pack_quantize_fp8(kn, kp, v, kst, 0.25)
    np.testing.assert_array_equal(ubytes(ko3), want[0])
    assert not np.array_equal(ubytes(ko1), ubytes(ko3))
    with pytest.raises(mlakv.DtypeError, match="float32"):
        mla_kv_pack_quantize_fp8(kn, kp, v, torch.tensor([3.0], dtype=torch.float64))
    with pytest.raises(mlakv.ShapeError, match="one-element"):  # h = 2: neither 1 nor h elements
        mla_kv_pack_quantize_fp8(kn, kp, v, torch.ones(3), torch.ones(3))
    with pytest.raises(mlakv.ShapeError, match="per head"):  # [h]: per head, but only for V
        mla_kv_pack_quantize_fp8(kn, kp, v, 1.0, torch.ones(2))
    # beyond the fp32 range: +-inf, as C converts
    a = mla_kv_pack_quantize_fp8(kn, kp, v, 1e300, -1e300)
    b = mla_kv_pack_quantize_fp8(kn, kp, v, float("inf"), float("-inf"))
    assert torch.equal(a[0].view(torch.uint8), b[0].view(torch.uint8))
    assert torch.equal(a[1].view(torch.uint8), b[1].view(torch.uint8))


def test_enable_pdl_values_on_cpu(rng):
    kn, kp, v, _ = make(rng, 2, 2, 16, 8, 16, "fp32")
    outs = [mla_kv_pack_quantize_fp8(kn, kp, v, enable_pdl=p) for p in (None, True, False)]
    for o in outs[1:]:
        assert torch.equal(o[0].view(torch.uint8), outs[0][0].view(torch.uint8))
    for p in (None, True, False):
        assert "pdl=off" in mt.plan(kn, kp, v, enable_pdl=p)  # no PDL on the host


def _errs(rng):
    kn, kp, v, _ = make(rng, 4, 3, 16, 8, 16, "bf16")
    ko = poison_like((4, 3, 24), torch.float8_e4m3fn)
    vo = poison_like((4, 3, 16), torch.float8_e4m3fn)
    return kn, kp, v, ko, vo


def _untouched(*ts):
    for t in ts:
        assert (t.view(torch.uint8) == POISON).all()


def test_shape_error_leaves_outputs_untouched(rng):
    kn, kp, v, ko, vo = _errs(rng)
    with pytest.raises(mlakv.ShapeError) as ei:
        mla_kv_pack_quantize_fp8(kn, kp, v[:3], 1.0, 1.0, ko, vo)
    e = ei.value
    assert e.status == 5 and e.name == "MLAKV_ERR_SHAPE" and "token" in e.message
    assert isinstance(e, ValueError)
    _untouched(ko, vo)
    with pytest.raises(mlakv.ShapeError):  # k_pe [s, 2, dr]
        mla_kv_pack_quantize_fp8(kn, torch.cat([kp, kp], 1), v, 1.0, 1.0, ko, vo)
    _untouched(ko, vo)


def test_overlap_error_leaves_outputs_untouched(rng):
    kn, kp, v, _, _ = _errs(rng)
    buf = torch.full((4 * 3 * 24 + 16,), POISON, dtype=torch.uint8)
    ko = buf[:4 * 3 * 24].view(4, 3, 24)
    vo = buf[16:16 + 4 * 3 * 16].view(4, 3, 16)
    with pytest.raises(mlakv.OverlapError) as ei:
        mla_kv_pack_quantize_fp8(kn, kp, v, 1.0, 1.0, ko, vo)
    assert ei.value.status == 8 and ei.value.message
    assert (buf == POISON).all()


def test_argument_errors(rng):
    kn, kp, v, ko, vo = _errs(rng)
    with pytest.raises(mlakv.DtypeError, match="bf16/fp16/fp32"):
        mla_kv_pack_quantize_fp8(kn.to(torch.float64), kp, v, 1.0, 1.0, ko, vo)
    with pytest.raises(mlakv.DtypeError, match="share dtype"):
        mla_kv_pack_quantize_fp8(kn, kp.to(torch.float16), v, 1.0, 1.0, ko, vo)
    with pytest.raises(mlakv.DtypeError, match="fp8_dtype is"):
        mla_kv_pack_quantize_fp8(kn, kp, v, 1.0, 1.0, ko, vo, fp8_dtype=torch.float8_e5m2)
    with pytest.raises(mlakv.DtypeError, match="FP8"):
        mla_kv_pack_quantize_fp8(kn, kp, v, 1.0, 1.0, ko.view(torch.int8), vo)
    with pytest.raises(mlakv.DtypeError):
        mla_kv_pack_quantize_fp8(kn, kp, v, fp8_dtype=torch.bfloat16)
    with pytest.raises(mlakv.RankError):
        mla_kv_pack_quantize_fp8(kn[:, 0], kp, v)
    with pytest.raises(mlakv.RankError):
        mla_kv_pack_quantize_fp8(kn, kp[:, 0, 0], v)
    with pytest.raises(mlakv.RankError) as ei:  # given outputs: the library's own rank check
        mla_kv_pack_quantize_fp8(kn[:, 0], kp, v, 1.0, 1.0, ko, vo)
    assert ei.value.status == 4
    with pytest.raises(mlakv.StrideError):
        mla_kv_pack_quantize_fp8(kn, kp, v, 1.0, 1.0, ko, vo.transpose(1, 2).contiguous()
                                 .transpose(1, 2)[:, :, :16])
    with pytest.raises(mlakv.InvalidArgumentError, match="torch tensors"):
        mla_kv_pack_quantize_fp8([1], kp, v, 1.0, 1.0, ko, vo)
    with pytest.raises(mlakv.InvalidArgumentError, match="torch tensors"):
        mla_kv_pack_quantize_fp8(kn, kp, v, 1.0, 1.0, np.zeros((4, 3, 24), np.uint8), vo)
    _untouched(ko, vo)


def test_backend_keyword(rng):
    kn, kp, v, _ = make(rng, 3, 2, 16, 8, 16, "fp32")
    a = mla_kv_pack_quantize_fp8(kn, kp, v, backend="reference")
    b = mla_kv_pack_quantize_fp8(kn, kp, v, backend=mlakv.BACKEND_AUTO, trust_pointers=True)
    assert torch.equal(a[0].view(torch.uint8), b[0].view(torch.uint8))
    with pytest.raises(mlakv.NoSuchBackendError):
        mla_kv_pack_quantize_fp8(kn, kp, v, backend=42)
    cuda = next(x for x in mlakv.backends() if x.name == "cuda")
    with pytest.raises(mlakv.BackendUnavailableError if not cuda.usable else mlakv.MemorySpaceError):
        mla_kv_pack_quantize_fp8(kn, kp, v, backend="cuda")


def test_cache_same_shapes_new_pointers_and_new_shapes(rng):
    mt.clear_cache()
    for it in range(3):
        kn, kp, v, (kv32, kp32) = make(rng, 6, 2, 16, 8, 16, "bf16")
        ko, vo = mla_kv_pack_quantize_fp8(kn, kp, v, 1.5 + it, 0.5)
        ek, ev = expected(kv32[..., :16], kp32, kv32[..., 16:], 1.5 + it, 0.5, "e4m3fn")
        np.testing.assert_array_equal(ubytes(ko), ek)
        np.testing.assert_array_equal(ubytes(vo), ev)
    assert len(mt._cache) == 1
    seen = 1
    for (s, h, dn, dr, dv) in ((6, 3, 16, 8, 16), (1, 2, 16, 8, 16), (6, 2, 24, 8, 16),
                               (6, 2, 16, 16, 16), (6, 2, 16, 8, 8)):
        kn, kp, v, (kv32, kp32) = make(rng, s, h, dn, dr, dv, "fp16")
        ko, vo = mla_kv_pack_quantize_fp8(kn, kp, v, 2.0, 0.5)
        ek, ev = expected(kv32[..., :dn], kp32, kv32[..., dn:], 2.0, 0.5, "e4m3fn")
        np.testing.assert_array_equal(ubytes(ko), ek)
        np.testing.assert_array_equal(ubytes(vo), ev)
        seen += 1
        assert len(mt._cache) == seen
    # same shapes, a non-contiguous output: a new entry with its strides
    kn, kp, v, (kv32, kp32) = make(rng, 6, 2, 16, 8, 16, "fp16")
    kbuf = poison_like((6, 2, 48), torch.float8_e4m3fn)
    ko = kbuf[:, :, :24]
    mla_kv_pack_quantize_fp8(kn, kp, v, 2.0, 0.5, ko)
    np.testing.assert_array_equal(ubytes(ko), expected(kv32[..., :16], kp32, kv32[..., 16:], 2.0,
                                                       0.5, "e4m3fn")[0])
    assert (kbuf.view(torch.uint8)[:, :, 24:] == POISON).all()
    # k_pe contiguous but with an odd stride on its size-1 dim: same key, right result
    kp_odd = torch.as_strided(kp.clone(), (6, 1, 8), (8, 1000, 1))
    assert kp_odd.is_contiguous()
    ko2, _ = mla_kv_pack_quantize_fp8(kn, kp_odd, v, 2.0, 0.5)
    np.testing.assert_array_equal(ubytes(ko2), ubytes(ko))
    mlakv.clear_cache()
    assert len(mt._cache) == 0


def test_alternating_shapes_and_threads(rng):
    """The per-thread last-call shortcut and the cache: A, B, A, B ... all right."""
    import threading
    cases = [make(rng, 3, 2, 16, 8, 16, "bf16"), make(rng, 5, 4, 24, 8, 8, "fp16"),
             make(rng, 3, 2, 16, 8, 16, "bf16")]
    wants = [expected(c[3][0][..., :c[0].shape[2]], c[3][1], c[3][0][..., c[0].shape[2]:],
                      2.0, 0.5, "e4m3fn") for c in cases]
    for _ in range(3):
        for (kn, kp, v, _), (ek, ev) in zip(cases, wants):
            ko, vo = mla_kv_pack_quantize_fp8(kn, kp, v, 2.0, 0.5)
            np.testing.assert_array_equal(ubytes(ko), ek)
            np.testing.assert_array_equal(ubytes(vo), ev)
    errors = []

    def work(i):
        kn, kp, v, _ = cases[i % 3]
        for _ in range(30):
            ko, vo = mla_kv_pack_quantize_fp8(kn, kp, v, 2.0, 0.5)
            if not np.array_equal(ubytes(ko), wants[i % 3][0]):
                errors.append(i)
                return

    ts = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors


def test_enable_pdl_follows_upstream_truthiness():
    assert mt._pdl(None) == mlakv.PDL_AUTO
    assert mt._pdl(True) == mt._pdl(1) == mlakv.PDL_ON
    assert mt._pdl(False) == mt._pdl(0) == mlakv.PDL_OFF


def test_generic_pack_fp8_and_plan_with_torch(rng):
    kn, kp, v, (kv32, kp32) = make(rng, 5, 2, 16, 8, 16, "bf16")
    a = mla_kv_pack_quantize_fp8(kn, kp, v, 2.0, 0.5, fp8_dtype=torch.float8_e5m2fnuz)
    b = mlakv.pack_fp8(kn, kp, v, 2.0, 0.5, fp8_dtype=torch.float8_e5m2fnuz)
    assert b[0].dtype == torch.float8_e5m2fnuz
    assert torch.equal(a[0].view(torch.uint8), b[0].view(torch.uint8))
    assert torch.equal(a[1].view(torch.uint8), b[1].view(torch.uint8))
    c = mt.pack_fp8(kn, kp, v, 2.0, 0.5, fp8_dtype="e5m2fnuz")
    assert torch.equal(a[0].view(torch.uint8), c[0].view(torch.uint8))
    p = mt.plan(kn, kp, v, fp8_dtype=torch.float8_e5m2fnuz)
    assert p.startswith("backend=reference") and "bf16->e5m2fnuz" in p
    assert "bf16->e4m3fn" in mlakv.plan(kn, kp, v)


def test_torch_tensors_through_dlpack(rng):
    """torch's own __dlpack__ (kDLBfloat inputs, and FP8 outputs where torch exports them)."""

    class Only:
        def __init__(self, t):
            self.t = t

        def __dlpack__(self, **kw):
            return self.t.__dlpack__(**kw)

        def __dlpack_device__(self):
            return self.t.__dlpack_device__()

    kn, kp, v, (kv32, kp32) = make(rng, 3, 2, 16, 8, 16, "bf16")
    ko = torch.full((3, 2, 24), POISON, dtype=torch.uint8)
    vo = torch.full((3, 2, 16), POISON, dtype=torch.uint8)
    mlakv.pack_fp8(Only(kn), Only(kp), Only(v), 2.0, 1.0, Only(ko), Only(vo), fp8_dtype="e5m2")
    ek, ev = expected(kv32[..., :16], kp32, kv32[..., 16:], 2.0, 1.0, "e5m2")
    np.testing.assert_array_equal(ko.numpy(), ek)
    np.testing.assert_array_equal(vo.numpy(), ev)
    k8 = poison_like((3, 2, 24), torch.float8_e4m3fn)
    try:
        k8.__dlpack__()
    except Exception as e:  # noqa: BLE001
        pytest.skip("this torch does not export float8 through DLPack: %s" % e)
    v8 = poison_like((3, 2, 16), torch.float8_e4m3fn)
    mlakv.pack_fp8(Only(kn), Only(kp), Only(v), 2.0, 1.0, Only(k8), Only(v8))
    np.testing.assert_array_equal(ubytes(k8), expected(kv32[..., :16], kp32, kv32[..., 16:], 2.0,
                                                       1.0, "e4m3fn")[0])
