#!/usr/bin/env bash
# The shared GPU source compiled for gfx942 (MI300X) with Debian's clang-19, whose HIP mode knows
# gfx942 where Debian's hipcc (HIP 5.2) does not. Debian's ROCm device libraries have no gfx942
# bitcode, so the device code cannot be linked here (it calls __ockl_* work-item functions that
# ROCm's device libraries define): the check stops after code generation (-S) and counts the
# kernels in the gfx942 assembly.
# Usage: check_clang19.sh CLANG SOURCE_DIR OUT_DIR
set -euo pipefail
clang=$1 src=$2 out=$3
mkdir -p "$out"
rm -f "$out"/*.s
t0=$(date +%s)
# the GPU sources (the host layer and the six parts of kernel instances, src/gpu/instances/), two
# at a time; every pack kernel is in one of them
srcs=("$src/src/gpu/gpu_backend.cu" "$src"/src/gpu/instances/*.cu)
printf '%s\n' "${srcs[@]}" | xargs -P 2 -I{} sh -c '
  "$0" -x hip --offload-arch=gfx942 --rocm-path=/usr -nogpulib --cuda-device-only -S -std=c++17 -O3 \
    -ffp-contract=off -Wall -Wextra -Werror -DMLAKV_BUILDING_LIBRARY -DMLAKV_WITH_HIP -I"$1/src" -I"$1/include" \
    "$3" -o "$2/$(basename "$3" .cu).s"' "$clang" "$src" "$out" {}
n=$(cat "$out"/*.s | grep -c '^[[:space:]]*\.amdhsa_kernel _ZN5mlakv4kern' || true)
[ "$n" -eq 1208 ] || { echo "check_clang19: $n kernels in the gfx942 assembly, expected 1208 (552 plain, 552 ext, 16 lean, 72 lane-commit, 16 lean amax)"; exit 1; }
grep -q 'amdgcn-amd-amdhsa--gfx942' "$out/bf16_plain.s" || { echo "check_clang19: not gfx942 code"; exit 1; }
echo "check_clang19: $n pack kernels generated for gfx942 by $("$clang" --version | head -n 1) in $(( $(date +%s) - t0 )) s (not linked: no gfx942 device libraries here): ok"
