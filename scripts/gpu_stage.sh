#!/usr/bin/env bash
# Builds everything the GPU verification needs on a build machine (nvcc, no GPU needed) and stages
# it, small, in .carry/ (git-ignored), to be copied to the GPU machine beside the source tree:
#   .carry/bin     mlakv_demo, mlakv_bench, mlakv-tune, mlakv_test_cuda, mlakv_encoder_exhaustive,
#                  mlakv_stress_cuda, mlakv_multigpu_cuda
#   .carry/lib     libmlakv.so* and the Kokkos shared library it needs
#   .carry/base    (optional) another build's lib/ for an A/B in one process: BASE=path/to/its/lib
#   .carry/commit  the commit (and "+uncommitted" if the tree differs from it)
# Binaries link the CUDA runtime statically.
#   CUDA_ARCHS=90a-real bash scripts/gpu_stage.sh     # only the H100/H200 cubin (faster)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build-gpu}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMLAKV_WITH_CUDA=ON -DMLAKV_BUILD_TESTS=OFF -DMLAKV_BUILD_GPU_TESTS=ON \
      -DMLAKV_BUILD_BENCH=ON ${CUDA_ARCHS:+-DCMAKE_CUDA_ARCHITECTURES=$CUDA_ARCHS} >/dev/null
ninja -C "$BUILD" mlakv mlakv_demo mlakv_bench mlakv-tune mlakv_test_cuda mlakv_encoder_exhaustive mlakv_stress_cuda \
  mlakv_multigpu_cuda
rm -rf .carry && mkdir -p .carry/bin .carry/lib
cp "$BUILD"/mlakv_demo "$BUILD"/bench/mlakv_bench "$BUILD"/bench/mlakv-tune "$BUILD"/tests/gpu/mlakv_test_cuda \
   "$BUILD"/tests/gpu/mlakv_encoder_exhaustive "$BUILD"/tests/gpu/mlakv_stress_cuda "$BUILD"/tests/gpu/mlakv_multigpu_cuda \
   .carry/bin/
cp -P "$BUILD"/libmlakv.so* .carry/lib/
kokkos=$(ldd "$BUILD/libmlakv.so" | awk '/kokkos/ {print $3}')
[ -n "$kokkos" ] && cp "$kokkos" .carry/lib/
if [ -n "${BASE:-}" ]; then mkdir -p .carry/base && cp -P "$BASE"/libmlakv.so* .carry/base/; fi
git rev-parse HEAD > .carry/commit 2>/dev/null || echo unknown > .carry/commit
git diff --quiet HEAD 2>/dev/null || echo "+uncommitted" >> .carry/commit
du -sh .carry
