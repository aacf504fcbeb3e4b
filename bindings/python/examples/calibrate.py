#!/usr/bin/env python3
"""Per-head FP8 scale calibration with mlakv's amax outputs (libmlakv >= 0.2).

    python bindings/python/examples/calibrate.py                # CUDA when available, else CPU
    python bindings/python/examples/calibrate.py --device cpu   # the reference backend

1. zero one amax buffer per head for K and for V;
2. run a few calibration batches through ``mla_kv_pack_quantize_fp8`` with ``k_amax=`` /
   ``v_amax=``: the kernel accumulates ``max |x|`` of each head's inputs (K: head j of k_nope and
   all of k_pe) into them, on the inputs' device, without a host sync;
3. ``scale = amax / fp8_max`` (clamped away from 0), multiplier ``= 1 / scale``;
4. pack new batches with the ``[h]`` multipliers as per-head scales.

The synthetic batches give every head its own magnitude (as real K/V heads have), so per-head
scales keep the quiet heads' precision where one scale for all heads pushes them into FP8's
subnormals; the script prints the worst head's error of both after dequantizing. It needs torch and the mlakv package (MLAKV_LIBRARY=<prefix>/lib/
libmlakv.so, or an installed library).
"""
from __future__ import annotations

import argparse
import sys

import torch

import mlakv
from mlakv.torch import mla_kv_pack_quantize_fp8

FP8 = torch.float8_e4m3fn
FP8_MAX = torch.finfo(FP8).max  # 448


def batch(gen, s, h, d_nope, d_rope, d_v, head_gain, device):
    """k_nope and v as the two halves of one bf16 [s, h, d_nope + d_v] tensor (strided views, as
    MLA prefill produces them), k_pe [s, 1, d_rope]; head j's values scaled by head_gain[j]."""
    kv = torch.randn(s, h, d_nope + d_v, generator=gen) * head_gain[None, :, None]
    k_pe = torch.randn(s, 1, d_rope, generator=gen) * 0.5
    kv = kv.to(torch.bfloat16).to(device)
    return kv[..., :d_nope], k_pe.to(torch.bfloat16).to(device), kv[..., d_nope:]


def dequant(q, scale_per_head):
    """FP8 [s, h, d] back to float32 with a [h] (or [1]) scale."""
    return q.float() * scale_per_head.view(1, -1, 1)


def rel_err(x, y):
    return ((x - y).norm() / y.norm()).item()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    ap.add_argument("--batches", type=int, default=4, help="calibration batches")
    ap.add_argument("-s", type=int, default=256, help="tokens per batch")
    ap.add_argument("--heads", type=int, default=16)
    args = ap.parse_args()
    if args.device == "auto":
        cuda = torch.cuda.is_available() and any(b.name == "cuda" and b.usable
                                                 for b in mlakv.backends())
        device = "cuda" if cuda else "cpu"
    else:
        device = args.device
    s, h, d_nope, d_rope, d_v = args.s, args.heads, 128, 64, 128
    print("mlakv %s, %s tensors (backend: %s)" % (mlakv.version_string(), device,
                                                   "cuda" if device == "cuda" else "reference"))

    gen = torch.Generator().manual_seed(0)
    # each head its own magnitude, 0.0003 .. 50: e4m3fn spans about 2^18 from its smallest
    # subnormal to 448, so with one scale for all heads the quietest ones sink into subnormals
    gain = torch.logspace(-3.5, 1.7, h)[torch.randperm(h, generator=gen)]

    # 1. zero the amax buffers once (per head: [h]; per tensor it would be [1])
    k_amax = torch.zeros(h, dtype=torch.float32, device=device)
    v_amax = torch.zeros(h, dtype=torch.float32, device=device)
    ones = torch.ones(h, dtype=torch.float32, device=device)  # per-head multipliers of 1

    # 2. calibration batches: the kernel accumulates max |x| per head (the FP8 outputs of these
    #    calls are not needed; a serving engine would calibrate on its real prefill calls)
    want_k = torch.zeros(h)
    want_v = torch.zeros(h)
    for _ in range(args.batches):
        k_nope, k_pe, v = batch(gen, s, h, d_nope, d_rope, d_v, gain, device)
        mla_kv_pack_quantize_fp8(k_nope, k_pe, v, ones, ones, k_amax=k_amax, v_amax=v_amax)
        # the same numbers from torch, for the check below
        want_k = torch.maximum(want_k, torch.maximum(k_nope.float().abs().amax(dim=(0, 2)).cpu(),
                                                     k_pe.float().abs().amax().cpu()))
        want_v = torch.maximum(want_v, v.float().abs().amax(dim=(0, 2)).cpu())
    if device == "cuda":
        torch.cuda.synchronize()
    assert torch.equal(k_amax.cpu(), want_k) and torch.equal(v_amax.cpu(), want_v), \
        "amax differs from torch's"
    print("amax after %d batches matches torch's (K per head: %s ...)"
          % (args.batches, ", ".join("%.3g" % x for x in k_amax[:4].tolist())))

    # 3. scales: amax / fp8_max, clamped so that an all-zero head does not divide by zero
    k_scale = (k_amax / FP8_MAX).clamp_min(1e-12)
    v_scale = (v_amax / FP8_MAX).clamp_min(1e-12)
    # one scale for all heads, for comparison: the largest
    k_scale_t = k_scale.max().reshape(1)
    v_scale_t = v_scale.max().reshape(1)

    # 4. pack a new batch with per-head multipliers (1 / scale, [h] tensors on the device)
    k_nope, k_pe, v = batch(gen, s, h, d_nope, d_rope, d_v, gain, device)
    k_fp8, v_fp8 = mla_kv_pack_quantize_fp8(k_nope, k_pe, v, 1 / k_scale, 1 / v_scale)
    k_fp8_t, v_fp8_t = mla_kv_pack_quantize_fp8(k_nope, k_pe, v, 1 / k_scale_t, 1 / v_scale_t)

    k_ref = torch.cat([k_nope.float(), k_pe.float().expand(s, h, d_rope)], dim=-1).cpu()
    v_ref = v.float().cpu()

    def worst(q, scale, ref):  # the largest relative error of any head
        x = dequant(q, scale).cpu()
        return max(rel_err(x[:, j], ref[:, j]) for j in range(h))

    print("relative error per head after dequantizing, worst head (lower is better):")
    print("  per-head scales:   K %.4f   V %.4f" % (worst(k_fp8, k_scale, k_ref),
                                                   worst(v_fp8, v_scale, v_ref)))
    print("  per-tensor scale:  K %.4f   V %.4f" % (worst(k_fp8_t, k_scale_t, k_ref),
                                                   worst(v_fp8_t, v_scale_t, v_ref)))
    print(mlakv.torch.plan(k_nope, k_pe, v, 1 / k_scale, 1 / v_scale))
    return 0


if __name__ == "__main__":
    sys.exit(main())
