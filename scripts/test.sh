#!/usr/bin/env bash
# Build everything and run every test suite:
#   ctest   the doctest suite on the reference backend, the C99 ABI test, the ml_dtypes vector
#           check, the install test (CMake package and pkg-config consumers) and, where nvcc
#           exists, the CUDA backend (the full fat binary), its SASS check and the GPU tests
#           (reported skipped without a GPU); the HIP compile check where hipcc exists;
#   then, against the library installed into $BUILD/prefix, the bindings' own runners:
#           pytest (Python), cargo test (Rust), go test (Go);
#   then the reliability runners: scripts/sanitize.sh (clang: the library and CPU suite under
#           ASan+UBSan, the threaded tests under TSan) and scripts/fuzz.sh (libFuzzer over the C API,
#           200,000 executions from the committed corpus).
# Each runner's summary is printed; the last lines list every runner's result. Exits non-zero if
# any failed (a runner that cannot run here reports itself skipped).
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
[ -d "$HOME/.cargo/bin" ] && export PATH="$PATH:$HOME/.cargo/bin"

mkdir -p "$BUILD"
if ! cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMLAKV_BUILD_TESTS=ON \
       >"$BUILD/configure.log" 2>&1; then
  cat "$BUILD/configure.log"
  exit 1
fi
grep -E '^-- mlakv' "$BUILD/configure.log" || true
ninja -C "$BUILD" -j "$JOBS"
echo "=== build done in $(( $(date +%s) - t0 )) s; running the tests"

results=()
run() {  # name, command...: runs a test runner, records passed / skipped (exit 77) / FAILED
  local name=$1 rc=0; shift
  echo; echo "=== $name"
  "$@" || rc=$?
  case $rc in
    0) results+=("$name: passed") ;;
    77) results+=("$name: skipped") ;;
    *) results+=("$name: FAILED (exit $rc)") ;;
  esac
}
run ctest ctest --test-dir "$BUILD" --output-on-failure -j 2
rm -rf "$BUILD/prefix"
cmake --install "$BUILD" --prefix "$BUILD/prefix" >/dev/null
for lang in python rust go; do
  run "$lang" bash "bindings/$lang/run_tests.sh" "$PWD/$BUILD/prefix"
done
run sanitizers bash scripts/sanitize.sh
run fuzz bash scripts/fuzz.sh

echo; echo "=== all test runners ($(( $(date +%s) - t0 )) s)"
printf '  %s\n' "${results[@]}"
! printf '%s\n' "${results[@]}" | grep -q FAILED
