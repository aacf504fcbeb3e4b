#!/usr/bin/env bash
# Runs the Rust binding's tests against an installed mlakv.
#
#   bash bindings/rust/run_tests.sh <prefix>      # <prefix>: where `cmake --install` put mlakv
#
# Steps: `cargo fmt --check` (where rustfmt is installed), `cargo test --offline` for the
# workspace (mlakv-sys: the C layout test and raw calls; mlakv: unit tests, integration tests,
# doc-tests) with the library found through MLAKV_LIB_DIR / MLAKV_INCLUDE_DIR, the example
# program, then the pkg-config route of mlakv-sys's build.rs (MLAKV_* unset, PKG_CONFIG_PATH set)
# building and running the example again. Nothing is fetched (--offline; the crates have no
# dependencies). Exit status: 0 all passed, 1 a failure, 2 bad usage or a missing library,
# 77 no cargo (reported as SKIPPED).
set -u -o pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 <mlakv install prefix>" >&2
  exit 2
fi
prefix=$(cd "$1" 2>/dev/null && pwd) || { echo "run_tests.sh: no such directory: $1" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)

# ---- toolchain: $CARGO, cargo on PATH, ~/.cargo/bin (rustup), /usr/bin (Debian's 1.63)
cargo=""
for c in "${CARGO:-}" "$(command -v cargo 2>/dev/null || true)" "${HOME:-/root}/.cargo/bin/cargo" \
         /root/.cargo/bin/cargo /usr/bin/cargo; do
  if [ -n "$c" ] && [ -x "$c" ]; then cargo=$c; break; fi
done
if [ -z "$cargo" ]; then
  echo "rust binding tests: SKIPPED (no cargo found; Debian: apt-get install cargo, or rustup)"
  exit 77
fi
# rustc next to that cargo comes first (Debian's cargo runs `rustc` from PATH)
PATH="$(dirname "$cargo"):$PATH"
export PATH

# ---- the library
libdir=""
for d in "$prefix"/lib "$prefix"/lib64 "$prefix"/lib/*-linux-gnu; do
  if ls "$d"/libmlakv.so* >/dev/null 2>&1; then libdir=$d; break; fi
done
if [ -z "$libdir" ] || [ ! -f "$prefix/include/mlakv/mlakv.h" ]; then
  echo "run_tests.sh: no libmlakv.so under $prefix/lib* or no $prefix/include/mlakv/mlakv.h" >&2
  exit 2
fi
export MLAKV_LIB_DIR="$libdir" MLAKV_INCLUDE_DIR="$prefix/include"
# The build script lets `cargo test` find the library by itself; LD_LIBRARY_PATH covers older
# cargo versions (Debian's 1.65 does not set the library path for doc-tests).
export LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$here/target}"
export CARGO_NET_OFFLINE=true CARGO_TERM_COLOR=never
unset MLAKV_NO_RUNTIME_PATH

echo "rust binding: $("$cargo" --version), $(rustc --version 2>/dev/null || echo 'rustc ?')"
echo "library: $MLAKV_LIB_DIR, headers: $MLAKV_INCLUDE_DIR"
cd "$here" || exit 2
failed=0

# ---- the C layout test needs a C compiler: require it where one exists, say SKIPPED where not
cc=${CC:-cc}
if command -v "$cc" >/dev/null 2>&1; then
  export MLAKV_REQUIRE_LAYOUT_TEST=1
else
  unset MLAKV_REQUIRE_LAYOUT_TEST
  echo "SKIPPED: mlakv-sys layout comparison with C (no C compiler \`$cc\`; it passes as a no-op)"
fi

# ---- formatting
if "$cargo" fmt --version >/dev/null 2>&1; then
  if "$cargo" fmt --all -- --check; then
    echo "cargo fmt --check: ok"
  else
    echo "cargo fmt --check: FAILED (run cargo fmt in bindings/rust)"
    failed=1
  fi
else
  echo "cargo fmt --check: SKIPPED (rustfmt is not installed)"
fi

# ---- the tests
log=$(mktemp "${TMPDIR:-/tmp}/mlakv-rust-tests.XXXXXX")
trap 'rm -f "$log"' EXIT
echo "== cargo test --offline --no-fail-fast"
"$cargo" test --offline --no-fail-fast 2>&1 | tee "$log"
test_status=${PIPESTATUS[0]}
passed=$(sed -n 's/^test result: .*\. \([0-9]*\) passed; \([0-9]*\) failed.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
nfailed=$(sed -n 's/^test result: .*\. \([0-9]*\) passed; \([0-9]*\) failed.*/\2/p' "$log" | awk '{s+=$1} END {print s+0}')
if [ "$test_status" -ne 0 ]; then failed=1; fi

echo "== cargo run --example pack (MLAKV_LIB_DIR route)"
if ! "$cargo" run --offline -q -p mlakv --example pack -- 64; then
  echo "example: FAILED"
  failed=1
fi

# ---- the pkg-config route of build.rs
echo "== pkg-config route (MLAKV_LIB_DIR and MLAKV_INCLUDE_DIR unset)"
if command -v "${PKG_CONFIG:-pkg-config}" >/dev/null 2>&1; then
  # LD_LIBRARY_PATH is unset too: `cargo run` must find the library through build.rs alone.
  pc_target="$CARGO_TARGET_DIR/pkg-config-route"
  pc_out=$(
    unset MLAKV_LIB_DIR MLAKV_INCLUDE_DIR MLAKV_REQUIRE_LAYOUT_TEST LD_LIBRARY_PATH
    export PKG_CONFIG_PATH="$libdir/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
    export CARGO_TARGET_DIR="$pc_target"
    "$cargo" run --offline -q -p mlakv --example pack -- 8 2>&1
  )
  pc_status=$?
  echo "$pc_out"
  # what build.rs reported (the newest mlakv-sys build-script output of that target dir)
  pc_found=$(ls -t "$pc_target"/debug/build/mlakv-sys-*/output 2>/dev/null | head -n 1)
  pc_found=$([ -n "$pc_found" ] && sed -n 's/^cargo:rustc-env=MLAKV_SYS_FOUND_BY=//p' "$pc_found")
  echo "build.rs found the library by: ${pc_found:-?}"
  if [ $pc_status -eq 0 ] && echo "$pc_out" | grep -q '^plan: backend=reference' &&
     echo "$pc_found" | grep -q '^pkg-config'; then
    echo "pkg-config route: ok"
  else
    echo "pkg-config route: FAILED"
    failed=1
  fi
else
  echo "pkg-config route: SKIPPED (no pkg-config program)"
fi

echo "== rust binding: $passed tests passed, $nfailed failed (cargo test), $([ $failed -eq 0 ] && echo OK || echo FAILED)"
exit $failed
