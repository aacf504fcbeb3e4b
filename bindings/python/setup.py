"""Build hook of the mlakv Python package (all metadata is in pyproject.toml).

The package is pure Python.  Set MLAKV_BUNDLE_LIBRARY=/path/to/libmlakv.so when building a
wheel to ship a copy of the library inside it (``mlakv/_lib/``); the binding then finds it
without MLAKV_LIBRARY or a system install, and the wheel is tagged for this platform.  The
library's own dependencies (e.g. the Kokkos shared library of a CPU build) are not bundled.
"""
import os
import shutil

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


class MaybeBinaryDistribution(Distribution):
    def has_ext_modules(self):  # a bundled shared library makes the wheel platform-specific
        return bool(BUNDLE)


setup(cmdclass={"build_py": BuildPyWithLibrary}, distclass=MaybeBinaryDistribution)
