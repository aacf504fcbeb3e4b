#!/usr/bin/env python3
"""Compact per-GPU summary of one bench/triton_baseline.py run: <name>.md and <name>.png.

The markdown has the run's date, GPU, driver, commit and versions, the method in a few lines and
one table per head count h; the plot has, per h, µs against s (log-log) and TB/s against s for
mlakv, the upstream Triton dispatch (298ec3a), the best of the Triton sweep (where swept) and the
device copy. The device copy is the per-size copy timing of the run when the JSON has one
(results[i]["copy_us"]); otherwise, with --copy-tbps X, the floor bytes moved / X TB/s.

    python3 bench/summarize.py RESULT.json --name h100 --outdir bench/results [--copy-tbps 3.02]
        [--extra-json OTHER.json ...] [--note "markdown line" ...]

--extra-json: further runs of the same library on the same GPU (e.g. a sweep over a few sizes
beside a --no-sweep run); they add the sizes RESULT.json lacks, and the best of sweep and the copy
timing where RESULT.json has none. Raw JSON and logs belong in a build folder, not in bench/results.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator  # noqa: E402

UP = "upstream_298ec3a"
UP2 = "upstream_ba4fafe"


def timed(rec: dict, key: str) -> Optional[float]:
    """us of a correct, successfully timed entry of rec["times"], else None."""
    e = rec.get("times", {}).get(key)
    if not e or e.get("error") or e.get("mismatch"):
        return None
    return e.get("us")


def load(path: Path, extras: list[Path]) -> tuple[dict, list[dict]]:
    doc = json.loads(path.read_text())
    rows = {(r["h"], r["s"]): r for r in doc["results"]}
    for xp in extras:
        x = json.loads(xp.read_text())
        for k in ("gpu", "driver", "commit"):
            if x["env"].get(k) != doc["env"].get(k):
                print(f"warning: {xp}: {k} {x['env'].get(k)!r} differs from {doc['env'].get(k)!r}",
                      file=sys.stderr)
        for r in x["results"]:
            mine = rows.setdefault((r["h"], r["s"]), r)
            for k in ("best_sweep", "copy_us", "copy_tbps"):
                if mine.get(k) is None and r.get(k) is not None:
                    mine[k] = r[k]
    return doc, sorted(rows.values(), key=lambda r: (r["h"], r["s"]))


def copy_us(r: dict, copy_tbps: Optional[float]) -> Optional[float]:
    """The run's own copy timing of this size, else the floor at copy_tbps (None without either)."""
    if r.get("copy_us") is not None:
        return r["copy_us"]
    return r["bytes"] / (copy_tbps * 1e6) if copy_tbps else None


def copy_label(rows: list[dict], copy_tbps: Optional[float]) -> Optional[str]:
    if any(r.get("copy_us") is not None for r in rows):
        return "device copy (torch, same bytes)"
    return f"copy floor at {copy_tbps:g} TB/s" if copy_tbps else None


def fmt(x: Optional[float], f: str = "{:.2f}") -> str:
    return "" if x is None else f.format(x)


def write_md(doc: dict, rows: list[dict], copy_tbps: Optional[float], out: Path, notes: list[str],
             merged: bool) -> None:
    env, sm = doc["env"], doc["summary"]
    clabel = copy_label(rows, copy_tbps)
    floor = bool(clabel) and clabel.startswith("copy floor")
    if floor:
        copy_how = f"bytes moved / {copy_tbps:g} TB/s, a device copy's rate measured apart (not timed per size)"
    elif clabel:
        copy_how = "a torch `dst.copy_(src)` of half the bytes moved (read + write = the op's bytes), timed like mlakv"
    else:
        copy_how = "not measured"
    lines = [
        f"# mlakv on {env['gpu']} ({env['compute_capability']})",
        "",
        f"{env['date_utc'][:10]}, driver {env['driver']}, commit {str(env['commit'])[:7]}, "
        f"PyTorch {env['torch']}, Triton {env['triton']}, Python {env['python']}.",
        "Produced by `bench/triton_baseline.py`, summarised by `bench/summarize.py`.",
        "",
        "- DeepSeek dims 128/64/128, bf16 -> e4m3fn, k_nope and v the halves of one [s, h, 256] tensor, "
        "k_pe [s, 1, 64], scales in device memory;",
        f"  mlakv (C ABI, built-in table) and our Triton version of the upstream kernels (PDL "
        f"{'on' if doc.get('triton_pdl') else 'off'}) in one process, outputs byte-checked against mlakv.",
        f"- µs per call under CUDA-graph replay (`triton.testing.do_bench_cudagraph`, {doc['rep_ms']:g} ms a "
        "graph, median, L2 warm); mlakv, the upstream dispatch tables (298ec3a as merged, ba4fafe later)"
        f"{' and the copy' if clabel and not floor else ''}: median of 3 timings in interleaved rounds of "
        "rotating order.",
    ]
    if any(r.get("best_sweep") for r in rows):
        n = len(doc.get("sweep_configs") or [])
        lines.append(f"- Best of sweep: the minimum over {f'{n} ' if n else 'the '}Triton configurations timed "
                     "once each (biased low at sub-µs sizes), with its configuration (kernel BLOCK/warps/stages).")
    lines += [
        f"- Device copy: {copy_how}.",
        "- TB/s = bytes read + written / time (above the copy rate where the data stays in L2); "
        "vs 298ec3a = mlakv / upstream - 1.",
        "",
        f"Summary{' of the main run' if merged else ''}: "
        + (f"mlakv at or below the sweep minimum at {sm['mlakv_le_best_sweep']}/{sm['sizes_with_best_sweep']} "
           f"sizes, at or below that configuration re-timed beside it at {sm['mlakv_le_best_config_retimed']}/"
           f"{sm['sizes_retimed']}; " if sm["sizes_with_best_sweep"] else "")
        + f"at least 10% below 298ec3a at {sm['s_le_2048_mlakv_ge_10pct_below_298ec3a']}/{sm['sizes_s_le_2048']} "
        f"sizes with s <= 2048; {sm['byte_mismatches']} mismatching bytes, {sm['errors']} errors.",
    ]
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    copy_col = f"copy floor µs ({copy_tbps:g} TB/s)" if floor else "device copy µs"
    hdr = ["s", "MB moved", "mlakv µs", "Triton 298ec3a µs", "Triton ba4fafe µs", "Triton best of sweep µs",
           copy_col, "mlakv TB/s", "mlakv vs 298ec3a"]
    for h in sorted({r["h"] for r in rows}):
        lines += ["", f"## h = {h}", "", "| " + " | ".join(hdr) + " |", "|" + "---|" * len(hdr)]
        for r in (r for r in rows if r["h"] == h):
            m, u = r.get("mlakv_us"), timed(r, UP)
            b = r.get("best_sweep")
            cells = [str(r["s"]), f"{r['mb']:.2f}", fmt(m), fmt(u), fmt(timed(r, UP2)),
                     f"{b['us']:.2f} ({b['short']})" if b else "", fmt(copy_us(r, copy_tbps)),
                     fmt(r["bytes"] / (m * 1e6) if m else None),
                     fmt((m / u - 1) * 100 if m and u else None, "{:+.1f}%")]
            lines.append("| " + " | ".join(cells) + " |")
    out.write_text("\n".join(lines) + "\n")


def write_png(doc: dict, rows: list[dict], copy_tbps: Optional[float], out: Path) -> None:
    env = doc["env"]
    hs = sorted({r["h"] for r in rows})
    fig, axes = plt.subplots(len(hs), 2, figsize=(12, 4.0 * len(hs)), squeeze=False)
    clabel = copy_label(rows, copy_tbps)
    for (ax_us, ax_bw), h in zip(axes, hs):
        rr = [r for r in rows if r["h"] == h]

        def series(get):
            pts = [(r["s"], get(r), r["bytes"]) for r in rr]
            return [(s, t, n) for s, t, n in pts if t is not None]

        lines = [
            ("mlakv", series(lambda r: r.get("mlakv_us")),
             dict(color="C0", marker="o", ms=4, lw=1.8, zorder=3)),
            ("Triton, upstream dispatch 298ec3a", series(lambda r: timed(r, UP)),
             dict(color="C1", marker="s", ms=3.5, lw=1.2)),
            ("Triton, best of sweep", series(lambda r: (r.get("best_sweep") or {}).get("us")),
             dict(color="C2", marker="^", ms=6, mfc="none", mew=1.3, ls="none", zorder=4)),
        ]
        if clabel:
            lines.append((clabel, series(lambda r: copy_us(r, copy_tbps)),
                          dict(color="0.4", lw=1.0, ls="--", marker=None if "floor" in clabel else "x", ms=4)))
        for label, pts, style in lines:
            if not pts:
                continue
            s, t, n = zip(*pts)
            ax_us.plot(s, t, label=label, **style)
            ax_bw.plot(s, [b / (u * 1e6) for b, u in zip(n, t)], label=label, **style)
        ax_us.set_yscale("log")
        ax_us.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        # the copy floor drops far below the launch-bound small sizes: keep the panel on the kernels
        kernels = [t for _, pts, _ in lines[:3] for _, t, _ in pts]
        if kernels:
            ax_us.set_ylim(bottom=0.7 * min(kernels))
        ax_us.set_ylabel("µs per call")
        ax_bw.set_ylabel("TB/s (bytes read + written)")
        ax_us.set_title(f"h = {h}: time per call", fontsize=10)
        ax_bw.set_title(f"h = {h}: bandwidth", fontsize=10)
        for ax in (ax_us, ax_bw):
            ax.set_xscale("log", base=2)
            ax.xaxis.set_major_locator(LogLocator(base=4))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.set_xlabel("s (tokens)")
            ax.grid(True, which="major", alpha=0.4)
            ax.grid(True, which="minor", alpha=0.12)
        ax_bw.set_ylim(bottom=0)
    axes[0][0].legend(fontsize=8, loc="upper left")
    fig.suptitle(f"mlakv_pack_fp8 vs Triton, DeepSeek dims, bf16 -> e4m3fn, CUDA-graph replay, L2 warm\n"
                 f"{env['gpu']}, driver {env['driver']}, {env['date_utc'][:10]}, commit {str(env['commit'])[:7]}",
                 fontsize=11)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("result", type=Path, metavar="RESULT.json",
                    help="triton_compare.json written by bench/triton_baseline.py")
    ap.add_argument("--name", required=True, help="output base name, e.g. h100 -> h100.md and h100.png")
    ap.add_argument("--outdir", type=Path, default=Path("bench/results"))
    ap.add_argument("--copy-tbps", type=float, default=None,
                    help="device copy rate (TB/s, read + write) for a copy floor, where the JSON has no copy timings")
    ap.add_argument("--extra-json", type=Path, nargs="+", default=[], metavar="JSON",
                    help="more runs on the same GPU and commit: the sizes RESULT.json lacks, and the best of "
                         "sweep / copy where it has none")
    ap.add_argument("--note", action="append", default=[], help="a markdown line added under the summary")
    a = ap.parse_args()
    doc, rows = load(a.result, a.extra_json)
    a.outdir.mkdir(parents=True, exist_ok=True)
    write_md(doc, rows, a.copy_tbps, a.outdir / f"{a.name}.md", a.note, bool(a.extra_json))
    write_png(doc, rows, a.copy_tbps, a.outdir / f"{a.name}.png")
    print(f"wrote {a.outdir / (a.name + '.md')} and {a.outdir / (a.name + '.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
