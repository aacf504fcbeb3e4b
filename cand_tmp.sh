#!/usr/bin/env bash
# temporary: where persistent grids start to win (34-41 MB), and s*h 20480-28672
export LD_LIBRARY_PATH=.carry/lib
C=""
for r in a b; do
C+="F512s$r=variant=flat threads=512 lanes=16 split=1 early=1;"
C+="P2w2$r=variant=persist threads=256 unroll=2 waves=2 lanes=8 early=0;"
C+="P1w4$r=variant=persist threads=256 unroll=1 waves=4 lanes=8 early=0;"
C+="P1w8s$r=variant=persist threads=256 unroll=1 waves=8 lanes=16 split=1 early=0;"
done
python3 bench/triton_baseline.py --lib .carry/lib/libmlakv.so --sizes 128:288,16:2304,128:304,16:2560,128:320 --no-torch-ref --out $OUT/boundary.json --mlakv-candidates "$C" 2>&1 | grep -E "^h=|candidate" | sed 's/plan:.*//'
C=""
for r in a b; do
C+="F256s$r=variant=flat threads=256 lanes=16 split=1 early=1;"
C+="F512s$r=variant=flat threads=512 lanes=16 split=1 early=1;"
C+="T16s1$r=variant=tile2d threads=256 block=16 lanes=16 split=1 early=1;"
C+="T16s0$r=variant=tile2d threads=256 block=16 lanes=16 split=1 early=0;"
C+="T32s1$r=variant=tile2d threads=512 block=32 lanes=16 split=1 early=1;"
C+="F1024s$r=variant=flat threads=1024 lanes=16 split=1 early=1;"
done
python3 bench/triton_baseline.py --lib .carry/lib/libmlakv.so --sizes 128:160,128:192,16:1536,128:224,16:1792 --no-torch-ref --out $OUT/mid.json --mlakv-candidates "$C" 2>&1 | grep -E "^h=|candidate" | sed 's/plan:.*//'
