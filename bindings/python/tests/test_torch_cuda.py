"""mlakv.torch on CUDA tensors: bytes equal to the reference backend's on CPU copies, the
current stream, CUDA graph capture and replay (new inputs and new device-scale values seen at
replay), every FP8 dtype, enable_pdl, errors, per-head scales and amax outputs (bytes and amax
values equal to the reference backend's, in graphs too).  Skipped without torch, without a CUDA
device, or when the loaded library has no usable CUDA backend."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed")

import mlakv  # noqa: E402
import mlakv.torch as mt  # noqa: E402
from mlakv.torch import mla_kv_pack_quantize_fp8  # noqa: E402

from conftest import POISON, np, random_bits  # noqa: E402


def _cuda_reason():
    if not torch.cuda.is_available():
        return "no CUDA device visible to torch"
    if getattr(torch.version, "hip", None):
        return "a ROCm build of torch (these tests target the CUDA backend)"
    info = next(b for b in mlakv.backends() if b.name == "cuda")
    if not info.compiled:
        return "the loaded libmlakv (%s) was built without the CUDA backend" % mlakv.library_path()
    if not info.usable:
        return "mlakv's CUDA backend cannot run here: %s" % info.detail
    return None


_REASON = _cuda_reason()
pytestmark = pytest.mark.skipif(_REASON is not None, reason=_REASON or "")

FP8 = {"e4m3fn": torch.float8_e4m3fn, "e5m2": torch.float8_e5m2,
       "e4m3fnuz": torch.float8_e4m3fnuz, "e5m2fnuz": torch.float8_e5m2fnuz}
INPUT = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
DEV = "cuda"


def host(a, in_dtype):
    """numpy test data (bf16 as uint16 bits) -> a CPU torch tensor of the input dtype."""
    if in_dtype == "bf16":
        return torch.from_numpy(np.ascontiguousarray(a).view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(np.ascontiguousarray(a))


def make(rng, s, h, dn, dr, dv, in_dtype, kp_rank=3, device=DEV):
    """k_nope and v: the two halves of one [s, h, dn + dv] tensor; k_pe [s, 1, dr] or [s, dr]."""
    kv = host(random_bits(rng, (s, h, dn + dv), in_dtype), in_dtype).to(device)
    kp = host(random_bits(rng, (s, 1, dr) if kp_rank == 3 else (s, dr), in_dtype),
              in_dtype).to(device)
    return kv, kv[..., :dn], kp, kv[..., dn:]


def reference(kn, kp, v, ks, vs, fp8):
    """The reference backend's bytes for the same call, on CPU copies (through the generic
    entry point, whose struct cache is not mlakv.torch's)."""
    ko, vo = mlakv.pack_fp8(kn.cpu(), kp.cpu(), v.cpu(), float(ks), float(vs), fp8_dtype=fp8,
                            backend="reference")
    return ko.view(torch.uint8), vo.view(torch.uint8)


def poison(shape, dtype, device=DEV):
    return torch.full(shape, POISON, dtype=torch.uint8, device=device).view(dtype)


def assert_bytes(out, want):
    got = out.view(torch.uint8).cpu()
    assert got.shape == want.shape
    bad = (got != want).nonzero()
    assert bad.numel() == 0, "%d bytes differ, first at %s: got 0x%02x want 0x%02x" % (
        bad.shape[0], tuple(bad[0].tolist()), int(got[tuple(bad[0])]), int(want[tuple(bad[0])]))


SHAPES = [  # s, h, d_nope, d_rope, d_v
    (1, 16, 128, 64, 128),
    (3, 5, 128, 64, 128),
    (64, 128, 128, 64, 128),
    (4096, 16, 128, 64, 128),
    (7, 3, 24, 8, 16),
    (5, 3, 9, 3, 5),
]


@pytest.mark.parametrize("fmt", list(FP8))
@pytest.mark.parametrize("in_dtype", list(INPUT))
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_cuda_bytes_equal_reference(shape, in_dtype, fmt, rng):
    s, h, dn, dr, dv = shape
    kv, kn, kp, v = make(rng, s, h, dn, dr, dv, in_dtype, kp_rank=2 + (s % 2))
    ks, vs = float(np.float32(1 / 0.0375)), float(np.float32(1 / 0.021))
    ko, vo = poison((s, h, dn + dr), FP8[fmt]), poison((s, h, dv), FP8[fmt])
    r = mla_kv_pack_quantize_fp8(kn, kp, v, ks, vs, ko, vo, fp8_dtype=FP8[fmt])
    assert r[0] is ko and r[1] is vo
    torch.cuda.synchronize()
    wk, wv = reference(kn, kp, v, ks, vs, FP8[fmt])
    assert_bytes(ko, wk)
    assert_bytes(vo, wv)


def test_cuda_allocated_outputs_like_upstream(rng):
    kv, kn, kp, v = make(rng, 9, 16, 128, 64, 128, "bf16")
    ko, vo = mla_kv_pack_quantize_fp8(kn, kp, v, 2.0, 0.5)
    assert ko.device == kn.device and vo.device == v.device
    assert ko.dtype == torch.float8_e4m3fn and ko.shape == (9, 16, 192) and ko.is_contiguous()
    assert vo.dtype == torch.float8_e4m3fn and vo.shape == (9, 16, 128) and vo.is_contiguous()
    torch.cuda.synchronize()
    wk, wv = reference(kn, kp, v, 2.0, 0.5, torch.float8_e4m3fn)
    assert_bytes(ko, wk)
    assert_bytes(vo, wv)
    assert mt.plan(kn, kp, v).startswith("backend=cuda")


def test_cuda_device_scales_equal_host_scales(rng):
    kv, kn, kp, v = make(rng, 33, 16, 128, 64, 128, "bf16")
    ks, vs = float(np.float32(1 / 0.0375)), float(np.float32(1 / 0.021))
    a = mla_kv_pack_quantize_fp8(kn, kp, v, ks, vs)
    kst = torch.tensor([ks], dtype=torch.float32, device=DEV)
    vst = torch.tensor(vs, dtype=torch.float32, device=DEV)  # 0-d works too
    b = mla_kv_pack_quantize_fp8(kn, kp, v, kst, vst)
    c = mla_kv_pack_quantize_fp8(kn, kp, v, kst.cpu(), vst.cpu())  # CPU tensors: read now
    torch.cuda.synchronize()
    for x in (b, c):
        assert torch.equal(a[0].view(torch.uint8), x[0].view(torch.uint8))
        assert torch.equal(a[1].view(torch.uint8), x[1].view(torch.uint8))
    # device scales are read when the kernel runs
    kst.fill_(2.0)
    d = mla_kv_pack_quantize_fp8(kn, kp, v, kst, vst)
    torch.cuda.synchronize()
    assert_bytes(d[0], reference(kn, kp, v, 2.0, vs, torch.float8_e4m3fn)[0])
    with pytest.raises(mlakv.DtypeError):
        mla_kv_pack_quantize_fp8(kn, kp, v, kst.to(torch.float64))


def test_cuda_current_stream_is_used_at_call_time(rng):
    """The call is ordered after earlier work on the stream that is current *at call time*: a
    launch on any other stream would run during the sleep, before the copy of the new inputs."""
    if not hasattr(torch.cuda, "_sleep"):
        pytest.skip("torch.cuda._sleep is not available")
    kv, kn, kp, v = make(rng, 256, 16, 128, 64, 128, "bf16")
    ko, vo = poison((256, 16, 192), torch.float8_e4m3fn), poison((256, 16, 128), torch.float8_e4m3fn)
    mla_kv_pack_quantize_fp8(kn, kp, v, 2.0, 0.5, ko, vo)  # first call, on the default stream
    new_kv = make(np.random.default_rng(99), 256, 16, 128, 64, 128, "bf16")[0]
    want = reference(new_kv[..., :128], kp, new_kv[..., 128:], 2.0, 0.5, torch.float8_e4m3fn)
    torch.cuda.synchronize()
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        torch.cuda._sleep(100_000_000)           # ~50 ms of GPU time on this stream
        kv.copy_(new_kv)                         # new inputs, after the sleep
        ko.view(torch.uint8).fill_(POISON)
        vo.view(torch.uint8).fill_(POISON)
        mla_kv_pack_quantize_fp8(kn, kp, v, 2.0, 0.5, ko, vo)
    torch.cuda.synchronize()
    assert_bytes(ko, want[0])
    assert_bytes(vo, want[1])


@pytest.mark.parametrize("alloc", [False, True], ids=["outputs-given", "outputs-allocated"])
def test_cuda_graph_capture_and_replay(alloc, rng):
    s, h = 64, 16
    kv, kn, kp, v = make(rng, s, h, 128, 64, 128, "bf16")
    kst = torch.tensor([1.0 / 0.0375], dtype=torch.float32, device=DEV)
    vst = torch.tensor([1.0 / 0.021], dtype=torch.float32, device=DEV)
    ko, vo = poison((s, h, 192), torch.float8_e4m3fn), poison((s, h, 128), torch.float8_e4m3fn)

    def step():
        if alloc:
            return mla_kv_pack_quantize_fp8(kn, kp, v, kst, vst)
        return mla_kv_pack_quantize_fp8(kn, kp, v, kst, vst, ko, vo)

    # warm up on a side stream (as torch recommends before capture)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        step()
    torch.cuda.current_stream().wait_stream(side)
    ko.view(torch.uint8).fill_(POISON)
    vo.view(torch.uint8).fill_(POISON)
    torch.cuda.synchronize()

    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        outs = step()
    torch.cuda.synchronize()
    if not alloc:
        assert (ko.view(torch.uint8) == POISON).all(), "the captured call ran at capture time"
    gk, gv = outs
    for seed, ksv, vsv in ((1, 2.0, 0.5), (2, 3.0, 0.25)):
        new_kv, _, new_kp, _ = make(np.random.default_rng(seed), s, h, 128, 64, 128, "bf16")
        kv.copy_(new_kv)
        kp.copy_(new_kp)
        kst.fill_(ksv)
        vst.fill_(vsv)
        g.replay()
        torch.cuda.synchronize()
        want = reference(kn, kp, v, ksv, vsv, torch.float8_e4m3fn)
        assert_bytes(gk, want[0])
        assert_bytes(gv, want[1])
    del g


@pytest.mark.parametrize("fmt", ["e4m3fnuz", "e5m2fnuz"])
def test_cuda_fnuz_allocated(fmt, rng):
    kv, kn, kp, v = make(rng, 100, 16, 128, 64, 128, "fp16")
    ko, vo = mla_kv_pack_quantize_fp8(kn, kp, v, 1.0, 8.0, fp8_dtype=FP8[fmt])
    assert ko.dtype == FP8[fmt] and vo.dtype == FP8[fmt]
    torch.cuda.synchronize()
    wk, wv = reference(kn, kp, v, 1.0, 8.0, FP8[fmt])
    assert_bytes(ko, wk)
    assert_bytes(vo, wv)


def test_cuda_enable_pdl(rng):
    kv, kn, kp, v = make(rng, 8, 16, 128, 64, 128, "bf16")
    outs = {p: mla_kv_pack_quantize_fp8(kn, kp, v, 2.0, 0.5, enable_pdl=p)
            for p in (None, True, False)}
    torch.cuda.synchronize()
    for p in (True, False):
        assert torch.equal(outs[p][0].view(torch.uint8), outs[None][0].view(torch.uint8))
        assert torch.equal(outs[p][1].view(torch.uint8), outs[None][1].view(torch.uint8))
    plans = {p: mt.plan(kn, kp, v, enable_pdl=p) for p in (None, True, False)}
    assert "pdl=off" in plans[False]
    assert plans[None] == plans[True]  # AUTO and ON: on wherever the device supports it


def test_cuda_cache_new_pointers_each_call(rng):
    """Per-layer buffers: one shape, new tensors every call."""
    mt.clear_cache()
    for i in range(4):
        kv, kn, kp, v = make(rng, 17, 16, 128, 64, 128, "bf16")
        ko, vo = mla_kv_pack_quantize_fp8(kn, kp, v, 1.0 + i, 0.5, trust_pointers=(i == 3))
        torch.cuda.synchronize()
        wk, wv = reference(kn, kp, v, 1.0 + i, 0.5, torch.float8_e4m3fn)
        assert_bytes(ko, wk)
        assert_bytes(vo, wv)
    assert len(mt._cache) == 2  # one struct, plus one with the trust flag


def test_cuda_errors_leave_outputs_untouched(rng):
    kv, kn, kp, v = make(rng, 8, 4, 128, 64, 128, "bf16")
    ko, vo = poison((8, 4, 192), torch.float8_e4m3fn), poison((8, 4, 128), torch.float8_e4m3fn)
    with pytest.raises(mlakv.ShapeError) as ei:
        mla_kv_pack_quantize_fp8(kn, kp, v[:7], 1.0, 1.0, ko, vo)
    assert ei.value.status == 5 and ei.value.message
    buf = poison((8 * 4 * 192 + 64,), torch.uint8)
    k_alias = buf[:8 * 4 * 192].view(8, 4, 192)
    v_alias = buf[64:64 + 8 * 4 * 128].view(8, 4, 128)
    with pytest.raises(mlakv.OverlapError) as ei:
        mla_kv_pack_quantize_fp8(kn, kp, v, 1.0, 1.0, k_alias, v_alias)
    assert ei.value.status == 8
    vo_host = poison((8, 4, 128), torch.float8_e4m3fn, device="cpu")
    with pytest.raises(mlakv.MemorySpaceError) as ei:
        mla_kv_pack_quantize_fp8(kn, kp, v, 1.0, 1.0, ko, vo_host)
    assert ei.value.status == 18
    with pytest.raises(mlakv.MemorySpaceError):
        mla_kv_pack_quantize_fp8(kn, kp, v, 1.0, 1.0, ko, vo, backend="reference")
    torch.cuda.synchronize()
    for t in (ko, vo, buf, vo_host):
        assert (t.view(torch.uint8) == POISON).all()


def test_cuda_generic_entry_point(rng):
    kv, kn, kp, v = make(rng, 12, 16, 128, 64, 128, "bf16")
    a = mlakv.pack_fp8(kn, kp, v, 2.0, 0.5, fp8_dtype="e5m2")
    assert a[0].dtype == torch.float8_e5m2 and a[0].device == kn.device
    torch.cuda.synchronize()
    wk, wv = reference(kn, kp, v, 2.0, 0.5, torch.float8_e5m2)
    assert_bytes(a[0], wk)
    assert_bytes(a[1], wv)
    assert mlakv.plan(kn, kp, v).startswith("backend=cuda")


@pytest.mark.skipif(_REASON is None and torch.cuda.device_count() < 2, reason="one GPU")
def test_cuda_second_device(rng):
    dev = torch.device("cuda", 1)
    kv, kn, kp, v = make(rng, 40, 16, 128, 64, 128, "bf16", device=dev)
    with torch.cuda.device(0):
        ko, vo = mla_kv_pack_quantize_fp8(kn, kp, v, 2.0, 0.5)
    assert ko.device == dev
    torch.cuda.synchronize(dev)
    wk, wv = reference(kn, kp, v, 2.0, 0.5, torch.float8_e4m3fn)
    assert_bytes(ko, wk)
    assert_bytes(vo, wv)


# ---- per-head scales and amax outputs (libmlakv 0.2) ------------------------------------------------
def reference_full(kn, kp, v, ks, vs, fp8, k_amax=None, v_amax=None):
    """The reference backend's bytes (and amax values) for the same call on CPU copies: scales
    and amax tensors are copied to the host too (amax: accumulated into copies of their current
    values, which are returned)."""
    host = [None if x is None else (x.cpu() if isinstance(x, torch.Tensor) else x)
            for x in (ks, vs, k_amax, v_amax)]
    ko, vo = mlakv.pack_fp8(kn.cpu(), kp.cpu(), v.cpu(), host[0], host[1], fp8_dtype=fp8,
                            backend="reference", k_amax=host[2], v_amax=host[3])
    return ko.view(torch.uint8), vo.view(torch.uint8), host[2], host[3]


def assert_f32_equal(got, want, what):
    g = got.cpu().view(torch.int32)
    w = want.cpu().view(torch.int32)
    assert torch.equal(g, w), "%s: got %s want %s" % (what, got.cpu().tolist(), want.tolist())


def pow2_scales(h, device=DEV):
    ks = torch.tensor([2.0 ** (j % 7 - 3) for j in range(h)], dtype=torch.float32, device=device)
    vs = torch.tensor([2.0 ** (3 - j % 7) for j in range(h)], dtype=torch.float32, device=device)
    return ks, vs


@pytest.mark.parametrize("fmt", list(FP8))
@pytest.mark.parametrize("in_dtype", list(INPUT))
@pytest.mark.parametrize("shape", [(1, 16, 128, 64, 128), (64, 128, 128, 64, 128),
                                   (7, 3, 24, 8, 16)], ids=lambda s: "x".join(map(str, s)))
def test_cuda_per_head_scales_equal_reference(shape, in_dtype, fmt, rng):
    s, h, dn, dr, dv = shape
    kv, kn, kp, v = make(rng, s, h, dn, dr, dv, in_dtype)
    ks, vs = pow2_scales(h)
    ko, vo = poison((s, h, dn + dr), FP8[fmt]), poison((s, h, dv), FP8[fmt])
    mla_kv_pack_quantize_fp8(kn, kp, v, ks, vs, ko, vo, fp8_dtype=FP8[fmt])
    torch.cuda.synchronize()
    wk, wv, _, _ = reference_full(kn, kp, v, ks, vs, FP8[fmt])
    assert_bytes(ko, wk)
    assert_bytes(vo, wv)
    # and head by head with per-tensor scales on the GPU
    for j in range(min(h, 4)):
        a, b = mla_kv_pack_quantize_fp8(kn[:, j:j + 1], kp, v[:, j:j + 1], float(ks[j]),
                                        float(vs[j]), fp8_dtype=FP8[fmt])
        torch.cuda.synchronize()
        assert_bytes(a, wk[:, j:j + 1])
        assert_bytes(b, wv[:, j:j + 1])
    assert "scales=per-head" in mt.plan(kn, kp, v, ks, vs, fp8_dtype=FP8[fmt])


@pytest.mark.parametrize("in_dtype", list(INPUT))
@pytest.mark.parametrize("per_head", [False, True], ids=["per-tensor", "per-head"])
def test_cuda_amax_equals_reference_over_two_calls(per_head, in_dtype, rng):
    s, h = 300, 16
    n = h if per_head else 1
    ka = torch.zeros(n, dtype=torch.float32, device=DEV)
    va = torch.zeros(n, dtype=torch.float32, device=DEV)
    ka_ref, va_ref = torch.zeros(n), torch.zeros(n)
    scales = pow2_scales(h) if per_head else (2.0, 0.5)
    for call in range(2):
        kv, kn, kp, v = make(rng, s, h, 128, 64, 128, in_dtype)
        if call == 1:  # an infinity in k_pe, -inf in one head of v, NaN elsewhere
            kp.view(-1)[17] = float("inf")
            v[5, 3, 7] = float("-inf")
            kv[9, 2, 0] = float("nan")
        mla_kv_pack_quantize_fp8(kn, kp, v, *scales, k_amax=ka, v_amax=va)
        torch.cuda.synchronize()
        _, _, ka_ref, va_ref = reference_full(kn, kp, v, *scales, torch.float8_e4m3fn,
                                              k_amax=ka_ref, v_amax=va_ref)
        assert_f32_equal(ka, ka_ref, "k_amax after call %d" % call)
        assert_f32_equal(va, va_ref, "v_amax after call %d" % call)
    assert torch.isinf(ka).all()  # k_pe's inf reaches every head


def test_cuda_graph_per_head_scales_and_amax(rng):
    """Captured with per-head device scales and amax outputs: replays read the current scale
    values and keep accumulating into the amax buffers."""
    s, h = 64, 16
    kv, kn, kp, v = make(rng, s, h, 128, 64, 128, "bf16")
    ks, vs = pow2_scales(h)
    ka = torch.zeros(h, dtype=torch.float32, device=DEV)
    va = torch.zeros(h, dtype=torch.float32, device=DEV)
    ko, vo = poison((s, h, 192), torch.float8_e4m3fn), poison((s, h, 128), torch.float8_e4m3fn)

    def step():
        return mla_kv_pack_quantize_fp8(kn, kp, v, ks, vs, ko, vo, k_amax=ka, v_amax=va)

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        step()
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    ka.zero_()
    va.zero_()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        step()
    torch.cuda.synchronize()
    assert (ka == 0).all(), "the captured call ran at capture time"
    ka_ref, va_ref = torch.zeros(h), torch.zeros(h)
    for seed in (1, 2, 3):
        new_kv, _, new_kp, _ = make(np.random.default_rng(seed), s, h, 128, 64, 128, "bf16")
        kv.copy_(new_kv)
        kp.copy_(new_kp)
        ks.mul_(2.0)
        g.replay()
        torch.cuda.synchronize()
        wk, wv, ka_ref, va_ref = reference_full(kn, kp, v, ks, vs, torch.float8_e4m3fn,
                                                k_amax=ka_ref, v_amax=va_ref)
        assert_bytes(ko, wk)
        assert_bytes(vo, wv)
        assert_f32_equal(ka, ka_ref, "k_amax after replay %d" % seed)
        assert_f32_equal(va, va_ref, "v_amax after replay %d" % seed)
    del g


def test_cuda_per_head_and_amax_errors(rng):
    kv, kn, kp, v = make(rng, 8, 4, 128, 64, 128, "bf16")
    ko, vo = poison((8, 4, 192), torch.float8_e4m3fn), poison((8, 4, 128), torch.float8_e4m3fn)
    ks, vs = pow2_scales(4)
    with pytest.raises(mlakv.MemorySpaceError, match="cuda:0"):  # host per-head scales
        mla_kv_pack_quantize_fp8(kn, kp, v, ks.cpu(), vs.cpu(), ko, vo)
    with pytest.raises(mlakv.MemorySpaceError, match="cuda:0"):  # host amax
        mla_kv_pack_quantize_fp8(kn, kp, v, 1.0, 1.0, ko, vo, k_amax=torch.zeros(1))
    with pytest.raises(mlakv.ShapeError):
        mla_kv_pack_quantize_fp8(kn, kp, v, ks, vs, ko, vo, v_amax=torch.zeros(1, device=DEV))
    with pytest.raises(mlakv.OverlapError) as ei:  # amax inside k_out
        mla_kv_pack_quantize_fp8(kn, kp, v, ks, vs, ko, vo,
                                 k_amax=ko.view(torch.uint8).view(-1)[:16].view(torch.float32))
    assert ei.value.status == 8
    torch.cuda.synchronize()
    for t in (ko, vo):
        assert (t.view(torch.uint8) == POISON).all()
