#!/usr/bin/env bash
# The library and the CPU test suite built by clang under sanitizers (CI runs it from scripts/test.sh):
#   asan   clang, AddressSanitizer + UndefinedBehaviorSanitizer (+ LeakSanitizer), warnings as errors:
#          the doctest suite (but the fake-device GPU host test), the C ABI test, the ABI guard, the
#          lifetime programs and the examples
#   tsan   clang, ThreadSanitizer: the multi-threaded tests (8 threads packing different shapes while
#          another lists backends and swaps and resets tables; the plan cache across threads)
# Usage: bash scripts/sanitize.sh [asan,tsan]   (default both; build dirs build-asan, build-tsan,
# or $BUILD_ASAN / $BUILD_TSAN). Exits non-zero on any sanitizer report or test failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
JOBS=${JOBS:-2}
WHAT=${1:-asan,tsan}
CC_=${MLAKV_CLANG:-clang-14}
CXX_=${MLAKV_CLANGXX:-clang++-14}
command -v "$CXX_" >/dev/null || { echo "sanitize: $CXX_ not found (Debian: apt-get install clang-14)" >&2; exit 1; }

configure() {  # build dir, sanitizer flags
  local dir=$1 flags=$2
  mkdir -p "$dir"
  if ! CC=$CC_ CXX=$CXX_ cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DMLAKV_WITH_CUDA=OFF -DMLAKV_WITH_HIP=OFF -DMLAKV_BUILD_BENCH=OFF -DMLAKV_BUILD_TESTS=ON \
      -DMLAKV_WARNINGS_AS_ERRORS=ON -DMLAKV_LINK_NO_UNDEFINED=OFF \
      "-DCMAKE_C_FLAGS=$flags" "-DCMAKE_CXX_FLAGS=$flags" \
      "-DCMAKE_EXE_LINKER_FLAGS=$flags" "-DCMAKE_SHARED_LINKER_FLAGS=$flags" \
      >"$dir/configure.log" 2>&1; then
    cat "$dir/configure.log"
    return 1
  fi
}

rc=0
if [[ ",$WHAT," == *",asan,"* ]]; then
  B=${BUILD_ASAN:-build-asan}
  t0=$(date +%s)
  # (UBSan's vptr and function checks need its C++ runtime in every program, the C ones included:
  # left out; the library has no virtual calls or function-pointer casts for them to check)
  configure "$B" "-fsanitize=address,undefined -fno-sanitize=vptr,function -fno-sanitize-recover=all -fno-omit-frame-pointer"
  # the CPU suite, except the HIP and install checks (other compilers, not this build) and the GPU
  # host layer over fake devices (1208 kernel instances compiled for the host: long under ASan)
  ninja -C "$B" -j "$JOBS" mlakv mlakv_demo test_fp8_encoder test_pack test_repeat test_row_kernels test_bad_input \
    test_reliability test_scales c_api_test example_c example_cpp example_calibrate lifetime_atexit_call \
    lifetime_kokkos_finalized abi_old_struct_size >"$B/build.log" 2>&1 || { tail -n 40 "$B/build.log"; exit 1; }
  echo "sanitize: asan+ubsan build (clang) in $(( $(date +%s) - t0 )) s"
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  ctest --test-dir "$B" --output-on-failure -j "$JOBS" -LE "hip|install|python|gpu-host" || rc=1
fi
if [[ ",$WHAT," == *",tsan,"* ]]; then
  B=${BUILD_TSAN:-build-tsan}
  t0=$(date +%s)
  configure "$B" "-fsanitize=thread -fno-omit-frame-pointer"
  ninja -C "$B" -j "$JOBS" test_reliability test_repeat >"$B/build.log" 2>&1 || { tail -n 40 "$B/build.log"; exit 1; }
  echo "sanitize: tsan build (clang) in $(( $(date +%s) - t0 )) s"
  export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}
  for t in "test_reliability -tc=threads*" "test_repeat"; do
    echo "sanitize: tsan: $t"
    # shellcheck disable=SC2086
    "$B/tests/"$t || rc=1
  done
fi
[ $rc -eq 0 ] && echo "sanitize: ok ($WHAT)"
exit $rc
