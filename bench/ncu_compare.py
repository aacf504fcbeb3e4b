#!/usr/bin/env python3
"""Run mlakv configurations and our Triton baseline kernels on one problem, a few times each, so
that Nsight Compute can compare them kernel by kernel (L2 warm: run under
`ncu --cache-control none`; the last launch of each kernel is the steady-state one).

    ncu --cache-control none --metrics ... python3 bench/ncu_compare.py --lib .carry/lib/libmlakv.so \
        --h 16 --s 1024 --mlakv "t2d16s=variant=tile2d threads=256 block=16 lanes=16 split=1 early=1" \
        --triton v0:16:8:2
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402
import triton_baseline as tb  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--lib", required=True)
ap.add_argument("--h", type=int, default=16)
ap.add_argument("--s", type=int, default=1024)
ap.add_argument("--mlakv", action="append", default=[], help="NAME=ROW (a dispatch-table row without arch/s/sxh)")
ap.add_argument("--triton", action="append", default=[], help="kernel:block:warps:stages")
ap.add_argument("--reps", type=int, default=4)
a = ap.parse_args()

p = tb.make_problem(a.s, a.h, 0, torch.device("cuda"))
mk = tb.Mlakv(Path(a.lib))
tp = tb.TritonPack(want_pdl=True)
fns = []
for spec in a.mlakv:
    name, _, row = spec.partition("=")
    mk.set_dispatch_table(f"arch=0-100000 s=1-* sxh=1-* dims=x8 {row}\n"
                          "arch=0-100000 s=1-* sxh=1-* dims=any variant=general threads=256\n")
    args = mk.make_args(p, "auto", 0)
    print(name, mk.plan(args), flush=True)
    f = mk.make_fn(args)
    for _ in range(a.reps):
        f()
    torch.cuda.synchronize()
for spec in a.triton:
    k, b, w, st = spec.split(":")
    f = tp.make_fn(tb.Cfg(k, int(b), int(w), int(st)), p)
    for _ in range(a.reps):
        f()
    torch.cuda.synchronize()
    print("triton", spec, flush=True)
