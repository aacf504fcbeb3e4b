#!/usr/bin/env bash
# The one GPU verification script (run on the device machine from the repo root, after
# tools/gpu_stage.sh staged .carry/ here):
#   1. the GPU test suite: CUDA bytes vs the reference backend (PDL on/off, graphs, device scales,
#      strided outputs, misaligned pointers, every variant), large sizes;
#   2. the device encoder vs the hardware conversion over all 2^32 fp32 inputs;
#   3. compute-sanitizer memcheck and racecheck on the test binary;
#   4. the main job (mlakv_demo) on the GPU;
#   5. the benchmark (bench/mlakv_bench) and the Triton comparison (bench/triton_baseline.py).
# Usage: bash tools/gpu_verify.sh [steps]   steps: comma list of tests,exhaustive,sanitize,demo,bench,triton
#        (default: all). Logs and JSON go to $OUT (the device tool brings them back) or /tmp/mlakv-gpu.
set -uo pipefail
cd "$(dirname "$0")/.."
ART=${ART:-.carry}
OUT=${OUT:-/tmp/mlakv-gpu}
LOGS=$(mktemp -d)   # step logs; packed into $OUT/logs.tgz at the end (the device tool returns <= 8 files)
mkdir -p "$OUT"
STEPS=${1:-tests,exhaustive,sanitize,demo,bench,triton}
export LD_LIBRARY_PATH="$ART/lib:${LD_LIBRARY_PATH:-}"
export MLAKV_COMMIT=$(head -c 40 "$ART/commit" 2>/dev/null || echo unknown)
has() { [[ ",$STEPS," == *",$1,"* ]]; }
declare -a SUMMARY
step() {  # name, command...
  local name=$1; shift
  local t0=$(date +%s)
  echo "=== $name: $*"
  "$@" > "$LOGS/$name.log" 2>&1
  local rc=$?
  tail -n 25 "$LOGS/$name.log"
  SUMMARY+=("$name: $([ $rc -eq 0 ] && echo PASS || echo "FAIL (rc=$rc)") in $(( $(date +%s) - t0 )) s")
  return $rc
}

{ date -u +%FT%TZ; echo "commit $MLAKV_COMMIT"
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem,temperature.gpu,power.draw --format=csv
} > "$OUT/gpu.txt" 2>&1
cat "$OUT/gpu.txt"

has tests && step tests "$ART/bin/mlakv_test_cuda"
has exhaustive && step exhaustive "$ART/bin/mlakv_encoder_exhaustive"
if has sanitize; then
  # a representative subset: each variant, PDL, graphs, misaligned and strided layouts, routing
  SUB='--test-case=*PDL*,*graph*,*misaligned*,*routing*,*variant*,*wide*,*threads*'
  step memcheck compute-sanitizer --tool memcheck --error-exitcode 9 "$ART/bin/mlakv_test_cuda" "$SUB"
  step racecheck compute-sanitizer --tool racecheck --error-exitcode 9 "$ART/bin/mlakv_test_cuda" '--test-case=*PDL*,*graph*'
  step synccheck compute-sanitizer --tool synccheck --error-exitcode 9 "$ART/bin/mlakv_test_cuda" '--test-case=*PDL*'
fi
has demo && step demo "$ART/bin/mlakv_demo" --s 4096 --h 128
has bench && step bench "$ART/bin/mlakv_bench" ${BENCH_ARGS:-} --json "$OUT/bench.json"
has triton && step triton env PYTHONUNBUFFERED=1 python3 bench/triton_baseline.py --lib "$ART/lib/libmlakv.so" \
  --out "$OUT/triton_compare.json" ${TRITON_ARGS:-}

tar czf "$OUT/logs.tgz" -C "$LOGS" . 2>/dev/null
echo; echo "=== summary (commit $MLAKV_COMMIT)"
printf '%s\n' "${SUMMARY[@]}"
fails=$(printf '%s\n' "${SUMMARY[@]}" | grep -c FAIL)
echo "$(( ${#SUMMARY[@]} - fails )) passed, $fails failed"
[ "$fails" -eq 0 ]
