#!/usr/bin/env python3
"""Dump what Triton compiles our baseline kernels to (PTX, cubin, registers), for comparing
instruction choices with mlakv's kernels. Run on the GPU machine:
    python3 tools/triton_dump.py OUTDIR [kernel:block:warps:stages ...]
Writes OUTDIR/<name>.ptx and .cubin (disassemble with nvdisasm or cuobjdump -sass) and prints
n_regs / n_spills per configuration."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import torch  # noqa: E402
import triton  # noqa: E402
import triton_baseline as tb  # noqa: E402

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
specs = sys.argv[2:] or ["v1_flat:8:8:3", "v0:16:8:2", "v1_flat:16:8:2"]
p = tb.make_problem(1024, 16, 0, torch.device("cuda"))
for spec in specs:
    k, b, w, st = spec.split(":")
    cfg = tb.Cfg(k, int(b), int(w), int(st))
    # the same launch as TritonPack.make_fn, keeping the CompiledKernel that run() returns
    common = (p.k_nope, p.k_pe, p.v, p.k_out, p.v_out, p.ks, p.vs)
    strides = (p.k_nope.stride(0), p.k_nope.stride(1), p.k_pe.stride(0), p.v.stride(0), p.v.stride(1),
               p.k_out.stride(0), p.k_out.stride(1), p.v_out.stride(0), p.v_out.stride(1))
    kw = dict(D_NOPE=tb.D_NOPE, D_ROPE=tb.D_ROPE, D_V=tb.D_V, USE_PDL=True, WIDE=False,
              num_warps=cfg.num_warps, num_stages=cfg.num_stages, launch_pdl=True)
    if k == "v0":
        compiled = tb._mla_pack_v0_kernel[(triton.cdiv(p.s, cfg.block), p.h)](*common, p.s, *strides, BLOCK_S=cfg.block, **kw)
    else:
        compiled = tb._mla_pack_flat_kernel[(triton.cdiv(p.s * p.h, cfg.block),)](*common, p.s * p.h, p.h, *strides, BLOCK=cfg.block, **kw)
    torch.cuda.synchronize()
    name = f"{k}_{b}_{w}_{st}"
    (out / f"{name}.ptx").write_text(compiled.asm["ptx"])
    (out / f"{name}.cubin").write_bytes(compiled.asm["cubin"])
    print(name, "n_regs", compiled.n_regs, "n_spills", compiled.n_spills, "shared", compiled.metadata.shared, flush=True)
