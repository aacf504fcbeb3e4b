#!/usr/bin/env bash
# Build everything and run the whole test suite: doctest executables on the reference backend,
# the C99 ABI test, the ml_dtypes vector check and, where nvcc exists, the CUDA backend, the GPU
# tests (they skip themselves without a GPU), the SASS check and the bench (compiled).
# Exits with ctest's status.
# Environment: BUILD (build directory, default build), JOBS (ninja jobs, default 2).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD=${BUILD:-build}
JOBS=${JOBS:-2}
t0=$(date +%s)

bash scripts/setup.sh
if ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH="/usr/local/cuda/bin:$PATH"
fi

mkdir -p "$BUILD"
if ! cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMLAKV_BUILD_TESTS=ON \
       >"$BUILD/configure.log" 2>&1; then
  cat "$BUILD/configure.log"
  exit 1
fi
grep -E '^-- mlakv' "$BUILD/configure.log" || true
ninja -C "$BUILD" -j "$JOBS"
echo "=== build done in $(( $(date +%s) - t0 )) s; running the tests"

# ctest's own summary is the last thing printed; its status is this script's
exec ctest --test-dir "$BUILD" --output-on-failure -j 2
