#!/usr/bin/env bash
# Fuzz the C API on the reference backend: configure with clang (libFuzzer, AddressSanitizer and UBSan
# over the library's core sources: tests/fuzz/CMakeLists.txt), build mlakv_fuzz_pack, run it on a copy
# of the committed seed corpus (tests/fuzz/corpus is never changed), then print libFuzzer's final stats
# and the harness's counts (executions, accepted calls, rejections by status).
# Exits non-zero on any crash, sanitizer report, timeout or failed check of the harness; the input is
# kept as $BUILD/fuzz-artifacts/crash-* (or timeout-*, oom-*): reproduce with
#   $BUILD/tests/fuzz/mlakv_fuzz_pack $BUILD/fuzz-artifacts/crash-...
# About 1.5 minutes to build and 3-5 minutes to run on 2 cores. Needs clang-14 and libclang-rt-14-dev
# (Debian), cmake, ninja and Kokkos (libtrilinos-kokkos-dev: scripts/setup.sh).
# Environment: BUILD (build directory, default build-fuzz), JOBS (ninja jobs, default 2),
#   FUZZ_RUNS (executions, default 200000), FUZZ_MAX_TIME (seconds of fuzzing at most, default 480:
#   a machine that runs fewer than FUZZ_RUNS in that time fails, saying how many it ran), FUZZ_CC / FUZZ_CXX (default clang-14 /
#   clang++-14), FUZZ_ARGS (more libFuzzer flags, e.g. -seed=1), MLAKV_FUZZ_KEEP_GOING=1 (triage: each
#   distinct failed check is reported once, its input saved as finding-<n> in $BUILD/fuzz-artifacts,
#   and fuzzing goes on; the script still exits non-zero if there was any).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD=${BUILD:-build-fuzz}
JOBS=${JOBS:-2}
RUNS=${FUZZ_RUNS:-200000}
MAX_TIME=${FUZZ_MAX_TIME:-480}
export CC=${FUZZ_CC:-clang-14}
export CXX=${FUZZ_CXX:-clang++-14}
t0=$(date +%s)

for tool in "$CC" "$CXX" cmake ninja; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "fuzz: $tool not found (Debian: apt-get install clang-14 libclang-rt-14-dev cmake ninja-build)" >&2
    exit 1
  fi
done

mkdir -p "$BUILD"
if ! cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMLAKV_BUILD_FUZZER=ON -DMLAKV_WITH_CUDA=OFF \
       -DMLAKV_WITH_HIP=OFF -DMLAKV_BUILD_TESTS=OFF -DMLAKV_BUILD_BENCH=OFF >"$BUILD/configure.log" 2>&1; then
  cat "$BUILD/configure.log"
  exit 1
fi
ninja -C "$BUILD" -j "$JOBS" mlakv_fuzz_pack
t1=$(date +%s)
echo "=== fuzz: built in $((t1 - t0)) s; running $RUNS executions (at most $MAX_TIME s)"

work=$(mktemp -d "${TMPDIR:-/tmp}/mlakv-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
cp tests/fuzz/corpus/*.bin "$work/"  # libFuzzer adds what it finds to its first corpus directory: a copy
art="$BUILD/fuzz-artifacts"
mkdir -p "$art"
log="$BUILD/fuzz.log"
fuzzer="$PWD/$BUILD/tests/fuzz/mlakv_fuzz_pack"
[ -x "$fuzzer" ] || fuzzer="$BUILD/tests/fuzz/mlakv_fuzz_pack"  # (an absolute BUILD)
rc=0
# (run in the artifact directory: triage mode writes its finding-<n> files to the working directory)
(cd "$art" && UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1} \
   "$fuzzer" -runs="$RUNS" -max_total_time="$MAX_TIME" -max_len=2048 -timeout=60 -rss_limit_mb=3072 \
   -print_final_stats=1 -artifact_prefix="$PWD/" ${FUZZ_ARGS:-} "$work") >"$log" 2>&1 || rc=$?
t2=$(date +%s)

# libFuzzer's final stats and the harness's counts (printed at exit)
grep -E '^(Done [0-9]+ runs|stat::|fuzz_pack: [0-9]+ (executions|distinct))' "$log" || true
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
findings=$(sed -n 's/^fuzz_pack: \([0-9]*\) distinct findings.*/\1/p' "$log" | tail -n 1)
if [ "$rc" -ne 0 ] || grep -qE 'CHECK FAILED|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:' "$log"; then
  echo
  echo "=== fuzz: FAILED (exit $rc); from $log:"
  grep -n -m 5 -A 30 -E 'CHECK FAILED|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:' "$log" | head -n 120
  ls "$art" 2>/dev/null | grep -E '^(crash|timeout|oom|leak|slow-unit|finding)-' | sed "s|^|  input: $art/|" || true
  echo "=== fuzz: FAILED after $((t2 - t1)) s of fuzzing (build $((t1 - t0)) s)"
  exit 1
fi
if [ -z "$execs" ]; then
  echo "=== fuzz: FAILED: no final stats in $log"
  tail -n 20 "$log"
  exit 1
fi
if [ "${findings:-0}" -gt 0 ]; then
  echo "=== fuzz: FAILED: $findings distinct findings (inputs in $art)"
  exit 1
fi
if [ "$execs" -lt "$RUNS" ]; then  # fewer executions than asked is not the check CI promises
  echo "=== fuzz: FAILED: stopped at the time limit ($MAX_TIME s) after $execs of $RUNS executions"
  exit 1
fi
echo "=== fuzz: OK: $execs executions in $((t2 - t1)) s, no crash, no failed check (build $((t1 - t0)) s, total $((t2 - t0)) s)"
