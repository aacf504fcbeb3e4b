#!/usr/bin/env bash
# The main job: set up, build the library and mlakv_demo, then pack a DeepSeek-shaped K/V
# (bf16 -> e4m3fn; default h = 16, s = 4096) on the best backend present and verify the bytes.
#   bash scripts/demo.sh [mlakv_demo options: --s N --h N --dims NOPE,ROPE,V --backend B --iters N]
# It builds only what can run here: the CUDA backend for this machine's GPU when there is one
# (nvcc and an NVIDIA GPU), else the CPU (Kokkos reference) backend alone. scripts/test.sh builds
# and checks every backend.
# Environment: BUILD (build directory, default build-demo), JOBS (ninja jobs, default 2).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD=${BUILD:-build-demo}
JOBS=${JOBS:-2}
t0=$(date +%s)

bash scripts/setup.sh --demo
if ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH="/usr/local/cuda/bin:$PATH"
fi
if command -v nvcc >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
  gpu=$(nvidia-smi -L | head -n 1)
  echo "demo: ${gpu%% (UUID*}: building the CUDA backend for this GPU's architecture only"
  cfg=(-DMLAKV_WITH_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=native)
else
  echo "demo: no NVIDIA GPU here: building the CPU (Kokkos reference) backend only (scripts/test.sh builds every backend)"
  cfg=(-DMLAKV_WITH_CUDA=OFF)
fi

mkdir -p "$BUILD"
if ! cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMLAKV_BUILD_TESTS=OFF -DMLAKV_BUILD_GPU_TESTS=OFF \
       -DMLAKV_BUILD_BENCH=OFF "${cfg[@]}" >"$BUILD/configure.log" 2>&1; then
  cat "$BUILD/configure.log"
  exit 1
fi
grep -E '^-- mlakv' "$BUILD/configure.log" || true
ninja -C "$BUILD" -j "$JOBS" mlakv mlakv_demo
echo "=== built in $(( $(date +%s) - t0 )) s; $BUILD/mlakv_demo $*"
exec "$BUILD/mlakv_demo" "$@"
