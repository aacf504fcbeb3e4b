#!/usr/bin/env bash
# Tests of the Python binding against the mlakv library installed in <prefix>.
#
#   bash bindings/python/run_tests.sh <prefix>
#
# 1. finds <prefix>/lib/libmlakv.so and points the binding at it (MLAKV_LIBRARY; PKG_CONFIG_PATH
#    too, for the pkg-config discovery test);
# 2. installs the package with pip into a temporary folder (`pip install --target`, from a copy of
#    bindings/python so the working tree stays clean; an isolated build first, then
#    --no-build-isolation), so the tests run against the installed package;
# 3. runs `python3 -m pytest -q -rs bindings/python/tests` from the repository root and exits
#    with pytest's status (its summary line is the last line). Torch tests run when torch is
#    installed, CUDA tests when a GPU and a CUDA build are there; otherwise they report SKIPPED.
# PYTHON=... picks the interpreter (default python3). MLAKV_PY_ALLOW_SRC=1: when pip cannot
# install (an offline machine without setuptools/wheel), test bindings/python/src in place.
set -uo pipefail

PREFIX=${1:?usage: run_tests.sh <prefix>}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PY=${PYTHON:-python3}

LIB=""
for cand in "$PREFIX/lib/libmlakv.so" "$PREFIX/lib64/libmlakv.so" \
            "$PREFIX"/lib/*-linux-gnu/libmlakv.so; do
  if [ -e "$cand" ]; then LIB=$cand; break; fi
done
if [ -z "$LIB" ]; then
  echo "run_tests.sh: no libmlakv.so under $PREFIX/lib (install the library there first)" >&2
  exit 2
fi
export MLAKV_LIBRARY="$LIB"
if [ -d "$(dirname "$LIB")/pkgconfig" ]; then
  export PKG_CONFIG_PATH="$(dirname "$LIB")/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
fi

if ! "$PY" -c 'import pytest' >/dev/null 2>&1; then
  echo "run_tests.sh: pytest is not installed for $PY (pip install pytest)" >&2
  exit 2
fi

TMP=$(mktemp -d /tmp/mlakv-py-tests.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$TMP/pkg"
cp -r "$HERE/pyproject.toml" "$HERE/setup.py" "$HERE/README.md" "$HERE/src" "$TMP/pkg/"
rm -rf "$TMP/pkg/src/"*.egg-info
find "$TMP/pkg" -name __pycache__ -prune -exec rm -rf {} +

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore PIP_NO_INPUT=1
if "$PY" -m pip install --no-deps --quiet --target "$TMP/site" "$TMP/pkg" >"$TMP/pip.log" 2>&1; then
  how="pip install --target (isolated build)"
elif "$PY" -m pip install --no-deps --quiet --no-build-isolation --target "$TMP/site" "$TMP/pkg" \
      >>"$TMP/pip.log" 2>&1; then
  how="pip install --target --no-build-isolation"
elif [ "${MLAKV_PY_ALLOW_SRC:-0}" = 1 ]; then
  how=""
  echo "run_tests.sh: WARNING: pip could not install the package (offline?); testing" \
       "bindings/python/src in place because MLAKV_PY_ALLOW_SRC=1" >&2
else
  echo "run_tests.sh: pip could not install bindings/python (set MLAKV_PY_ALLOW_SRC=1 to test" \
       "the source tree in place on an offline machine):" >&2
  tail -n 25 "$TMP/pip.log" >&2
  exit 1
fi

if [ -n "$how" ]; then
  echo "run_tests.sh: library $MLAKV_LIBRARY; package installed by $how into $TMP/site"
  export PYTHONPATH="$TMP/site${PYTHONPATH:+:$PYTHONPATH}"
  export MLAKV_TEST_INSTALLED="$TMP/site"
else
  export PYTHONPATH="$HERE/src${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONDONTWRITEBYTECODE=1
cd "$ROOT"
"$PY" -m pytest -q -rs -p no:cacheprovider bindings/python/tests
exit $?
