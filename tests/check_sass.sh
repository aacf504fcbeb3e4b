#!/usr/bin/env bash
# Checks the machine code of the CUDA backend inside libmlakv.so with cuobjdump:
#   - every requested real architecture has its cubin (--list-elf) and every requested virtual
#     one its PTX (--list-ptx);
#   - the SASS of each requested cubin of sm_89 or newer uses the hardware FP8 conversion
#     (F2FP.SATFINITE.E4M3 / .E5M2, from cvt.rn.satfinite.{e4m3,e5m2}x2.f32), and of sm_90 or
#     newer the PDL instructions (ACQBULK = griddepcontrol.wait, PREEXIT =
#     griddepcontrol.launch_dependents), and of sm_100 or newer the 256-bit loads of the wide
#     units (LDG.E.ENL2.256, from ld.global.v8.b32; counted as LDG.256).
# Usage: check_sass.sh LIB [ARCHS]   ARCHS: CMAKE_CUDA_ARCHITECTURES, ',' or ';' separated
#        (default / native / all: check every cubin the library holds).
#        check_sass.sh --find-tools       prints where cuobjdump and nvdisasm are (scripts/setup.sh)
# Exit: 0 pass, 1 fail, 77 skipped (no cuobjdump or nvdisasm found).
set -uo pipefail
LIB=${1:?usage: check_sass.sh LIB [ARCHS] | check_sass.sh --find-tools}
ARCHS=${2:-}

# ---- cuobjdump and nvdisasm (cuobjdump -sass runs nvdisasm from PATH) -------------------------
candidates=()
for tool in cuobjdump nvdisasm; do
  p=$(command -v "$tool" 2>/dev/null) && candidates+=("$(dirname "$p")")
done
candidates+=(/usr/local/cuda/bin ${CUDA_HOME:+"$CUDA_HOME/bin"} ${CUDA_PATH:+"$CUDA_PATH/bin"})
for py in python3 /usr/bin/python3; do
  command -v "$py" >/dev/null 2>&1 || continue
  while IFS= read -r d; do [ -n "$d" ] && candidates+=("$d"); done < <("$py" - 2>/dev/null <<'EOF'
import glob, os
try:
    import nvidia  # namespace package of NVIDIA's PyPI wheels (nvidia-cuda-cuobjdump, ...)
    for p in nvidia.__path__:
        for b in sorted(glob.glob(os.path.join(p, "cu1*", "bin"))):
            print(b)
except Exception:
    pass
EOF
)
done
CUOBJDUMP="" NVDISASM=""
for d in "${candidates[@]}"; do
  [ -z "$CUOBJDUMP" ] && [ -x "$d/cuobjdump" ] && CUOBJDUMP="$d/cuobjdump"
  [ -z "$NVDISASM" ] && [ -x "$d/nvdisasm" ] && NVDISASM="$d/nvdisasm"
done
if [ -z "$CUOBJDUMP" ]; then
  echo "check_sass: SKIPPED: cuobjdump not found (looked on PATH, in /usr/local/cuda/bin and in the"
  echo "  PyPI nvidia/cu1*/bin dirs); install it with: python3 -m pip install nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm"
  exit 77
fi
if [ -z "$NVDISASM" ]; then
  echo "check_sass: SKIPPED: nvdisasm not found (cuobjdump -sass needs it); python3 -m pip install nvidia-cuda-nvdisasm"
  exit 77
fi
if [ "$LIB" = --find-tools ]; then
  echo "$CUOBJDUMP $NVDISASM"
  exit 0
fi
PATH="$(dirname "$NVDISASM"):$(dirname "$CUOBJDUMP"):$PATH"
export PATH
echo "check_sass: $CUOBJDUMP, $NVDISASM"
echo "check_sass: $LIB, architectures '${ARCHS:-<all in the library>}'"
[ -f "$LIB" ] || { echo "check_sass: FAIL: $LIB does not exist"; exit 1; }

fails=0
fail() { echo "  FAIL: $*"; fails=$((fails + 1)); }

ELF=$("$CUOBJDUMP" --list-elf "$LIB" 2>&1) || { echo "$ELF"; fail "cuobjdump --list-elf failed"; }
PTX=$("$CUOBJDUMP" --list-ptx "$LIB" 2>&1) || true  # fails when there is no PTX at all
echo "$ELF" | sed 's/^/  /'
echo "$PTX" | grep -i 'ptx file' | sed 's/^/  /'
present_elf=$(echo "$ELF" | sed -n 's/.*\.\(sm_[0-9]*[a-z]*\)\.cubin.*/\1/p' | sort -u)

# ---- which cubins / PTX were requested -----------------------------------------------------------
want_real=() want_virtual=()
generic=0
for a in ${ARCHS//[,;]/ }; do
  case "$a" in
    native|all|all-major) generic=1 ;;
    *-real) want_real+=("${a%-real}") ;;
    *-virtual) want_virtual+=("${a%-virtual}") ;;
    *) want_real+=("$a"); want_virtual+=("$a") ;;
  esac
done
[ -z "$ARCHS" ] && generic=1

for a in "${want_real[@]}"; do
  if echo "$present_elf" | grep -qx "sm_$a"; then echo "  cubin sm_$a: present"; else fail "no sm_$a cubin"; fi
done
for a in "${want_virtual[@]}"; do
  if echo "$PTX" | grep -qiE "\.(sm|compute)_$a\.ptx"; then echo "  PTX compute_$a: present"; else fail "no compute_$a PTX"; fi
done

# ---- the instructions, per cubin -----------------------------------------------------------------
if [ $generic -eq 1 ]; then sass_archs=$present_elf; else sass_archs=$(printf 'sm_%s\n' "${want_real[@]}"); fi
SASS=$(mktemp /tmp/mlakv-sass.XXXXXX)
trap 'rm -f "$SASS"' EXIT
checked=0
for sm in $sass_archs; do
  num=${sm#sm_}; num=${num%%[a-z]*}
  [ "$num" -ge 89 ] || { echo "  $sm: older than sm_89, no hardware FP8 conversion to check"; continue; }
  echo "$present_elf" | grep -qx "$sm" || continue  # already reported missing
  if ! "$CUOBJDUMP" -sass -arch "$sm" "$LIB" >"$SASS" 2>&1; then
    tail -n 3 "$SASS"
    fail "cuobjdump -sass -arch $sm failed"
    continue
  fi
  pats=(F2FP.SATFINITE.E4M3 F2FP.SATFINITE.E5M2)
  [ "$num" -ge 90 ] && pats+=(ACQBULK PREEXIT)
  [ "$num" -ge 100 ] && pats+=(LDG.256)
  counts=$( (grep -oE 'F2FP\.SATFINITE\.E4M3|F2FP\.SATFINITE\.E5M2|ACQBULK|PREEXIT' "$SASS"
             grep -oE 'LDG\.[A-Z0-9.]*256' "$SASS" | sed 's/.*/LDG.256/') | sort | uniq -c)
  for p in "${pats[@]}"; do
    n=$(awk -v p="$p" '$2 == p {print $1}' <<<"$counts")
    n=${n:-0}
    echo "  $sm $p: $n"
    [ "$n" -gt 0 ] || fail "$sm: no $p in the SASS"
  done
  checked=$((checked + 1))
done
[ $checked -gt 0 ] || echo "  (no cubin of sm_89 or newer requested: no instruction checked)"

if [ $fails -gt 0 ]; then echo "check_sass: FAILED ($fails)"; exit 1; fi
echo "check_sass: OK ($checked cubin(s) checked)"
