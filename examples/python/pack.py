#!/usr/bin/env python3
"""mlakv from Python: pack and FP8-quantize a DeepSeek-shaped K/V chunk.

    MLAKV_LIBRARY=<prefix>/lib/libmlakv.so python3 examples/python/pack.py [--s 1024] [--h 16]

numpy on the host (the reference backend); then, when torch and a CUDA GPU are there and the
library has a usable CUDA backend, the same call as sglang's drop-in on CUDA tensors, checked
byte for byte against the host result.  (Without the package installed, bindings/python/src is
put on sys.path.)
"""
import argparse
import sys
from pathlib import Path

try:
    import mlakv
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bindings" / "python" / "src"))
    import mlakv

import numpy as np

D_NOPE, D_ROPE, D_V = 128, 64, 128  # DeepSeek V3 head dims


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--s", type=int, default=1024, help="tokens in the chunk")
    ap.add_argument("--h", type=int, default=16, help="heads (per GPU)")
    a = ap.parse_args()

    print("mlakv", mlakv.version_string(), "from", mlakv.library_path())
    for b in mlakv.backends():
        print("  backend %-9s compiled=%d usable=%d  %s" % (b.name, b.compiled, b.usable, b.detail))

    # bf16 inputs as uint16 bit patterns (numpy has no bf16; ml_dtypes.bfloat16 works too):
    # k_nope and v are the two halves of one [s, h, 256] tensor, k_pe one [s, 1, 64] vector per token
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((a.s, a.h, D_NOPE + D_V)) * 2).astype(np.float32)
    kv = (x.view(np.uint32) >> 16).astype(np.uint16)        # fp32 -> bf16 bits (truncated)
    kp = ((rng.standard_normal((a.s, 1, D_ROPE)) * 2).astype(np.float32).view(np.uint32)
          >> 16).astype(np.uint16)
    kv[0, 0, :4] = [0x3F80, 0xBF80, 0x447A, 0x7FC0]        # 1.0, -1.0, 1000, NaN
    ks, vs = 1 / 0.0375, 1 / 0.021                          # multipliers (1 / scale)

    k_nope, v = kv[..., :D_NOPE], kv[..., D_NOPE:]
    print(mlakv.plan(k_nope, kp, v, ks, vs, input_dtype="bf16"))
    k_out, v_out = mlakv.pack_fp8(k_nope, kp, v, ks, vs, fp8_dtype="e4m3fn", input_dtype="bf16")
    print("host: k_out %s %s, v_out %s; k_out[0, 0, :4] = %s (1.0*ks, -1.0*ks, saturated, NaN)"
          % (k_out.shape, k_out.dtype, v_out.shape, [hex(b) for b in k_out[0, 0, :4]]))

    try:
        mlakv.pack_fp8(k_nope, kp, v[:-1], ks, vs, input_dtype="bf16")
    except mlakv.ShapeError as e:  # errors carry the status and the library's message
        print("a wrong call: %s (status %d): %s" % (e.name, e.status, e.message))

    try:
        import torch
    except ImportError:
        print("torch is not installed: skipping the CUDA part")
        return 0
    cuda = next(b for b in mlakv.backends() if b.name == "cuda")
    if not torch.cuda.is_available() or not cuda.usable:
        print("no CUDA device or no usable CUDA backend in this library: skipping the CUDA part")
        return 0
    from mlakv.torch import mla_kv_pack_quantize_fp8  # sglang's signature

    kv_t = torch.from_numpy(kv.view(np.int16)).view(torch.bfloat16).cuda()
    kp_t = torch.from_numpy(kp.view(np.int16)).view(torch.bfloat16).cuda()
    ks_t = torch.tensor([ks], dtype=torch.float32, device="cuda")  # read by the kernel
    k_fp8, v_fp8 = mla_kv_pack_quantize_fp8(kv_t[..., :D_NOPE], kp_t, kv_t[..., D_NOPE:], ks_t, vs)
    torch.cuda.synchronize()
    same = (np.array_equal(k_fp8.view(torch.uint8).cpu().numpy(), k_out)
            and np.array_equal(v_fp8.view(torch.uint8).cpu().numpy(), v_out))
    print("cuda: %s; %s" % (mlakv.torch.plan(kv_t[..., :D_NOPE], kp_t, kv_t[..., D_NOPE:]),
                            "byte-identical to the host result" if same else "MISMATCH"))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
