#!/usr/bin/env bash
# A/B of two builds of libmlakv in one device call: the Triton harness (bench/triton_baseline.py)
# run on each library in turn, A B A B ..., on the same sizes, so kernel changes are compared
# with each other and with Triton's best within one session on the GPU machine.
#   bash tools/ab_libs.sh "16:1024,128:64" path/to/libA.so path/to/libB.so [rounds=2]
# Writes $OUT/ab-<lib>-<round>.json and prints one line per size and run: mlakv us, Triton best us.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/mlakv-ab}
mkdir -p "$OUT"
SIZES=$1 A=$2 B=$3 ROUNDS=${4:-2}
export LD_LIBRARY_PATH=".carry/lib:${LD_LIBRARY_PATH:-}"
for r in $(seq 1 "$ROUNDS"); do
  for tag in A B; do
    lib=$A; [ "$tag" = B ] && lib=$B
    PYTHONUNBUFFERED=1 python3 bench/triton_baseline.py --lib "$lib" --sizes "$SIZES" --no-torch-ref \
      --out "$OUT/ab-$tag-$r.json" > "$OUT/ab-$tag-$r.log" 2>&1 || { echo "run $tag $r failed"; tail -5 "$OUT/ab-$tag-$r.log"; }
  done
done
python3 - "$OUT" "$ROUNDS" <<'PY'
import json, sys
out, rounds = sys.argv[1], int(sys.argv[2])
rows = {}
for r in range(1, rounds + 1):
    for tag in "AB":
        try:
            d = json.load(open(f"{out}/ab-{tag}-{r}.json"))
        except Exception as e:  # noqa: BLE001
            print(tag, r, "no results:", e); continue
        for rec in d.get("results", d if isinstance(d, list) else []):
            key = (rec.get("h"), rec.get("s"))
            best = (rec.get("best_sweep") or {}).get("us")
            rows.setdefault(key, []).append(f"{tag}{r} {rec.get('mlakv_us') or float('nan'):.3f}/{best or float('nan'):.3f}")
for (h, s), v in sorted(rows.items()):
    print(f"h={h} s={s}: " + "  ".join(v) + "   (mlakv/Triton best, us)")
PY
