#!/usr/bin/env bash
# The GPU verification script: run on the GPU machine from the repository root, after
# scripts/gpu_stage.sh staged .carry/ there.
#   tests       the GPU test suite: CUDA bytes vs the reference backend (PDL on/off, graphs, device
#               scales, strided outputs, misaligned pointers, every variant and built-in row)
#   exhaustive  the device encoder vs the hardware conversion over all 2^32 fp32 inputs
#   sanitize    compute-sanitizer memcheck, racecheck, synccheck and initcheck on the test binary
#   stress      threads x streams of mixed calls (sizes, types, layouts, PDL, scales, graphs) against
#               the reference, byte for byte (mlakv_stress_cuda; STRESS_ARGS, default --seconds 60)
#   multigpu    two devices at once, and per-device table files (mlakv_multigpu_cuda; MULTIGPU_ARGS);
#               SKIP with fewer than 2 GPUs
#   demo        the main job (mlakv_demo) on the GPU
#   python      the Python binding's tests with CUDA tensors (graph capture included)
#   hostcost    host cost of one call from Python: mlakv.torch beside the Triton baseline
#   bench       the C++ benchmark (bench/mlakv_bench)
#   triton      mlakv beside the Triton baseline (bench/triton_baseline.py), TRITON_ARGS to narrow it
#   ab          .carry/lib against .carry/base (another build) in one process, on AB_SIZES
#   ext         per-head scales and amax against per-tensor (mlakv_bench --ext; EXT_ARGS, default the
#               21 sizes of docs/perf-notes.md, the scales at 5 placements): FAIL where a cost is over
#               its bar (issue 15's bars), the table in $OUT/ext.log, the numbers in $OUT/ext.json
#   tune        mlakv-tune on this GPU (TUNE_ARGS), its table and report in $OUT/tune
# Usage: bash scripts/gpu_verify.sh [steps]   (comma list; default: all but ab, ext and tune)
# Logs and JSON go to $OUT (default /tmp/mlakv-gpu); the step logs are packed into $OUT/logs.tgz.
set -uo pipefail
cd "$(dirname "$0")/.."
ART=${ART:-.carry}
OUT=${OUT:-/tmp/mlakv-gpu}
LOGS=$(mktemp -d)
mkdir -p "$OUT"
STEPS=${1:-tests,exhaustive,sanitize,stress,multigpu,demo,python,hostcost,bench,triton}
export LD_LIBRARY_PATH="$ART/lib:${LD_LIBRARY_PATH:-}"
export MLAKV_COMMIT=$(head -c 40 "$ART/commit" 2>/dev/null || echo unknown)
export MLAKV_LIBRARY="$PWD/$ART/lib/libmlakv.so" PYTHONUNBUFFERED=1
has() { [[ ",$STEPS," == *",$1,"* ]]; }
declare -a SUMMARY
SKIPPABLE=" multigpu "  # steps whose exit status 77 means "not on this machine" (SKIP, not FAIL)
step() {  # name, command...
  local name=$1; shift
  local t0=$(date +%s)
  echo "=== $name: $*"
  "$@" > "$LOGS/$name.log" 2>&1
  local rc=$?
  tail -n 25 "$LOGS/$name.log"
  local verdict="FAIL (rc=$rc)"
  [ $rc -eq 0 ] && verdict=PASS
  [ $rc -eq 77 ] && [[ "$SKIPPABLE" == *" $name "* ]] && verdict="SKIP ($(tail -n 1 "$LOGS/$name.log"))"
  SUMMARY+=("$name: $verdict in $(( $(date +%s) - t0 )) s")
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
  # (per-head scales and amax: every variant and unit layout, PDL, graphs, cached plans; not the
  # large racing case)
  SUB='--test-case=*PDL*,*graph*,*misaligned*,*routing*,*variant*,*wide*,*threads*,*registers*,*per-head*,*amax*'
  step memcheck compute-sanitizer --tool memcheck --error-exitcode 9 "$ART/bin/mlakv_test_cuda" "$SUB" '--test-case-exclude=*racing*'
  # (the amax kernels combine a block's maxima through shared memory: *amax accumulates* runs every
  # variant per tensor and per head)
  step racecheck compute-sanitizer --tool racecheck --error-exitcode 9 "$ART/bin/mlakv_test_cuda" '--test-case=*PDL*,*graph*,*amax accumulates*'
  step synccheck compute-sanitizer --tool synccheck --error-exitcode 9 "$ART/bin/mlakv_test_cuda" '--test-case=*PDL*,*amax accumulates*'
  # reads of device memory never written (by a kernel, or copied back to the host): every case but
  # the large sizes (every variant, unit layout and built-in row, PDL, graphs, misaligned and padded
  # layouts, table files, threads): about 1.5 min on an H200
  step initcheck compute-sanitizer --tool initcheck --error-exitcode 9 "$ART/bin/mlakv_test_cuda" '--test-case-exclude=*large sizes*'
fi
has stress && step stress "$ART/bin/mlakv_stress_cuda" ${STRESS_ARGS:---seconds 60}
has multigpu && step multigpu "$ART/bin/mlakv_multigpu_cuda" ${MULTIGPU_ARGS:-}
has demo && step demo "$ART/bin/mlakv_demo" --s 4096 --h 128
has python && step python bash bindings/python/run_tests.sh "$PWD/$ART"  # .carry/lib/libmlakv.so: a prefix
has hostcost && step hostcost python3 bench/python_host_cost.py --lib "$MLAKV_LIBRARY" --json "$OUT/python_host_cost.json"
has bench && step bench "$ART/bin/mlakv_bench" ${BENCH_ARGS:-} --json "$OUT/bench.json"
has triton && step triton python3 bench/triton_baseline.py --lib "$MLAKV_LIBRARY" --out "$OUT/triton_compare.json" ${TRITON_ARGS:-}
EXT_SIZES=16:1,16:2,16:4,16:8,16:16,16:64,64:2,64:8,64:32,64:64,128:1,128:8,128:16,128:32,128:64,16:1024,16:4096,16:16384,128:1024,128:4096,128:16384
has ext && { step ext "$ART/bin/mlakv_bench" --ext ${EXT_ARGS:---sizes $EXT_SIZES --placements 5} --json "$OUT/ext.json"; cp "$LOGS/ext.log" "$OUT/ext.log"; }
has tune && step tune "$ART/bin/mlakv-tune" --out "$OUT/tune" ${TUNE_ARGS:-}
has ab && step ab python3 bench/triton_baseline.py --lib "$MLAKV_LIBRARY" --lib-b "$ART/base/libmlakv.so" --no-sweep \
  --sizes "${AB_SIZES:-16:1,16:64,16:384,16:1024,16:16384,128:1,128:8,128:128,128:384,128:2048,128:16384}" \
  --out "$OUT/ab.json"

tar czf "$OUT/logs.tgz" -C "$LOGS" . 2>/dev/null
echo; echo "=== summary (commit $MLAKV_COMMIT)"
printf '%s\n' "${SUMMARY[@]}"
fails=$(printf '%s\n' "${SUMMARY[@]}" | grep -c ': FAIL')
skips=$(printf '%s\n' "${SUMMARY[@]}" | grep -c ': SKIP')
echo "$(( ${#SUMMARY[@]} - fails - skips )) passed, $fails failed$([ "$skips" -gt 0 ] && echo ", $skips skipped")"
[ "$fails" -eq 0 ]
