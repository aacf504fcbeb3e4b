#!/usr/bin/env bash
# The HIP compile check: every kernel instance of src/kernels/pack_kernels.cuh compiled for AMD GPUs
# through src/hip/vendor_hip.h (tests/hip/hip_compile_check.hip), then the object is checked for
# device code of each requested arch and for all 480 kernel instances (their host launch stubs).
# Usage: check_hip.sh HIPCC SOURCE_DIR OUT_DIR ARCH[,ARCH...]
set -euo pipefail
hipcc=$1 src=$2 out=$3 archs=$4
mkdir -p "$out"
obj="$out/hip_compile_check.o"
flags=()
for a in ${archs//,/ }; do flags+=("--offload-arch=$a"); done
t0=$(date +%s)
"$hipcc" -std=c++17 -O2 "${flags[@]}" -I"$src/src" -I"$src/include" -c "$src/tests/hip/hip_compile_check.hip" -o "$obj"
for a in ${archs//,/ }; do
  # (grep -c reads all input: with pipefail, grep -q would SIGPIPE strings and fail the pipeline)
  [ "$(strings "$obj" | grep -c "amdgcn-amd-amdhsa--$a")" -gt 0 ] || { echo "check_hip: no $a device code in $obj"; exit 1; }
done
n=$(nm -C "$obj" | grep -c 'mlakv::kern::__device_stub__pack_\(flat\|tile2d\|persist\|general\)<' || true)
[ "$n" -ge 480 ] || { echo "check_hip: expected 480 kernel instances, found $n"; exit 1; }
echo "check_hip: $n kernel instances compiled for ${archs} through src/hip/vendor_hip.h in $(( $(date +%s) - t0 )) s: ok"
