#!/usr/bin/env python3
"""Host cost of one mlakv call from Python, beside the upstream-style Triton function.

What this measures
------------------
Host microseconds per call = the wall time of N back-to-back calls / N, taken before the final
``torch.cuda.synchronize()``, after a warm-up, as the median of several rounds whose order
rotates (garbage collection off during a round).  DeepSeek dims, bf16 -> e4m3fn: k_nope and v
are the two halves of one [s, h, 256] tensor, k_pe is [s, 1, 64], outputs preallocated, for
(h, s) in (16, 1), (128, 384), (16, 4096):

  (a)  ``mlakv.torch.mla_kv_pack_quantize_fp8`` with outputs given, scales as 1-element fp32
       CUDA tensors (read by the kernel: graph-safe, like the baseline Triton kernels);
  (a') the same with Python-float scales (upstream's usual call);
  (b)  the same as (a) with the outputs allocated by the call (``torch.empty`` x 2);
  (c)  the floor: one raw ctypes call of ``mlakv_pack_fp8`` on an argument struct built once,
       its ``stream`` field refreshed per call from ``torch._C._cuda_getCurrentRawStream``;
  (d)  the upstream-style Triton function: a Python wrapper equivalent to sglang's
       ``mla_kv_pack_quantize_fp8`` (its argument checks, allocation-free when outputs are
       given, PDL when the GPU supports it) launching the Triton kernels of
       ``bench/triton_baseline.py`` under its ``dispatch_upstream_298ec3a`` table.  Those
       kernels read the scales from device memory, so the wrapper takes 1-element tensors.

When the GPU work of N calls outlasts their host time, the launch queue fills and the host
waits for the GPU: such cells are marked ``*`` (the number is then GPU throughput, an upper
bound of the host cost); the JSON also has a 200-call burst per implementation, short enough
not to fill the queue.  Before timing, every implementation's output bytes (outputs poisoned
first) are compared with (a)'s; the Triton kernel's bytes must equal mlakv's (exit code 1
otherwise).

``--cpu-dry`` (no GPU needed): CPU tensors on the reference backend, (a), (a'), (b), (c), and
the same with the C function replaced by a no-op C function (``fegetround``, which returns 0):
the "stub" rows are the binding's pure Python overhead, without the kernel.

Run from the repository root::

    python3 bench/python_host_cost.py --lib build-gpu/libmlakv.so [--json bench/results/python_host_cost.json]
    python3 bench/python_host_cost.py --lib /tmp/prefix/lib/libmlakv.so --cpu-dry

(``--lib`` sets ``MLAKV_LIBRARY``; bindings/python/src is put on sys.path when the mlakv
package is not installed.)  The markdown table is printed last.
"""
from __future__ import annotations

import argparse
import ctypes
import datetime
import functools
import gc
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

REPO = Path(__file__).resolve().parent.parent
D_NOPE, D_ROPE, D_V = 128, 64, 128
K_SCALE_INV = 1.0 / 0.0375
V_SCALE_INV = 1.0 / 0.021
POISON = 0x5A
DEFAULT_SIZES = "16:1,128:384,16:4096"
DRY_SIZES = "16:1,16:16"
IMPLS = ["a", "a_float", "b", "c", "d", "m"]
LABELS = {
    "m": "(m) metadata reads alone",
    "a": "(a) mlakv.torch, outputs given",
    "a_float": "(a') same, float scales",
    "b": "(b) outputs allocated",
    "c": "(c) raw ctypes floor",
    "d": "(d) Triton upstream-style",
    "a_stub": "(a) with a no-op C call",
    "a_float_stub": "(a') with a no-op C call",
    "c_stub": "(c) with a no-op C call",
}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lib", required=True, help="path of libmlakv.so (sets MLAKV_LIBRARY)")
    ap.add_argument("--json", default=None, metavar="OUT", help="write the results as JSON")
    ap.add_argument("--sizes", default=None,
                    help='"h:s,h:s,..." (default %s; --cpu-dry: %s)' % (DEFAULT_SIZES, DRY_SIZES))
    ap.add_argument("--n", type=int, default=2000, help="calls per timed loop (default 2000)")
    ap.add_argument("--rounds", type=int, default=7, help="rounds per size (default 7)")
    ap.add_argument("--burst", type=int, default=200, help="calls per burst loop (default 200)")
    ap.add_argument("--warmup", type=int, default=200, help="warm-up calls per implementation")
    ap.add_argument("--cpu-dry", action="store_true",
                    help="CPU tensors on the reference backend, no Triton; adds no-op-C-call rows")
    return ap.parse_args(argv)


def import_mlakv(lib: str):
    os.environ["MLAKV_LIBRARY"] = str(Path(lib).resolve())
    try:
        import mlakv
        where = "installed"
    except ImportError:
        sys.path.insert(0, str(REPO / "bindings" / "python" / "src"))
        import mlakv
        where = "bindings/python/src"
    import mlakv.torch  # noqa: F401
    return mlakv, where


# ----------------------------------------------------------------------------------------------
# the upstream-style Triton function
# ----------------------------------------------------------------------------------------------
def make_triton_wrapper(torch, triton, tb):
    """A Python function with the signature and checks of sglang's mla_kv_pack_quantize_fp8,
    launching bench/triton_baseline.py's kernels under its upstream (298ec3a) table."""

    @functools.lru_cache(maxsize=None)
    def is_arch_support_pdl() -> bool:  # upstream caches this too
        return torch.cuda.is_available() and torch.cuda.get_device_capability()[0] >= 9

    state = {"pdl_ok": True}

    def mla_kv_pack_quantize_fp8(k_nope, k_pe, v, k_scale_inv, v_scale_inv, k_out=None,
                                 v_out=None, fp8_dtype=torch.float8_e4m3fn, enable_pdl=None):
        assert k_nope.dtype in (torch.bfloat16, torch.float16), \
            f"k_nope must be bf16/fp16, got {k_nope.dtype}"
        assert k_pe.dtype == k_nope.dtype and v.dtype == k_nope.dtype, \
            "k_nope, k_pe, v must share dtype"
        assert fp8_dtype == torch.float8_e4m3fn  # the baseline kernels write e4m3fn only
        s, num_heads, qk_nope = k_nope.shape
        qk_rope = k_pe.shape[-1]
        v_head = v.shape[-1]
        assert v.shape[0] == s and v.shape[1] == num_heads, \
            f"v shape {tuple(v.shape)} mismatches k_nope {tuple(k_nope.shape)}"
        assert k_pe.shape[0] == s, f"k_pe first dim {k_pe.shape[0]} mismatches k_nope first dim {s}"
        assert k_nope.stride(-1) == 1, "k_nope must have stride-1 inner dim"
        assert v.stride(-1) == 1, "v must have stride-1 inner dim"
        assert k_pe.stride(-1) == 1, "k_pe must have stride-1 inner dim"
        if k_pe.dim() == 3:
            assert k_pe.shape[1] == 1, f"k_pe head dim must be 1, got {k_pe.shape[1]}"
            k_pe_2d = k_pe.squeeze(1)
        else:
            k_pe_2d = k_pe
        if k_out is None:
            k_out = torch.empty((s, num_heads, qk_nope + qk_rope), dtype=fp8_dtype,
                                device=k_nope.device)
        if v_out is None:
            v_out = torch.empty((s, num_heads, v_head), dtype=fp8_dtype, device=v.device)
        if enable_pdl is None:
            enable_pdl = is_arch_support_pdl() and state["pdl_ok"]
        cfg = tb.dispatch_upstream_298ec3a(s, num_heads)
        extra = {"launch_pdl": True} if enable_pdl else {}
        if cfg.kernel == "v0":
            tb._mla_pack_v0_kernel[(triton.cdiv(s, cfg.block), num_heads)](
                k_nope, k_pe_2d, v, k_out, v_out, k_scale_inv, v_scale_inv, s,
                k_nope.stride(0), k_nope.stride(1), k_pe_2d.stride(0), v.stride(0), v.stride(1),
                k_out.stride(0), k_out.stride(1), v_out.stride(0), v_out.stride(1),
                D_NOPE=qk_nope, D_ROPE=qk_rope, D_V=v_head, BLOCK_S=cfg.block,
                USE_PDL=enable_pdl, WIDE=False, num_warps=cfg.num_warps,
                num_stages=cfg.num_stages, **extra)
        else:
            tb._mla_pack_flat_kernel[(triton.cdiv(s * num_heads, cfg.block),)](
                k_nope, k_pe_2d, v, k_out, v_out, k_scale_inv, v_scale_inv, s * num_heads,
                num_heads, k_nope.stride(0), k_nope.stride(1), k_pe_2d.stride(0), v.stride(0),
                v.stride(1), k_out.stride(0), k_out.stride(1), v_out.stride(0), v_out.stride(1),
                D_NOPE=qk_nope, D_ROPE=qk_rope, D_V=v_head, BLOCK=cfg.block,
                USE_PDL=enable_pdl, WIDE=False, num_warps=cfg.num_warps,
                num_stages=cfg.num_stages, **extra)
        return k_out, v_out

    return mla_kv_pack_quantize_fp8, state


# ----------------------------------------------------------------------------------------------
# the floor: a struct built once
# ----------------------------------------------------------------------------------------------
def make_floor(mlakv, torch, p, stub=None):
    """(c): mlakv_pack_fp8 on a PackArgs filled once (pointers, shapes, strides, scale pointers);
    per call only the stream field is refreshed. With ``stub``, a no-op C function is called
    instead of mlakv_pack_fp8 (the --cpu-dry stub rows)."""
    from mlakv import _capi, _core
    L = _capi.lib()
    a = _core.new_args()  # MLAKV_PACK_ARGS_INIT with this binding's struct_size
    codes = {torch.bfloat16: 1, torch.float8_e4m3fn: 4}
    for name in _capi.TENSOR_FIELDS:
        x = getattr(p, name)
        t = getattr(a, name)
        t.data = x.data_ptr()
        t.dtype = codes[x.dtype]
        t.ndim = x.dim()
        for i in range(x.dim()):
            t.shape[i] = x.shape[i]
            t.strides[i] = x.stride(i)
    a.k_scale_inv_ptr = p.ks.data_ptr()
    a.v_scale_inv_ptr = p.vs.data_ptr()
    gpu = p.k_nope.is_cuda
    a.device = p.k_nope.get_device() if gpu else 0
    pack = stub or L.pack_fp8
    addr = ctypes.addressof(a)
    q = memoryview(a).cast("B").cast("Q")
    slot = _capi.OFFSET_STREAM // 8
    raw = getattr(torch._C, "_cuda_getCurrentRawStream", None) if gpu else None
    dev = a.device

    if raw is not None:
        def floor():
            q[slot] = raw(dev)
            if pack(addr):
                raise RuntimeError("mlakv_pack_fp8 failed: " + L.lib.mlakv_last_error().decode())
    else:
        def floor():
            if pack(addr):
                raise RuntimeError("mlakv_pack_fp8 failed: " + L.lib.mlakv_last_error().decode())
    floor.args = a  # keeps the struct alive with the closure
    return floor


# ----------------------------------------------------------------------------------------------
# problems, timing
# ----------------------------------------------------------------------------------------------
class Problem:
    def __init__(self, torch, s, h, device):
        g = torch.Generator(device="cpu")
        g.manual_seed(s * 1009 + h)
        self.s, self.h = s, h
        kv = (torch.randn(s, h, D_NOPE + D_V, generator=g) * 2.0).to(torch.bfloat16)
        kp = (torch.randn(s, 1, D_ROPE, generator=g) * 2.0).to(torch.bfloat16)
        self.kv = kv.to(device)
        self.k_nope = self.kv[..., :D_NOPE]
        self.v = self.kv[..., D_NOPE:]
        self.k_pe = kp.to(device)
        self.k_out = torch.empty(s, h, D_NOPE + D_ROPE, dtype=torch.float8_e4m3fn, device=device)
        self.v_out = torch.empty(s, h, D_V, dtype=torch.float8_e4m3fn, device=device)
        self.ks = torch.tensor([K_SCALE_INV], dtype=torch.float32, device=device)
        self.vs = torch.tensor([V_SCALE_INV], dtype=torch.float32, device=device)
        self.ks_f = float(self.ks.item())
        self.vs_f = float(self.vs.item())

    def poison(self, torch):
        self.k_out.view(torch.uint8).fill_(POISON)
        self.v_out.view(torch.uint8).fill_(POISON)


def timed(fn: Callable[[], object], n: int, sync: Callable[[], None]):
    """(host us per call before the synchronize, us per call including it)."""
    sync()
    gc_was = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        t1 = time.perf_counter()
        sync()
        t2 = time.perf_counter()
    finally:
        if gc_was:
            gc.enable()
    return (t1 - t0) / n * 1e6, (t2 - t0) / n * 1e6


def median(xs: List[float]) -> Optional[float]:
    return statistics.median(xs) if xs else None


def main(argv=None) -> int:
    args = parse_args(argv)
    mlakv, where = import_mlakv(args.lib)
    import torch
    from mlakv.torch import mla_kv_pack_quantize_fp8 as mlakv_fn

    dry = args.cpu_dry
    if not dry and not torch.cuda.is_available():
        print("no CUDA device visible to torch (use --cpu-dry on a machine without a GPU)",
              file=sys.stderr)
        return 2
    device = torch.device("cpu") if dry else torch.device("cuda", torch.cuda.current_device())
    sync = (lambda: None) if dry else torch.cuda.synchronize
    sizes = [tuple(int(x) for x in tok.split(":")) for tok in
             (args.sizes or (DRY_SIZES if dry else DEFAULT_SIZES)).split(",") if tok.strip()]

    triton_fn = None
    env = {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "python": sys.version.split()[0], "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
        "mlakv": mlakv.version_string(), "mlakv_lib": mlakv.library_path(),
        "mlakv_package": "%s (%s)" % (Path(mlakv.__file__).parent, where),
        "device": "cpu (reference backend, --cpu-dry)" if dry else torch.cuda.get_device_name(device),
        "n": args.n, "rounds": args.rounds, "burst": args.burst,
    }
    impls = ["a", "a_float", "b", "c", "m"]
    stub = None  # a no-op C function with mlakv_pack_fp8's call signature (--cpu-dry)
    pdl_note = ""
    if dry:
        try:
            stub = ctypes.CDLL(None).fegetround
            stub.argtypes = [ctypes.c_void_p]
            stub.restype = ctypes.c_int32
            assert stub(0) == 0
        except (AttributeError, OSError, AssertionError):
            print("# no fegetround in this process: no stub rows", flush=True)
    else:
        import triton
        sys.path.insert(0, str(REPO / "bench"))
        import triton_baseline as tb  # noqa: E402  (kernels and dispatch; not modified)
        triton_fn, tstate = make_triton_wrapper(torch, triton, tb)
        env["triton"] = triton.__version__
        impls.append("d")
    print("# %s | torch %s%s | python %s | %s | mlakv package: %s" % (
        env["device"], env["torch"], (" | triton " + env["triton"]) if "triton" in env else "",
        env["python"], env["mlakv"], env["mlakv_package"]), flush=True)

    results = []
    failures = []
    for (h, s) in sizes:
        p = Problem(torch, s, h, device)
        if not dry:
            assert max((n - 1) * st for x in (p.k_nope, p.k_pe, p.v, p.k_out, p.v_out)
                       for n, st in zip(x.shape, x.stride())) < 2 ** 31, "size needs WIDE"
        fns: Dict[str, Callable[[], object]] = {
            "a": lambda: mlakv_fn(p.k_nope, p.k_pe, p.v, p.ks, p.vs, p.k_out, p.v_out),
            "a_float": lambda: mlakv_fn(p.k_nope, p.k_pe, p.v, p.ks_f, p.vs_f, p.k_out, p.v_out),
            "b": lambda: mlakv_fn(p.k_nope, p.k_pe, p.v, p.ks, p.vs),
            "c": make_floor(mlakv, torch, p),
        }
        if triton_fn is not None:
            fns["d"] = lambda: triton_fn(p.k_nope, p.k_pe, p.v, p.ks, p.vs, p.k_out, p.v_out)
        # (m): what any wrapper that validates torch tensors must read per call (shape, strides,
        # dtype and data pointer of the five tensors, and the current stream), with no call at
        # all: the floor of a pure-Python binding on this host, beside (c)'s C-call floor.
        raw_stream = getattr(torch._C, "_cuda_getCurrentRawStream", None)
        dev_index = -1 if dry else device.index
        tensors = (p.k_nope, p.k_pe, p.v, p.k_out, p.v_out)
        fns_meta = {"m": lambda: ([(x.shape, x.stride(), x.dtype, x.data_ptr()) for x in tensors],
                                  raw_stream(dev_index) if dev_index >= 0 else 0)}
        plan = mlakv.torch.plan(p.k_nope, p.k_pe, p.v, p.ks, p.vs, p.k_out, p.v_out)
        rec = {"h": h, "s": s, "plan": plan, "impls": {}, "mismatch": {}}

        # --- correctness: every implementation's bytes against (a)'s
        p.poison(torch)
        fns["a"]()
        sync()
        ref = (p.k_out.view(torch.uint8).clone(), p.v_out.view(torch.uint8).clone())
        for name in [k for k in fns if k != "a"]:
            try:
                p.poison(torch)
                if name == "b":
                    ko, vo = fns[name]()
                else:
                    if name == "d" and tstate["pdl_ok"]:
                        try:
                            fns[name]()
                            sync()
                        except Exception as e:  # noqa: BLE001 - this Triton cannot launch with PDL
                            tstate["pdl_ok"] = False
                            pdl_note = "Triton PDL launch failed (%s: %s); timed without PDL" % (
                                type(e).__name__, str(e)[:200])
                            print("!!! " + pdl_note, flush=True)
                            p.poison(torch)
                    fns[name]()
                    ko, vo = p.k_out, p.v_out
                sync()
                n_bad = int((ko.view(torch.uint8) != ref[0]).sum().item()
                            + (vo.view(torch.uint8) != ref[1]).sum().item())
            except Exception as e:  # noqa: BLE001
                n_bad = -1
                failures.append("h=%d s=%d %s: %s: %s" % (h, s, name, type(e).__name__, e))
            rec["mismatch"][name] = n_bad
            if n_bad:
                failures.append("h=%d s=%d: %s: %d bytes differ from (a)" % (h, s, name, n_bad))
        # --- warm-up, then rounds in rotating order
        order = [k for k in impls if k in fns or k in fns_meta]
        samples = run_rounds({**fns, **fns_meta}, order, args, sync)
        if stub is not None:
            # the stub rows: the same calls with the C function replaced by a no-op, timed in a
            # phase of their own (mlakv.torch's cache entry for this call is patched meanwhile)
            stub_fns = {"c_stub": make_floor(mlakv, torch, p, stub=stub), "a_stub": fns["a"],
                        "a_float_stub": fns["a_float"]}
            mlakv.torch.clear_cache()
            fns["a"]()  # builds the entry (in the cache and as this thread's last call)
            cache, last = mlakv.torch._cache, mlakv.torch._last
            for k, e in list(cache.items()):
                cache[k] = e[:3] + (stub,) + e[4:]
            for k, (key, e) in list(last.items()):
                last[k] = (key, e[:3] + (stub,) + e[4:])
            try:
                samples.update(run_rounds(stub_fns, ["a_stub", "a_float_stub", "c_stub"], args,
                                          sync))
            finally:
                mlakv.torch.clear_cache()
            order += ["a_stub", "a_float_stub", "c_stub"]
        for name in order:
            sm = samples[name]
            host, wall, burst = median(sm["host"]), median(sm["wall"]), median(sm["burst"])
            rec["impls"][name] = {"host_us": host, "wall_us": wall, "burst_us": burst,
                                  "gpu_bound": (not dry) and wall > 1.15 * host,
                                  "samples_host_us": sm["host"]}
        results.append(rec)
        print("h=%4d s=%5d  " % (h, s) + "  ".join(
            "%s %.2f" % (k, rec["impls"][k]["host_us"]) for k in order)
            + "  | plan: " + rec["plan"], flush=True)

    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"env": env, "triton_pdl_note": pdl_note, "labels": LABELS,
                                   "results": results, "failures": failures}, indent=1))
        print("# wrote %s" % out, flush=True)

    # ---- the table, last
    cols = [k for k in IMPLS + ["a_stub", "a_float_stub", "c_stub"]
            if any(k in r["impls"] for r in results)]
    hdr = ["h", "s"] + [LABELS[k] for k in cols] + ["(a) - (c)"]
    rows = []
    for r in results:
        im = r["impls"]
        cells = [str(r["h"]), str(r["s"])]
        for k in cols:
            e = im.get(k)
            cells.append("-" if not e else "%.2f%s" % (e["host_us"], "*" if e["gpu_bound"] else ""))
        d = (im["a"]["host_us"] - im["c"]["host_us"]) if "a" in im and "c" in im else None
        cells.append("-" if d is None else "%+.2f" % d)
        rows.append(cells)
    print()
    print("# host us per call: median of %d rounds of %d back-to-back calls, before the final "
          "synchronize; %s; bf16 -> e4m3fn, DeepSeek dims" % (args.rounds, args.n, env["device"]))
    if any(e.get("gpu_bound") for r in results for e in r["impls"].values()):
        print("# * GPU-bound: the launch queue filled and the host waited for the GPU (see the "
              "%d-call burst numbers in the JSON)" % args.burst)
    if pdl_note:
        print("# " + pdl_note)
    print("| " + " | ".join(hdr) + " |")
    print("|" + "|".join("---" for _ in hdr) + "|")
    for cells in rows:
        print("| " + " | ".join(cells) + " |")
    if failures:
        print("\n!!! FAILURES:\n  " + "\n  ".join(failures))
        return 1
    print("bytes: every implementation equal to mlakv's (a)" +
          ("" if dry else ", the Triton kernel included"))
    return 0


def run_rounds(fns: Dict[str, Callable[[], object]], order: List[str], args, sync) -> dict:
    """Warm-up, then args.rounds rounds over ``order``, rotated by one each round; per
    implementation the host and wall us per call of each N-call loop and each burst."""
    for name in order:
        for _ in range(max(1, args.warmup)):
            fns[name]()
    sync()
    samples = {k: {"host": [], "wall": [], "burst": []} for k in order}
    for rnd in range(args.rounds):
        rot = order[rnd % len(order):] + order[:rnd % len(order)]
        for name in rot:
            host_us, wall_us = timed(fns[name], args.n, sync)
            burst_us, _ = timed(fns[name], args.burst, sync)
            samples[name]["host"].append(host_us)
            samples[name]["wall"].append(wall_us)
            samples[name]["burst"].append(burst_us)
    return samples


if __name__ == "__main__":
    sys.exit(main())
