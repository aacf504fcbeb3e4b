#!/usr/bin/env bash
# Builds everything the GPU verification needs on this (CPU) machine and stages it, small, in
# .carry/ (git-ignored) for the device tool:  run(command="bash tools/gpu_verify.sh", carry=[".carry"]).
# Binaries link the CUDA runtime statically; the Kokkos shared library travels beside libmlakv.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build-gpu}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMLAKV_WITH_CUDA=ON -DMLAKV_BUILD_TESTS=OFF -DMLAKV_BUILD_GPU_TESTS=ON \
      -DMLAKV_BUILD_BENCH=ON ${CUDA_ARCHS:+-DCMAKE_CUDA_ARCHITECTURES=$CUDA_ARCHS} >/dev/null
ninja -C "$BUILD" mlakv mlakv_demo mlakv_bench mlakv_test_cuda mlakv_encoder_exhaustive
rm -rf .carry && mkdir -p .carry/bin .carry/lib
cp "$BUILD"/mlakv_demo "$BUILD"/bench/mlakv_bench "$BUILD"/tests/gpu/mlakv_test_cuda \
   "$BUILD"/tests/gpu/mlakv_encoder_exhaustive .carry/bin/
cp -P "$BUILD"/libmlakv.so* .carry/lib/
kokkos=$(ldd "$BUILD/libmlakv.so" | awk '/kokkos/ {print $3}')
[ -n "$kokkos" ] && cp "$kokkos" .carry/lib/
git rev-parse HEAD > .carry/commit 2>/dev/null || echo unknown > .carry/commit
git diff --quiet 2>/dev/null || echo "+uncommitted" >> .carry/commit
du -sh .carry
