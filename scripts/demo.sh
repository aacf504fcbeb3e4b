#!/usr/bin/env bash
# The main job: set up, build the library and mlakv_demo, then pack a DeepSeek-shaped K/V
# (bf16 -> e4m3fn; default h = 16, s = 4096) on the best backend present and verify the bytes.
#   bash scripts/demo.sh [mlakv_demo options: --s N --h N --dims NOPE,ROPE,V --backend B --iters N]
# Environment: BUILD (build directory, default build), JOBS (ninja jobs, default 2).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD=${BUILD:-build}
JOBS=${JOBS:-2}

bash scripts/setup.sh
if ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH="/usr/local/cuda/bin:$PATH"
fi

mkdir -p "$BUILD"
if ! cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release >"$BUILD/configure.log" 2>&1; then
  cat "$BUILD/configure.log"
  exit 1
fi
grep -E '^-- mlakv' "$BUILD/configure.log" || true
ninja -C "$BUILD" -j "$JOBS" mlakv mlakv_demo
echo "=== $BUILD/mlakv_demo $*"
exec "$BUILD/mlakv_demo" "$@"
