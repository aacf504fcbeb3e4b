"""Build hook of the mlakv Python package (all metadata is in pyproject.toml).

The package is pure Python.  Set MLAKV_BUNDLE_LIBRARY=/path/to/libmlakv.so when building a
wheel to ship a copy of the library inside it (``mlakv/_lib/``); the binding then finds it
without MLAKV_LIBRARY or a system install, and the wheel is tagged for this platform.  Shared
libraries it needs that lie beside it (e.g. the Kokkos library of a staged build) are copied too
(libmlakv finds them through its $ORIGIN run path); system libraries are not bundled.
"""
import os
import shutil
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

BUNDLE = os.environ.get("MLAKV_BUNDLE_LIBRARY", "").strip()


class BuildPyWithLibrary(build_py):
    def run(self):
        super().run()
        if BUNDLE:
            src = os.path.realpath(BUNDLE)
            if not os.path.isfile(src):
                raise SystemExit("MLAKV_BUNDLE_LIBRARY=%s: no such file" % BUNDLE)
            dest = os.path.join(self.build_lib, "mlakv", "_lib")
            os.makedirs(dest, exist_ok=True)
            name = os.path.basename(BUNDLE)
            if ".so" in name:
                name = "libmlakv.so"
            shutil.copyfile(src, os.path.join(dest, name))
            for dep in _deps_beside(src):
                shutil.copyfile(dep, os.path.join(dest, os.path.basename(dep)))


def _deps_beside(lib):
    """The libraries `ldd` resolves for lib that lie in lib's own folder."""
    try:
        out = subprocess.run(["ldd", lib], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    here = os.path.dirname(lib)
    deps = []
    for line in out.splitlines():
        parts = line.split("=>")
        if len(parts) == 2 and parts[1].strip().startswith("/"):
            path = parts[1].split("(")[0].strip()
            if os.path.dirname(os.path.realpath(path)) == here:
                deps.append(path)
    return deps


class MaybeBinaryDistribution(Distribution):
    def has_ext_modules(self):  # a bundled shared library makes the wheel platform-specific
        return bool(BUNDLE)


setup(cmdclass={"build_py": BuildPyWithLibrary}, distclass=MaybeBinaryDistribution)
