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
t0=$(date +%s)
"$clang" -x hip --offload-arch=gfx942 --rocm-path=/usr -nogpulib --cuda-device-only -S -std=c++17 -O3 \
  -ffp-contract=off -Wall -Wextra -Werror -DMLAKV_BUILDING_LIBRARY -DMLAKV_WITH_HIP -I"$src/src" -I"$src/include" \
  "$src/src/gpu/gpu_backend.cu" -o "$out/gfx942.s"
n=$(grep -c '^[[:space:]]*\.amdhsa_kernel _ZN5mlakv4kern' "$out/gfx942.s" || true)
[ "$n" -eq 1208 ] || { echo "check_clang19: $n kernels in the gfx942 assembly, expected 1208 (552 plain, 552 ext, 16 lean, 72 lane-commit, 16 lean amax)"; exit 1; }
grep -q 'amdgcn-amd-amdhsa--gfx942' "$out/gfx942.s" || { echo "check_clang19: not gfx942 code"; exit 1; }
echo "check_clang19: $n pack kernels generated for gfx942 by $("$clang" --version | head -n 1) in $(( $(date +%s) - t0 )) s (not linked: no gfx942 device libraries here): ok"
