"""The example scripts in bindings/python/examples run (on CPU tensors, the reference backend)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import HERE, SRC

EXAMPLES = HERE.parent / "examples"


def test_calibrate_example_on_cpu():
    pytest.importorskip("torch", reason="PyTorch is not installed")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([p for p in sys.path if p] + [str(SRC)])
    r = subprocess.run([sys.executable, str(EXAMPLES / "calibrate.py"), "--device", "cpu",
                        "-s", "64", "--batches", "3"], capture_output=True, text=True,
                       timeout=300, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "amax after 3 batches matches torch's" in out, out
    assert "scales=per-head" in out and "backend=reference" in out, out
    # per-head scales keep the quiet heads: the worst V head is far better than per tensor
    ph = float(out.split("per-head scales:")[1].split("V")[1].split()[0])
    pt = float(out.split("per-tensor scale:")[1].split("V")[1].split()[0])
    assert ph < 0.05 < pt, out
