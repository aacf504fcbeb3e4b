#!/usr/bin/env bash
# Where warps wait: Nsight Compute's full set for mlakv candidates and Triton configurations on one
# problem (L2 warm, clocks as they are), as text: the details page of every profiled launch and the
# per-instruction SASS page with stall samples. Run on a GPU machine from the repo root, after
# scripts/gpu_stage.sh:
#   bash bench/ncu_stalls.sh H S "name=ROW" ... -- kernel:block:warps:stages ...
# e.g. bash bench/ncu_stalls.sh 16 1024 "f1024=variant=flat threads=1024 lanes=16 split=1" -- v0:16:8:2
# Writes $OUT/ncu-details.txt, $OUT/ncu-source.csv, $OUT/ncu-raw.csv and the .ncu-rep.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/mlakv-ncu}
mkdir -p "$OUT"
H=$1 S=$2; shift 2
args=(--h "$H" --s "$S" --reps 2)
while [ $# -gt 0 ] && [ "$1" != "--" ]; do args+=(--mlakv "$1"); shift; done
[ $# -gt 0 ] && shift
tri=("$@")
for t in "${tri[@]}"; do args+=(--triton "$t"); done
export LD_LIBRARY_PATH=".carry/lib:${LD_LIBRARY_PATH:-}"
ncu --version | tail -1
ncu --cache-control none --clock-control none --set full --import-source no -k regex:pack \
    -f -o "$OUT/prof" python3 bench/ncu_compare.py --lib .carry/lib/libmlakv.so "${args[@]}" > "$OUT/ncu-run.log" 2>&1
tail -n 5 "$OUT/ncu-run.log"
ncu -i "$OUT/prof.ncu-rep" --page details --print-details all > "$OUT/ncu-details.txt" 2>&1
ncu -i "$OUT/prof.ncu-rep" --page source --print-source sass --csv > "$OUT/ncu-source.csv" 2>&1
ncu -i "$OUT/prof.ncu-rep" --page raw --csv > "$OUT/ncu-raw.csv" 2>&1
ls -la "$OUT"
