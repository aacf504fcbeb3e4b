#!/usr/bin/env bash
# Runs the Go binding's tests against an installed mlakv.
#
#   bash bindings/go/run_tests.sh <prefix>      # <prefix>: where `cmake --install` put mlakv
#
# Uses only the Go toolchain's standard library: GOPROXY=off and -mod=readonly prove nothing is
# fetched. Steps: a check that the cgo pointer checker is really active (a deliberate violation
# must be caught), gofmt, go vet, `go test -v` with GODEBUG=cgocheck=2 (GOEXPERIMENT=cgocheck2
# on Go >= 1.21), the same tests under the race detector where it is supported, and the example
# program in examples/go. Exit status: 0 all passed, 1 a failure, 2 bad usage or a missing
# library, 77 no Go toolchain (reported as SKIPPED).
set -u -o pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 <mlakv install prefix>" >&2
  exit 2
fi
prefix=$(cd "$1" 2>/dev/null && pwd) || { echo "run_tests.sh: no such directory: $1" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

# ---- toolchain
GO=$(command -v go || true)
for g in /usr/lib/go-1.19/bin/go /usr/lib/go/bin/go /usr/local/go/bin/go; do
  [ -n "$GO" ] && break
  [ -x "$g" ] && GO=$g
done
if [ -z "$GO" ]; then
  echo "go binding tests: SKIPPED (no go toolchain found; Debian: apt-get install golang-go)"
  exit 77
fi
if ! command -v pkg-config >/dev/null 2>&1; then
  echo "run_tests.sh: pkg-config is required (the binding uses #cgo pkg-config: mlakv)" >&2
  exit 2
fi

# ---- the library, through pkg-config
pcdir=""
for d in "$prefix"/lib/pkgconfig "$prefix"/lib64/pkgconfig "$prefix"/lib/*/pkgconfig; do
  if [ -f "$d/mlakv.pc" ]; then pcdir=$d; break; fi
done
if [ -z "$pcdir" ]; then
  echo "run_tests.sh: no mlakv.pc under $prefix/lib*/pkgconfig (is mlakv installed there?)" >&2
  exit 2
fi
export PKG_CONFIG_PATH="$pcdir${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
libdir=$(pkg-config --variable=libdir mlakv)
export LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# ---- a hermetic Go environment
work=$(mktemp -d "${TMPDIR:-/tmp}/mlakv-go-tests.XXXXXX")
cleanup() { chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
export CGO_ENABLED=1 GOPROXY=off GOFLAGS=-mod=readonly GOWORK=off GOTOOLCHAIN=local GOTELEMETRY=off
export GOCACHE="$work/cache" GOPATH="$work/gopath" GOENV=off
goversion=$("$GO" env GOVERSION)
minor=$(echo "$goversion" | sed -n 's/^go1\.\([0-9]*\).*/\1/p')
if [ -n "$minor" ] && [ "$minor" -ge 21 ]; then
  export GOEXPERIMENT=cgocheck2 # GODEBUG=cgocheck=2 became a build-time experiment in Go 1.21
  cgocheck="GOEXPERIMENT=cgocheck2"
else
  export GODEBUG=cgocheck=2
  cgocheck="GODEBUG=cgocheck=2"
fi
echo "== $goversion ($GO), $cgocheck, mlakv $(pkg-config --modversion mlakv) from $libdir"

status=0
fail() { echo "FAILED: $*"; status=1; }

# ---- 1. the pointer checker must be live: a Go pointer stored into C memory has to be caught
mkdir -p "$work/cgocheck"
cat >"$work/cgocheck/go.mod" <<'EOF'
module cgochecksanity

go 1.19
EOF
cat >"$work/cgocheck/main.go" <<'EOF'
package main

// #include <stdlib.h>
import "C"
import "unsafe"

func main() {
	p := (*unsafe.Pointer)(C.malloc(C.size_t(unsafe.Sizeof(uintptr(0)))))
	*p = unsafe.Pointer(new(int)) // a Go pointer stored into C memory: a cgo rule violation
}
EOF
violation=$(cd "$work/cgocheck" && "$GO" run . 2>&1)
if echo "$violation" | grep -q "Go pointer stored into non-Go memory"; then
  echo "== cgocheck sanity: a deliberate violation is caught"
else
  fail "$cgocheck did not catch a deliberate cgo pointer violation: the checks below would prove nothing"
fi

cd "$here" || exit 2

# ---- 2. formatting and vet
GOFMT=$(dirname "$(readlink -f "$GO")")/gofmt
[ -x "$GOFMT" ] || GOFMT=gofmt
unformatted=$("$GOFMT" -l . "$repo/examples/go")
[ -z "$unformatted" ] || fail "gofmt: unformatted files: $unformatted"
echo "== go vet ./..."
"$GO" vet ./... || fail "go vet"

# ---- 3. the tests
echo "== go test -v -count=1 ./...  ($cgocheck)"
log="$work/test.log"
"$GO" test -v -count=1 ./... 2>&1 | tee "$log"
test_rc=${PIPESTATUS[0]}
[ "$test_rc" -eq 0 ] || fail "go test (exit $test_rc)"
passed=$(grep -cE '^ *--- PASS: ' "$log")
failed=$(grep -cE '^ *--- FAIL: ' "$log")
skipped=$(grep -cE '^ *--- SKIP: ' "$log")
if [ "$test_rc" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi # e.g. a build failure or a crash

# ---- 4. the race detector, where this toolchain has it
if "$GO" build -race ./... >/dev/null 2>&1; then
  echo "== go test -race -count=1 ./..."
  "$GO" test -race -count=1 ./... || fail "go test -race"
else
  echo "== go test -race: SKIPPED (the race detector is not supported on $("$GO" env GOOS)/$("$GO" env GOARCH) here)"
fi

# ---- 5. the example program (its own module, using the binding through a replace directive)
echo "== examples/go: go vet, go run . -s 64 -h 4"
(cd "$repo/examples/go" && "$GO" vet ./... && "$GO" run . -s 64 -h 4) || fail "examples/go"

echo "== go binding: $passed passed, $failed failed, $skipped skipped (tests, subtests and examples)"
if [ "$status" -ne 0 ]; then
  echo "== go binding: FAILED"
else
  echo "== go binding: OK"
fi
exit "$status"
