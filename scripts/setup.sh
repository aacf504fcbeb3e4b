#!/usr/bin/env bash
# Installs what mlakv's build and tests need on a Debian 12 machine. Idempotent: a re-run on a
# machine that has everything does no network access and takes about a second.
#   bash scripts/setup.sh          everything scripts/test.sh needs:
#     apt:  cmake ninja-build g++ pkg-config libtrilinos-kokkos-dev doctest-dev python3 python3-pip
#           hipcc libamdhip64-dev rocm-device-libs   (tests/hip: the HIP backend built for gfx90a, gfx940)
#           clang-19                                 (tests/hip: the GPU source compiled for gfx942)
#           clang-14 libclang-rt-14-dev              (scripts/sanitize.sh, scripts/fuzz.sh: the clang
#                                                     build, ASan/UBSan/TSan, libFuzzer)
#           golang-go                                (bindings/go)
#           cargo                                    (bindings/rust; only when no cargo is installed)
#     pip:  numpy, ml_dtypes, pytest                 (fnuz vectors check, bindings/python)
#           torch                                    (bindings/python's torch tests on CPU tensors;
#                                                     PyPI's wheel, ~5 GB with its CUDA libraries;
#                                                     if it cannot be installed those tests skip)
#           nvidia-cuda-cuobjdump, nvidia-cuda-nvdisasm   (tests/check_sass.sh; only when nvcc exists)
#   bash scripts/setup.sh --demo   what scripts/demo.sh needs: cmake ninja-build g++ libtrilinos-kokkos-dev
# It never installs a CUDA toolkit: the CUDA backend is built only where nvcc already is (on PATH
# or /usr/local/cuda/bin/nvcc). Runs as root (CI); otherwise uses sudo for apt when available.
set -euo pipefail

MODE=full
[ "${1:-}" = "--demo" ] && MODE=demo
if [ "$MODE" = demo ]; then
  APT_PACKAGES=(cmake ninja-build g++ libtrilinos-kokkos-dev)
else
  APT_PACKAGES=(cmake ninja-build g++ pkg-config libtrilinos-kokkos-dev doctest-dev python3 python3-pip
                hipcc libamdhip64-dev rocm-device-libs clang-19 clang-14 libclang-rt-14-dev golang-go)
  # bindings/rust: any cargo will do (a rustup install, else Debian's)
  command -v cargo >/dev/null 2>&1 || [ -x "$HOME/.cargo/bin/cargo" ] || APT_PACKAGES+=(cargo)
fi

say() { echo "setup: $*"; }
LOG=$(mktemp /tmp/mlakv-setup.XXXXXX.log)
trap 'rm -f "$LOG"' EXIT
run_logged() {  # runs "$@" with its output in $LOG; on failure prints the log's tail and fails
  if ! "$@" >"$LOG" 2>&1; then
    say "FAILED: $*"
    tail -n 30 "$LOG" >&2
    return 1
  fi
}

# ---- apt ---------------------------------------------------------------------------------------
installed() { dpkg -s "$1" 2>/dev/null | grep -q '^Status: install ok installed'; }
missing=()
for p in "${APT_PACKAGES[@]}"; do installed "$p" || missing+=("$p"); done
if [ ${#missing[@]} -eq 0 ]; then
  say "apt: all ${#APT_PACKAGES[@]} packages already installed"
else
  if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
  elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo -n)
  else
    say "not root and no sudo: cannot install ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  say "apt: installing ${missing[*]}"
  run_logged "${SUDO[@]}" apt-get update -q
  run_logged "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  say "apt: done"
fi

[ "$MODE" = demo ] && exit 0

# ---- CUDA: detected, never installed -----------------------------------------------------------
if ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH="/usr/local/cuda/bin:$PATH"
fi
NVCC=$(command -v nvcc || true)
if [ -n "$NVCC" ]; then
  say "CUDA: $NVCC ($("$NVCC" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p')): the CUDA backend, GPU tests and bench will be built"
else
  say "CUDA: no nvcc: CPU-only build (Kokkos reference backend)"
fi

# ---- pip ---------------------------------------------------------------------------------------
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore PIP_NO_INPUT=1
pip_install() {  # Debian's python3 refuses plain pip installs (PEP 668): retry with the override
  if python3 -m pip install --quiet "$@" >"$LOG" 2>&1; then return 0; fi
  if grep -q 'externally-managed-environment' "$LOG"; then
    python3 -m pip install --quiet --break-system-packages "$@" >"$LOG" 2>&1 && return 0
  fi
  tail -n 15 "$LOG" >&2
  return 1
}

if python3 -c 'import numpy, ml_dtypes, pytest' >/dev/null 2>&1; then
  say "python: numpy, ml_dtypes and pytest already present"
elif pip_install numpy ml_dtypes pytest; then
  say "python: installed numpy, ml_dtypes and pytest"
else
  say "WARNING: pip could not install numpy/ml_dtypes/pytest: the fnuz_vectors_current test will not be registered and bindings/python will fail"
fi
if python3 -c 'import torch; torch.float8_e4m3fn' >/dev/null 2>&1; then
  say "python: torch already present"
elif pip_install torch; then
  say "python: installed torch $(python3 -c 'import torch; print(torch.__version__)' 2>/dev/null)"
else
  say "WARNING: pip could not install torch: the Python binding's torch tests will report themselves skipped"
fi

# cuobjdump + nvdisasm for the SASS check, found where tests/check_sass.sh looks for them
find_cuobjdump() { bash "$(dirname "${BASH_SOURCE[0]}")/../tests/check_sass.sh" --find-tools 2>/dev/null; }
if [ -z "$NVCC" ]; then
  say "cuobjdump: not needed (no CUDA backend, no SASS check)"
elif dir=$(find_cuobjdump); then
  say "cuobjdump: $dir (already present)"
elif pip_install nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm && dir=$(find_cuobjdump); then
  say "cuobjdump: installed nvidia-cuda-cuobjdump and nvidia-cuda-nvdisasm ($dir)"
else
  say "WARNING: no cuobjdump/nvdisasm: the cuda_sass test will report itself skipped"
fi
