"""The package installs with pip and builds as a wheel (pure, or with the library bundled)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import mlakv

from conftest import env_without_library, lib_path

PKG = Path(__file__).resolve().parent.parent


def test_installed_package_is_the_one_tested():
    target = os.environ.get("MLAKV_TEST_INSTALLED")
    if not target:
        pytest.skip("not run through run_tests.sh (which installs the package with pip first)")
    pkg, tgt = str(Path(mlakv.__file__).resolve()), str(Path(target).resolve())
    assert os.path.commonpath([pkg, tgt]) == tgt, (pkg, tgt)
    try:
        from importlib.metadata import version
    except ImportError:  # pragma: no cover
        pytest.skip("no importlib.metadata")
    assert version("mlakv") == mlakv.__version__


def test_version_agrees_with_pyproject():
    text = (PKG / "pyproject.toml").read_text()
    m = re.search(r'^version\s*=\s*"([^"]+)"', text, re.M)
    assert m and m.group(1) == mlakv.__version__
    assert re.search(r'^requires-python\s*=\s*">=3.8"', text, re.M)


def _can_build_wheel():
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Setuptools is replacing distutils"
        return _why_no_wheel()


def _why_no_wheel():
    try:
        import setuptools
    except ImportError:
        return "setuptools is not installed"
    major = int(setuptools.__version__.split(".")[0])
    if major < 61:
        return "setuptools %s < 61 (PEP 621 metadata)" % setuptools.__version__
    if major < 70:
        try:
            import wheel  # noqa: F401
        except ImportError:
            return "setuptools %s needs the wheel package to build wheels" % setuptools.__version__
    try:
        import pip  # noqa: F401
    except ImportError:
        return "pip is not installed"
    return None


def _build(tmp_path: Path, bundle=None) -> Path:
    why = _can_build_wheel()
    if why:
        pytest.skip(why)
    src = tmp_path / "pkg"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(PKG / name, src / name)
    shutil.copytree(PKG / "src", src / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    env.pop("MLAKV_BUNDLE_LIBRARY", None)
    if bundle:
        env["MLAKV_BUNDLE_LIBRARY"] = bundle
    out = tmp_path / "dist"
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                        "-w", str(out), str(src)], env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    wheels = list(out.glob("mlakv-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_pure_wheel(tmp_path):
    whl = _build(tmp_path)
    assert whl.name == "mlakv-%s-py3-none-any.whl" % mlakv.__version__
    with zipfile.ZipFile(whl) as z:
        names = set(z.namelist())
        meta = z.read("mlakv-%s.dist-info/METADATA" % mlakv.__version__).decode()
    for f in ("__init__.py", "_capi.py", "_core.py", "_dlpack.py", "_errors.py", "torch.py",
              "py.typed"):
        assert "mlakv/" + f in names
    assert not any("/_lib/" in n for n in names)
    assert not any(n.endswith(".so") for n in names)
    assert "Requires-Python: >=3.8" in meta
    assert "mla_kv_pack_quantize_fp8" in meta  # the README is the long description


def test_wheel_with_bundled_library_is_found_without_any_setting(tmp_path):
    whl = _build(tmp_path, bundle=lib_path())
    with zipfile.ZipFile(whl) as z:
        assert "mlakv/_lib/libmlakv.so" in z.namelist()
    assert not whl.name.endswith("-none-any.whl")  # platform-specific now
    target = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index",
                        "--target", str(target), str(whl)], capture_output=True, text=True,
                       timeout=300, env=dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1"))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    env = env_without_library()
    env["PYTHONPATH"] = str(target)
    env["PKG_CONFIG_PATH"] = str(tmp_path)
    r = subprocess.run([sys.executable, "-c",
                        "import mlakv; from mlakv import _capi; L = _capi.lib(); "
                        "print(L.how, L.path, mlakv.version())"],
                       capture_output=True, text=True, timeout=120, env=env, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    how, path, ver = r.stdout.split()
    assert how == "bundled" and path.startswith(str(target)) and ver == "200"
